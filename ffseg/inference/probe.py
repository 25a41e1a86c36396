"""Reading the inputs of ``ffseg detect``: is a file an image, a video, or neither?

Only real image decoders (OpenCV's) and real video demuxers (FFmpeg's,
through OpenCV) count. A file that is neither gets one ``InputError`` whose
reason starts with "not a readable image or video": a file of random bytes,
a text file whatever its name, and also text or raw bytes that FFmpeg would
render as character art (``ffseg.signal.video`` refuses its tty/bin demuxers).
C libraries' own complaints on file descriptor 2 are captured
(``capture_native_stderr``), so that ``ffseg detect`` prints one line per
failed input.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

import cv2
import numpy as np

from ffseg.constants import image_format
from ffseg.errors import FileError
from ffseg.signal import video

__all__ = ["InputError", "capture_native_stderr", "check_input", "read_image", "probe"]


class InputError(FileError):
    """An input file that is neither a readable image nor a readable video:
    `InputError(path, reason)`."""


@contextlib.contextmanager
def capture_native_stderr(messages: list):
    """Collects what C libraries print on file descriptor 2 into ``messages``.

    libjpeg, libpng and FFmpeg write their complaints straight to fd 2 while
    a file is being probed ("Premature end of JPEG file", "moov atom not
    found"), and TensorFlow logs a screenful when it is imported, whatever
    ``TF_CPP_MIN_LOG_LEVEL`` says. They must not spill around the one-line
    errors that ``ffseg detect`` prints, so they are captured; a decoded
    image keeps its decoder's lines as warnings. Python's own ``sys.stderr``
    writes made meanwhile are captured too: keep the block short.
    """
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (an embedded interpreter): nothing to capture
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            messages.extend(line.strip() for line in text.splitlines() if line.strip())


# --------------------------------------------------------------------------
# Reading inputs


def check_input(path: str) -> None:
    """Fails with ``InputError`` on a path that cannot be an input file at all."""
    if not os.path.exists(path):
        raise InputError(path, "file not found")
    if os.path.isdir(path):
        raise InputError(path, "is a folder, not an image or a video file")
    if not os.path.isfile(path):
        raise InputError(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise InputError(path, "file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise InputError(path, "permission denied")


def read_image(path) -> tuple[np.ndarray | None, list[str]]:
    """Decodes a still image with OpenCV.

    Returns:
        ``(image, warnings)``: the HxWx3 RGB uint8 image (EXIF orientation
        applied, alpha dropped, 16-bit scaled to 8), or ``None`` when OpenCV
        cannot read the file as an image; and the decoder's warnings (e.g. a
        truncated JPEG decodes, grey at the bottom, with "Premature end of
        JPEG file").
    """
    path = os.fspath(path)
    messages: list[str] = []
    with capture_native_stderr(messages):
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        return None, messages
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), messages


def probe(path) -> tuple[str, object, list[str]]:
    """Decides whether ``path`` is an image or a video, image first.

    An image file that holds several pictures (an animated GIF, PNG or WebP)
    is a video when FFmpeg reads it as one.

    Returns:
        ``("image", rgb_frame, warnings)`` or ``("video", info, [])`` where
        ``info`` is ``video.video_info(path, exact=False)``.

    Raises:
        InputError: missing, empty, unreadable, or neither an image OpenCV
            decodes nor a video its FFmpeg backend opens.
    """
    path = os.fspath(path)
    check_input(path)
    image, warnings = read_image(path)
    if image is not None:
        pages = _image_count(path)
        if pages > 1:
            # An animated GIF, PNG or WebP: score it as the video it is, if
            # FFmpeg reads it as one; otherwise (a multi-page TIFF) say that
            # only the first picture was scored.
            messages: list[str] = []
            try:
                with capture_native_stderr(messages):
                    info = video.video_info(path, exact=True)  # small files: count them
            except video.VideoError:
                info = {"frame_count": 0}
            if info["frame_count"] > 1:
                return "video", info, []
            warnings = warnings + [f"the file holds {pages} images; only the first was scored"]
        return "image", image, warnings
    kind = _image_signature(path)
    if kind is not None:
        detail = f": {warnings[-1]}" if warnings else ""
        raise InputError(path, f"a {kind} image that OpenCV cannot decode (corrupt, "
                               f"truncated or unsupported{detail})")
    messages: list[str] = []
    try:
        with capture_native_stderr(messages):
            info = video.video_info(path, exact=False)
    except video.VideoError as error:
        raise InputError(path, f"not a readable image or video: {error.reason}") from None
    return "video", info, []


def _image_count(path: str) -> int:
    """How many pictures an image file holds (frames of an animation, pages of a TIFF)."""
    messages: list[str] = []
    try:
        with capture_native_stderr(messages):
            return int(cv2.imcount(path))
    except cv2.error:
        return 1


def _image_signature(path: str) -> str | None:
    """The image format a file's first bytes announce, if any."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    return image_format(head)
