"""The ``ffseg serve`` and ``ffseg export`` subcommands.

``ffseg.cli`` adds them with ``add_serve_subcommand(subparsers)`` and
``add_export_subcommand(subparsers)``; each sets ``run`` to the function that
executes it and returns an exit status (0 done, 2 usage error or a model or
address that cannot be used).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys

from ffseg.arguments import count, port, positive, positive_or_all

EXIT_OK = 0
EXIT_USAGE = 2


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# --------------------------------------------------------------------------
# ffseg serve

_SERVE_DESCRIPTION = """\
Serves a web page for analysts, and a JSON API, over the same detector as
`ffseg detect`: upload a photo or a video, see each face's score and
localization heatmap, and for a video the overlay video, a score card per
face and the score of every frame, with progress while a long video is
scored.

API: POST /api/detect (multipart upload, field "file") returns the JSON
document `ffseg detect` writes (with ?progress=1: JSON lines of progress,
then the result); GET /api/model, the model card; GET /api/health.

Safe by default: listens on 127.0.0.1 only; uploads are limited in size and
to images and videos recognised by their content; each request works in its
own temporary folder, removed afterwards; one request is scored at a time,
--queue more wait, and any beyond get 503 with Retry-After.
"""

_SERVE_EPILOG = """\
example:
  ffseg serve --model runs/sample/export            # then open http://127.0.0.1:8000/
"""


def add_serve_subcommand(subparsers) -> None:
    """Adds ``ffseg serve`` to an ``argparse`` subparsers object."""
    parser = subparsers.add_parser(
        "serve",
        help="a web page and a JSON API over the detector",
        description=_SERVE_DESCRIPTION,
        epilog=_SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="an exported SavedModel folder or a .keras file")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=port, default=8000, help="port (default 8000)")
    parser.add_argument("--max-upload-mb", type=positive, default=200,
                        help="largest upload accepted, in MiB (default 200)")
    parser.add_argument("--queue", type=count, default=4,
                        help="requests that may wait while one is scored; more get 503 "
                             "(default 4)")
    parser.add_argument("--frames", type=positive_or_all, default=300, metavar="N",
                        help="frames scored per video, evenly spaced, as `ffseg detect "
                             "--frames` (default 300; 'all' for every frame)")
    parser.set_defaults(run=_run_serve)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket; raises OSError with the system's reason."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _run_serve(args) -> int:
    def fail(message: str) -> int:
        print(f"ffseg serve: {message}", file=sys.stderr, flush=True)
        return EXIT_USAGE

    if not os.path.exists(args.model):
        return fail(f"{args.model}: no such model (expected an exported SavedModel folder "
                    f"or a .keras file)")
    try:
        sock = _listen(args.host, args.port)
    except OSError as error:
        return fail(f"cannot listen on {args.host}:{args.port} ({error.strerror or error})")
    # FFmpeg (through OpenCV) and libjpeg write their complaints about bad
    # uploads straight to stderr; the client gets the reason, the console
    # need not. FFmpeg reads this when OpenCV first opens a video.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import cv2
        import uvicorn

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

        from ffseg.inference.detect import capture_native_stderr
        from ffseg.serve.app import ServeOptions, create_app

        options = ServeOptions(model=args.model, max_upload_bytes=args.max_upload_mb << 20,
                               queue_size=args.queue, num_frames=args.frames)
        log: list[str] = []
        try:
            with capture_native_stderr(log):  # TensorFlow's import banner
                app = create_app(options)
        except FileNotFoundError as error:
            return fail(_first_line(error))
        except Exception as error:  # a damaged model: one line, no traceback
            return fail(f"{args.model}: cannot load the model ({type(error).__name__}: "
                        f"{_first_line(error)})")
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"ffseg serve: {args.model} at http://{shown}:{port}/ (Ctrl-C to stop)",
              flush=True)
        card = app.state.card
        if card["warning"]:
            print(f"ffseg serve: warning: {card['warning']}", file=sys.stderr, flush=True)
        if not _is_loopback(args.host):
            print(f"ffseg serve: warning: listening on {args.host}: other machines can reach "
                  f"this server; it has no authentication", file=sys.stderr, flush=True)
        config = uvicorn.Config(app, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=5)
        uvicorn.Server(config).run(sockets=[sock])
        return EXIT_OK
    finally:
        sock.close()


# --------------------------------------------------------------------------
# ffseg export

_EXPORT_DESCRIPTION = """\
Converts an exported ffseg model (a SavedModel folder, a training run folder
holding export/, or a .keras file) to ONNX or TFLite for the edge. The file
serves what the SavedModel serves: uint8 face crops [N, 299, 299, 3] in
(cropped as for training: dlib, box enlarged 1.3x), "score" [N],
"localization_map" [N, 299, 299] and "class_probabilities" [N, C] out; all
preprocessing is inside. The model card (dataset, image size, classes) is
written beside it as OUTPUT.json. Nothing is overwritten.
"""

_EXPORT_EPILOG = """\
examples:
  ffseg export runs/c23/export --format onnx --output ffseg_c23.onnx
  ffseg export runs/c23/export --format tflite --output ffseg_c23.tflite
"""


def add_export_subcommand(subparsers) -> None:
    """Adds ``ffseg export`` to an ``argparse`` subparsers object."""
    from ffseg.serve.edge import FORMATS, ONNX_OPSET

    parser = subparsers.add_parser(
        "export",
        help="convert a model to ONNX or TFLite for the edge",
        description=_EXPORT_DESCRIPTION,
        epilog=_EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL",
                        help="an exported SavedModel folder, a run folder, or a .keras file")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--output", required=True, metavar="PATH",
                        help="the file to write (must not exist)")
    parser.add_argument("--opset", type=positive, default=ONNX_OPSET,
                        help=f"ONNX opset (default {ONNX_OPSET})")
    parser.set_defaults(run=_run_export)


def _run_export(args) -> int:
    from ffseg.inference.detect import capture_native_stderr
    from ffseg.serve.edge import export_edge

    def fail(message: str) -> int:
        print(f"ffseg export: {message}", file=sys.stderr, flush=True)
        return EXIT_USAGE

    if not os.path.exists(args.model):
        return fail(f"{args.model}: no such model (expected an exported SavedModel folder "
                    f"or a .keras file)")
    if os.path.lexists(args.output):
        return fail(f"{args.output}: already exists; choose another --output "
                    f"(nothing was written)")
    log: list[str] = []
    try:
        with capture_native_stderr(log):  # the converters' screenfuls
            info = export_edge(args.model, args.output, args.format, opset=args.opset)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        return fail(_first_line(error))
    except Exception as error:
        return fail(f"{args.model}: cannot convert the model to {args.format} "
                    f"({type(error).__name__}: {_first_line(error)})")
    print(f"{info['path']}: {args.format}, {info['bytes'] / 2**20:.1f} MiB; "
          f"model card {info['path']}.json", flush=True)
    return EXIT_OK
