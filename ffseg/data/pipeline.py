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
"""

from __future__ import annotations

import logging

import tensorflow as tf

from ffseg.constants import CROP_SIZE as STORED_SIZE


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
        logging.info("Preparing %s in %s", dataset, builder.data_dir)
        download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
        builder.download_and_prepare(download_config=download_config)
    return builder


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
    flip = tf.random.stateless_uniform([], seed=seed) < 0.5
    flip_all = lambda t: tf.cond(flip, lambda: tf.reverse(t, axis=[1]), lambda: t)  # noqa: E731
    return flip_all(image), flip_all(mask), flip_all(noise)


def to_model_inputs(example, image_size: int, *, flip: bool = False, seed=None):
    """One TFDS example -> `(image, targets)`; `seed` is a stateless seed pair."""
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
) -> tf.data.Dataset:
    """Batched `(image, targets)` pairs from one split of a prepared builder.

    Args:
        builder: a prepared TFDS builder (see `ensure_built`).
        split: TFDS split, e.g. "train" or "validation[:10%]".
        image_size: the model's input size.
        batch_size: the global batch size (MirroredStrategy splits it).
        training: shuffle, augment, repeat and drop the partial last batch
            (a partial batch splits unevenly across replicas).
        deterministic: fixed file order, shuffle and flips from `seed`.
        with_metadata: also yield a dict of `video` and `frame` (evaluation).
        take: use only the first `take` examples of the split.
        skip: examples of the (shuffled, repeated) stream to pass over first,
            to resume a training run where it stopped.
        shard_by_files: under multi-worker training, give each worker its
            own files (AUTO); False shards by example (DATA), needed when the
            split has fewer files than workers.
    """
    import tensorflow_datasets as tfds

    read_config = None
    if deterministic:
        read_config = tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=1)
    # The shuffle buffer and a resume's skip see encoded examples (PNG and
    # float16 bytes, ~0.3 MB each, not ~0.7 MB decoded); decoding happens in
    # the parallel map, only for examples that are used.
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
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed if deterministic else None)
        ds = ds.repeat()
    # Stateless per-example seeds: the same flips whatever the parallelism.
    ds = ds.enumerate()
    if skip:
        ds = ds.skip(skip)
    base_seed = tf.constant(seed, tf.int64)
    augment = training and flip

    def convert(index, example):
        example = dict(example)
        for name in encoded:
            example[name] = features[name].decode_example(example[name])
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
