"""Video decoding, frame sampling and encoding for the signal layer (no TensorFlow).

FaceForensics++ (FF++) ships every video, and every manipulation mask, as an
H.264 MP4 (``raw`` lossless, ``c23`` and ``c40`` x264 at QP 23 and 40).
The paper samples frames evenly over a video,
so this module has to know the *real* number of frames of a file, not just the
number its container claims, and has to decode exactly the frames it picked.

Frame-counting strategy (``FrameSample``, ``iter_sampled_frames``):

* The container's frame count (``CAP_PROP_FRAME_COUNT``) is only a first
  guess. For MP4 it comes from the sample table and is normally exact; for
  other containers OpenCV estimates it from duration x fps (an AVI made by
  stream copy overstates it 24x), and it is missing (0) for raw streams.
* So it is checked before a single frame is handed out: FFmpeg demuxes the
  file with stream copy (every packet read, nothing decoded: ~40 ms for a
  short clip, mostly process start-up) and counts the video packets. When
  the container and the demuxer agree, the count is trusted and one
  decoding pass reads the sample; one more ``grab()`` after the last frame
  proves there is no frame after it, at no extra cost, since evenly spaced
  samples always include the last frame. When they disagree, or the
  container does not say, a first pass counts the frames by decoding
  (``grab()`` only, no colour conversion) and a second pass decodes the
  sample. Either way the indices handed out are those of the sample over the
  real frame count, and a consumer never has to start again.
  (Seeking is not used: H.264 seeks land on a keyframe, x264's default GOP is
  250 frames, so a seek costs more decoding than reading straight through when
  one frame in ~10-20 is sampled, and frame-accurate seeking is unreliable.)
* A file that decodes to *fewer* frames than its container lists is either a
  container that over-estimates or a truncated/corrupt file. The two are told
  apart by the demuxer's errors: a truncated file reports errors such as
  "partial file" or "Invalid NAL unit size", and then ``VideoError`` is raised.
* Only real video demuxers count: FFmpeg also "plays" text files and binary
  dumps as ANSI/BinText art (its ``tty``, ``bin``, ``xbin``, ``adf`` and
  ``idf`` demuxers), which would turn a ``.txt`` or a ``.bin`` of random
  bytes into a "video" of rendered characters; such files are refused.

``iter_frames`` streams frames of long videos (inference) and stops after
the last requested one; ``read_frames`` decodes the requested frames of a
video that may be shorter than asked for (FF++ mask videos) and says how long
it really is. A still image (PNG, JPEG, ...), which FFmpeg would open as a
one-frame video, is rejected.

Decoding goes through OpenCV's FFmpeg backend; encoding (``write_video``)
through the FFmpeg binary of ``imageio-ffmpeg`` (libx264 with ``-qp`` like
FF++'s c23/c40), or OpenCV's ``mp4v`` writer for a non-x264 path.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tempfile
from typing import Iterable, Iterator

import cv2
import numpy as np

from ffseg.constants import image_format
from ffseg.errors import FileError

__all__ = [
    "VideoError",
    "FrameSample",
    "iter_sampled_frames",
    "Decoder",
    "as_wanted",
    "check_stream_end",
    "sample_indices",
    "sample_frames",
    "iter_frames",
    "read_frames",
    "video_info",
    "write_video",
]


class VideoError(FileError):
    """A video (or mask video) that cannot be used: `VideoError(path, reason)`."""


def sample_indices(frame_count: int, num_frames: int | None) -> np.ndarray:
    """Evenly spaced frame indices over ``frame_count`` frames.

    Args:
        frame_count: the real number of frames of the video (>= 0).
        num_frames: how many to sample; ``None`` or ``>= frame_count`` means
            every frame.

    Returns:
        Sorted, unique int64 indices. The first and last frames are always
        included when ``num_frames >= 2``.
    """
    frame_count = int(frame_count)
    if frame_count < 0:
        raise ValueError(f"frame_count must be >= 0, got {frame_count}")
    if num_frames is not None and int(num_frames) < 1:
        raise ValueError(f"num_frames must be >= 1 or None, got {num_frames}")
    if num_frames is None or int(num_frames) >= frame_count:
        return np.arange(frame_count, dtype=np.int64)
    positions = np.linspace(0, frame_count - 1, int(num_frames))
    return np.unique(np.round(positions).astype(np.int64))


# --------------------------------------------------------------------------
# Opening and validating files


def _check_file(path: str) -> str | None:
    """Fails on files that cannot be a video; returns the still-image type, if any."""
    if not os.path.exists(path):
        raise VideoError(path, "file not found")
    if not os.path.isfile(path):
        raise VideoError(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise VideoError(path, "file is empty (0 bytes)")
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as error:
        raise VideoError(path, f"cannot be read ({error.strerror or error})") from error
    # FFmpeg's image2 demuxer opens a still image as a one-frame "video".
    return image_format(head)


def _open(path: str) -> cv2.VideoCapture:
    """Opens a checked file with OpenCV's FFmpeg backend; refuses what is not a video."""
    # Force the FFmpeg backend so that every file goes through the same
    # decoder (CAP_ANY may pick the image-sequence backend, e.g. for a '%').
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if not capture.isOpened():
        streams = _demux(path).stream_kinds
        if streams and "Video" not in streams:
            raise VideoError(
                path, f"cannot be opened as a video: it has no video stream "
                f"(only {', '.join(sorted(set(streams))).lower()})"
            )
        raise VideoError(
            path, "cannot be opened as a video (not a video file, or corrupt or truncated)"
        )
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width <= 0 or height <= 0:
        capture.release()
        raise VideoError(path, "has no video stream")
    reason = _text_art(path, capture)
    if reason is not None:
        capture.release()
        raise VideoError(path, f"cannot be opened as a video: {reason}")
    return capture


# FFmpeg's demuxers and decoders that render text or raw bytes as character
# art: a .txt, .nfo or .bin file "plays" as a video of rendered glyphs.
TEXT_ART_DEMUXERS = frozenset({"tty", "bin", "xbin", "adf", "idf"})
TEXT_ART_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})


def _fourcc(capture: cv2.VideoCapture) -> str:
    code = int(capture.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF
    return "".join(chr((code >> shift) & 0xFF) for shift in (0, 8, 16, 24))


def _text_art(path: str, capture: cv2.VideoCapture) -> str | None:
    """Why an opened file is text or bytes rendered as art, not a video; None for a video.

    OpenCV names the codec it decodes with (its FOURCC): "ansi" is the text
    renderer. The BinText family has no FOURCC (0), as raw video in AVI has;
    only for those is FFmpeg asked which demuxer and decoder it picked.
    """
    fourcc = _fourcc(capture)
    if fourcc.strip("\0 ").lower() == "ansi":
        return "FFmpeg reads it only as text rendered as ANSI art (its tty demuxer)"
    if fourcc != "\0\0\0\0":
        return None
    demuxed = _demux(path)
    if demuxed.format in TEXT_ART_DEMUXERS or demuxed.video_codec in TEXT_ART_CODECS:
        return (
            f"FFmpeg reads it only as bytes rendered as text art (its {demuxed.format} "
            f"demuxer, {demuxed.video_codec} decoder)"
        )
    return None


@dataclasses.dataclass(frozen=True)
class _Demuxed:
    """What FFmpeg reports when it demuxes a file's first video stream (stream copy).

    Attributes:
        format: the demuxer FFmpeg picked ("mov,mp4,m4a,3gp,3g2,mj2", "avi",
            "tty", ...), or None when it could not open the file.
        stream_kinds: the kind of each stream ("Video", "Audio", ...).
        video_codec: the first video stream's codec name ("h264", "ansi", ...).
        packets: video packets read, one per frame for the codecs FF++ and
            phones use; None when the stream could not be read.
        errors: FFmpeg's error lines (empty string when none).
    """

    format: str | None
    stream_kinds: tuple
    video_codec: str | None
    packets: int | None
    errors: str


def _demux(path: str) -> _Demuxed:
    """Demuxes ``path`` with FFmpeg (stream copy to the null muxer: no decoding, fast).

    The null muxer reads every packet, so FFmpeg reports a truncated file
    ("partial file") or broken NAL units that OpenCV's decoder silently
    stops at, and counts the packets.
    """
    import imageio_ffmpeg

    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin",
        "-loglevel", "repeat+level+info", "-i", path, "-map", "0:v:0", "-c", "copy",
        "-f", "null", "-progress", "pipe:1", "-nostats", "-",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, errors="replace")
    except OSError as error:
        return _Demuxed(None, (), None, None, f"ffmpeg could not be run ({error})")
    log = result.stderr
    found = re.search(r"^\[info\] Input #0, (.+?), from ", log, flags=re.MULTILINE)
    streams = re.findall(
        r"^\[info\]\s+Stream #0:\d+\S*: (\w+): (\w+)", log, flags=re.MULTILINE
    )
    codecs = [codec for kind, codec in streams if kind == "Video"]
    counts = re.findall(r"^frame=(\d+)$", result.stdout, flags=re.MULTILINE)
    errors = "\n".join(
        line for line in log.splitlines() if re.search(r"\[(error|fatal|panic)\]", line)
    )
    if result.returncode != 0 and not errors:
        errors = f"ffmpeg exited with status {result.returncode}"
    return _Demuxed(
        format=found.group(1) if found else None,
        stream_kinds=tuple(kind for kind, _ in streams),
        video_codec=codecs[0] if codecs else None,
        packets=int(counts[-1]) if counts and result.returncode == 0 else None,
        errors=errors,
    )


def _rotation(capture: cv2.VideoCapture) -> int:
    """The container's display rotation in degrees (0, 90, 180 or 270).

    OpenCV applies it while decoding (``CAP_PROP_ORIENTATION_AUTO``), so
    frames, width and height are already those of the upright picture.
    """
    value = capture.get(cv2.CAP_PROP_ORIENTATION_META)
    if not np.isfinite(value):
        return 0
    return int(round(value)) % 360


def _reported_count(capture: cv2.VideoCapture) -> int:
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    if not np.isfinite(count) or count <= 0:
        return 0
    return int(round(count))


def _short_read_error(
    path: str, decoded: int, reported: int, demuxed: _Demuxed | None = None
) -> VideoError | None:
    """The error for a file that decoded to fewer frames than it reports, if any."""
    errors = (demuxed or _demux(path)).errors
    if not errors:
        return None
    # Keep FFmpeg's last complaint, minus its "[h264 @ 0x55...]" context tag.
    last_line = re.sub(r"^(\[[^\]]*\]\s*)+", "", errors.splitlines()[-1])
    return VideoError(
        path,
        f"truncated or corrupt: the container lists {reported} frames but only "
        f"{decoded} could be decoded (ffmpeg: {last_line})",
    )


class Decoder:
    """Sequential reader over an open capture that knows its frame position.

    With `as_wanted` and `check_stream_end`, the building block of the
    readers here and of `ffseg.extract`, which reads a video and its mask
    video side by side.
    """

    def __init__(self, path: str):
        self.path = path
        self.image_kind = _check_file(path)
        self.capture = _open(path)
        self.reported = _reported_count(self.capture)
        self.position = 0  # frames grabbed so far == index of the next frame
        self.ended = False
        self.demuxed: _Demuxed | None = None  # FFmpeg's report, once asked for

    def demux(self) -> _Demuxed:
        """FFmpeg's report on the file (``_Demuxed``), asked for once."""
        if self.demuxed is None:
            self.demuxed = _demux(self.path)
        return self.demuxed

    def close(self) -> None:
        self.capture.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def grab(self) -> bool:
        if self.ended:
            return False
        if not self.capture.grab():
            self.ended = True
            return False
        self.position += 1
        return True

    def retrieve(self) -> np.ndarray:
        ok, bgr = self.capture.retrieve()
        if not ok or bgr is None:
            raise VideoError(self.path, f"frame {self.position - 1} could not be decoded")
        if bgr.ndim == 2:
            return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def frames(self, wanted: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Yields ``(index, frame)`` for the sorted ``wanted`` indices that exist.

        Stops after the last wanted index, or at the end of the stream.
        """
        for index in wanted:
            index = int(index)
            while self.position <= index:
                if not self.grab():
                    return
            if self.position - 1 == index:
                yield index, self.retrieve()

    def skip_to_end(self) -> int:
        while self.grab():
            pass
        return self.position


def as_wanted(indices) -> np.ndarray:
    """Sorted unique non-negative int64 frame indices."""
    if not isinstance(indices, (np.ndarray, list, tuple, range)):
        indices = list(indices)
    wanted = np.unique(np.asarray(indices, dtype=np.int64).ravel())
    if wanted.size and wanted[0] < 0:
        raise ValueError(f"frame indices must be >= 0, got {int(wanted[0])}")
    return wanted


def check_stream_end(decoder: Decoder) -> int:
    """Validates a stream that was read to its end; returns its real frame count."""
    count = decoder.position
    if count < decoder.reported:
        error = _short_read_error(decoder.path, count, decoder.reported, decoder.demux())
        if error is not None:
            raise error
    if count == 0:
        raise VideoError(decoder.path, "contains no decodable video frames")
    if count == 1 and decoder.image_kind:
        raise VideoError(decoder.path, f"is a still {decoder.image_kind} image, not a video")
    return count


def _ended_early(decoder: Decoder, missing: int) -> VideoError:
    """The error for a stream that ended before frame ``missing``."""
    try:
        count = check_stream_end(decoder)
    except VideoError as error:
        return error
    return VideoError(decoder.path, f"video has {count} frames; frame {missing} was requested")


# --------------------------------------------------------------------------
# Public reading API


def iter_frames(path, indices=None) -> Iterator[tuple[int, np.ndarray]]:
    """Decodes frames one at a time, in bounded memory.

    Args:
        path: the video file.
        indices: frame indices to yield (any order; duplicates ignored), or
            ``None`` for every frame.

    Yields:
        ``(index, frame)`` with ``frame`` an HxWx3 RGB uint8 array, in
        increasing index order.

    Raises:
        VideoError: the file cannot be read, is truncated, has no frames, or
            ends before a requested index. Reading stops after the last
            requested index, so the rest of a long file is never decoded.
    """
    path = os.fspath(path)
    with Decoder(path) as decoder:
        if indices is None:
            while decoder.grab():
                yield decoder.position - 1, decoder.retrieve()
            check_stream_end(decoder)
            return
        wanted = as_wanted(indices)
        produced = 0
        for item in decoder.frames(wanted):
            produced += 1
            yield item
        if produced < wanted.size:
            raise _ended_early(decoder, int(wanted[produced]))


def read_frames(path, indices, *, transform=None) -> tuple[dict, int | None]:
    """Decodes the requested frames that exist, tolerating a short video.

    Meant for a mask video that may be shorter than its video (FF++'s
    DeepFakeDetection): the caller learns exactly which frames have no mask
    and how long the mask video really is.

    Args:
        path: the video file.
        indices: frame indices wanted (any order; duplicates ignored).
        transform: optional ``f(index, frame) -> value`` applied to each
            frame as it is decoded (e.g. binarising a mask), so that only
            its result is held in memory.

    Returns:
        ``(frames, frame_count)``: ``{index: frame or transform(...)}`` for
        the requested indices that exist, and the real frame count when the
        video ended before the last requested index (``None`` otherwise).

    Raises:
        VideoError: missing, unreadable, not a video, no frames, truncated.
    """
    path = os.fspath(path)
    wanted = as_wanted(indices)
    found = {}
    with Decoder(path) as decoder:
        for index, frame in decoder.frames(wanted):
            found[index] = frame if transform is None else transform(index, frame)
        if len(found) == wanted.size:
            return found, None
        decoder.skip_to_end()
        return found, check_stream_end(decoder)


class FrameSample:
    """The evenly spaced frames of a video, laid out over its verified frame count.

    Creating one opens the video, checks it (``VideoError`` for a missing,
    empty, still-image, text or truncated file) and settles the real number
    of frames as the module docstring says, before a single frame is decoded
    for the caller; iterating decodes the sampled frames, one at a time, in
    bounded memory. This is the one sampling path of the package: training
    examples (``ffseg.signal.extract``), the sample dataset and
    ``ffseg detect`` all take the frames it hands out.

    Args:
        path: the video file.
        num_frames: frames to sample, evenly spaced (``sample_indices``);
            ``None``, or at least the frame count, means every frame.

    Attributes:
        path, num_frames: as given.
        frame_count: the real (decoded) number of frames.
        indices: the sampled frame indices, sorted int64.
        fps, width, height, rotation: as in ``video_info``.
        reported_frame_count: what the container claimed.

    Example:

    ```python
    from ffseg.signal import video

    sample = video.FrameSample("clip.mp4", 8)
    print(sample.frame_count, sample.indices)   # e.g. 12 [ 0  2  3  5  6  8  9 11]
    for index, frame in sample:                  # HxWx3 RGB uint8, one at a time
        ...
    ```
    """

    def __init__(self, path, num_frames: int | None):
        self.path = os.fspath(path)
        if num_frames is not None and int(num_frames) < 1:
            raise ValueError(f"num_frames must be >= 1 or None, got {num_frames}")
        self.num_frames = None if num_frames is None else int(num_frames)
        with Decoder(self.path) as decoder:
            capture = decoder.capture
            self.fps = float(capture.get(cv2.CAP_PROP_FPS))
            self.width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
            self.height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            self.rotation = _rotation(capture)
            self.reported_frame_count = decoder.reported
            demuxed = decoder.demux()
            if decoder.reported > 0 and demuxed.packets == decoder.reported:
                self.frame_count = decoder.reported
                if self.frame_count == 1 and decoder.image_kind:
                    raise VideoError(
                        self.path, f"is a still {decoder.image_kind} image, not a video"
                    )
            else:
                # The container does not say, or the demuxer disagrees with it:
                # count by decoding (grab only), which also finds a truncated file.
                decoder.skip_to_end()
                self.frame_count = check_stream_end(decoder)
        self.indices = sample_indices(self.frame_count, self.num_frames)

    def __len__(self) -> int:
        return int(self.indices.size)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yields ``(index, frame)``, HxWx3 RGB uint8, for every sampled index in order.

        Raises:
            VideoError: a frame could not be decoded, or the stream does not
                end where its verified count says (a file that changed, or a
                stream whose packets do not all decode).
        """
        count = self.frame_count
        with Decoder(self.path) as decoder:
            produced = 0
            for item in decoder.frames(self.indices):
                produced += 1
                yield item
            if produced < self.indices.size:
                decoder.skip_to_end()
                raise _short_read_error(self.path, decoder.position, count) or VideoError(
                    self.path,
                    f"decodes to {decoder.position} frames although its container and "
                    f"its demuxer list {count}: frame {int(self.indices[produced])} is missing",
                )
            # The last sampled frame is the last frame unless one frame is
            # sampled: one more grab proves the stream ends there.
            if self.indices.size and int(self.indices[-1]) == count - 1 and decoder.grab():
                raise VideoError(
                    self.path,
                    f"decodes to more frames than the {count} its container and its "
                    "demuxer list",
                )


def iter_sampled_frames(path, num_frames: int | None) -> Iterator[tuple[int, np.ndarray]]:
    """Yields ``(index, frame)`` of ``num_frames`` evenly spaced frames of a video.

    The generator form of ``FrameSample``: the sample is laid out over the
    verified frame count (containers that over- or under-report their count
    are handled) before the first frame is yielded, and a truncated file
    raises ``VideoError`` before anything is yielded.

    Args:
        path: the video file.
        num_frames: frames to sample (``None``: every frame).

    Yields:
        ``(index, frame)`` with ``frame`` an HxWx3 RGB uint8 array, in
        increasing index order.
    """
    yield from FrameSample(path, num_frames)


def sample_frames(path, num_frames: int | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Samples ``num_frames`` evenly spaced frames over the real frame count.

    Args:
        path: the video file.
        num_frames: frames to sample (``None``: all frames).

    Returns:
        ``(indices, frames)``: sorted int64 indices and the matching list of
        HxWx3 RGB uint8 frames (``FrameSample``, collected).

    Raises:
        VideoError: missing, unreadable, empty (0 bytes or 0 frames), not a
            video, truncated, or a requested frame could not be decoded. The
            message names the file.
    """
    sample = FrameSample(path, num_frames)
    frames = [frame for _, frame in sample]
    return sample.indices, frames


def video_info(path, *, exact: bool = True) -> dict:
    """Frame count, frame rate and frame size of a video.

    Args:
        path: the video file.
        exact: count frames by decoding the whole stream (``grab()`` only, no
            colour conversion) instead of trusting the container. The
            container's own figure is returned as ``reported_frame_count``.

    Returns:
        ``dict(frame_count, fps, width, height, reported_frame_count,
        rotation)``; ``frame_count`` is the container's figure when ``exact``
        is False (0 when the container does not say). ``width`` and ``height``
        are those of the decoded (upright) frames; ``rotation`` is the display
        rotation the container asked for, in degrees, already applied.
    """
    path = os.fspath(path)
    with Decoder(path) as decoder:
        capture = decoder.capture
        info = {
            "fps": float(capture.get(cv2.CAP_PROP_FPS)),
            "width": int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "reported_frame_count": decoder.reported,
            "rotation": _rotation(capture),
        }
        if exact:
            decoder.skip_to_end()
            info["frame_count"] = check_stream_end(decoder)
        else:
            info["frame_count"] = decoder.reported
    return info


# --------------------------------------------------------------------------
# Encoding


def _as_rgb_frame(frame, index: int, path: str) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"{path}: frame {index} has dtype {frame.dtype}; expected uint8")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(
            f"{path}: frame {index} has shape {frame.shape}; expected HxWx3 RGB or HxW gray"
        )
    return np.ascontiguousarray(frame)


def write_video(
    path,
    frames: Iterable[np.ndarray],
    *,
    fps: float = 25,
    qp: int | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
) -> int:
    """Encodes RGB uint8 frames into a video file, streaming (bounded memory).

    Args:
        path: output file; its folder is created if needed; overwritten.
        frames: iterable of HxWx3 RGB (or HxW gray) uint8 frames, all the
            same size.
        fps: frame rate written into the container.
        qp: constant quantiser for libx264/libx265 (FF++'s c23 and c40 are
            x264 at QP 23 and 40; 0 is lossless). ``None`` keeps the
            encoder's default rate control (x264: CRF 23).
        codec: an FFmpeg encoder name (default ``"libx264"``), run through
            imageio-ffmpeg's binary, or ``"mp4v"`` for OpenCV's MPEG-4 Part 2
            writer (a non-x264 path; ``qp`` and ``pix_fmt`` do not apply).
        pix_fmt: FFmpeg output pixel format; ``yuv420p`` (as in FF++) needs
            even width and height.

    Returns:
        The number of frames written.

    Raises:
        ValueError: no frames, wrong dtype/shape, size changes, odd size
            with a 4:2:0 format, or options the codec does not take.
        VideoError: the encoder failed (its message is included).
    """
    path = os.fspath(path)
    iterator = iter(frames)
    try:
        first = _as_rgb_frame(next(iterator), 0, path)
    except StopIteration:
        raise ValueError(f"{path}: no frames to write") from None
    height, width = first.shape[:2]
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)

    def checked():
        yield first
        for index, frame in enumerate(iterator, start=1):
            frame = _as_rgb_frame(frame, index, path)
            if frame.shape[:2] != (height, width):
                raise ValueError(
                    f"{path}: frame {index} is {frame.shape[1]}x{frame.shape[0]}; "
                    f"frame 0 was {width}x{height}"
                )
            yield frame

    if codec == "mp4v":
        if qp is not None:
            raise ValueError(f"{path}: codec 'mp4v' does not take qp")
        if pix_fmt != "yuv420p":
            raise ValueError(f"{path}: codec 'mp4v' only writes yuv420p")
        return _write_mp4v(path, checked(), fps, width, height)

    if pix_fmt.startswith(("yuv420", "nv12")) and (width % 2 or height % 2):
        raise ValueError(f"{path}: {pix_fmt} needs even width and height, got {width}x{height}")
    import imageio_ffmpeg

    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-v", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps}",
        "-i", "-", "-an", "-c:v", codec,
    ]
    if qp is not None:
        command += ["-qp", str(int(qp))]
    command += ["-pix_fmt", pix_fmt, path]
    # stderr goes to a file: a pipe could fill and deadlock while we write stdin.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=log)
        written = 0
        try:
            for frame in checked():
                process.stdin.write(frame.tobytes())
                written += 1
        except BrokenPipeError:
            pass
        except BaseException:
            process.kill()
            process.wait()
            _remove(path)
            raise
        finally:
            try:
                process.stdin.close()
            except BrokenPipeError:
                pass
        status = process.wait()
        if status != 0:
            log.seek(0)
            message = log.read().decode(errors="replace").strip() or f"exit status {status}"
            _remove(path)
            raise VideoError(path, f"ffmpeg ({codec}) failed: {message}")
    return written


def _write_mp4v(path: str, frames: Iterator[np.ndarray], fps, width, height) -> int:
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    if not writer.isOpened():
        raise VideoError(path, "OpenCV could not open an mp4v writer")
    written = 0
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            written += 1
    except BaseException:
        writer.release()
        _remove(path)
        raise
    writer.release()
    return written


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
