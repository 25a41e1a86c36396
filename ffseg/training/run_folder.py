"""Run folders that never lose a result.

A run folder (`model_dir`) holds one training run: `config.json` (written
before training starts), the steps' checkpoints and records, TensorBoard
logs, and at the end `model.keras`, `export/` and `training_summary.json`
(the summary; evaluation writes its own `results.json`). What `train` does
with a folder is decided here, before anything is written:

| the folder holds                    | plain run | `resume`        | `overwrite`         |
|-------------------------------------|-----------|-----------------|---------------------|
| nothing (missing or empty)          | trains    | trains          | trains              |
| an unfinished run, same config      | refused   | continues it    | moves it aside      |
| a finished run, same config         | refused   | nothing to do   | moves it aside      |
| a run with a different config       | refused   | refused         | moves it aside      |
| other files (no config.json)        | refused   | refused         | moves it aside      |
| a file, not a folder                | refused   | refused         | refused             |

"Moves it aside" renames the folder to `<model_dir>.old-<YYYYmmdd-HHMMSS>`
and says so in the log: nothing is deleted. A refusal is a `RunFolderError`
whose one-line message names the folder, the differing config keys, and the
ways on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time

from ffseg import config as config_lib
from ffseg.errors import FileError

CONFIG_FILE = "config.json"
SUMMARY_FILE = "training_summary.json"
# ffseg 0.1 wrote its training summary here (a dict with "stages").
LEGACY_SUMMARY_FILE = "results.json"

NEW, RESUME, FINISHED, OVERWRITE = "new", "resume", "finished", "overwrite"


class RunFolderError(FileError):
    """A `model_dir` that this run may not write into, and why."""


@dataclasses.dataclass(frozen=True)
class RunFolderPlan:
    """What `train` will do with a run folder (see the module's table).

    Args:
        path: the folder.
        action: "new" (train from scratch), "resume" (continue the run in
            it), "finished" (a finished run: nothing to do) or "overwrite"
            (move the folder aside, then train from scratch).
    """

    path: str
    action: str


def _read_config(path: str):
    try:
        with open(path) as f:
            return config_lib.ExperimentConfig.from_dict(json.load(f))
    except (OSError, ValueError) as error:  # ConfigError and JSON errors are ValueErrors
        return error


def is_finished(model_dir: str) -> bool:
    """Whether the run in `model_dir` finished (its summary is written)."""
    if os.path.exists(os.path.join(model_dir, SUMMARY_FILE)):
        return True
    legacy = os.path.join(model_dir, LEGACY_SUMMARY_FILE)
    try:
        with open(legacy) as f:
            return "stages" in json.load(f)
    except (OSError, ValueError, TypeError):
        return False


def plan(model_dir: str, config, *, resume: bool = False, overwrite: bool = False):
    """Decides what to do with `model_dir`; writes nothing.

    Returns:
        a `RunFolderPlan`.

    Raises:
        RunFolderError: the folder may not be used this way; the message
            says why and what to pass instead.
        ValueError: both `resume` and `overwrite`.
    """
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: choose one")
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise RunFolderError(model_dir, "is a file, not a folder: give --model_dir a folder")
    if not os.path.isdir(model_dir) or not os.listdir(model_dir):
        return RunFolderPlan(model_dir, NEW)
    if overwrite:
        return RunFolderPlan(model_dir, OVERWRITE)
    config_path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(config_path):
        raise RunFolderError(
            model_dir,
            "holds files but no training run (no config.json): choose a new or empty "
            "--model_dir, or pass --overwrite to move this folder aside",
        )
    old = _read_config(config_path)
    if isinstance(old, Exception):
        raise RunFolderError(
            model_dir,
            f"holds a config.json that is not a readable ffseg config ({old}): pass "
            "--overwrite to move this folder aside, or choose another --model_dir",
        )
    changed = config_lib.differences(old, config)
    if changed:
        raise RunFolderError(
            model_dir,
            f"holds a run with a different config ({'; '.join(changed)}): --resume continues "
            "a run only with its own config; pass --overwrite to move that run aside and "
            "start anew, or choose another --model_dir",
        )
    if is_finished(model_dir):
        if resume:
            return RunFolderPlan(model_dir, FINISHED)
        raise RunFolderError(
            model_dir,
            "holds a finished run of this config: nothing to train (--resume does nothing "
            "on a finished run); pass --overwrite to move it aside and train again",
        )
    if resume:
        return RunFolderPlan(model_dir, RESUME)
    raise RunFolderError(
        model_dir,
        "holds an unfinished run of this config (killed, or still running): pass --resume "
        "to continue it, or --overwrite to move it aside and start anew",
    )


def move_aside(model_dir: str) -> str:
    """Renames `model_dir` to a free `<model_dir>.old-<timestamp>`; returns it."""
    base = f"{os.path.normpath(model_dir)}.old-{time.strftime('%Y%m%d-%H%M%S')}"
    target, count = base, 1
    while os.path.exists(target):
        count += 1
        target = f"{base}-{count}"
    os.rename(model_dir, target)
    logging.info("Moved the previous run in %s aside to %s (--overwrite)", model_dir, target)
    return target


def worker_folder(model_dir: str, task: str, *, resume: bool) -> str:
    """The folder of a non-chief worker of a multi-worker run: `<model_dir>.<task>`.

    Only the chief writes the run folder; every other worker keeps its own
    copies (its `BackupAndRestore` backups above all) beside it, under a name
    fixed by its task, so that a cluster restarted with `--resume` finds each
    worker's backup where it left it and every worker resumes at the epoch
    the chief resumes at. Without `resume` an earlier worker folder is moved
    aside (never deleted), so a new run never starts from a stale backup.
    """
    path = f"{os.path.normpath(model_dir)}.{task}"
    if os.path.exists(path) and not resume:
        move_aside(path)
    os.makedirs(path, exist_ok=True)
    return path


def read_summary(model_dir: str) -> dict:
    """The finished run's summary ({} for a run of ffseg 0.1, which wrote none)."""
    path = os.path.join(model_dir, SUMMARY_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def write_new_file(path: str, text: str) -> None:
    """Writes `text` into `path`, which must not exist yet (mode "x")."""
    with open(path, "x") as f:
        f.write(text)
