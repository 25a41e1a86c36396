"""Exporting a trained FFSeg as a TensorFlow SavedModel for serving.

The serving signature takes what `ffseg detect` and a TF Serving client have
in hand: uint8 RGB face crops, [N, 299, 299, 3], cropped with the training
detector and box (`ffseg.faces`). Casting, resizing to the network's input
size and Xception's normalisation all happen inside the graph, so clients
never re-implement preprocessing. Outputs are named tensors:

- `score`: [N] probability that the face was manipulated;
- `localization_map`: [N, 299, 299] manipulation probability per pixel
  (paper section IV-D: M = 0.1 M1 + 0.2 M2 + 0.7 M3), only for a model with
  semantic maps;
- `class_probabilities`: [N, C] (real + methods in 5-class mode; [1-p, p]
  in binary mode).

A model built without semantic maps (paper Table VII's "detection only" and
"+ noise maps" rows) cannot localise, so its signature has no
`localization_map` at all: a map of zeros would read as "pristine
everywhere", a claim the model never made. Its model card says
`"localizes": false`.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from ffseg.constants import CROP_SIZE
from ffseg.inference.model_card import model_card

SIGNATURE_NAME = "serving_default"
ENDPOINT_NAME = "detect"
METADATA_FILE = "ffseg.json"


def semantic_map_keys(model) -> tuple:
    """The output keys of the semantic maps `model` has, shallow to deep.

    FFSeg records them (`semantic_map_keys`); a model saved before the
    ablation switches has all three.
    """
    keys = getattr(model, "semantic_map_keys", None)
    if keys is None:
        keys = tuple(key for key in ("semantic_map_1", "semantic_map_2", "semantic_map_3")
                     if key in model.output)
    return tuple(keys)


def map_taps(model) -> tuple:
    """The backbone taps (paper Table VIII: "low", "mid", "high") of `model`'s semantic maps."""
    from ffseg.models.backbone import TAP_NAMES

    return tuple(TAP_NAMES[int(key.rsplit("_", 1)[1]) - 1] for key in semantic_map_keys(model))


def serving_function(model, crop_size: int = CROP_SIZE, *, semantic_maps: bool = False):
    """The tf.function served: uint8 crops in, named tensors out.

    Args:
        model: an FFSeg (any input size).
        crop_size: the side of the uint8 crops it takes (299: the training
            crop); they are area-resized to the model's input inside.
        semantic_maps: also return `semantic_maps`, [k, N, crop, crop], the
            k semantic maps the model has (paper Eq. 6's M1..M3; k = 3 for
            the full model, `map_taps(model)` names them) resized to the
            crop, for the paper's Table VI gamma sweep. The exported
            signature leaves them out; `KerasPredictor` asks for them.

    `localization_map` is served only when the model has one (module
    docstring).
    """
    image_size = int(model.input_shape[1])
    map_keys = semantic_map_keys(model)

    def resized_map(output):
        output = tf.cast(output, tf.float32)
        if image_size != crop_size:
            output = tf.image.resize(output, (crop_size, crop_size), method="bilinear")
        return output[..., 0]

    @tf.function(
        input_signature=[tf.TensorSpec([None, crop_size, crop_size, 3], tf.uint8, name="faces")]
    )
    def detect(faces):
        images = tf.cast(faces, tf.float32)
        if image_size != crop_size:
            images = tf.image.resize(images, (image_size, image_size), method="area")
        outputs = model(images, training=False)
        served = {
            "score": tf.cast(outputs["score"], tf.float32),
            "class_probabilities": tf.cast(outputs["class_probabilities"], tf.float32),
        }
        if "localization_map" in outputs:
            served["localization_map"] = tf.clip_by_value(
                resized_map(outputs["localization_map"]), 0.0, 1.0
            )
        if semantic_maps and map_keys:
            served["semantic_maps"] = tf.stack([resized_map(outputs[key]) for key in map_keys])
        return served

    return detect


def export_saved_model(model, path: str, *, crop_size: int = CROP_SIZE, metadata=None) -> str:
    """Writes `model` as a SavedModel whose `serving_default` serves uint8 crops.

    `metadata` (e.g. the class names and the training dataset) goes into the
    model card (`model_card`) written beside the graph as `ffseg.json`, so
    a server, and `ffseg detect`, know what they have. The card also says
    whether the model localises (`"localizes"`: it serves a
    `localization_map`) and at which taps its semantic maps are
    (`"semantic_map_taps"`, paper Tables VII and VIII).
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(ENDPOINT_NAME, serving_function(model, crop_size))
    archive.write_out(path, verbose=False)
    card = model_card(model, crop_size, metadata)
    card["localizes"] = "localization_map" in model.output
    card["semantic_map_taps"] = list(map_taps(model))
    with open(os.path.join(path, METADATA_FILE), "w") as f:
        json.dump(card, f, indent=2, sort_keys=True)
    return path


class ServedModel:
    """A loaded ffseg SavedModel: `predict(crops)` on uint8 [N, 299, 299, 3]."""

    def __init__(self, path: str):
        if not os.path.isdir(path) or not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise FileNotFoundError(f"{path}: not a SavedModel folder (no saved_model.pb)")
        self.path = path
        self._loaded = tf.saved_model.load(path)
        self._signature = self._loaded.signatures[SIGNATURE_NAME]
        info_path = os.path.join(path, METADATA_FILE)
        self.info = {}
        if os.path.exists(info_path):
            with open(info_path) as f:
                self.info = json.load(f)
        self.crop_size = int(self.info.get("crop_size", CROP_SIZE))

    def predict(self, crops, batch_size: int = 32) -> dict:
        """Runs the serving signature over `crops` in batches; numpy out."""
        import numpy as np

        crops = np.asarray(crops, dtype=np.uint8)
        if crops.ndim != 4 or crops.shape[1:] != (self.crop_size, self.crop_size, 3):
            raise ValueError(
                f"expected uint8 crops [N, {self.crop_size}, {self.crop_size}, 3], "
                f"got shape {crops.shape}"
            )
        parts = []
        for start in range(0, len(crops), batch_size):
            out = self._signature(faces=tf.constant(crops[start : start + batch_size]))
            parts.append({k: v.numpy() for k, v in out.items()})
        if not parts:
            return {}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
