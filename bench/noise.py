"""Benchmark of ffseg.signal.noise.noise_residual (paper Eq. 4-5) on a 299x299x3 face.

Times, best of several repeats:
  ours     ffseg.signal.noise.noise_residual, the fast path;
  literal  tests/_noise_reference.py, the formulas of Mihcak, Kozintsev &
           Ramchandran (1999) written out one channel, band and window at a time;
  floor    a bare pywt.wavedec2 + pywt.waverec2 round trip of the same image
           in float32, all channels in one call (the faster of the H x W x C and
           C x H x W layouts), which no implementation of the filter can beat;
and prints ours/floor and literal/ours.

Run from anywhere: python bench/noise.py [--repeats N] [--sigma S]
"""

import argparse
import pathlib
import sys
import timeit

import numpy as np
import pywt
from skimage import data

# A script in bench/ is not inside the package: make ffseg and tests importable.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from ffseg.signal.noise import noise_residual  # noqa: E402
from tests._noise_reference import literal_noise_residual  # noqa: E402


def best_time(fn, repeats, number):
    """Seconds per call: the best of ``repeats`` runs of ``number`` calls."""
    return min(timeit.repeat(fn, repeat=repeats, number=number)) / number


def round_trip(array, axes):
    coeffs = pywt.wavedec2(array, "db4", level=4, mode="symmetric", axes=axes)
    return pywt.waverec2(coeffs, "db4", mode="symmetric", axes=axes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timing repeats; the best counts")
    parser.add_argument("--sigma", type=float, default=5.0, help="noise std in 0..255 units")
    args = parser.parse_args(argv)

    # Native pixels of the astronaut's face: resampling would smooth away the
    # sensor noise the filter is meant to measure.
    face = np.ascontiguousarray(data.astronaut()[0:299, 100:399])
    face_hwc = face.astype(np.float32)
    face_chw = np.ascontiguousarray(face_hwc.transpose(2, 0, 1))

    ours = best_time(lambda: noise_residual(face, args.sigma), args.repeats, 50)
    literal = best_time(lambda: literal_noise_residual(face, args.sigma), args.repeats, 2)
    floor_hwc = best_time(lambda: round_trip(face_hwc, (0, 1)), args.repeats, 50)
    floor_chw = best_time(lambda: round_trip(face_chw, (-2, -1)), args.repeats, 50)
    floor = min(floor_hwc, floor_chw)

    error = np.abs(noise_residual(face, args.sigma) - literal_noise_residual(face, args.sigma))
    print(f"noise_residual on a {'x'.join(map(str, face.shape))} uint8 face, sigma={args.sigma:g}")
    print(f"  ours     {ours * 1e3:8.2f} ms")
    print(f"  literal  {literal * 1e3:8.2f} ms")
    print(
        f"  floor    {floor * 1e3:8.2f} ms  (wavedec2+waverec2 float32: "
        f"HxWxC {floor_hwc * 1e3:.2f} ms, CxHxW {floor_chw * 1e3:.2f} ms)"
    )
    print(f"  ours / floor     {ours / floor:6.2f}x")
    print(f"  literal / ours   {literal / ours:6.1f}x")
    print(f"  max |ours - literal| = {error.max():.2e}")


if __name__ == "__main__":
    main()
