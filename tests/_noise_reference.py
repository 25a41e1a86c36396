"""Literal reference for ``ffseg.signal.noise.noise_residual`` (paper Eq. 4-5).

Written straight from the description of the Mihcak, Kozintsev & Ramchandran
(1999) adaptive Wiener filter (per channel: 4-level 'db4' DWT; for every
detail band and window k in {3, 5, 7, 9} the local mean of c^2 with zeros
outside the band and divisor k*k; variance min_k max(m_k - sigma^2, 0);
noise part c * sigma^2 / (variance + sigma^2); approximation band zeroed;
inverse DWT cropped to the image), one channel, band and window size
at a time, in float64, with nothing fused or rearranged, so that the fast
version has something obviously right to be compared with. Shared by
tests/test_noise.py and bench/noise.py.
"""

import numpy as np
import pywt

WINDOW_SIZES = (3, 5, 7, 9)


def local_mean_of_squares(band, k):
    """m_k: mean of band**2 over the k x k window around each coefficient.

    Outside the band counts as zero and the divisor is always k*k.
    """
    half = k // 2
    padded = np.pad(band**2, half, mode="constant", constant_values=0.0)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k))
    return windows.sum(axis=(-2, -1)) / (k * k)


def noise_part(band, sigma):
    """c_n = c * sigma^2 / (var + sigma^2), var = min_k max(m_k - sigma^2, 0)."""
    variances = [
        np.maximum(local_mean_of_squares(band, k) - sigma**2, 0.0) for k in WINDOW_SIZES
    ]
    variance = np.min(np.stack(variances), axis=0)
    return band * sigma**2 / (variance + sigma**2)


def literal_noise_residual_channel(channel, sigma, levels=4, wavelet="db4"):
    """Residual of one H x W channel, as float64."""
    channel = np.asarray(channel, dtype=np.float64)
    coeffs = pywt.wavedec2(channel, wavelet, level=levels, mode="symmetric")
    new_coeffs = [np.zeros_like(coeffs[0])]
    for horizontal, vertical, diagonal in coeffs[1:]:
        new_coeffs.append(
            (
                noise_part(horizontal, sigma),
                noise_part(vertical, sigma),
                noise_part(diagonal, sigma),
            )
        )
    residual = pywt.waverec2(new_coeffs, wavelet, mode="symmetric")
    return residual[: channel.shape[0], : channel.shape[1]]


def literal_noise_residual(image, sigma, levels=4, wavelet="db4"):
    """Residual of an H x W or H x W x C image, channel by channel, as float64."""
    image = np.asarray(image)
    if image.ndim == 2:
        return literal_noise_residual_channel(image, sigma, levels, wavelet)
    return np.stack(
        [
            literal_noise_residual_channel(image[:, :, c], sigma, levels, wavelet)
            for c in range(image.shape[2])
        ],
        axis=-1,
    )
