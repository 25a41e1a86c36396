"""Where ``ffseg detect`` writes, decided before any input is read; writes that replace nothing.

Outputs never replace anything the user has. For each input, a name is
chosen up front (``plan_outputs``) such that none of its files
(``<name>.json`` and, with overlays, ``<name>.png`` and ``<name>.mp4``, the
overlay's kind being unknown until the input is read) is an input of the
run, an output of another input of the run, or an existing file: a name
that is taken gets ``-2``, ``-3``, ... With ``overwrite=True`` an existing
file may be replaced (an earlier run's result), but an input never is.

Every file is first written under a hidden temporary name in the output
folder, then moved into place (``publish``): without ``overwrite`` by a hard
link that fails if the name was taken meanwhile, so nothing is replaced even
by a race. A failed output leaves nothing behind, and its error names the
real output path, never the temporary one.
"""

from __future__ import annotations

import dataclasses
import os
import uuid

from ffseg.errors import FileError

__all__ = ["OutputError", "OutputPaths", "plan_outputs", "publish", "remove_quietly"]

JSON_SUFFIX = ".json"
IMAGE_OVERLAY_SUFFIX = ".png"
VIDEO_OVERLAY_SUFFIX = ".mp4"


class OutputError(FileError):
    """An output file that could not be written: `OutputError(path, reason)`."""


@dataclasses.dataclass(frozen=True)
class OutputPaths:
    """The files one input's results go to.

    Attributes:
        name: the chosen name (the input's stem, perhaps with ``-2``...).
        json: the result document.
        image_overlay, video_overlay: the overlay for an image or a video
            input (``None`` when no overlay is written).
        overwrite: whether an existing file at these paths may be replaced.
    """

    name: str
    json: str
    image_overlay: str | None
    video_overlay: str | None
    overwrite: bool = False

    def overlay(self, kind: str) -> str | None:
        """The overlay path for an input of ``kind`` ("image" or "video")."""
        return self.image_overlay if kind == "image" else self.video_overlay

    def targets(self) -> tuple[str, ...]:
        return tuple(p for p in (self.json, self.image_overlay, self.video_overlay) if p)


def _identity(path: str):
    """A key that two spellings of the same file share (also for files not yet there)."""
    try:
        stat = os.stat(path)
        return ("inode", stat.st_dev, stat.st_ino)
    except OSError:
        return ("path", os.path.normcase(os.path.realpath(path)))


def _stem(path) -> str:
    return os.path.splitext(os.path.basename(os.path.normpath(os.fspath(path))))[0] or "input"


def plan_outputs(
    paths,
    output_dir,
    *,
    names=None,
    overlay: bool = True,
    overwrite: bool = False,
) -> list[OutputPaths]:
    """Chooses every input's output files before the first input is read.

    Args:
        paths: the input files, in order (they need not exist).
        output_dir: the output folder (it need not exist yet).
        names: wished-for names, one per input (default: each input's file
            name without its extension).
        overlay: whether overlays will be written (their names are reserved
            too).
        overwrite: whether an existing file (not an input) may be replaced.

    Returns:
        One ``OutputPaths`` per input. No path of one collides with a path
        of another, with an input, or (unless ``overwrite``) with anything
        that exists; with ``overwrite``, a name whose file exists but is not
        a regular file (a folder) is skipped as well.

    Example:

    ```python
    from ffseg.inference.outputs import plan_outputs

    (talk_mkv, talk_mp4) = plan_outputs(["ow/talk.mkv", "ow/talk.mp4"], "ow")
    print(talk_mkv.video_overlay)   # ow/talk-2.mp4: ow/talk.mp4 is an input
    ```
    """
    paths = [os.fspath(path) for path in paths]
    names = list(names) if names is not None else [_stem(path) for path in paths]
    if len(names) != len(paths):
        raise ValueError(f"{len(names)} names for {len(paths)} inputs")
    folder = os.fspath(output_dir)
    inputs = {_identity(path) for path in paths}
    claimed: set = set()
    suffixes = [JSON_SUFFIX] + ([IMAGE_OVERLAY_SUFFIX, VIDEO_OVERLAY_SUFFIX] if overlay else [])

    def free(target: str) -> bool:
        key = _identity(target)
        if key in inputs or key in claimed:
            return False
        if not os.path.lexists(target):
            return True
        return overwrite and os.path.isfile(target) and not os.path.islink(target)

    plans = []
    for stem in names:
        stem = stem or "input"
        number = 1
        while True:
            name = stem if number == 1 else f"{stem}-{number}"
            targets = [os.path.join(folder, name + suffix) for suffix in suffixes]
            if all(free(target) for target in targets):
                break
            number += 1
        claimed.update(_identity(target) for target in targets)
        plans.append(
            OutputPaths(
                name=name,
                json=targets[0],
                image_overlay=targets[1] if overlay else None,
                video_overlay=targets[2] if overlay else None,
                overwrite=overwrite,
            )
        )
    return plans


def temporary_path(final: str) -> str:
    """A hidden, unique name beside ``final`` that keeps its extension (encoders go by it)."""
    folder, base = os.path.split(final)
    stem, suffix = os.path.splitext(base)
    return os.path.join(folder, f".{stem}.{uuid.uuid4().hex[:12]}.partial{suffix}")


def publish(temporary: str, final: str, *, overwrite: bool = False) -> None:
    """Moves a finished temporary file to its final name.

    Without ``overwrite`` the final name must still be free: a hard link
    fails on a taken name, atomically. Raises ``OutputError`` naming
    ``final``; the temporary file is removed either way.
    """
    try:
        if overwrite:
            if os.path.lexists(final) and not os.path.isfile(final):
                raise IsADirectoryError(21, "is not a regular file", final)
            os.replace(temporary, final)
            return
        try:
            os.link(temporary, final)
        except FileExistsError:
            raise OutputError(final, "already exists (it appeared during the run); not replaced")
        except OSError as error:
            if error.errno not in _NO_LINKS:
                raise
            # A file system without hard links: check, then rename.
            if os.path.lexists(final):
                raise OutputError(final, "already exists; not replaced") from None
            os.rename(temporary, final)
    except OutputError:
        raise
    except OSError as error:
        raise OutputError(final, f"cannot be written ({error.strerror or error})") from None
    finally:
        remove_quietly(temporary)


# errno values of file systems that do not do hard links (EPERM, EXDEV, EMLINK, ENOTSUP).
_NO_LINKS = {1, 18, 31, 95}


def remove_quietly(path: str | None) -> None:
    """Removes a file if it is there (cleaning up after a failure)."""
    if path is None:
        return
    try:
        os.remove(path)
    except OSError:
        pass
