"""FFSeg metrics.

Keras streaming metrics: stateful `keras.metrics.Metric`s that
`FFSeg.fit`/`evaluate` update batch by batch (keras.ops only, so they run on
every backend, and their sums add up across replicas under tf.distribute).
"""

import keras
from keras import ops

# === Keras streaming metrics ===============================================


@keras.saving.register_keras_serializable(package="ffseg")
class ManipulationIoU(keras.metrics.Metric):
    """Localization IoU (paper Eq. 7), accumulated over a stream of frames.

    The predicted map is thresholded (`map >= threshold`) and compared with
    the binary ground-truth mask (`mask >= 0.5`); intersections and unions
    are summed over all pixels of all weighted frames, and the result is
    total intersection / total union (0 while the union is empty).

    `update_state(mask, localization_map, sample_weight=None)`: `mask` and
    `localization_map` are `(B, H, W)` or `(B, H, W, 1)`; `sample_weight`
    is one weight per frame, `(B,)`. FFSeg passes weight 1 for manipulated
    frames and 0 for real ones, so the IoU is over manipulated frames only.

    Args:
        threshold: probability above which a pixel counts as manipulated.
    """

    def __init__(self, threshold=0.5, name="iou", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.threshold = float(threshold)
        self.intersection = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, name="intersection"
        )
        self.union = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, name="union"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.convert_to_tensor(y_true)
        y_pred = ops.convert_to_tensor(y_pred)
        batch_size = ops.shape(y_pred)[0]
        truth = ops.reshape(ops.cast(y_true >= 0.5, self.dtype), (batch_size, -1))
        predicted = ops.reshape(ops.cast(y_pred >= self.threshold, self.dtype), (batch_size, -1))
        intersection = ops.sum(truth * predicted, axis=1)
        union = ops.sum(ops.maximum(truth, predicted), axis=1)
        if sample_weight is not None:
            weight = ops.reshape(ops.cast(sample_weight, self.dtype), (-1,))
            intersection = intersection * weight
            union = union * weight
        self.intersection.assign_add(ops.sum(intersection))
        self.union.assign_add(ops.sum(union))

    def result(self):
        return ops.divide_no_nan(self.intersection, self.union)

    def reset_state(self):
        self.intersection.assign(0.0)
        self.union.assign(0.0)

    def get_config(self):
        config = super().get_config()
        config.update({"threshold": self.threshold})
        return config
