"""Training examples from one video: face crops, aligned masks, noise labels.

This is the per-video step of the FaceForensics++ builder (no TensorFlow):
sample frames evenly, find the face in each (dlib, 1.3x square box; see
``ffseg.faces``), crop the frame and its manipulation mask with the *same*
box, in lockstep (/work/shared/FFPP.md, "Masks"), and compute the noise label
of the image crop, the wavelet Wiener residual of paper Eq. 4-5
(``ffseg.noise``), reduced to one channel.

Only the sampled frames (and their binarised masks) are held in memory,
whatever the length of the video.
"""

from __future__ import annotations

import os

import numpy as np

from ffseg import faces, masks, noise, video
from ffseg.timing import timed

__all__ = ["extract_video"]

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
    size: int = 299,
    sigma: float,
    detector: faces.FaceDetector | None = None,
    frame_indices=None,
    scale: float = 1.3,
    mask_threshold: int | None = None,
    timings: dict | None = None,
) -> tuple[list[dict], list[dict]]:
    """Face crops, masks and noise labels of the sampled frames of one video.

    Args:
        video_path: the (real or manipulated) video.
        mask_path: its FF++ mask video, or ``None`` for a real video (all-zero
            masks).
        num_frames: frames to sample evenly over the real frame count
            (``None``: all). Ignored when ``frame_indices`` is given.
        size: side of the square crops (299 for Xception).
        sigma: noise standard deviation of the Wiener denoiser, 0..255 units
            (5 for c23, 10 for c40; FFPP.md "Noise labels").
        detector: a ``faces.FaceDetector``; default ``FaceDetector()``. Use
            the same settings at inference.
        frame_indices: explicit frame indices instead of even sampling;
            indices past the end of the video are reported as skipped.
        scale: face box enlargement (1.3 in FF++ and the paper).
        mask_threshold: passed to ``masks.binary_mask``.
        timings: optional dict; seconds spent are added under ``"decode"``,
            ``"mask"`` (mask decoding and thresholding), ``"detect"``,
            ``"crop"`` and ``"noise"``.

    Returns:
        ``(examples, skipped)``. Each example is ``{"image": size x size x 3
        uint8, "mask": size x size x 1 uint8 in {0,1}, "noise": size x size
        float32, "frame": int, "box": (x0, y0, x1, y1), "detected": bool,
        "flags": [str, ...]}``, in frame order; ``detected`` is False where
        the box was borrowed from the nearest frame with a face. ``flags``
        lists why a kept frame of a manipulated video deserves a look: its
        mask frame marks no pixel (or every pixel), its mask lies wholly
        outside the face crop, or the mask video is longer than the video
        (masks are then assumed to start at frame 0). Each skipped frame is
        ``{"frame": int, "reason": str}``: a frame past the end of the mask
        video ("mask video has N frames") gets no example, never an all-zero
        mask.

    Raises:
        VideoError: the video or mask video is unreadable, empty or truncated;
            mask frames are not the size of the video's frames, or are shown
            with another rotation; or every sampled mask frame is empty (all
            black) or full (all white), which says nothing about where the
            manipulation is.
        NoFaceError: no face in any usable sampled frame.
    """
    if isinstance(sigma, bool) or not (
        isinstance(sigma, (int, float, np.floating, np.integer)) and sigma > 0
    ):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    video_path = os.fspath(video_path)
    detector = detector or _detector()
    skipped: list[dict] = []

    # The video's real frame count, where the sampling proves it: even
    # sampling of >= 2 frames always includes the last frame.
    video_count = None
    with timed(timings, "decode"):
        if frame_indices is None:
            indices, frame_list = video.sample_frames(video_path, num_frames)
            frames = dict(zip((int(i) for i in indices), frame_list))
            del frame_list
            if num_frames is None or int(num_frames) >= 2:
                video_count = int(indices[-1]) + 1
        else:
            wanted = np.unique(np.asarray(list(frame_indices), dtype=np.int64))
            frames, video_count = video.read_frames(video_path, wanted)
            for index in wanted:
                if int(index) not in frames:
                    skipped.append(
                        {"frame": int(index), "reason": f"video has {video_count} frames"}
                    )
    frame_shape = next(iter(frames.values())).shape if frames else None

    flags: dict[int, list[str]] = {index: [] for index in frames}
    if mask_path is None:
        mask_by_frame = {index: None for index in frames}
    else:
        mask_path = os.fspath(mask_path)
        _check_same_rotation(video_path, mask_path)

        def binarise(index, mask_frame):
            if mask_frame.shape[:2] != frame_shape[:2]:
                raise video.VideoError(
                    mask_path,
                    f"mask frame {index} is {mask_frame.shape[1]}x{mask_frame.shape[0]} but "
                    f"the frames of {video_path} are {frame_shape[1]}x{frame_shape[0]}",
                )
            return masks.binary_mask(mask_frame, mask_threshold)

        # One mask frame past the video's end, if the video's length is known,
        # tells a mask video longer than its video.
        wanted = sorted(frames) + ([video_count] if video_count is not None else [])
        with timed(timings, "mask"):
            mask_by_frame, mask_count = (
                video.read_frames(mask_path, wanted, transform=binarise) if frames else ({}, None)
            )
        longer = video_count is not None and mask_by_frame.pop(video_count, None) is not None
        for index in sorted(frames):
            if index not in mask_by_frame:
                skipped.append({"frame": index, "reason": f"mask video has {mask_count} frames"})
                del frames[index]
                del flags[index]
        _check_mask_content(mask_path, [mask_by_frame[i] for i in sorted(frames)])
        for index in frames:
            mask = mask_by_frame[index]
            if not mask.any():
                flags[index].append("mask frame is empty (all black) in a manipulated video")
            elif mask.all():
                flags[index].append("mask frame is full (all white) in a manipulated video")
            if longer:
                flags[index].append(
                    f"mask video has more frames than the video ({video_count}); masks are "
                    "assumed to start at frame 0"
                )

    kept = sorted(frames)
    if not kept:
        return [], sorted(skipped, key=lambda s: s["frame"])

    with timed(timings, "detect"):
        boxes, detected = faces.track_boxes(
            [frames[i] for i in kept], detector, path=video_path, indices=kept, scale=scale
        )

    examples = []
    for index, box, found in zip(kept, boxes, detected):
        with timed(timings, "crop"):
            image = faces.crop(frames.pop(index), box, size)
            mask = mask_by_frame.pop(index)
            if mask is None:
                mask = masks.empty_mask((size, size))
            else:
                whole_frame_marked = bool(mask.any())
                mask = faces.crop_mask(mask, box, size)
                if whole_frame_marked and not mask.any():
                    flags[index].append("mask lies wholly outside the face crop")
        with timed(timings, "noise"):
            noise_map = noise.to_gray(noise.noise_residual(image, sigma))
        examples.append(
            {
                "image": image,
                "mask": mask[:, :, None],
                "noise": noise_map.astype(np.float32, copy=False),
                "frame": int(index),
                "box": tuple(int(v) for v in box),
                "detected": bool(found),
                "flags": flags.pop(index),
            }
        )
    return examples, sorted(skipped, key=lambda s: s["frame"])


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


def _check_mask_content(mask_path: str, mask_frames) -> None:
    """Fails when no sampled mask frame says where the manipulation is."""
    if not mask_frames:
        return
    if not any(mask.any() for mask in mask_frames):
        what = "empty (all black)"
    elif all(mask.all() for mask in mask_frames):
        what = "full (all white)"
    else:
        return
    raise video.VideoError(
        mask_path,
        f"mask video is {what} in all {len(mask_frames)} sampled frames of a manipulated "
        "video: it does not say which pixels were manipulated",
    )
