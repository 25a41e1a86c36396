"""Benchmark of the pseudo-fake generator (ffseg.signal.blend) at 299 px, per core.

Times, in CPU seconds (time.process_time, so other jobs on a shared machine
count little), over the same seeds for each:
  noise      the noise label alone, noise.to_gray(noise.noise_residual(face, sigma)),
             which every stored example already costs;
  self       self_blend: augmented copy, mask, blend and the noise label;
  cross      cross_blend: aligned, colour-matched donor, then as self;
and prints pseudo-fakes per second per core and the ratios self/noise and
cross/noise. Goal: ratio <= 2.0, i.e. the generator itself costs no more
than the noise label, so a few CPU cores feed a GPU.

OpenCV runs on one thread here (cv2.setNumThreads(1)) so that the figures
are per core; an input pipeline runs one generator per core.

Run from anywhere: python bench/pseudo_fakes.py [--count N] [--repeats R] [--sigma S]
"""

import argparse
import pathlib
import sys
import time

import cv2

# A script in bench/ is not inside the package: make ffseg importable.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from ffseg.signal import blend, noise  # noqa: E402

GOAL = 2.0


def cpu_seconds(fn, count, repeats):
    """CPU seconds per call: the best of ``repeats`` runs of ``count`` calls (seeds 0..count-1)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for seed in range(count):
            fn(seed)
        best = min(best, time.process_time() - start)
    return best / count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="pseudo-fakes per timing run")
    parser.add_argument("--repeats", type=int, default=3, help="timing runs; the best counts")
    parser.add_argument("--sigma", type=float, default=5.0, help="noise std in 0..255 units")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)

    # Real faces, cropped at 299 px with their landmarks, as for training.
    astronaut, hopper = blend.builtin_donors()
    face, donor = astronaut, hopper
    sigma = args.sigma

    def noise_only(seed):
        noise.to_gray(noise.noise_residual(face.image, sigma))

    def self_pair(seed):
        blend.self_blend(face.image, face.points, seed, sigma=sigma)

    def cross_pair(seed):
        blend.cross_blend(face.image, face.points, donor.image, donor.points, seed, sigma=sigma)

    noise_only(0), self_pair(0), cross_pair(0)  # warm up (imports, caches)
    timings = {
        "noise label alone": cpu_seconds(noise_only, args.count, args.repeats),
        "self-blend + noise label": cpu_seconds(self_pair, args.count, args.repeats),
        "cross-blend + noise label": cpu_seconds(cross_pair, args.count, args.repeats),
    }
    base = timings["noise label alone"]
    print(f"pseudo-fakes of a {face.image.shape[0]}x{face.image.shape[1]} face, sigma={sigma:g}, "
          f"best of {args.repeats} x {args.count}, CPU time, OpenCV on 1 thread")
    for name, seconds in timings.items():
        print(f"  {name:<27} {seconds * 1e3:6.2f} ms  {1 / seconds:6.1f} per second per core  "
              f"ratio {seconds / base:.2f}")
    worst = max(timings.values()) / base
    verdict = "met" if worst <= GOAL else "NOT met"
    print(f"goal: pseudo-fake + noise label <= {GOAL:g} x noise label alone: {verdict} "
          f"(worst ratio {worst:.2f})")
    return 0 if worst <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
