"""One interface over a trained model, whatever form it was saved in.

Evaluation and `ffseg detect` take a path: an exported SavedModel folder (what
serving uses) or a `.keras` file (what training saves). `load_model` loads
either as what it is; `load_predictor` wraps either as a predictor whose
`predict` takes uint8 RGB face crops, cropped with the training detector and
box (`ffseg.signal.faces`), and returns numpy arrays:

- `score` [N]: probability that the face was manipulated;
- `localization_map` [N, 299, 299]: per-pixel manipulation probability
  (paper Sec. IV-D, M = 0.1 M1 + 0.2 M2 + 0.7 M3), over the crop; absent
  for a model without semantic maps (paper Table VII), which cannot
  localise (`predictor.localizes` is False);
- `class_probabilities` [N, C];
- `semantic_maps` (`.keras` only): [k, N, 299, 299], the model's k
  semantic maps (3, or those of the taps it has: `predictor.semantic_map_taps`,
  paper Table VIII) resized to 299, for the paper's Table VI gamma sweep.

Both predictors run the export's serving function (`export.serving_function`),
so a `.keras` file and its SavedModel preprocess alike: crops of any size are
first area-resized to the 299 px training crop (rounded to uint8, as a client
of the SavedModel would send them), then, inside the serving function, cast
and area-resized to the network's own input size (96 px for the `sample`
experiment, 299 for FF++).
"""

from __future__ import annotations

import os

import numpy as np

from ffseg.constants import CROP_SIZE

__all__ = ["SavedModelPredictor", "KerasPredictor", "load_model", "load_predictor"]


def _as_crops(crops, crop_size: int) -> np.ndarray:
    """uint8 crops of any size ([N, H, W, 3], or a list of [H, W, 3]) -> [N, crop, crop, 3]."""
    if isinstance(crops, (list, tuple)):
        items = [np.asarray(crop) for crop in crops]
    else:
        array = np.asarray(crops)
        if array.ndim != 4:
            raise ValueError(
                f"expected uint8 face crops [N, H, W, 3] (or a list of [H, W, 3]), "
                f"got {array.dtype} {array.shape}"
            )
        items = list(array)
    for number, crop in enumerate(items):
        if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3 or 0 in crop.shape:
            raise ValueError(
                f"expected uint8 RGB face crops [H, W, 3]; crop {number} is "
                f"{crop.dtype} {crop.shape}"
            )
    if not items:
        return np.zeros((0, crop_size, crop_size, 3), np.uint8)
    return np.stack([_resize_crop(crop, crop_size) for crop in items])


def _resize_crop(crop: np.ndarray, crop_size: int) -> np.ndarray:
    if crop.shape[:2] == (crop_size, crop_size):
        return crop
    import tensorflow as tf

    resized = tf.image.resize(tf.cast(crop, tf.float32), (crop_size, crop_size), method="area")
    return np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)


class _Predictor:
    """`predict` over a serving function; subclasses set `_serve`, `crop_size`, `info`.

    Attributes:
        localizes: whether `predict` returns a `localization_map` (False for
            a model built without semantic maps).
        has_semantic_maps: whether `predict` returns `semantic_maps`.
        semantic_map_taps: the taps of those maps, shallow to deep ("low",
            "mid", "high"); () when `has_semantic_maps` is False.
    """

    localizes = True
    has_semantic_maps = False
    semantic_map_taps = ()
    crop_size = CROP_SIZE

    def _serve(self, batch: np.ndarray) -> dict:
        raise NotImplementedError

    def predict(self, crops, batch_size: int = 32) -> dict:
        """Scores uint8 RGB face crops of any size, `batch_size` at a time.

        Args:
            crops: [N, H, W, 3] uint8, or a list of [H, W, 3] uint8 crops
                (sizes may differ); not 299 px ones are area-resized to 299.
            batch_size: crops per call of the model.

        Returns:
            numpy arrays by name (module docstring); `{}` for no crops.
        """
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        crops = _as_crops(crops, self.crop_size)
        parts = []
        for start in range(0, len(crops), int(batch_size)):
            out = self._serve(crops[start : start + int(batch_size)])
            parts.append({key: np.asarray(value) for key, value in out.items()})
        if not parts:
            return {}
        return {
            key: np.concatenate([part[key] for part in parts],
                                axis=1 if key == "semantic_maps" else 0)
            for key in parts[0]
        }


class SavedModelPredictor(_Predictor):
    """Runs the `serving_default` signature of an exported SavedModel.

    Args:
        path: the SavedModel folder (`export_saved_model`'s output).
    """

    def __init__(self, path: str):
        from ffseg.inference.export import ServedModel

        self.path = os.fspath(path)
        self._served = ServedModel(self.path)
        self.info = self._served.info
        self.crop_size = self._served.crop_size
        # The signature says it: a model without semantic maps serves no map.
        self.localizes = "localization_map" in self._served._signature.structured_outputs

    def _serve(self, batch):
        import tensorflow as tf

        out = self._served._signature(faces=tf.constant(batch))
        return {key: value.numpy() for key, value in out.items()}


class KerasPredictor(_Predictor):
    """Runs a `.keras` FFSeg (reloaded with safe_mode=True) through the export's serving function.

    Args:
        path: the `.keras` file (training's `model.keras`).
    """

    def __init__(self, path: str):
        from ffseg.inference.export import map_taps, serving_function

        self.path = os.fspath(path)
        self.model = _load_keras(self.path)
        self.image_size = int(self.model.input_shape[1])
        self.localizes = "localization_map" in self.model.output
        self.semantic_map_taps = map_taps(self.model)
        self.has_semantic_maps = bool(self.semantic_map_taps)
        self.crop_size = CROP_SIZE
        self.info = {"image_size": self.image_size, "crop_size": CROP_SIZE, **_run_facts(path)}
        self._function = serving_function(self.model, CROP_SIZE, semantic_maps=True)

    def _serve(self, batch):
        import tensorflow as tf

        return {key: value.numpy() for key, value in self._function(tf.constant(batch)).items()}


def _run_facts(path: str) -> dict:
    """The training dataset of a `.keras` file, from its run's `config.json` beside it."""
    import json

    config_path = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    try:
        with open(config_path) as handle:
            dataset = json.load(handle)["data"]["dataset"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    from ffseg.inference.model_card import SAMPLE_DATASET

    return {"dataset": dataset, "trained_on_sample": dataset == SAMPLE_DATASET}


def _load_keras(path: str):
    import keras

    import ffseg.models  # noqa: F401  (registers FFSeg and its layers with Keras)

    return keras.saving.load_model(path, safe_mode=True)


def _saved_model_folder(path: str) -> str | None:
    """The SavedModel folder ``path`` names: itself, or a training run's ``export/``."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    if os.path.exists(os.path.join(path, "export", "saved_model.pb")):
        return os.path.join(path, "export")
    return None


def _resolve(path) -> tuple[str, str]:
    """``(kind, path)``: "saved_model" or "keras"; a clear FileNotFoundError otherwise."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    if os.path.isdir(path):
        folder = _saved_model_folder(path)
        if folder is None:
            raise FileNotFoundError(
                f"{path}: folder holds no saved_model.pb (not an exported ffseg model)"
            )
        return "saved_model", folder
    if path.endswith(".keras"):
        return "keras", path
    raise FileNotFoundError(f"{path}: expected a SavedModel folder or a .keras file")


def load_model(path):
    """Loads a trained ffseg model, in either of the forms training writes.

    A `.keras` file comes back as the `FFSeg` Keras model (its classes are
    registered first; `safe_mode=True`): call it on float images of its
    input size, 0..255, for every output (semantic and noise maps too). A
    SavedModel folder (or a training run's folder holding `export/`) comes
    back as TensorFlow's loaded object, whose `signatures["serving_default"]`
    takes uint8 crops [N, 299, 299, 3] as `faces=`. For scores on crops of any
    size from either form, use `load_predictor`.

    Args:
        path: a `.keras` file, a SavedModel folder, or a run folder.

    Raises:
        FileNotFoundError: nothing there, or not an ffseg model file.

    Example:

    ```python
    import numpy as np
    import ffseg

    model = ffseg.load_model("runs/sample/model.keras")      # an FFSeg
    size = model.input_shape[1]
    outputs = model(np.zeros((1, size, size, 3), "float32"))
    print(sorted(outputs))   # ['class_probabilities', 'localization_map', ..., 'score', ...]

    served = ffseg.load_model("runs/sample/export")          # a SavedModel
    serve = served.signatures["serving_default"]
    print(serve(faces=np.zeros((1, 299, 299, 3), "uint8"))["score"].shape)   # (1,)
    ```
    """
    kind, path = _resolve(path)
    if kind == "keras":
        return _load_keras(path)
    import tensorflow as tf

    return tf.saved_model.load(path)


def load_predictor(path):
    """A SavedModel folder or a `.keras` file -> a predictor over uint8 face crops of any size.

    Args:
        path: a `.keras` file, a SavedModel folder, or a run folder holding
            `export/`.

    Returns:
        A `SavedModelPredictor` or a `KerasPredictor`: `predict(crops)` as
        in the module docstring; `path`, `crop_size` (299), `info` (the
        export's metadata), `localizes`, `has_semantic_maps` and
        `semantic_map_taps` as attributes.

    Raises:
        FileNotFoundError: nothing there, or not an ffseg model file.

    Example:

    ```python
    from skimage import data
    import ffseg
    from ffseg.signal import faces

    predictor = ffseg.load_predictor("runs/sample/export")   # or "runs/sample/model.keras"
    image = data.astronaut()
    box = faces.face_box(faces.FaceDetector().largest(image), image.shape)
    crop = faces.crop(image, box, 299)                        # the training crop
    outputs = predictor.predict(crop[None])
    print(outputs["score"].shape, outputs["localization_map"].shape)   # (1,) (1, 299, 299)
    print(predictor.predict(crop[None, ::2, ::2])["score"].shape)      # any size: (1,)
    ```
    """
    kind, path = _resolve(path)
    if kind == "keras":
        return KerasPredictor(path)
    return SavedModelPredictor(path)
