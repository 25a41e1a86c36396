"""Tests for ffseg.noise: the noise residual of paper Eq. 4-5."""

import matplotlib.cbook
import matplotlib.image
import numpy as np
import pytest
import pywt
from skimage import data

from ffseg.signal.noise import PRNU_WEIGHTS, noise_residual, to_gray
from tests._noise_reference import literal_noise_residual

# The fast path runs in float32 on 0..255 values; the reference in float64.
TOLERANCE = 1e-3


def astronaut_face():
    """299 x 299 x 3 uint8 crop of the astronaut's face, native pixels."""
    return np.ascontiguousarray(data.astronaut()[0:299, 100:399])


def grace_hopper():
    """600 x 512 x 3 uint8 RGB photo shipped with matplotlib."""
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return matplotlib.image.imread(path)


def grace_hopper_gray():
    return (grace_hopper().astype(np.float64) @ np.array(PRNU_WEIGHTS)).round().astype(np.uint8)


@pytest.mark.parametrize(
    "image_fn, sigma, levels",
    [
        (astronaut_face, 5, 4),
        (astronaut_face, 10, 4),
        (lambda: np.ascontiguousarray(grace_hopper()[80:379, 100:399]), 5, 4),
        (lambda: np.ascontiguousarray(grace_hopper()[80:379, 100:399]), 10, 4),
        # Odd sides: the inverse DWT comes back one sample longer and is cropped.
        (lambda: grace_hopper()[100:357, 200:331], 5, 4),
        (lambda: astronaut_face()[:257, :131], 10, 4),
        # 97 px is below what 4 levels of db4 need (112 px); 3 levels suffice.
        (lambda: astronaut_face()[:97, :203], 10, 3),
        (lambda: grace_hopper_gray()[150:351, 100:341], 5, 4),
        (lambda: grace_hopper_gray()[150:301, 100:341, np.newaxis], 10, 4),
        (lambda: astronaut_face()[:150, :170].astype(np.float64) + 0.25, 5, 4),
    ],
    ids=[
        "astronaut-sigma5",
        "astronaut-sigma10",
        "hopper-sigma5",
        "hopper-sigma10",
        "hopper-257x131",
        "astronaut-257x131",
        "astronaut-97x203-3levels",
        "hopper-gray-201x241",
        "hopper-gray-151x241x1",
        "astronaut-float64-150x170",
    ],
)
def test_matches_literal_reference(image_fn, sigma, levels):
    image = image_fn()
    expected = literal_noise_residual(image, sigma, levels=levels)
    actual = noise_residual(image, sigma, levels=levels)
    assert actual.shape == image.shape
    assert actual.dtype == np.float32
    # The residual of a real photo is far from zero, so agreeing with the
    # reference is not agreeing on nothing.
    assert np.abs(expected).max() > 10
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("value", [0, 17, 128, 255])
@pytest.mark.parametrize("shape", [(299, 299, 3), (131, 257), (120, 203, 1)])
def test_constant_image_has_no_residual(value, shape):
    residual = noise_residual(np.full(shape, value, np.uint8), 5)
    assert np.abs(residual).max() < 1e-3


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((299, 299, 3), np.uint8),
        ((112, 112, 3), np.uint8),
        ((113, 300, 3), np.float32),
        ((257, 131), np.uint8),
        ((140, 141, 1), np.float64),
    ],
)
def test_shape_and_dtype(shape, dtype):
    image = np.random.default_rng(0).uniform(0, 255, shape).astype(dtype)
    image.flags.writeable = False
    residual = noise_residual(image, 10)
    assert residual.shape == shape
    assert residual.dtype == np.float32
    assert residual.flags.c_contiguous


def test_residual_energy_grows_with_added_noise():
    image = astronaut_face().astype(np.float64)
    rng = np.random.default_rng(1)
    # sigma is at least the largest added std: noise stronger than sigma is
    # attenuated by the Wiener gain sigma^2 / (var + sigma^2), so its residual
    # energy falls again.
    energies = [
        np.mean(noise_residual(image + rng.normal(0, std, image.shape), 10) ** 2)
        for std in (0, 2, 5, 10)
    ]
    assert np.all(np.diff(energies) > 0), energies


def test_large_sigma_keeps_every_detail():
    # When sigma^2 dominates every local variance the gain is 1, so the
    # residual is the image minus its coarsest approximation.
    image = grace_hopper()[50:350, 60:360, 1].astype(np.float64)
    coeffs = pywt.wavedec2(image, "db4", level=4, mode="symmetric")
    details_zeroed = [coeffs[0]] + [tuple(np.zeros_like(c) for c in d) for d in coeffs[1:]]
    lowpass = pywt.waverec2(details_zeroed, "db4", mode="symmetric")[:300, :300]
    residual = noise_residual(image, 1e6)
    np.testing.assert_allclose(residual, image - lowpass, rtol=0, atol=TOLERANCE)


def test_to_gray_weights():
    residual = np.array(
        [
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            [[10.0, 20.0, 30.0], [-2.0, 4.0, -8.0], [0.0, 0.0, 0.0]],
        ],
        np.float32,
    )
    expected = np.array(
        [
            [0.29893602, 0.58704307, 0.11402090],
            [
                10 * 0.29893602 + 20 * 0.58704307 + 30 * 0.11402090,
                -2 * 0.29893602 + 4 * 0.58704307 - 8 * 0.11402090,
                0.0,
            ],
        ]
    )
    gray = to_gray(residual)
    assert gray.shape == (2, 3)
    assert gray.dtype == np.float32
    np.testing.assert_allclose(gray, expected, rtol=1e-6, atol=1e-6)


def test_to_gray_passes_one_channel_through():
    plane = np.arange(12, dtype=np.float64).reshape(3, 4)
    for residual in (plane, plane[:, :, np.newaxis]):
        gray = to_gray(residual)
        assert gray.shape == (3, 4)
        assert gray.dtype == np.float32
        np.testing.assert_array_equal(gray, plane)


@pytest.mark.parametrize("shape", [(5,), (4, 4, 2), (4, 4, 4), (1, 4, 4, 3)])
def test_to_gray_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="H x W"):
        to_gray(np.zeros(shape, np.float32))


@pytest.mark.parametrize(
    "image, sigma, kwargs, error, match",
    [
        (np.zeros(300, np.uint8), 5, {}, ValueError, "H x W"),
        (np.zeros((1, 128, 128, 3), np.uint8), 5, {}, ValueError, "H x W"),
        (np.zeros((128, 128, 4), np.uint8), 5, {}, ValueError, "1 or 3 channels"),
        (np.zeros((128, 128, 2), np.uint8), 5, {}, ValueError, "1 or 3 channels"),
        (np.zeros((128, 128), np.int32), 5, {}, TypeError, "uint8 or floating"),
        (np.zeros((128, 128)), 0, {}, ValueError, "sigma"),
        (np.zeros((128, 128)), -5, {}, ValueError, "sigma"),
        (np.zeros((128, 128)), float("nan"), {}, ValueError, "sigma"),
        (np.zeros((128, 128)), float("inf"), {}, ValueError, "sigma"),
        (np.zeros((128, 128)), "5", {}, ValueError, "sigma"),
        (np.zeros((128, 128)), 5, {"levels": 0}, ValueError, "levels"),
        (np.zeros((97, 203, 3), np.uint8), 5, {}, ValueError, "at least 112 pixels"),
        (np.zeros((203, 111)), 5, {}, ValueError, "at least 112 pixels"),
        (np.zeros((300, 300)), 5, {"levels": 6}, ValueError, "at least 448 pixels"),
        (np.full((128, 128), np.nan), 5, {}, ValueError, "NaN"),
    ],
)
def test_rejects_bad_input(image, sigma, kwargs, error, match):
    with pytest.raises(error, match=match):
        noise_residual(image, sigma, **kwargs)
