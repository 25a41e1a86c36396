"""Training callbacks: the best checkpoint and TensorBoard map images."""

from __future__ import annotations

import json
import math
import os

import keras
import numpy as np
import tensorflow as tf


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


class MapImages(keras.callbacks.Callback):
    """Writes a fixed validation batch's faces with true and predicted maps.

    Each epoch, TensorBoard's Images tab gets one strip per face: the face,
    the ground-truth mask and the predicted localization map (paper section
    IV-D), side by side, so localization can be watched as it trains.

    Args:
        log_dir: where the image summaries go.
        batch: `(images, targets)` as yielded by `ffseg.data.pipeline.make_dataset`.
    """

    def __init__(self, log_dir: str, batch):
        super().__init__()
        self.log_dir = log_dir
        self.images = np.asarray(batch[0], np.float32)
        self.masks = np.asarray(batch[1]["mask"], np.float32)
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        outputs = self.model.predict_on_batch(self.images)
        # Under a multi-worker strategy every worker predicts its own copy of
        # the batch and the results come back concatenated: keep this one's.
        predicted = np.asarray(outputs["localization_map"], np.float32)[: len(self.images)]
        strips = map_strips(self.images, self.masks, predicted)
        with self._writer.as_default():
            tf.summary.image(
                "face | true mask | predicted map", strips, step=epoch, max_outputs=len(strips)
            )
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def map_strips(images, masks, predicted):
    """[N, S, S, 3] pixels, [N, S, S, 1] masks and maps -> [N, S, 3S, 3] in [0, 1]."""
    faces = np.clip(images / 255.0, 0.0, 1.0)
    true = np.repeat(np.clip(masks, 0.0, 1.0), 3, axis=-1)
    pred = np.repeat(np.clip(predicted, 0.0, 1.0), 3, axis=-1)
    return np.concatenate([faces, true, pred], axis=2).astype(np.float32)
