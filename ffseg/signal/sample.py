"""A small FaceForensics++-layout tree made from real face photos.

FaceForensics++ (Rossler et al., ICCV 2019) is behind a request form, so the
project ships a generator that writes a few short videos in exactly its
layout (the builder's `MANUAL_DOWNLOAD_INSTRUCTIONS` spell it out):

```
original_sequences/youtube/{c23,c40}/videos/NNN.mp4
manipulated_sequences/<Method>/{c23,c40}/videos/TTT_SSS.mp4   # target_source
manipulated_sequences/<Method>/masks/videos/TTT_SSS.mp4
splits/{train,val,test}.json                                  # [target, source] pairs
```

Real videos are real face photos (scikit-image's astronaut, matplotlib's
Grace Hopper, optionally a folder of the user's photos, each in a few
variants: flipped, zoomed, colour-shifted) filmed by a slowly moving virtual
camera. The four manipulations imitate what FF++'s methods change, and the
masks mark it as FF++'s masks do (FF++ ships the face region for FaceSwap and
Face2Face, the whole Poisson-editing rectangle for Deepfakes, and a tracker
region around the mouth for NeuralTextures; the training data of Kong et al.,
"Detect and Locate", TIFS 2022):

* Deepfakes: the source face through a low-resolution bottleneck (the blur of
  a 64 px autoencoder), pasted into a feathered *rectangle*, like the
  Poisson-editing rectangle that FF++ ships as the Deepfakes mask;
* FaceSwap: the source face, colour-matched to the target in Lab (mean and
  standard deviation), pasted into a feathered face ellipse;
* Face2Face: the target's own face, warped by a time-varying expression
  (mouth opening, brow raise) that the source drives, in the face ellipse;
* NeuralTextures: only the target's mouth region, warped and re-rendered
  (blurred then sharpened, like a neural texture), in a mouth ellipse.

Every manipulated video comes with its mask video: white exactly where the
raw manipulated frame differs from the raw real frame. Like FF++, videos are
encoded with libx264 at a constant quantiser of 23 (c23) and 40 (c40), and the
masks are encoded lossy too, so readers must threshold them.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import pathlib
import typing

import cv2
import numpy as np

from ffseg.constants import METHODS
from ffseg.errors import FileError

__all__ = ["METHODS", "SPLIT_NAMES", "make_sample_ffpp", "render_real_frame", "render_sample"]

SPLIT_NAMES = ("train", "val", "test")

# Constant quantisers of FF++'s two compressed releases ("c23" = HQ,
# "c40" = LQ: x264 at QP 23 and 40).
QUALITY_QP = {"c23": 23, "c40": 40}
# Lossy mask encoding, as FF++'s masks are h264 videos too.
MASK_QP = 23

_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Identity:
    """One 'person' of the sample: a photo variant and its face box.

    Attributes:
        name: three-digit FF++ video id, e.g. "004".
        photo: H x W x 3 uint8 RGB.
        box: face box (x0, y0, x1, y1) in `photo` pixels.
        origin: where the photo came from and which variant it is.
        motion: per-identity camera-motion phases and amplitudes.
        face_side: side of the face box in the rendered frames, in pixels.
    """

    name: str
    photo: np.ndarray
    box: typing.Tuple[int, int, int, int]
    origin: str
    motion: typing.Tuple[float, ...]
    face_side: float = 150.0


def make_sample_ffpp(
    root,
    *,
    photos=None,
    seed: int = 0,
    num_frames: int = 8,
    pairs_per_split: typing.Tuple[int, int, int] = (2, 1, 1),
    frame_size: typing.Tuple[int, int] = (640, 480),
    fps: int = 25,
    face_side: int = 150,
    qualities: typing.Sequence[str] = ("c23", "c40"),
    methods: typing.Sequence[str] = METHODS,
) -> pathlib.Path:
    """Writes a small FF++-layout tree of real and manipulated videos.

    Args:
        root: folder to write into: created if missing, refused if it holds
            anything (nothing a user has is ever written over). It is what the
            TFDS builder takes as `manual_dir` (config `sample_photos`).
        photos: optional folder (or list of files) of extra face photos. Each
            must show one frontal face that dlib finds; photos without one are
            logged and left out, and at least one must have one. Their
            SHA-256 is recorded in `sample.json`, so a dataset built from the
            tree can tell when the photos changed.
        seed: seed of every random choice (camera motion, expression
            drive, per-frame jitter of pasted faces).
        num_frames: frames per video.
        pairs_per_split: number of [target, source] pairs in train, val and
            test. Each pair gives 2 real and 2 x len(methods) fake videos.
        frame_size: (width, height) of the frames.
        fps: frame rate written into the videos.
        face_side: side of the face in the frames, in pixels. dlib's detector
            at upsample 0 needs about 80 to find a face reliably; the 1.3x crop box must fit
            in the frame.
        qualities: which compressed releases to write ("c23", "c40").
        methods: which FF++ methods to imitate.

    Returns:
        `root` as a `pathlib.Path`.

    Raises:
        FileError: if `root` exists and is not empty.
        ValueError: on unknown methods or qualities, fewer than 2 frames, a
            photo folder without an image, or too few usable photos.

    Example:

    ```python
    import tempfile
    from ffseg.signal import sample

    root = sample.make_sample_ffpp(
        tempfile.mkdtemp() + "/tree", num_frames=2, frame_size=(320, 240), face_side=110,
        pairs_per_split=(1, 1, 1),
    )
    print(sorted(p.name for p in root.iterdir()))
    # ['manipulated_sequences', 'original_sequences', 'sample.json', 'splits']
    ```
    """
    from ffseg.signal import video as video_lib

    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    unknown = set(qualities) - set(QUALITY_QP)
    if unknown:
        raise ValueError(f"unknown qualities {sorted(unknown)}; choose from {sorted(QUALITY_QP)}")
    if num_frames < 2:
        raise ValueError(f"num_frames must be at least 2, got {num_frames}")
    if len(pairs_per_split) != 3 or min(pairs_per_split) < 1:
        raise ValueError(f"pairs_per_split needs 3 positive counts, got {pairs_per_split}")

    root = pathlib.Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileError(
            root, "already exists and is not empty; choose a new folder for the sample tree"
        )
    rng = np.random.default_rng(seed)
    num_identities = 2 * sum(pairs_per_split)
    if not 80 <= face_side * 1.3 <= min(frame_size) - 20:
        raise ValueError(
            f"face_side {face_side} does not fit: dlib needs >= 80 px and the 1.3x crop "
            f"must fit in a {frame_size[0]}x{frame_size[1]} frame"
        )
    photo_files = _photo_files(photos)
    identities = _make_identities(_load_photos(photos), num_identities, rng, face_side)
    _check_photos_used(photos, photo_files, identities)

    # Pairs join consecutive identities, which come from different photos
    # whenever there are at least two, so that a swap really changes a face.
    names = [identity.name for identity in identities]
    pairs = [[names[2 * i], names[2 * i + 1]] for i in range(num_identities // 2)]
    splits, start = {}, 0
    for split, count in zip(SPLIT_NAMES, pairs_per_split):
        splits[split] = pairs[start : start + count]
        start += count

    by_name = {identity.name: identity for identity in identities}
    # Each encode is an FFmpeg subprocess that spends much of a clip this
    # short starting up: two at a time overlap that with rendering.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        jobs = []

        def encode(path, frames, qp):
            jobs.append(pool.submit(video_lib.write_video, path, frames, fps=fps, qp=qp))

        for identity in identities:
            frames = [
                render_real_frame(identity, t, num_frames, frame_size) for t in range(num_frames)
            ]
            for quality in qualities:
                folder = root / "original_sequences" / "youtube" / quality / "videos"
                encode(folder / f"{identity.name}.mp4", frames, QUALITY_QP[quality])

        for target_name, source_name in pairs:
            for target, source in ((target_name, source_name), (source_name, target_name)):
                for method in methods:
                    _, fake, masks = render_sample(
                        method,
                        by_name[target],
                        by_name[source],
                        num_frames=num_frames,
                        frame_size=frame_size,
                        seed=seed,
                    )
                    base = root / "manipulated_sequences" / method
                    for quality in qualities:
                        encode(
                            base / quality / "videos" / f"{target}_{source}.mp4",
                            fake,
                            QUALITY_QP[quality],
                        )
                    # FF++ masks are white on black, three channels.
                    encode(
                        base / "masks" / "videos" / f"{target}_{source}.mp4",
                        [np.repeat(m[..., None] * np.uint8(255), 3, axis=-1) for m in masks],
                        MASK_QP,
                    )
        for job in jobs:
            job.result()  # re-raises an encoder failure

    (root / "splits").mkdir(parents=True, exist_ok=True)
    for split, split_pairs in splits.items():
        (root / "splits" / f"{split}.json").write_text(json.dumps(split_pairs, indent=2))
    # Provenance, so a sample tree says what made it.
    (root / "sample.json").write_text(
        json.dumps(
            {
                "generator": "ffseg.signal.sample.make_sample_ffpp",
                "seed": seed,
                "num_frames": num_frames,
                "frame_size": list(frame_size),
                "fps": fps,
                "face_side": face_side,
                "pairs_per_split": list(pairs_per_split),
                "qualities": list(qualities),
                "methods": list(methods),
                "identities": {i.name: i.origin for i in identities},
                "photos": {str(path): _sha256(path) for path in photo_files},
            },
            indent=2,
        )
    )
    return root


# === Photos and identities ===


def _load_photos(photos) -> typing.List[typing.Tuple[str, np.ndarray]]:
    """The built-in face photos, then the user's, as (origin, RGB uint8)."""
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    loaded = [("skimage.data.astronaut", skimage.data.astronaut())]
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        grace_hopper = np.asarray(Image.open(handle).convert("RGB"))
    loaded.append(("matplotlib:grace_hopper.jpg", grace_hopper))
    for path in _photo_files(photos):
        try:
            loaded.append((str(path), np.asarray(Image.open(path).convert("RGB"))))
        except OSError as error:
            _log.warning("sample: skipping %s, not a readable image (%s)", path, error)
    return loaded


def _photo_files(photos) -> typing.List[pathlib.Path]:
    """The user's photo files: a folder's images (by suffix, sorted) or a list of files."""
    if photos is None:
        return []
    if isinstance(photos, (str, pathlib.Path)):
        folder = pathlib.Path(photos)
        if not folder.is_dir():
            raise ValueError(f"photos must be a folder of face photos, got {folder}")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _PHOTO_SUFFIXES)
        if not files:
            raise ValueError(
                f"{folder}: holds no photo (expected files ending in "
                f"{', '.join(_PHOTO_SUFFIXES)})"
            )
        return files
    return [pathlib.Path(p) for p in photos]


def _check_photos_used(photos, photo_files, identities) -> None:
    """Refuses a photo set of which no photo made it into the sample; names the unused."""
    if not photo_files:
        return
    used = {identity.origin.rsplit(" (", 1)[0] for identity in identities}
    unused = [str(path) for path in photo_files if str(path) not in used]
    if len(unused) == len(photo_files):
        raise ValueError(
            f"none of the {len(photo_files)} photos in {photos} shows a face that dlib finds "
            "(one frontal face, at least ~80 px wide); the sample would hold none of them"
        )
    if unused:
        # Faceless ones were already named; the rest did not fit in the sample.
        _log.warning(
            "sample: %d identities; %d of your photos are not in the sample: %s",
            len(identities), len(unused), ", ".join(unused),
        )


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


# Variants that turn one photo into several "people": (name, function).
def _variant_identity(photo):
    return photo


def _variant_flip(photo):
    return photo[:, ::-1]


def _variant_warm(photo):
    # A colour cast (warmer light, as in another recording) in Lab.
    lab = cv2.cvtColor(photo, cv2.COLOR_RGB2LAB).astype(np.int16)
    lab[..., 1] += 6
    lab[..., 2] += 14
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def _variant_cool_flip(photo):
    lab = cv2.cvtColor(photo[:, ::-1], cv2.COLOR_RGB2LAB).astype(np.int16)
    lab[..., 0] = lab[..., 0] * 0.9 + 8
    lab[..., 2] -= 12
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def _variant_crop(photo):
    # A tighter shot: the central 80 % upscaled back to full size.
    h, w = photo.shape[:2]
    crop = photo[h // 10 : h - h // 10, w // 10 : w - w // 10]
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_CUBIC)


_VARIANTS = (
    ("original", _variant_identity),
    ("flipped", _variant_flip),
    ("warm", _variant_warm),
    ("cool-flipped", _variant_cool_flip),
    ("zoomed", _variant_crop),
)


def _make_identities(photos, count, rng, face_side) -> typing.List[_Identity]:
    """`count` identities, cycling through photos first and variants second."""
    from ffseg.signal import faces

    detector = faces.FaceDetector()
    usable = []
    for origin, photo in photos:
        if _largest_face(detector, photo) is None:
            _log.warning("sample: skipping %s, dlib finds no face in it", origin)
            continue
        usable.append((origin, photo))
    if not usable:
        raise ValueError("no usable face photo: dlib found a face in none of them")
    identities = []
    for variant_name, variant in _VARIANTS * (1 + count // (len(usable) * len(_VARIANTS))):
        for origin, photo in usable:
            if len(identities) == count:
                return identities
            image = np.ascontiguousarray(variant(photo))
            box = _largest_face(detector, image)
            if box is None:
                _log.warning("sample: no face in the %s variant of %s", variant_name, origin)
                continue
            identities.append(
                _Identity(
                    name=f"{len(identities):03d}",
                    photo=image,
                    box=box,
                    origin=f"{origin} ({variant_name})",
                    motion=tuple(rng.uniform(0.0, 2.0 * np.pi, size=4))
                    + tuple(rng.uniform(0.6, 1.0, size=2)),
                    face_side=float(face_side),
                )
            )
    if len(identities) < count:
        raise ValueError(f"only {len(identities)} of {count} identities have a detectable face")
    return identities


def _largest_face(detector, image):
    """Face box of `image` by the project's detector, or None."""
    box = detector.largest(image)
    if box is None:
        return None
    return tuple(int(round(v)) for v in box)


# === Rendering ===


def _camera(identity: _Identity, t: int, num_frames: int, frame_size):
    """2x3 affine that films the identity's photo at frame t.

    The face is centred, scaled to `identity.face_side` pixels, and the camera
    drifts smoothly (a few pixels of pan and a few percent of zoom over the
    clip), so consecutive frames differ as in a real video.
    """
    width, height = frame_size
    x0, y0, x1, y1 = identity.box
    phase_x, phase_y, phase_s, _, amp_xy, amp_s = identity.motion
    phase = 2.0 * np.pi * t / max(num_frames, 2)
    zoom = 1.0 + 0.04 * amp_s * np.sin(phase + phase_s)
    scale = identity.face_side / max(x1 - x0, y1 - y0) * zoom
    centre_x = width / 2 + 12.0 * amp_xy * np.sin(phase + phase_x)
    centre_y = height / 2 + 8.0 * amp_xy * np.sin(phase + phase_y)
    face_x, face_y = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array(
        [[scale, 0.0, centre_x - scale * face_x], [0.0, scale, centre_y - scale * face_y]],
        np.float64,
    )


def render_real_frame(identity: _Identity, t: int, num_frames: int, frame_size) -> np.ndarray:
    """Frame t of the real video of an identity (RGB uint8)."""
    matrix = _camera(identity, t, num_frames, frame_size)
    # Reflected borders keep the frame full of image content, with no flat
    # areas that would make the detector or the noise residual trivial.
    return cv2.warpAffine(
        identity.photo, matrix, tuple(frame_size), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )


def _frame_box(identity, t, num_frames, frame_size):
    """The identity's face box in frame t, as floats (x0, y0, x1, y1)."""
    matrix = _camera(identity, t, num_frames, frame_size)
    x0, y0, x1, y1 = identity.box
    corners = np.array([[x0, y0, 1.0], [x1, y1, 1.0]]) @ matrix.T
    return (*corners[0], *corners[1])


def _ellipse_alpha(shape, centre, axes, feather):
    """Feathered elliptical alpha in [0, 1] of an H x W frame."""
    alpha = np.zeros(shape, np.float32)
    cv2.ellipse(
        alpha,
        (int(round(centre[0])), int(round(centre[1]))),
        (max(int(round(axes[0])), 1), max(int(round(axes[1])), 1)),
        0.0, 0.0, 360.0, 1.0, thickness=-1, lineType=cv2.LINE_AA,
    )
    return cv2.GaussianBlur(alpha, (0, 0), feather)


def _rect_alpha(shape, box, feather):
    """Feathered rectangular alpha in [0, 1] of an H x W frame."""
    alpha = np.zeros(shape, np.float32)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    alpha[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = 1.0
    return cv2.GaussianBlur(alpha, (0, 0), feather)


def _face_from(source_frame, source_box, target_box, frame_shape):
    """The source face resampled so its box lands on the target box."""
    sx0, sy0, sx1, sy1 = source_box
    tx0, ty0, tx1, ty1 = target_box
    scale_x = (tx1 - tx0) / (sx1 - sx0)
    scale_y = (ty1 - ty0) / (sy1 - sy0)
    matrix = np.array([[scale_x, 0.0, tx0 - scale_x * sx0], [0.0, scale_y, ty0 - scale_y * sy0]])
    return cv2.warpAffine(
        source_frame, matrix, (frame_shape[1], frame_shape[0]), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )


def _match_colour(face, reference, weight):
    """Reinhard colour transfer in Lab: face's mean/std -> reference's, under weight."""
    face_lab = cv2.cvtColor(face, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref_lab = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float32)
    w = weight[..., None] / max(weight.sum(), 1e-6)
    face_mean = (face_lab * w).sum((0, 1))
    ref_mean = (ref_lab * w).sum((0, 1))
    face_std = np.sqrt(((face_lab - face_mean) ** 2 * w).sum((0, 1))) + 1e-3
    ref_std = np.sqrt(((ref_lab - ref_mean) ** 2 * w).sum((0, 1))) + 1e-3
    out = (face_lab - face_mean) * (ref_std / face_std) + ref_mean
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def _expression_warp(frame, box, strength, mouth_only):
    """The frame with the face (or mouth) region re-posed by a smooth warp.

    Opens the mouth (stretches the lower face downwards) and raises the brows
    by up to `strength` x face height pixels, falling off smoothly, which is
    what expression reenactment changes.
    """
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    ys, xs = np.mgrid[0 : frame.shape[0], 0 : frame.shape[1]].astype(np.float32)
    # Normalised face coordinates: u in [-1, 1] across, v in [0, 1] down.
    u = (xs - (x0 + x1) / 2) / (w / 2)
    v = (ys - y0) / h
    mouth = np.exp(-((u / 0.45) ** 2) - ((v - 0.78) / 0.12) ** 2)
    dy = -strength * h * mouth  # sample from above: the chin drops, the lips part
    if not mouth_only:
        brows = np.exp(-((u / 0.7) ** 2) - ((v - 0.25) / 0.1) ** 2)
        dy += 0.6 * strength * h * brows  # sample from below: the brows rise
    return cv2.remap(
        frame,
        xs,
        (ys + dy).astype(np.float32),
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )


def _re_render(region):
    """Blur then sharpen: the smooth-but-crisp texture of neural rendering."""
    blurred = cv2.GaussianBlur(region, (0, 0), 1.6)
    soft = cv2.GaussianBlur(blurred, (0, 0), 2.0)
    return cv2.addWeighted(blurred, 1.8, soft, -0.8, 0)


def _blend(background, foreground, alpha):
    out = background.astype(np.float32) * (1.0 - alpha[..., None])
    out += foreground.astype(np.float32) * alpha[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class _Scene:
    """Frame t of one manipulated video, seen in the region around the target's face.

    Every renderer works in this region (1.9x the face box): its alphas have
    decayed to zero well inside it, and full-frame colour conversions would
    cost five times as much.

    Attributes:
        target: identity whose video is manipulated.
        source: identity that gives the face (swaps) or drives the expression.
        t: frame index.
        num_frames: frames in the video.
        frame_size: (width, height) of the frames.
        region: H x W x 3 uint8 crop of the real frame around the face.
        box: the target's face box (x0, y0, x1, y1) in `region` pixels.
        jitter: this frame's (dx, dy) of a pasted face, in pixels.
        wave: the source's expression drive at t, in [0, 1].
        driver_amplitude: the source's expression amplitude.
    """

    target: _Identity
    source: _Identity
    t: int
    num_frames: int
    frame_size: typing.Tuple[int, int]
    region: np.ndarray
    box: typing.Tuple[float, float, float, float]
    jitter: np.ndarray
    wave: float
    driver_amplitude: float

    @property
    def shape(self):
        return self.region.shape[:2]

    @property
    def width(self):
        return self.box[2] - self.box[0]

    @property
    def height(self):
        return self.box[3] - self.box[1]

    @property
    def centre(self):
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2, (y0 + y1) / 2)


def _source_face(scene: _Scene) -> np.ndarray:
    """The source's face at frame t, resampled onto the target's jittered box."""
    source_frame = render_real_frame(scene.source, scene.t, scene.num_frames, scene.frame_size)
    source_box = _frame_box(scene.source, scene.t, scene.num_frames, scene.frame_size)
    x0, y0, x1, y1 = scene.box
    dx, dy = scene.jitter
    return _face_from(source_frame, source_box, (x0 + dx, y0 + dy, x1 + dx, y1 + dy), scene.shape)


def _render_deepfakes(scene: _Scene):
    """The source face through the 64x64 bottleneck of the Deepfakes autoencoder,
    pasted as a whole rectangle (FF++'s Deepfakes masks are boxes)."""
    x0, y0, x1, y1 = scene.box
    w, h = scene.width, scene.height
    height, width = scene.shape
    face = _source_face(scene)
    bx0, by0 = int(max(x0 - 0.1 * w, 0)), int(max(y0 - 0.05 * h, 0))
    bx1, by1 = int(min(x1 + 0.1 * w, width)), int(min(y1 + 0.1 * h, height))
    low = cv2.resize(face[by0:by1, bx0:bx1], (64, 64), interpolation=cv2.INTER_AREA)
    face[by0:by1, bx0:bx1] = cv2.resize(low, (bx1 - bx0, by1 - by0), interpolation=cv2.INTER_CUBIC)
    alpha = _rect_alpha(scene.shape, (bx0, by0, bx1, by1), feather=0.04 * w)
    return _match_colour(face, scene.region, alpha), alpha


def _render_faceswap(scene: _Scene):
    """The source face, colour-matched to the target, in a feathered face ellipse."""
    w, h = scene.width, scene.height
    alpha = _ellipse_alpha(scene.shape, scene.centre, (0.42 * w, 0.55 * h), feather=0.05 * w)
    return _match_colour(_source_face(scene), scene.region, alpha), alpha


def _render_face2face(scene: _Scene):
    """The target's own face re-posed by the source's expression, in the face ellipse."""
    w, h = scene.width, scene.height
    strength = scene.driver_amplitude * scene.wave
    face = _expression_warp(scene.region, scene.box, strength + 0.02, mouth_only=False)
    alpha = _ellipse_alpha(scene.shape, scene.centre, (0.45 * w, 0.58 * h), feather=0.05 * w)
    return face, alpha


def _render_neural_textures(scene: _Scene):
    """Only the mouth, re-posed and re-rendered (blurred then sharpened)."""
    w, h = scene.width, scene.height
    strength = 0.6 * scene.driver_amplitude * scene.wave
    face = _re_render(_expression_warp(scene.region, scene.box, strength + 0.02, mouth_only=True))
    mouth = (scene.centre[0] + scene.jitter[0], scene.box[1] + 0.8 * h + scene.jitter[1])
    alpha = _ellipse_alpha(scene.shape, mouth, (0.3 * w, 0.17 * h), feather=0.04 * w)
    return face, alpha


# method -> renderer(scene) -> (manipulated region, alpha in [0, 1] of the same size).
_RENDERERS = {
    "Deepfakes": _render_deepfakes,
    "Face2Face": _render_face2face,
    "FaceSwap": _render_faceswap,
    "NeuralTextures": _render_neural_textures,
}

def render_sample(
    method: str,
    target: _Identity,
    source: _Identity,
    *,
    num_frames: int,
    frame_size=(640, 480),
    seed: int = 0,
):
    """Raw frames of one manipulated video `target_source` and its masks.

    Args:
        method: one of METHODS; `_RENDERERS` holds what each one changes.
        target: identity whose video is manipulated.
        source: identity that gives the face (swaps) or drives the
            expression (reenactment).
        num_frames: frames to render.
        frame_size: (width, height).
        seed: seeds the per-frame jitter of the pasted face.

    Returns:
        (real, fake, masks): lists of H x W x 3 uint8 real and manipulated
        frames and H x W uint8 {0, 1} masks, 1 exactly where the manipulated
        frame differs from the real one.

    Example:

    ```python
    import numpy as np
    from ffseg.signal import sample

    people = sample._make_identities(
        sample._load_photos(None), 2, np.random.default_rng(0), face_side=110
    )
    real, fake, masks = sample.render_sample(
        "FaceSwap", people[0], people[1], num_frames=2, frame_size=(320, 240)
    )
    assert ((real[0] != fake[0]).any(axis=-1) == masks[0].astype(bool)).all()
    ```
    """
    renderer = _RENDERERS.get(method)
    if renderer is None:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    # Per-video stream: the same video always gets the same jitter.
    rng = np.random.default_rng([seed, int(target.name), int(source.name), METHODS.index(method)])
    # Expression phase and amplitude come from the source ("the driver").
    driver_phase, driver_amplitude = source.motion[3], 0.05 + 0.04 * source.motion[4]
    real_frames, fake_frames, masks = [], [], []
    for t in range(num_frames):
        real = render_real_frame(target, t, num_frames, frame_size)
        fx0, fy0, fx1, fy1 = _frame_box(target, t, num_frames, frame_size)
        half = 0.95 * max(fx1 - fx0, fy1 - fy0)
        centre_x, centre_y = (fx0 + fx1) / 2, (fy0 + fy1) / 2
        rx0, ry0 = int(max(centre_x - half, 0)), int(max(centre_y - half, 0))
        rx1 = int(min(centre_x + half, real.shape[1]))
        ry1 = int(min(centre_y + half, real.shape[0]))
        region = real[ry0:ry1, rx0:rx1]
        scene = _Scene(
            target=target,
            source=source,
            t=t,
            num_frames=num_frames,
            frame_size=tuple(frame_size),
            region=region,
            box=(fx0 - rx0, fy0 - ry0, fx1 - rx0, fy1 - ry0),
            # Swapped faces never sit perfectly still in their target: a
            # sub-pixel to one-pixel jitter per frame, the temporal flicker of
            # FF++ fakes. Drawn for every method, so each keeps its stream.
            jitter=rng.normal(0.0, 0.6, size=2),
            wave=0.5 + 0.5 * np.sin(2 * np.pi * t / num_frames + driver_phase),
            driver_amplitude=driver_amplitude,
        )
        face, alpha = renderer(scene)
        fake = real.copy()
        fake[ry0:ry1, rx0:rx1] = _blend(region, face, alpha)
        real_frames.append(real)
        fake_frames.append(fake)
        masks.append((fake != real).any(axis=-1).astype(np.uint8))
    return real_frames, fake_frames, masks
