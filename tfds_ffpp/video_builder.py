"""The base of the face-video builders (`ffpp`, `celeb_df`).

Both builders turn a tree of videos (the user's `--manual_dir`) into one
example per sampled frame, and both must survive bad input and say what it
was. This base does the part they share, with TFDS' public hooks only:

* `download_and_prepare` (TFDS' public entry point, extended here) is where
  the `DownloadConfig` is seen: whether the user asked for Beam, and which
  `--manual_dir` was given. A manual_dir that is missing or empty is refused
  naming it, and a dataset already built from a *different* tree is never
  silently reused (TFDS would only say "Reusing dataset"): the input's
  fingerprint, recorded in the dataset's metadata, must match.
* `_split_generators` lists each split's videos (the subclass's
  `_videos_by_split`); `_generate_examples` hands every video to one
  module-level function, through `beam.Create | beam.FlatMap` when Beam was
  asked for, through a Dask cluster (`tfds_ffpp.scale_out.DaskEngine`) when
  one was named, and through a plain generator otherwise: one per-video
  code path (`scale_out.tallied_examples`).
  TFDS (4.9.10) decides between its Beam and its local writer by what
  `_generate_examples` returns, and gives a builder no other public way to
  see the Beam options than `download_and_prepare`'s `DownloadConfig`, hence
  the choice made there. No private TFDS method is overridden.
* Beam workers report skipped and flagged input through Beam metrics
  counters, read back in `_process_pipeline_result` (TFDS' hook for exactly
  that); Dask workers return them with each video's examples.
* A Dask cluster is asked for with the environment variable
  `TFDS_FFPP_DASK_SCHEDULER` (its address; "local" for a cluster on this
  machine), which `tfds build` passes through untouched, or with Beam
  options naming Beam's DaskRunner (`runner=apache_beam.runners.dask.
  dask_runner.DaskRunner`, optional `dask_client_address`): that runner
  cannot run TFDS' Beam writer (see `tfds_ffpp.scale_out`), so the build
  runs on the Dask engine instead, on the same cluster, and says so.
* The report is written by the dataset's metadata object
  (`BuildMetadata.save_metadata`, the public `tfds.core.Metadata`
  interface), which TFDS calls while the dataset is still in its temporary
  folder: `build_report.json` ships with the dataset when the folder is
  renamed into place, and the log line that follows names its final path.

Maintainers: `tfds.testing.DatasetBuilderTestCase` replaces the *builder*
module's `os` and `open`; this module uses `epath` for files as well.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import typing

import tensorflow_datasets as tfds
from etils import epath

from ffseg.errors import FileError
from tfds_ffpp import build_report, scale_out

REPORT_FILENAME = build_report.REPORT_FILENAME
# The Dask scheduler's address ("tcp://host:8786"), or "local".
DASK_SCHEDULER_VARIABLE = "TFDS_FFPP_DASK_SCHEDULER"
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"

# Kept importable from here (the Beam pipeline names it).
tallied_examples = scale_out.tallied_examples

# Small text files whose content, not only their size, enters the input
# fingerprint: split files, Celeb-DF's test list, the sample's provenance.
_HASHED_SUFFIXES = (".json", ".txt")
_HASHED_MAX_BYTES = 1 << 20

_log = logging.getLogger(__name__)


class ManualDirError(FileError):
    """A `--manual_dir` that cannot be used: missing, empty, or not the tree a build came from."""


class BuildMetadata(tfds.core.MetadataDict):
    """The dataset's `metadata.json`, and the build report written beside it.

    TFDS saves a dataset's metadata into its temporary folder just before it
    renames the folder into place; `write_report`, set by the builder for the
    length of one build, writes `build_report.json` at that moment.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.write_report = None

    def save_metadata(self, data_dir):
        super().save_metadata(data_dir)
        if self.write_report is not None:
            self.write_report(epath.Path(data_dir))


@dataclasses.dataclass(frozen=True)
class BuildRequest:
    """What the user asked `download_and_prepare` for.

    Attributes:
        beam: a Beam runner or Beam options were given (other than Beam's
            DaskRunner, see `dask`).
        manual_dir: the `--manual_dir`, or None.
        dask: run the per-video work on a Dask cluster.
        dask_scheduler: its scheduler's address; None: a new local cluster.
        dask_note: why Dask was chosen, for the log and the report.
    """

    beam: bool = False
    manual_dir: typing.Optional[epath.Path] = None
    dask: bool = False
    dask_scheduler: typing.Optional[str] = None
    dask_note: str = ""

    @property
    def runner(self) -> str:
        """"dask", "beam" or "python": what makes the examples."""
        return "dask" if self.dask else "beam" if self.beam else "python"


def build_request(download_config, environ=None) -> BuildRequest:
    """The `BuildRequest` of a `DownloadConfig` and the environment.

    Refuses, in one line, a Dask cluster named in the environment together
    with Beam options for another runner: which one was meant cannot be told.
    """
    environ = os.environ if environ is None else environ
    manual_dir = download_config.manual_dir
    manual_dir = None if manual_dir is None else epath.Path(manual_dir)
    runner, beam_options = download_config.beam_runner, download_config.beam_options
    address = environ.get(DASK_SCHEDULER_VARIABLE, "").strip()
    dask_runner = _names_dask_runner(runner, beam_options)
    if address:
        if (runner is not None or beam_options is not None) and not dask_runner:
            raise ValueError(
                f"{DASK_SCHEDULER_VARIABLE}={address} asks for a Dask cluster, and Beam options "
                "for another runner were given too: unset one of them"
            )
        return BuildRequest(
            manual_dir=manual_dir,
            dask=True,
            dask_scheduler=None if address == "local" else address,
            dask_note=f"{DASK_SCHEDULER_VARIABLE}={address}",
        )
    if dask_runner:
        return BuildRequest(
            manual_dir=manual_dir,
            dask=True,
            dask_scheduler=_dask_client_address(beam_options),
            dask_note="Beam's DaskRunner was asked for; it cannot run TFDS' Beam writer "
            "(global combines emit nothing under it in apache-beam 2.77, and the writer "
            "reads the largest key from one), so the per-video work runs on the same Dask "
            "cluster through tfds_ffpp's own Dask engine",
        )
    return BuildRequest(beam=runner is not None or beam_options is not None, manual_dir=manual_dir)


def _names_dask_runner(runner, beam_options) -> bool:
    if runner is not None:
        name = runner if isinstance(runner, str) else type(runner).__name__
        return name.split(".")[-1] == "DaskRunner"
    if beam_options is None:
        return False
    from apache_beam.options.pipeline_options import StandardOptions

    name = beam_options.view_as(StandardOptions).runner
    return isinstance(name, str) and name.split(".")[-1] == "DaskRunner"


def _dask_client_address(beam_options) -> typing.Optional[str]:
    if beam_options is None:
        return None
    # Registers DaskOptions, the view that parses --dask_client_address.
    from apache_beam.runners.dask.dask_runner import DaskOptions

    return beam_options.view_as(DaskOptions).address or None


class VideoBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A TFDS builder of one example per sampled frame of each video of a tree.

    Subclasses give `_info` (with `metadata=BuildMetadata()`) and:

    * `_manual_root(dl_manager)`: the tree to read;
    * `_videos_by_split(root)`: {split: [video dict]}, each dict with at least
      "name", "label" ("real" or "fake") and "frames" (frames asked for);
    * `_examples_function()`: the module-level function
      `f(video, *, split, report, **kwargs)` that yields (key, example)
      pairs of one video and reports problems through `report(kind, entry)`;
    * `_examples_kwargs(split)`: its keyword arguments;
    * `_input_paths(root)`: the files and folders the build reads, whose
      fingerprint is recorded;
    * optionally `_check_manual_dir(manual_dir)`, `_manual_dir_hint()` and
      `_report_header()`.
    """

    # === Public entry point ===

    def download_and_prepare(self, *, download_dir=None, download_config=None, **kwargs):
        """TFDS' `download_and_prepare`, with the checks and the report of this base."""
        download_config = download_config or tfds.download.DownloadConfig()
        request = build_request(download_config)
        self._check_manual_dir(request.manual_dir)
        mode = download_config.download_mode
        if mode == tfds.download.GenerateMode.UPDATE_DATASET_INFO or (
            self.is_prepared() and not mode.overwrite_dataset
        ):
            if request.manual_dir is not None and self.is_prepared():
                self._check_same_input(request.manual_dir)
            return super().download_and_prepare(
                download_dir=download_dir, download_config=download_config, **kwargs
            )

        if request.dask:
            if request.dask_note.startswith("Beam"):
                _log.warning("%s: %s", self.name, request.dask_note)
            # TFDS must not start a Beam pipeline: the examples come from a
            # generator fed by the Dask cluster.
            download_config = dataclasses.replace(
                download_config, beam_runner=None, beam_options=None
            )
        self._request = request
        self._dask = scale_out.DaskEngine(request.dask_scheduler) if request.dask else None
        self._dask_workers = set()
        self._report = build_report.BuildReport(self.name)
        self._manual_root_name = None
        self._requested = {}
        final_report = self.data_path / REPORT_FILENAME
        # TFDS deletes its temporary dataset folder when a build fails: what
        # was skipped so far is then kept beside it, so the failure can be
        # understood.
        failed_report = self.data_path.parent / f"build_report-{self.version}-failed.json"
        metadata = self.info.metadata
        if isinstance(metadata, BuildMetadata):
            metadata.write_report = self._write_report
        try:
            super().download_and_prepare(
                download_dir=download_dir, download_config=download_config, **kwargs
            )
        except Exception as error:
            if any(self._report.entries.values()):
                header = {**self._report_base_header(), "failed": str(error)}
                self._report.write(failed_report, header=header)
                self._report.log_summary(failed_report, examples=0)
                error.add_note(f"Videos and frames skipped before the failure: {failed_report}")
            raise
        finally:
            if isinstance(metadata, BuildMetadata):
                metadata.write_report = None
            if self._dask is not None:
                self._dask.close()
                self._dask = None
        if not final_report.exists():
            # The info object came from an earlier build on disk (an
            # overwrite through the Python API), not from `_info`.
            self._write_report(self.data_path)
        if failed_report.exists():
            failed_report.unlink()  # from an earlier attempt
        examples = sum(split.num_examples for split in self.info.splits.values())
        self._report.log_summary(final_report, examples=examples)

    # === TFDS hooks ===

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        if getattr(self, "_report", None) is None:  # called without download_and_prepare
            self._report = build_report.BuildReport(self.name)
        root = self._manual_root(dl_manager)
        self._manual_root_name = str(root)
        split_videos = self._videos_by_split(root)
        self._requested = {
            split: _requested_frames(videos) for split, videos in split_videos.items()
        }
        if self.info.metadata is not None:
            self.info.metadata.update(input_fingerprint(root, self._input_paths(root)))
        return {
            split: self._generate_examples(videos, split=split)
            for split, videos in split_videos.items()
        }

    def _generate_examples(self, videos, split):
        """Examples of one split: a Beam transform or a generator of (key, example)."""
        function = self._examples_function()
        kwargs = dict(self._examples_kwargs(split), split=split)
        if self._build_request.dask:
            self._pickle_by_value(function)
            return self._generate_on_dask(videos, function, kwargs)
        if self._build_request.beam:
            beam = tfds.core.lazy_imports.apache_beam
            self._pickle_by_value(function)
            return beam.Create(videos) | f"Extract_{split}" >> beam.FlatMap(
                tallied_examples,
                examples=function,
                report=self._report.metrics_reporter(),
                tally=self._report.metrics_tally(),
                **kwargs,
            )
        return self._generate_locally(videos, function, kwargs)

    def _generate_locally(self, videos, function, kwargs):
        count = 0
        for video in videos:
            for item in tallied_examples(
                video, examples=function, report=self._report.add, tally=self._report.tally,
                **kwargs,
            ):
                count += 1
                yield item
        self._check_some_examples(count, videos, kwargs["split"])

    def _generate_on_dask(self, videos, function, kwargs):
        """The examples of a split, made by the Dask cluster's workers, in completion order.

        TFDS' writer orders examples by a hash of their keys, so the order in
        which videos finish does not change the dataset.
        """
        split = kwargs.pop("split")
        engine = getattr(self, "_dask", None) or scale_out.DaskEngine(
            self._build_request.dask_scheduler
        )
        _log.info(
            "%s: %s split: %d videos on a Dask cluster of %d workers (%s)",
            self.name, split, len(videos), engine.workers(), self._build_request.dask_note,
        )
        count = 0
        if not hasattr(self, "_dask_workers"):
            self._dask_workers = set()
        # Images are PNG-encoded on the workers, by the dataset's own features.
        encoders = {
            name: feature
            for name, feature in self.info.features.items()
            if isinstance(feature, tfds.features.Image)
        }
        for _, result in engine.map(videos, function, kwargs, split=split, encoders=encoders):
            if result.worker:
                self._dask_workers.add(result.worker)
            for kind, entry in result.entries:
                self._report.add(kind, entry)
            for tally_split, label, number in result.tallies:
                self._report.tally(tally_split, label, number)
            for item in result.examples:
                count += 1
                yield item
        self._check_some_examples(count, videos, split)

    def _check_some_examples(self, count, videos, split):
        if count == 0:
            # TFDS' writer would only say "No examples were yielded".
            raise ValueError(
                f"{self.name}: the {split} split has no usable example: all "
                f"{len(videos)} of its videos were skipped"
            )

    def _pickle_by_value(self, function):
        """Ships the builder's and the examples function's modules with the work."""
        while isinstance(function, functools.partial):
            function = function.func
        modules = {type(self).__module__, getattr(function, "__module__", None)}
        for module in sorted(m for m in modules if m):
            scale_out.pickle_module_by_value(module)

    def _process_pipeline_result(self, pipeline_result) -> None:
        self._report.add_from_pipeline(pipeline_result)

    # === Subclass hooks with defaults ===

    def _check_manual_dir(self, manual_dir: typing.Optional[epath.Path]) -> None:
        """Refuses a given manual_dir that does not exist or is empty, naming it."""
        if manual_dir is None:
            return
        if not manual_dir.is_dir():
            raise ManualDirError(manual_dir, f"no such folder; {self._manual_dir_hint()}")
        if not any(manual_dir.iterdir()):
            raise ManualDirError(manual_dir, f"is empty; {self._manual_dir_hint()}")

    def _manual_dir_hint(self) -> str:
        return "see the dataset's MANUAL_DOWNLOAD_INSTRUCTIONS for what it must hold"

    def _report_header(self) -> typing.Dict[str, typing.Any]:
        """Extra fields of the report's header (after dataset, version, runner, manual_dir)."""
        return {}

    # === Report and input checks ===

    @property
    def _build_request(self) -> BuildRequest:
        # A builder whose splits are listed without `download_and_prepare`
        # (tests) generates locally.
        return getattr(self, "_request", None) or BuildRequest()

    def _report_base_header(self):
        return {
            "dataset": f"{self.name}/{self.builder_config.name}",
            "version": str(self.version),
            "runner": self._build_request.runner,
            **(
                {
                    "dask_scheduler": self._build_request.dask_scheduler or "local",
                    # Worker processes whose results were used (a restarted
                    # worker counts again): the report was gathered from them.
                    "dask_workers": len(getattr(self, "_dask_workers", ())),
                }
                if self._build_request.dask
                else {}
            ),
            "manual_dir": getattr(self, "_manual_root_name", None),
        }

    def _write_report(self, data_dir: epath.Path) -> None:
        examples = {name: split.num_examples for name, split in self.info.splits.items()}
        header = {
            **self._report_base_header(),
            "examples": examples,
            **self._report_header(),
            "frames": frame_counts(getattr(self, "_requested", {}), self._report.tallies),
        }
        self._report.write(data_dir / REPORT_FILENAME, header=header)

    def _check_same_input(self, manual_dir: epath.Path) -> None:
        """Refuses to reuse a dataset built from another tree than `manual_dir`."""
        recorded = dict(self.info.metadata.items()) if self.info.metadata is not None else {}
        if "input_fingerprint" not in recorded:
            _log.info(
                "%s: built before input fingerprints were recorded; reusing it as is",
                self.info.full_name,
            )
            return
        now = input_fingerprint(manual_dir, self._input_paths(manual_dir))
        if now["input_fingerprint"] == recorded["input_fingerprint"]:
            return
        raise ManualDirError(
            manual_dir,
            f"is not the tree that {self.info.full_name} in {self.data_path} was built from "
            f"({recorded.get('manual_dir')}: {recorded.get('input_files')} input files, "
            f"fingerprint {recorded['input_fingerprint'][:12]}; now {now['input_files']} "
            f"files, fingerprint {now['input_fingerprint'][:12]}). Refusing to reuse it: "
            "pass --overwrite to `tfds build` to delete that build and make a new one, or "
            "build into another --data_dir",
        )


# `tallied_examples` and the pickling of builder modules live in
# `tfds_ffpp.scale_out`, which Dask workers import without TFDS.


# === Frame counts and input fingerprints (pure functions) ===


def _requested_frames(videos) -> typing.Dict[str, typing.Dict[str, typing.Any]]:
    """{label: {"videos": n, "requested": frames, "per_video": frames or None}}."""
    result = {}
    for label in ("real", "fake"):
        frames = [int(video["frames"]) for video in videos if video["label"] == label]
        result[label] = {
            "videos": len(frames),
            "per_video": frames[0] if frames and len(set(frames)) == 1 else None,
            "requested": sum(frames),
        }
    return result


def frame_counts(requested, tallies) -> typing.Dict[str, typing.Any]:
    """Per split: real and fake frames asked for and written, and their ratio.

    Args:
        requested: {split: {label: {"videos", "per_video", "requested"}}}.
        tallies: {(split, label): examples written}.
    """

    def ratio(real, fake):
        return None if not fake else round(real / fake, 4)

    result = {}
    for split, labels in requested.items():
        entry = {}
        for label, numbers in labels.items():
            entry[label] = {**numbers, "achieved": int(tallies.get((split, label), 0))}
        entry["real_to_fake"] = {
            key: ratio(entry["real"][key], entry["fake"][key]) for key in ("requested", "achieved")
        }
        result[split] = entry
    return result


def input_fingerprint(root, paths) -> typing.Dict[str, typing.Any]:
    """A fingerprint of the files a build reads under `root`.

    Every file under `paths` (files or folders, given under `root`) enters
    with its path relative to `root` and its size; small split and
    provenance files (.json, .txt) with their content too. Moving or copying
    the tree keeps it; adding, removing, resizing or editing what the build
    reads changes it. Video content is not read (FF++ is hundreds of GB).

    Returns:
        {"manual_dir": str(root), "input_files": n, "input_fingerprint": hex}.
    """
    root = epath.Path(root)
    digest = hashlib.sha256()
    files = 0
    for path in sorted(epath.Path(p) for p in paths):
        if path.is_dir():
            members = _files_under(path)
        elif path.exists():
            members = [path]
        else:
            digest.update(f"absent {path.relative_to(root)}\n".encode())
            continue
        for member in members:
            size = member.stat().length
            digest.update(f"{member.relative_to(root)}\0{size}\n".encode())
            if member.suffix.lower() in _HASHED_SUFFIXES and size <= _HASHED_MAX_BYTES:
                digest.update(member.read_bytes())
            files += 1
    return {"manual_dir": str(root), "input_files": files, "input_fingerprint": digest.hexdigest()}


def _files_under(folder: epath.Path) -> typing.List[epath.Path]:
    """Every file under `folder`, sorted (epath has no recursive glob)."""
    files, folders = [], [folder]
    while folders:
        for path in folders.pop().iterdir():
            (folders if path.is_dir() else files).append(path)
    return sorted(files)
