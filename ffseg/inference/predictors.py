"""One interface over a trained model, whatever form it was saved in.

Evaluation and `ffseg detect` take a path: an exported SavedModel folder (what
serving uses) or a `.keras` file (what training saves). Both are wrapped as a
`Predictor` whose `predict` takes uint8 face crops [N, 299, 299, 3], cropped
with the training detector and box, and returns numpy arrays:

- `score` [N]: probability that the face was manipulated;
- `localization_map` [N, 299, 299]: per-pixel manipulation probability;
- `class_probabilities` [N, C];
- `semantic_maps` (`.keras` only): the three semantic maps resized to 299,
  used for the paper's Table VI gamma sweep.
"""

from __future__ import annotations

import os

import numpy as np

from ffseg.constants import CROP_SIZE


def _check_crops(crops, crop_size):
    crops = np.asarray(crops)
    if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[1:] != (crop_size, crop_size, 3):
        raise ValueError(
            f"expected uint8 crops [N, {crop_size}, {crop_size}, 3], "
            f"got {crops.dtype} {crops.shape}"
        )
    return crops


class SavedModelPredictor:
    """Runs the `serving_default` signature of an exported SavedModel."""

    has_semantic_maps = False

    def __init__(self, path: str):
        from ffseg.inference.export import ServedModel

        self.path = path
        self._served = ServedModel(path)
        self.info = self._served.info
        self.crop_size = self._served.crop_size

    def predict(self, crops, batch_size: int = 32) -> dict:
        return self._served.predict(_check_crops(crops, self.crop_size), batch_size=batch_size)


class KerasPredictor:
    """Runs a `.keras` FFSeg (reloaded with safe_mode=True)."""

    has_semantic_maps = True

    def __init__(self, path: str):
        import keras

        import ffseg.models.ffseg_model  # noqa: F401  (registers FFSeg and its layers)

        self.path = path
        self.model = keras.saving.load_model(path, safe_mode=True)
        self.image_size = int(self.model.input_shape[1])
        self.crop_size = CROP_SIZE
        self.info = {"image_size": self.image_size, "crop_size": CROP_SIZE}

    def _resize(self, maps, size):
        import tensorflow as tf

        return tf.image.resize(maps, (size, size), method="bilinear").numpy()[..., 0]

    def predict(self, crops, batch_size: int = 32) -> dict:
        import tensorflow as tf

        crops = _check_crops(crops, self.crop_size)
        parts = []
        for start in range(0, len(crops), batch_size):
            images = tf.cast(crops[start : start + batch_size], tf.float32)
            if self.image_size != self.crop_size:
                images = tf.image.resize(images, (self.image_size,) * 2, method="area")
            out = self.model(images, training=False)
            parts.append(
                {
                    "score": np.asarray(out["score"], np.float32),
                    "localization_map": np.clip(
                        self._resize(
                            np.asarray(out["localization_map"], np.float32), self.crop_size
                        ),
                        0,
                        1,
                    ),
                    "class_probabilities": np.asarray(out["class_probabilities"], np.float32),
                    "semantic_maps": np.stack(
                        [
                            self._resize(
                                np.asarray(out[f"semantic_map_{j}"], np.float32), self.crop_size
                            )
                            for j in (1, 2, 3)
                        ]
                    ),
                }
            )
        if not parts:
            return {}
        merged = {
            k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "semantic_maps"
        }
        merged["semantic_maps"] = np.concatenate([p["semantic_maps"] for p in parts], axis=1)
        return merged


def load_predictor(path: str):
    """A SavedModel folder or a `.keras` file -> a predictor; clear error otherwise."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return SavedModelPredictor(path)
        if os.path.exists(os.path.join(path, "export", "saved_model.pb")):
            return SavedModelPredictor(os.path.join(path, "export"))
        raise FileNotFoundError(
            f"{path}: folder holds no saved_model.pb (not an exported ffseg model)"
        )
    if path.endswith(".keras"):
        return KerasPredictor(path)
    raise FileNotFoundError(f"{path}: expected a SavedModel folder or a .keras file")
