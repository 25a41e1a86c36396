"""The Python API (`load_model`, `load_predictor`, `detect_file` from `ffseg`) and its examples.

A small FFSeg at 96 px (the `sample` experiment's size, no pretrained
weights, batch-norm statistics set from real crops so that faces score
apart) is saved as training saves it, `runs/sample/model.keras` and
`runs/sample/export`, in a working folder that also holds a face photo and a
face clip. Every documented example is then run there, as written.
"""

import ast
import json
import os
import re

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

import ffseg
from ffseg.inference import detect, export, model_card, outputs, predictors
from ffseg.models.ffseg_model import FFSeg
from ffseg.signal import faces, video
from tests import media

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_SIZE = 96


def _crop(image, size=299):
    box = faces.face_box(faces.FaceDetector().largest(image), image.shape)
    return faces.crop(image, box, size)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("workspace")
    keras.utils.set_random_seed(0)
    model = FFSeg(image_size=IMAGE_SIZE, backbone_weights=None)
    crops = np.stack([_crop(media.astronaut()), _crop(media.grace_hopper())])
    media.recalibrate_batch_norm(
        model, tf.image.resize(crops.astype(np.float32), (IMAGE_SIZE,) * 2, method="area")
    )
    run = folder / "runs" / "sample"
    run.mkdir(parents=True)
    model.save(run / "model.keras")
    # As the trainer leaves a `sample` run: its config, and the model card's facts.
    (run / "config.json").write_text(json.dumps({"data": {"dataset": "ffpp/sample"}}))
    export.export_saved_model(model, str(run / "export"),
                              metadata={"dataset": "ffpp/sample", "class_names": ["real", "fake"]})
    assert cv2.imwrite(str(folder / "photo.jpg"), media.astronaut()[:, :, ::-1].copy())
    media.write_clip(folder / "clip.mp4", media.face_clip("astronaut", 6).frames)
    return folder, model


@pytest.fixture
def in_workspace(workspace, monkeypatch):
    monkeypatch.chdir(workspace[0])
    return workspace


@pytest.fixture(scope="module")
def both(workspace):
    run = workspace[0] / "runs" / "sample"
    return {
        "keras": ffseg.load_predictor(run / "model.keras"),
        "saved_model": ffseg.load_predictor(run / "export"),
    }


def test_the_api_is_importable_from_ffseg():
    assert ffseg.load_model is predictors.load_model
    assert ffseg.load_predictor is predictors.load_predictor
    assert ffseg.detect_file is detect.detect_file
    assert ffseg.FrameSample is video.FrameSample
    assert {"load_model", "load_predictor", "detect_file"} <= set(ffseg.__all__)


def test_the_predictor_on_299_px_crops_with_a_96_px_model(workspace, both):
    _, model = workspace
    crops = np.stack([_crop(media.astronaut()), _crop(media.grace_hopper())])
    expected = model(tf.image.resize(crops.astype(np.float32), (IMAGE_SIZE,) * 2,
                                     method="area"), training=False)
    expected_maps = np.clip(
        tf.image.resize(expected["localization_map"], (299, 299)).numpy()[..., 0], 0, 1
    )
    for kind, predictor in both.items():
        out = predictor.predict(crops)
        assert out["score"].shape == (2,) and out["localization_map"].shape == (2, 299, 299)
        np.testing.assert_allclose(out["score"], expected["score"], atol=1e-5, err_msg=kind)
        np.testing.assert_allclose(out["localization_map"], expected_maps, atol=1e-4)
        assert abs(out["score"][0] - out["score"][1]) > 1e-4, "two faces, one score"
    semantic = both["keras"].predict(crops)["semantic_maps"]
    assert semantic.shape == (3, 2, 299, 299)
    assert "semantic_maps" not in both["saved_model"].predict(crops)


def test_the_predictor_takes_crops_of_any_size(both):
    image = media.astronaut()
    small, large = _crop(image, 120), _crop(image, 299)
    # What a client of the SavedModel would send: the crop area-resized to 299.
    resized = np.clip(np.round(tf.image.resize(small.astype(np.float32), (299, 299),
                                               method="area").numpy()), 0, 255)
    for predictor in both.values():
        score_small = predictor.predict(small[None])["score"]
        np.testing.assert_allclose(
            score_small, predictor.predict(resized.astype(np.uint8)[None])["score"], atol=1e-6
        )
        mixed = predictor.predict([small, large], batch_size=1)
        assert mixed["localization_map"].shape == (2, 299, 299)
        np.testing.assert_allclose(mixed["score"][0], score_small[0], atol=1e-6)
        assert predictor.predict(np.zeros((0, 299, 299, 3), np.uint8)) == {}
        for bad in (large.astype(np.float32)[None], large[None, :, :, :1], large):
            with pytest.raises(ValueError, match="uint8"):
                predictor.predict(bad)
    np.testing.assert_allclose(both["keras"].predict(small[None])["score"],
                               both["saved_model"].predict(small[None])["score"], atol=1e-5)


def test_load_model_takes_either_format(workspace):
    folder, _ = workspace
    run = folder / "runs" / "sample"
    model = ffseg.load_model(run / "model.keras")
    assert isinstance(model, FFSeg) and model.input_shape[1] == IMAGE_SIZE
    for path in (run / "export", run):  # the export, or the run that holds it
        served = ffseg.load_model(path)
        out = served.signatures["serving_default"](faces=tf.zeros((1, 299, 299, 3), tf.uint8))
        assert out["score"].shape == (1,)
    for bad, reason in [(folder / "nothing", "no such file"), (folder / "photo.jpg", ".keras"),
                        (folder / "runs", "no saved_model.pb")]:
        with pytest.raises(FileNotFoundError, match=reason):
            ffseg.load_model(bad)


def test_detect_file_returns_the_document_that_ffseg_detect_writes(in_workspace, both):
    folder, _ = in_workspace
    document = ffseg.detect_file("clip.mp4", both["saved_model"], output_dir="out")
    with open(folder / "out" / "clip.json") as handle:
        written = json.load(handle)
    assert written == json.loads(json.dumps(document))
    assert written["model"] == str(folder / "runs" / "sample" / "export")
    assert written["overlay"] == str(folder / "out" / "clip.mp4")
    assert written["frames_scored"] == 6
    # A second call replaces nothing: it picks a new name.
    again = ffseg.detect_file("clip.mp4", both["saved_model"], output_dir="out",
                              overlay_output=False)
    assert again["frames"] == document["frames"]
    assert sorted(os.listdir(folder / "out")) == ["clip-2.json", "clip.json", "clip.mp4"]


# --- the documented examples, run as written ------------------------------------


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def _run(code: str, name: str) -> None:
    code = "\n".join(line[len(re.match(r" *", code).group()):] for line in code.splitlines())
    ast.parse(code)
    exec(compile(code, name, "exec"), {"__name__": "__example__"})


@pytest.mark.parametrize("documented", [
    ffseg.load_model, ffseg.load_predictor, ffseg.detect_file, video.FrameSample,
    outputs.plan_outputs,
])
def test_docstring_examples_run(in_workspace, documented, capsys):
    blocks = _python_blocks(documented.__doc__)
    assert blocks, f"{documented.__qualname__} has no Example block"
    for block in blocks:
        _run(block, f"<{documented.__qualname__} example>")
    assert capsys.readouterr().out.strip()


def test_readme_python_api_section_runs(in_workspace, capsys):
    # The section lives in README.md; until the lead merges it, in the notes.
    for candidate in ("README.md", os.path.join("notes", "README-inference.md")):
        with open(os.path.join(REPOSITORY, candidate)) as handle:
            text = handle.read()
        if "\n## Python API\n" in text:
            break
    else:
        pytest.fail("no '## Python API' section in README.md or notes/README-inference.md")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = _python_blocks(section)
    assert blocks
    for block in blocks:
        _run(block, f"<{candidate}: Python API>")
    out = capsys.readouterr().out
    assert "(None, 96, 96, 3)" in out and "(1, 299, 299)" in out


def test_the_example_script_runs(in_workspace, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "python_api_example", os.path.join(REPOSITORY, "examples", "python_api.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main("runs/sample/model.keras", paths=["photo.jpg", "clip.mp4"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("score [") and "(1, 299, 299)" in lines[0]
    assert lines[2].startswith("photo.jpg image ") and lines[3].startswith("clip.mp4 video ")


# --- the model card ---------------------------------------------------------------


def test_a_sample_trained_model_says_so_in_the_json_and_on_stderr(in_workspace, both):
    import contextlib
    import io

    from ffseg import cli

    folder, _ = in_workspace
    with open(folder / "runs" / "sample" / "export" / "ffseg.json") as handle:
        card = json.load(handle)
    assert card["dataset"] == "ffpp/sample" and card["trained_on_sample"] is True
    assert card["image_size"] == IMAGE_SIZE and card["crop_size"] == 299
    assert card["class_names"] == ["real", "fake"] and card["exported_at"].endswith("+00:00")
    for predictor in both.values():
        assert predictor.info["trained_on_sample"] is True
        (notice, *_) = ffseg.detect_file("photo.jpg", predictor)["warnings"]
        assert "scores mean nothing on real media" in notice and "FaceForensics++" in notice
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = cli.main(["detect", "photo.jpg", "--model", "runs/sample/export",
                           "--output", "card", "--no-overlay"])
    assert status == 0
    (line,) = stderr.getvalue().splitlines()
    assert line.startswith("ffseg detect: warning: runs/sample/export: this model was trained "
                           "on the embedded sample dataset")
    with open(folder / "card" / "photo.json") as handle:
        assert json.load(handle)["warnings"][0] == line.split("runs/sample/export: ", 1)[1]
    # A model trained on FF++ gets no such warning.
    trained_on_ffpp = {"dataset": "ffpp/c23", "trained_on_sample": False}
    assert model_card.sample_model_notice(trained_on_ffpp) is None
