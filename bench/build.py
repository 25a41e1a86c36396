"""Benchmark: building the `ffpp` sample (config `sample_photos`) with one and two Beam workers.

Run by hand from the repository root (2 CPU cores: expect a few minutes; the
CPU seconds and the load average printed beside each rate show how much other
work shared the cores):

    .venv/bin/python bench/build.py [--runs python,1,2] [--num_frames N] [--keep DIR]

It generates the sample FF++ tree once (timed on its own), then builds it
with the `sample_photos` config of `tfds_ffpp/ffpp` (the `sample` protocol
over a tree given as --manual_dir) into fresh temporary data folders:
plain Python generation, and Beam's FnApiRunner in multi-processing mode
with `direct_num_workers` 1 and 2, and prints examples per second of each
and the 2-vs-1 worker ratio. Then, from the tfrecord shards of the last build:
bytes on disk per 1,000 examples and the mean stored size of the image, mask
and noise features, with the alternatives the builder did not choose (JPEG
faces, noise as 16-bit fixed-point PNG or zlib float16) and the error each
would add to the noise label of Kong et al. (TIFS 2022) Eq. 4-5.
"""

import argparse
import json
import os
import pathlib
import resource
import shutil
import sys
import tempfile
import time
import zlib

import numpy as np

# Run from the repository root without installing: make `ffseg` and
# `tfds_ffpp` importable, here and in Beam's worker processes.
ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _cpu_seconds():
    """CPU time of this process and of its finished children (Beam's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class _WorkerWatch:
    """Samples the CPU time of each child process (Beam's SDK workers) once a second.

    Shows whether the work was really spread over the workers: on a shared
    machine wall time alone cannot tell.
    """

    def __init__(self):
        import threading

        self.cpu = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        me = psutil.Process()
        while not self._stop.wait(1.0):
            for child in me.children(recursive=True):
                try:
                    times = child.cpu_times()
                    if "python" in child.name():
                        self.cpu[child.pid] = times.user + times.system
                except psutil.Error:
                    pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()


def build(data_dir, manual_dir, workers, frames):
    """Builds ffpp/sample_photos; returns (seconds, cpu_seconds, examples, builder)."""
    import tensorflow_datasets as tfds

    from tfds_ffpp.ffpp import ffpp_dataset_builder

    kwargs = {}
    if workers != "python":
        import apache_beam as beam

        kwargs["beam_options"] = beam.options.pipeline_options.PipelineOptions(
            flags=[
                "--runner=FnApiRunner",
                f"--direct_num_workers={workers}",
                "--direct_running_mode=multi_processing",
            ]
        )
    config = "sample_photos"
    if frames is not None:
        # The sample protocol with more frames per video: more work per Beam
        # element, the same start-up cost per worker.
        config = ffpp_dataset_builder.FfppConfig(
            name=f"sample_photos_{frames}_frames",
            description=f"sample tree, {frames} frames per video",
            quality="c23",
            sigma=5.0,
            frames_per_video={"train": frames, "validation": frames, "test": frames},
        )
    builder = ffpp_dataset_builder.Builder(data_dir=str(data_dir), config=config)
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    with _WorkerWatch() as watch:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir), **kwargs)
        )
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    examples = sum(split.num_examples for split in builder.info.splits.values())
    if watch.cpu:
        per_worker = ", ".join(f"{v:.1f}" for v in sorted(watch.cpu.values(), reverse=True))
        print(f"  CPU s per worker process (sampled each second): {per_worker}")
    return seconds, cpu, examples, builder


def feature_sizes(builder, limit=200):
    """Mean stored bytes per feature, and the storage alternatives, on `limit` examples."""
    import cv2
    import tensorflow as tf

    from ffseg.signal.noise import noise_residual, to_gray

    files = sorted(str(p) for p in builder.data_path.glob("*.tfrecord*"))
    sizes = {"image": [], "mask": [], "noise": [], "record": []}
    alternatives = {"image_jpeg95": [], "noise_png16": [], "noise_f16_zlib": []}
    errors = {"float16": [], "fixed_1/256": [], "jpeg95_noise_change": []}
    max_abs, mean_abs = [], []
    sigma = builder.builder_config.sigma
    for record in tf.data.TFRecordDataset(files).take(limit):
        raw = record.numpy()
        example = tf.train.Example.FromString(raw)
        feature = example.features.feature
        image_png = feature["image"].bytes_list.value[0]
        sizes["record"].append(len(raw))
        sizes["image"].append(len(image_png))
        sizes["mask"].append(len(feature["mask"].bytes_list.value[0]))
        noise_bytes = feature["noise"].bytes_list.value[0]
        sizes["noise"].append(len(noise_bytes))

        image = tf.io.decode_png(image_png).numpy()
        exact = to_gray(noise_residual(image, sigma))  # float32, what float16 stores
        max_abs.append(float(np.abs(exact).max()))
        mean_abs.append(float(np.abs(exact).mean()))
        stored = np.frombuffer(noise_bytes, np.float16).reshape(exact.shape).astype(np.float32)
        errors["float16"].append(np.abs(stored - exact))
        fixed = np.clip(np.round(exact * 256), -32768, 32767).astype(np.int16)
        errors["fixed_1/256"].append(np.abs(fixed / 256.0 - exact))
        offset = (fixed.astype(np.int32) + 32768).astype(np.uint16)
        alternatives["noise_png16"].append(len(cv2.imencode(".png", offset)[1]))
        alternatives["noise_f16_zlib"].append(len(zlib.compress(noise_bytes)))
        jpeg = tf.io.encode_jpeg(image).numpy()  # what Image(encoding_format="jpeg") stores
        alternatives["image_jpeg95"].append(len(jpeg))
        jpeg_noise = to_gray(noise_residual(tf.io.decode_jpeg(jpeg).numpy(), sigma))
        errors["jpeg95_noise_change"].append(np.abs(jpeg_noise - exact))
    total_bytes = sum(pathlib.Path(f).stat().st_size for f in files)
    return sizes, alternatives, errors, (max_abs, mean_abs), total_bytes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="python,1,2", help="python and/or worker counts")
    parser.add_argument("--keep", default=None, help="keep the temporary folders here")
    parser.add_argument(
        "--num_frames",
        type=int,
        default=None,
        help="frames per sample video, all of them extracted (default: the sample "
        "tree's 8 frames and the config's 4 per video)",
    )
    args = parser.parse_args(argv)

    from ffseg.signal import sample

    work = pathlib.Path(args.keep or tempfile.mkdtemp(prefix="ffpp_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        tree_kwargs = {} if args.num_frames is None else {"num_frames": args.num_frames}
        manual_dir = sample.make_sample_ffpp(work / "manual", **tree_kwargs)
        print(f"sample tree generated in {time.perf_counter() - start:.1f} s")

        results = {}
        builder = None
        for run in args.runs.split(","):
            run = run.strip()
            workers = run if run == "python" else int(run)
            seconds, cpu, examples, builder = build(
                work / f"data_{run}", manual_dir, workers, args.num_frames
            )
            results[run] = (seconds, examples)
            label = "python generator" if run == "python" else f"beam, {run} worker(s)"
            print(
                f"{label:>20}: {examples} examples in {seconds:6.1f} s = "
                f"{examples / seconds:6.2f} examples/s ({cpu:6.1f} CPU s, "
                f"{examples / cpu:5.2f} examples per CPU s; load {os.getloadavg()[0]:.1f})"
            )
        if "1" in results and "2" in results:
            rate = {k: v[1] / v[0] for k, v in results.items()}
            print(f"2 workers / 1 worker throughput ratio: {rate['2'] / rate['1']:.2f}")

        sizes, alternatives, errors, (max_abs, mean_abs), total_bytes = feature_sizes(builder)
        examples = results[run][1]
        print(
            f"tfrecord shards: {total_bytes / 1e6:.2f} MB for {examples} examples = "
            f"{total_bytes / examples * 1000 / 1e6:.1f} MB per 1,000 examples"
        )
        print("mean stored bytes per example (first %d examples):" % len(sizes["record"]))
        for name in ("record", "image", "mask", "noise"):
            print(f"  {name:>6}: {np.mean(sizes[name]) / 1e3:8.1f} KB")
        print("alternatives not taken:")
        for name, label in (
            ("image_jpeg95", "image as JPEG (tf default q95)"),
            ("noise_f16_zlib", "noise as zlib(float16)"),
            ("noise_png16", "noise as 16-bit PNG, 1/256 step"),
        ):
            print(f"  {label:>32}: {np.mean(alternatives[name]) / 1e3:8.1f} KB")
        print(
            f"noise label: max |n| {max(max_abs):.1f}, mean |n| {np.mean(mean_abs):.2f} "
            "(0..255 units)"
        )
        for name, values in errors.items():
            flat = np.concatenate([v.ravel() for v in values])
            print(f"  |error| {name:>20}: max {flat.max():.2e}, mean {flat.mean():.2e}")
        report = json.loads((builder.data_path / "build_report.json").read_text())
        print("build report counts:", report["counts"])
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
