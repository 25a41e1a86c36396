"""Images per second of the two input paths on one CPU core: NumPy loader vs tf.data.

Issue 12 asks that the input never be the training bottleneck; this measures
what one core delivers on each path, in one run:

- the TensorFlow-free loader (`ffseg.data.arrays.ArrayLoader`) on an
  array_record build, batch by batch in this process (one thread);
- the tf.data pipeline (`ffseg.data.pipeline.make_dataset`) on a TFRecord
  build of the same data, with its thread pool and intra-op parallelism
  limited to one thread.

Both make training batches (shuffled, balanced, flipped) at `--image-size`
from the stored 299 px crops: PNG decoding, area resizing, flips. Without
`--data-dir`, the committed dummy FF++ tree is built both ways into a
temporary folder first (about a minute). Prints images/s of each and the
ratio NumPy / tf.data.

    python bench/loader.py                          # dummy data, 299 px, batch 16
    python bench/loader.py --image-size 96 --batches 40
    python bench/loader.py --data-dir /data/tfds --array-data-dir /data/tfds_ar --dataset ffpp/c23
"""

import argparse
import os
import sys
import tempfile
import time

# One core for each path: set before NumPy, OpenCV and TensorFlow start their pools.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ffpp/c23")
    parser.add_argument("--data-dir", default=None, help="TFDS data_dir of a TFRecord build")
    parser.add_argument(
        "--array-data-dir", default=None, help="TFDS data_dir of an array_record build"
    )
    parser.add_argument("--split", default="train")
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per path")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def build_dummy(data_dir: str, file_format: str):
    """The committed dummy FF++ tree built as `ffpp/c23` in `file_format`."""
    import tensorflow_datasets as tfds

    import tfds_ffpp.ffpp  # noqa: F401  (registers `ffpp`)
    from tfds_ffpp.ffpp import ffpp_dataset_builder

    manual_dir = os.path.join(os.path.dirname(ffpp_dataset_builder.__file__), "dummy_data")
    builder = tfds.builder("ffpp/c23", data_dir=data_dir, file_format=file_format)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    return builder


def time_batches(batches, count: int) -> float:
    """Seconds for `count` batches of the iterator, after one untimed batch."""
    iterator = iter(batches)
    next(iterator)
    started = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return time.perf_counter() - started


def numpy_rate(args, array_dir) -> float:
    import cv2

    from ffseg.data import arrays

    cv2.setNumThreads(1)
    builder = arrays.open_build(arrays.find_build(args.dataset, array_dir))
    loader = arrays.ArrayLoader(
        builder, args.split, image_size=args.image_size, batch_size=args.batch_size,
        training=True, balance=True, seed=args.seed,
    )
    return args.batches * args.batch_size / time_batches(loader, args.batches)


def tf_data_rate(args, builder) -> float:
    import tensorflow as tf

    from ffseg.data import pipeline

    ds = pipeline.make_dataset(
        builder, args.split, image_size=args.image_size, batch_size=args.batch_size,
        training=True, balance=True, seed=args.seed, deterministic=True,
    )
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    ds = ds.with_options(options)
    return args.batches * args.batch_size / time_batches(ds, args.batches)


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    # Before anything starts TensorFlow's runtime (building the dummy data does).
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    with tempfile.TemporaryDirectory(prefix="ffseg-loader-bench-") as scratch:
        array_dir = args.array_data_dir
        if array_dir is None:
            array_dir = os.path.join(scratch, "array_record")
            build_dummy(array_dir, "array_record")
        numpy_images = numpy_rate(args, array_dir)
        if args.data_dir is None:
            builder = build_dummy(os.path.join(scratch, "tfrecord"), "tfrecord")
        else:
            from ffseg.data import pipeline

            builder = pipeline.ensure_built(args.dataset, data_dir=args.data_dir)
        tf_images = tf_data_rate(args, builder)
    print(
        f"{args.dataset} {args.split}, {args.image_size} px, batch {args.batch_size}, "
        f"{args.batches} batches, one core each (balanced, flipped):"
    )
    print(f"  NumPy loader (array_record): {numpy_images:8.1f} images/s")
    print(f"  tf.data (TFRecord):          {tf_images:8.1f} images/s")
    print(f"  ratio NumPy / tf.data:       {numpy_images / tf_images:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
