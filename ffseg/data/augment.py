"""The per-example augmentation decisions and resizing, shared by both loaders.

`ffseg.data.pipeline` (tf.data) and `ffseg.data.arrays` (no TensorFlow)
evaluate the same decisions, so a seed means the same flips and the same
balanced draws on either path:

- `flip_decision(seed, position)`: whether the example at `position` of a
  training stream is mirrored (image, mask and noise label together, as in
  paper Sec. IV-B.1's horizontal flips);
- `stream_choice(seed, position)`: which stream (0 real, 1 fake) a balanced
  training stream draws its `position`-th example from (1:1 in
  expectation, paper Table I).

Both are one integer hash of (seed, position), `_mix`, written once over an
"ops" namespace: `NUMPY_OPS` evaluates it with NumPy int64 arithmetic,
`tensorflow_ops()` with TensorFlow int64 ops inside the tf.data graph (no
Python function in the graph: it stays serialisable, parallel and
deterministic). All arithmetic is modulo the prime 2^31 - 1, so every
intermediate product stays below 2^62 and both evaluations are exact and
identical. A decision depends on nothing but the two numbers: not on
parallelism, nor on which loader asks.

`area_resize` is area averaging as `tf.image.resize(method="area")` does it,
as two matrix products, for the NumPy loader.
"""

from __future__ import annotations

import types

import numpy as np

# A Mersenne prime: residues below 2^31, products of two below 2^62 < 2^63.
PRIME = 2**31 - 1
# Multipliers and offsets of the rounds (any residues in [1, PRIME) will do;
# these are fixed forever: changing one changes every run's flips).
_MULTIPLIERS = (48_271, 1_103_515_245, 69_621, 1_664_525)
_OFFSETS = (12_345, 1_013_904_223, 2_147_483_587, 362_436_069)
# Salts keep the stream choice independent of the flip of the same position.
FLIP_SALT = 0x2545F491
STREAM_SALT = 0x5DEECE66


def _numpy_int64(value):
    return np.asarray(value, np.int64)


NUMPY_OPS = types.SimpleNamespace(
    int64=_numpy_int64, mod=np.mod, floordiv=np.floor_divide, less=np.less
)


def tensorflow_ops():
    """The ops namespace of `_mix` in TensorFlow (imported only when asked for)."""
    import tensorflow as tf

    return types.SimpleNamespace(
        int64=lambda value: tf.cast(value, tf.int64),
        mod=tf.math.floormod,
        floordiv=tf.math.floordiv,
        less=tf.math.less,
    )


def _mix(ops, seed, position, salt: int):
    """An integer hash of (seed, position) in [0, PRIME), evaluated with `ops`.

    Residues are absorbed one at a time (the low and high parts of the seed
    and of the position, so values beyond 2^31 still count), each followed
    by an affine step and a squaring: squaring mod a prime is what makes the
    hash non-linear, so neighbouring positions give unrelated values.
    Floor modulo (`ops.mod`) keeps every value non-negative on both sides.
    """
    seed, position = ops.int64(seed), ops.int64(position)
    state = ops.int64(salt)
    parts = (
        ops.mod(seed, PRIME),
        ops.mod(ops.floordiv(seed, PRIME), PRIME),
        ops.mod(position, PRIME),
        ops.mod(ops.floordiv(position, PRIME), PRIME),
    )
    for part, multiplier, offset in zip(parts, _MULTIPLIERS, _OFFSETS):
        state = ops.mod(state * multiplier + part + offset, PRIME)
        state = ops.mod(state * state + offset, PRIME)
    for multiplier, offset in zip(_MULTIPLIERS, _OFFSETS):
        state = ops.mod(state * state + offset, PRIME)
        state = ops.mod(state * multiplier + offset, PRIME)
    return state


def flip_decision(seed, position, ops=NUMPY_OPS):
    """Whether the example at `position` of a stream seeded `seed` is mirrored.

    Args:
        seed: the run's data seed (`DataConfig.seed`).
        position: the example's 0-based position in the training stream
            (scalar or array).
        ops: `NUMPY_OPS` (default) or `tensorflow_ops()`.

    Returns:
        bool (array or tensor of the shape of `position`); True for half of
        the positions.

    Example:

    >>> flip_decision(0, np.arange(8)).tolist()  # doctest: +SKIP
    """
    return ops.less(_mix(ops, seed, position, FLIP_SALT), PRIME // 2 + 1)


def stream_choice(seed, position, ops=NUMPY_OPS):
    """0 (real) or 1 (fake): the stream a balanced training stream draws from at `position`.

    Arguments as in `flip_decision`; returns int64.
    """
    return ops.floordiv(_mix(ops, seed, position, STREAM_SALT) * 2, PRIME)


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
    image, mask, noise = (np.asarray(example[name]) for name in ("image", "mask", "noise"))
    if flip and image_size == image.shape[0]:
        # Mirrored in the stored bytes (a quarter of the float32 copy); after
        # resizing otherwise, as tf.data does (the same float sums).
        image, mask, noise = (np.ascontiguousarray(a[:, ::-1]) for a in (image, mask, noise))
        flip = False
    image, mask, noise = (np.asarray(a, np.float32) for a in (image, mask, noise))
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
