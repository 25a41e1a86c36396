"""The per-example augmentation decisions and resizing, in NumPy, for both loaders.

`ffseg.data.pipeline` (tf.data) and `ffseg.data.arrays` (no TensorFlow) call
the same functions here, so a seed means the same flips on either path:

- `flip_decision(seed, position)`: whether the example at `position` of a
  training stream is mirrored (image, mask and noise label together, as in
  paper Sec. IV-B.1's horizontal flips). An integer hash of (seed, position)
  (SplitMix64's finaliser), so it depends on nothing but the two numbers:
  not on parallelism, nor on which loader asks.
- `stream_choice(seed, position)`: which stream (0 real, 1 fake) a balanced
  training stream draws its `position`-th example from (1:1 in expectation,
  paper Table I).
- `area_resize`: area averaging as `tf.image.resize(method="area")` does it,
  as two matrix products.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
# Keeps the stream choice independent of the flip of the same position.
_STREAM_SALT = np.uint64(0x5DEECE66D)


def _mix(seed, position, salt=np.uint64(0)):
    """SplitMix64 of (seed, position): uint64 array, uniform over all 64 bits."""
    with np.errstate(over="ignore"):
        state = np.asarray(seed, np.int64).astype(np.uint64) * _GOLDEN ^ salt
        z = state + (np.asarray(position, np.int64).astype(np.uint64) + np.uint64(1)) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX_1
        z = (z ^ (z >> np.uint64(27))) * _MIX_2
        return z ^ (z >> np.uint64(31))


def flip_decision(seed, position):
    """Whether the example at `position` of a stream seeded `seed` is mirrored.

    Args:
        seed: the run's data seed (`DataConfig.seed`).
        position: the example's 0-based position in the training stream
            (scalar or array).

    Returns:
        bool (array of the shape of `position`); True for half of positions.
    """
    return (_mix(seed, position) >> np.uint64(63)) == np.uint64(1)


def stream_choice(seed, position):
    """0 (real) or 1 (fake): the stream a balanced training stream draws from at `position`."""
    return (_mix(seed, position, _STREAM_SALT) >> np.uint64(63)).astype(np.int64)


def _area_matrix(input_size: int, output_size: int) -> np.ndarray:
    """`(output_size, input_size)`: output pixel i averages input [i*s, (i+1)*s), s = in/out."""
    scale = input_size / output_size
    starts = np.arange(output_size) * scale
    ends = starts + scale
    left = np.arange(input_size)
    overlap = np.minimum(ends[:, None], left[None, :] + 1) - np.maximum(starts[:, None], left)
    return (np.clip(overlap, 0, None) / scale).astype(np.float32)


def area_resize(image: np.ndarray, size: int) -> np.ndarray:
    """`(H, W, C)` -> float32 `(size, size, C)`, area-averaged (TensorFlow's "area")."""
    image = np.asarray(image, np.float32)
    rows = _area_matrix(image.shape[0], size)
    columns = _area_matrix(image.shape[1], size)
    resized = np.einsum("oh,hwc->owc", rows, image, optimize=True)
    return np.einsum("owc,pw->opc", resized, columns, optimize=True).astype(np.float32)


def to_model_arrays(example: dict, image_size: int, flip: bool = False):
    """One decoded example -> `(image, targets)` NumPy arrays, as `pipeline.to_model_inputs`.

    Args:
        example: `image` (S, S, 3) uint8, `mask` (S, S, 1) uint8 in {0, 1},
            `noise` (S, S, 1) float16 (pixel units), `label`, `method`.
        image_size: the model's input side; area averaging, masks
            thresholded back to {0, 1} at 0.5.
        flip: mirror image, mask and noise together.
    """
    image = np.asarray(example["image"], np.float32)
    mask = np.asarray(example["mask"], np.float32)
    noise = np.asarray(example["noise"], np.float32)
    if image_size != image.shape[0]:
        image = area_resize(image, image_size)
        mask = (area_resize(mask, image_size) >= 0.5).astype(np.float32)
        noise = area_resize(noise, image_size)
    if flip:
        image, mask, noise = (np.ascontiguousarray(a[:, ::-1]) for a in (image, mask, noise))
    targets = {
        "label": np.int32(example["label"]),
        "method": np.int32(example["method"]),
        "mask": mask,
        "noise": noise,
    }
    return image, targets
