"""Peak memory of ffseg.signal.extract on a 1080p clip sampled in full.

Encodes a 1920x1080 H.264 clip (QP 23) of a face (scikit-image's astronaut,
300 px wide) moving over a background, and its mask video, then extracts
every frame in a fresh child process, twice: collecting the examples in a
list (``extract_video``), and taking them one by one as a dataset builder
does (``iter_extract_video``; absent before extraction streamed). Prints,
for each:
  peak traced           the peak of tracemalloc's traced memory (numpy's and
                        OpenCV's arrays are traced) during the call;
  peak RSS growth       the child's peak resident set size (VmHWM) less its
                        resident size before the call, from a run without
                        tracemalloc;
against the size of all decoded frames and masks, which the extractor held
at once before it streamed.

    python bench/extract_memory.py [--frames 100] [--blank 0,1,2,97,98,99]
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

# A script in bench/ is not inside the package: make ffseg and tests importable.
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import sys, time, tracemalloc
sys.path.insert(0, {root!r})
from ffseg.signal import extract
from ffseg.signal import faces


def status(key):
    with open("/proc/self/status") as handle:
        return int(handle.read().split(key + ":")[1].split()[0]) * 1024


detector = faces.FaceDetector()
# Warm-up (dlib's model, imports) on one frame with a face.
extract.extract_video({video!r}, {mask!r}, num_frames=None, frame_indices=[{warm!r}], sigma=5.0,
                      detector=detector)
if {trace!r}:
    tracemalloc.start()
base = status("VmRSS")
start = time.perf_counter()
if {iterate!r}:
    examples, skipped = extract.iter_extract_video({video!r}, {mask!r}, num_frames=None,
                                                   sigma=5.0, detector=detector)
    count = detected = 0
    for example in examples:
        count += 1
        detected += example["detected"]
else:
    examples, skipped = extract.extract_video({video!r}, {mask!r}, num_frames=None, sigma=5.0,
                                              detector=detector)
    count, detected = len(examples), sum(e["detected"] for e in examples)
seconds = time.perf_counter() - start
peak = tracemalloc.get_traced_memory()[1] if {trace!r} else 0
print(count, detected, peak, status("VmHWM") - base, seconds)
"""


def main(argv=None):
    from ffseg.signal import extract
    from tests import media

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="frames in the clip")
    parser.add_argument("--blank", default="", help="comma-separated frames with no face")
    args = parser.parse_args(argv)
    blank = tuple(int(v) for v in args.blank.split(",") if v)
    warm = min(set(range(args.frames)) - set(blank))

    with tempfile.TemporaryDirectory() as folder:
        step = (min(4.0, 900 / args.frames), min(2.0, 300 / args.frames))
        clip = media.face_clip("astronaut", args.frames, size=(1080, 1920), face_px=300,
                               start=(500, 200), step=step, blank_frames=blank)
        video_path = media.write_clip(os.path.join(folder, "clip.mp4"), clip.frames, qp=23)
        mask_path = media.write_clip(os.path.join(folder, "mask.mp4"), clip.mask_frames())
        del clip
        modes = [("extract_video (list)", False)]
        if hasattr(extract, "iter_extract_video"):
            modes.append(("iter_extract_video (one by one)", True))
        results = {}
        for name, iterate in modes:
            for trace in (True, False):
                code = CHILD.format(root=str(ROOT), trace=trace, iterate=iterate, warm=warm,
                                    video=video_path, mask=mask_path)
                child = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                       text=True)
                if child.returncode != 0:
                    sys.exit(child.stderr)
                results[name, trace] = child.stdout.split()
    frames_bytes = args.frames * (1080 * 1920 * 3 + 1080 * 1920)
    mib = 2**20
    count, detected = results[modes[0][0], True][:2]
    print(f"{count} of {args.frames} frames of a 1920x1080 x264 clip with mask video, "
          f"{detected} with a detected face, blank frames {list(blank)}")
    print(f"  decoded frames + masks  {frames_bytes / mib:8.1f} MiB")
    for name, _ in modes:
        peak = int(results[name, True][2])
        growth, seconds = int(results[name, False][3]), float(results[name, False][4])
        print(f"  {name}:")
        print(f"    peak traced           {peak / mib:8.1f} MiB"
              f"  ({peak / frames_bytes:.3f} of the decoded frames + masks)")
        print(f"    peak RSS growth       {growth / mib:8.1f} MiB")
        print(f"    wall                  {seconds:8.2f} s")

if __name__ == "__main__":
    main()
