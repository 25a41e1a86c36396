"""The input pipeline without TensorFlow: an array_record TFDS build -> NumPy batches.

TFDS writes a build as `array_record` with

    tfds build tfds_ffpp/ffpp --config=c23 --manual_dir=... --file_format=array_record
    tfds.builder("ffpp/c23", file_format="array_record").download_and_prepare(...)

and reads it back by random access through `tfds.builder_from_directory(...)
.as_data_source(split)`, which decodes the PNG faces and masks and the
float16 noise labels with NumPy and needs no TensorFlow. This module turns
those examples into the same `(image, targets)` batches as
`ffseg.data.pipeline.make_dataset`, with the same per-example decisions
(`ffseg.data.augment`: flips and balanced stream choices from one integer
hash of (seed, position)), the same method filter and the same seeds; it
feeds the JAX backend (`as_py_dataset`: a `keras.utils.PyDataset`).

Order: evaluation batches keep the split's stored order, as tf.data does
(`training=False`), so both loaders give the same evaluation batches. A
training stream is a fixed function of the seed: each pass over a stream is
a seeded permutation of its examples (of each label's examples when
balanced; random access shuffles the whole split, where tf.data shuffles
within a buffer), so a resume that skips `n` examples continues exactly
where the run stopped.
"""

from __future__ import annotations

import os
import threading

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


def loader_options(data_config) -> dict:
    """`ArrayLoader` (and `make_dataset`) keyword arguments from an experiment's `DataConfig`.

    The one mapping from `ffseg.config` to both loaders (`ffseg.data.pipeline`
    re-exports it as `dataset_options`), so a field added to `DataConfig`
    reaches every dataset built from it; it imports no TensorFlow.
    """
    return dict(
        flip=data_config.flip,
        shuffle_buffer=data_config.shuffle_buffer,
        deterministic=data_config.deterministic,
        seed=data_config.seed,
        methods=data_config.methods,
        balance=data_config.balance,
        noise_sigma=data_config.noise_sigma,
        pseudo_fakes=data_config.pseudo_fakes,
        stored_fakes=data_config.stored_fakes,
    )


def dataset_methods(builder) -> tuple:
    """The FF++ methods whose fakes a built dataset holds, in FF++'s order.

    Read from `builder.info.metadata["methods"]` (or `["methods_absent"]`),
    which the builders record; builds of earlier versions record neither
    and hold all four.
    """
    metadata = builder.info.metadata or {}
    if metadata.get("methods") is not None:
        present = set(metadata["methods"])
    elif metadata.get("methods_absent") is not None:
        present = set(METHODS) - set(metadata["methods_absent"])
    else:
        present = set(METHODS)
    return tuple(method for method in METHODS if method in present)


def check_methods(builder, methods=None) -> None:
    """Stops a run whose dataset lacks a method it asks for, naming it.

    Call it before training (`methods` as in `DataConfig.methods`; None asks
    for all four): a model trained without a method it was meant to see
    would be reported as if it had. Both loaders use this one check
    (`ffseg.data.pipeline` re-exports it).

    Raises:
        FileError: one line naming the dataset folder, the absent method(s)
            and the methods it holds.
        ValueError: `methods` names no FF++ method.
    """
    requested = _requested_methods(methods)
    present = dataset_methods(builder)
    absent = [method for method in requested if method not in present]
    if absent:
        raise FileError(
            builder.data_dir,
            f"{builder.info.full_name} holds no {', '.join(absent)} fakes (it was built with "
            f"{', '.join(present) or 'no method'}): build it with the FF++ folders of "
            f"{', '.join(absent)}, or train on what it holds with "
            f"--set data.methods={','.join(present)}",
        )


def _version_key(name: str):
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return None  # incomplete.* folders, anything else


def find_build(dataset: str, data_dir=None) -> str:
    """The folder of the newest complete build of `dataset` ("ffpp/c23") in `data_dir`.

    Found by its layout, `<data_dir>/<name>/<config>/<version>/dataset_info.json`,
    without importing the dataset's builder (whose module needs TensorFlow).

    Raises:
        FileError: no complete build is there (one line saying how to make one).
    """
    root = data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.join(
        os.path.expanduser("~"), "tensorflow_datasets"
    )
    folder = os.path.join(str(root), *dataset.split("/"))
    versions = []
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            key = _version_key(name)
            if key is not None and os.path.exists(os.path.join(folder, name, "dataset_info.json")):
                versions.append((key, name))
    if not versions:
        raise FileError(
            folder,
            f"holds no build of {dataset}: the TensorFlow-free loader reads a prepared "
            f"array_record build (`tfds build tfds_ffpp/ffpp --config={dataset.split('/')[-1]} "
            f"--data_dir={root} --file_format=array_record`)",
        )
    return os.path.join(folder, max(versions)[1])


def open_build(build_dir):
    """The read-only TFDS builder of a prepared build folder (`.../ffpp/c23/1.2.0`).

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


def _build_sigma(builder):
    """The noise sigma the build's labels were made with, or None when it records none."""
    sigma = getattr(getattr(builder, "builder_config", None), "sigma", None)
    return None if sigma is None else float(sigma)


class ArrayLoader:
    """Batches of `(image, targets)` NumPy arrays from one split of an array_record build.

    Arguments and meaning as in `ffseg.data.pipeline.make_dataset`.
    `shuffle_buffer`, `deterministic` and `shard_by_files` are accepted and
    not needed: random access shuffles the whole split, and the order is
    always the seed's. `noise_sigma` other than the build's recomputes the
    noise label from the stored face (`ffseg.signal.noise`). Pseudo-fakes
    (`pseudo_fakes`, `stored_fakes=False`) are made on the tf.data path only
    and refused here. Iterating yields batches; `len()` is the number of
    batches of an evaluation pass (training streams are endless);
    `batch(i)` is the `i`-th batch, by random access.

    Example:

    ```python
    from ffseg.data.arrays import ArrayLoader, find_build, open_build

    builder = open_build(find_build("ffpp/c23", "tfds"))  # an array_record build
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
        noise_sigma: float | None = None,
        pseudo_fakes: float = 0.0,
        stored_fakes: bool = True,
        shuffle_buffer: int | None = None,
        deterministic: bool = True,
        shard_by_files: bool = True,
    ):
        del shuffle_buffer, deterministic, shard_by_files  # see the class docstring
        name = f"the {split} split of {builder.info.full_name}"
        if float(pseudo_fakes or 0.0) or not stored_fakes:
            raise FileError(
                builder.data_dir,
                f"{name}: the TensorFlow-free loader makes no pseudo-fakes "
                "(data.pseudo_fakes, data.stored_fakes=false): train with the TensorFlow backend",
            )
        self.source = builder.as_data_source(split)
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.training = bool(training)
        self.flip = bool(flip)
        self.seed = int(seed)
        self.skip = int(skip)
        self.balance = bool(balance) and self.training
        self.noise_sigma = None
        if noise_sigma is not None and float(noise_sigma) != _build_sigma(builder):
            self.noise_sigma = float(noise_sigma)
        count = len(self.source) if take is None else min(int(take), len(self.source))
        indices = np.arange(count)
        # `label` and `method` are read once per example, with the images left
        # encoded (a tenth of the time); the images are decoded only when batched.
        scan = self._label_source(builder, split)
        records = [scan[int(i)] for i in indices]
        labels = np.array([int(record["label"]) for record in records], np.int64)
        kinds = np.array([int(record["method"]) for record in records], np.int64)
        del records
        # By source index, for callers that follow `example_order` without decoding faces.
        self.labels, self.methods = labels, kinds
        if methods is not None:
            methods = _requested_methods(methods)
            kept = [0] + [CLASS_NAMES.index(method) for method in methods]
            keep = np.isin(kinds, kept)
            indices, labels = indices[keep], labels[keep]
            if not (labels != 0).any():
                raise FileError(builder.data_dir, f"{name} has no {', '.join(methods)} fakes")
        if not len(indices):
            raise FileError(builder.data_dir, f"{name} has no examples")
        self.indices = indices
        self.streams = [indices[labels == 0], indices[labels == 1]]
        if self.balance:
            for stream, what in zip(self.streams, ("real faces", "fakes")):
                if not len(stream):
                    raise FileError(
                        builder.data_dir,
                        f"{name} has no {what}: data.balance needs real and fake faces",
                    )
        self._order = None  # training: the stream's (position, index) pairs so far
        self._order_lock = threading.Lock()  # PyDataset workers may be threads

    @staticmethod
    def _label_source(builder, split):
        import tensorflow_datasets as tfds

        features = builder.info.features
        skipped = [name for name in ("image", "mask", "noise") if name in features]
        return builder.as_data_source(
            split, decoders={name: tfds.decode.SkipDecoding() for name in skipped}
        )

    def __len__(self):
        if self.training:
            raise TypeError("a training stream is endless")
        return -(-(len(self.indices) - min(self.skip, len(self.indices))) // self.batch_size)

    def _pass(self, stream: int, epoch: int, members: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([self.seed & (2**63 - 1), stream, epoch])
        return members[rng.permutation(len(members))]

    def example_order(self):
        """`(position, source index)` in stream order (endless when training), from `skip`.

        Evaluation positions are `None` (nothing is decided by position).
        """
        if not self.training:
            yield from ((None, int(i)) for i in self.indices[self.skip:])
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

    def _positions(self, start: int, stop: int):
        """Items `start:stop` of `example_order` (training: computed once, kept)."""
        if not self.training:
            return [(None, int(i)) for i in self.indices[self.skip:][start:stop]]
        with self._order_lock:
            if self._order is None:
                self._order = ([], self.example_order())
            done, order = self._order
            while len(done) < stop:
                done.append(next(order))
            return done[start:stop]

    def example(self, position, index: int):
        """The `(image, targets)` arrays of source example `index` at stream `position`."""
        flip = (
            self.training
            and self.flip
            and bool(augment.flip_decision(self.seed, position))
        )
        example = self.source[int(index)]
        if self.noise_sigma is not None:
            from ffseg.signal import noise

            face = np.asarray(example["image"])
            residual = noise.to_gray(noise.noise_residual(face, self.noise_sigma))
            example = dict(example, noise=residual[..., None].astype(np.float32))
        return augment.to_model_arrays(example, self.image_size, flip)

    def head(self, count: int):
        """The first `count` examples of the stream (from `skip`) as one batch."""
        pairs = self._positions(0, int(count))
        return _stack([self.example(position, index) for position, index in pairs])

    def batch(self, number: int):
        """Batch `number` (0-based, counted from `skip`): `(images, targets)`.

        Raises:
            IndexError: past the last batch of an evaluation pass.
        """
        start = int(number) * self.batch_size
        pairs = self._positions(start, start + self.batch_size)
        if not pairs:
            raise IndexError(f"batch {number} is past the end ({len(self)} batches)")
        return _stack([self.example(position, index) for position, index in pairs])

    def __iter__(self):
        number = 0
        while True:
            try:
                yield self.batch(number)
            except IndexError:
                return
            number += 1


def _stack(pairs):
    images = np.stack([image for image, _ in pairs])
    return images, {key: np.stack([t[key] for _, t in pairs]) for key in pairs[0][1]}


def as_py_dataset(loader: ArrayLoader, batches: int | None = None, **kwargs):
    """`loader` as a `keras.utils.PyDataset` for `fit`, `evaluate` and `predict`.

    Args:
        loader: an `ArrayLoader`.
        batches: serve only the first `batches` batches (None: a training
            stream is endless, an evaluation pass has `len(loader)`).
        **kwargs: `keras.utils.PyDataset`'s `workers`, `use_multiprocessing`,
            `max_queue_size` (batches are made in that many threads or
            processes; each is a pure function of its number).
    """
    import keras

    class _Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(**kwargs)
            self.loader = loader

        @property
        def num_batches(self):
            if loader.training:
                return batches
            return len(loader) if batches is None else min(batches, len(loader))

        def __getitem__(self, number):
            return loader.batch(number)

    return _Batches()
