"""Tests for ffseg.masks: binarising lossy H.264 mask frames."""

import cv2
import numpy as np
import pytest

from ffseg.signal import masks, video
from tests import media


def true_masks():
    """Face ellipses of a moving clip, a Deepfakes-like rectangle, and empty frames."""
    clip = media.face_clip("astronaut", 6, step=(5, 3))
    truth = [m.copy() for m in clip.masks]
    cv2.rectangle(truth[1], (400, 300), (560, 440), 1, -1)
    truth[2][:] = 0
    truth[5][:] = 0
    return truth


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """{qp: decoded mask frames} for the true masks stored white-on-black as FF++ does."""
    truth = true_masks()
    folder = tmp_path_factory.mktemp("masks")
    decoded = {}
    for qp in (23, 40):
        path = folder / f"mask_qp{qp}.mp4"
        video.write_video(path, [np.repeat(m[:, :, None] * 255, 3, 2) for m in truth], qp=qp)
        decoded[qp] = video.sample_frames(path, None)[1]
    return truth, decoded


@pytest.mark.parametrize("qp", [23, 40])
def test_default_threshold_recovers_encoded_masks(encoded, qp):
    truth, decoded = encoded
    for expected, frame in zip(truth, decoded[qp]):
        if expected.any():  # really lossy
            assert not np.isin(frame, (0, 255)).all()
        binary = masks.binary_mask(frame)
        assert binary.shape == (480, 640) and binary.dtype == np.uint8
        assert set(np.unique(binary)) <= {0, 1}
        if expected.any():
            assert media.iou(binary, expected) > 0.99
        else:
            assert binary.sum() == 0


def test_otsu_invents_masks_on_empty_frames(encoded):
    # Why the default is a fixed threshold: Otsu splits even a blank frame.
    truth, decoded = encoded
    empty = decoded[40][2]
    assert not truth[2].any()
    assert masks.binary_mask(empty).sum() == 0
    assert masks.binary_mask(empty, "otsu").sum() > 50
    assert media.iou(masks.binary_mask(decoded[40][0], "otsu"), truth[0]) > 0.99


@pytest.mark.parametrize("colour", [(255, 0, 0), (0, 0, 255), (90, 90, 90)])
def test_coloured_and_dim_masks(tmp_path, colour):
    # Any channel above the threshold counts: a red, blue or dim grey mask
    # survives 4:2:0 chroma subsampling and x264 like a white one.
    truth = true_masks()[:2]
    frames = [m[:, :, None] * np.array(colour, np.uint8) for m in truth]
    path = tmp_path / "coloured.mp4"
    video.write_video(path, frames, qp=23)
    _, decoded = video.sample_frames(path, None)
    for expected, frame in zip(truth, decoded):
        assert media.iou(masks.binary_mask(frame), expected) > 0.97


def test_input_layouts():
    mask = np.zeros((10, 12), np.uint8)
    mask[2:5, 3:9] = 200
    expected = (mask > 0).astype(np.uint8)
    np.testing.assert_array_equal(masks.binary_mask(mask), expected)
    np.testing.assert_array_equal(masks.binary_mask(mask[:, :, None]), expected)
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[:, :, 1] = mask
    np.testing.assert_array_equal(masks.binary_mask(rgb), expected)
    rgba = np.dstack([rgb, np.full((10, 12), 255, np.uint8)])
    np.testing.assert_array_equal(masks.binary_mask(rgba), expected)
    np.testing.assert_array_equal(masks.binary_mask(mask > 0), expected)


def test_threshold_is_strict_and_configurable():
    frame = np.array([[0, 20, 21, 128, 129, 255]], np.uint8)
    assert masks.binary_mask(frame).tolist() == [[0, 0, 1, 1, 1, 1]]
    assert masks.binary_mask(frame, 128).tolist() == [[0, 0, 0, 0, 1, 1]]
    assert masks.binary_mask(frame, 0).tolist() == [[0, 1, 1, 1, 1, 1]]


def test_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        masks.binary_mask(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="shape"):
        masks.binary_mask(np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="threshold"):
        masks.binary_mask(np.zeros((4, 4), np.uint8), 255)
    with pytest.raises(ValueError, match="threshold"):
        masks.binary_mask(np.zeros((4, 4), np.uint8), "mean")


def test_empty_mask():
    for shape in [(480, 640), (480, 640, 3)]:
        mask = masks.empty_mask(shape)
        assert mask.shape == (480, 640) and mask.dtype == np.uint8 and not mask.any()
