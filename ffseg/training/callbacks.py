"""Training callbacks: checkpoints, epoch records, validation figures, map images.

- `BestCheckpoint`: the weights of the best epoch so far, across resumes.
- `EpochRecord`: every epoch's logs in a JSON file, kept across resumes.
- `ValidationFigures`: the validation EER and pixel AUC (paper section
  IV-C/IV-D) added to each epoch's logs, so TensorBoard and the records
  show them beside Keras' own validation metrics.
- `MapImages`: faces with their true and predicted semantic and noise maps
  in TensorBoard.
"""

from __future__ import annotations

import json
import math
import os

import keras
import numpy as np

from ffseg.evaluation.figures import LocalizationAccumulator, equal_error_rate


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the weights whenever `monitor` (default validation AUC) improves.

    Unlike `keras.callbacks.ModelCheckpoint`, the best value so far is kept in
    a JSON file beside the weights, so a resumed run (BackupAndRestore) or the
    second training step does not overwrite a better checkpoint with a worse
    one.

    Args:
        path: the `.weights.h5` file to write.
        monitor: the log to watch, e.g. "val_auc".
        mode: "max" or "min".
    """

    def __init__(self, path: str, monitor: str = "val_auc", mode: str = "max"):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.path = path
        self.monitor = monitor
        self.mode = mode
        self.record_path = path + ".json"

    def _best(self):
        if os.path.exists(self.record_path):
            with open(self.record_path) as f:
                return json.load(f)["value"]
        return None

    def _improves(self, value, best) -> bool:
        if best is None:
            return True
        return value > best if self.mode == "max" else value < best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        value = float(np.asarray(value).mean())
        if math.isnan(value) or not self._improves(value, self._best()):
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self.model.save_weights(self.path, overwrite=True)
        with open(self.record_path, "w") as f:
            json.dump({"monitor": self.monitor, "value": value, "epoch": epoch}, f)


class EpochRecord(keras.callbacks.Callback):
    """Keeps every epoch's logs in a JSON file: `{"<epoch>": {name: value}}`.

    The file is read and rewritten whole at each epoch end (through a
    temporary file, so a kill never leaves it half written). A run resumed
    after a kill keeps the epochs it finished before; an epoch trained again
    replaces only its own entry. Keras' `History` of a resumed `fit` holds
    only the epochs of that `fit`; this record holds them all.

    Args:
        path: the JSON file.
    """

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        records = read_epoch_records(self.path)
        # NaN (a figure with nothing to score yet) is written as null: the
        # file stays strict JSON.
        records[str(epoch)] = {
            name: _finite_or_none(float(np.asarray(value).mean()))
            for name, value in (logs or {}).items()
        }
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        temporary = self.path + ".tmp"
        with open(temporary, "w") as f:
            json.dump(records, f, indent=1, sort_keys=True)
        os.replace(temporary, self.path)


def _finite_or_none(value: float):
    return value if math.isfinite(value) else None


def read_epoch_records(path: str) -> dict:
    """An `EpochRecord` file's `{"<epoch>": logs}` ({} when there is none)."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def epoch_history(path: str) -> dict:
    """An `EpochRecord` file as a Keras-style history: `{name: [value per epoch]}`.

    Values recorded as null (NaN) come back as NaN.
    """
    records = read_epoch_records(path)
    history = {}
    for epoch in sorted(records, key=int):
        for name, value in records[epoch].items():
            history.setdefault(name, []).append(float("nan") if value is None else value)
    return history


class ValidationFigures(keras.callbacks.Callback):
    """Adds `val_eer` and `val_pixel_auc` to each epoch's logs.

    - `val_eer`: the equal error rate of the validation scores (paper
      section IV-C, Tables II-IV), interpolated on the ROC curve;
    - `val_pixel_auc`: the ROC AUC of the localization map's pixels against
      the ground-truth masks of all validation faces (section IV-D), from
      1,000-bin histograms.

    Both come from one prediction pass over the validation batches at each
    epoch end (Keras' validation computes neither). Place it before
    `TensorBoard`, `BestCheckpoint` and `EpochRecord` in the callback list:
    they see the logs it adds. A figure that cannot be computed (one class
    only, no mask) is NaN. A model without a localization map (built
    without semantic maps, paper Table VII) gets no `val_pixel_auc` at all:
    its records and TensorBoard show no localization figure rather than an
    empty one.

    Args:
        dataset: batched `(images, targets)` as yielded by
            `ffseg.data.pipeline.make_dataset`.
        steps: batches per epoch (None: the whole dataset).
    """

    def __init__(self, dataset, steps=None):
        super().__init__()
        self.dataset = dataset if steps is None else dataset.take(steps)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        labels, scores = [], []
        localizes = "localization_map" in self.model.output
        localization = LocalizationAccumulator(gammas=())
        for images, targets in self.dataset:
            outputs = self.model.predict_on_batch(images)
            count = len(images)
            # Under a multi-worker strategy every worker predicts its own copy
            # of the batch and the results come back concatenated.
            label = np.asarray(targets["label"]).reshape(-1)
            labels.append(label)
            scores.append(np.asarray(outputs["score"], np.float64).reshape(-1)[:count])
            if localizes and "mask" in targets:
                localization.update(
                    np.asarray(outputs["localization_map"], np.float32)[:count],
                    np.asarray(targets["mask"]),
                    label,
                )
        labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        scores = np.concatenate(scores) if scores else np.zeros(0)
        logs["val_eer"] = (
            equal_error_rate(labels, scores) if len(set(labels.tolist())) == 2 else float("nan")
        )
        if localizes:
            logs["val_pixel_auc"] = localization.pixel_auc()


class MapImages(keras.callbacks.Callback):
    """Writes a fixed validation batch's faces with true and predicted maps.

    Each epoch, TensorBoard's Images tab gets one strip per face: the face,
    the ground-truth mask, the predicted localization map (paper section
    IV-D), then the true noise residual and the predicted noise map of the
    shallowest tap that has one (Eq. 4-5; mid-grey is zero, both on the
    scale of the true residual), side by side, so localization and the
    noise branch can be watched as they train. Maps the model does not
    output (paper Tables VII and VIII remove heads) are left out, and the
    image's tag names the panels shown; a model with neither map (Table
    VII's "detection only") gets no images.

    Args:
        log_dir: where the image summaries go.
        batch: `(images, targets)` as yielded by `ffseg.data.pipeline.make_dataset`.
    """

    TAG = "face | true mask | predicted map | true noise | predicted noise"

    def __init__(self, log_dir: str, batch):
        super().__init__()
        self.log_dir = log_dir
        self.images = np.asarray(batch[0], np.float32)
        self.masks = np.asarray(batch[1]["mask"], np.float32)
        self.noise = np.asarray(batch[1]["noise"], np.float32) if "noise" in batch[1] else None
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        noise_keys = getattr(self.model, "noise_map_keys", ())
        if "localization_map" not in self.model.output and not (
            noise_keys and self.noise is not None
        ):
            return  # nothing but the face and its mask to show
        # Imported here: the other callbacks also serve the JAX backend
        # without TensorFlow (the trainer adds this one only where it imports).
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        outputs = self.model.predict_on_batch(self.images)
        count = len(self.images)
        # Under a multi-worker strategy every worker predicts its own copy of
        # the batch and the results come back concatenated: keep this one's.
        predicted = outputs.get("localization_map")
        # The shallowest present tap: with taps=(mid, high) that is mid's.
        predicted_noise = outputs.get(noise_keys[0]) if noise_keys else None
        size = self.images.shape[1:3]
        if predicted is not None:
            predicted = np.asarray(predicted, np.float32)[:count]
        if predicted_noise is not None and self.noise is not None:
            predicted_noise = tf.image.resize(
                np.asarray(predicted_noise, np.float32)[:count], size, method="bilinear"
            ).numpy()
        else:
            predicted_noise = None
        strips = map_strips(
            self.images,
            self.masks,
            predicted,
            true_noise=self.noise if predicted_noise is not None else None,
            predicted_noise=predicted_noise,
        )
        tag = " | ".join(
            name
            for name, shown in (
                ("face", True),
                ("true mask", True),
                ("predicted map", predicted is not None),
                ("true noise", predicted_noise is not None),
                ("predicted noise", predicted_noise is not None),
            )
            if shown
        )
        with self._writer.as_default():
            tf.summary.image(tag, strips, step=epoch, max_outputs=len(strips))
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _noise_panel(noise, scale):
    """Signed noise -> [0, 1] grey: 0.5 is zero, 0 and 1 are -/+ `scale`."""
    return np.clip(0.5 + noise / (2.0 * scale), 0.0, 1.0)


def map_strips(images, masks, predicted, true_noise=None, predicted_noise=None):
    """Faces and their maps side by side, one strip per face, in [0, 1].

    Args:
        images: [N, S, S, 3] pixels in [0, 255].
        masks: [N, S, S, 1] true masks.
        predicted: [N, S, S, 1] predicted localization maps, or None.
        true_noise, predicted_noise: [N, S, S, 1] noise residuals (optional,
            both or neither), drawn on the scale of each face's largest true
            residual so that the two are comparable.

    Returns:
        [N, S, k*S, 3] float32 with k = 2 + (predicted given) + 2 (noise given).
    """
    panels = [np.clip(images / 255.0, 0.0, 1.0), np.clip(masks, 0.0, 1.0)]
    if predicted is not None:
        panels.append(np.clip(predicted, 0.0, 1.0))
    if true_noise is not None and predicted_noise is not None:
        scale = np.abs(true_noise).reshape(len(true_noise), -1).max(axis=1)
        scale = np.where(scale > 0, scale, 1.0)[:, None, None, None]
        panels += [_noise_panel(true_noise, scale), _noise_panel(predicted_noise, scale)]
    panels = [p if p.shape[-1] == 3 else np.repeat(p, 3, axis=-1) for p in panels]
    return np.concatenate(panels, axis=2).astype(np.float32)
