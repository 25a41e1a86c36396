"""Benchmark of ``ffseg serve`` and ``ffseg export``: latency per face, and the page's round trip.

Exports an FFSeg (random weights: the cost does not depend on them) as a
SavedModel, converts it to ONNX and TFLite (``ffseg.serve.edge``), and times
on CPU, for real face crops (scikit-image's astronaut):
  latency per face      one face per call (what an edge device does), the
                        median of ``--repeats`` calls after a warm-up, for
                        the SavedModel (TensorFlow), ONNX Runtime and
                        TFLite (LiteRT, XNNPACK);
  per face in a batch   ``--batch`` faces per call, divided by the batch;
and the page's round trip for a ``--seconds`` clip (640x480 H.264 at 25
frames/s, a real face with camera grain, as ``bench/detect.py``): upload to
a uvicorn server on 127.0.0.1 with ``?progress=1`` as the page does, every
progress line read, the result, and the overlay video downloaded.

    python bench/serve.py [--image-size 299] [--seconds 10] [--threads N]
"""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A script in bench/ is not inside the package: make ffseg and tests importable.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from tests import media  # noqa: E402


def _latency(predict, crops, repeats):
    predict(crops[:1])  # warm-up: graph tracing, allocations
    single = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(crops[:1])
        single.append(time.perf_counter() - start)
    start = time.perf_counter()
    predict(crops)
    batched = (time.perf_counter() - start) / len(crops)
    return statistics.median(single), batched


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=299, help="FFSeg input size")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length, 25 frames/s")
    parser.add_argument("--repeats", type=int, default=10, help="timed single-face calls")
    parser.add_argument("--batch", type=int, default=8, help="faces per batched call")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for ONNX Runtime and TFLite (default: theirs)")
    args = parser.parse_args(argv)

    import httpx
    import keras

    from ffseg.inference.export import export_saved_model
    from ffseg.inference.predictors import load_predictor
    from ffseg.models.ffseg_model import FFSeg
    from ffseg.serve.app import ServeOptions, create_app
    from ffseg.serve.edge import export_edge, load_edge
    from ffseg.signal import faces
    from tests.test_serve import running

    image = media.astronaut()
    box = faces.face_box(faces.FaceDetector().largest(image), image.shape, 1.3)
    crop = faces.crop(image, box, 299)
    crops = np.stack([crop] * args.batch)

    with tempfile.TemporaryDirectory() as folder:
        keras.utils.set_random_seed(0)
        model = FFSeg(image_size=args.image_size, backbone_weights=None)
        saved = export_saved_model(model, os.path.join(folder, "export"))
        runners = {"SavedModel (TensorFlow)": load_predictor(saved)}
        for format in ("onnx", "tflite"):
            path = os.path.join(folder, f"ffseg.{format}")
            start = time.perf_counter()
            info = export_edge(saved, path, format)
            print(f"export {format}: {time.perf_counter() - start:.1f} s, "
                  f"{info['bytes'] / 2**20:.1f} MiB")
            name = "ONNX Runtime" if format == "onnx" else "TFLite (LiteRT)"
            runners[name] = load_edge(path, threads=args.threads)

        print(f"\nFFSeg {args.image_size} px, CPU ({os.cpu_count()} cores), one 299 px face crop")
        print(f"{'runtime':26s} {'1 face/call':>12s} {f'per face, {args.batch}/call':>20s}")
        reference = runners["SavedModel (TensorFlow)"].predict(crops[:1])["score"]
        for name, runner in runners.items():
            single, batched = _latency(runner.predict, crops, args.repeats)
            difference = abs(float(runner.predict(crops[:1])["score"][0] - reference[0]))
            print(f"{name:26s} {single * 1000:10.1f} ms {batched * 1000:17.1f} ms"
                  f"   (score difference {difference:.1e})")

        frames = int(round(args.seconds * 25))
        clip_path = os.path.join(folder, "clip.mp4")
        media.write_clip(clip_path, media.grainy_face_clip(frames).frames)
        app = create_app(ServeOptions(model=saved, temp_dir=os.path.join(folder, "requests")),
                         predictor=runners["SavedModel (TensorFlow)"])
        with running(app) as url:
            start = time.perf_counter()
            lines = 0
            with open(clip_path, "rb") as handle:
                with httpx.stream("POST", f"{url}/api/detect", params={"progress": "1"},
                                  files={"file": ("clip.mp4", handle)}, timeout=3600) as reply:
                    import json

                    for line in reply.iter_lines():
                        if line.strip():
                            lines += 1
                            event = json.loads(line)
            result = event["result"]
            overlay = httpx.get(f"{url}/{result['overlay']}", timeout=600)
            elapsed = time.perf_counter() - start
        size = os.path.getsize(clip_path)
        print(f"\npage round trip, {args.seconds:g} s clip ({frames} frames 640x480, "
              f"{size / 2**20:.1f} MiB): {elapsed:.1f} s "
              f"({result['frames_scored'] / elapsed:.1f} frames/s; {lines} progress lines, "
              f"overlay {len(overlay.content) / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
