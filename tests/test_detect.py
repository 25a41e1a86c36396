"""Tests for ffseg.inference.detect and ``ffseg detect``: a real exported model on real faces.

A tiny FFSeg (71 px input, no pretrained weights) is exported as a SavedModel
and loaded back, exactly what a user's ``--model`` folder holds. Untrained,
its batch-norm statistics are those of an empty network and every score
comes out at exactly 0.5, which would let a test that mixes up faces or
frames pass; so its batch-norm statistics are first set from real crops (one
forward pass in training mode with momentum 0), after which different faces
get different scores and non-trivial maps.
"""

import contextlib
import io
import json
import os
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from ffseg import cli
from ffseg.inference import detect, outputs
from ffseg.inference.export import export_saved_model
from ffseg.inference.predictors import load_predictor
from ffseg.models.ffseg_model import FFSeg
from ffseg.signal import faces, video
from tests import media

IMAGE_SIZE = 71
CLIP_FRAMES = 12


def _recalibrate_batch_norm(model, images):
    media.recalibrate_batch_norm(model, images)


def _face_crop(image, size=299):
    box = faces.face_box(faces.FaceDetector().largest(image), image.shape, 1.3)
    return faces.crop(image, box, size)


def _write_rgb(path, image):
    assert cv2.imwrite(str(path), cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR))
    return str(path)


@pytest.fixture(scope="module")
def model_and_export(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = FFSeg(image_size=IMAGE_SIZE, backbone_weights=None)
    samples = [_face_crop(media.astronaut()), _face_crop(media.grace_hopper()),
               cv2.resize(media.coffee(), (299, 299), interpolation=cv2.INTER_AREA)]
    images = tf.image.resize(np.stack(samples).astype(np.float32), (IMAGE_SIZE,) * 2,
                             method="area")
    _recalibrate_batch_norm(model, images)
    path = str(tmp_path_factory.mktemp("model") / "export")
    export_saved_model(model, path)
    return model, path


@pytest.fixture(scope="module")
def predictor(model_and_export):
    return load_predictor(model_and_export[1])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Good and bad inputs, as files."""
    folder = tmp_path_factory.mktemp("inputs")
    clip = media.face_clip("astronaut", CLIP_FRAMES)
    paths = {
        "photo": _write_rgb(folder / "astronaut.png", media.astronaut()),
        "clip": media.write_clip(folder / "clip.mp4", clip.frames),
        "no_face": _write_rgb(folder / "coffee.png", media.coffee()),
        "corrupt": media.random_bytes(folder / "corrupt.mp4"),
        "text": str(folder / "notes.jpg"),
    }
    with open(paths["text"], "w") as handle:
        handle.write("not a picture, just some notes\n")
    return paths, clip


@pytest.fixture(scope="module")
def cli_run(model_and_export, inputs, tmp_path_factory):
    """One ``ffseg detect`` run over good and bad inputs together."""
    paths, _ = inputs
    output = str(tmp_path_factory.mktemp("results"))
    order = ["photo", "no_face", "clip", "corrupt", "text"]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = cli.main(
            ["detect", *(paths[key] for key in order), "--model", model_and_export[1],
             "--output", output]
        )
    return status, stdout.getvalue(), stderr.getvalue(), output


def _load(output, name):
    with open(os.path.join(output, name + ".json")) as handle:
        return json.load(handle)


def _box_centre(box):
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


# --- the served model, independently of detect -----------------------------


def test_saved_model_signature_on_real_face_crops(model_and_export):
    model, path = model_and_export
    crops = np.stack([_face_crop(media.astronaut()), _face_crop(media.grace_hopper())])
    signature = tf.saved_model.load(path).signatures["serving_default"]
    out = signature(faces=tf.constant(crops))
    assert out["score"].shape == (2,)
    assert out["localization_map"].shape == (2, 299, 299)
    assert out["class_probabilities"].shape == (2, 2)
    score = out["score"].numpy()
    maps = out["localization_map"].numpy()
    assert np.all((score >= 0) & (score <= 1)) and np.all((maps >= 0) & (maps <= 1))
    assert abs(score[0] - score[1]) > 1e-3, "two different faces got the same score"
    # The graph does the preprocessing: the Keras model on area-resized crops agrees.
    expected = model(tf.image.resize(crops.astype(np.float32), (IMAGE_SIZE,) * 2,
                                     method="area"), training=False)
    np.testing.assert_allclose(score, expected["score"].numpy(), atol=1e-5)
    expected_map = tf.image.resize(expected["localization_map"], (299, 299)).numpy()[..., 0]
    np.testing.assert_allclose(maps, np.clip(expected_map, 0, 1), atol=1e-4)


# --- the command line, end to end -------------------------------------------


def test_cli_reports_each_bad_input_in_one_line_and_exits_1(cli_run, inputs):
    status, stdout, stderr, _ = cli_run
    paths, _ = inputs
    assert status == 1
    lines = stderr.splitlines()
    assert len(lines) == 3, stderr
    expected = {
        "no_face": "no face found in the image",
        "corrupt": "not a readable image or video",
        "text": "not a readable image or video",
    }
    for key, reason in expected.items():
        (line,) = [line for line in lines if line.startswith(f"ffseg detect: {paths[key]}: ")]
        assert reason in line, line
    # The good inputs were processed, before and after the bad ones.
    assert stdout.count("\n") == 2
    assert paths["photo"] in stdout and paths["clip"] in stdout


def test_console_script_prints_nothing_but_its_own_lines(model_and_export, inputs, tmp_path):
    # In a process of its own, TensorFlow's import banner and FFmpeg's and
    # libjpeg's complaints go straight to file descriptor 2: none may show.
    paths, _ = inputs
    script = os.path.join(os.path.dirname(sys.executable), "ffseg")
    command = [script] if os.path.exists(script) else [sys.executable, "-m", "ffseg.cli"]
    done = subprocess.run(
        [*command, "detect", paths["photo"], paths["corrupt"], paths["text"],
         "--model", model_and_export[1], "--output", str(tmp_path), "--no-overlay"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    for line, key in zip(lines, ["corrupt", "text"]):
        assert line.startswith(f"ffseg detect: {paths[key]}: not a readable image or video: ")
    assert done.stdout.startswith(f"{paths['photo']}: image, 1 face; ")
    assert sorted(os.listdir(tmp_path)) == ["astronaut.json"]


def test_cli_writes_outputs_only_for_good_inputs(cli_run):
    output = cli_run[3]
    assert sorted(os.listdir(output)) == [
        "astronaut.json", "astronaut.png", "clip.json", "clip.mp4"
    ]


def test_image_json(cli_run, inputs, predictor, model_and_export):
    paths, _ = inputs
    result = _load(cli_run[3], "astronaut")
    assert result["input"] == os.path.abspath(paths["photo"])
    assert result["kind"] == "image"
    assert result["model"] == os.path.abspath(model_and_export[1])
    assert (result["width"], result["height"]) == (512, 512)
    assert result["frames_scored"] == 1 and len(result["frames"]) == 1
    (face,) = result["frames"][0]["faces"]
    assert face["largest"] is True
    assert face["detection_score"] > 1.0  # dlib's confidence in a clear frontal face
    # Eileen Collins' face: centred near (223, 127) in the 512x512 photo.
    x, y = _box_centre(face["box"])
    assert 205 < x < 240 and 110 < y < 145, face
    x0, y0, x1, y1 = face["box"]
    assert x1 - x0 == y1 - y0  # the 1.3x square crop box
    left, top, right, bottom = face["face"]
    assert x1 - x0 == round(1.3 * max(right - left, bottom - top))
    # The score is the model's score of the training crop of that box.
    crop = faces.crop(media.astronaut(), face["box"], 299)
    expected = predictor.predict(crop[None])["score"][0]
    assert face["score"] == pytest.approx(float(expected), abs=1e-6)
    assert 0 <= face["score"] <= 1
    assert result["verdict"]["score"] == pytest.approx(face["score"])
    assert result["verdict"]["label"] == ("fake" if face["score"] >= 0.5 else "real")
    assert result["detector"] == repr(faces.FaceDetector())


def test_image_overlay_blends_the_map_into_the_box_only(cli_run, predictor):
    result = _load(cli_run[3], "astronaut")
    drawn = cv2.imread(os.path.join(cli_run[3], "astronaut.png"))[:, :, ::-1]
    photo = media.astronaut()
    assert drawn.shape == photo.shape
    (face,) = result["frames"][0]["faces"]
    x0, y0, x1, y1 = face["box"]
    # Far from the box (and its label) the photo is untouched.
    np.testing.assert_array_equal(drawn[y1 + 40:, :], photo[y1 + 40:, :])
    np.testing.assert_array_equal(drawn[:, x1 + 40:], photo[:, x1 + 40:])
    # Inside the box: the photo blended with the JET-coloured map, the right way up.
    manipulation = predictor.predict(faces.crop(photo, face["box"], 299)[None])[
        "localization_map"][0]
    heat = cv2.applyColorMap(np.clip(manipulation * 255 + 0.5, 0, 255).astype(np.uint8),
                             cv2.COLORMAP_JET)[:, :, ::-1]
    heat = cv2.resize(heat, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    expected = 0.55 * photo[y0:y1, x0:x1] + 0.45 * heat
    inner = (slice(6, -6), slice(6, -6))  # inside the drawn box lines
    difference = np.abs(drawn[y0:y1, x0:x1][inner].astype(float) - expected[inner])
    assert difference.max() <= 1.0
    assert np.abs(drawn[y0:y1, x0:x1][inner].astype(float)
                  - photo[y0:y1, x0:x1][inner]).mean() > 10


def test_video_json(cli_run, inputs):
    paths, clip = inputs
    result = _load(cli_run[3], "clip")
    assert result["kind"] == "video"
    assert (result["width"], result["height"]) == (640, 480)
    assert result["frame_count"] == CLIP_FRAMES
    assert result["frames_scored"] == CLIP_FRAMES
    assert result["frames_without_face"] == 0
    assert [frame["index"] for frame in result["frames"]] == list(range(CLIP_FRAMES))
    largest_scores = []
    for frame, truth in zip(result["frames"], clip.face_boxes):
        (face,) = frame["faces"]
        assert face["largest"] and 0 <= face["score"] <= 1
        # The box sits on the moving face.
        x, y = _box_centre(face["box"])
        tx, ty = _box_centre(truth)
        assert abs(x - tx) < 15 and abs(y - ty) < 15, (frame["index"], face["box"], truth)
        largest_scores.append(face["score"])
    verdict = result["verdict"]
    assert verdict["score"] == pytest.approx(np.mean(largest_scores))
    assert verdict["label"] == ("fake" if verdict["score"] >= 0.5 else "real")
    assert verdict["threshold"] == 0.5


def test_video_overlay_is_a_decodable_video_of_every_frame(cli_run, inputs):
    _, clip = inputs
    result = _load(cli_run[3], "clip")
    overlay_path = os.path.join(cli_run[3], "clip.mp4")
    info = video.video_info(overlay_path)
    assert (info["frame_count"], info["width"], info["height"]) == (CLIP_FRAMES, 640, 480)
    assert info["fps"] == pytest.approx(25)
    indices, frames = video.sample_frames(overlay_path, 3)
    for index, drawn in zip(indices, frames):
        x0, y0, x1, y1 = result["frames"][index]["faces"][0]["box"]
        original = clip.frames[index].astype(float)
        inside = np.abs(drawn[y0 + 6:y1 - 6, x0 + 6:x1 - 6] - original[y0 + 6:y1 - 6,
                                                                       x0 + 6:x1 - 6])
        assert inside.mean() > 10  # the heatmap is there
        below = np.abs(drawn[y1 + 20:] - original[y1 + 20:])
        assert below.mean() < 3  # elsewhere only x264's loss


def test_cli_usage_errors_exit_2(tmp_path, inputs, capsys):
    paths, _ = inputs
    assert cli.main(["detect", paths["photo"], "--model", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"ffseg detect: {tmp_path / 'nothing'}: no such model (expected an exported "
        f"SavedModel folder or a .keras file)"
    )
    (tmp_path / "empty_model").mkdir()
    assert cli.main(["detect", paths["photo"], "--model", str(tmp_path / "empty_model")]) == 2
    assert "no saved_model.pb" in capsys.readouterr().err
    assert cli.main(["detect", paths["photo"], "--model", "m", "--frames", "0"]) == 2
    assert "--frames" in capsys.readouterr().err
    assert cli.main(["detect", "--model", "m"]) == 2
    assert cli.main([]) == 2
    assert cli.main(["detect", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "exit status" in help_text and "300" in help_text


def test_keras_file_and_saved_model_give_the_same_result(model_and_export, predictor,
                                                         inputs, tmp_path):
    # Training saves .keras files; `--model` takes either form.
    model, _ = model_and_export
    keras_path = str(tmp_path / "model.keras")
    model.save(keras_path)
    paths, _ = inputs
    from_keras = detect.detect_file(paths["photo"], load_predictor(keras_path))
    from_export = detect.detect_file(paths["photo"], predictor)
    (face,) = from_keras["frames"][0]["faces"]
    (served,) = from_export["frames"][0]["faces"]
    assert face["box"] == served["box"]
    assert face["score"] == pytest.approx(served["score"], abs=1e-5)


def test_output_names_are_unique(tmp_path):
    plans = outputs.plan_outputs(["a/x.png", "b/x.mp4", "x", "c/y.jpg"], tmp_path)
    assert [plan.name for plan in plans] == ["x", "x-2", "x-3", "y"]
    assert plans[1].json == str(tmp_path / "x-2.json")
    assert plans[1].targets() == tuple(str(tmp_path / f"x-2{ext}")
                                       for ext in (".json", ".png", ".mp4"))


# --- the library --------------------------------------------------------------


def test_sampled_frames_are_the_training_frames(inputs, predictor, tmp_path):
    paths, _ = inputs
    overlay_path = tmp_path / "sampled.mp4"
    result = detect.detect_video(paths["clip"], predictor, num_frames=5,
                                 overlay_path=overlay_path)
    expected = video.sample_indices(CLIP_FRAMES, 5).tolist()
    assert [frame["index"] for frame in result["frames"]] == expected
    assert result["frame_count"] == CLIP_FRAMES and result["frames_scored"] == 5
    assert video.video_info(overlay_path)["frame_count"] == 5


def test_container_overstating_its_frame_count(inputs, predictor, tmp_path):
    # Stream-copied into AVI, the container claims far more frames than exist.
    paths, _ = inputs
    avi = media.remux(paths["clip"], tmp_path / "clip.avi")
    assert video.video_info(avi, exact=False)["frame_count"] > CLIP_FRAMES
    result = detect.detect_video(avi, predictor, num_frames=5)
    assert [f["index"] for f in result["frames"]] == video.sample_indices(CLIP_FRAMES, 5).tolist()
    assert result["frame_count"] == CLIP_FRAMES


@pytest.mark.parametrize("num_frames", [5, 10])
def test_container_understating_its_frame_count(inputs, predictor, monkeypatch, num_frames):
    paths, _ = inputs
    monkeypatch.setattr(video, "_reported_count", lambda capture: 8)
    result = detect.detect_video(paths["clip"], predictor, num_frames=num_frames)
    expected = video.sample_indices(CLIP_FRAMES, num_frames).tolist()
    assert [f["index"] for f in result["frames"]] == expected
    assert result["frame_count"] == CLIP_FRAMES


def test_batching_keeps_scores_with_their_frames(cli_run, inputs, predictor):
    paths, _ = inputs
    whole = _load(cli_run[3], "clip")  # batches of 16: one model call
    timings = {}
    result = detect.detect_video(paths["clip"], predictor, batch_size=5, timings=timings)
    scores = [frame["faces"][0]["score"] for frame in result["frames"]]
    np.testing.assert_allclose(
        scores, [frame["faces"][0]["score"] for frame in whole["frames"]], atol=1e-6
    )
    assert np.ptp(scores) > 0  # frames differ, so a shifted batch would show
    assert {"decode", "detect", "model"} <= set(timings)


def test_every_face_is_scored_and_the_largest_marked(predictor, tmp_path):
    canvas = media.background(480, 640)
    canvas[60:320, 360:620] = media.astronaut()[40:300, 100:360]  # face ~88 px, right
    hopper = cv2.resize(media.grace_hopper()[60:420, 100:420], (240, 270),
                        interpolation=cv2.INTER_AREA)
    canvas[100:370, 40:280] = hopper  # face ~150 px, left
    path = _write_rgb(tmp_path / "two.png", canvas)
    result = detect.detect_image(path, predictor, overlay_path=tmp_path / "two_overlay.png")
    found = result["frames"][0]["faces"]
    assert len(found) == 2
    areas = [(f["face"][2] - f["face"][0]) * (f["face"][3] - f["face"][1]) for f in found]
    assert [f["largest"] for f in found] == [a == max(areas) for a in areas]
    largest = found[int(np.argmax(areas))]
    assert _box_centre(largest["box"])[0] < 320  # Grace Hopper, on the left
    assert result["verdict"]["score"] == pytest.approx(largest["score"])
    assert abs(found[0]["score"] - found[1]["score"]) > 1e-4
    assert cv2.imread(str(tmp_path / "two_overlay.png")).shape == canvas.shape


def test_frames_without_a_face_are_counted_not_scored(predictor, tmp_path):
    clip = media.face_clip("astronaut", 8, blank_frames=(2, 3, 7))
    path = media.write_clip(tmp_path / "gaps.mp4", clip.frames)
    result = detect.detect_video(path, predictor, overlay_path=tmp_path / "gaps_overlay.mp4")
    assert result["frames_scored"] == 8 and result["frames_without_face"] == 3
    assert [len(frame["faces"]) for frame in result["frames"]] == [1, 1, 0, 0, 1, 1, 1, 0]
    scores = [frame["faces"][0]["score"] for frame in result["frames"] if frame["faces"]]
    assert result["verdict"]["score"] == pytest.approx(np.mean(scores))
    assert video.video_info(tmp_path / "gaps_overlay.mp4")["frame_count"] == 8


def test_video_without_a_face_fails_and_leaves_no_overlay(predictor, tmp_path):
    path = media.write_clip(tmp_path / "cup.mp4", media.still_clip(media.coffee(), 4))
    overlay_path = tmp_path / "cup_overlay.mp4"
    with pytest.raises(faces.NoFaceError, match="no face found in any of 4 scored frames"):
        detect.detect_video(path, predictor, overlay_path=overlay_path)
    assert not overlay_path.exists()


def test_truncated_video_fails_and_leaves_nothing(inputs, predictor, tmp_path):
    paths, _ = inputs
    broken = media.truncate(paths["clip"], tmp_path / "broken.mp4", 0.6)
    output = tmp_path / "out"
    with pytest.raises(detect.InputError, match="broken.mp4: not a readable image or video"):
        detect.detect_file(broken, predictor, output_dir=output)
    assert not output.exists() or not os.listdir(output)


def test_probe_and_input_errors(inputs, tmp_path):
    paths, _ = inputs
    assert detect.probe(paths["photo"])[0] == "image"
    kind, info, _ = detect.probe(paths["clip"])
    assert kind == "video" and info["frame_count"] == CLIP_FRAMES
    (tmp_path / "empty.png").write_bytes(b"")
    for path, reason in [
        (tmp_path / "missing.mp4", "file not found"),
        (tmp_path / "empty.png", "file is empty"),
        (tmp_path, "is a folder"),
    ]:
        with pytest.raises(detect.InputError, match=reason):
            detect.probe(path)


def test_truncated_png_is_named_as_a_broken_image(tmp_path):
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(media.astronaut()))
    assert ok
    path = tmp_path / "cut.png"
    path.write_bytes(encoded.tobytes()[:3000])
    with pytest.raises(detect.InputError, match="a PNG image that OpenCV cannot decode"):
        detect.probe(path)


def test_truncated_jpeg_is_read_with_a_warning(tmp_path):
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(media.astronaut()[:, :, ::-1]))
    assert ok
    path = tmp_path / "cut.jpg"
    path.write_bytes(encoded.tobytes()[: len(encoded) * 2 // 3])
    kind, image, warnings = detect.probe(path)
    assert kind == "image" and image.shape == (512, 512, 3)
    assert any("JPEG" in line for line in warnings)


def test_overlay_draws_the_map_the_right_way_round():
    frame = np.full((200, 300, 3), 128, np.uint8)
    manipulation = np.zeros((299, 299), np.float32)
    manipulation[:, :150] = 1.0  # left half manipulated
    record = {"box": [100, 50, 200, 150], "score": 0.9, "largest": True}
    drawn = detect.overlay(frame, [record], [manipulation], alpha=0.5)
    assert drawn is not frame and frame.max() == 128  # the input is untouched
    left = drawn[80:120, 110:140].astype(int).mean(axis=(0, 1))
    right = drawn[80:120, 160:190].astype(int).mean(axis=(0, 1))
    assert left[0] > left[2] + 40  # red over the manipulated half
    assert right[2] > right[0] + 40  # blue over the pristine half
    np.testing.assert_array_equal(drawn[160:, :], frame[160:, :])
    assert tuple(drawn[100, 100]) == (230, 40, 40)  # box edge: red, score >= threshold


# --- inputs a new user brings ---------------------------------------------------


def test_animated_images_are_scored_as_videos(predictor, tmp_path):
    from PIL import Image

    clip = media.face_clip("astronaut", 4)
    pictures = [Image.fromarray(frame) for frame in clip.frames]
    gif = tmp_path / "anim.gif"
    pictures[0].save(gif, save_all=True, append_images=pictures[1:], duration=40)
    result = detect.detect_file(gif, predictor, output_dir=tmp_path / "out")
    assert result["kind"] == "video" and result["frames_scored"] == 4
    assert result["frames_without_face"] == 0
    # FFmpeg cannot play a multi-page TIFF: its first page is scored, with a warning.
    tiff = tmp_path / "pages.tiff"
    pictures[0].save(tiff, save_all=True, append_images=pictures[1:])
    kind, image, warnings = detect.probe(tiff)
    assert kind == "image" and image.shape == (480, 640, 3)
    assert warnings == ["the file holds 4 images; only the first was scored"]


def test_image_formats_decode_to_rgb(tmp_path):
    from PIL import Image

    photo = media.astronaut()
    files = {
        "alpha.png": Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])),
        "gray.jpg": Image.fromarray(photo).convert("L"),
        "cmyk.jpg": Image.fromarray(photo).convert("CMYK"),
        "palette.png": Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE),
    }
    for name, picture in files.items():
        picture.save(tmp_path / name, quality=95)
    assert cv2.imwrite(str(tmp_path / "deep.png"), photo[:, :, ::-1].astype(np.uint16) * 257)
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(int)
    for name in [*files, "deep.png"]:
        kind, image, _ = detect.probe(tmp_path / name)
        assert kind == "image" and image.shape == (512, 512, 3) and image.dtype == np.uint8
        if name == "gray.jpg":
            assert np.abs(image[..., 0].astype(int) - gray).mean() < 3
        else:
            assert np.abs(image.astype(int) - photo).mean() < 12, name


def test_no_face_in_an_image_says_which_faces_are_too_small(predictor, tmp_path):
    # A 2000x1000 photo searched at 640x320: faces under ~250 px go unseen.
    path = _write_rgb(tmp_path / "wide.png", cv2.resize(media.coffee(), (2000, 1000)))
    with pytest.raises(faces.NoFaceError) as info:
        detect.detect_image(path, predictor)
    assert info.value.reason == (
        "no face found in the image (faces smaller than about 250 px are not detected in a "
        "2000x1000 frame)"
    )


def test_paths_with_spaces_and_non_ascii_characters(model_and_export, inputs, tmp_path):
    import shutil

    paths, _ = inputs
    folder = tmp_path / "vidéos 中文"
    folder.mkdir()
    photo = shutil.copy(paths["photo"], folder / "photo é.png")
    clip = shutil.copy(paths["clip"], folder / "clip 中文.mp4")
    output = folder / "résultats"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = cli.main(["detect", str(photo), str(clip), "--model", model_and_export[1],
                           "--output", str(output)])
    assert status == 0, stdout.getvalue()
    assert _load(str(output), "photo é")["input"] == str(photo)
    assert _load(str(output), "clip 中文")["frames_scored"] == CLIP_FRAMES
    assert video.video_info(output / "clip 中文.mp4")["frame_count"] == CLIP_FRAMES


# --- outputs never replace anything --------------------------------------------


def _digest(path):
    import hashlib

    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_detect_into_the_inputs_folder_replaces_nothing(model_and_export, inputs, tmp_path):
    # The reported trap: talk.mkv's overlay went to talk.mp4, an input not
    # yet read, which was then scored as itself; portrait.json, an earlier
    # result, was replaced silently.
    import shutil

    paths, _ = inputs
    folder = tmp_path / "ow"
    folder.mkdir()
    media.remux(paths["clip"], folder / "talk.mkv")
    shutil.copy(paths["clip"], folder / "talk.mp4")
    shutil.copy(paths["photo"], folder / "portrait.png")
    (folder / "portrait.json").write_text('{"earlier": "result"}\n')
    before = {name: _digest(folder / name) for name in os.listdir(folder)}
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = cli.main(["detect", str(folder / "talk.mkv"), str(folder / "talk.mp4"),
                           str(folder / "portrait.png"), "--model", model_and_export[1],
                           "--output", str(folder)])
    assert status == 0, stderr.getvalue()
    assert {name: _digest(folder / name) for name in before} == before
    assert sorted(set(os.listdir(folder)) - set(before)) == [
        "portrait-2.json", "portrait-2.png", "talk-2.json", "talk-2.mp4",
        "talk-3.json", "talk-3.mp4",
    ]
    assert _load(str(folder), "talk-2")["input"] == str(folder / "talk.mkv")
    assert _load(str(folder), "talk-3")["input"] == str(folder / "talk.mp4")
    assert _load(str(folder), "talk-3")["overlay"] == str(folder / "talk-3.mp4")
    for name in ("talk-2", "talk-3"):
        assert _load(str(folder), name)["frames_scored"] == CLIP_FRAMES
    assert f"-> {folder / 'portrait-2.json'}" in stdout.getvalue()

    # --overwrite replaces the earlier result, never an input.
    with contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(["detect", str(folder / "portrait.png"), str(folder / "talk.mp4"),
                           "--model", model_and_export[1], "--output", str(folder),
                           "--overwrite", "--no-overlay"])
    assert status == 0
    assert _load(str(folder), "portrait")["input"] == str(folder / "portrait.png")
    assert _digest(folder / "talk.mp4") == before["talk.mp4"]
    # Without overlays only <name>.json is needed: talk.json is free.
    assert _load(str(folder), "talk")["input"] == str(folder / "talk.mp4")
    assert _load(str(folder), "talk-2")["input"] == str(folder / "talk.mkv")
    assert not [name for name in os.listdir(folder) if "partial" in name]


def test_a_failed_write_leaves_nothing_and_names_the_real_path(predictor, inputs, tmp_path):
    paths, _ = inputs
    for overwrite in (False, True):
        folder = tmp_path / f"out-{overwrite}"
        (plan,) = outputs.plan_outputs([paths["clip"]], folder, overwrite=overwrite)
        # Something takes the JSON's name after the names were chosen: a folder.
        os.makedirs(plan.json)
        with pytest.raises(outputs.OutputError) as info:
            detect.detect_file(paths["clip"], predictor, output_paths=plan)
        assert info.value.path == plan.json and "partial" not in str(info.value)
        assert os.listdir(folder) == ["clip.json"] and os.path.isdir(plan.json)


def test_an_encoder_failure_is_one_line_naming_the_real_output(
    model_and_export, inputs, tmp_path, monkeypatch
):
    paths, _ = inputs
    monkeypatch.setattr(detect, "OVERLAY_CODEC", "no_such_encoder")
    output = tmp_path / "out"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = cli.main(["detect", paths["clip"], "--model", model_and_export[1],
                           "--output", str(output)])
    assert status == 1
    (line,) = stderr.getvalue().splitlines()
    assert line.startswith(f"ffseg detect: {paths['clip']}: {output / 'clip.mp4'}: ffmpeg "), line
    assert "no_such_encoder" in line and "partial" not in line
    assert os.listdir(output) == []


# --- only images and real videos count ------------------------------------------


def test_text_and_bytes_are_refused_as_not_media(model_and_export, inputs, tmp_path):
    # FFmpeg renders a .txt (tty demuxer) or a .bin of random bytes (bin
    # demuxer) as a "video" of characters; OpenCV opens them.
    paths, _ = inputs
    text = "Meeting notes, not a picture.\n" * 60
    files = {
        "noise.bin": media.random_bytes(tmp_path / "noise.bin", size=16_000),
        "notes.txt": str(tmp_path / "notes.txt"),
        "notes.mp4": str(tmp_path / "notes.mp4"),
    }
    for name in ("notes.txt", "notes.mp4"):
        with open(files[name], "w") as handle:
            handle.write(text)
    for name in ("noise.bin", "notes.txt"):
        assert cv2.VideoCapture(files[name], cv2.CAP_FFMPEG).isOpened(), name
    output = tmp_path / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = cli.main(["detect", *files.values(), paths["clip"], "--model",
                           model_and_export[1], "--output", str(output), "--no-overlay"])
    assert status == 1
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 3, lines
    for line, path in zip(lines, files.values()):
        assert line.startswith(f"ffseg detect: {path}: not a readable image or video: "), line
        assert "face" not in line
    assert stdout.getvalue().startswith(f"{paths['clip']}: video, {CLIP_FRAMES} of")
    assert os.listdir(output) == ["clip.json"]
