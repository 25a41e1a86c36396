"""ffpp dataset: FaceForensics++ face crops, masks and noise labels (TFDS builder)."""

# Importing the package registers the `ffpp` builder with TFDS (ffseg.data.pipeline relies on it).
from .ffpp_dataset_builder import Builder  # noqa: F401
