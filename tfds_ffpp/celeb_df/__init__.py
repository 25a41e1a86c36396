"""celeb_df dataset: Celeb-DF (v2) face crops for cross-dataset evaluation (TFDS builder)."""

# Importing the package registers the `celeb_df` builder with TFDS.
from .celeb_df_dataset_builder import Builder  # noqa: F401
