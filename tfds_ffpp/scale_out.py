"""Per-video work away from the driver: the shared wrapper, and a Dask cluster engine.

The expensive part of a face-video build is per video (decoding, dlib face
detection, masks, the noise label of Kong et al. (TIFS 2022) Eq. 4-5);
TFDS' writer (PNG encoding, shuffling, shards) costs about two thirds as
much again, most of it the PNG encoding of the image. This module holds
what runs where the per-video work runs, and imports neither TensorFlow nor
TFDS itself (a Dask worker needs the signal layer, `ffseg.signal`, and
TFDS' feature encoders once the first video's work arrives):

* `tallied_examples`: one video's (key, example) pairs, counted by label;
  a video whose processing raises keeps the examples made before the
  error and is named in the report with the error; a video on object
  storage (`gs://`, `s3://`: a `--manual_dir` there) is copied to a local
  folder first, since OpenCV's decoder reads local files only, and the
  report names the original. Used by every runner (plain Python, Beam,
  Dask), so they write the same dataset and report.
* `DaskEngine`: farms the videos of a split out to a `distributed` cluster
  (`Client.submit` / `as_completed`), the TFDS writer staying in the
  driver; the workers PNG-encode the images with the dataset's own
  features, so the bytes written are those of a local build. Every
  video's examples, report entries and label tallies come back with its
  result, so the report is gathered from every worker.

Why not Beam's DaskRunner (apache-beam 2.77): global combines
(`beam.CombineGlobally`, `beam.combiners.Top.Largest`) emit nothing under
it, and TFDS' Beam writer (tensorflow_datasets/core/writer.py,
`_assign_shard`) reads the largest example key from `Top.Largest(1)` as a
singleton side input, which then arrives as `[]` (IndexError). A build
asked of the DaskRunner therefore runs on this engine, on the same cluster.

Driver memory: at most `in_flight` videos' examples are held at once, as
~285 KB a frame (the image and mask come back PNG-encoded, ~103 KB and
~1.4 KB; the float16 noise 179 KB): 32-frame configs ~9 MB a video;
`*_paper` up to 1,080 frames of a real video, ~310 MB. `in_flight` defaults to the
cluster's worker threads: one video each. (More would queue videos on
workers, and Dask counts a worker's death against every task queued on it.)

A worker process that dies (killed, out of memory, a decoder crash) loses
nothing: Dask reruns its task on another worker. A video whose task killed
workers more than `distributed.scheduler.allowed-failures` times (3 by
default) is reported as a skipped video, and the build goes on.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import typing

_log = logging.getLogger(__name__)


# === Per-video wrapper (runs in the driver, in Beam workers, in Dask workers) ===


def tallied_examples(video, *, examples, report, tally, split, **kwargs):
    """`examples(video, ...)`'s (key, example) pairs; counts them by label into `tally`.

    `examples` reports bad input itself; should it raise all the same (an
    unforeseen decoder failure mid-video, a bug), the examples made so far
    are kept and the video is reported as a skipped video naming the error
    and how many examples it gave, so a build of thousands of videos is
    never stopped, nor silently shortened, by one of them.
    """
    counts = collections.Counter()
    made = 0
    staged = {}
    try:
        with staged_locally(video) as (local_video, originals):
            staged.update(originals)
            if originals:
                report = _reporting_originals(report, originals)
            for key, example in examples(local_video, split=split, report=report, **kwargs):
                counts[example["label"]] += 1
                made += 1
                yield key, example
    except Exception as error:  # pylint: disable=broad-except
        entry = {
            "split": split,
            "video": video["name"],
            "reason": f"processing raised {type(error).__name__}: "
            f"{_with_originals(str(error), staged)} "
            f"(after {made} examples, which are kept; the rest of the video is left out)",
            "examples_kept": made,
        }
        if video.get("path"):
            entry["file"] = str(video["path"])
        report("skipped_videos", entry)
    for label, count in sorted(counts.items()):
        tally(split, label, count)


# Keys of a video's dict that name its files (see VideoBuilder._videos_by_split).
FILE_KEYS = ("path", "mask_path")


@contextlib.contextmanager
def staged_locally(video):
    """Yields (video, {local path: original}) with its object-storage files copied locally.

    Files whose path has a scheme ("gs://...") are read through TFDS' file
    layer (`etils.epath`) into a temporary folder, removed afterwards; a
    video of local files is yielded as is. A file that does not exist is
    not copied, so the decoder reports it missing under its own name.
    """
    remote = {
        key: video[key]
        for key in FILE_KEYS
        if isinstance(video.get(key), str) and "://" in video[key]
    }
    if not remote:
        yield video, {}
        return
    from etils import epath

    folder = tempfile.mkdtemp(prefix="tfds_ffpp_video_")
    try:
        local, originals = dict(video), {}
        for key, path in remote.items():
            source = epath.Path(path)
            # Built-in open for the local side: only the remote side goes
            # through epath.
            target = os.path.join(folder, f"{key}-{source.name}")
            if source.exists():
                with source.open("rb") as reader, open(target, "wb") as writer:
                    shutil.copyfileobj(reader, writer, 1 << 20)
            local[key] = target
            originals[target] = path
        yield local, originals
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _reporting_originals(report, originals):
    """`report` with local copies' paths in entries replaced by the original paths."""

    def reporting(kind, entry):
        report(kind, {key: _with_originals(value, originals) for key, value in entry.items()})

    return reporting


def _with_originals(value, originals):
    if not isinstance(value, str):
        return value
    for local, path in originals.items():
        value = value.replace(local, path)
    return value


def pickle_module_by_value(module_name: str) -> None:
    """Lets worker processes (Beam's, Dask's) run a builder module's functions.

    `tfds build tfds_ffpp/ffpp` imports the builder file as
    `ffpp.ffpp_dataset_builder` with a temporary sys.path entry that the
    workers do not have; pickled by value, its functions travel with the
    work instead of by module name. Registered with both Beam's vendored
    cloudpickle and the `cloudpickle` package (which `DaskEngine` uses).
    """
    module = sys.modules[module_name]
    from apache_beam.internal.cloudpickle import cloudpickle as beam_cloudpickle

    beam_cloudpickle.register_pickle_by_value(module)
    try:
        import cloudpickle
    except ImportError:  # no Dask installed: only Beam needs it
        return
    cloudpickle.register_pickle_by_value(module)


# === Dask ===


@dataclasses.dataclass
class VideoResult:
    """What one video gave on a worker.

    Attributes:
        examples: its (key, example) pairs.
        entries: its report entries, (kind, entry) pairs.
        tallies: (split, label, count) triples.
        worker: the address of the worker that made it.
    """

    examples: typing.List[typing.Tuple[str, typing.Dict[str, typing.Any]]]
    entries: typing.List[typing.Tuple[str, typing.Dict[str, typing.Any]]]
    tallies: typing.List[typing.Tuple[str, str, int]]
    worker: str = ""


# Unpickled (function, kwargs) by digest, one per split and build: the face
# detector in the kwargs loads dlib's models once per worker, not per video.
_WORK = collections.OrderedDict()
_WORK_KEEP = 4


def process_video(video, work: bytes, split: str) -> VideoResult:
    """Runs one video on a Dask worker: `tallied_examples` with `work`'s function and kwargs.

    Args:
        video: the video's dict (see `VideoBuilder._videos_by_split`).
        work: cloudpickle of (examples function, its keyword arguments,
            {feature name: TFDS feature} to encode on the worker).
        split: the TFDS split.
    """
    import pickle

    digest = hashlib.sha256(work).hexdigest()
    if digest not in _WORK:
        _WORK[digest] = pickle.loads(work)
        while len(_WORK) > _WORK_KEEP:
            _WORK.popitem(last=False)
    function, kwargs, encoders = _WORK[digest]
    entries, tallies = [], []
    examples = list(
        tallied_examples(
            video,
            examples=function,
            report=lambda kind, entry: entries.append((kind, dict(entry))),
            tally=lambda *args: tallies.append(args),
            split=split,
            **kwargs,
        )
    )
    for _, example in examples:
        for name, feature in encoders.items():
            example[name] = feature.encode_example(example[name])
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = ""
    return VideoResult(examples=examples, entries=entries, tallies=tallies, worker=worker)


class DaskEngine:
    """Runs the per-video work of a build on a Dask `distributed` cluster.

    Args:
        address: the scheduler's address ("tcp://host:8786"); None starts a
            `LocalCluster` on this machine (one worker process per core).
        in_flight: videos submitted and not yet collected, at most; None:
            the cluster's worker threads (see the module docstring for the
            driver memory this holds).

    Example:

    ```python
    from distributed import LocalCluster
    from tfds_ffpp.scale_out import DaskEngine

    def examples(video, *, split, report):
        yield f"{video['name']}/0000", {"label": video["label"]}

    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster:
        engine = DaskEngine(cluster.scheduler_address)
        videos = [{"name": "real/000", "label": "real"}]
        for video, result in engine.map(videos, examples, {}, split="train"):
            print(video["name"], len(result.examples), result.worker)
        engine.close()
    ```
    """

    def __init__(
        self, address: typing.Optional[str] = None, in_flight: typing.Optional[int] = None
    ):
        self.address = address
        self.in_flight = in_flight
        self._client = None

    @property
    def client(self):
        """The `distributed.Client`, connected on first use."""
        if self._client is None:
            from distributed import Client

            _log.info("Dask: connecting to %s", self.address or "a new local cluster")
            self._client = Client(self.address) if self.address else Client()
        return self._client

    def workers(self) -> int:
        """Worker processes the cluster has now."""
        return len(self.client.scheduler_info()["workers"])

    def map(self, videos, function, kwargs, *, split, encoders=None):
        """Yields (video, VideoResult) as the cluster finishes them, in any order.

        `encoders` ({feature name: TFDS feature}) are applied to each example
        on the worker: TFDS' `Image` takes its own encoded bytes back
        unchanged, so PNG encoding, a third of a build's CPU time, leaves the
        driver, and the dataset's bytes stay those of a local build.

        A video whose task killed its workers too often (Dask's
        `KilledWorker`) yields a result with no examples and a skipped-video
        entry saying so. Any other failure of a task (the workers lack the
        project or its dependencies) is not the video's fault and is raised,
        naming the video and the worker's error.
        """
        import cloudpickle
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        work = cloudpickle.dumps((function, dict(kwargs), dict(encoders or {})))
        pending = list(reversed(videos))
        limit = self.in_flight or max(1, sum(self.client.nthreads().values()))
        running = as_completed()
        submitted = {}

        def submit():
            video = pending.pop()
            future = self.client.submit(
                process_video, video, work, split, pure=False, key=_task_key(split, video)
            )
            submitted[future.key] = video
            running.add(future)

        while pending and len(submitted) < limit:
            submit()
        for future in running:
            video = submitted.pop(future.key)
            try:
                result = future.result()
            except KilledWorker:
                result = VideoResult(
                    examples=[],
                    entries=[("skipped_videos", _killed_entry(video, split))],
                    tallies=[],
                )
            except Exception as error:
                raise RuntimeError(
                    f"Dask task for video {video['name']} ({video.get('path')}) failed on the "
                    f"cluster at {self.address or 'local'}: {type(error).__name__}: {error}. "
                    "Workers need the project and its native dependencies installed (see "
                    "the README's 'Scaling out')"
                ) from error
            finally:
                future.release()
            yield video, result
            if pending:
                submit()

    def close(self):
        """Disconnects (and stops the local cluster this engine started, if any)."""
        if self._client is not None:
            cluster = None if self.address else self._client.cluster
            self._client.close()
            if cluster is not None:
                cluster.close()
            self._client = None


def _task_key(split, video) -> str:
    # Readable in Dask's dashboard; unique per build attempt.
    import uuid

    return f"video-{split}-{video['name'].replace('/', '-')}-{uuid.uuid4().hex[:8]}"


def _killed_entry(video, split) -> typing.Dict[str, typing.Any]:
    entry = {
        "split": split,
        "video": video["name"],
        "reason": "every worker process that ran it died (Dask KilledWorker, after "
        "distributed.scheduler.allowed-failures retries): a video that crashes the "
        "decoder or exhausts a worker's memory",
    }
    if video.get("path"):
        entry["file"] = str(video["path"])
    return entry
