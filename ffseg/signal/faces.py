"""Face detection, face boxes and face crops for the signal layer (no TensorFlow).

FaceForensics++ preprocessing, as the paper and its authors' code do it
(the authors' released code): dlib's frontal (HOG) face detector, the
largest face of the frame, its box enlarged 1.3x about its centre into a
square, cropped and resized to 299x299 (Xception's input). The same
``FaceDetector`` settings must be used to build training data and at
inference: a different detector shifts the crops and accuracy collapses.

Speed versus reach (``max_side``): dlib's detector slides an 80x80 window
over an image pyramid, so at upsample 0 it finds faces of roughly 80 px and
up, and its cost grows with the number of pixels. Frames are therefore
shrunk (``cv2.INTER_AREA``) until their longer side is at most ``max_side``,
and never enlarged. With the default 640, a 640x480 frame is searched at full
size (faces >= ~80 px, about 18 ms per frame on one core), a 1280x720 frame at
half size (faces >= ~160 px) and a 1920x1080 frame at a third (faces >=
~240 px); FF++ faces are mostly larger than that. Upsampling (upsample 1)
would find smaller faces but also false faces in ordinary photographs, and
costs four times as much.
"""

from __future__ import annotations

import collections
from typing import Sequence

import cv2
import numpy as np

from ffseg.constants import BOX_SCALE, CROP_SIZE
from ffseg.errors import FileError

__all__ = [
    "NoFaceError",
    "FaceDetector",
    "face_box",
    "crop",
    "crop_mask",
    "track_boxes",
    "BoxTracker",
    "size_limit",
]

Box = tuple[int, int, int, int]
_DLIB_WINDOW = 80  # side of dlib's frontal detector window, in pixels


def size_limit(detector, frame_shape) -> str:
    """Why a face may have gone unseen in frames of ``frame_shape``, for messages.

    Empty when ``detector`` does not say (anything with ``largest`` will do
    for ``track_boxes``).
    """
    smallest = getattr(detector, "smallest_face", None)
    if smallest is None:
        return ""
    return (
        f" (faces smaller than about {smallest(frame_shape)} px are not detected in a "
        f"{int(frame_shape[1])}x{int(frame_shape[0])} frame)"
    )


class NoFaceError(FileError):
    """No face was found in any usable frame of a video or in an image.

    Args:
        path: the file (``None`` when the frames did not come from one).
        reason: what was searched, in plain words.
    """

    def __init__(self, path=None, reason: str = "no face found in any sampled frame"):
        super().__init__(path, reason)


def _check_frame(frame) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8, got {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
        raise ValueError(f"frame must be HxWx3 RGB or HxW gray, got shape {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"frame is empty, shape {frame.shape}")
    return frame


class FaceDetector:
    """dlib's frontal face detector (HOG + linear SVM) on a downscaled frame.

    Args:
        max_side: frames whose longer side exceeds this are shrunk with
            ``cv2.INTER_AREA`` to this size before detection (never enlarged);
            see the module docstring for the trade-off. ``None``: never shrink.
        upsample: dlib's upsampling count. 0 (default) is faster and avoids
            the false faces upsampling finds in real photographs.

    The dlib object is created on first use and dropped when pickled, so a
    detector can be shipped to Apache Beam workers.
    """

    def __init__(self, max_side: int | None = 640, upsample: int = 0):
        if max_side is not None and int(max_side) < 80:
            raise ValueError(f"max_side must be >= 80 (dlib's window size), got {max_side}")
        if int(upsample) < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        self.max_side = None if max_side is None else int(max_side)
        self.upsample = int(upsample)
        self._detector = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_detector"] = None
        return state

    def __repr__(self):
        return f"FaceDetector(max_side={self.max_side}, upsample={self.upsample})"

    def _dlib(self):
        if self._detector is None:
            import dlib

            self._detector = dlib.get_frontal_face_detector()
        return self._detector

    def smallest_face(self, frame_shape) -> int:
        """About the side, in frame pixels, of the smallest face found in such a frame.

        dlib's window is 80 px at detection scale; each upsampling halves it.
        """
        return int(round(_DLIB_WINDOW / self.scale_for(frame_shape) / 2**self.upsample))

    def scale_for(self, frame_shape) -> float:
        """The factor applied to a frame of ``frame_shape`` before detection."""
        longer = max(frame_shape[0], frame_shape[1])
        if self.max_side is None or longer <= self.max_side:
            return 1.0
        return self.max_side / longer

    def detect(self, frame) -> list[Box]:
        """All faces of an RGB (or gray) uint8 frame.

        Returns:
            ``(left, top, right, bottom)`` boxes in the frame's own pixel
            coordinates (right/bottom exclusive), clipped to the frame.
        """
        return [box for box, _ in self.detect_with_scores(frame)]

    def detect_with_scores(self, frame) -> list[tuple[Box, float]]:
        """Like ``detect``, with dlib's confidence of each face.

        The confidence is the HOG detector's margin above its own threshold
        (0): real faces score around 1 and more, marginal detections (e.g. a
        face-like patch after JPEG compression) close to 0.
        """
        frame = _check_frame(frame)
        height, width = frame.shape[:2]
        scale = self.scale_for(frame.shape)
        image = frame
        if scale < 1.0:
            size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
            image = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        rectangles, scores, _ = self._dlib().run(np.ascontiguousarray(image), self.upsample, 0.0)
        found = []
        for rect, score in zip(rectangles, scores):
            # dlib's right/bottom are inclusive; +1 makes them exclusive before scaling.
            left = min(max(int(round(rect.left() / scale)), 0), width)
            top = min(max(int(round(rect.top() / scale)), 0), height)
            right = min(max(int(round((rect.right() + 1) / scale)), 0), width)
            bottom = min(max(int(round((rect.bottom() + 1) / scale)), 0), height)
            if right > left and bottom > top:
                found.append(((left, top, right, bottom), float(score)))
        return found

    def largest(self, frame) -> Box | None:
        """The largest face of the frame by area, or ``None``."""
        boxes = self.detect(frame)
        if not boxes:
            return None
        return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


def face_box(box: Sequence[float], frame_shape, scale: float = BOX_SCALE) -> Box:
    """The square crop box for a face, as in FF++ preprocessing.

    Args:
        box: the face, ``(left, top, right, bottom)``.
        frame_shape: the frame's shape (``(H, W, ...)``).
        scale: side of the square relative to the face box's longer side.

    Returns:
        ``(x0, y0, x1, y1)`` integers, ``x1 - x0 == y1 - y0``, inside the
        frame. A square that sticks out is shifted back in, not shrunk, so
        every crop has the same relative face size; it is shrunk only when it
        is larger than the frame itself.
    """
    left, top, right, bottom = (float(v) for v in box)
    width, height = right - left, bottom - top
    if width <= 0 or height <= 0:
        raise ValueError(f"face box {tuple(box)} has no area")
    frame_height, frame_width = int(frame_shape[0]), int(frame_shape[1])
    side = int(round(scale * max(width, height)))
    side = max(1, min(side, frame_height, frame_width))
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    x0 = min(max(int(round(centre_x - side / 2)), 0), frame_width - side)
    y0 = min(max(int(round(centre_y - side / 2)), 0), frame_height - side)
    return (x0, y0, x0 + side, y0 + side)


def _region(image: np.ndarray, box: Sequence[int]) -> np.ndarray:
    x0, y0, x1, y1 = (int(v) for v in box)
    height, width = image.shape[:2]
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(f"crop box {tuple(box)} is not inside a {width}x{height} image")
    return image[y0:y1, x0:x1]


def crop(image, box: Sequence[int], size: int = CROP_SIZE, interpolation: int = cv2.INTER_LINEAR):
    """Crops ``box`` out of an image and resizes it to ``size`` x ``size``.

    Args:
        image: HxW or HxWxC array (a single channel axis is kept).
        box: ``(x0, y0, x1, y1)`` inside the image, e.g. from ``face_box``.
        size: output side (299 for Xception).
        interpolation: an OpenCV interpolation flag.
    """
    image = np.asarray(image)
    region = _region(image, box)
    resized = cv2.resize(region, (int(size), int(size)), interpolation=interpolation)
    if image.ndim == 3 and resized.ndim == 2:
        resized = resized[:, :, None]  # cv2 drops a single channel axis
    return resized


def crop_mask(mask, box: Sequence[int], size: int = CROP_SIZE) -> np.ndarray:
    """Crops a {0,1} mask with the same box as its frame; keeps it binary.

    The mask is resampled by area averaging (the fraction of each output
    pixel that the mask covers) and thresholded at one half. Nearest-neighbour
    resampling would instead pick one source pixel per output pixel: when
    shrinking by a non-integer factor it drops whole rows and columns and
    moves the boundary by up to a source pixel, unevenly along the edge.

    Args:
        mask: HxW or HxWx1 array with values in {0, 1}.
        box: the crop box of the frame the mask belongs to.
        size: output side.

    Returns:
        The cropped mask, uint8 in {0, 1}, with the input's shape layout.
    """
    mask = np.asarray(mask)
    region = _region(mask, box)
    if region.ndim == 3:
        region = region[:, :, 0]
    scaled = (region > 0).astype(np.uint8) * 255
    resized = cv2.resize(scaled, (int(size), int(size)), interpolation=cv2.INTER_AREA)
    binary = (resized >= 128).astype(np.uint8)
    return binary[:, :, None] if mask.ndim == 3 else binary


class BoxTracker:
    """The nearest-box rule of ``track_boxes``, applied online, frame by frame.

    A frame where no face was found takes the crop box of the nearest frame
    (by index distance) where one was, the earlier one on a tie. Frames are
    added in increasing index order; a frame without a face waits until its
    box is decided: when a face is found in a later frame, or when a later
    frame is reached that is at least as far from it as the last face before
    it (no face from there on could be nearer). The caller can crop, and let
    go of, each frame as soon as ``add`` returns it: only the frames still
    waiting need to be kept.

    Usage::

        tracker = BoxTracker()
        for index, frame in frames:
            for item, box, detected in tracker.add(index, box_or_none, item):
                ...  # item's crop box is now known
        if not tracker.found: ...  # no face anywhere; the pending items have no box
        for item, box, detected in tracker.finish(): ...

    Items come out in the order they went in.
    """

    def __init__(self):
        self._pending: collections.deque = collections.deque()  # (index, item), no box yet
        self._last: tuple[int, Box] | None = None  # the latest frame with a face
        self._index: int | None = None

    @property
    def found(self) -> bool:
        """Whether a face has been found in any frame so far."""
        return self._last is not None

    @property
    def pending(self) -> int:
        """How many added items are still waiting for a box."""
        return len(self._pending)

    def add(self, index: int, box: Box | None, item) -> list:
        """Adds the frame at ``index`` with its box (``None``: no face found).

        Returns:
            ``[(item, box, detected), ...]``: the items, this one and earlier
            ones, whose box is now decided, in the order they were added.
        """
        index = int(index)
        if self._index is not None and index < self._index:
            raise ValueError(f"frame indices must not decrease: {index} after {self._index}")
        self._index = index
        decided = []
        if box is None:
            if self._last is not None:
                # A later face would be at least as far from these frames as
                # the last one (a tie goes to the earlier frame): decided.
                last_index, last_box = self._last
                while self._pending:
                    pending_index = self._pending[0][0]
                    if index - pending_index < pending_index - last_index:
                        break
                    decided.append((self._pending.popleft()[1], last_box, False))
            self._pending.append((index, item))
            return decided
        while self._pending:
            pending_index, pending_item = self._pending.popleft()
            nearest = box
            if self._last is not None and pending_index - self._last[0] <= index - pending_index:
                nearest = self._last[1]
            decided.append((pending_item, nearest, False))
        self._last = (index, box)
        decided.append((item, box, True))
        return decided

    def finish(self) -> list:
        """Decides the items still pending, after the last frame was added.

        Returns:
            Like ``add``; empty when no face was found at all (``found`` is
            False), and the pending items then stay without a box.
        """
        if self._last is None:
            return []
        decided = [(item, self._last[1], False) for _, item in self._pending]
        self._pending.clear()
        return decided


def track_boxes(
    frames, detector: FaceDetector, *, path=None, indices=None, scale: float = BOX_SCALE
):
    """One crop box per frame, filling frames where detection failed.

    Args:
        frames: sequence of RGB uint8 frames (the sampled frames of a video).
        detector: a ``FaceDetector`` (anything with ``largest(frame)``).
        path: the video, for the error message.
        indices: the frames' indices in the video, used to measure which
            detected frame is nearest; default ``0..len(frames)-1``.
        scale: passed to ``face_box``.

    Returns:
        ``(boxes, detected)``: ``boxes[i]`` is ``face_box`` of the largest
        face of frame ``i``; where no face was found it is the box of the
        nearest frame (by index distance; the earlier one on a tie) where one
        was, and ``detected[i]`` is False. The rule is ``BoxTracker``'s.

    Raises:
        NoFaceError: no face in any frame.
    """
    frames = list(frames)
    positions = np.arange(len(frames)) if indices is None else np.asarray(indices, np.int64)
    if positions.shape != (len(frames),):
        raise ValueError(f"got {len(frames)} frames but {positions.size} indices")
    tracker = BoxTracker()
    boxes: list[Box | None] = [None] * len(frames)
    detected = [False] * len(frames)
    decided = []
    # The tracker takes frames in index order; a stable sort keeps the given
    # order among equal indices.
    for i in np.argsort(positions, kind="stable").tolist():
        face = detector.largest(frames[i])
        box = None if face is None else face_box(face, np.shape(frames[i]), scale)
        decided += tracker.add(positions[i], box, i)
    if not tracker.found:
        limit = size_limit(detector, np.shape(frames[0])) if frames else ""
        raise NoFaceError(path, f"no face found in any of {len(frames)} sampled frames{limit}")
    for i, box, found in decided + tracker.finish():
        boxes[i], detected[i] = box, found
    return boxes, detected
