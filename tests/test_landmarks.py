"""Tests for ffseg.signal.landmarks: dlib's 68 points on real photos, crop coordinates."""

import os
import pickle

import cv2
import numpy as np
import pytest

from ffseg.errors import FileError
from ffseg.signal import faces, landmarks
from tests import media

# Picked by hand on each photo, in image pixels (x, y), from a 4-6x enlargement
# with a 10-pixel grid: the centre of each eye's opening (the person's right
# eye is on the image's left), the tip of the nose, the centre of the mouth.
HAND_PICKED = {
    "astronaut": {
        "right_eye": (202, 101), "left_eye": (247, 103), "nose_tip": (224, 126),
        "mouth": (225, 146),
    },
    "grace_hopper": {
        "right_eye": (222, 191), "left_eye": (306, 188), "nose_tip": (267, 238),
        "mouth": (267, 278),
    },
}
# In pixels of the 299-px crop the generator works on (1% of its side is 3 px).
# Measured: at most 5.5 px on the astronaut and 6.6 px on Grace Hopper, whose
# glasses pull dlib's eye points about 6 image pixels down; the eyes, the
# nose tip and the mouth are 50 to 130 crop pixels apart.
TOLERANCE = 8.0


@pytest.fixture(scope="module")
def detector():
    return landmarks.LandmarkDetector()


def landmark_features(points):
    """The features picked by hand, as the landmark means that stand for them."""
    regions = landmarks.REGIONS
    return {
        "right_eye": points[list(regions["right_eye"])].mean(0),
        "left_eye": points[list(regions["left_eye"])].mean(0),
        "nose_tip": points[30],
        "mouth": points[list(regions["mouth"])].mean(0),
    }


def test_model_comes_from_the_installed_package():
    path = landmarks.model_path()
    assert os.path.basename(path) == landmarks.MODEL_FILE
    assert "face_recognition_models" in path
    assert os.path.getsize(path) > 90_000_000  # the 68-point model is about 100 MB


def test_missing_package_names_it(monkeypatch):
    monkeypatch.setattr(landmarks.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(landmarks.LandmarkModelError) as caught:
        landmarks.model_path()
    assert "face-recognition-models" in str(caught.value)
    assert "pip install" in str(caught.value)
    assert isinstance(caught.value, FileError)
    with pytest.raises(landmarks.LandmarkModelError):
        landmarks.LandmarkDetector()(media.astronaut(), (0, 0, 10, 10))


def test_a_wrong_model_file_is_named(tmp_path):
    bogus = tmp_path / "not_a_model.dat"
    bogus.write_bytes(b"garbage" * 100)
    for path, reason in [(bogus, "not a dlib shape predictor"), (tmp_path / "gone.dat",
                                                                 "not found")]:
        with pytest.raises(landmarks.LandmarkModelError) as caught:
            landmarks.LandmarkDetector(path)(media.astronaut(), (180, 80, 270, 170))
        assert str(path) in str(caught.value) and reason in str(caught.value)


@pytest.mark.parametrize("photo", sorted(HAND_PICKED))
def test_landmarks_fall_on_eyes_nose_and_mouth(detector, photo):
    image = media.PHOTOS[photo]()
    face = media.photo_face_box(photo)
    points = detector(image, face)
    assert points.shape == (68, 2) and points.dtype == np.float32
    box = faces.face_box(face, image.shape)
    found = landmark_features(landmarks.to_crop(points, box, 299))
    for name, picked in HAND_PICKED[photo].items():
        expected = landmarks.to_crop(np.array([picked]), box, 299)[0]
        distance = float(np.linalg.norm(found[name] - expected))
        assert distance <= TOLERANCE, f"{photo} {name}: {distance:.1f} crop px from the hand pick"
    # Every point lies within the face box, grown by a tenth of its side.
    left, top, right, bottom = face
    slack = 0.1 * (right - left)
    assert (points[:, 0] > left - slack).all() and (points[:, 0] < right + slack).all()
    assert (points[:, 1] > top - slack).all() and (points[:, 1] < bottom + slack).all()


def test_grey_and_colour_images_give_close_points(detector):
    image = media.astronaut()
    face = media.photo_face_box("astronaut")
    colour = detector(image, face)
    grey = detector(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), face)
    assert np.abs(colour - grey).max() <= 2.0


def test_to_crop_follows_the_crop_resampling():
    # A bright square: where `faces.crop` puts it, `to_crop` must put its centre.
    image = np.zeros((200, 240, 3), np.uint8)
    image[117:126, 79:88] = 255  # centred on pixel (83, 121)
    for box, size in [((60, 100, 120, 160), 299), ((50, 90, 150, 190), 40),
                      ((70, 110, 100, 140), 77)]:
        cropped = faces.crop(image, box, size)[:, :, 0].astype(np.float64)
        ys, xs = np.mgrid[0:size, 0:size]
        centroid = np.array([(xs * cropped).sum(), (ys * cropped).sum()]) / cropped.sum()
        mapped = landmarks.to_crop([(83, 121)], box, size)[0]
        # Without the half-pixel terms the error would be 0.3 px (40) to 2 px (299).
        assert np.allclose(mapped, centroid, atol=0.1), (box, size, mapped, centroid)
    # An unscaled crop only moves the origin.
    assert np.allclose(landmarks.to_crop([(83, 121)], (60, 100, 120, 160), 60), [(23, 21)])


def test_detector_pickles_without_its_model(detector):
    detector(media.astronaut(), media.photo_face_box("astronaut"))  # loaded
    state = pickle.loads(pickle.dumps(detector))
    assert state._predictor is None
    face = media.photo_face_box("astronaut")
    assert np.array_equal(state(media.astronaut(), face), detector(media.astronaut(), face))


def test_identity_descriptor_tells_people_apart(detector):
    describe = landmarks.FaceDescriptor(detector)
    astronaut = describe(media.astronaut(), media.photo_face_box("astronaut"))
    hopper = describe(media.grace_hopper(), media.photo_face_box("grace_hopper"))
    assert astronaut.shape == (128,) and astronaut.dtype == np.float32
    # The astronaut again, smaller, on another background, in a clip frame.
    frame = media.face_clip("astronaut", num_frames=2).frames[1]
    again = describe(frame, faces.FaceDetector().largest(frame))
    assert np.linalg.norm(astronaut - again) < landmarks.SAME_PERSON_DISTANCE / 2
    assert np.linalg.norm(astronaut - hopper) > landmarks.SAME_PERSON_DISTANCE
    assert np.linalg.norm(again - hopper) > landmarks.SAME_PERSON_DISTANCE


def test_bad_inputs_are_refused(detector):
    image = media.astronaut()
    with pytest.raises(ValueError, match="uint8"):
        detector(image.astype(np.float32), (180, 80, 270, 170))
    with pytest.raises(ValueError, match="shape"):
        detector(image[:, :, :2], (180, 80, 270, 170))
    with pytest.raises(ValueError, match="no area"):
        detector(image, (180, 80, 180, 170))
    with pytest.raises(ValueError, match="N x 2"):
        landmarks.to_crop(np.zeros((68, 3)), (0, 0, 10, 10), 299)
    with pytest.raises(ValueError, match="no area"):
        landmarks.to_crop(np.zeros((68, 2)), (0, 0, 0, 10), 299)


@pytest.mark.parametrize("photo", sorted(HAND_PICKED))
def test_crop_landmarks_from_the_stored_crop_alone(detector, photo):
    # What the builders store: landmarks found on the 299 px crop itself.
    image = media.PHOTOS[photo]()
    box = faces.face_box(media.photo_face_box(photo), image.shape)
    crop = faces.crop(image, box, 299)
    points, detected = landmarks.crop_landmarks(crop, landmark_detector=detector)
    assert detected and points.shape == (68, 2) and points.dtype == np.float32
    found = landmark_features(points)
    for name, picked in HAND_PICKED[photo].items():
        expected = landmarks.to_crop(np.array([picked]), box, 299)[0]
        distance = float(np.linalg.norm(found[name] - expected))
        assert distance <= TOLERANCE, f"{photo} {name}: {distance:.1f} crop px from the hand pick"


def test_crop_landmarks_without_a_detected_face_use_the_nominal_box(detector):
    # A face too blurred for the detector: the points come from the central box.
    crop = faces.crop(media.astronaut(), faces.face_box(media.photo_face_box("astronaut"),
                                                        media.astronaut().shape), 299)
    blurred = cv2.GaussianBlur(crop, (0, 0), 12)
    points, detected = landmarks.crop_landmarks(blurred, landmark_detector=detector)
    assert not detected
    assert points.shape == (68, 2)
    # Inside the crop, around its centre, about the nominal box's size.
    assert (points >= 0).all() and (points < 299).all()
    centre = (points.min(0) + points.max(0)) / 2
    assert np.abs(centre - 149).max() < 30, centre
    extent = points.max(0) - points.min(0)
    assert (extent > 0.5 * 299 / 1.3).all() and (extent < 1.2 * 299 / 1.3).all(), extent
    with pytest.raises(ValueError, match="RGB uint8"):
        landmarks.crop_landmarks(crop.astype(np.float32))
