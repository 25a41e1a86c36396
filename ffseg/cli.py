"""The ``ffseg`` command line; one subcommand per task.

``detect`` scores images and videos, ``sample`` writes the embedded FF++-layout
sample tree, ``pseudo-fakes`` shows what a pseudo-fake-trained model learns
from, ``serve`` runs the web page and ``export`` writes ONNX or TFLite files.

Each subcommand is added by an ``_add_<name>(subparsers)`` function that sets
``run`` to the function that executes it and returns an exit status, so a new
subcommand touches nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import re
import sys

import ffseg
from ffseg.arguments import positive, positive_or_all, probability
from ffseg.constants import NOISE_SIGMA, QUALITIES

EXIT_OK = 0
EXIT_INPUT_FAILED = 1
EXIT_USAGE = 2


# --------------------------------------------------------------------------
# TensorFlow, quietly

# What TensorFlow prints at start-up on a machine without an NVIDIA GPU: the
# CUDA build looks for a driver and a device, fails, and says so at error
# level ("failed call to cuInit"), although running on the CPU is all that
# can happen there. Only these lines are dropped, and only on such machines.
CUDA_STARTUP_NOISE = re.compile(
    r"failed call to cuInit|Could not find cuda drivers|cudart_stub\.cc"
    r"|Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning: Could not find TensorRT"
    r"|computation placer already registered"
    r"|^WARNING: All log messages before absl::InitializeLog\(\) is called"
)


def nvidia_gpu_present() -> bool:
    """Whether this machine shows an NVIDIA device (driver loaded, device node present)."""
    return bool(glob.glob("/dev/nvidia[0-9]*") or glob.glob("/proc/driver/nvidia/gpus/*")
                or os.path.exists("/dev/dxg"))  # /dev/dxg: a GPU under WSL


def startup_lines_to_show(lines, gpu_present: bool | None = None,
                          min_log_level: int = 0) -> list[str]:
    """The start-up lines worth showing: all but the CUDA complaints of a GPU-less machine.

    Args:
        lines: what was printed on file descriptor 2.
        gpu_present: default ``nvidia_gpu_present()``.
        min_log_level: TensorFlow's ``TF_CPP_MIN_LOG_LEVEL``, applied to the
            lines that its logging library prints before it reads the
            variable (the oneDNN notice): 1 drops INFO, 2 also WARNING lines.
    """
    if gpu_present is None:
        gpu_present = nvidia_gpu_present()
    below = "I" if min_log_level == 1 else "IW" if min_log_level >= 2 else ""
    shown = []
    for line in lines:
        if below and re.match(rf"[{below}]\d{{4}} ", line):
            continue
        if not gpu_present and CUDA_STARTUP_NOISE.search(line):
            continue
        shown.append(line)
    return shown


def _min_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def import_tensorflow_quietly():
    """Imports TensorFlow and starts its devices without the no-GPU CUDA error lines.

    On a machine without an NVIDIA GPU every TensorFlow program prints
    "failed call to cuInit: ... UNKNOWN ERROR (303)" at error level when it
    first looks for devices. This imports TensorFlow and lists its devices
    (the moment those lines are printed) with file descriptor 2 captured,
    then prints back every captured line except those complaints
    (``CUDA_STARTUP_NOISE``), so genuine errors still show; where a GPU is
    present nothing is dropped (a failing driver there is a real error).
    TensorFlow's INFO lines are lowered unless ``TF_CPP_MIN_LOG_LEVEL`` is
    set; warnings and errors are kept. Call it first thing in a program, as
    ``ffseg detect``, ``python -m experiments.train`` and ``python -m
    experiments.evaluate`` do.

    Returns:
        The ``tensorflow`` module.

    Example:

    ```python
    from ffseg.cli import import_tensorflow_quietly

    tf = import_tensorflow_quietly()    # no "cuInit" line on a CPU-only machine
    print(tf.reduce_sum(tf.ones(3)).numpy())   # 3.0
    ```
    """
    if "tensorflow" in sys.modules and getattr(import_tensorflow_quietly, "_done", False):
        return sys.modules["tensorflow"]
    from ffseg.inference.probe import capture_native_stderr

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    lines: list[str] = []
    try:
        with capture_native_stderr(lines):
            import tensorflow as tf

            tf.config.list_physical_devices()
    finally:
        for line in startup_lines_to_show(lines, min_log_level=_min_log_level()):
            print(line, file=sys.stderr, flush=True)
    import_tensorflow_quietly._done = True
    return tf


# --------------------------------------------------------------------------
# ffseg detect

_DETECT_DESCRIPTION = """\
Scores every face in images and videos: a real/fake probability per face and
a manipulation (localization) map, drawn as a heatmap over the face.

Each PATH is read as an image if OpenCV can decode it as one, else as a video
(any container OpenCV's FFmpeg backend reads). Faces are found and cropped as
for training: dlib's frontal detector, the face box enlarged 1.3x into a
square, resized to 299x299. Every face is scored; the largest face of a frame
is marked, and a video's verdict is the mean, over the frames with a face, of
the largest face's score.

For each input, OUTPUT gets <name>.json (input, kind, model, verdict, per
frame the index and faces [{box, face, detection_score, score, largest,
class_probabilities}], and for videos frame_count, frames_scored,
frames_without_face) and an
overlay: <name>.png for an image, <name>.mp4 for a video (one frame per
scored frame). <name> is the input's file name without its extension, with
-2, -3, ... added when that name is taken: by another input's outputs, by an
input itself, or by any file already in OUTPUT. Nothing is ever replaced
(--overwrite replaces earlier results, never an input); every name is chosen
before the first input is read.

A model trained on the embedded sample dataset (its export's ffseg.json, or
the config.json beside a .keras file, says so) is named as such in a warning
on stderr and in each JSON's warnings: its scores mean nothing on real media.
"""

_DETECT_EPILOG = """\
exit status:
  0  every input was scored and its outputs written
  1  some inputs failed (each one named on one line of stderr as "ffseg
     detect: PATH: REASON": not found, not a readable image or video, corrupt
     or truncated, no face found, an output that cannot be written); the
     others were still processed, and a failed input leaves no file behind
  2  usage error: bad arguments, the model cannot be loaded, or OUTPUT cannot
     be created (nothing was processed)

example:
  ffseg detect clip.mp4 photo.jpg --model runs/c23/export --output results/
"""


def _add_detect(subparsers) -> None:
    from ffseg.inference.detect import DEFAULT_BATCH_SIZE, DEFAULT_NUM_FRAMES, DEFAULT_THRESHOLD

    parser = subparsers.add_parser(
        "detect",
        help="score the faces of images and videos, with localization heatmaps",
        description=_DETECT_DESCRIPTION,
        epilog=_DETECT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image or video files")
    parser.add_argument(
        "--model",
        required=True,
        metavar="MODEL",
        help="an exported SavedModel folder (ffseg.export) or a .keras file",
    )
    parser.add_argument(
        "--output",
        default="ffseg_detect",
        metavar="OUTPUT",
        help="folder for the results, created if needed (default: ./ffseg_detect)",
    )
    parser.add_argument(
        "--frames",
        type=positive_or_all,
        default=DEFAULT_NUM_FRAMES,
        metavar="N",
        help=f"frames to score per video, evenly spaced over the video, as at training "
        f"time; a video of at most N frames is scored in full; 'all' scores every "
        f"frame. Default {DEFAULT_NUM_FRAMES}: every frame of a clip of up to "
        f"{DEFAULT_NUM_FRAMES} frames (12 s at 25 frames/s), {DEFAULT_NUM_FRAMES} evenly "
        f"spaced frames of a longer video",
    )
    parser.add_argument(
        "--threshold",
        type=probability,
        default=DEFAULT_THRESHOLD,
        help=f"scores at or above it are labelled fake (default: {DEFAULT_THRESHOLD})",
    )
    parser.add_argument(
        "--batch-size",
        type=positive,
        default=DEFAULT_BATCH_SIZE,
        help=f"faces per model call; bounds the frames held in memory "
        f"(default: {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--no-overlay",
        dest="overlay",
        action="store_false",
        help="write only the JSON files, no overlay images or videos",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing files in OUTPUT that have an output's name (earlier results) "
        "instead of choosing a new name; an input is never replaced",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print nothing on stdout (errors still go to stderr)"
    )
    parser.set_defaults(run=_run_detect)


@contextlib.contextmanager
def _quiet_native_logs():
    """Silences FFmpeg's and OpenCV's own log lines for the duration of a run.

    They would interleave with the one line per failed input that this
    command prints (e.g. FFmpeg's "moov atom not found" before "not a
    readable image or video"). TensorFlow's C++ logs are lowered the same
    way. Everything is restored afterwards (``main`` may run inside a
    longer-lived process, such as a test session).
    """
    import cv2

    saved_env = {
        key: os.environ.get(key) for key in ("OPENCV_FFMPEG_LOGLEVEL", "TF_CPP_MIN_LOG_LEVEL")
    }
    # FFmpeg reads this when OpenCV first opens a video in the process.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved_level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(saved_level)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _one_line(text: str) -> str:
    """A message on one line: the command promises one line per failed input."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _reason(path: str, error: BaseException) -> str:
    """The error's reason, without a repeated ``path:`` prefix."""
    from ffseg.errors import FileError

    if isinstance(error, FileError):
        if error.path is None or os.path.abspath(error.path) == os.path.abspath(path):
            return error.reason
        return f"{error.path}: {error.reason}"  # e.g. the overlay video could not be written
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}"
    return f"{type(error).__name__}: {_first_line(error)}"


def _summary(path: str, result: dict, json_path: str) -> str:
    verdict = result["verdict"]
    faces_found = sum(len(frame["faces"]) for frame in result["frames"])
    if result["kind"] == "image":
        detail = f"image, {faces_found} face{'s' if faces_found != 1 else ''}"
    else:
        detail = (
            f"video, {result['frames_scored']} of {result['frame_count']} frames scored, "
            f"{result['frames_without_face']} without a face"
        )
    return f"{path}: {detail}; {verdict['label']} ({verdict['score']:.3f}) -> {json_path}"


def _run_detect(args) -> int:
    from ffseg.inference import detect
    from ffseg.signal import faces

    def fail(message: str) -> None:
        print(f"ffseg detect: {_one_line(message)}", file=sys.stderr, flush=True)

    with _quiet_native_logs():
        try:
            os.makedirs(args.output, exist_ok=True)
        except OSError as error:
            fail(f"{args.output}: cannot create the output folder ({error.strerror or error})")
            return EXIT_USAGE
        if not os.path.isdir(args.output):
            fail(f"{args.output}: not a folder")
            return EXIT_USAGE
        from ffseg.inference.outputs import plan_outputs

        # Every output name is chosen now, before any input is read.
        plans = plan_outputs(args.paths, args.output, overlay=args.overlay,
                             overwrite=args.overwrite)
        if not os.path.exists(args.model):
            fail(
                f"{args.model}: no such model (expected an exported SavedModel folder or "
                f"a .keras file)"
            )
            return EXIT_USAGE
        import_tensorflow_quietly()
        log: list[str] = []
        try:
            with detect.capture_native_stderr(log):
                from ffseg.inference.predictors import load_predictor

                predictor = load_predictor(args.model)
        except FileNotFoundError as error:
            fail(_first_line(error))
            return EXIT_USAGE
        except Exception as error:  # a damaged model: say so, do not dump a traceback
            fail(
                f"{args.model}: cannot load the model ({type(error).__name__}: "
                f"{_first_line(error)})"
            )
            return EXIT_USAGE
        # TensorFlow's own errors while loading are genuine: show them (its
        # INFO and WARNING lines, and C libraries' chatter, stay captured).
        for line in startup_lines_to_show(log):
            if re.match(r"[EF]\d{4} ", line):
                print(line, file=sys.stderr, flush=True)
        from ffseg.inference.model_card import sample_model_notice

        for notice in (sample_model_notice(getattr(predictor, "info", None)),
                       detect.localization_notice(predictor)):
            if notice is not None:
                print(f"ffseg detect: warning: {args.model}: {notice}", file=sys.stderr,
                      flush=True)
        detector = faces.FaceDetector()

        status = EXIT_OK
        for path, plan in zip(args.paths, plans):
            try:
                result = detect.detect_file(
                    path,
                    predictor,
                    detector,
                    output_paths=plan,
                    num_frames=args.frames,
                    threshold=args.threshold,
                    batch_size=args.batch_size,
                    model_path=args.model,
                )
            except KeyboardInterrupt:
                raise
            except Exception as error:  # one bad input must not stop the others
                fail(f"{path}: {_reason(path, error)}")
                status = EXIT_INPUT_FAILED
                continue
            if not args.quiet:
                print(_summary(path, result, plan.json), flush=True)
        return status


# --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ffseg",
        description='Face forgery detection and localization (Kong et al., "Detect and '
        'Locate", IEEE TIFS 2022).',
    )
    parser.add_argument("--version", action="version", version=f"ffseg {ffseg.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_detect(subparsers)
    _add_sample(subparsers)
    _add_pseudo_fakes(subparsers)
    from ffseg.serve.commands import add_export_subcommand, add_serve_subcommand

    add_serve_subcommand(subparsers)
    add_export_subcommand(subparsers)
    return parser


# --------------------------------------------------------------------------
# ffseg sample

_SAMPLE_DESCRIPTION = """\
Writes a small FaceForensics++-layout tree (the `ffpp/sample` dataset's
source): real videos made from face photos with small camera motion, x264 at
QP 23 (c23) and 40 (c40), manipulated videos imitating the four FF++ methods
with their exact mask videos, and split files. Built-in photos come from
scikit-image and matplotlib; --photos adds a folder of your own (one frontal
face each). OUTPUT must be new or empty. Build it into its own dataset,
`ffpp/sample_photos`, with:

  tfds build tfds_ffpp/ffpp --config=sample_photos --manual_dir=OUTPUT
"""


def _add_sample(subparsers) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="write a small FF++-layout tree of real and manipulated videos",
        description=_SAMPLE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("output", metavar="OUTPUT", help="folder to write (created if needed)")
    parser.add_argument("--photos", default=None, help="folder of extra face photos")
    parser.add_argument("--frames", type=positive, default=8, help="frames per video (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=_run_sample)


def _run_sample(args) -> int:
    from ffseg.errors import FileError
    from ffseg.signal.sample import make_sample_ffpp

    try:
        root = make_sample_ffpp(
            args.output, photos=args.photos, num_frames=args.frames, seed=args.seed
        )
    except (FileError, OSError, ValueError) as error:
        print(f"ffseg sample: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(root)
    return EXIT_OK


# --------------------------------------------------------------------------
# ffseg pseudo-fakes

_PSEUDO_FAKES_DESCRIPTION = """\
Shows what a model trained on pseudo-fakes learns from: writes a PNG grid,
one row per pseudo-fake, with the columns face | pseudo-fake | mask | noise
label. A photo gives one face, blended differently on every row; a video
gives its first frames with a face. Rows alternate self-blends (the face with
an altered copy of itself) and cross-blends (another person's face, aligned
by landmarks), and cycle through the parts face, inner, eyes and mouth.
Cross-blend donors are the built-in portraits (scikit-image's astronaut,
matplotlib's Grace Hopper) unless --donor is given; a donor who is the same
person as the face is not used. The grid goes to
OUTPUT/<name>-pseudo-fakes.png; an existing file is never written over
(-2, -3, ... are added instead).
"""


def _add_pseudo_fakes(subparsers) -> None:
    parser = subparsers.add_parser(
        "pseudo-fakes",
        help="write a grid of self- and cross-blended pseudo-fakes of a photo or a video",
        description=_PSEUDO_FAKES_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="FACE_OR_VIDEO", help="a face photo or a video")
    parser.add_argument("--output", required=True, help="folder to write into (created if needed)")
    parser.add_argument("--rows", type=positive, default=8, help="pseudo-fakes (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="first row's seed (default 0)")
    parser.add_argument(
        "--quality", choices=QUALITIES, default="c23",
        help="the noise label's sigma: 5 for c23, 10 for c40 (default c23)",
    )
    parser.add_argument(
        "--donor", action="append", default=None, metavar="PHOTO",
        help="a photo of another person for the cross-blends (repeatable)",
    )
    parser.add_argument("--cell", type=positive, default=299,
                        help="side of each picture in pixels (default 299, the crop)")
    parser.set_defaults(run=_run_pseudo_fakes)


def _run_pseudo_fakes(args) -> int:
    from ffseg.errors import FileError
    from ffseg.signal.blend import write_grid

    try:
        with _quiet_native_logs():
            path = write_grid(
                args.source, args.output, rows=args.rows, seed=args.seed,
                sigma=NOISE_SIGMA[args.quality], donors=args.donor, cell=args.cell,
            )
    except FileError as error:
        print(f"ffseg pseudo-fakes: {error}", file=sys.stderr)
        return EXIT_INPUT_FAILED
    except (OSError, ValueError) as error:
        print(f"ffseg pseudo-fakes: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(path)
    return EXIT_OK


def main(argv=None) -> int:
    """Runs ``ffseg`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, --version, or a usage error (2)
        code = exit_request.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
