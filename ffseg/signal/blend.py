"""Pseudo-fakes from real faces: blended faces, their masks and noise labels (no TensorFlow).

A detector and locator can learn from real faces alone when fakes are made
on the fly by blending a face with an altered copy of a face, and the blend
mask is the localization target. Two kinds:

- self-blend, after Shiohara & Yamasaki ("Detecting Deepfakes with
  Self-Blended Images", CVPR 2022): the face with a transformed copy of
  itself, so the only telltales are the blending boundary and the
  source-target inconsistencies of colour, frequency and geometry;
- cross-blend, after Li et al. ("Face X-ray for More General Face Forgery
  Detection", CVPR 2020): the face of another person (the donor), aligned to
  it by landmarks and colour-matched, pasted under the same kind of mask.

Every pseudo-fake is made in four steps (``self_blend``/``cross_blend``):

1. the source: the copy (self) or the aligned donor (cross), with a random
   source-target augmentation: colour and brightness jitter, sharpening or
   blur, JPEG compression, a small scale change and translation;
2. the mask: the convex hull of a part's landmarks (the whole face, the
   inner face, the eyes with their brows, or the mouth), elastically
   deformed (random displacements on a coarse grid, upsampled), eroded or
   dilated, and blurred; a value in [0, 1], exactly 0 away from the part;
3. the blend: image = face + ratio * mask * (source - face), with the blend
   ratio drawn from [0.25, 1]; where the mask is 0 the image is the face,
   bit for bit;
4. the noise label of the blended image, as for every stored example
   (paper Eq. 4-5): ``noise.to_gray(noise.noise_residual(image, sigma))``.

The mask is the semantic-map target (paper Sec. III): it says where the face
was altered, and keeps its value 1 inside the part whatever the blend ratio
(the weight of the source in a pixel is ``blend_ratio * mask``).

The sizes of the mask's deformation, erosion/dilation and blur are
fractions of the part's size, the square root of its hull's area, so a mouth
mask is deformed as much, relatively, as a whole-face mask. Everything is a
pure function of its inputs and an explicit integer seed
(``numpy.random.default_rng(seed)``): the same seed gives the same output,
bit for bit.

``write_grid`` shows what a model learns from: a PNG of rows face |
pseudo-fake | mask | noise label, from a face photo or a video.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import os
from typing import Sequence

import cv2
import numpy as np

from ffseg.constants import BOX_SCALE, CROP_SIZE, NOISE_SIGMA, image_format
from ffseg.errors import FileError
from ffseg.signal import faces, landmarks, noise, video

__all__ = [
    "KINDS",
    "PARTS",
    "BlendOptions",
    "PseudoFake",
    "part_size",
    "part_mask",
    "self_blend",
    "cross_blend",
    "GRID_COLUMNS",
    "FaceCrop",
    "face_crops",
    "read_frames",
    "builtin_donors",
    "grid_image",
    "write_grid",
]

KINDS = ("self", "cross")

_R = landmarks.REGIONS
# The landmark groups whose convex hulls make each part's mask (several
# groups: the union of their hulls).
PARTS = {
    "face": (tuple(range(landmarks.NUM_LANDMARKS)),),
    # Brows, eyes, nose and mouth: the face without its outline.
    "inner": (tuple(range(17, landmarks.NUM_LANDMARKS)),),
    "eyes": (_R["right_brow"] + _R["right_eye"], _R["left_brow"] + _R["left_eye"]),
    "mouth": (_R["mouth"],),
}


@dataclasses.dataclass(frozen=True)
class BlendOptions:
    """The random ranges of the pseudo-fake generator.

    Sizes of the mask steps are fractions of the part's size (``part_size``:
    the square root of the area of its landmark hull). Defaults follow the
    self-blended images paper's ranges where it gives them (blend ratio,
    scale, translation, JPEG quality).

    Args:
        parts: the parts a mask is drawn from when none is asked for.
        part_weights: their probabilities (normalised).
        blend_ratio: (low, high) of the uniform blend ratio.
        channel_shift: largest per-channel shift of the source, 0..255 units.
        brightness: largest brightness shift, a fraction of 255.
        contrast: largest relative contrast change.
        saturation: largest relative saturation change.
        blur_sigma: (low, high) Gaussian sigma of the source's blur, pixels.
        sharpen: (low, high) amount of the source's unsharp masking.
        filter_probabilities: probabilities of (blur, sharpen); none otherwise.
        jpeg_probability: how often the source is JPEG-compressed.
        jpeg_quality: (low, high) JPEG quality, inclusive.
        scale: (low, high) scale of the source about the face's centre.
        translation: largest shift of the source, a fraction of the side.
        elastic: largest displacement of the elastic deformation per axis.
        elastic_grid: control points per side of the deformation's grid.
        morph: largest erosion or dilation radius.
        blur: largest side of the mask's Gaussian blur kernel.
    """

    parts: tuple[str, ...] = ("face", "inner", "eyes", "mouth")
    part_weights: tuple[float, ...] = (0.4, 0.3, 0.15, 0.15)
    blend_ratio: tuple[float, float] = (0.25, 1.0)
    channel_shift: float = 20.0
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.5)
    sharpen: tuple[float, float] = (0.3, 1.0)
    filter_probabilities: tuple[float, float] = (0.3, 0.3)
    jpeg_probability: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 100)
    scale: tuple[float, float] = (0.95, 1.05)
    translation: float = 0.03
    elastic: float = 0.04
    elastic_grid: int = 5
    morph: float = 0.06
    blur: float = 0.25

    def __post_init__(self):
        unknown = [part for part in self.parts if part not in PARTS]
        if not self.parts or unknown:
            raise ValueError(f"parts must be some of {sorted(PARTS)}, got {self.parts}")
        if len(self.part_weights) != len(self.parts) or min(self.part_weights) < 0:
            raise ValueError("part_weights must be one non-negative weight per part")
        if sum(self.part_weights) <= 0:
            raise ValueError("part_weights must not all be zero")
        low, high = self.blend_ratio
        if not 0 < low <= high <= 1:
            raise ValueError(f"blend_ratio must satisfy 0 < low <= high <= 1, got {(low, high)}")
        low, high = self.jpeg_quality
        if not 1 <= low <= high <= 100:
            raise ValueError(f"jpeg_quality must lie in 1..100, got {(low, high)}")
        if sum(self.filter_probabilities) > 1 or min(self.filter_probabilities) < 0:
            raise ValueError("filter_probabilities must be >= 0 and sum to at most 1")
        if self.elastic_grid < 2:
            raise ValueError(f"elastic_grid must be >= 2, got {self.elastic_grid}")
        for name in ("elastic", "morph", "blur", "translation", "jpeg_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True, eq=False)
class PseudoFake:
    """One pseudo-fake and its labels.

    Attributes:
        image: H x W x 3 RGB uint8, the blended face.
        mask: H x W float32 in [0, 1], where the face was altered (the
            semantic-map target; the source's weight is ``blend_ratio * mask``).
        noise: H x W float32, the noise label of ``image`` (paper Eq. 4-5).
        kind: ``"self"`` or ``"cross"``.
        part: the part the mask was drawn from, a key of ``PARTS``.
        blend_ratio: the source's weight where the mask is 1, in [0.25, 1].
    """

    image: np.ndarray
    mask: np.ndarray
    noise: np.ndarray
    kind: str
    part: str
    blend_ratio: float


# --------------------------------------------------------------------------
# Checks


def _check_face(face, name: str = "face") -> np.ndarray:
    face = np.asarray(face)
    if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
        raise ValueError(f"{name} must be an H x W x 3 RGB uint8 array, got {face.dtype} "
                         f"{face.shape}")
    return face


def _check_landmarks(points, name: str = "landmarks") -> np.ndarray:
    points = np.asarray(points, np.float32)
    if points.shape != (landmarks.NUM_LANDMARKS, 2):
        raise ValueError(f"{name} must be a ({landmarks.NUM_LANDMARKS}, 2) array, got shape "
                         f"{points.shape}")
    if not np.isfinite(points).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return points


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _choose_part(rng: np.random.Generator, part, options: BlendOptions) -> str:
    if part is not None:
        if part not in PARTS:
            raise ValueError(f"part must be one of {sorted(PARTS)}, got {part!r}")
        return part
    weights = np.asarray(options.part_weights, np.float64)
    return options.parts[int(rng.choice(len(options.parts), p=weights / weights.sum()))]


# --------------------------------------------------------------------------
# Masks


def _hull_image(points: np.ndarray, part: str, shape) -> np.ndarray:
    """The filled convex hulls of ``part`` as a uint8 {0, 1} image of ``shape``."""
    filled = np.zeros(shape[:2], np.uint8)
    for group in PARTS[part]:
        # fillConvexPoly takes fixed-point vertices: 4 fractional bits.
        hull = cv2.convexHull(np.round(points[list(group)] * 16).astype(np.int32))
        cv2.fillConvexPoly(filled, hull, 1, lineType=cv2.LINE_8, shift=4)
    return filled


def part_size(points, part: str) -> float:
    """The size of a part: the square root of the area of its landmark hulls, in pixels."""
    points = _check_landmarks(points)
    if part not in PARTS:
        raise ValueError(f"part must be one of {sorted(PARTS)}, got {part!r}")
    area = 0.0
    for group in PARTS[part]:
        area += cv2.contourArea(cv2.convexHull(points[list(group)]))
    return float(np.sqrt(max(area, 1.0)))


def _mask_steps(rng: np.random.Generator, size: float, options: BlendOptions):
    """The random sizes of the mask's steps, in pixels: (elastic, morph radius, blur kernel)."""
    elastic = float(rng.uniform(0, options.elastic * size))
    radius = int(rng.uniform(-1, 1) * options.morph * size)  # truncated: |radius| <= bound
    # An odd kernel side from 1 (no blur) to the largest allowed.
    half = int(options.blur * size) // 2
    kernel = 2 * int(rng.integers(0, half + 1)) + 1
    return elastic, radius, kernel


def part_mask(points, part: str, shape, seed: int, options: BlendOptions = BlendOptions()):
    """The blending mask of a part: its hull, deformed, eroded or dilated, and blurred.

    Args:
        points: (68, 2) landmarks in the image's pixel coordinates.
        part: a key of ``PARTS``.
        shape: the image's shape (``(H, W, ...)``).
        seed: non-negative integer seed.
        options: the random ranges.

    Returns:
        H x W float32 in [0, 1]. With ``s = part_size(points, part)``, it is 0
        farther than ``s * (sqrt(2) * options.elastic + options.morph +
        options.blur / 2) + 3`` pixels outside the hulls and non-zero deeper
        than ``s * (sqrt(2) * options.elastic + options.morph) + 3`` pixels
        inside them (the deformation moves a point by at most ``sqrt(2) * s *
        options.elastic``, the hull's rasterisation and the bilinear sampling
        by less than 3 pixels together). Never all 0: a thin part that the
        deformation or erosion would remove keeps its hull instead.

    Raises:
        ValueError: the part's hull covers no pixel of the image.
    """
    rng = np.random.default_rng(_check_seed(seed))
    return _part_mask(rng, _check_landmarks(points), part, shape, options)[0]


def _part_mask(rng, points, part, shape, options):
    """``(mask, window)``: the mask, and the ``(y0, y1, x0, x1)`` outside which it is 0."""
    height, width = int(shape[0]), int(shape[1])
    size = part_size(points, part)
    elastic, radius, kernel = _mask_steps(rng, size, options)
    hull = _hull_image(points, part, (height, width))
    mask = np.zeros((height, width), np.float32)
    ys, xs = np.nonzero(hull)
    if ys.size == 0:
        # A fake with nothing altered would be a mislabelled real face.
        raise ValueError(f"the {part!r} part's landmarks cover no pixel of the "
                         f"{width}x{height} image")
    # Work in a window around the hulls wide enough for every step, so the
    # cost scales with the part, not with the image.
    margin = int(np.ceil(np.sqrt(2) * elastic)) + max(radius, 0) + kernel // 2 + 2
    x0, x1 = max(xs.min() - margin, 0), min(xs.max() + 1 + margin, width)
    y0, y1 = max(ys.min() - margin, 0), min(ys.max() + 1 + margin, height)
    region = hull[y0:y1, x0:x1].astype(np.float32)
    h, w = region.shape
    # Elastic deformation: independent displacements at the control points
    # of a coarse grid, upsampled bilinearly (so never larger than
    # ``elastic``); each output pixel samples the hull where its displaced
    # position falls.
    grid = options.elastic_grid
    shifts = rng.uniform(-elastic, elastic, size=(2, grid, grid)).astype(np.float32)
    map_x = cv2.resize(shifts[0], (w, h), interpolation=cv2.INTER_LINEAR)
    map_y = cv2.resize(shifts[1], (w, h), interpolation=cv2.INTER_LINEAR)
    map_x += np.arange(w, dtype=np.float32)[None, :]
    map_y += np.arange(h, dtype=np.float32)[:, None]
    warped = cv2.remap(region, map_x, map_y, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    region = (warped >= 0.5).astype(np.uint8)
    if not region.any():  # a sliver of a hull, deformed away
        region = hull[y0:y1, x0:x1]
    if radius != 0:
        element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(radius) + 1,) * 2)
        morph = cv2.dilate if radius > 0 else cv2.erode
        changed = morph(region, element, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        # Never erode a thin part away: the mask must keep some pixels.
        region = changed if changed.any() else region
    region = region.astype(np.float32)
    if kernel > 1:
        region = cv2.GaussianBlur(region, (kernel, kernel), 0, borderType=cv2.BORDER_CONSTANT)
    mask[y0:y1, x0:x1] = np.clip(region, 0.0, 1.0)
    return mask, (y0, y1, x0, x1)


# --------------------------------------------------------------------------
# The source: augmentation of the copy


_GREY = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma weights


def _augment(rng: np.random.Generator, source: np.ndarray, centre, options: BlendOptions,
             colour=None):
    """Source-target augmentation of the copy; returns H x W x 3 RGB uint8.

    Args:
        rng: the generator.
        source: H x W x 3 RGB uint8.
        centre: (x, y) the scale change is about (the face's centre).
        options: the ranges.
        colour: optional ``(gain, bias)`` per channel, applied first (the
            cross-blend's colour matching).
    """
    height, width = source.shape[:2]
    gain, bias = (np.ones(3), np.zeros(3)) if colour is None else colour
    # Colour and brightness: saturation and contrast about the mean grey,
    # then a brightness shift and one shift per channel. Every step is
    # affine in the pixel's RGB, grey = w . x included, so they compose
    # into one 3 x 4 matrix applied by a single cv2.transform:
    #   x' = c s x + c (1 - s) (w . x) 1 + (1 - c) mean + offset.
    contrast = 1 + rng.uniform(-options.contrast, options.contrast)
    saturation = 1 + rng.uniform(-options.saturation, options.saturation)
    offset = rng.uniform(-options.channel_shift, options.channel_shift, 3) + rng.uniform(
        -options.brightness, options.brightness) * 255
    means = np.asarray(cv2.mean(source)[:3]) * gain + bias
    mean_grey = float(_GREY @ means)
    linear = contrast * saturation * np.eye(3) + contrast * (1 - saturation) * np.outer(
        np.ones(3), _GREY)
    matrix = np.empty((3, 4))
    matrix[:, :3] = linear * gain[None, :]  # the matching's gain comes first
    matrix[:, 3] = linear @ bias + (1 - contrast) * mean_grey + offset
    # cv2.transform rounds to nearest and saturates to 0..255.
    pixels = cv2.transform(source, matrix)
    # Frequency: blur or sharpen (unsharp masking), or neither.
    blur_p, sharpen_p = options.filter_probabilities
    draw = rng.uniform()
    if draw < blur_p:
        pixels = cv2.GaussianBlur(pixels, (0, 0), float(rng.uniform(*options.blur_sigma)))
    elif draw < blur_p + sharpen_p:
        amount = float(rng.uniform(*options.sharpen))
        smooth = cv2.GaussianBlur(pixels, (0, 0), 1.0)
        pixels = cv2.addWeighted(pixels, 1 + amount, smooth, -amount, 0)
    if rng.uniform() < options.jpeg_probability:
        quality = int(rng.integers(options.jpeg_quality[0], options.jpeg_quality[1] + 1))
        _, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
        pixels = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    # Geometry: scale about the face's centre, then translate.
    scale = float(rng.uniform(*options.scale))
    shift = rng.uniform(-options.translation, options.translation, 2) * (width, height)
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 0.0, scale)
    matrix[:, 2] += shift
    return cv2.warpAffine(pixels, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def _similarity(source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
    """The 2 x 3 similarity (rotation, uniform scale, translation) taking source to target.

    Least squares over all points (Umeyama, IEEE TPAMI 1991), without
    reflection.
    """
    src = source_points.astype(np.float64)
    dst = target_points.astype(np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = float((singular * sign).sum() / max((src_c**2).sum() / len(src), 1e-12))
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def _match_colour(source: np.ndarray, target: np.ndarray, region: np.ndarray):
    """Per-channel ``(gain, bias)`` matching ``source``'s mean and spread inside ``region``
    to ``target``'s.

    Face X-ray's colour correction, so that a cross-blend's telltale is its
    boundary and texture, not a skin-tone jump any model would spot.
    ``_augment`` applies it within its colour matrix.
    """
    if cv2.countNonZero(region) < 16:
        return np.ones(3), np.zeros(3)
    src_mean, src_std = (v.ravel() for v in cv2.meanStdDev(source, mask=region))
    dst_mean, dst_std = (v.ravel() for v in cv2.meanStdDev(target, mask=region))
    gain = dst_std / np.maximum(src_std, 1.0)
    return gain, dst_mean - gain * src_mean


# --------------------------------------------------------------------------
# The generator


def _blend(rng, face, points, source, kind, part, sigma, options) -> PseudoFake:
    mask, (y0, y1, x0, x1) = _part_mask(rng, points, part, face.shape, options)
    ratio = float(rng.uniform(*options.blend_ratio))
    image = face.copy()
    # Blend only inside the mask's window; elsewhere the face is kept as is.
    alpha = mask[y0:y1, x0:x1, None] * np.float32(ratio)
    target = face[y0:y1, x0:x1].astype(np.float32)
    blended = target + alpha * (source[y0:y1, x0:x1] - target)
    # Where alpha is 0 the sum is the face's value exactly, and so is its rounding.
    image[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    noise_map = noise.to_gray(noise.noise_residual(image, sigma))
    return PseudoFake(image=image, mask=mask, noise=noise_map.astype(np.float32, copy=False),
                      kind=kind, part=part, blend_ratio=ratio)


def self_blend(face, points, seed: int, *, sigma: float = NOISE_SIGMA["c23"], part=None,
               options: BlendOptions = BlendOptions()) -> PseudoFake:
    """A self-blended pseudo-fake: a face blended with an augmented copy of itself.

    Self-blended images (Shiohara & Yamasaki, CVPR 2022); the mask is the
    semantic-map target and the noise label is that of paper Eq. 4-5.

    Args:
        face: H x W x 3 RGB uint8 face crop (as ``ffseg.signal.faces.crop``).
        points: its (68, 2) landmarks in crop coordinates
            (``ffseg.signal.landmarks.to_crop``).
        seed: non-negative integer; the same seed gives the same output.
        sigma: the noise label's sigma, 0..255 units (5 for c23, 10 for c40).
        part: a key of ``PARTS``, or ``None`` to draw one.
        options: the random ranges.

    Example:

    ```python
    import skimage.data
    from ffseg.signal.faces import FaceDetector, face_box, crop
    from ffseg.signal.landmarks import LandmarkDetector, to_crop
    from ffseg.signal.blend import self_blend

    image = skimage.data.astronaut()
    found = FaceDetector().largest(image)
    box = face_box(found, image.shape)
    face = crop(image, box, 299)
    points = to_crop(LandmarkDetector()(image, found), box, 299)
    fake = self_blend(face, points, seed=7)
    fake.image, fake.mask, fake.noise, fake.part, fake.blend_ratio
    ```
    """
    face = _check_face(face)
    points = _check_landmarks(points)
    rng = np.random.default_rng(_check_seed(seed))
    part = _choose_part(rng, part, options)
    source = _augment(rng, face, points.mean(0), options)
    return _blend(rng, face, points, source, "self", part, sigma, options)


def cross_blend(face, points, donor, donor_points, seed: int, *,
                sigma: float = NOISE_SIGMA["c23"], part=None,
                options: BlendOptions = BlendOptions()) -> PseudoFake:
    """A cross-blended pseudo-fake: another person's face pasted onto this one.

    Face X-ray (Li et al., CVPR 2020): the donor is aligned to the face by
    a least-squares similarity of their landmarks, colour-matched inside
    the face's hull, augmented like a self-blend's copy, then blended under
    the part's mask. The donor must be a real face of another identity (not
    checked: the caller knows who is who).

    Args:
        face: H x W x 3 RGB uint8 face crop (the target).
        points: its (68, 2) landmarks in crop coordinates.
        donor: h x w x 3 RGB uint8 face crop of another person (any size).
        donor_points: the donor's (68, 2) landmarks in its own coordinates.
        seed, sigma, part, options: as for ``self_blend``.

    Example:

    ```python
    fake = cross_blend(face, points, donor_face, donor_points, seed=3, part="mouth")
    ```
    """
    face = _check_face(face)
    points = _check_landmarks(points)
    donor = _check_face(donor, "donor")
    donor_points = _check_landmarks(donor_points, "donor_points")
    rng = np.random.default_rng(_check_seed(seed))
    part = _choose_part(rng, part, options)
    height, width = face.shape[:2]
    matrix = _similarity(donor_points, points)
    aligned = cv2.warpAffine(donor, matrix, (width, height), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT_101)
    colour = _match_colour(aligned, face, _hull_image(points, "face", face.shape))
    source = _augment(rng, aligned, points.mean(0), options, colour)
    return _blend(rng, face, points, source, "cross", part, sigma, options)


# --------------------------------------------------------------------------
# The grid: see what the model learns from

GRID_COLUMNS = ("face", "pseudo-fake", "mask", "noise label")
_LABEL_WIDTH = 200
_HEADER_HEIGHT = 34
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclasses.dataclass(frozen=True, eq=False)
class FaceCrop:
    """A face crop with its landmarks, as the generator takes them.

    Attributes:
        image: size x size x 3 RGB uint8 crop (``faces.crop`` of the 1.3x box).
        points: (68, 2) float32 landmarks in crop coordinates.
        caption: where it came from, for the grid ("photo", "frame 12", a name).
        descriptor: the face's 128-d identity descriptor
            (``landmarks.FaceDescriptor``), or ``None`` when not computed.
    """

    image: np.ndarray
    points: np.ndarray
    caption: str
    descriptor: np.ndarray | None = None


def face_crops(frames, *, count: int, size: int = CROP_SIZE, path=None,
               detector: faces.FaceDetector | None = None,
               landmark_detector: landmarks.LandmarkDetector | None = None,
               descriptor: landmarks.FaceDescriptor | None = None) -> list[FaceCrop]:
    """The largest face of each frame, cropped as for training, with its landmarks.

    Args:
        frames: iterable of ``(caption, RGB uint8 frame)``; read only until
            ``count`` faces are found.
        count: how many faces to return at most.
        size: crop side.
        path: the file the frames come from, for the error.
        detector, landmark_detector: default ``FaceDetector()`` and
            ``LandmarkDetector()``.
        descriptor: a ``landmarks.FaceDescriptor`` to describe each face's
            identity with (about 0.1 s a face), or ``None``.

    Raises:
        NoFaceError: no face in any frame.
    """
    detector = faces.FaceDetector() if detector is None else detector
    landmark_detector = landmarks.LandmarkDetector() if landmark_detector is None \
        else landmark_detector
    found, seen = [], 0
    for caption, frame in frames:
        seen += 1
        face = detector.largest(frame)
        if face is None:
            continue
        box = faces.face_box(face, frame.shape, BOX_SCALE)
        points = landmarks.to_crop(landmark_detector(frame, face), box, size)
        identity = None if descriptor is None else descriptor(frame, face)
        found.append(FaceCrop(faces.crop(frame, box, size), points, caption, identity))
        if len(found) >= count:
            break
    if not found:
        limit = faces.size_limit(detector, frame.shape) if seen else ""
        raise faces.NoFaceError(path, f"no face found in {seen} frame(s){limit}")
    return found


def read_frames(path, max_frames: int = 300):
    """``(caption, RGB frame)`` pairs of a photo (one) or a video (its first ``max_frames``).

    Raises:
        FileError: missing, empty or unreadable file (``video.VideoError`` for videos).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileError(path, "file not found")
    if not os.path.isfile(path):
        raise FileError(path, "not a regular file (a folder?)")
    if os.path.getsize(path) == 0:
        raise FileError(path, "file is empty (0 bytes)")
    with open(path, "rb") as handle:
        kind = image_format(handle.read(16))
    if kind is not None:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None or bgr.size == 0:
            raise FileError(path, f"a {kind} image that OpenCV cannot decode")
        return iter([("photo", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))])
    return ((f"frame {index}", frame)
            for index, frame in video.iter_frames(path, range(int(max_frames))))


@functools.lru_cache(maxsize=2)
def builtin_donors(size: int = CROP_SIZE) -> tuple[FaceCrop, ...]:
    """Faces of the two built-in portraits (scikit-image's astronaut, matplotlib's Grace Hopper).

    Computed once per process and size (face detection takes about a second).
    """
    import matplotlib.cbook
    import matplotlib.image
    import skimage.data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        hopper = np.ascontiguousarray(matplotlib.image.imread(handle, format="jpg"))
    photos = (("astronaut", skimage.data.astronaut()), ("Grace Hopper", hopper))
    donors = []
    for name, photo in photos:
        donors += face_crops([(name, photo)], count=1, size=size,
                             descriptor=landmarks.FaceDescriptor())
    return tuple(donors)


def _cell(image: np.ndarray, side: int) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)


def _text(canvas, lines, origin, scale=0.5, colour=(20, 20, 20)):
    x, y = origin
    for line in lines:
        cv2.putText(canvas, line, (x, y), _FONT, scale, colour, 1, cv2.LINE_AA)
        y += int(28 * scale + 8)


def _same_person(a: FaceCrop, b: FaceCrop) -> bool:
    """Whether two faces may be one person: a cross-blend's donor must be another.

    By their identity descriptors when both have one; otherwise only the
    same picture is caught (grey thumbnails nearly equal).
    """
    if a.descriptor is not None and b.descriptor is not None:
        distance = float(np.linalg.norm(a.descriptor - b.descriptor))
        return distance < landmarks.SAME_PERSON_DISTANCE
    small = [cv2.resize(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), (64, 64), interpolation=cv2.INTER_AREA)
             for x in (a.image, b.image)]
    return float(np.abs(small[0].astype(np.float32) - small[1]).mean()) < 8.0


def grid_image(face_list: Sequence[FaceCrop], donors: Sequence[FaceCrop] = (), *,
               rows: int = 8, seed: int = 0, sigma: float = NOISE_SIGMA["c23"],
               cell: int = CROP_SIZE, options: BlendOptions = BlendOptions()) -> np.ndarray:
    """The grid of face | pseudo-fake | mask | noise label, as an RGB uint8 image.

    Row ``i`` uses face ``i % len(face_list)`` and seed ``seed + i``; rows
    alternate self-blend and cross-blend (self-blends only when no donor is
    usable: a donor who is the same person as the face, by their identity
    descriptors, or the same picture when they have none, is skipped), and
    the part cycles through ``options.parts``, two rows each. The noise label
    is drawn at full resolution by default, grey at 0, black at ``-sigma`` and white at
    ``+sigma`` (the label of a real face mostly lies within that range).

    Args:
        face_list: the faces (``face_crops``).
        donors: faces of other people for cross-blends.
        rows: number of rows.
        seed: the first row's seed.
        sigma: the noise label's sigma.
        cell: side of each picture in the grid, pixels.
        options: the generator's ranges.
    """
    if not face_list:
        raise ValueError("face_list is empty")
    if rows < 1 or cell < 32:
        raise ValueError(f"rows must be >= 1 and cell >= 32, got {rows} and {cell}")
    seed = _check_seed(seed)
    width = _LABEL_WIDTH + len(GRID_COLUMNS) * cell
    canvas = np.full((_HEADER_HEIGHT + rows * cell, width, 3), 255, np.uint8)
    for column, name in enumerate(GRID_COLUMNS):
        if name == "noise label":
            name = f"noise label (+-{sigma:g})"
        # Shrink the header's font until it fits its column.
        scale = 0.6
        while scale > 0.3 and cv2.getTextSize(name, _FONT, scale, 1)[0][0] > cell - 10:
            scale -= 0.05
        _text(canvas, [name], (_LABEL_WIDTH + column * cell + 6, 22), scale=scale)
    for row in range(rows):
        face = face_list[row % len(face_list)]
        usable = [d for d in donors if not _same_person(d, face)]
        part = options.parts[(row // 2) % len(options.parts)]
        if row % 2 and usable:
            donor = usable[(row // 2) % len(usable)]
            fake = cross_blend(face.image, face.points, donor.image, donor.points, seed + row,
                               sigma=sigma, part=part, options=options)
            kind = ["cross-blend", f"donor: {donor.caption}"]
        else:
            fake = self_blend(face.image, face.points, seed + row, sigma=sigma, part=part,
                              options=options)
            kind = ["self-blend"]
        noise_grey = np.clip(128 + 127 * fake.noise / sigma, 0, 255).astype(np.uint8)
        pictures = (face.image, fake.image, np.round(fake.mask * 255).astype(np.uint8),
                    noise_grey)
        top = _HEADER_HEIGHT + row * cell
        for column, picture in enumerate(pictures):
            left = _LABEL_WIDTH + column * cell
            canvas[top:top + cell, left:left + cell] = _cell(picture, cell)
        lines = kind + [f"part: {fake.part}", f"ratio: {fake.blend_ratio:.2f}", face.caption,
                        f"seed: {seed + row}"]
        _text(canvas, lines, (8, top + 24))
        # A rule between rows' labels; the pictures themselves are left untouched.
        cv2.line(canvas, (0, top), (_LABEL_WIDTH - 8, top), (200, 200, 200), 1)
    return canvas


def write_grid(source, output_dir, *, rows: int = 8, seed: int = 0,
               sigma: float = NOISE_SIGMA["c23"], donors=None, cell: int = CROP_SIZE,
               max_frames: int = 300, options: BlendOptions = BlendOptions()) -> str:
    """Writes a PNG grid of face | pseudo-fake | mask | noise label for a photo or a video.

    A photo gives one face, blended differently on every row; a video gives
    its first frames with a face (up to ``rows``, among its first
    ``max_frames``). The file is ``<output_dir>/<name>-pseudo-fakes.png``,
    or ``...-pseudo-fakes-2.png`` and so on: an existing file is never
    written over.

    Args:
        source: a face photo or a video file.
        output_dir: the folder to write into (created if needed).
        rows, seed, sigma, cell, options: as for ``grid_image``.
        donors: photos (paths) of other people for the cross-blends; default
            the built-in portraits (scikit-image's astronaut and matplotlib's
            Grace Hopper). A donor who is the same person as a face of the
            source (dlib's identity descriptors closer than
            ``landmarks.SAME_PERSON_DISTANCE``) is not used for that face.
        max_frames: how many of a video's first frames to search.

    Returns:
        The path written.

    Raises:
        FileError: the source or a donor is missing, unreadable or has no face;
            ``output_dir`` exists and is not a folder.

    Example:

    ```python
    import matplotlib.cbook
    from ffseg.signal.blend import write_grid

    path = write_grid(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False),
                      "grids", rows=4)
    ```
    """
    source = os.fspath(source)
    output_dir = os.fspath(output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise FileError(output_dir, "exists and is not a folder")
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    descriptor = landmarks.FaceDescriptor()
    face_list = face_crops(read_frames(source, max_frames), count=rows, path=source,
                           descriptor=descriptor)
    if donors is None:
        donor_list = list(builtin_donors())
    else:
        donor_list = []
        for donor in donors:
            donor_list += face_crops(read_frames(donor, 1), count=1, path=donor,
                                     descriptor=descriptor)
            donor_list[-1] = dataclasses.replace(donor_list[-1],
                                                 caption=os.path.basename(os.fspath(donor)))
    canvas = grid_image(face_list, donor_list, rows=rows, seed=seed, sigma=sigma, cell=cell,
                        options=options)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    if not ok:
        raise FileError(source, "the grid could not be encoded as PNG")
    os.makedirs(output_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(source))[0] or "input"
    for attempt in range(1, 10000):
        suffix = "" if attempt == 1 else f"-{attempt}"
        path = os.path.join(output_dir, f"{stem}-pseudo-fakes{suffix}.png")
        try:
            # "x": create only; an existing file, even one made a moment ago
            # by another process, is never opened for writing.
            with open(path, "xb") as handle:
                handle.write(encoded.tobytes())
            return path
        except FileExistsError:
            continue
    raise FileError(output_dir, "no free file name for the grid (9999 grids already there)")
