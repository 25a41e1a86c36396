"""Scoring every face of an image or a video: the library side of ``ffseg detect``.

Faces are found, boxed and cropped exactly as the training data was
(``ffseg.signal.extract``): ``faces.FaceDetector()`` with its default
settings, the face box enlarged 1.3x into a square and cropped to 299 x 299
(``BOX_SCALE``, ``CROP_SIZE``). A model trained on one crop geometry and
shown another collapses, so none of this is configurable here.

Unlike training, which keeps only the largest face of a frame, every face of
a frame is scored; the largest one is marked (``largest``), and a video's
verdict is the mean, over the frames that have a face, of the score of that
frame's largest face (the frame-to-video rule of ``ffseg.evaluation``).

Videos are streamed: the sampled frames come one at a time from
``video.FrameSample`` (the evenly spaced frames of training, over the
verified frame count), their crops are batched through the model, and
overlay frames are encoded as soon as their batch is scored
(``video.write_video`` consumes a generator), so memory holds one batch of
frames whatever the length of the video.

The predictor is anything with ``predict(uint8 crops [N, S, S, 3]) ->
{"score": [N], "localization_map": [N, 299, 299], ...}``, e.g.
``ffseg.inference.predictors.load_predictor(path)``. A model built without
semantic maps (paper Table VII) returns no ``localization_map``: its faces
are scored and boxed with no heatmap, and each document's warnings say
that the model does not localise (``NO_LOCALIZATION_NOTICE``). This module
never imports TensorFlow itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterable, Iterator

import numpy as np

from ffseg import timing
from ffseg.constants import BOX_SCALE, CROP_SIZE
from ffseg.errors import FileError
from ffseg.inference import outputs
from ffseg.inference.model_card import sample_model_notice
from ffseg.inference.overlay import DEFAULT_THRESHOLD, even_frame, overlay
from ffseg.inference.probe import (
    InputError,
    capture_native_stderr,
    check_input,
    probe,
    read_image,
)
from ffseg.signal import faces, video
from ffseg.timing import timed

__all__ = [
    "DEFAULT_NUM_FRAMES",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_THRESHOLD",
    "BOX_SCALE",
    "OVERLAY_CODEC",
    "DetectOptions",
    "InputError",
    "read_image",
    "probe",
    "score_frames",
    "detect_image",
    "detect_video",
    "detect_file",
    "overlay",
    "capture_native_stderr",
    "NO_LOCALIZATION_NOTICE",
    "localization_notice",
]

# A default that scores every frame of a clip of up to 12 s at 25 frames/s,
# and 300 evenly spaced frames of anything longer: the time per input stays
# bounded while a video verdict still averages many frames.
DEFAULT_NUM_FRAMES = 300
DEFAULT_BATCH_SIZE = 16
# The overlay video's encoder (H.264, as FF++ ships its videos).
OVERLAY_CODEC = "libx264"
# Said (in each document's warnings) of a model that returns no localization map.
NO_LOCALIZATION_NOTICE = (
    "this model does not localise (it was built without semantic maps, paper Table VII): "
    "faces are scored, and no localization heatmap is drawn"
)


def localization_notice(predictor) -> str | None:
    """``NO_LOCALIZATION_NOTICE`` for a predictor whose model cannot localise, else None."""
    return None if getattr(predictor, "localizes", True) else NO_LOCALIZATION_NOTICE


@dataclasses.dataclass(frozen=True)
class DetectOptions:
    """How an input is scored.

    Args:
        num_frames: frames to score per video, evenly spaced as at training
            time (``video.sample_indices``); a video with no more frames than
            this is scored in full. ``None``: every frame.
        threshold: a score at or above it is labelled fake.
        batch_size: faces per model call (and most frames held in memory).
    """

    num_frames: int | None = DEFAULT_NUM_FRAMES
    threshold: float = DEFAULT_THRESHOLD
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self):
        if self.num_frames is not None and int(self.num_frames) < 1:
            raise ValueError(f"num_frames must be >= 1 or None, got {self.num_frames}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")


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
        # A model without semantic maps has no map: None per face (no heatmap).
        maps = outputs.get("localization_map")
        maps = [None] * len(crops) if maps is None else np.asarray(maps, np.float32)
        probabilities = outputs.get("class_probabilities")
        if scores.shape[0] != len(crops) or len(maps) != len(crops):
            raise ValueError(
                f"the model returned {scores.shape[0]} scores and {len(maps)} maps "
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
        its ``box`` (None when the model does not localise).
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


class _VideoScores:
    """What a video's scored frames add up to, frame by frame (the JSON's frames and verdict)."""

    def __init__(self):
        self.frames: list[dict] = []
        self.largest_scores: list[float] = []
        self.without_face = 0

    def add(self, index: int, records: list[dict]) -> None:
        self.frames.append(_frame_entry(index, records))
        if records:
            self.largest_scores.append(next(r["score"] for r in records if r["largest"]))
        else:
            self.without_face += 1

    def follow(self, scored: Iterable) -> Iterator:
        """Passes ``score_frames``' items on, adding each as it goes by."""
        for item in scored:
            self.add(item[0], item[2])
            yield item

    def caption(self, index: int, threshold: float) -> str | None:
        """The running verdict written on the overlay's frame ``index``."""
        if not self.largest_scores:
            return None
        mean = float(np.mean(self.largest_scores))
        word = "fake" if mean >= threshold else "real"
        return f"frame {index}  video so far: {word} {mean:.2f}"


def _overlay_frames(scored: Iterable, scores: _VideoScores, threshold: float,
                    timings) -> Iterator[np.ndarray]:
    """The overlay video's frames, drawn as their batch is scored."""
    for index, frame, records, maps in scored:
        with timed(timings, "draw"):
            image = even_frame(overlay(frame, records, maps, threshold=threshold,
                                       caption=scores.caption(index, threshold)))
        start = timing.clock()
        yield image  # the encoder takes it while this generator waits
        if timings is not None:
            timings["encode"] = timings.get("encode", 0.0) + timing.clock() - start


def detect_video(
    path,
    predictor,
    detector: faces.FaceDetector | None = None,
    *,
    num_frames: int | None = DEFAULT_NUM_FRAMES,
    overlay_path=None,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = DEFAULT_BATCH_SIZE,
    timings: dict | None = None,
) -> dict:
    """Scores every face of the sampled frames of a video, streaming.

    Args:
        path: the video file.
        predictor: see the module docstring.
        detector: default ``faces.FaceDetector()``, the training detector.
        num_frames, threshold, batch_size: see ``DetectOptions``.
        overlay_path: where to write the overlay video (H.264 MP4 through
            ``video.write_video``), or ``None``. It has one frame per scored
            frame, at the frame rate that keeps the video's duration (at
            least 1 frame/s). Left out (removed) when the video fails.
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
        faces.NoFaceError: no face in any scored frame.
    """
    path = os.fspath(path)
    options = DetectOptions(num_frames=num_frames, threshold=threshold, batch_size=batch_size)
    detector = detector or faces.FaceDetector()
    if overlay_path is not None:
        overlay_path = os.fspath(overlay_path)
        if _same_file(path, overlay_path):
            raise InputError(path, f"the overlay would overwrite the input ({overlay_path})")
    with timed(timings, "decode"):
        sample = video.FrameSample(path, options.num_frames)
    every_frame = len(sample) == sample.frame_count
    fps = sample.fps if np.isfinite(sample.fps) and sample.fps > 0 else 25.0
    scores = _VideoScores()
    scored = scores.follow(
        score_frames(sample, predictor, detector, batch_size=options.batch_size, timings=timings)
    )
    try:
        if overlay_path is None:
            for _ in scored:
                pass
        else:
            overlay_fps = fps if every_frame else max(1.0, fps * len(sample) / sample.frame_count)
            video.write_video(
                overlay_path, _overlay_frames(scored, scores, options.threshold, timings),
                fps=round(overlay_fps, 4), codec=OVERLAY_CODEC,
            )
        if not scores.largest_scores:
            limit = faces.size_limit(detector, (sample.height, sample.width))
            raise faces.NoFaceError(
                path, f"no face found in any of {len(scores.frames)} scored frames{limit}"
            )
    except BaseException:
        outputs.remove_quietly(overlay_path)
        raise
    result = {
        "input": os.path.abspath(path),
        "kind": "video",
        "width": sample.width,
        "height": sample.height,
        "fps": fps,
        "frame_count": sample.frame_count,
        "frames_scored": len(scores.frames),
        "frames_without_face": scores.without_face,
        "sampling": "every frame" if every_frame else f"{len(sample)} evenly spaced frames",
        "verdict": _verdict(scores.largest_scores, options.threshold),
        "frames": scores.frames,
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
    overwrite: bool = False,
    output_paths: outputs.OutputPaths | None = None,
    model_path: str | None = None,
    timings: dict | None = None,
) -> dict:
    """An image or a video file -> the document ``ffseg detect`` writes for it.

    An image is tried first, then a video (see ``probe``). With
    ``output_dir`` (or ``output_paths``), the document is also written as
    ``<name>.json``, with an overlay ``<name>.png`` (image) or
    ``<name>.mp4`` (video) unless ``overlay_output`` is False. Nothing is
    ever replaced: ``<name>`` (default: the input's file name without its
    extension) gets ``-2``, ``-3``... when a file of that name exists
    (``outputs.plan_outputs``; ``overwrite=True`` replaces earlier results,
    never an input). The JSON is moved into place last, so its presence
    means the input succeeded; a failed input leaves no file behind.

    Args:
        path: the image or video file.
        predictor: see the module docstring (``load_predictor``).
        detector: default ``faces.FaceDetector()``, the training detector.
        num_frames, threshold, batch_size: see ``DetectOptions``.
        output_dir, name, overlay_output, overwrite: where to write, if
            anywhere (see above).
        output_paths: the files to write, as planned by
            ``outputs.plan_outputs`` (``ffseg detect`` plans a whole run
            before reading its first input); overrides ``output_dir``.
        model_path: the model file named in the document (default: the
            predictor's ``path``).
        timings: optional dict of seconds per stage (see ``score_frames``).

    Returns:
        The document: ``{"input", "kind", "model", "verdict": {"score",
        "label", "threshold"}, "width", "height", "frame_count",
        "frames_scored", "frames_without_face", "frames": [{"index",
        "faces": [{"box", "face", "largest", "detection_score", "score",
        "class_probabilities"}]}], "overlay", "warnings", ...}``; what the
        JSON file holds, key for key.

    Raises:
        InputError, video.VideoError, faces.NoFaceError: a bad input.
        outputs.OutputError: an output could not be written (the error
            names that output).

    Example:

    ```python
    import ffseg

    predictor = ffseg.load_predictor("runs/sample/export")
    document = ffseg.detect_file("photo.jpg", predictor)
    print(document["verdict"])          # {'score': 0.50..., 'label': 'fake', ...}
    for face in document["frames"][0]["faces"]:
        print(face["box"], round(face["score"], 3))
    ```
    """
    path = os.fspath(path)
    detector = detector or faces.FaceDetector()
    options = DetectOptions(num_frames=num_frames, threshold=threshold, batch_size=batch_size)
    if output_paths is None and output_dir is not None:
        (output_paths,) = outputs.plan_outputs(
            [path], output_dir, names=None if name is None else [name],
            overlay=overlay_output, overwrite=overwrite,
        )
    with timed(timings, "decode"):
        kind, payload, warnings = probe(path)
    final_overlay = None if output_paths is None else output_paths.overlay(kind)
    for target in (output_paths.targets() if output_paths else ()):
        if _same_file(path, target):
            raise InputError(path, f"its output {target} would overwrite it")
    if output_paths is not None:
        os.makedirs(os.path.dirname(os.path.abspath(output_paths.json)), exist_ok=True)
    overlay_temporary = None if final_overlay is None else outputs.temporary_path(final_overlay)
    try:
        try:
            if kind == "image":
                result = detect_image(
                    path, predictor, detector, image=payload, overlay_path=overlay_temporary,
                    threshold=options.threshold, timings=timings,
                )
                result["warnings"] = warnings
            else:
                result = detect_video(
                    path, predictor, detector, num_frames=options.num_frames,
                    overlay_path=overlay_temporary, threshold=options.threshold,
                    batch_size=options.batch_size, timings=timings,
                )
        except (FileError, OSError) as error:
            # The overlay's encoder or file failed: name the real output, not its temporary.
            where = getattr(error, "path", None) or getattr(error, "filename", None)
            if overlay_temporary is None or where != overlay_temporary:
                raise
            reason = (getattr(error, "reason", None) or getattr(error, "strerror", None)
                      or str(error))
            raise outputs.OutputError(final_overlay, reason.replace(overlay_temporary,
                                                                    final_overlay)) from None
        notices = [sample_model_notice(getattr(predictor, "info", None)),
                   localization_notice(predictor)]
        notices = [notice for notice in notices if notice is not None]
        if notices:
            result["warnings"] = notices + list(result.get("warnings", []))
        model_path = model_path or getattr(predictor, "path", None)
        result["model"] = None if model_path is None else os.path.abspath(model_path)
        if final_overlay is not None:
            result["overlay"] = os.path.abspath(final_overlay)
        if output_paths is not None:
            _write_outputs(result, output_paths, overlay_temporary, final_overlay)
    finally:
        outputs.remove_quietly(overlay_temporary)
    return result


def _write_outputs(result: dict, paths: outputs.OutputPaths, overlay_temporary, final_overlay):
    """Moves the overlay into place, then writes the JSON; on failure, leaves neither."""
    json_temporary = outputs.temporary_path(paths.json)
    try:
        try:
            _write_json(json_temporary, result)
        except OSError as error:
            raise outputs.OutputError(
                paths.json, f"cannot be written ({error.strerror or error})"
            ) from None
        if final_overlay is not None:
            outputs.publish(overlay_temporary, final_overlay, overwrite=paths.overwrite)
        try:
            outputs.publish(json_temporary, paths.json, overwrite=paths.overwrite)
        except BaseException:
            outputs.remove_quietly(final_overlay)
            raise
    finally:
        outputs.remove_quietly(json_temporary)


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
            check_input(path)
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
    import cv2

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise outputs.OutputError(path, "OpenCV could not write the overlay image")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def _write_json(path: str, result: dict) -> None:
    """The result as JSON, one line per frame so that long videos stay readable."""
    ordered = {key: result[key] for key in _JSON_ORDER if key in result}
    ordered.update({key: value for key, value in result.items() if key not in ordered})
    frames = ordered.pop("frames", [])
    head = json.dumps(ordered, indent=2)
    lines = ",\n".join("    " + json.dumps(frame) for frame in frames)
    text = head[:-2] + ',\n  "frames": [\n' + lines + ("\n" if lines else "") + "  ]\n}\n"
    with open(path, "x") as handle:  # a fresh temporary name: never replaces a file
        handle.write(text)


_JSON_ORDER = (
    "input", "kind", "model", "verdict", "width", "height", "fps", "frame_count",
    "frames_scored", "frames_without_face", "sampling", "overlay", "detector", "box_scale",
    "crop_size", "model_info", "warnings", "frames",
)
