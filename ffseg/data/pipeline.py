"""The input pipeline: TFDS FF++ examples -> joint augmentation -> batches.

`tfds.load("ffpp/<config>")` yields 299x299 face crops with their mask and
noise label (see `tfds_ffpp/ffpp`). This module turns them into
`(image, targets)` pairs for `FFSeg`:

- `image`: float32 (S, S, 3) RGB pixels in [0, 255]; the model normalises.
- `targets`: `label` (int32, 0 real / 1 fake), `method` (int32, 0 real, 1..4
  the FF++ methods), `mask` (float32 (S, S, 1) in {0, 1}) and `noise`
  (float32 (S, S, 1), the wavelet noise residual in pixel units).

Augmentation flips the image, its mask and its noise label together (the
authors' code flipped only the image, leaving the targets mirrored).

The paper's protocol (Sec. IV-A/B) on top of the stored examples:

- `balance`: training draws from a real and a fake stream with equal
  probability, so batches are 1:1 in expectation whatever the stored ratio
  (the FF++ builds hold one real video per four fakes; paper Table I is 1:1);
- `methods`: keep the real faces and the fakes of the listed methods only
  (paper Table IV trains on real + Deepfakes; Table III one method a model);
  `check_methods` stops a run whose dataset lacks a method it asks for;
- `noise_sigma`: a noise label at another sigma than the build's is computed
  from the stored face in the parallel map (paper Fig. 4's sweep).

Pseudo-fakes (`pseudo_fakes`, a fraction of the training stream): real faces
turned, in the parallel map, into self-blended pseudo-fakes
(`ffseg.signal.blend.self_blend`: the face blended with an altered copy of
itself under a landmark-hull mask), with the blend mask as their mask and
the noise label of the blended face; label 1 (fake), method id
`PSEUDO_FAKE_METHOD` (5). `stored_fakes=False` drops the dataset's fakes, so
a model learns from real faces alone. Each pseudo-fake's seed comes from
`seed` and the example's position in the stream: under `deterministic` the
same run makes the same pseudo-fakes, and a resumed run the ones it would
have made.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np
import tensorflow as tf

from ffseg.constants import CLASS_NAMES, PSEUDO_FAKE_METHOD
from ffseg.constants import CROP_SIZE as STORED_SIZE
from ffseg.data.arrays import (  # noqa: F401  (one definition for both loaders)
    _requested_methods,
    check_methods,
    dataset_methods,
)
from ffseg.data.arrays import loader_options as dataset_options  # noqa: F401
from ffseg.data.augment import flip_decision, stream_choice, tensorflow_ops
from ffseg.errors import FileError


def ensure_built(dataset: str, data_dir=None, manual_dir=None):
    """Returns the TFDS builder for `dataset`, preparing it first if needed.

    `ffpp/sample` prepares itself from photos shipped with installed packages;
    the FF++ configs need `manual_dir` (the FF++ root) the first time, and
    `celeb_df` the Celeb-DF (v2) root.
    """
    import tensorflow_datasets as tfds

    import tfds_ffpp.celeb_df  # noqa: F401  (registers `celeb_df`)
    import tfds_ffpp.ffpp  # noqa: F401  (registers `ffpp`)

    builder = tfds.builder(dataset, data_dir=data_dir)
    if not builder.is_prepared():
        earlier = earlier_build(builder)
        if earlier is not None:
            notes = getattr(type(builder), "RELEASE_NOTES", {}).get(str(builder.version), "")
            logging.warning(
                "%s %s is not built in %s; using the build of version %s there. `tfds build` "
                "makes version %s%s",
                dataset, builder.version, os.path.dirname(builder.data_dir), earlier.version,
                builder.version, f", which adds: {notes}" if notes else "",
            )
            return earlier
        logging.info("Preparing %s in %s", dataset, builder.data_dir)
        download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
        builder.download_and_prepare(download_config=download_config)
    return builder


def earlier_build(builder):
    """The newest complete build of an earlier version of `builder`'s dataset, or None.

    A dataset built by an earlier ffseg (ffpp 1.1.0, before `landmarks`)
    keeps serving every experiment that does not need what was added: it is
    read from its own folder with the features it was written with
    (`tfds.builder_from_directory`), never rebuilt behind the user's back.
    """
    import tensorflow_datasets as tfds
    from etils import epath

    config_dir = epath.Path(builder.data_dir).parent
    if not config_dir.is_dir():
        return None
    versions = []
    for folder in config_dir.iterdir():
        try:
            version = tfds.core.Version(folder.name)
        except ValueError:
            continue  # incomplete.* folders, anything else
        if version < builder.version and (folder / "dataset_info.json").exists():
            versions.append((version, folder))
    if not versions:
        return None
    return tfds.builder_from_directory(str(max(versions)[1]))


def _build_sigma(builder):
    config = getattr(builder, "builder_config", None)
    sigma = getattr(config, "sigma", None)
    if sigma is None and config is not None:
        # A build of an earlier version read from its folder records no
        # sigma; its config's sigma is today's config's (it never changed).
        import tensorflow_datasets as tfds

        try:
            sigma = tfds.builder_cls(builder.info.name).builder_configs[config.name].sigma
        except (KeyError, AttributeError, tfds.core.registered.DatasetNotFoundError):
            sigma = None
    if sigma is None:
        raise FileError(
            builder.data_dir,
            f"{builder.info.full_name} records no noise sigma in its builder config, "
            "so data.noise_sigma cannot be compared with the stored labels'",
        )
    return float(sigma)


def noise_label(image, sigma):
    """The noise label of a stored face at `sigma`, as the builders compute it.

    Paper Eq. 4-5: the wavelet Wiener residual of each colour channel
    (`ffseg.signal.noise.noise_residual`), PRNU-weighted to one channel
    (`to_gray`), in 0..255 units.

    Args:
        image: (H, W, 3) uint8 RGB face crop.
        sigma: the denoiser's noise standard deviation, 0..255 units.

    Returns:
        (H, W, 1) float32.
    """
    from ffseg.signal import noise

    residual = noise.to_gray(noise.noise_residual(np.asarray(image), float(sigma)))
    return residual[..., None].astype(np.float32, copy=False)


def _recomputed_noise(image, sigma: float):
    """`noise_label` inside the tf.data graph (its NumPy/OpenCV in a py function)."""
    label = tf.numpy_function(
        lambda face: noise_label(face, sigma), [image], tf.float32, stateful=False
    )
    return tf.ensure_shape(label, [STORED_SIZE, STORED_SIZE, 1])


def _resize(example, image_size: int):
    """Brings the stored 299 px example to the model's input size.

    Area averaging keeps the mean of the noise label and gives soft mask
    fractions, which are thresholded back to {0, 1}.
    """
    image = tf.cast(example["image"], tf.float32)
    mask = tf.cast(example["mask"], tf.float32)
    noise = tf.cast(example["noise"], tf.float32)
    if image_size != STORED_SIZE:
        size = (image_size, image_size)
        image = tf.image.resize(image, size, method="area")
        mask = tf.cast(tf.image.resize(mask, size, method="area") >= 0.5, tf.float32)
        noise = tf.image.resize(noise, size, method="area")
    return image, mask, noise


def _flip(image, mask, noise, seed):
    # `seed` is (data seed, stream position). The decision is
    # `augment.flip_decision` in TensorFlow int64 ops (no Python function in
    # the graph), the same integers as the TensorFlow-free loader computes.
    flip = flip_decision(seed[0], seed[1], ops=tensorflow_ops())
    flip_all = lambda t: tf.cond(flip, lambda: tf.reverse(t, axis=[1]), lambda: t)  # noqa: E731
    return flip_all(image), flip_all(mask), flip_all(noise)


def to_model_inputs(example, image_size: int, *, flip: bool = False, seed=None):
    """One TFDS example -> `(image, targets)`; `seed` is (data seed, stream position)."""
    image, mask, noise = _resize(example, image_size)
    if flip:
        image, mask, noise = _flip(image, mask, noise, seed)
    targets = {
        "label": tf.cast(example["label"], tf.int32),
        "method": tf.cast(example["method"], tf.int32),
        "mask": mask,
        "noise": noise,
    }
    return image, targets


def _is_empty(ds) -> bool:
    return not any(True for _ in ds.take(1))


def example_stream(
    builder,
    split: str,
    *,
    training: bool,
    shuffle_buffer: int = 2048,
    deterministic: bool = False,
    seed: int = 0,
    take: int | None = None,
    methods=None,
    balance: bool = False,
    pseudo_fakes: float = 0.0,
    stored_fakes: bool = True,
) -> tf.data.Dataset:
    """The encoded examples that `make_dataset` decodes, in its order.

    Images, masks and noise labels stay encoded (PNG and float16 bytes,
    ~0.3 MB an example, not ~0.7 MB decoded), so shuffle buffers, the two
    balanced streams and a resume's skip cost little; `label`, `method`,
    `video` and `frame` are plain tensors. With `pseudo_fakes`, training
    examples carry a boolean `pseudo`: turn this real face into a
    pseudo-fake. Arguments as in `make_dataset`.
    """
    import tensorflow_datasets as tfds

    pseudo_fakes = check_pseudo_fakes(pseudo_fakes, stored_fakes)
    if methods is not None and stored_fakes:
        methods = _requested_methods(methods)
        check_methods(builder, methods)  # before reading anything
    read_config = None
    if deterministic:
        read_config = tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=1)
    features = builder.info.features
    encoded = [name for name in ("image", "mask", "noise") if name in features]
    ds = builder.as_dataset(
        split=split,
        shuffle_files=training,
        read_config=read_config,
        decoders={name: tfds.decode.SkipDecoding() for name in encoded},
    )
    if take is not None:
        ds = ds.take(take)
    name = f"the {split} split of {builder.info.full_name}"
    if not stored_fakes:
        ds = ds.filter(lambda e: tf.equal(tf.cast(e["label"], tf.int64), 0))
        if _is_empty(ds):
            raise FileError(builder.data_dir, f"{name} has no real faces to make pseudo-fakes of")
    elif methods is not None:
        # Real faces (method 0) and the listed methods' fakes.
        kept = tf.constant([0] + [CLASS_NAMES.index(method) for method in methods], tf.int64)
        ds = ds.filter(lambda e: tf.reduce_any(tf.equal(tf.cast(e["method"], tf.int64), kept)))
        if _is_empty(ds.filter(lambda e: tf.not_equal(e["label"], 0))):
            raise FileError(builder.data_dir, f"{name} has no {', '.join(methods)} fakes")
    if not training:
        return ds
    shuffle_seed = seed if deterministic else None
    if pseudo_fakes:
        return _with_pseudo_fakes(
            ds, name, builder.data_dir, pseudo_fakes, shuffle_buffer, shuffle_seed,
            balance=balance and stored_fakes,
        )
    if not balance:
        return ds.shuffle(shuffle_buffer, seed=shuffle_seed).repeat()
    # Draws from a real and a fake stream: 1:1 in expectation, whatever the
    # stored ratio. Each stream shuffles and repeats on its own (the buffers
    # share the memory one unbalanced stream would hold); the stream of the
    # example at each position is `augment.stream_choice(seed, position)`,
    # in TensorFlow int64 ops, the choice the TensorFlow-free loader makes,
    # so the stream is deterministic and a resume can skip into it.
    streams = _label_streams(ds, name, builder.data_dir, shuffle_buffer, shuffle_seed)
    choices = tf.data.Dataset.counter().map(
        lambda position: stream_choice(seed, position, ops=tensorflow_ops())
    )
    return tf.data.Dataset.choose_from_datasets(streams, choices, stop_on_empty_dataset=True)


def _label_streams(ds, name, data_dir, shuffle_buffer, shuffle_seed, count: int = 2):
    """Shuffled, repeated streams of the real faces and the fakes (`data.balance`)."""
    streams = []
    for label, what in ((0, "real faces"), (1, "fakes")):
        stream = ds.filter(lambda e, label=label: tf.equal(tf.cast(e["label"], tf.int64), label))
        if _is_empty(stream):
            raise FileError(
                data_dir, f"{name} has no {what}: data.balance needs real and fake faces"
            )
        stream = stream.shuffle(
            max(1, shuffle_buffer // count),
            seed=None if shuffle_seed is None else shuffle_seed + label,
        )
        streams.append(stream.repeat())
    return streams


# The pseudo-fake stream's shuffle seed, after the real (+0) and fake (+1) streams'.
_PSEUDO_STREAM = 2
# Offset of the seeds that choose validation pseudo-fakes.
_PSEUDO_VALIDATION = 104_729


def check_pseudo_fakes(pseudo_fakes, stored_fakes: bool = True) -> float:
    """`pseudo_fakes` as a float in [0, 1); real-only training needs some."""
    fraction = float(pseudo_fakes or 0.0)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"pseudo_fakes must be a fraction in [0, 1), got {pseudo_fakes}")
    if not stored_fakes and fraction == 0.0:
        raise ValueError(
            "stored_fakes=False leaves real faces only: give pseudo_fakes a fraction in (0, 1)"
        )
    return fraction


def _with_pseudo_fakes(ds, name, data_dir, fraction, shuffle_buffer, shuffle_seed, *, balance):
    """The training stream with `fraction` of its examples flagged to become pseudo-fakes.

    A third stream of the real faces, flagged `pseudo`, is drawn with
    probability `fraction`; the rest is drawn as without pseudo-fakes (1:1
    real:fake under `balance`).
    """
    def flag(value):
        return lambda e: dict(e, pseudo=tf.constant(value))

    if balance:
        streams = _label_streams(ds, name, data_dir, shuffle_buffer, shuffle_seed, count=3)
        weights = [(1.0 - fraction) / 2, (1.0 - fraction) / 2]
    else:
        streams = [ds.shuffle(max(1, shuffle_buffer // 2), seed=shuffle_seed).repeat()]
        weights = [1.0 - fraction]
    streams = [stream.map(flag(False)) for stream in streams]
    real = ds.filter(lambda e: tf.equal(tf.cast(e["label"], tf.int64), 0))
    if _is_empty(real):
        raise FileError(data_dir, f"{name} has no real faces to make pseudo-fakes of")
    real = real.shuffle(
        max(1, shuffle_buffer // (3 if balance else 2)),
        seed=None if shuffle_seed is None else shuffle_seed + _PSEUDO_STREAM,
    )
    streams.append(real.repeat().map(flag(True)))
    weights.append(fraction)
    return tf.data.Dataset.sample_from_datasets(
        streams, weights=weights, seed=shuffle_seed, stop_on_empty_dataset=True
    )


_landmark_tools = None
# tf.data's parallel map calls from several threads; dlib's detectors are
# not safe to share between threads (seen: different points on one face).
_landmark_lock = threading.Lock()


def _crop_landmarks(image):
    # One face and one landmark detector per process (the dlib models load once).
    global _landmark_tools
    from ffseg.signal import faces, landmarks

    with _landmark_lock:
        if _landmark_tools is None:
            _landmark_tools = faces.FaceDetector(), landmarks.LandmarkDetector()
        face_detector, landmark_detector = _landmark_tools
        return landmarks.crop_landmarks(
            image, face_detector=face_detector, landmark_detector=landmark_detector
        )[0]


def pseudo_fake_seed(seed: int, index: int) -> int:
    """The generator's seed of the example at `index` of a stream seeded `seed`."""
    state = np.random.SeedSequence([int(seed) & (2**63 - 1), int(index)]).generate_state(2)
    return int(state[0]) << 32 | int(state[1])


def pseudo_fake(image, points, seed: int, index: int, sigma: float):
    """A self-blended pseudo-fake of a stored real face, as the input pipeline makes it.

    Args:
        image: (S, S, 3) uint8 stored face crop.
        points: its (68, 2) landmarks in crop coordinates, or None to find
            them on the crop (`crop_landmarks`; builds before ffpp 1.2.0
            store none).
        seed, index: the stream's seed and the example's position in it.
        sigma: the noise label's sigma, 0..255 units.

    Returns:
        `(image, mask, noise)`: (S, S, 3) uint8, (S, S, 1) float32 in {0, 1}
        (the blend mask at 0.5) and (S, S, 1) float32.
    """
    from ffseg.signal import blend

    image = np.asarray(image)
    if points is None:
        points = _crop_landmarks(image)
    fake = blend.self_blend(image, points, pseudo_fake_seed(seed, index), sigma=float(sigma))
    mask = (fake.mask >= 0.5).astype(np.float32)[..., None]
    return fake.image, mask, fake.noise[..., None].astype(np.float32, copy=False)


def pseudo_fake_grid(builder, split: str, *, rows: int = 8, seed: int = 0, sigma=None,
                     cell: int = 160) -> np.ndarray:
    """What a pseudo-fake run learns from: a grid face | pseudo-fake | mask | noise label.

    Rows are made from the first real faces of `split` by the generator the
    input pipeline runs (`ffseg.signal.blend.self_blend`), with the build's
    noise sigma unless `sigma` is given; an RGB uint8 image
    (`ffseg.signal.blend.grid_image`).
    """
    import tensorflow_datasets as tfds

    from ffseg.signal import blend

    sigma = _build_sigma(builder) if sigma is None else float(sigma)
    ds = builder.as_dataset(split=split).filter(
        lambda e: tf.equal(tf.cast(e["label"], tf.int64), 0)
    )
    crops = []
    for example in tfds.as_numpy(ds.take(rows)):
        points = example.get("landmarks")
        if points is None:
            points = _crop_landmarks(example["image"])
        caption = f"{example['video'].decode()} frame {int(example['frame'])}"
        crops.append(blend.FaceCrop(example["image"], np.asarray(points, np.float32), caption))
    if not crops:
        raise FileError(builder.data_dir, f"the {split} split of {builder.info.full_name} "
                        "has no real faces to make pseudo-fakes of")
    return blend.grid_image(crops, rows=rows, seed=seed, sigma=sigma, cell=cell)


def _pseudo_fake_in_graph(example, has_landmarks, seed, index, sigma):
    """`pseudo_fake` inside the tf.data graph (its NumPy/OpenCV in a py function)."""
    points = example["landmarks"] if has_landmarks else tf.zeros([68, 2], tf.float32)

    def make(image, points, seed, index):
        return pseudo_fake(image, points if has_landmarks else None, seed, index, sigma)

    image, mask, noise = tf.numpy_function(
        make, [example["image"], points, seed, index], [tf.uint8, tf.float32, tf.float32],
        stateful=False,
    )
    image = tf.ensure_shape(image, [STORED_SIZE, STORED_SIZE, 3])
    mask = tf.ensure_shape(mask, [STORED_SIZE, STORED_SIZE, 1])
    noise = tf.ensure_shape(noise, [STORED_SIZE, STORED_SIZE, 1])
    fake = tf.constant(1, tf.int64)
    return image, mask, noise, fake, tf.constant(PSEUDO_FAKE_METHOD, tf.int64)


def make_dataset(
    builder,
    split: str,
    *,
    image_size: int,
    batch_size: int,
    training: bool,
    flip: bool = True,
    shuffle_buffer: int = 2048,
    deterministic: bool = False,
    seed: int = 0,
    with_metadata: bool = False,
    take: int | None = None,
    skip: int = 0,
    shard_by_files: bool = True,
    methods=None,
    balance: bool = False,
    noise_sigma: float | None = None,
    pseudo_fakes: float = 0.0,
    stored_fakes: bool = True,
) -> tf.data.Dataset:
    """Batched `(image, targets)` pairs from one split of a prepared builder.

    Args:
        builder: a prepared TFDS builder (see `ensure_built`).
        split: TFDS split, e.g. "train" or "validation[:10%]".
        image_size: the model's input size.
        batch_size: the global batch size (MirroredStrategy splits it).
        training: shuffle, augment, repeat and drop the partial last batch
            (a partial batch splits unevenly across replicas).
        deterministic: fixed file order, shuffle, balancing draws and flips
            from `seed`.
        with_metadata: also yield a dict of `video` and `frame` (evaluation).
        take: use only the first `take` examples of the split.
        skip: examples of the (shuffled, balanced, repeated) stream to pass
            over first, to resume a training run where it stopped.
        shard_by_files: under multi-worker training, give each worker its
            own files (AUTO); False shards by example (DATA), needed when the
            split has fewer files than workers.
        methods: FF++ method names whose fakes are kept, with all real
            faces (None: every example). Fails, naming them, on methods the
            dataset lacks (`check_methods`).
        balance: training only: draw real and fake examples with equal
            probability (batches 1:1 in expectation).
        noise_sigma: sigma of the noise label (paper Eq. 5); None or the
            build's sigma use the stored label, another value recomputes it
            from the stored face (paper Fig. 4).
        pseudo_fakes: fraction of the training stream made of self-blended
            pseudo-fakes of real faces (module docstring); in a validation
            split, the fraction of its real faces turned into pseudo-fakes.
            Their method id is `PSEUDO_FAKE_METHOD`.
        stored_fakes: False: the dataset's fakes are left out (real faces
            and pseudo-fakes only).

    Example:

    ```python
    from ffseg.data.pipeline import ensure_built, make_dataset

    builder = ensure_built("ffpp/sample")  # builds itself on first use
    train = make_dataset(builder, "train", image_size=96, batch_size=8, training=True,
                         balance=True, deterministic=True)
    images, targets = next(iter(train))
    images.shape, targets["noise"].shape  # (8, 96, 96, 3), (8, 96, 96, 1)

    # Table IV's training set, with noise labels at sigma 10 (Fig. 4).
    deepfakes = make_dataset(builder, "train", image_size=96, batch_size=8, training=True,
                             methods=["Deepfakes"], noise_sigma=10.0)
    ```
    """
    ds = example_stream(
        builder,
        split,
        training=training,
        shuffle_buffer=shuffle_buffer,
        deterministic=deterministic,
        seed=seed,
        take=take,
        methods=methods,
        balance=balance,
        pseudo_fakes=pseudo_fakes,
        stored_fakes=stored_fakes,
    )
    features = builder.info.features
    encoded = [name for name in ("image", "mask", "noise") if name in features]
    recompute_sigma = None
    if noise_sigma is not None and float(noise_sigma) != _build_sigma(builder):
        recompute_sigma = float(noise_sigma)
    pseudo_fakes = float(pseudo_fakes or 0.0)
    pseudo_sigma = None
    has_landmarks = "landmarks" in features
    if pseudo_fakes:
        pseudo_sigma = recompute_sigma or _build_sigma(builder)
        if not has_landmarks:
            logging.warning(
                "%s stores no landmarks (built before ffpp 1.2.0): the pseudo-fakes' landmarks "
                "are found on each face as it is used, which is slower",
                builder.info.full_name,
            )
    # Stateless per-example seeds: the same flips whatever the parallelism.
    ds = ds.enumerate()
    if skip:
        ds = ds.skip(skip)
    base_seed = tf.constant(seed, tf.int64)
    augment = training and flip

    def _maybe_pseudo_fake(example, index):
        if training:
            chosen = example.pop("pseudo")
        else:
            draw = tf.random.stateless_uniform(
                [], seed=tf.stack([base_seed + _PSEUDO_VALIDATION, index])
            )
            chosen = tf.logical_and(
                tf.equal(tf.cast(example["label"], tf.int64), 0), draw < pseudo_fakes
            )

        def kept():
            return (
                example["image"],
                tf.cast(example["mask"], tf.float32),
                tf.cast(example["noise"], tf.float32),
                tf.cast(example["label"], tf.int64),
                tf.cast(example["method"], tf.int64),
            )

        made = lambda: _pseudo_fake_in_graph(  # noqa: E731
            example, has_landmarks, base_seed, index, pseudo_sigma
        )
        image, mask, noise, label, method = tf.cond(chosen, made, kept)
        return dict(example, image=image, mask=mask, noise=noise, label=label, method=method)

    def convert(index, example):
        example = dict(example)
        for name in encoded:
            if name == "noise" and recompute_sigma is not None:
                continue  # replaced below: not worth decoding
            example[name] = features[name].decode_example(example[name])
        if recompute_sigma is not None:
            example["noise"] = _recomputed_noise(example["image"], recompute_sigma)
        if pseudo_fakes:
            example = _maybe_pseudo_fake(example, index)
        item_seed = tf.stack([base_seed, index])
        image, targets = to_model_inputs(example, image_size, flip=augment, seed=item_seed)
        if with_metadata:
            metadata = {"video": example["video"], "frame": example["frame"]}
            return image, targets, metadata
        return image, targets
    ds = ds.map(
        convert,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True if deterministic else None,
    )
    ds = ds.batch(batch_size, drop_remainder=training)
    options = tf.data.Options()
    options.deterministic = bool(deterministic) or not training
    if not shard_by_files:
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
    ds = ds.with_options(options)
    return ds.prefetch(tf.data.AUTOTUNE)
