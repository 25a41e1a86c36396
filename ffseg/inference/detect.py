"""Scoring every face of an image or a video: the library side of ``ffseg detect``.

Faces are found, boxed and cropped exactly as the training data was
(/work/shared/FFPP.md, "Faces"; ``ffseg.extract``): ``faces.FaceDetector()``
with its default settings, ``faces.face_box(..., scale=1.3)`` and
``faces.crop(frame, box, 299)``. A model trained on one crop geometry and
shown another collapses, so none of this is configurable here.

Unlike training, which keeps only the largest face of a frame, every face of
a frame is scored; the largest one is marked (``largest``), and a video's
verdict is the mean, over the frames that have a face, of the score of that
frame's largest face (the frame-to-video rule of ``ffseg.evaluation``).

Videos are streamed: frames are decoded one at a time (``video.iter_frames``),
their crops are batched through the model, and overlay frames are encoded as
soon as their batch is scored (``video.write_video`` consumes a generator),
so memory holds one batch of frames whatever the length of the video.

The predictor is anything with ``predict(uint8 crops [N, 299, 299, 3]) ->
{"score": [N], "localization_map": [N, 299, 299], ...}``, e.g.
``ffseg.inference.predictors.load_predictor(path)``. This module never imports
TensorFlow itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from typing import Iterable, Iterator

import cv2
import numpy as np

from ffseg import timing
from ffseg.constants import BOX_SCALE, CROP_SIZE, image_format
from ffseg.errors import FileError
from ffseg.signal import faces, video
from ffseg.timing import timed

__all__ = [
    "DEFAULT_NUM_FRAMES",
    "BOX_SCALE",
    "InputError",
    "read_image",
    "probe",
    "score_frames",
    "detect_image",
    "detect_video",
    "detect_file",
    "overlay",
    "capture_native_stderr",
]

# A default that scores every frame of a clip of up to 12 s at 25 frames/s,
# and 300 evenly spaced frames of anything longer: the time per input stays
# bounded while a video verdict still averages many frames.
DEFAULT_NUM_FRAMES = 300
DEFAULT_BATCH_SIZE = 16
DEFAULT_THRESHOLD = 0.5


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


def _check_input(path: str) -> None:
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
    _check_input(path)
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


# --------------------------------------------------------------------------
# Finding, cropping and scoring faces


def _find_faces(frame, detector, crop_size) -> tuple[list[dict], list[np.ndarray]]:
    """Every face of a frame: its record (box, face, largest, detection score) and its crop."""
    found = detector.detect_with_scores(frame)
    if not found:
        return [], []
    detections = [box for box, _ in found]
    areas = [(right - left) * (bottom - top) for left, top, right, bottom in detections]
    # The first of equal areas, as FaceDetector.largest picks it.
    largest = int(np.argmax(areas))
    records, crops = [], []
    for number, detection in enumerate(detections):
        box = faces.face_box(detection, frame.shape, BOX_SCALE)
        crops.append(faces.crop(frame, box, crop_size))
        records.append(
            {
                "box": [int(v) for v in box],
                "face": [int(v) for v in detection],
                "largest": number == largest,
                "detection_score": round(found[number][1], 4),
            }
        )
    return records, crops


def _timed_iter(iterable: Iterable, timings, key) -> Iterator:
    iterator = iter(iterable)
    while True:
        with timed(timings, key):
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item


def _crop_size(predictor) -> int:
    return int(getattr(predictor, "crop_size", CROP_SIZE))


def _run_batch(pending, predictor, batch_size, timings):
    crops = [crop for _, _, _, frame_crops in pending for crop in frame_crops]
    scores = maps = probabilities = None
    if crops:
        with timed(timings, "model"):
            outputs = predictor.predict(np.stack(crops), batch_size=batch_size)
        scores = np.asarray(outputs["score"], np.float32).reshape(-1)
        maps = np.asarray(outputs["localization_map"], np.float32)
        probabilities = outputs.get("class_probabilities")
        if scores.shape[0] != len(crops) or maps.shape[0] != len(crops):
            raise ValueError(
                f"the model returned {scores.shape[0]} scores and {maps.shape[0]} maps "
                f"for {len(crops)} faces"
            )
    position = 0
    for index, frame, records, frame_crops in pending:
        frame_maps = []
        for record in records:
            record["score"] = float(scores[position])
            if probabilities is not None:
                record["class_probabilities"] = [float(p) for p in probabilities[position]]
            frame_maps.append(maps[position])
            position += 1
        yield index, frame, records, frame_maps


def score_frames(
    frames: Iterable[tuple[int, np.ndarray]],
    predictor,
    detector: faces.FaceDetector,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    timings: dict | None = None,
) -> Iterator[tuple[int, np.ndarray, list[dict], list[np.ndarray]]]:
    """Finds and scores every face of a stream of frames, a batch at a time.

    Args:
        frames: ``(index, RGB uint8 frame)`` pairs, e.g. ``video.iter_frames``.
        predictor: see the module docstring.
        detector: the training ``FaceDetector``.
        batch_size: faces per model call; at most this many frames are held.
        timings: optional dict; seconds are added under ``"decode"`` (waiting
            for ``frames``), ``"detect"`` (dlib, boxes and crops) and
            ``"model"``.

    Yields:
        ``(index, frame, faces, maps)`` in input order; ``faces`` is a list of
        ``{"box": [x0, y0, x1, y1], "face": [l, t, r, b], "largest": bool,
        "detection_score": float, "score": float, "class_probabilities":
        [...]}`` (``box`` is the 1.3x square crop box, ``face`` dlib's box,
        ``detection_score`` dlib's confidence in it) and ``maps[i]`` the
        localization map of ``faces[i]``, float32 [299, 299] in [0, 1], over
        its ``box``.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    crop_size = _crop_size(predictor)
    pending, pending_crops = [], 0
    for index, frame in _timed_iter(frames, timings, "decode"):
        with timed(timings, "detect"):
            records, crops = _find_faces(frame, detector, crop_size)
        pending.append((int(index), frame, records, crops))
        pending_crops += len(crops)
        if pending_crops >= batch_size or len(pending) >= batch_size:
            yield from _run_batch(pending, predictor, batch_size, timings)
            pending, pending_crops = [], 0
    if pending:
        yield from _run_batch(pending, predictor, batch_size, timings)


# --------------------------------------------------------------------------
# Drawing


def _colour(score: float, threshold: float) -> tuple[int, int, int]:
    return (230, 40, 40) if score >= threshold else (40, 200, 40)  # RGB red / green


def _label(image, text, origin, colour, scale, thickness) -> None:
    """Text on a filled box, placed above ``origin`` (or below, at the top edge)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (width, height), baseline = cv2.getTextSize(text, font, scale, thickness)
    x, y = int(origin[0]), int(origin[1])
    pad = max(2, thickness)
    top = y - height - baseline - 2 * pad
    if top < 0:  # no room above: put the label inside, under the top edge
        top = y
    x = min(max(x, 0), max(image.shape[1] - width - 2 * pad, 0))
    cv2.rectangle(image, (x, top), (x + width + 2 * pad, top + height + baseline + 2 * pad),
                  colour, -1)
    cv2.putText(image, text, (x + pad, top + pad + height), font, scale, (255, 255, 255),
                thickness, cv2.LINE_AA)


def overlay(
    frame: np.ndarray,
    face_records: list[dict],
    maps: list[np.ndarray],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = 0.45,
    caption: str | None = None,
) -> np.ndarray:
    """Draws localization heatmaps, boxes and scores over a copy of ``frame``.

    Each face's [299, 299] map (0..1) is coloured with OpenCV's JET colour
    map (blue = pristine, red = manipulated), resized to the face's crop box
    and alpha-blended over it; the box is drawn in red for a score at or
    above ``threshold`` (fake) and green below it, thicker for the largest
    face, with "fake 0.93" / "real 0.12" above it. ``caption`` (e.g. the
    video verdict so far) is written in the top-left corner.

    Args:
        frame: HxWx3 RGB uint8.
        face_records: ``[{"box": [x0, y0, x1, y1], "score": float,
            "largest": bool}, ...]``, as ``score_frames`` yields them.
        maps: one float [h, w] map in [0, 1] per face.

    Returns:
        A new HxWx3 RGB uint8 frame.
    """
    if len(face_records) != len(maps):
        raise ValueError(f"{len(face_records)} faces but {len(maps)} maps")
    image = np.array(frame, dtype=np.uint8, copy=True)
    side = max(image.shape[:2])
    thickness = max(1, int(round(side / 400)))
    scale = max(0.4, side / 1200)
    for record, manipulation in zip(face_records, maps):
        x0, y0, x1, y1 = (int(v) for v in record["box"])
        if x1 <= x0 or y1 <= y0:
            continue
        levels = np.clip(np.asarray(manipulation, np.float32) * 255.0 + 0.5, 0, 255)
        heat = cv2.applyColorMap(levels.astype(np.uint8), cv2.COLORMAP_JET)
        heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
        heat = cv2.resize(heat, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        region = image[y0:y1, x0:x1]
        image[y0:y1, x0:x1] = cv2.addWeighted(region, 1.0 - alpha, heat, alpha, 0.0)
    for record in face_records:
        x0, y0, x1, y1 = (int(v) for v in record["box"])
        score = float(record["score"])
        colour = _colour(score, threshold)
        width = thickness * (2 if record.get("largest") else 1)
        cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), colour, width)
        word = "fake" if score >= threshold else "real"
        _label(image, f"{word} {score:.2f}", (x0, y0), colour, scale, thickness)
    if caption:
        _label(image, caption, (0, 0), (40, 40, 40), scale, thickness)
    return image


# --------------------------------------------------------------------------
# Images and videos


def _verdict(scores: list[float], threshold: float) -> dict:
    mean = float(np.mean(scores))
    return {
        "score": mean,
        "label": "fake" if mean >= threshold else "real",
        "threshold": float(threshold),
    }


def _frame_entry(index: int, records: list[dict]) -> dict:
    return {"index": int(index), "faces": [dict(record) for record in records]}


def _provenance(predictor, detector) -> dict:
    return {
        "detector": repr(detector),
        "box_scale": BOX_SCALE,
        "crop_size": _crop_size(predictor),
        "model_info": dict(getattr(predictor, "info", {}) or {}),
    }


def detect_image(
    path,
    predictor,
    detector: faces.FaceDetector | None = None,
    *,
    image: np.ndarray | None = None,
    overlay_path=None,
    threshold: float = DEFAULT_THRESHOLD,
    timings: dict | None = None,
) -> dict:
    """Scores every face of a still image.

    Args:
        path: the image file (read with ``cv2.imread``), named in the result.
        predictor: see the module docstring.
        detector: default ``faces.FaceDetector()``, the training detector.
        image: the decoded RGB image, if the caller already has it.
        overlay_path: where to write the overlay (any format ``cv2.imwrite``
            knows, by extension; PNG keeps it lossless), or ``None``.
        threshold: a score at or above it is labelled fake.
        timings: optional dict, see ``score_frames``; ``"draw"`` too.

    Returns:
        ``{"input", "kind": "image", "width", "height", "frame_count": 1,
        "frames_scored": 1, "frames_without_face": 0, "frames": [{"index": 0,
        "faces": [...]}], "verdict": {"score", "label", "threshold"},
        "warnings": [...], ...}``; the verdict is the largest face's score.

    Raises:
        InputError: not a readable image.
        faces.NoFaceError: no face in the image.
    """
    path = os.fspath(path)
    detector = detector or faces.FaceDetector()
    warnings: list[str] = []
    if image is None:
        with timed(timings, "decode"):
            _check_input(path)
            image, warnings = read_image(path)
        if image is None:
            raise InputError(path, "not an image that OpenCV can decode")
    index, frame, records, maps = next(
        score_frames([(0, image)], predictor, detector, batch_size=DEFAULT_BATCH_SIZE,
                     timings=timings)
    )
    if not records:
        limit = faces.size_limit(detector, image.shape)
        raise faces.NoFaceError(path, f"no face found in the image{limit}")
    largest = next(record for record in records if record["largest"])
    result = {
        "input": os.path.abspath(path),
        "kind": "image",
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "frame_count": 1,
        "frames_scored": 1,
        "frames_without_face": 0,
        "verdict": _verdict([largest["score"]], threshold),
        "frames": [_frame_entry(index, records)],
        "warnings": warnings,
        **_provenance(predictor, detector),
    }
    if overlay_path is not None:
        with timed(timings, "draw"):
            drawn = overlay(frame, records, maps, threshold=threshold)
        with timed(timings, "encode"):
            _write_image(os.fspath(overlay_path), drawn)
        result["overlay"] = os.path.abspath(overlay_path)
    return result


def _write_image(path: str, image: np.ndarray) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: OpenCV could not write the overlay image")


def _even(frame: np.ndarray) -> np.ndarray:
    """Pads a frame by one black row/column where needed: x264's 4:2:0 wants even sizes."""
    height, width = frame.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return frame
    return cv2.copyMakeBorder(frame, 0, height % 2, 0, width % 2, cv2.BORDER_CONSTANT, value=0)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def detect_video(
    path,
    predictor,
    detector: faces.FaceDetector | None = None,
    *,
    num_frames: int | None = DEFAULT_NUM_FRAMES,
    overlay_path=None,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = DEFAULT_BATCH_SIZE,
    info: dict | None = None,
    timings: dict | None = None,
) -> dict:
    """Scores every face of the sampled frames of a video, streaming.

    Args:
        path: the video file.
        predictor: see the module docstring.
        detector: default ``faces.FaceDetector()``, the training detector.
        num_frames: frames to score, evenly spaced as at training time
            (``video.sample_indices``); a video with no more frames than this
            is scored in full. ``None``: every frame.
        overlay_path: where to write the overlay video (H.264 MP4 through
            ``video.write_video``), or ``None``. It has one frame per scored
            frame, at the frame rate that keeps the video's duration (at
            least 1 frame/s).
        threshold: a verdict score at or above it is labelled fake.
        batch_size: faces per model call (and most frames held in memory).
        info: ``video.video_info(path, exact=False)``, if already known.
        timings: optional dict, see ``score_frames``; also ``"draw"`` and
            ``"encode"`` (time spent by the overlay encoder).

    Returns:
        ``{"input", "kind": "video", "width", "height", "fps",
        "frame_count", "frames_scored", "frames_without_face", "frames":
        [{"index", "faces": [...]}], "verdict": {"score", "label",
        "threshold"}, ...}``, where the verdict score is the mean over frames
        with a face of the largest face's score.

    Raises:
        video.VideoError: unreadable, corrupt or truncated video.
        faces.NoFaceError: no face in any scored frame (no overlay is left).
    """
    path = os.fspath(path)
    if num_frames is not None and int(num_frames) < 1:
        raise ValueError(f"num_frames must be >= 1 or None, got {num_frames}")
    detector = detector or faces.FaceDetector()
    if overlay_path is not None:
        overlay_path = os.fspath(overlay_path)
        if _same_file(path, overlay_path):
            raise InputError(path, f"the overlay would overwrite the input ({overlay_path})")
    if info is None:
        with timed(timings, "decode"):
            info = video.video_info(path, exact=False)
    count = int(info.get("frame_count") or 0)
    if count == 0 and num_frames is not None:
        # The container does not say: count by decoding (grab only), once.
        with timed(timings, "decode"):
            info = video.video_info(path, exact=True)
        count = info["frame_count"]
    arguments = (predictor, detector, num_frames, overlay_path, threshold, batch_size, timings)
    try:
        return _detect_video_pass(path, info, count, *arguments)
    except _FrameCountChanged:
        pass  # the stream is longer than its container says
    except video.VideoError:
        if num_frames is None or count <= num_frames:
            raise  # every frame was read and checked: a real decoding error
        # Shorter than the container says (an estimated count, as in some
        # Matroska or AVI files), or truncated; the exact count tells which,
        # and fails with its own precise error on a truncated file.
        exact = video.video_info(path, exact=True)
        if exact["frame_count"] >= count:
            raise
    # Lay the sample out again over the real count, as sample_frames does.
    with timed(timings, "decode"):
        info = video.video_info(path, exact=True)
    return _detect_video_pass(path, info, info["frame_count"], *arguments)


class _FrameCountChanged(Exception):
    """The stream holds frames past the frame count the sample was laid out over."""


def _frames_to_score(path: str, count: int, num_frames: int | None) -> Iterator:
    """``(index, frame)`` of the frames ``video.sample_frames`` would pick.

    ``count`` is the container's frame count. It is verified in the same
    pass, at the cost of one ``grab``: the frame after the last one is
    requested too, so a longer stream raises ``_FrameCountChanged`` and a
    shorter one a ``video.VideoError``; ``detect_video`` then starts again
    over the exact count. Every frame is scored when ``count <=
    num_frames``; if the stream turns out to be longer than ``num_frames``
    itself, it had to be sampled, and ``_FrameCountChanged`` is raised.
    """
    if num_frames is None or count <= num_frames:
        for index, frame in video.iter_frames(path):
            if num_frames is not None and index >= num_frames:
                raise _FrameCountChanged()
            yield index, frame
        return
    indices = video.sample_indices(count, num_frames)
    last_wanted = int(indices[-1])
    if last_wanted != count - 1:
        # One frame: frame 0 whatever the length, so the count does not matter.
        yield from video.iter_frames(path, indices)
        return
    last_seen = -1
    try:
        for index, frame in video.iter_frames(path, np.append(indices, count)):
            if index == count:
                raise _FrameCountChanged()
            last_seen = index
            yield index, frame
    except video.VideoError:
        if last_seen == last_wanted:
            return  # the stream ends exactly where its container says
        raise


def _detect_video_pass(
    path, info, count, predictor, detector, num_frames, overlay_path, threshold, batch_size,
    timings,
) -> dict:
    every_frame = num_frames is None or count <= num_frames
    expected = count if every_frame else min(int(num_frames), count)
    stream = _frames_to_score(path, count, num_frames)
    frames_out: list[dict] = []
    largest_scores: list[float] = []
    without_face = 0

    def scored() -> Iterator:
        nonlocal without_face
        for index, frame, records, maps in score_frames(
            stream, predictor, detector, batch_size=batch_size, timings=timings
        ):
            frames_out.append(_frame_entry(index, records))
            if records:
                largest_scores.append(next(r["score"] for r in records if r["largest"]))
            else:
                without_face += 1
            yield index, frame, records, maps

    fps = float(info.get("fps") or 0.0)
    if not np.isfinite(fps) or fps <= 0:
        fps = 25.0
    if overlay_path is None:
        for _ in scored():
            pass
    else:
        overlay_fps = fps if every_frame else max(1.0, fps * expected / max(count, 1))

        def drawn() -> Iterator[np.ndarray]:
            for index, frame, records, maps in scored():
                with timed(timings, "draw"):
                    caption = None
                    if largest_scores:
                        mean = float(np.mean(largest_scores))
                        word = "fake" if mean >= threshold else "real"
                        caption = f"frame {index}  video so far: {word} {mean:.2f}"
                    image = _even(overlay(frame, records, maps, threshold=threshold,
                                          caption=caption))
                start = timing.clock()
                yield image
                if timings is not None:
                    timings["encode"] = timings.get("encode", 0.0) + timing.clock() - start

        video.write_video(overlay_path, drawn(), fps=round(overlay_fps, 4))

    if not largest_scores:
        if overlay_path is not None:
            with contextlib.suppress(OSError):
                os.remove(overlay_path)
        limit = faces.size_limit(detector, (info["height"], info["width"]))
        raise faces.NoFaceError(
            path, f"no face found in any of {len(frames_out)} scored frames{limit}"
        )
    frame_count = len(frames_out) if every_frame else count
    result = {
        "input": os.path.abspath(path),
        "kind": "video",
        "width": int(info["width"]),
        "height": int(info["height"]),
        "fps": fps,
        "frame_count": int(frame_count),
        "frames_scored": len(frames_out),
        "frames_without_face": without_face,
        "sampling": "every frame" if every_frame else f"{len(frames_out)} evenly spaced frames",
        "verdict": _verdict(largest_scores, threshold),
        "frames": frames_out,
        "warnings": [],
        **_provenance(predictor, detector),
    }
    if overlay_path is not None:
        result["overlay"] = os.path.abspath(overlay_path)
    return result


def detect_file(
    path,
    predictor,
    detector: faces.FaceDetector | None = None,
    *,
    output_dir=None,
    name: str | None = None,
    num_frames: int | None = DEFAULT_NUM_FRAMES,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = DEFAULT_BATCH_SIZE,
    overlay_output: bool = True,
    model_path: str | None = None,
    timings: dict | None = None,
) -> dict:
    """Probes, scores and (optionally) writes the results of one input file.

    An image is tried first, then a video (see ``probe``). With
    ``output_dir``, writes ``<name>.json`` (the result) and, unless
    ``overlay_output`` is False, ``<name>.png`` (image) or ``<name>.mp4``
    (video); ``name`` defaults to the input's file name without extension.
    The JSON is written last, so its presence means the input succeeded.

    Raises:
        InputError, video.VideoError, faces.NoFaceError: a bad input; nothing
            is left in ``output_dir`` for it.
    """
    path = os.fspath(path)
    detector = detector or faces.FaceDetector()
    with timed(timings, "decode"):
        kind, payload, warnings = probe(path)
    name = name or os.path.splitext(os.path.basename(path))[0] or "input"
    json_path = overlay_path = None
    if output_dir is not None:
        json_path = os.path.join(os.fspath(output_dir), name + ".json")
        if overlay_output:
            overlay_path = os.path.join(
                os.fspath(output_dir), name + (".png" if kind == "image" else ".mp4")
            )
    for target in (json_path, overlay_path):
        if target is not None and _same_file(path, target):
            raise InputError(path, f"its output {target} would overwrite it")
    if kind == "image":
        result = detect_image(
            path, predictor, detector, image=payload, overlay_path=overlay_path,
            threshold=threshold, timings=timings,
        )
        result["warnings"] = warnings
    else:
        result = detect_video(
            path, predictor, detector, num_frames=num_frames, overlay_path=overlay_path,
            threshold=threshold, batch_size=batch_size, info=payload, timings=timings,
        )
    result["model"] = None if model_path is None else os.path.abspath(model_path)
    if json_path is not None:
        _write_json(json_path, result)
        result["json"] = os.path.abspath(json_path)
    return result


def _write_json(path: str, result: dict) -> None:
    """The result as JSON, one line per frame so that long videos stay readable."""
    ordered = {key: result[key] for key in _JSON_ORDER if key in result}
    ordered.update({key: value for key, value in result.items() if key not in ordered})
    frames = ordered.pop("frames", [])
    head = json.dumps(ordered, indent=2)
    lines = ",\n".join("    " + json.dumps(frame) for frame in frames)
    text = head[:-2] + ',\n  "frames": [\n' + lines + ("\n" if lines else "") + "  ]\n}\n"
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # Write then rename: a JSON file is either complete or absent.
    partial = path + ".partial"
    with open(partial, "w") as handle:
        handle.write(text)
    os.replace(partial, path)


_JSON_ORDER = (
    "input", "kind", "model", "verdict", "width", "height", "fps", "frame_count",
    "frames_scored", "frames_without_face", "sampling", "overlay", "detector", "box_scale",
    "crop_size", "model_info", "warnings", "frames",
)
