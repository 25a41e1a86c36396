"""Training examples from one video: face crops, aligned masks, noise labels.

This is the per-video step of the FaceForensics++ builder (no TensorFlow):
sample frames evenly (``video.FrameSample``), find the face in each (dlib,
1.3x square box; see ``ffseg.signal.faces``), crop the frame and its
manipulation mask with the *same* box, in lockstep (a mask frame belongs to
the frame of the same index), and compute the noise label of the image crop,
the wavelet Wiener residual of paper Eq. 4-5 (``ffseg.signal.noise``),
reduced to one channel.

Memory. The paper protocol samples up to 1080 frames of a video of up to
1920x1080, 6.2 MB a frame: 6.7 GB if the sampled frames were held at once.
So the video and its mask video are decoded side by side, one sampled frame
at a time, and each frame is cropped as soon as its face box is known, then
let go. A frame where the detector found no face takes the box of the
nearest frame that has one (``faces.BoxTracker``), which may come later:
such frames wait, with their mask frames, up to ``max_pending_bytes``;
frames past that are decoded a second time once their box is known.

What is kept until the end is the small crops: the size x size image and
its bit-packed mask, 0.28 MB a frame at 299 px (0.3 GB for 1080 frames).
Nothing is handed out before the whole video and mask video were read and
checked, because some faults show only at the end (a truncated file; a mask
video that is black in every sampled frame; no face anywhere), and a video
that fails must give no example at all. The noise label, the largest part
of an example (299 x 299 float32), is computed as each example is taken.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Iterator

import numpy as np

from ffseg.constants import BOX_SCALE, CROP_SIZE
from ffseg.signal import faces, masks, noise, video
from ffseg.timing import timed

__all__ = ["MAX_PENDING_BYTES", "extract_video", "iter_extract_video"]

# Frames without a face that wait for the nearest frame with one: about 32
# frames of 1920x1080 with their masks, 218 of 640x480.
MAX_PENDING_BYTES = 256 * 2**20

_default_detector = None


def _detector() -> faces.FaceDetector:
    # dlib deserialises its model on creation (tens of ms): share one default.
    global _default_detector
    if _default_detector is None:
        _default_detector = faces.FaceDetector()
    return _default_detector


def extract_video(
    video_path,
    mask_path,
    *,
    num_frames: int | None,
    size: int = CROP_SIZE,
    sigma: float,
    detector: faces.FaceDetector | None = None,
    frame_indices=None,
    scale: float = BOX_SCALE,
    mask_threshold: int | None = None,
    timings: dict | None = None,
    max_pending_bytes: int = MAX_PENDING_BYTES,
) -> tuple[list[dict], list[dict]]:
    """Face crops, masks and noise labels of the sampled frames of one video, as a list.

    ``iter_extract_video`` with its examples collected: each is ~0.7 MB at
    299 px, so a builder of many frames should iterate instead.

    Returns:
        ``(examples, skipped)``, both lists (see ``iter_extract_video``).
    """
    examples, skipped = iter_extract_video(
        video_path, mask_path, num_frames=num_frames, size=size, sigma=sigma,
        detector=detector, frame_indices=frame_indices, scale=scale,
        mask_threshold=mask_threshold, timings=timings, max_pending_bytes=max_pending_bytes,
    )
    return list(examples), skipped


def iter_extract_video(
    video_path,
    mask_path,
    *,
    num_frames: int | None,
    size: int = CROP_SIZE,
    sigma: float,
    detector: faces.FaceDetector | None = None,
    frame_indices=None,
    scale: float = BOX_SCALE,
    mask_threshold: int | None = None,
    timings: dict | None = None,
    max_pending_bytes: int = MAX_PENDING_BYTES,
) -> tuple[Iterator[dict], list[dict]]:
    """Face crops, masks and noise labels of the sampled frames of one video, one by one.

    Reads the video and its mask video in bounded memory (module docstring)
    and checks both whole before it returns: every error below is raised by
    this call, never while iterating, so a caller that gets an iterator gets
    every example of the video.

    Args:
        video_path: the (real or manipulated) video.
        mask_path: its FF++ mask video, or ``None`` for a real video (all-zero
            masks).
        num_frames: frames to sample evenly over the real frame count
            (``None``: all). Ignored when ``frame_indices`` is given.
        size: side of the square crops (299 for Xception).
        sigma: noise standard deviation of the Wiener denoiser, 0..255 units
            (5 for c23, 10 for c40; ``ffseg.constants.NOISE_SIGMA``).
        detector: a ``faces.FaceDetector``; default ``FaceDetector()``. Use
            the same settings at inference.
        frame_indices: explicit frame indices instead of even sampling;
            indices past the end of the video are reported as skipped.
        scale: face box enlargement (1.3 in FF++ and the paper).
        mask_threshold: passed to ``masks.binary_mask``.
        timings: optional dict; seconds spent are added under ``"decode"``,
            ``"mask"`` (mask decoding and thresholding), ``"detect"``,
            ``"crop"`` and ``"noise"`` (the noise labels while iterating).
        max_pending_bytes: memory for frames without a face (and their mask
            frames) that wait for the nearest frame with one; frames beyond
            it are decoded again once their box is known. Results do not
            depend on it.

    Returns:
        ``(examples, skipped)``. ``examples`` is an iterator over dicts
        ``{"image": size x size x 3 uint8, "mask": size x size x 1 uint8 in
        {0,1}, "noise": size x size float32, "frame": int, "box": (x0, y0, x1,
        y1), "detected": bool, "flags": [str, ...]}``, in frame order; each
        noise label is computed as its example is taken. ``detected`` is
        False where the box was borrowed from the nearest frame with a face
        (by index distance, the earlier one on a tie). ``flags`` lists why a
        kept frame of a manipulated video deserves a look: its mask frame
        marks no pixel (or every pixel), its mask lies wholly outside the
        face crop, or the mask video is longer than the video (masks are then
        assumed to start at frame 0). ``skipped`` is a list, sorted by frame,
        of ``{"frame": int, "reason": str}``: a frame past the end of the
        mask video ("mask video has N frames") gets no example, never an
        all-zero mask.

    Raises:
        VideoError: the video or mask video is unreadable, empty or truncated;
            mask frames are not the size of the video's frames, or are shown
            with another rotation; or every sampled mask frame is empty (all
            black) or full (all white), which says nothing about where the
            manipulation is. Faults of the video are reported before faults
            of the mask video.
        NoFaceError: no face in any usable sampled frame.
    """
    if isinstance(sigma, bool) or not (
        isinstance(sigma, (int, float, np.floating, np.integer)) and sigma > 0
    ):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    extraction = _Extraction(
        os.fspath(video_path),
        None if mask_path is None else os.fspath(mask_path),
        size=int(size),
        detector=detector or _detector(),
        scale=scale,
        mask_threshold=mask_threshold,
        timings=timings,
        max_pending_bytes=max_pending_bytes,
    )
    records = extraction.run(num_frames, frame_indices)
    skipped = sorted(extraction.skipped, key=lambda s: s["frame"])
    return _examples(records, int(size), sigma, timings), skipped


def _examples(records: collections.deque, size: int, sigma, timings) -> Iterator[dict]:
    # Records are dropped as they are handed out, so that a consumer that
    # writes each example away holds one example at a time.
    while records:
        record = records.popleft()
        image = record.image
        with timed(timings, "crop"):
            if record.mask is None:
                mask = masks.empty_mask((size, size))
            else:
                mask = np.unpackbits(record.mask, count=size * size).reshape(size, size)
        with timed(timings, "noise"):
            noise_map = noise.to_gray(noise.noise_residual(image, sigma))
        yield {
            "image": image,
            "mask": mask[:, :, None],
            "noise": noise_map.astype(np.float32, copy=False),
            "frame": record.index,
            "box": tuple(int(v) for v in record.box),
            "detected": record.detected,
            "flags": record.flags,
        }


@dataclasses.dataclass(eq=False)
class _Frame:
    """A kept frame whose box is not known yet, as handed to ``faces.BoxTracker``."""

    index: int
    pixels: np.ndarray | None  # None: let go, to be decoded again
    mask: np.ndarray | None  # the binarised mask frame; None: real video, or let go
    marks: tuple[bool, bool] | None  # (any, all) of the mask frame; None: real video
    held: int = 0  # bytes counted against max_pending_bytes


@dataclasses.dataclass(eq=False)
class _Record:
    """What is kept of a frame once it is cropped: ~0.28 MB at 299 px."""

    index: int
    box: tuple
    detected: bool
    marks: tuple[bool, bool] | None
    image: np.ndarray | None = None
    mask: np.ndarray | None = None  # np.packbits of the cropped mask
    outside: bool = False  # the mask frame marks pixels, none inside the crop
    flags: list = dataclasses.field(default_factory=list)


class _Extraction:
    """One video and its mask video, read side by side (see the module docstring).

    The video's frames come from ``video.FrameSample``, the package's one
    sampling path (or, with ``frame_indices``, from a ``video.Decoder`` as in
    ``video.read_frames``); the mask video is read frame by frame in lockstep
    with the same checks as ``video.read_frames``.
    """

    def __init__(self, video_path, mask_path, *, size, detector, scale, mask_threshold,
                 timings, max_pending_bytes):
        self.video_path = video_path
        self.mask_path = mask_path
        self.size = size
        self.detector = detector
        self.scale = scale
        self.mask_threshold = mask_threshold
        self.timings = timings
        self.max_pending_bytes = max_pending_bytes
        self.mask_decoder = None
        self._reset()

    def _reset(self) -> None:
        self._close_mask()
        self.decoded: list[int] = []  # indices of the video frames read in this pass
        self.frame_shape = None
        self.kept = 0  # frames with a mask frame (all of a real video's)
        self.marks: list[tuple[bool, bool]] = []  # of each kept frame's mask
        self.tracker = faces.BoxTracker()
        self.records: collections.deque = collections.deque()  # cropped frames, in order
        self.skipped: list[dict] = []
        self.pending_bytes = 0
        self.mask_error: video.VideoError | None = None
        self.mask_count: int | None = None  # the mask video's length, once its end was reached

    def run(self, num_frames, frame_indices) -> collections.deque:
        """Reads both videos; returns the records of the kept frames, in frame order."""
        try:
            video_count = self._read_video(num_frames, frame_indices)
            self._finish(video_count)
        finally:
            self._close_mask()
        return self.records

    # --- the video -----------------------------------------------------------------

    def _read_video(self, num_frames, frame_indices) -> int | None:
        """Reads the sampled frames; returns the video's real frame count where known."""
        if frame_indices is not None:
            wanted = video.as_wanted(np.asarray(list(frame_indices), dtype=np.int64))
            with self._open_video() as decoder:
                self._start()
                self._add_frames(decoder.frames(wanted))
                if len(self.decoded) == wanted.size:
                    return None
                with timed(self.timings, "decode"):
                    decoder.skip_to_end()
                    count = video.check_stream_end(decoder)
            for index in wanted[len(self.decoded):]:
                self.skipped.append({"frame": int(index), "reason": f"video has {count} frames"})
            return count

        with timed(self.timings, "decode"):
            sample = video.FrameSample(self.video_path, num_frames)
        self._start()
        self._add_frames(sample)
        # The mask video is checked for frames past the video's end only when
        # the sample reached it (even sampling of >= 2 frames ends on the last frame).
        last = int(sample.indices[-1]) if len(sample) else -1
        return sample.frame_count if last == sample.frame_count - 1 else None

    def _open_video(self):
        with timed(self.timings, "decode"):
            return video.Decoder(self.video_path)

    def _start(self) -> None:
        """Checks and opens the mask video, before the first video frame is taken."""
        self._reset()
        if self.mask_path is None:
            return
        try:
            _check_same_rotation(self.video_path, self.mask_path)
            with timed(self.timings, "mask"):
                self.mask_decoder = video.Decoder(self.mask_path)
        except video.VideoError as error:
            self.mask_error = error

    def _add_frames(self, frames) -> None:
        iterator = iter(frames)
        while True:
            with timed(self.timings, "decode"):
                item = next(iterator, None)
            if item is None:
                return
            self._add(*item)

    def _add(self, index: int, pixels: np.ndarray) -> None:
        """Takes one sampled video frame: its mask frame, its face, its crop if decided."""
        index = int(index)
        self.decoded.append(index)
        if self.frame_shape is None:
            self.frame_shape = pixels.shape
        if self.mask_error is not None:
            # The result is that error, unless the video has one of its own,
            # which comes first: read on only to find it.
            return
        mask = marks = None
        if self.mask_path is not None:
            mask = self._mask_frame(index)
            if self.mask_error is not None:
                return
            if mask is None:
                self.skipped.append(
                    {"frame": index, "reason": f"mask video has {self.mask_count} frames"}
                )
                return
            marks = (bool(mask.any()), bool(mask.all()))
            self.marks.append(marks)
        self.kept += 1

        with timed(self.timings, "detect"):
            face = self.detector.largest(pixels)
            box = None if face is None else faces.face_box(face, pixels.shape, self.scale)
        frame = _Frame(index, pixels, mask, marks)
        if box is None:
            held = pixels.nbytes + (0 if mask is None else mask.nbytes)
            if self.pending_bytes + held > self.max_pending_bytes:
                frame.pixels = frame.mask = None
            else:
                frame.held = held
                self.pending_bytes += held
        for decided in self.tracker.add(index, box, frame):
            self._crop(*decided)

    def _crop(self, frame: _Frame, box, detected: bool) -> None:
        self.pending_bytes -= frame.held
        record = _Record(frame.index, box, detected, frame.marks)
        self.records.append(record)
        if frame.pixels is None:
            return  # decoded again at the end
        with timed(self.timings, "crop"):
            record.image = faces.crop(frame.pixels, box, self.size)
            if frame.mask is not None:
                self._crop_mask(record, frame.mask)

    def _crop_mask(self, record: _Record, mask: np.ndarray) -> None:
        cropped = faces.crop_mask(mask, record.box, self.size)
        record.outside = record.marks[0] and not cropped.any()
        record.mask = np.packbits(cropped)

    # --- the mask video ------------------------------------------------------------

    def _mask_frame(self, index: int) -> np.ndarray | None:
        """The binarised mask frame ``index``; ``None`` past the end or on an error."""
        decoder = self.mask_decoder
        if self.mask_count is not None:
            return None
        with timed(self.timings, "mask"):
            try:
                while decoder.position <= index:
                    if not decoder.grab():
                        self.mask_count = video.check_stream_end(decoder)
                        return None
                return self._binarise(index, decoder.retrieve())
            except video.VideoError as error:
                self.mask_error = error
                return None

    def _binarise(self, index: int, mask_frame: np.ndarray) -> np.ndarray:
        if mask_frame.shape[:2] != self.frame_shape[:2]:
            raise video.VideoError(
                self.mask_path,
                f"mask frame {index} is {mask_frame.shape[1]}x{mask_frame.shape[0]} but the "
                f"frames of {self.video_path} are "
                f"{self.frame_shape[1]}x{self.frame_shape[0]}",
            )
        return masks.binary_mask(mask_frame, self.mask_threshold)

    def _close_mask(self) -> None:
        if self.mask_decoder is not None:
            self.mask_decoder.close()
            self.mask_decoder = None

    # --- after the last frame ------------------------------------------------------

    def _finish(self, video_count: int | None) -> None:
        """Checks what needs the whole pass; crops the frames still waiting."""
        longer = False
        if (self.mask_decoder is not None and self.mask_error is None and self.decoded
                and video_count is not None):
            # One mask frame past the video's end tells a mask video longer
            # than its video.
            longer = self._mask_frame(video_count) is not None
        self._close_mask()
        if self.mask_error is not None:
            raise self.mask_error
        if self.mask_path is not None:
            _check_mask_content(self.mask_path, self.marks)
        if not self.kept:
            return
        if not self.tracker.found:
            limit = faces.size_limit(self.detector, self.frame_shape)
            raise faces.NoFaceError(
                self.video_path, f"no face found in any of {self.kept} sampled frames{limit}"
            )
        for decided in self.tracker.finish():
            self._crop(*decided)
        self._decode_again([record for record in self.records if record.image is None])

        longer_flag = (
            f"mask video has more frames than the video ({video_count}); masks are "
            "assumed to start at frame 0"
        )
        for record in self.records:
            if record.marks is not None:
                marked, full = record.marks
                if not marked:
                    record.flags.append("mask frame is empty (all black) in a manipulated video")
                elif full:
                    record.flags.append("mask frame is full (all white) in a manipulated video")
                if longer:
                    record.flags.append(longer_flag)
            if record.outside:
                record.flags.append("mask lies wholly outside the face crop")

    def _decode_again(self, waiting: list) -> None:
        """Crops the frames that were let go while they waited for their box."""
        if not waiting:
            return
        by_index = {record.index: record for record in waiting}
        wanted = np.array(sorted(by_index), np.int64)

        def crops(path, key, crop):
            with timed(self.timings, key):
                decoder = video.Decoder(path)
            found = 0
            with decoder:
                iterator = decoder.frames(wanted)
                while True:
                    with timed(self.timings, key):
                        item = next(iterator, None)
                    if item is None:
                        break
                    crop(by_index[item[0]], *item)
                    found += 1
            if found != wanted.size:
                raise video.VideoError(
                    path, f"frame {int(wanted[found])} could not be decoded on the second pass"
                )

        def crop_image(record, index, pixels):
            with timed(self.timings, "crop"):
                record.image = faces.crop(pixels, record.box, self.size)

        def crop_mask(record, index, mask_frame):
            with timed(self.timings, "mask"):
                mask = self._binarise(index, mask_frame)
            with timed(self.timings, "crop"):
                self._crop_mask(record, mask)

        crops(self.video_path, "decode", crop_image)
        if self.mask_path is not None:
            crops(self.mask_path, "mask", crop_mask)


def _check_same_rotation(video_path: str, mask_path: str) -> None:
    """Fails when a video and its mask video are displayed with different rotations.

    Frames are decoded upright (the container's rotation is applied), so a
    mask video rotated otherwise than its video would not line up with it;
    a 180-degree difference keeps the frame size and would go unnoticed.
    """
    video_rotation = video.video_info(video_path, exact=False)["rotation"]
    mask_rotation = video.video_info(mask_path, exact=False)["rotation"]
    if video_rotation != mask_rotation:
        raise video.VideoError(
            mask_path,
            f"mask video has a display rotation of {mask_rotation} degrees but its video "
            f"{video_path} has {video_rotation}: masks and frames would not line up",
        )


def _check_mask_content(mask_path: str, marks) -> None:
    """Fails when no sampled mask frame says where the manipulation is.

    ``marks`` holds ``(any pixel marked, every pixel marked)`` per kept frame.
    """
    if not marks:
        return
    if not any(marked for marked, _ in marks):
        what = "empty (all black)"
    elif all(full for _, full in marks):
        what = "full (all white)"
    else:
        return
    raise video.VideoError(
        mask_path,
        f"mask video is {what} in all {len(marks)} sampled frames of a manipulated "
        "video: it does not say which pixels were manipulated",
    )
