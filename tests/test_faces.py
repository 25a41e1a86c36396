"""Tests for ffseg.faces: dlib detection on real photos, face boxes, crops, tracking."""

import pickle

import cv2
import numpy as np
import pytest

from ffseg.signal import faces
from tests import media


@pytest.fixture(scope="module")
def detector():
    return faces.FaceDetector()


def centre(box):
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


# --- detection ----------------------------------------------------------------


def test_finds_the_one_face_in_real_photos(detector):
    # Reference boxes were checked by eye: each covers the eyes, nose and mouth.
    for photo, expected_centre, width in [
        (media.astronaut(), (222, 127), 88),
        (media.grace_hopper(), (268, 245), 216),
    ]:
        boxes = detector.detect(photo)
        assert len(boxes) == 1
        (box,) = boxes
        assert np.allclose(centre(box), expected_centre, atol=4)
        assert box[2] - box[0] == pytest.approx(width, abs=4)
        assert detector.largest(photo) == box


def test_no_face_in_faceless_images(detector):
    for image in (media.coffee(), media.background(), media.still_clip(media.coffee(), 1)[0]):
        assert detector.detect(image) == []
        assert detector.largest(image) is None


def test_gray_frames_are_accepted(detector):
    gray = cv2.cvtColor(media.grace_hopper(), cv2.COLOR_RGB2GRAY)
    (box,) = detector.detect(gray)
    assert np.allclose(centre(box), (268, 245), atol=6)


def test_downscaled_detection_maps_back_to_frame_coordinates():
    photo = media.grace_hopper()
    big = cv2.resize(photo, (photo.shape[1] * 2, photo.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
    detector = faces.FaceDetector(max_side=640)
    assert detector.scale_for(big.shape) == pytest.approx(640 / 1200)
    (box,) = detector.detect(big)
    # Exactly the detection on the shrunk frame, scaled back up.
    shrunk = cv2.resize(big, (546, 640), interpolation=cv2.INTER_AREA)
    (small,) = faces.FaceDetector(max_side=None).detect(shrunk)
    assert np.allclose(box, np.multiply(small, 1200 / 640), atol=2)
    # And roughly twice the box found in the original photo (dlib's boxes
    # move by several percent between pyramid scales).
    (reference,) = faces.FaceDetector(max_side=None).detect(photo)
    tolerance = 0.1 * 2 * (reference[2] - reference[0])
    assert np.allclose(centre(box), np.multiply(centre(reference), 2), atol=tolerance)
    assert box[2] - box[0] == pytest.approx(2 * (reference[2] - reference[0]), rel=0.1)


def test_never_upscales():
    detector = faces.FaceDetector(max_side=640)
    assert detector.scale_for((480, 640, 3)) == 1.0
    assert detector.scale_for((300, 200, 3)) == 1.0
    assert faces.FaceDetector(max_side=None).scale_for((2160, 3840)) == 1.0


def test_max_side_trades_small_faces_for_speed():
    # A 100 px face in a 1920x1080 frame shrinks to ~33 px at max_side 640,
    # below dlib's ~80 px window: documented, and why max_side is a knob.
    photo = media.astronaut()
    small = cv2.resize(photo, None, fx=100 / 88, fy=100 / 88, interpolation=cv2.INTER_AREA)
    frame = np.zeros((1080, 1920, 3), np.uint8)
    frame[300:300 + small.shape[0], 700:700 + small.shape[1]] = small
    assert faces.FaceDetector(max_side=640).detect(frame) == []
    face = faces.FaceDetector(max_side=1920).largest(frame)
    assert np.allclose(centre(face), (700 + 222 * 100 / 88, 300 + 127 * 100 / 88), atol=8)


def test_no_face_error_says_which_faces_are_too_small():
    # The 1920x1080 frame of the test above, whose 100 px face is missed at
    # max_side 640: the error must say that faces under ~240 px go unseen.
    detector = faces.FaceDetector(max_side=640)
    assert detector.smallest_face((1080, 1920, 3)) == 240
    assert detector.smallest_face((120, 160, 3)) == 80  # never upscaled: dlib's window
    assert faces.FaceDetector(max_side=640, upsample=1).smallest_face((480, 640)) == 40
    frame = np.zeros((1080, 1920, 3), np.uint8)
    with pytest.raises(faces.NoFaceError) as info:
        faces.track_boxes([frame, frame], detector, path="hd.mp4")
    assert info.value.reason == (
        "no face found in any of 2 sampled frames (faces smaller than about 240 px are not "
        "detected in a 1920x1080 frame)"
    )


def test_largest_of_two_faces(detector):
    frame = media.background()
    hopper = cv2.resize(media.grace_hopper(), (256, 300), interpolation=cv2.INTER_AREA)
    astronaut = cv2.resize(media.astronaut(), (300, 300), interpolation=cv2.INTER_AREA)
    frame[20:320, 0:300] = astronaut  # face ~52 px: too small at upsample 0
    frame[100:400, 360:616] = hopper  # face ~108 px
    boxes = detector.detect(frame)
    largest = detector.largest(frame)
    assert largest in boxes and largest[0] > 360
    assert all((b[2] - b[0]) <= (largest[2] - largest[0]) for b in boxes)


def test_detector_pickles_before_and_after_use(detector):
    detector.detect(media.astronaut())
    clone = pickle.loads(pickle.dumps(detector))
    assert clone._detector is None
    assert (clone.max_side, clone.upsample) == (detector.max_side, detector.upsample)
    assert clone.detect(media.astronaut()) == detector.detect(media.astronaut())


def test_detector_rejects_bad_frames_and_settings(detector):
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((50, 50, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        detector.detect(np.zeros((50, 50, 4), np.uint8))
    with pytest.raises(ValueError):
        faces.FaceDetector(max_side=40)


# --- face_box -------------------------------------------------------------------


def test_face_box_hand_computed():
    # 100x80 face, centre (150, 140): side 130.
    assert faces.face_box((100, 100, 200, 180), (480, 640)) == (85, 75, 215, 205)
    # Near the top-left corner: shifted in, not shrunk.
    assert faces.face_box((0, 0, 50, 50), (480, 640)) == (0, 0, 65, 65)
    # Near the bottom-right corner.
    assert faces.face_box((600, 440, 640, 480), (480, 640)) == (588, 428, 640, 480)
    # Larger than the frame: shrunk to the frame's shorter side.
    assert faces.face_box((10, 10, 110, 90), (100, 120, 3)) == (10, 0, 110, 100)
    assert faces.face_box((100, 100, 200, 180), (480, 640), scale=1.0) == (100, 90, 200, 190)


def test_face_box_always_square_and_inside():
    rng = np.random.RandomState(0)
    for _ in range(500):
        height, width = rng.randint(50, 700, size=2)
        left, top = rng.uniform(-30, width), rng.uniform(-30, height)
        box = (left, top, left + rng.uniform(1, 400), top + rng.uniform(1, 400))
        x0, y0, x1, y1 = faces.face_box(box, (height, width))
        assert all(isinstance(v, int) for v in (x0, y0, x1, y1))
        assert x1 - x0 == y1 - y0 >= 1
        assert 0 <= x0 and x1 <= width and 0 <= y0 and y1 <= height
        wanted = round(1.3 * max(box[2] - box[0], box[3] - box[1]))
        assert x1 - x0 == min(max(wanted, 1), height, width)


def test_face_box_rejects_empty_box():
    with pytest.raises(ValueError, match="no area"):
        faces.face_box((10, 10, 10, 30), (100, 100))


# --- crops ------------------------------------------------------------------------


def test_crop_resizes_the_boxed_region():
    y, x = np.mgrid[0:480, 0:640]
    image = np.stack([x % 256, y % 256, np.zeros_like(x)], -1).astype(np.uint8)
    out = faces.crop(image, (100, 50, 200, 150), size=100)
    assert out.shape == (100, 100, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, image[50:150, 100:200])
    big = faces.crop(image, (100, 50, 200, 150))
    assert big.shape == (299, 299, 3)
    assert big[0, 0, 0] == 100 and big[0, 0, 1] == 50 and big[-1, -1, 0] == 199


def test_crop_keeps_a_single_channel_axis():
    image = np.zeros((60, 80, 1), np.uint8)
    assert faces.crop(image, (0, 0, 40, 40), size=20).shape == (20, 20, 1)
    assert faces.crop(image[:, :, 0], (0, 0, 40, 40), size=20).shape == (20, 20)


def test_crop_rejects_boxes_outside_the_image():
    with pytest.raises(ValueError, match="not inside"):
        faces.crop(np.zeros((60, 80, 3), np.uint8), (50, 0, 90, 40))


def disc(size, centre, radius):
    y, x = np.mgrid[0:size, 0:size] + 0.5
    return ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius**2).astype(np.uint8)


@pytest.mark.parametrize("box_side", [180, 299, 455])
def test_crop_mask_is_binary_and_follows_the_shape(box_side):
    # A disc in a 500x500 mask, cropped by a box of box_side, must equal the
    # same disc drawn directly at 299x299 (down-, same- and up-scaling).
    x0 = y0 = 20
    mask = disc(500, (x0 + 0.4 * box_side, y0 + 0.55 * box_side), 0.3 * box_side)
    out = faces.crop_mask(mask, (x0, y0, x0 + box_side, y0 + box_side))
    assert out.shape == (299, 299) and out.dtype == np.uint8
    assert set(np.unique(out)) == {0, 1}
    expected = disc(299, (0.4 * 299, 0.55 * 299), 0.3 * 299)
    assert media.iou(out, expected) > 0.985
    assert faces.crop_mask(mask[:, :, None], (20, 20, 200, 200)).shape == (299, 299, 1)


# --- tracking -----------------------------------------------------------------


class ScriptedDetector:
    """Finds the face box written in a frame's first pixel's position table."""

    def __init__(self, table):
        self.table = table

    def largest(self, frame):
        return self.table.get(int(frame[0, 0, 0]))


def scripted_frames(count):
    frames = []
    for i in range(count):
        frame = np.zeros((480, 640, 3), np.uint8)
        frame[0, 0, 0] = i
        frames.append(frame)
    return frames


def test_track_boxes_fills_from_the_nearest_detected_frame():
    faces_found = {0: (100, 100, 200, 200), 4: (300, 100, 400, 200)}
    detector = ScriptedDetector(faces_found)
    boxes, detected = faces.track_boxes(scripted_frames(6), detector)
    left = faces.face_box(faces_found[0], (480, 640))
    right = faces.face_box(faces_found[4], (480, 640))
    assert detected == [True, False, False, False, True, False]
    # Frame 2 is as far from 0 as from 4: the earlier frame wins.
    assert boxes == [left, left, left, right, right, right]


def test_track_boxes_measures_distance_in_frame_indices():
    detector = ScriptedDetector({0: (100, 100, 200, 200), 3: (300, 100, 400, 200)})
    boxes, detected = faces.track_boxes(scripted_frames(4), detector, indices=[0, 10, 20, 30])
    left = faces.face_box((100, 100, 200, 200), (480, 640))
    right = faces.face_box((300, 100, 400, 200), (480, 640))
    assert boxes == [left, left, right, right]
    boxes, _ = faces.track_boxes(scripted_frames(4), detector, indices=[0, 1, 2, 30])
    assert boxes == [left, left, left, right]


def test_track_boxes_without_any_face_names_the_video():
    with pytest.raises(faces.NoFaceError, match="clips/x.mp4") as info:
        faces.track_boxes(scripted_frames(3), ScriptedDetector({}), path="clips/x.mp4")
    assert info.value.path == "clips/x.mp4"
    error = pickle.loads(pickle.dumps(info.value))
    assert str(error) == str(info.value) and error.path == "clips/x.mp4"


def test_track_boxes_on_real_frames_with_missing_faces(detector):
    clip = media.face_clip("grace_hopper", 8, step=(6, 3), blank_frames=(0, 3, 4))
    boxes, detected = faces.track_boxes(clip.frames, detector)
    assert detected == [False, True, True, False, False, True, True, True]
    assert boxes[0] == boxes[1] and boxes[3] == boxes[2] and boxes[4] == boxes[5]
    for box, truth in zip(boxes, clip.face_boxes):
        if truth is not None:
            # The crop box is centred on the face and 1.3x its size.
            assert np.allclose(centre(box), centre(truth), atol=10)
            assert box[2] - box[0] == pytest.approx(1.3 * (truth[2] - truth[0]), rel=0.15)


def test_box_tracker_decides_like_track_boxes_and_as_early_as_it_can():
    rng = np.random.RandomState(0)
    for trial in range(200):
        count = rng.randint(1, 15)
        indices = np.cumsum(rng.randint(1, 4, size=count)).tolist()
        found = rng.rand(count) < rng.choice([0.2, 0.5, 0.8])
        boxes = [(i, 0, i + 10, 10) if f else None for i, f in zip(indices, found)]
        tracker = faces.BoxTracker()
        decided = []
        for position, (index, box) in enumerate(zip(indices, boxes)):
            decided += tracker.add(index, box, position)
            # What still waits could still be nearer to a face yet to come.
            assert tracker.pending == count_undecided(indices[:position + 1], boxes)
        assert tracker.found == any(found)
        decided += tracker.finish()
        if not any(found):
            assert decided == []
            continue
        # Brute force: the nearest frame with a face, the earlier one on a tie.
        faced = [i for i, f in zip(indices, found) if f]
        expected = []
        for position, index in enumerate(indices):
            nearest = min(faced, key=lambda f: (abs(f - index), f))
            expected.append((position, (nearest, 0, nearest + 10, 10), bool(found[position])))
        assert decided == expected, trial
    with pytest.raises(ValueError, match="must not decrease"):
        tracker = faces.BoxTracker()
        tracker.add(5, None, "a")
        tracker.add(4, None, "b")


def count_undecided(indices, boxes):
    """Frames without a face that a later face could still be nearer to."""
    last = indices[-1]
    undecided = 0
    previous = None
    for index, box in zip(indices, boxes):
        if box is not None:
            previous = index
            undecided = 0
        elif previous is None or last - index < index - previous:
            undecided += 1
    return undecided


def test_detection_scores_tell_a_face_from_a_marginal_patch():
    """dlib's confidence is kept: the astronaut's face scores ~1.5, a
    face-like patch that JPEG compression turns into a detection ~0.04."""
    import cv2
    from skimage import data as skdata

    detector = faces.FaceDetector()
    photo = skdata.astronaut()
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    jpeg = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    scored = detector.detect_with_scores(jpeg)
    assert [box for box, _ in scored] == detector.detect(jpeg)
    scores = sorted(score for _, score in scored)
    assert scores[-1] > 1.0
    assert all(score >= 0.0 for score in scores)
    [(face, score)] = detector.detect_with_scores(photo)
    assert score > 1.0 and face == detector.largest(photo)
