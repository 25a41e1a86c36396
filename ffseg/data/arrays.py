"""The input pipeline without TensorFlow: an array_record TFDS build -> NumPy batches.

TFDS writes a build as `array_record` with

    tfds.builder("ffpp/c23", file_format="array_record").download_and_prepare(...)
    tfds build ... --file_format=array_record

and reads it back by random access through `tfds.builder_from_directory(...)
.as_data_source(split)`, which decodes the PNG faces and masks and the
float16 noise labels with NumPy and needs no TensorFlow. This module turns
those examples into the same `(image, targets)` batches as
`ffseg.data.pipeline.make_dataset`, with the same per-example decisions
(`ffseg.data.augment`: flips, balanced stream choice, area resizing), the
same method filter and the same seeds; it feeds the JAX backend
(`keras.utils.PyDataset`).

Order: evaluation batches keep the split's stored order, as tf.data does
(`training=False`). A training stream is a fixed function of the seed: each
pass is a seeded permutation of the kept examples (of each label's examples
when balanced), so a resume that skips `n` examples continues exactly where
the run stopped.
"""

from __future__ import annotations

import numpy as np

from ffseg.constants import CLASS_NAMES, METHODS
from ffseg.data import augment
from ffseg.errors import FileError


def _requested_methods(methods) -> tuple:
    if methods is None:
        return METHODS
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    unknown = [method for method in methods if method not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be among {METHODS}, at least one; got {methods}")
    return methods


def open_build(build_dir):
    """The read-only TFDS builder of a prepared build folder (`.../ffpp/c23/1.1.0`).

    Raises:
        FileError: the folder holds no array_record build.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(str(build_dir))
    file_format = getattr(builder.info, "file_format", None)
    if file_format is None or "array_record" not in str(file_format).lower():
        raise FileError(
            str(build_dir),
            f"is a {file_format} build; the TensorFlow-free loader reads array_record builds "
            "(build with file_format='array_record' or `tfds build --file_format=array_record`)",
        )
    return builder


class ArrayLoader:
    """Batches of `(image, targets)` NumPy arrays from one split of an array_record build.

    Arguments and meaning as in `ffseg.data.pipeline.make_dataset` (no
    `shuffle_buffer`: random access shuffles the whole split). Iterating
    yields batches; `len()` is the number of batches of an evaluation pass
    (training streams are endless).

    Example:

    ```python
    from ffseg.data.arrays import ArrayLoader, open_build

    builder = open_build("tfds/ffpp/c23/1.1.0")  # an array_record build
    train = ArrayLoader(builder, "train", image_size=96, batch_size=8, training=True,
                        balance=True, seed=0)
    images, targets = next(iter(train))
    images.shape, targets["mask"].shape  # (8, 96, 96, 3), (8, 96, 96, 1)
    ```
    """

    def __init__(
        self,
        builder,
        split: str,
        *,
        image_size: int,
        batch_size: int,
        training: bool,
        flip: bool = True,
        seed: int = 0,
        take: int | None = None,
        skip: int = 0,
        methods=None,
        balance: bool = False,
    ):
        self.source = builder.as_data_source(split)
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.training = bool(training)
        self.flip = bool(flip)
        self.seed = int(seed)
        self.skip = int(skip)
        self.balance = bool(balance) and self.training
        name = f"the {split} split of {builder.info.full_name}"
        count = len(self.source) if take is None else min(int(take), len(self.source))
        indices = np.arange(count)
        # `label` and `method` are read once per example; the images only when batched.
        labels = np.array([int(self.source[int(i)]["label"]) for i in indices], np.int64)
        kinds = np.array([int(self.source[int(i)]["method"]) for i in indices], np.int64)
        # By source index, for callers that follow `example_order` without decoding faces.
        self.labels, self.methods = labels, kinds
        if methods is not None:
            methods = _requested_methods(methods)
            kept = [0] + [CLASS_NAMES.index(method) for method in methods]
            keep = np.isin(kinds, kept)
            indices, labels = indices[keep], labels[keep]
            if not (labels != 0).any():
                raise FileError(builder.data_dir, f"{name} has no {', '.join(methods)} fakes")
        self.indices = indices
        self.streams = [indices[labels == 0], indices[labels == 1]]
        if self.balance:
            for stream, what in zip(self.streams, ("real faces", "fakes")):
                if not len(stream):
                    raise FileError(
                        builder.data_dir,
                        f"{name} has no {what}: data.balance needs real and fake faces",
                    )
        if not len(indices):
            raise FileError(builder.data_dir, f"{name} has no examples")

    def __len__(self):
        if self.training:
            raise TypeError("a training stream is endless")
        return -(-len(self.indices) // self.batch_size)

    def _pass(self, stream: int, epoch: int, members: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([self.seed, stream, epoch])
        return members[rng.permutation(len(members))]

    def example_order(self):
        """Source indices in stream order (endless when training), from position `skip`."""
        if not self.training:
            yield from (int(i) for i in self.indices[self.skip:])
            return
        # Stream 2 is the unbalanced stream of all kept examples.
        members = self.streams if self.balance else [None, None, self.indices]
        cursor = {stream: (0, 0, None) for stream in range(len(members))}

        def draw(stream):
            epoch, offset, order = cursor[stream]
            if order is None or offset == len(order):
                if order is not None:
                    epoch, offset = epoch + 1, 0
                order = self._pass(stream, epoch, members[stream])
            cursor[stream] = (epoch, offset + 1, order)
            return int(order[offset])

        position = 0
        while True:
            stream = int(augment.stream_choice(self.seed, position)) if self.balance else 2
            index = draw(stream)
            if position >= self.skip:
                yield position, index
            position += 1

    def __iter__(self):
        images, targets = [], []
        order = self.example_order()
        if not self.training:
            order = ((None, index) for index in order)
        for position, index in order:
            flip = (
                self.training
                and self.flip
                and bool(augment.flip_decision(self.seed, position))
            )
            image, target = augment.to_model_arrays(self.source[index], self.image_size, flip)
            images.append(image)
            targets.append(target)
            if len(images) == self.batch_size:
                yield _stack(images, targets)
                images, targets = [], []
        if images and not self.training:
            yield _stack(images, targets)


def _stack(images, targets):
    return np.stack(images), {key: np.stack([t[key] for t in targets]) for key in targets[0]}
