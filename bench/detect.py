"""Benchmark of ffseg.inference.detect.detect_video (``ffseg detect`` on one video): frames/s.

Encodes a 640x480 H.264 (x264, QP 23, like FF++ c23) clip of a real face
(scikit-image's astronaut) moving over a background, with camera-like grain,
exports an FFSeg (random weights: the cost does not depend on them) as a
SavedModel, loads it back as ``ffseg detect`` does, and times
``detect_video`` scoring every frame and writing the overlay video. Prints:
  frames/s (wall)       scored frames per wall-clock second, end to end;
  frames/s per core     scored frames per second of process CPU time (all
                        threads: TensorFlow's, dlib's, FFmpeg's decoder);
and the share of the process CPU time in decode (reading frames), detect
(dlib, boxes and crops), model (the SavedModel on batches of crops), draw
(heatmap overlays), encode (handing frames to the encoder) and the rest, and
the CPU time of the x264 encoder, a separate process. CPU time, not wall
time, so that other jobs on a shared machine do not distort the shares.

The model at ``--image-size 299`` is the real network; a small size (71)
shows the cost of everything around it. Run from anywhere:

    python bench/detect.py [--image-size 299] [--frames 60] [--batch-size 16]
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# A script in bench/ is not inside the package: make ffseg and tests importable.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from ffseg import timing  # noqa: E402
from ffseg.inference import detect
from ffseg.signal import faces
from tests import media  # noqa: E402

PARTS = ("decode", "detect", "model", "draw", "encode")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=299,
                        help="FFSeg input size (299: the paper's; 71: the smallest)")
    parser.add_argument("--frames", type=int, default=60, help="frames in the clip")
    parser.add_argument("--batch-size", type=int, default=detect.DEFAULT_BATCH_SIZE,
                        help="faces per model call")
    parser.add_argument("--no-overlay", action="store_true", help="do not write the overlay")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs; the best counts")
    args = parser.parse_args(argv)

    from ffseg.cli import import_tensorflow_quietly

    import_tensorflow_quietly()  # no CUDA error lines on a machine without a GPU
    from ffseg.inference.export import export_saved_model
    from ffseg.inference.predictors import load_predictor
    from ffseg.models.ffseg_model import FFSeg

    with tempfile.TemporaryDirectory() as folder:
        clip = media.grainy_face_clip(args.frames)
        video_path = media.write_clip(os.path.join(folder, "clip.mp4"), clip.frames, qp=23)
        del clip

        started = time.perf_counter()
        model = FFSeg(image_size=args.image_size, backbone_weights=None)
        model_path = export_saved_model(model, os.path.join(folder, "model"))
        del model
        predictor = load_predictor(model_path)
        setup = time.perf_counter() - started
        detector = faces.FaceDetector()
        overlay_path = None if args.no_overlay else os.path.join(folder, "overlay.mp4")
        # Warm-up: TensorFlow's first calls, dlib's model.
        detect.detect_video(video_path, predictor, detector, num_frames=3)

        timing.clock = time.process_time
        best = None
        for _ in range(args.repeats):
            timings = {}
            children = _children_cpu()
            wall, cpu = time.perf_counter(), time.process_time()
            result = detect.detect_video(
                video_path, predictor, detector, num_frames=None, overlay_path=overlay_path,
                batch_size=args.batch_size, timings=timings,
            )
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            encoder = _children_cpu() - children
            if best is None or cpu < best[1]:
                best = (wall, cpu, encoder, timings, result)
        wall, cpu, encoder, timings, result = best

    count = result["frames_scored"]
    cores = len(os.sched_getaffinity(0))
    faces_found = sum(len(frame["faces"]) for frame in result["frames"])
    print(
        f"detect_video: {count} frames of a 640x480 x264 clip, FFSeg at "
        f"{args.image_size}x{args.image_size} as a SavedModel, batch {args.batch_size}, "
        f"{'no overlay' if args.no_overlay else 'overlay video written'}, "
        f"{cores} core(s) allowed, best of {args.repeats}"
    )
    print(f"  model build+export+load {setup:6.1f} s (once per run of ffseg detect)")
    print(f"  faces found           {faces_found}/{count}")
    print(f"  wall                  {wall:8.2f} s  ({wall / count * 1e3:.1f} ms/frame)")
    print(f"  CPU                   {cpu:8.2f} s  ({cpu / count * 1e3:.1f} ms/frame)")
    print(f"  frames/s (wall)       {count / wall:8.2f}")
    print(f"  frames/s per core     {count / cpu:8.2f}   (process CPU time)")
    print("  share of process CPU time:")
    print("\n".join(timing.share_lines(timings, PARTS, cpu, count)))
    if not args.no_overlay:
        print(f"  x264 encoder process  {encoder:8.2f} s  ({encoder / count * 1e3:.1f} ms/frame, "
              f"with FFmpeg's frame-count demux; not in the CPU time above)")


def _children_cpu() -> float:
    """CPU seconds of this process's finished child processes (x264, FFmpeg's demuxer)."""
    times = os.times()
    return times.children_user + times.children_system


if __name__ == "__main__":
    main()
