"""Test media: real face photos, synthetic clips built from them, and bad files.

Faces are real photographs shipped with the installed packages, so dlib's
detector meets real faces without any download: scikit-image's ``astronaut``
(Eileen Collins) and matplotlib's ``grace_hopper.jpg``. ``coffee`` (a cup of
coffee) has no face; ``tests/test_faces.py`` checks that dlib agrees.

A clip is a face photo pasted onto a smooth 640x480 background and moved a
little each frame, with its ground-truth mask (an ellipse over the face,
moving with it), as a manipulated FF++ video and its mask video would be.
The tests encode clips themselves (``ffseg.signal.video.write_video``) and damage
the files in the ways real downloads get damaged.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess

import cv2
import numpy as np

from ffseg.signal import faces, video


@functools.lru_cache(maxsize=None)
def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo, 512x512 RGB uint8 (one face)."""
    import skimage.data

    return _readonly(skimage.data.astronaut())


@functools.lru_cache(maxsize=None)
def grace_hopper() -> np.ndarray:
    """matplotlib's Grace Hopper portrait, 600x512 RGB uint8 (one face)."""
    import matplotlib.image
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        return _readonly(np.asarray(matplotlib.image.imread(handle, format="jpg")))


@functools.lru_cache(maxsize=None)
def coffee() -> np.ndarray:
    """scikit-image's coffee cup photo, 400x600 RGB uint8 (no face)."""
    import skimage.data

    return _readonly(skimage.data.coffee())


def _readonly(image: np.ndarray) -> np.ndarray:
    image = np.ascontiguousarray(image, dtype=np.uint8)
    image.setflags(write=False)
    return image


PHOTOS = {"astronaut": astronaut, "grace_hopper": grace_hopper}


@functools.lru_cache(maxsize=None)
def photo_face_box(name: str) -> tuple[int, int, int, int]:
    """dlib's face box in the named photo (full resolution, upsample 0)."""
    box = faces.FaceDetector(max_side=None).largest(PHOTOS[name]())
    assert box is not None, f"dlib found no face in {name}"
    return box


def background(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """A smooth, faceless, slightly textured RGB background."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [90 + 60 * x / width, 110 + 40 * y / height, 140 - 50 * (x + y) / (width + height)], -1
    )
    texture = cv2.GaussianBlur(rng.normal(0, 12, (height, width, 3)).astype(np.float32), (0, 0), 3)
    return np.clip(base + texture, 0, 255).astype(np.uint8)


@dataclasses.dataclass
class Clip:
    """Frames of a synthetic face video and its ground truth.

    Attributes:
        frames: list of HxWx3 RGB uint8 frames.
        masks: list of HxW {0,1} uint8 true masks (the face ellipse).
        face_boxes: per frame, the face's box ``(l, t, r, b)`` in the frame,
            or ``None`` where the face was blanked out.
    """

    frames: list
    masks: list
    face_boxes: list

    def mask_frames(self) -> list:
        """The masks as white-on-black RGB frames, the way FF++ stores them."""
        return [np.repeat(m[:, :, None] * np.uint8(255), 3, axis=2) for m in self.masks]


def face_clip(
    photo: str = "astronaut",
    num_frames: int = 20,
    *,
    size: tuple[int, int] = (480, 640),
    face_px: int = 130,
    start: tuple[int, int] = (120, 60),
    step: tuple[float, float] = (2.0, 1.0),
    blank_frames=(),
    seed: int = 0,
) -> Clip:
    """A face photo moving over a background, with its mask.

    Args:
        photo: ``"astronaut"`` or ``"grace_hopper"``.
        num_frames: clip length.
        size: frame (height, width).
        face_px: the face box's width in the clip, in pixels.
        start: (x, y) of the pasted patch's top-left corner in frame 0.
        step: (dx, dy) motion per frame, in pixels (rounded per frame).
        blank_frames: frames where the face is not pasted (no face, no mask).
        seed: background texture seed.
    """
    image = PHOTOS[photo]()
    left, top, right, bottom = photo_face_box(photo)
    zoom = face_px / (right - left)
    # Paste the face with 0.6 face-widths of context on each side.
    margin = int(0.6 * (right - left))
    x0, y0 = max(left - margin, 0), max(top - margin, 0)
    x1, y1 = min(right + margin, image.shape[1]), min(bottom + margin, image.shape[0])
    patch = cv2.resize(
        image[y0:y1, x0:x1],
        (int(round((x1 - x0) * zoom)), int(round((y1 - y0) * zoom))),
        interpolation=cv2.INTER_AREA,
    )
    face_in_patch = [(left - x0) * zoom, (top - y0) * zoom, (right - x0) * zoom,
                     (bottom - y0) * zoom]
    patch_mask = np.zeros(patch.shape[:2], np.uint8)
    centre = (int(round((face_in_patch[0] + face_in_patch[2]) / 2)),
              int(round((face_in_patch[1] + face_in_patch[3]) / 2)))
    axes = (int(round((face_in_patch[2] - face_in_patch[0]) * 0.5)),
            int(round((face_in_patch[3] - face_in_patch[1]) * 0.65)))
    cv2.ellipse(patch_mask, centre, axes, 0, 0, 360, 1, -1)

    height, width = size
    canvas = background(height, width, seed)
    frames, masks_, boxes = [], [], []
    for t in range(num_frames):
        frame = canvas.copy()
        mask = np.zeros((height, width), np.uint8)
        px = int(round(start[0] + step[0] * t))
        py = int(round(start[1] + step[1] * t))
        ph, pw = patch.shape[:2]
        if not (0 <= px and px + pw <= width and 0 <= py and py + ph <= height):
            raise ValueError(f"frame {t}: patch at ({px}, {py}) leaves the {width}x{height} frame")
        if t in blank_frames:
            boxes.append(None)
        else:
            frame[py:py + ph, px:px + pw] = patch
            mask[py:py + ph, px:px + pw] = patch_mask
            boxes.append(tuple(int(round(v)) for v in (
                px + face_in_patch[0], py + face_in_patch[1],
                px + face_in_patch[2], py + face_in_patch[3])))
        frames.append(frame)
        masks_.append(mask)
    return Clip(frames, masks_, boxes)


def still_clip(image: np.ndarray, num_frames: int, size=(480, 640)) -> list:
    """``image`` centred on the background, unmoving, ``num_frames`` times."""
    height, width = size
    frame = background(height, width)
    ih, iw = image.shape[:2]
    y, x = (height - ih) // 2, (width - iw) // 2
    frame[y:y + ih, x:x + iw] = image
    return [frame] * num_frames


def ffmpeg(*args: str) -> None:
    """Runs imageio-ffmpeg's ffmpeg binary, failing loudly."""
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-v", "error", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {result.stderr}")


def remux(source, target, *extra: str) -> str:
    """Copies the video stream of ``source`` into another container, re-encoding nothing.

    ``.h264`` gives a raw Annex-B stream, whose frame count OpenCV cannot
    read (it reports a garbage or zero count); ``.avi`` from a 25 fps MP4
    gets a frame rate and frame count that overstate the real ones.
    """
    target = os.fspath(target)
    args = ["-i", os.fspath(source), "-map", "0:v:0", "-c", "copy", *extra]
    if target.endswith(".h264"):
        args += ["-bsf:v", "h264_mp4toannexb", "-f", "h264"]
    ffmpeg(*args, target)
    return target


def truncate(source, target, fraction: float) -> str:
    """Writes the first ``fraction`` of the bytes of ``source`` to ``target``."""
    with open(source, "rb") as handle:
        data = handle.read()
    with open(target, "wb") as handle:
        handle.write(data[: int(len(data) * fraction)])
    return os.fspath(target)


def random_bytes(target, size: int = 50_000, seed: int = 0) -> str:
    """A file of random bytes with a video's name."""
    with open(target, "wb") as handle:
        handle.write(np.random.RandomState(seed).bytes(size))
    return os.fspath(target)


def grainy_face_clip(num_frames: int, grain: float = 6.0, seed: int = 0) -> Clip:
    """The astronaut moving about 2 px/frame over a 640x480 background, with
    fresh camera-like grain in every frame, so that x264 has real residuals
    to code (grain 6 at QP 23: ~2 Mbit/s, a c23-like bitrate) and decoding
    costs what it costs on real footage. Used by the benchmarks."""
    # Keep the face inside the frame however many frames there are.
    step = (min(2.0, 190 / num_frames), min(1.0, 90 / num_frames))
    clip = face_clip("astronaut", num_frames, step=step)
    rng = np.random.RandomState(seed)
    clip.frames = [
        np.clip(frame + rng.normal(0, grain, frame.shape), 0, 255).astype(np.uint8)
        for frame in clip.frames
    ]
    return clip


def write_clip(path, frames, **kwargs) -> str:
    """Encodes ``frames`` (x264 at QP 23 unless told otherwise) and returns the path."""
    kwargs.setdefault("qp", 23)
    video.write_video(path, frames, **kwargs)
    return os.fspath(path)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two binary masks (1.0 when both are empty)."""
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def recalibrate_batch_norm(model, images) -> None:
    """Sets every BatchNormalization's moving statistics to those of ``images``.

    An untrained FFSeg has the batch-norm statistics of an empty network and
    scores every face exactly 0.5, which would let a test that mixes up
    faces pass; after one forward pass in training mode with momentum 0,
    different faces get different scores and non-trivial maps.
    """
    import keras

    layers = [
        layer for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert layers, "FFSeg has no batch normalization layers?"
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
