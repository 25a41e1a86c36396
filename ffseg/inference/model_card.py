"""The model card: what an exported model says about itself (no TensorFlow here).

Training ends by exporting a SavedModel with `ffseg.json` beside it
(`export.export_saved_model`): crop and input sizes, the training dataset
and its class names, when it was exported, and whether it was trained on the
embedded sample dataset. `ffseg detect` reads it (through the predictor's
`info`) to say plainly, in its JSON and on stderr, when a model's scores
mean nothing.
"""

from __future__ import annotations

from ffseg.constants import CROP_SIZE

__all__ = ["SAMPLE_DATASET", "model_card", "sample_model_notice"]

# The embedded sample dataset: a few synthetic clips made from bundled photos, for
# trying the pipeline out; a model trained on it has learnt nothing real.
SAMPLE_DATASET = "ffpp/sample"


def model_card(model, crop_size: int = CROP_SIZE, metadata=None) -> dict:
    """What a server or `ffseg detect` should know about an exported model.

    Written as `ffseg.json` beside the SavedModel: the crop and input sizes,
    the training dataset and class names (from `metadata`, as the trainer
    passes them), when it was exported (UTC, the end of training), and
    whether it was trained on the embedded sample dataset.
    """
    import datetime

    card = {
        "crop_size": int(crop_size),
        "image_size": int(model.input_shape[1]),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
    }
    card.update(metadata or {})
    if "dataset" in card:
        card["trained_on_sample"] = card["dataset"] == SAMPLE_DATASET
    return card


def sample_model_notice(info) -> str | None:
    """The plain warning for a model trained on the embedded sample dataset, else None."""
    info = info or {}
    if not (info.get("trained_on_sample") or info.get("dataset") == SAMPLE_DATASET):
        return None
    return (
        f"this model was trained on the embedded sample dataset ({SAMPLE_DATASET}: a few "
        "synthetic clips made from bundled photos), so its scores mean nothing on real media; "
        "train one on FaceForensics++ for real use (python -m experiments.train --experiment "
        "ffpp_c23; README, 'Training on FaceForensics++')"
    )
