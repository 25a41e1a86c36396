"""``ffseg serve``: one web page and a JSON API over the ``ffseg detect`` detector.

An ASGI application (Starlette, served by uvicorn) for analysts: upload a
photo or a video, see every face's score, the localization map over it
(paper Sec. III-D: M = 0.1 M1 + 0.2 M2 + 0.7 M3) and, for a video, the
score of every frame. Faces are found, cropped and scored by
``ffseg.inference.detect.detect_file``, exactly as ``ffseg detect`` does,
and the API returns the same document ``ffseg detect`` writes.

Routes:

- ``GET /``: the page (plain HTML, JS and CSS shipped in this package: no
  build step, nothing fetched from elsewhere, works offline);
- ``POST /api/detect``: a ``multipart/form-data`` upload with one file field
  named ``file``; returns the document (200) or ``{"detail": "NAME: REASON"}``
  with a 4xx status, REASON being the line ``ffseg detect`` prints. With
  ``?progress=1`` the answer is a stream of JSON lines instead (``queued``,
  ``started``, ``progress`` with ``done`` / ``total`` frames, then one
  ``result`` or ``error`` line), which the page reads to show progress;
- ``GET /api/overlay/{token}``: the overlay image (PNG) or video (H.264 MP4)
  named in a document's ``overlay`` field, kept in memory for a while;
- ``GET /api/health``: ``{"status": "ok", ...}`` with the queue's state;
- ``GET /api/model``: the model card (training dataset, image size,
  classes, when trained or exported) and, for a model trained on the
  embedded sample, a warning that its scores mean nothing on real media.

Safe by default:

- binds to 127.0.0.1 unless told otherwise;
- uploads are limited in size (``ServeOptions.max_upload_bytes``, 200 MiB by
  default; 413 past it, counted while receiving, whatever Content-Length
  says) and in type, sniffed from the first bytes (415 otherwise): only the
  still-image formats OpenCV decodes and the usual video containers reach a
  decoder. A file name means nothing: a text file named ``clip.mp4`` is
  refused as text. (FFmpeg's probing of arbitrary content is an attack
  surface, e.g. an HLS playlist disguised as a video makes FFmpeg open
  other files; so unknown content never reaches it);
- each request works in its own temporary folder (``upload.<ext>`` and the
  outputs, names chosen by the server), removed when the request ends; no
  path or name from the client is ever joined to a server path (the
  client's file name is only echoed back as ``input``);
- the model serves one request at a time; up to ``queue_size`` more wait in
  line, and any beyond get 503 with ``Retry-After``.

Example:

```python
import uvicorn
from ffseg.serve.app import ServeOptions, create_app

app = create_app(ServeOptions(model="runs/sample/export"))
uvicorn.run(app, host="127.0.0.1", port=8000)  # then open http://127.0.0.1:8000/
```
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from typing import Callable

from ffseg.constants import image_format
from ffseg.errors import FileError

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "SAMPLE_DATASET",
    "ServeOptions",
    "ServeError",
    "sniff",
    "model_card",
    "create_app",
]

DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024
# The dataset name a model trained on the embedded sample carries in its
# export's ffseg.json (the training config's data.dataset).
SAMPLE_DATASET = "ffpp/sample"
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

SAMPLE_WARNING = (
    "This model was trained on ffseg's embedded sample (ffpp/sample: a few synthetic clips "
    "made from three face photos), not on FaceForensics++: its scores mean nothing on real "
    "media. To train one on FF++ (c23): tfds build tfds_ffpp/ffpp --config=c23 "
    "--manual_dir=/data/FaceForensics++ --data_dir=/data/tfds; python -m experiments.train "
    "--experiment ffpp_c23 --model_dir runs/c23 --set data.data_dir=/data/tfds; then serve "
    "runs/c23/export."
)


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    """What ``ffseg serve`` serves, and its limits.

    Args:
        model: an exported SavedModel folder or a ``.keras`` file.
        max_upload_bytes: largest upload accepted (413 beyond).
        queue_size: requests that may wait while one is scored (503 beyond).
        retry_after_s: the ``Retry-After`` of a 503, in seconds.
        num_frames: frames scored per video, evenly spaced, as ``ffseg
            detect --frames`` (``None``: every frame).
        threshold: a score at or above it is labelled fake.
        batch_size: faces per model call.
        temp_dir: where the per-request folders are made (default: the
            system's temporary folder).
        overlay_ttl_s: how long an overlay stays downloadable.
        overlay_store_bytes: most bytes of overlays kept in memory; the
            oldest are dropped first.
    """

    model: str
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    queue_size: int = 4
    retry_after_s: int = 15
    num_frames: int | None = 300
    threshold: float = 0.5
    batch_size: int = 16
    temp_dir: str | None = None
    overlay_ttl_s: float = 900.0
    overlay_store_bytes: int = 256 * 1024 * 1024

    def __post_init__(self):
        if int(self.max_upload_bytes) < 1:
            raise ValueError(f"max_upload_bytes must be >= 1, got {self.max_upload_bytes}")
        if int(self.queue_size) < 0:
            raise ValueError(f"queue_size must be >= 0, got {self.queue_size}")
        if self.num_frames is not None and int(self.num_frames) < 1:
            raise ValueError(f"num_frames must be >= 1 or None, got {self.num_frames}")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")


class ServeError(Exception):
    """A request that cannot be served: an HTTP status and the one line that says why."""

    def __init__(self, status: int, detail: str, headers: dict | None = None):
        super().__init__(detail)
        self.status = int(status)
        self.detail = detail
        self.headers = dict(headers or {})


# --------------------------------------------------------------------------
# What an upload is, from its content


def sniff(head: bytes) -> tuple[str, str] | None:
    """The kind and file extension that a file's first bytes announce.

    Only still-image formats OpenCV decodes (``ffseg.constants.image_format``)
    and the common video containers pass; anything else (text, HTML,
    playlists, archives, random bytes) is ``None``.

    Args:
        head: the file's first bytes (at least 512 for MPEG-TS).

    Returns:
        ``("image", ".png")``, ``("video", ".mp4")``, ... or ``None``.

    Example:

    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8))
    ('image', '.png')
    >>> sniff(b"\\x00\\x00\\x00\\x18ftypisom")
    ('video', '.mp4')
    >>> sniff(b"just some notes") is None
    True
    """
    kind = image_format(head[:16])
    if kind is not None:
        extension = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp",
                     "TIFF": ".tif", "WebP": ".webp"}[kind]
        return "image", extension
    if head[4:8] == b"ftyp":  # ISO base media: MP4, MOV, M4V, 3GP
        return "video", (".mov" if head[8:12] == b"qt  " else ".mp4")
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska, WebM
        return "video", ".mkv"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video", ".avi"
    if head[:3] == b"FLV":
        return "video", ".flv"
    if head[:4] == b"\x00\x00\x01\xba":  # MPEG program stream
        return "video", ".mpg"
    if len(head) >= 377 and head[0] == head[188] == head[376] == 0x47:  # MPEG-TS packets
        return "video", ".ts"
    return None


def _display_name(filename: str | None) -> str:
    """The client's file name, for messages only: its last component, printable, short."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return (name[:120] or "upload")


# --------------------------------------------------------------------------
# The model card


def model_card(predictor, model_path: str) -> dict:
    """What the served model is: read from its export's ``ffseg.json``.

    Args:
        predictor: a loaded predictor (its ``info`` is the export's metadata).
        model_path: the model as given to ``ffseg serve``.

    Returns:
        ``{"name", "dataset", "image_size", "crop_size", "class_names",
        "trained", "exported", "sample_trained", "warning", "metadata"}``;
        ``sample_trained`` is true for a model whose training dataset is the
        embedded sample (``ffpp/sample``), and then ``warning`` says that its
        scores mean nothing on real media and how to train one on FF++.
    """
    info = dict(getattr(predictor, "info", {}) or {})
    dataset = info.get("dataset")
    sample = dataset == SAMPLE_DATASET or info.get("sample_trained") is True
    exported = None
    for candidate in (os.path.join(model_path, "ffseg.json"),
                      os.path.join(model_path, "saved_model.pb"), model_path):
        if os.path.exists(candidate):
            stamp = os.path.getmtime(candidate)
            exported = datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).isoformat(
                timespec="seconds")
            break
    return {
        "name": os.path.basename(os.path.normpath(model_path)),
        "dataset": dataset,
        "image_size": info.get("image_size"),
        "crop_size": info.get("crop_size", getattr(predictor, "crop_size", None)),
        "class_names": info.get("class_names"),
        "trained": info.get("trained") or info.get("trained_at"),
        "exported": exported,
        "sample_trained": bool(sample),
        "warning": SAMPLE_WARNING if sample else None,
        "metadata": info,
    }


# --------------------------------------------------------------------------
# The model's queue


class _Busy(Exception):
    pass


class _Cancelled(Exception):
    """The client went away: stop scoring its video."""


class _Scorer:
    """One model, one request at a time, a bounded line of waiting requests."""

    def __init__(self, options: ServeOptions):
        self.options = options
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ffseg-model")
        self._lock = threading.Lock()
        self._admitted = 0
        self.served = 0
        self.predictor = None

    def load(self):
        from ffseg.inference.predictors import load_predictor

        # Loaded on the model's own thread, where it will run.
        self.predictor = self._executor.submit(load_predictor, self.options.model).result()

    def admit(self) -> int:
        """Takes a place in line; returns how many are ahead. Raises _Busy when full."""
        with self._lock:
            if self._admitted >= 1 + int(self.options.queue_size):
                raise _Busy()
            self._admitted += 1
            return self._admitted - 1

    def release(self) -> None:
        with self._lock:
            self._admitted -= 1

    @property
    def waiting(self) -> int:
        with self._lock:
            return max(self._admitted - 1, 0)

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._admitted > 0

    async def run(self, function: Callable, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def close(self):
        self._executor.shutdown(wait=False, cancel_futures=True)


def _progress_detector(on_frame: Callable[[], None]):
    from ffseg.signal import faces

    class ProgressDetector(faces.FaceDetector):
        # The training detector with its default settings (same repr, same
        # crops); detect_file calls it once per scored frame, which is what
        # progress counts.
        def detect_with_scores(self, frame):
            on_frame()
            return super().detect_with_scores(frame)

    return ProgressDetector()


class _OverlayStore:
    """Overlays kept in memory for a while, by unguessable token."""

    def __init__(self, ttl_s: float, max_bytes: int):
        self._ttl, self._max = float(ttl_s), int(max_bytes)
        self._items: dict[str, tuple[float, str, bytes]] = {}
        self._lock = threading.Lock()

    def put(self, data: bytes, media_type: str) -> str:
        token = secrets.token_hex(16)
        with self._lock:
            self._items[token] = (time.monotonic(), media_type, data)
            self._expire()
        return token

    def get(self, token: str):
        with self._lock:
            self._expire()
            item = self._items.get(token)
        return None if item is None else item[1:]

    def _expire(self):
        now = time.monotonic()
        for token in [t for t, (born, _, _) in self._items.items() if now - born > self._ttl]:
            del self._items[token]
        total = sum(len(data) for _, _, data in self._items.values())
        for token in sorted(self._items, key=lambda t: self._items[t][0]):
            if total <= self._max:
                break
            total -= len(self._items.pop(token)[2])


# --------------------------------------------------------------------------
# Receiving an upload


@dataclasses.dataclass
class _Upload:
    name: str  # the client's file name, for messages only
    folder: str  # this request's own temporary folder
    path: str = ""
    kind: str = ""
    size: int = 0


_OVERHEAD = 64 * 1024  # multipart headers and boundaries around the file


async def _receive(request, upload: _Upload, limit: int) -> None:
    """Streams the ``file`` part of a multipart body into ``upload.folder``.

    The part is written to a name the server chose; its size is counted as
    it arrives (413 past ``limit``), and its kind is sniffed from its first
    bytes (415 for anything but an image or a video).
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise ServeError(400, "expected a multipart/form-data upload with one file field "
                              "named 'file'")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + _OVERHEAD:
        raise ServeError(413, f"{upload.name}: upload too large: {int(length)} bytes, the "
                              f"limit is {limit}")

    part_path = os.path.join(upload.folder, "upload.part")
    state = {"headers": {}, "field": b"", "value": b"", "file": None, "found": False,
             "size": 0, "error": None}
    handle = open(part_path, "wb")

    def on_header_field(data, start, end):
        state["field"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished():
        _, disposition = parse_options_header(state["headers"].get(b"content-disposition"))
        is_file = disposition.get(b"name") == b"file" and b"filename" in disposition
        if is_file and not state["found"]:
            state["found"] = True
            state["file"] = handle
            upload.name = _display_name(disposition[b"filename"].decode("utf-8", "replace"))
        state["headers"] = {}

    def on_part_data(data, start, end):
        if state["file"] is not None:
            state["size"] += end - start
            if state["size"] > limit:
                raise ServeError(413, f"{upload.name}: upload too large: more than {limit} "
                                      f"bytes, the limit")
            state["file"].write(data[start:end])

    def on_part_end():
        state["file"] = None

    parser = MultipartParser(params[b"boundary"], {
        "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_part_end": on_part_end,
    })
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit + _OVERHEAD:
                raise ServeError(413, f"{upload.name}: upload too large: more than {limit} "
                                      f"bytes, the limit")
            try:
                parser.write(chunk)
            except ServeError:
                raise
            except Exception as error:  # python-multipart's own parse errors
                raise ServeError(400, f"malformed multipart upload ({error})") from None
        parser.finalize()
    finally:
        handle.close()
    if not state["found"]:
        raise ServeError(400, "no file in the upload (expected a file field named 'file')")
    upload.size = state["size"]
    if upload.size == 0:
        raise ServeError(400, f"{upload.name}: file is empty (0 bytes)")
    with open(part_path, "rb") as part:
        head = part.read(512)
    sniffed = sniff(head)
    if sniffed is None:
        raise ServeError(415, f"{upload.name}: not a readable image or video: its content is "
                              f"neither a known image format nor a known video container")
    upload.kind, extension = sniffed
    upload.path = os.path.join(upload.folder, "upload" + extension)
    os.replace(part_path, upload.path)


# --------------------------------------------------------------------------
# Scoring one upload (on the model's thread)


def _reason(error: BaseException, upload: _Upload) -> tuple[int, str]:
    """The HTTP status and the line ``ffseg detect`` prints for ``error``,
    naming the client's file instead of the server's."""
    from ffseg.signal import faces

    if isinstance(error, FileError):
        status = 422
        reason = error.reason
        if error.path is not None and os.path.abspath(error.path) != os.path.abspath(upload.path):
            status, reason = 500, f"the server could not write its results ({error.reason})"
        if isinstance(error, faces.NoFaceError):
            status = 422
    else:
        lines = str(error).strip().splitlines()
        status, reason = 500, f"{type(error).__name__}: {lines[0] if lines else ''}"
    reason = reason.replace(upload.path, upload.name).replace(upload.folder, "<request>")
    return status, f"{upload.name}: {reason}"


def _frames_expected(upload: _Upload, num_frames) -> int | None:
    if upload.kind == "image":
        return 1
    from ffseg.signal import video

    try:
        count = int(video.video_info(upload.path, exact=False).get("frame_count") or 0)
    except Exception:  # detect_file says what is wrong with it
        return None
    if count <= 0:
        return None
    return count if num_frames is None else min(count, int(num_frames))


def _score(scorer: _Scorer, store: _OverlayStore, card: dict, upload: _Upload,
           emit: Callable[[dict], None], cancelled: threading.Event) -> dict:
    """Runs ``detect_file`` on one upload; returns the document as the API serves it."""
    from ffseg.inference import detect

    options = scorer.options
    total = _frames_expected(upload, options.num_frames)
    emit({"event": "started", "kind": upload.kind, "total": total})
    done, last = 0, 0.0

    def on_frame():
        nonlocal done, last
        if cancelled.is_set():
            raise _Cancelled()
        done += 1
        now = time.monotonic()
        if now - last >= 0.1 or (total is not None and done >= total):
            last = now
            emit({"event": "progress", "done": done if total is None else min(done, total),
                  "total": total})

    # (Native decoders' complaints are quieted once for the whole server by
    # ``ffseg serve``; capturing fd 2 here would hide the server's own log
    # for as long as a video is scored.)
    result = detect.detect_file(
        upload.path, scorer.predictor, _progress_detector(on_frame),
        output_dir=os.path.join(upload.folder, "out"), name="result",
        num_frames=options.num_frames, threshold=options.threshold,
        batch_size=options.batch_size,
    )
    scorer.served += 1
    # The document ``ffseg detect`` writes, with the server's paths replaced:
    # the client's file name for the input, a URL for the overlay.
    result["input"] = upload.name
    result["model"] = card["name"]
    result.pop("json", None)
    overlay_path = result.pop("overlay", None)
    if overlay_path:
        with open(overlay_path, "rb") as handle:
            data = handle.read()
        media_type = "video/mp4" if overlay_path.endswith(".mp4") else "image/png"
        result["overlay"] = f"api/overlay/{store.put(data, media_type)}"
    warnings = list(result.get("warnings") or [])
    if card["warning"] and not any(SAMPLE_DATASET in str(w) for w in warnings):
        warnings.append(card["warning"])
    result["warnings"] = warnings
    return result


# --------------------------------------------------------------------------
# The application


_SECURITY_HEADERS = {
    # Nothing on the page comes from elsewhere; overlays are shown from blob: URLs.
    "content-security-policy": "default-src 'self'; img-src 'self' blob: data:; "
                               "media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def create_app(options: ServeOptions, *, predictor=None):
    """The Starlette application serving ``options.model``.

    Args:
        options: see ``ServeOptions``.
        predictor: an already loaded predictor for ``options.model`` (tests,
            benchmarks); by default it is loaded here.

    Returns:
        An ASGI application; run it with ``uvicorn.run(app, host=..., port=...)``.
    """
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    scorer = _Scorer(options)
    if predictor is None:
        scorer.load()
    else:
        scorer.predictor = predictor
    card = model_card(scorer.predictor, options.model)
    store = _OverlayStore(options.overlay_ttl_s, options.overlay_store_bytes)
    if options.temp_dir is not None:
        os.makedirs(options.temp_dir, exist_ok=True)

    def error_response(error: ServeError):
        return JSONResponse({"detail": error.detail}, status_code=error.status,
                            headers=error.headers)

    def busy_error():
        return ServeError(503, f"the model is busy ({scorer.waiting} request(s) waiting); "
                               f"try again in {options.retry_after_s} s",
                          {"Retry-After": str(int(options.retry_after_s))})

    async def index(request):
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), media_type="text/html")

    async def health(request):
        return JSONResponse({"status": "ok", "busy": scorer.busy, "waiting": scorer.waiting,
                             "queue_size": options.queue_size, "served": scorer.served,
                             "max_upload_bytes": options.max_upload_bytes})

    async def model(request):
        return JSONResponse(card)

    async def overlay(request):
        token = request.path_params["token"]
        item = store.get(token) if re.fullmatch(r"[0-9a-f]{32}", token) else None
        if item is None:
            return JSONResponse({"detail": "no such overlay (it expires after "
                                           f"{int(options.overlay_ttl_s)} s)"}, status_code=404)
        media_type, data = item
        return Response(data, media_type=media_type, headers={"cache-control": "no-store"})

    async def detect_route(request):
        streaming = request.query_params.get("progress") in ("1", "true", "yes")
        try:
            ahead = scorer.admit()
        except _Busy:
            return error_response(busy_error())
        upload = _Upload(name="upload", folder=tempfile.mkdtemp(prefix="ffseg-serve-",
                                                                dir=options.temp_dir))
        handed_over = False
        try:
            try:
                await _receive(request, upload, int(options.max_upload_bytes))
            except ServeError as error:
                return error_response(error)
            cancelled = threading.Event()
            if not streaming:
                handed_over = True
                outcome = await scorer.run(_job, upload, lambda event: None, cancelled)
                if outcome["event"] == "result":
                    return JSONResponse(outcome["result"])
                return JSONResponse({"detail": outcome["detail"]}, status_code=outcome["status"])
            # The job starts now, whether or not the client reads its events:
            # it cleans up after itself when it ends.
            loop = asyncio.get_running_loop()
            events: asyncio.Queue = asyncio.Queue()

            def emit(event):
                loop.call_soon_threadsafe(events.put_nowait, event)

            future = asyncio.ensure_future(scorer.run(_job, upload, emit, cancelled))
            handed_over = True
            return StreamingResponse(_events(events, future, ahead, cancelled),
                                     media_type="application/x-ndjson",
                                     headers={"cache-control": "no-store"})
        finally:
            if not handed_over:
                _finish(upload)

    def _finish(upload: _Upload) -> None:
        shutil.rmtree(upload.folder, ignore_errors=True)
        scorer.release()

    def _job(upload: _Upload, emit, cancelled) -> dict:
        """Scores and cleans up, on the model's thread; never raises."""
        try:
            result = _score(scorer, store, card, upload, emit, cancelled)
            return {"event": "result", "status": 200, "result": result}
        except _Cancelled:
            return {"event": "error", "status": 499, "detail": f"{upload.name}: cancelled"}
        except Exception as error:
            status, detail = _reason(error, upload)
            return {"event": "error", "status": status, "detail": detail}
        finally:
            _finish(upload)

    async def _events(events: asyncio.Queue, future, ahead: int, cancelled: threading.Event):
        try:
            yield json.dumps({"event": "queued", "ahead": ahead}) + "\n"
            while True:
                getter = asyncio.ensure_future(events.get())
                await asyncio.wait({getter, future}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield json.dumps(getter.result()) + "\n"
                    continue
                getter.cancel()
                while not events.empty():
                    yield json.dumps(events.get_nowait()) + "\n"
                yield json.dumps(future.result()) + "\n"
                return
        finally:
            # The client left (or the stream ended): stop scoring its frames.
            cancelled.set()

    async def security_headers(scope, receive, send, app):
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in _SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_with_headers)

    routes = [
        Route("/", index),
        Route("/api/health", health),
        Route("/api/model", model),
        Route("/api/detect", detect_route, methods=["POST"]),
        Route("/api/overlay/{token}", overlay),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(_):
        yield
        scorer.close()

    inner = Starlette(routes=routes, lifespan=lifespan)
    inner.state.scorer = scorer
    inner.state.card = card

    async def app(scope, receive, send):
        if scope["type"] == "http":
            await security_headers(scope, receive, send, inner)
        else:
            await inner(scope, receive, send)

    app.state = inner.state  # tests and benchmarks look at the queue and the card
    return app
