"""Noise residuals: the targets of the noise-map heads (paper Eq. 4-5).

Kong et al. ("Detect and Locate", IEEE TIFS 2022, Eq. 4-5) supervise the
noise-map heads with the residual n = F - f(F) of a face crop F, where f is
the wavelet-domain adaptive Wiener denoiser of Mihcak, Kozintsev & Ramchandran
("Spatially adaptive statistical modeling of wavelet image coefficients and
its application to denoising", ICASSP 1999), the filter that PRNU extraction
uses. For every detail coefficient c of a 4-level 'db4' DWT the local signal
variance is estimated as

    var = min_{k in 3,5,7,9} max(m_k - sigma^2, 0),   m_k = mean of c^2 over k x k,

and the Wiener estimate of the signal is c * var / (var + sigma^2). What the
denoiser removes, c - that estimate = c * sigma^2 / (var + sigma^2), is the
noise part; with the approximation band set to zero, the inverse DWT of the
noise parts is n (up to cropping to the image size).

This module is the numpy/OpenCV signal layer: no TensorFlow.
"""

import numbers

import cv2
import numpy as np
import pywt

__all__ = ["PRNU_WEIGHTS", "WINDOW_SIZES", "noise_residual", "to_gray"]

# R, G, B weights that the PRNU literature uses to merge per-channel residuals
# into one channel (rgb2gray with more digits).
PRNU_WEIGHTS = (0.29893602, 0.58704307, 0.11402090)

# Side lengths of the square windows of the local variance estimate (Eq. 5).
WINDOW_SIZES = (3, 5, 7, 9)

# Zero rows between bands packed into one canvas: a k x k window centred on a
# band's edge row reaches k // 2 rows beyond it, so with this many zero rows
# it only ever sees the zeros the spec puts outside the band.
_GAP = max(WINDOW_SIZES) // 2


def noise_residual(image, sigma, *, levels=4, wavelet="db4"):
    """Noise residual n = F - f(F) of an image (paper Eq. 4-5).

    f is the wavelet-domain adaptive Wiener denoiser of Mihcak, Kozintsev &
    Ramchandran (1999), applied to every colour channel on its own:

    1. ``pywt.wavedec2(channel, wavelet, level=levels, mode="symmetric")``;
    2. for every detail band c, m_k = sum of c^2 over the k x k window around
       each coefficient (zeros outside the band) divided by k*k, for k in
       3, 5, 7, 9; var = min_k max(m_k - sigma^2, 0);
    3. noise part c_n = c * sigma^2 / (var + sigma^2); approximation band 0;
    4. inverse DWT of those bands, cropped to H x W.

    Since var + sigma^2 = max(min_k m_k, sigma^2), step 3 is computed as
    c * sigma^2 / max(min_k m_k, sigma^2). All channels and orientations of a
    level are filtered at once: their squared bands are packed into one
    canvas, with zero rows between them, for OpenCV's box filter. The
    arithmetic is float32; its rounding error (around 1e-5 in 0..255 units)
    is far below any noise level the residual measures.

    Args:
        image: H x W or H x W x C array, C in {1, 3}, uint8 or floating point,
            in 0..255 units (the units of ``sigma``).
        sigma: standard deviation of the noise to remove, in 0..255 units;
            5 for FF++'s c23 (HQ) and 10 for its c40 (LQ) videos
            (``ffseg.constants.NOISE_SIGMA``).
        levels: number of DWT levels (4 in the paper's PRNU filter).
        wavelet: a PyWavelets discrete wavelet or its name ('db4': 8 taps).

    Returns:
        float32 array of the shape of ``image``: the residual of each channel.

    Raises:
        TypeError: if ``image`` is neither uint8 nor floating point.
        ValueError: on a wrong number of dimensions or channels, a sigma that
            is not a positive finite number, ``levels`` below 1, non-finite
            pixels, or an image smaller than ``levels`` DWT levels need.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be H x W or H x W x C, got shape {image.shape}")
    if image.ndim == 3 and image.shape[2] not in (1, 3):
        raise ValueError(
            f"image must have 1 or 3 channels, got {image.shape[2]} (shape {image.shape})"
        )
    if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"image must be uint8 or floating point, got {image.dtype}")
    if (
        isinstance(sigma, bool)
        or not isinstance(sigma, numbers.Real)
        or not np.isfinite(sigma)
        or sigma <= 0
    ):
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
    if isinstance(levels, bool) or not isinstance(levels, numbers.Integral) or levels < 1:
        raise ValueError(f"levels must be an integer >= 1, got {levels!r}")
    wavelet = pywt.Wavelet(wavelet) if isinstance(wavelet, str) else wavelet
    height, width = image.shape[:2]
    # PyWavelets' own bound: one more level and every coefficient of the
    # coarsest band comes from the boundary extension rather than the image.
    min_side = (wavelet.dec_len - 1) * 2**levels
    if min(height, width) < min_side:
        raise ValueError(
            f"a {levels}-level '{wavelet.name}' DWT needs at least {min_side} pixels per "
            f"side, got a {height} x {width} image; pass a larger image or fewer levels"
        )
    if image.dtype != np.uint8 and not np.isfinite(image).all():
        raise ValueError("image contains NaN or infinite values")

    # Channels first: PyWavelets transforms the two trailing, contiguous axes
    # about 15% faster than axes (0, 1) of an H x W x C array.
    planes = image[np.newaxis] if image.ndim == 2 else np.moveaxis(image, -1, 0)
    planes = np.ascontiguousarray(planes, dtype=np.float32)
    coeffs = pywt.wavedec2(planes, wavelet, level=levels, mode="symmetric", axes=(-2, -1))
    coeffs[0] = np.zeros_like(coeffs[0])
    sigma_sq = np.float32(sigma) ** 2
    for bands in coeffs[1:]:
        _wiener_noise_part(bands, sigma_sq)
    residual = pywt.waverec2(coeffs, wavelet, mode="symmetric", axes=(-2, -1))
    # An odd side comes back one sample longer than it went in.
    residual = residual[:, :height, :width]
    if image.ndim == 2:
        return np.ascontiguousarray(residual[0])
    return np.ascontiguousarray(np.moveaxis(residual, 0, -1))


def _wiener_noise_part(bands, sigma_sq):
    """Replaces one level's detail bands, in place, by their noise parts (Eq. 5).

    Args:
        bands: tuple of the (H, V, D) detail arrays of one level, each
            C x h x w float32, as ``pywt.wavedec2`` returns them.
        sigma_sq: float32 noise variance sigma^2.
    """
    channels, h, w = bands[0].shape
    # One 2-D canvas holds every (orientation, channel) band, stacked along
    # rows with _GAP zero rows after each, so that four box-filter calls cover
    # the whole level instead of 4 * 3 * C small ones.
    canvas = np.zeros((len(bands) * channels * (h + _GAP), w), np.float32)
    for band, squares in zip(bands, _band_views(canvas, len(bands), channels, h)):
        np.square(band, out=squares)
    # normalize=True divides by k*k everywhere, border windows included, and
    # BORDER_CONSTANT pads with zeros: exactly the m_k of the spec. OpenCV sums
    # float32 in float64, so long runs of large squares lose no precision.
    local_mean = None
    for k in WINDOW_SIZES:
        mean_k = cv2.boxFilter(
            canvas, -1, (k, k), normalize=True, borderType=cv2.BORDER_CONSTANT
        )
        if local_mean is None:
            local_mean = mean_k
        else:
            np.minimum(local_mean, mean_k, out=local_mean)
    # sigma^2 / (var + sigma^2) with var = max(min_k m_k - sigma^2, 0).
    gain = np.maximum(local_mean, sigma_sq, out=local_mean)
    np.divide(sigma_sq, gain, out=gain)
    for band, band_gain in zip(bands, _band_views(gain, len(bands), channels, h)):
        band *= band_gain


def _band_views(canvas, orientations, channels, h):
    """Views of the orientations x channels x h x w band slots of a canvas."""
    slots = canvas.reshape(orientations, channels, h + _GAP, canvas.shape[1])
    return slots[:, :, :h, :]


def to_gray(residual):
    """One-channel noise map from per-channel residuals (PRNU convention).

    Weights R, G, B by ``PRNU_WEIGHTS``, as the PRNU literature does after
    Mihcak et al.'s (1999) filter; the residual of Eq. 4-5 is per channel
    while the noise-map heads predict one channel.

    Args:
        residual: H x W x 3 array in R, G, B order, or an H x W or H x W x 1
            array, which is already one channel and is only reshaped.

    Returns:
        H x W float32 array.

    Raises:
        ValueError: on any other shape.
    """
    residual = np.asarray(residual)
    if residual.ndim == 2:
        return residual.astype(np.float32, copy=False)
    if residual.ndim == 3 and residual.shape[2] == 1:
        return residual[:, :, 0].astype(np.float32)
    if residual.ndim == 3 and residual.shape[2] == 3:
        return residual.astype(np.float32, copy=False) @ np.asarray(PRNU_WEIGHTS, np.float32)
    raise ValueError(f"residual must be H x W, H x W x 1 or H x W x 3, got shape {residual.shape}")
