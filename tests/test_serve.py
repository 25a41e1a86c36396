"""Tests for ``ffseg serve``: the API over real HTTP, with real files and a real model.

A tiny FFSeg (71 px, no pretrained weights, batch-norm statistics set from
real face crops so that different faces get different scores) is exported
as a SavedModel whose card says it was trained on the embedded sample, and
served by uvicorn on a free port of 127.0.0.1. Uploads are real encoded
files: the astronaut photo, a real H.264 clip of a moving face, a
face-less photo, random bytes, a text file named ``.mp4``, an empty file.
"""

import contextlib
import io
import json
import os
import socket
import threading
import time

import cv2
import httpx
import keras
import numpy as np
import pytest
import tensorflow as tf

from ffseg import cli
from ffseg.inference import detect
from ffseg.inference.export import export_saved_model
from ffseg.inference.predictors import load_predictor
from ffseg.models.ffseg_model import FFSeg
from ffseg.serve import app as serve_app
from ffseg.serve.app import ServeOptions, create_app, sniff
from ffseg.signal import faces, video
from tests import media

IMAGE_SIZE = 71
CLIP_FRAMES = 12


# --- shared helpers (also used by tests/test_serve_edge.py and the browser test) -------------


def face_crop(image, size=299):
    box = faces.face_box(faces.FaceDetector().largest(image), image.shape, 1.3)
    return faces.crop(image, box, size)


def make_model():
    """A tiny FFSeg whose batch norm has seen real crops, so that its scores differ by face."""
    keras.utils.set_random_seed(0)
    model = FFSeg(image_size=IMAGE_SIZE, backbone_weights=None)
    samples = [face_crop(media.astronaut()), face_crop(media.grace_hopper()),
               cv2.resize(media.coffee(), (299, 299), interpolation=cv2.INTER_AREA)]
    images = tf.image.resize(np.stack(samples).astype(np.float32), (IMAGE_SIZE,) * 2,
                             method="area")
    layers = [layer for layer in model._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    return model


def export_sample_model(model, path):
    """Exports ``model`` with the card a model trained on the embedded sample gets."""
    return export_saved_model(model, str(path), metadata={
        "dataset": "ffpp/sample", "class_names": ["real", "fake"]})


def write_rgb(path, image):
    assert cv2.imwrite(str(path), cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR))
    return str(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running(app, timeout=60):
    """Serves ``app`` with uvicorn on a free port of 127.0.0.1; stops it afterwards."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn stopped while starting"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "export"
    export_sample_model(make_model(), path)
    return str(path)


@pytest.fixture(scope="module")
def predictor(exported):
    return load_predictor(exported)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    paths = {
        "photo": write_rgb(folder / "astronaut.png", media.astronaut()),
        "clip": media.write_clip(folder / "clip.mp4",
                                 media.face_clip("astronaut", CLIP_FRAMES).frames),
        "no_face": write_rgb(folder / "coffee.png", media.coffee()),
        "junk": media.random_bytes(folder / "junk.bin"),
        "text": str(folder / "notes.mp4"),
        "empty": str(folder / "empty.mp4"),
    }
    with open(paths["text"], "w") as handle:
        handle.write("not a video, just some notes\n")
    open(paths["empty"], "wb").close()
    return paths


@pytest.fixture(scope="module")
def server(exported, predictor, tmp_path_factory):
    temp_dir = str(tmp_path_factory.mktemp("requests"))
    app = create_app(ServeOptions(model=exported, temp_dir=temp_dir, queue_size=0),
                     predictor=predictor)
    with running(app) as url:
        yield url, temp_dir


def _post(url, path, name=None, **params):
    with open(path, "rb") as handle:
        return httpx.post(f"{url}/api/detect", params=params, timeout=120,
                          files={"file": (name or os.path.basename(path), handle)})


def _events(url, path, name=None):
    """The JSON lines of a ``?progress=1`` upload."""
    with open(path, "rb") as handle:
        with httpx.stream("POST", f"{url}/api/detect", params={"progress": "1"}, timeout=120,
                          files={"file": (name or os.path.basename(path), handle)}) as reply:
            assert reply.status_code == 200, reply.read()
            assert reply.headers["content-type"].startswith("application/x-ndjson")
            return [json.loads(line) for line in reply.iter_lines() if line.strip()]


def _cli_reason(path, model, tmp_path):
    """The reason ``ffseg detect`` prints for ``path`` (one line on stderr)."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(["detect", path, "--model", model, "--output", str(tmp_path)])
    return status, stderr.getvalue()


# --- the API -----------------------------------------------------------------------------------


def test_health_and_model_card(server):
    url, _ = server
    health = httpx.get(f"{url}/api/health", timeout=30).json()
    assert health["status"] == "ok" and health["busy"] is False
    assert health["max_upload_bytes"] == serve_app.DEFAULT_MAX_UPLOAD_BYTES == 200 * 2**20
    card = httpx.get(f"{url}/api/model", timeout=30).json()
    assert card["dataset"] == "ffpp/sample" and card["sample_trained"] is True
    assert card["image_size"] == IMAGE_SIZE and card["crop_size"] == 299
    assert card["class_names"] == ["real", "fake"]
    assert card["exported"]  # when the export was written (no training date in this card)
    assert "mean nothing on real media" in card["warning"]
    assert "experiments.train --experiment ffpp_c23" in card["warning"]


def test_model_card_of_a_model_trained_on_ffpp_has_no_warning(exported):
    class Predictor:
        info = {"dataset": "ffpp/c23", "image_size": 299, "crop_size": 299,
                "class_names": ["real", "fake"], "trained": "2026-11-30T12:00:00+00:00"}

    card = serve_app.model_card(Predictor(), exported)
    assert card["sample_trained"] is False and card["warning"] is None
    assert card["trained"] == "2026-11-30T12:00:00+00:00"


def test_photo_gets_the_document_ffseg_detect_writes(server, files, predictor, tmp_path):
    url, temp_dir = server
    reply = _post(url, files["photo"])
    assert reply.status_code == 200, reply.text
    served = reply.json()
    expected = detect.detect_file(files["photo"], predictor, output_dir=tmp_path, name="ref")
    assert served["kind"] == "image" and served["input"] == "astronaut.png"
    assert served["verdict"] == pytest.approx(expected["verdict"])
    assert served["frames"] == expected["frames"]  # boxes, dlib scores, model scores
    for key in ("width", "height", "frame_count", "frames_scored", "detector", "box_scale",
                "crop_size", "model_info"):
        assert served[key] == expected[key], key
    # No server path goes back to the client; the overlay is a URL.
    assert "json" not in served and temp_dir not in json.dumps(served)
    assert served["overlay"].startswith("api/overlay/")
    # The sample-trained model says so in the document itself.
    assert any("mean nothing on real media" in warning for warning in served["warnings"])
    overlay = httpx.get(f"{url}/{served['overlay']}", timeout=30)
    assert overlay.headers["content-type"] == "image/png"
    drawn = cv2.imdecode(np.frombuffer(overlay.content, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(drawn, cv2.imread(expected["overlay"]))
    assert os.listdir(temp_dir) == []  # the request's folder is gone


def test_clip_streams_progress_then_the_result(server, files, predictor):
    url, temp_dir = server
    events = _events(url, files["clip"])
    kinds = [event["event"] for event in events]
    assert kinds[0] == "queued" and events[0]["ahead"] == 0
    assert kinds[1] == "started" and events[1] == {"event": "started", "kind": "video",
                                                   "total": CLIP_FRAMES}
    progress = [event["done"] for event in events if event["event"] == "progress"]
    assert progress and progress == sorted(progress) and progress[-1] == CLIP_FRAMES
    assert all(event["total"] == CLIP_FRAMES for event in events if event["event"] == "progress")
    assert kinds[-1] == "result" and kinds.count("result") == 1
    result = events[-1]["result"]
    expected = detect.detect_file(files["clip"], predictor)
    assert result["frames"] == expected["frames"]
    assert result["verdict"] == pytest.approx(expected["verdict"])
    assert result["frames_scored"] == CLIP_FRAMES
    overlay = httpx.get(f"{url}/{result['overlay']}", timeout=30)
    assert overlay.headers["content-type"] == "video/mp4"
    assert overlay.content[4:8] == b"ftyp" and b"avc1" in overlay.content[:100_000]  # H.264
    path = os.path.join(temp_dir, "..", "overlay-check.mp4")
    with open(path, "wb") as handle:
        handle.write(overlay.content)
    assert video.video_info(path)["frame_count"] == CLIP_FRAMES
    os.remove(path)
    assert os.listdir(temp_dir) == []


@pytest.mark.parametrize("key, status", [("junk", 415), ("text", 415), ("empty", 400)])
def test_non_media_is_refused_by_content(server, files, key, status):
    url, temp_dir = server
    reply = _post(url, files[key])
    assert reply.status_code == status, reply.text
    detail = reply.json()["detail"]
    name = os.path.basename(files[key])
    if key == "empty":
        # The reason `ffseg detect` gives for an empty file, word for word.
        with pytest.raises(detect.InputError) as error:
            detect.probe(files[key])
        assert detail == f"{name}: {error.value.reason}"
    else:
        assert detail.startswith(f"{name}: not a readable image or video: ")
    assert "\n" not in detail
    assert os.listdir(temp_dir) == []


def test_face_less_photo_gets_the_line_ffseg_detect_prints(server, files, tmp_path, exported):
    url, temp_dir = server
    reply = _post(url, files["no_face"])
    assert reply.status_code == 422
    # `ffseg detect` on the same file, with the same model.
    status, stderr = _cli_reason(files["no_face"], exported, tmp_path)
    assert status == 1
    # The sample-trained model is named as such on its own line first.
    warning, reason = stderr.strip().splitlines()
    assert "trained on the embedded sample dataset" in warning
    assert reason == f"ffseg detect: {files['no_face']}: " + reply.json()["detail"].split(
        ": ", 1)[1]
    assert reply.json()["detail"].startswith("coffee.png: no face found in the image")
    assert os.listdir(temp_dir) == []


def test_client_names_are_never_paths(server, files):
    url, temp_dir = server
    reply = _post(url, files["photo"], name="../../../tmp/evil.png")
    assert reply.status_code == 200
    assert reply.json()["input"] == "evil.png"
    assert not os.path.exists("/tmp/evil.png") and os.listdir(temp_dir) == []
    assert serve_app._display_name("C:\\a\\b\x07\nc.jpg") == "bc.jpg"
    assert serve_app._display_name("") == serve_app._display_name(None) == "upload"


def test_malformed_requests(server):
    url, _ = server
    reply = httpx.post(f"{url}/api/detect", content=b"raw bytes", timeout=30)
    assert reply.status_code == 400 and "multipart/form-data" in reply.json()["detail"]
    reply = httpx.post(f"{url}/api/detect", data={"other": "field"},
                       files={"notfile": ("a.png", b"x")}, timeout=30)
    assert reply.status_code == 400 and "file field named 'file'" in reply.json()["detail"]
    assert httpx.get(f"{url}/api/overlay/{'0' * 32}", timeout=30).status_code == 404
    assert httpx.get(f"{url}/api/overlay/..%2F..%2Fetc%2Fpasswd", timeout=30).status_code == 404


def test_oversized_uploads_are_refused_while_received(exported, predictor, files, tmp_path):
    limit = 100_000  # the photo is ~460 KB
    app = create_app(ServeOptions(model=exported, temp_dir=str(tmp_path), max_upload_bytes=limit),
                     predictor=predictor)
    assert os.path.getsize(files["photo"]) > limit
    with running(app) as url:
        reply = _post(url, files["photo"])
        assert reply.status_code == 413 and "upload too large" in reply.json()["detail"]

        # Without Content-Length (chunked), the count while receiving stops it.
        def chunks():
            boundary = b"--b0undary"
            yield boundary + b'\r\nContent-Disposition: form-data; name="file"; ' \
                             b'filename="big.png"\r\n\r\n'
            with open(files["photo"], "rb") as handle:
                while block := handle.read(65536):
                    yield block
            yield b"\r\n" + boundary + b"--\r\n"

        reply = httpx.post(f"{url}/api/detect", content=chunks(), timeout=60,
                           headers={"content-type": "multipart/form-data; boundary=b0undary"})
        assert reply.status_code == 413
        assert reply.json()["detail"].startswith("big.png: upload too large")
        small = write_rgb(tmp_path / "small.jpg", cv2.resize(media.astronaut(), (200, 200)))
        assert os.path.getsize(small) < limit
        assert _post(url, small).status_code in (200, 422)  # under the limit: scored
    assert [name for name in os.listdir(tmp_path) if name.startswith("ffseg-serve-")] == []


def test_two_concurrent_requests_one_waits_or_gets_503(exported, predictor, files, tmp_path):
    # queue_size 0: while one request is scored, a second one is told to come back.
    app = create_app(ServeOptions(model=exported, temp_dir=str(tmp_path), queue_size=0,
                                  retry_after_s=7), predictor=predictor)
    with running(app) as url:
        with open(files["clip"], "rb") as handle:
            with httpx.stream("POST", f"{url}/api/detect", params={"progress": "1"},
                              files={"file": ("clip.mp4", handle)}, timeout=120) as first:
                lines = first.iter_lines()
                assert json.loads(next(lines))["event"] == "queued"
                assert json.loads(next(lines))["event"] == "started"
                second = _post(url, files["photo"])
                assert second.status_code == 503
                assert second.headers["retry-after"] == "7"
                assert "busy" in second.json()["detail"]
                last = [json.loads(line) for line in lines if line.strip()][-1]
                assert last["event"] == "result"
        assert _post(url, files["photo"]).status_code == 200  # free again

    # queue_size 1: two at once are both served, one after the other.
    app = create_app(ServeOptions(model=exported, temp_dir=str(tmp_path), queue_size=1),
                     predictor=predictor)
    with running(app) as url:
        replies = {}

        def send(key):
            replies[key] = _post(url, files[key])

        threads = [threading.Thread(target=send, args=(key,)) for key in ("clip", "photo")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert {key: reply.status_code for key, reply in replies.items()} == {
            "clip": 200, "photo": 200}
        assert replies["clip"].json()["kind"] == "video"
        assert replies["photo"].json()["kind"] == "image"
        assert httpx.get(f"{url}/api/health", timeout=30).json()["served"] == 2
    assert [name for name in os.listdir(tmp_path) if name.startswith("ffseg-serve-")] == []


def test_the_page_is_self_contained(server):
    url, _ = server
    page = httpx.get(url + "/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    for asset in ("static/app.js", "static/style.css"):
        assert asset in page.text
        reply = httpx.get(f"{url}/{asset}", timeout=30)
        assert reply.status_code == 200
        assert "http://" not in reply.text and "https://" not in reply.text
    assert "http://" not in page.text and "https://" not in page.text


def test_sniff():
    assert sniff(b"\xff\xd8\xff\xe0" + bytes(12)) == ("image", ".jpg")
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == ("image", ".webp")
    assert sniff(b"RIFF\x00\x00\x00\x00AVI LIST") == ("video", ".avi")
    assert sniff(b"\x1a\x45\xdf\xa3" + bytes(12)) == ("video", ".mkv")
    assert sniff(b"\x00\x00\x00\x14ftypqt  ") == ("video", ".mov")
    packets = bytearray(400)
    packets[0] = packets[188] = packets[376] = 0x47
    assert sniff(bytes(packets)) == ("video", ".ts")
    # Text that FFmpeg would happily open (a playlist, a concat list) is not media.
    assert sniff(b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\nfile:///etc/passwd\n") is None
    assert sniff(b"ffconcat version 1.0\nfile /etc/passwd\n") is None
    assert sniff(b"") is None


# --- the command ---------------------------------------------------------------------------------


def _command(argv):
    import argparse

    from ffseg.serve.commands import add_export_subcommand, add_serve_subcommand

    parser = argparse.ArgumentParser(prog="ffseg")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_serve_subcommand(subparsers)
    add_export_subcommand(subparsers)
    args = parser.parse_args(argv)
    return args


def test_serve_command_defaults_and_usage_errors(tmp_path, capsys, exported):
    args = _command(["serve", "--model", "m"])
    assert (args.host, args.port, args.max_upload_mb, args.queue, args.frames) == (
        "127.0.0.1", 8000, 200, 4, 300)
    assert args.run(_command(["serve", "--model", str(tmp_path / "none")])) == 2
    assert capsys.readouterr().err.strip() == (
        f"ffseg serve: {tmp_path / 'none'}: no such model (expected an exported SavedModel "
        f"folder or a .keras file)")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        args = _command(["serve", "--model", exported, "--port", str(port)])
        assert args.run(args) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"ffseg serve: cannot listen on 127.0.0.1:{port} (")
    assert "\n" not in error
