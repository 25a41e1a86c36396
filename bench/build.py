"""Benchmark: building the `ffpp` sample (config `sample_photos`) locally, on Beam and on Dask.

Run by hand from the repository root (2 CPU cores: expect a few minutes; the
CPU seconds and the load average printed beside each rate show how much other
work shared the cores):

    .venv/bin/python bench/build.py [--runs python,1,2,dask1,dask2] [--num_frames N] [--keep DIR]

It generates the sample FF++ tree once (timed on its own), then builds it
with the `sample_photos` config of `tfds_ffpp/ffpp` (the `sample` protocol
over a tree given as --manual_dir) into fresh temporary data folders:
plain Python generation, and Beam's FnApiRunner in multi-processing mode
with `direct_num_workers` 1 and 2, and prints examples per second of each
and the 2-vs-1 worker ratio. `daskN` runs build on a Dask `LocalCluster` of N
worker processes (one thread each) through `TFDS_FFPP_DASK_SCHEDULER`, the
cluster's start-up timed apart from the build, and the dask2/dask1 ratio.
From the best examples per CPU second it projects the full `c23_paper` build
(~1.37 M examples) onto N cores (`--project_cores`). Then, from the tfrecord
shards of the last build:
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


def _live_children_cpu_seconds():
    """CPU time of the live child processes (Dask's nannies and workers), recursively."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


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


# Examples of the full `c23_paper` build (Table I protocol, FF++ splits of
# 720 / 140 / 140 real and 2,880 / 560 / 560 fake videos): 270 frames of each
# training fake, 100 of each validation/test fake; real videos 1,080 / 400 /
# 400 frames, every frame of a shorter one (FF++ real videos average ~510).
C23_PAPER_EXAMPLES = {
    "fake": 2880 * 270 + 2 * 560 * 100,
    "real": 720 * 510 + 2 * 140 * 400,
}


def _import_worker_modules():
    # What a worker imports for its first video: the signal layer, and TFDS'
    # feature encoders (TensorFlow) for the PNG encoding.
    import tensorflow  # noqa: F401  (tensorflow_datasets alone imports it lazily)
    import tensorflow_datasets  # noqa: F401

    import ffseg.signal.extract  # noqa: F401


def start_dask(workers):
    """A LocalCluster of `workers` processes, one thread each.

    Returns (cluster, seconds until the workers registered, seconds until
    they had imported what the first video needs): the start-up cost.
    """
    import logging

    from distributed import Client, LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    with Client(cluster) as client:
        client.wait_for_workers(workers)
        registered = time.perf_counter() - start
        client.run(_import_worker_modules)
    return cluster, registered, time.perf_counter() - start


def build(data_dir, manual_dir, workers, frames):
    """Builds ffpp/sample_photos.

    Returns (seconds, CPU seconds, examples, builder, CPU seconds of Dask's
    worker processes or None).
    """
    import tensorflow_datasets as tfds

    from tfds_ffpp.ffpp import ffpp_dataset_builder

    kwargs = {}
    if workers != "python" and not str(workers).startswith("dask"):
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
    # Dask's workers outlive the build: their CPU time is read while they live.
    live_start = _live_children_cpu_seconds()
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    with _WorkerWatch() as watch:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir), **kwargs)
        )
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    worker_cpu = None
    if str(workers).startswith("dask"):
        worker_cpu = _live_children_cpu_seconds() - live_start
        cpu += worker_cpu
    examples = sum(split.num_examples for split in builder.info.splits.values())
    if watch.cpu:
        per_worker = ", ".join(f"{v:.1f}" for v in sorted(watch.cpu.values(), reverse=True))
        print(f"  CPU s per worker process (sampled each second): {per_worker}")
    return seconds, cpu, examples, builder, worker_cpu


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
    parser.add_argument(
        "--runs",
        default="python,1,2,dask1,dask2",
        help="python, Beam worker counts, daskN (a Dask LocalCluster of N workers)",
    )
    parser.add_argument(
        "--project_cores",
        default="16,64,256",
        help="core counts to project the full c23_paper build onto",
    )
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
        per_cpu = {}
        split_cpu = {}  # dask run -> (worker, driver) CPU seconds per example
        builder = None
        for run in args.runs.split(","):
            run = run.strip()
            cluster = None
            if run.startswith("dask"):
                cluster, registered, ready = start_dask(int(run[4:]))
                os.environ["TFDS_FFPP_DASK_SCHEDULER"] = cluster.scheduler_address
                print(
                    f"dask cluster of {run[4:]} worker(s): registered in {registered:.1f} s, "
                    f"imports done in {ready:.1f} s (start-up cost, not in the build's time)"
                )
                workers = run
            else:
                workers = run if run == "python" else int(run)
            try:
                seconds, cpu, examples, builder, worker_cpu = build(
                    work / f"data_{run}", manual_dir, workers, args.num_frames
                )
            finally:
                os.environ.pop("TFDS_FFPP_DASK_SCHEDULER", None)
                if cluster is not None:
                    cluster.close()
            results[run] = (seconds, examples)
            per_cpu[run] = examples / cpu
            if worker_cpu:
                split_cpu[run] = (worker_cpu / examples, (cpu - worker_cpu) / examples)
            label = {"python": "python generator"}.get(run, f"beam, {run} worker(s)")
            if run.startswith("dask"):
                label = f"dask, {run[4:]} worker(s)"
            print(
                f"{label:>20}: {examples} examples in {seconds:6.1f} s = "
                f"{examples / seconds:6.2f} examples/s ({cpu:6.1f} CPU s, "
                f"{examples / cpu:5.2f} examples per CPU s; load {os.getloadavg()[0]:.1f})"
            )
        rate = {k: v[1] / v[0] for k, v in results.items()}
        for one, two, name in (("1", "2", "beam"), ("dask1", "dask2", "dask")):
            if one in rate and two in rate:
                print(f"{name}: 2 workers / 1 worker throughput ratio: {rate[two] / rate[one]:.2f}")
        best = max(per_cpu.values())
        total = sum(C23_PAPER_EXAMPLES.values())
        print(
            f"projection, full c23_paper build ({total:,} examples), this sample's per-example "
            "cost (its frames are 320x240; FF++'s are larger: see the README):"
        )
        if split_cpu:
            worker, driver = min(split_cpu.values(), key=sum)
            print(
                f"  per example: {1e3 * worker:.0f} ms CPU on a worker (decode, detect, "
                f"noise, PNG), {1e3 * driver:.0f} ms in the driver (TFDS writer, Dask client)"
            )
        for cores in (int(c) for c in args.project_cores.split(",")):
            hours = total / (best * cores) / 3600
            line = f"  {cores:>5} cores, writer parallel too (Beam): {hours:7.1f} h"
            if split_cpu:
                # One driver core writes; the other cores' workers cannot go faster.
                rate = min((cores - 1) / worker, 1 / driver)
                line += f"; Dask engine (one driver core): {total / rate / 3600:7.1f} h"
            print(line)

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
