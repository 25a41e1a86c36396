"""FFSeg loss components (paper Eq. 1-3 and 6).

Each component is a `keras.losses.Loss` with the default
"sum_over_batch_size" reduction, so Keras divides it by the number of
replicas under tf.distribute and the summed gradients come out right (a
term computed with a bare `ops.mean` would not be divided, and its gradient
would come out N times too large). Their `call` returns one value per sample.

Targets are given at the input resolution and resized to each predicted map
(Eq. 3: "the sizes of all ground truth maps have been aligned to the
corresponding predicted maps") with anti-aliased bilinear resizing, as the
authors' `skimage.transform.resize` does:

- masks become soft targets, the (triangle-weighted) fraction of manipulated
  pixels under each map cell; nearest-neighbour sampling would alias thin or
  boundary regions into all-or-nothing cells that flip with a one-pixel
  shift of the face crop, and "area" resizing exists on the TensorFlow
  backend only;
- noise residuals are low-pass filtered before subsampling, so a coarse map
  regresses the local mean residual rather than one aliased pixel.
"""

import keras
from keras import ops

# The noise target's unit -> the factor that turns the stored residual (0..255
# pixel units, as the dataset holds it) into that unit. The authors' loader
# reads the stored noise map as an 8-bit image with skimage, which yields
# floats in [0, 1]: "unit" divides by 255 so that lambda_1 = 0.1 of Eq. 1
# weighs the noise term as much as it did in their training; "pixel" keeps
# the stored values (what ffseg 0.1 trained on: a noise term ~255x larger).
# This is the one place that converts; everything else stays in pixel units.
NOISE_UNITS = {"unit": 1.0 / 255.0, "pixel": 1.0}


def noise_unit_scale(unit):
    """The factor from pixel units (0..255) to `unit` ("unit" or "pixel")."""
    try:
        return NOISE_UNITS[unit]
    except KeyError:
        raise ValueError(
            f"noise unit must be one of {sorted(NOISE_UNITS)}, got {unit!r}"
        ) from None


def resize_target(target, size):
    """Resizes a (B, H, W, C) target to `size` (h, w) with anti-aliasing.

    Anti-aliased bilinear resizing averages the source pixels under each
    output cell, so binary masks become soft targets in [0, 1]. Returns the
    target unchanged when it already has that size.
    """
    size = tuple(int(side) for side in size)
    if tuple(target.shape[1:3]) == size:
        return target
    return ops.image.resize(target, size, interpolation="bilinear", antialias=True)


def _as_list(maps):
    if isinstance(maps, dict):
        raise TypeError("Pass the per-scale maps as a list or tuple, shallow to deep.")
    return list(maps) if isinstance(maps, (list, tuple)) else [maps]


@keras.saving.register_keras_serializable(package="ffseg")
class MultiScaleMaskLoss(keras.losses.Loss):
    """Semantic map loss Lb (paper Eq. 3).

    For each predicted semantic map M_j (probabilities), the mean pixel-wise
    binary cross-entropy to the ground-truth mask resized to M_j; summed over
    the scales j, averaged over the batch.

    Call: `loss(mask, [semantic_map_1, semantic_map_2, ...])` with `mask`
    `(B, H, W, 1)` in [0, 1] and maps `(B, h_j, w_j, 1)`.
    """

    def __init__(self, name="mask_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        total = 0.0
        for semantic_map in _as_list(y_pred):
            target = resize_target(y_true, semantic_map.shape[1:3])
            pixel_loss = keras.losses.binary_crossentropy(target, semantic_map)
            total = total + ops.mean(pixel_loss, axis=(1, 2))
        return total


@keras.saving.register_keras_serializable(package="ffseg")
class MultiScaleNoiseLoss(keras.losses.Loss):
    """Noise map loss Ln (paper Eq. 6).

    For each predicted noise map n_j, the mean absolute difference to the
    noise residual resized to n_j, in the target's `unit`; summed over the
    scales j, averaged over the batch. The per-pixel mean (rather than the
    sum of Eq. 6) follows the authors' code and keeps the weight 0.1
    meaningful at any resolution.

    Args:
        unit: the unit the noise maps regress: "unit" (the stored residual
            / 255, the authors' targets) or "pixel" (0..255 units, as
            stored). The target is always given in pixel units.

    Call: `loss(noise, [noise_map_1, noise_map_2, ...])` with `noise` in
    pixel units and the maps in `unit`.
    """

    def __init__(
        self, unit="pixel", name="noise_loss", reduction="sum_over_batch_size", dtype=None
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.scale = noise_unit_scale(unit)
        self.unit = unit

    def call(self, y_true, y_pred):
        if self.scale != 1.0:
            y_true = y_true * self.scale
        total = 0.0
        for noise_map in _as_list(y_pred):
            target = resize_target(y_true, noise_map.shape[1:3])
            total = total + ops.mean(ops.abs(target - noise_map), axis=(1, 2, 3))
        return total

    def get_config(self):
        config = super().get_config()
        config["unit"] = self.unit
        return config


def classification_loss(num_classes):
    """Classification loss Lc (paper Eq. 2), from logits.

    Binary cross-entropy on the fake label for `num_classes=2` (one logit);
    sparse categorical cross-entropy on the method index (0 = real) for more.
    """
    if num_classes == 2:
        return keras.losses.BinaryCrossentropy(from_logits=True, name="classification_loss")
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, name="classification_loss"
    )
