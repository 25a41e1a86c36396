"""Paper Tables VII and VIII end to end: every head switch trains, saves, exports,
predicts, detects and evaluates.

One tiny run per ablation (71 px, random weights, batch 2, one step per
epoch) on the dummy FF++ build, shared by the tests of that ablation:

- "detection only": no semantic and no noise heads (Table VII, row 1);
- "+ noise maps": no semantic heads (Table VII): no localization map;
- "+ semantic maps": no noise heads (Table VII);
- "taps mid, high": heads on two of the three taps (Table VIII).
"""

import json
import os

import numpy as np
import pytest

from ffseg import config as config_lib
from ffseg.evaluation.figures import TABLE_VI_GAMMAS
from tests import media

OVERRIDES = [
    "data.dataset=ffpp/c23",
    "data.shuffle_buffer=16",
    "data.deterministic=true",
    "model.image_size=71",
    "model.backbone_weights=none",
    "train.batch_size=2",
    "train.steps_per_epoch=1",
    "train.validation_steps=1",
    # Step 1 is asked for in every case: a model without semantic maps must
    # skip it rather than fail.
    "train.semantic_epochs=1",
    "train.full_epochs=1",
    "train.tensorboard_images=2",
]

ABLATIONS = {
    "detection_only": ["model.semantic_maps=false", "model.noise_maps=false"],
    "noise_maps": ["model.semantic_maps=false"],
    # Step 1 with semantic maps is trained in the full model's tests and
    # here with taps (mid, high); skipped to keep the file fast.
    "semantic_maps": ["model.noise_maps=false", "train.semantic_epochs=0"],
    "taps_mid_high": ["model.taps=mid,high"],
}
# name -> (has semantic maps, has noise maps, taps)
EXPECTED = {
    "detection_only": (False, False, ("low", "mid", "high")),
    "noise_maps": (False, True, ("low", "mid", "high")),
    "semantic_maps": (True, False, ("low", "mid", "high")),
    "taps_mid_high": (True, True, ("mid", "high")),
}
TAP_NUMBER = {"low": 1, "mid": 2, "high": 3}
NO_MAPS = "this model has no semantic maps: no localization figures"


def ablation_config(name, data_dir):
    overrides = OVERRIDES + ABLATIONS[name] + [f"data.data_dir={data_dir}"]
    return config_lib.override(config_lib.get_experiment("sample"), overrides)


@pytest.fixture(scope="module")
def face_crop():
    """The astronaut's face, cropped as training crops (a real face, dlib-detected)."""
    from ffseg.constants import BOX_SCALE, CROP_SIZE
    from ffseg.signal import faces

    image = media.astronaut()
    box = faces.face_box(faces.FaceDetector().largest(image), image.shape, BOX_SCALE)
    return faces.crop(image, box, CROP_SIZE)


@pytest.fixture(scope="module", params=list(ABLATIONS))
def run(request, dummy_ffpp, tmp_path_factory):
    """One trained, saved and exported run of the ablation, with its predictors."""
    from ffseg.inference.predictors import load_predictor
    from ffseg.training import trainer

    name = request.param
    model_dir = str(tmp_path_factory.mktemp(name) / "run")
    config = ablation_config(name, dummy_ffpp.data_dir_root)
    summary = trainer.train(config, model_dir, verbose=0)
    semantic, noise, taps = EXPECTED[name]
    return dict(
        name=name,
        config=config,
        model_dir=model_dir,
        summary=summary,
        semantic=semantic,
        noise=noise,
        taps=taps,
        keras=load_predictor(summary["keras_model"]),
        saved_model=load_predictor(summary["saved_model"]),
        builder=dummy_ffpp,
    )


def _event_tags(log_dir):
    import glob

    import tensorflow as tf

    tags = set()
    for path in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add(value.tag)
    return tags


def test_training_builds_only_the_switched_on_heads_and_skips_step_1_without_them(run):
    summary, model_dir = run["summary"], run["model_dir"]
    with open(os.path.join(model_dir, "config.json")) as f:
        written = json.load(f)
    # Without semantic maps step 1 is skipped, and config.json says what ran.
    asked = run["config"].train.semantic_epochs
    assert written["train"]["semantic_epochs"] == (asked if run["semantic"] else 0)
    assert written["model"]["semantic_maps"] is run["semantic"]
    assert written["model"]["noise_maps"] is run["noise"]
    assert tuple(written["model"]["taps"]) == run["taps"]
    step_1 = run["semantic"] and asked > 0
    assert set(summary["steps"]) == ({"semantic", "full"} if step_1 else {"full"})
    assert os.path.isdir(os.path.join(model_dir, "semantic")) is step_1
    full = summary["stages"]["full"]
    assert len(full["loss"]) == 1 and np.isfinite(full["loss"][0])
    # A removed head has no loss, no IoU and no pixel AUC in the records.
    assert ("mask_loss" in full) is run["semantic"]
    assert ("noise_loss" in full) is run["noise"]
    assert ("val_iou" in full) is run["semantic"]
    assert ("val_pixel_auc" in full) is run["semantic"]
    assert "val_eer" in full and "val_auc" in full

    model = run["keras"].model
    present = set(model.output)
    numbers = [TAP_NUMBER[tap] for tap in run["taps"]]
    assert {key for key in present if key.startswith("semantic_map_")} == (
        {f"semantic_map_{j}" for j in numbers} if run["semantic"] else set()
    )
    assert {key for key in present if key.startswith("noise_map_")} == (
        {f"noise_map_{j}" for j in numbers} if run["noise"] else set()
    )
    assert ("localization_map" in present) is run["semantic"]
    layers = {layer.name for layer in model.layers}
    assert {name for name in layers if name.startswith("semantic_head_")} == (
        {f"semantic_head_{j}" for j in numbers} if run["semantic"] else set()
    )
    assert {name for name in layers if name.startswith("noise_head_")} == (
        {f"noise_head_{j}" for j in numbers} if run["noise"] else set()
    )

    # TensorBoard: map images show exactly the maps the model has (the
    # shallowest present noise map: mid's when the taps are mid and high).
    tags = _event_tags(os.path.join(model_dir, "logs", "full", "maps"))
    expected = ["face", "true mask"]
    if run["semantic"]:
        expected.append("predicted map")
    if run["noise"]:
        expected += ["true noise", "predicted noise"]
    if run["semantic"] or run["noise"]:
        assert tags == {" | ".join(expected)}
    else:
        assert tags == set()


def test_export_serves_a_map_only_for_a_model_that_localises(run, face_crop):
    import tensorflow as tf

    export = run["summary"]["saved_model"]
    signature = tf.saved_model.load(export).signatures["serving_default"]
    expected_outputs = {"score", "class_probabilities"}
    if run["semantic"]:
        expected_outputs.add("localization_map")
    assert set(signature.structured_outputs) == expected_outputs
    with open(os.path.join(export, "ffseg.json")) as f:
        card = json.load(f)
    assert card["localizes"] is run["semantic"]
    assert card["semantic_map_taps"] == (list(run["taps"]) if run["semantic"] else [])
    assert card["config"]["model"]["semantic_maps"] is run["semantic"]

    keras_predictor, saved_predictor = run["keras"], run["saved_model"]
    for predictor in (keras_predictor, saved_predictor):
        assert predictor.localizes is run["semantic"]
    assert keras_predictor.has_semantic_maps is run["semantic"]
    assert keras_predictor.semantic_map_taps == (run["taps"] if run["semantic"] else ())

    crops = np.stack([face_crop, face_crop[:, ::-1]])
    from_keras = keras_predictor.predict(crops)
    from_export = saved_predictor.predict(crops)
    assert from_keras["score"].shape == from_export["score"].shape == (2,)
    assert np.all((from_keras["score"] >= 0) & (from_keras["score"] <= 1))
    np.testing.assert_allclose(from_keras["score"], from_export["score"], atol=1e-5)
    np.testing.assert_allclose(
        from_keras["class_probabilities"], from_export["class_probabilities"], atol=1e-5
    )
    if run["semantic"]:
        assert from_export["localization_map"].shape == (2, 299, 299)
        np.testing.assert_allclose(
            from_keras["localization_map"], from_export["localization_map"], atol=1e-5
        )
        assert from_keras["semantic_maps"].shape == (len(run["taps"]), 2, 299, 299)
    else:
        assert "localization_map" not in from_keras and "localization_map" not in from_export
        assert "semantic_maps" not in from_keras
    assert "semantic_maps" not in from_export


def test_detect_draws_a_heatmap_only_for_a_model_that_localises(run, tmp_path):
    import cv2

    from ffseg.inference import detect
    from ffseg.inference.overlay import overlay

    image = np.array(media.astronaut())
    path = str(tmp_path / "astronaut.png")
    cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    document = detect.detect_file(path, run["saved_model"], output_dir=str(tmp_path / "out"))
    largest = next(face for face in document["frames"][0]["faces"] if face["largest"])
    assert 0.0 <= largest["score"] <= 1.0
    assert (detect.NO_LOCALIZATION_NOTICE in document["warnings"]) is not run["semantic"]
    drawn = cv2.cvtColor(cv2.imread(document["overlay"]), cv2.COLOR_BGR2RGB)
    # Boxes and labels alone, with no heatmap: what a model that cannot
    # localise must draw; a localising model's overlay differs inside the box.
    plain = overlay(image, document["frames"][0]["faces"],
                    [None] * len(document["frames"][0]["faces"]))
    x0, y0, x1, y1 = largest["box"]
    inside = (slice(y0 + 20, y1 - 20), slice(x0 + 20, x1 - 20))
    if run["semantic"]:
        assert not np.array_equal(drawn[inside], plain[inside])
    else:
        np.testing.assert_array_equal(drawn, plain)
        np.testing.assert_array_equal(drawn[inside], image[inside])


def test_evaluation_and_report_cover_the_maps_the_model_has(run, tmp_path):
    from ffseg.evaluation import report, runner

    results = runner.evaluate_split(run["keras"], run["builder"], "test", progress=False)
    assert 0.0 <= results["frame_level"]["auc"] <= 1.0 or np.isnan(results["frame_level"]["auc"])
    paths = report.write(results, str(tmp_path / "eval"))
    with open(paths["markdown"]) as f:
        markdown = f.read()
    with open(paths["json"]) as f:
        written = json.load(f)
    assert os.path.getsize(paths["grid"]) > 0
    if not run["semantic"]:
        assert "localization" not in results
        assert results["localization_note"] == NO_MAPS
        assert written["localization_note"] == NO_MAPS
        assert "## Localization" in markdown and "This model has no semantic maps" in markdown
        assert all(item["map"] is None for item in results["grid"])
        return
    localization = results["localization"]
    assert 0.0 <= localization["pixel_auc"] <= 1.0
    assert "localization_note" not in results
    rows = [tuple(row["gammas"]) for row in localization["gamma_sweep"]]
    if run["taps"] == ("low", "mid", "high"):
        assert rows == [tuple(g) for g in TABLE_VI_GAMMAS]
        assert "gamma_sweep_note" not in localization
    else:
        # Without M1 only the weightings that give it no weight remain.
        assert rows == [(0.0, 0.0, 1.0), (0.0, 0.1, 0.9)]
        assert "no M1 (low)" in localization["gamma_sweep_note"]
        assert "7 of the 9 weightings" in localization["gamma_sweep_note"]
        assert "7 of the 9 weightings of Table VI weigh a missing map" in markdown
    # The model's own fused map is the sweep's row with its gammas, rescaled
    # over the present taps: for taps (mid, high) no row is (0, 0.2/0.9, 0.7/0.9).
    assert "Table VI: the fused map" in markdown
    # The SavedModel serves the fused map only: no sweep, same localization.
    served = runner.evaluate_split(run["saved_model"], run["builder"], "test", progress=False)
    assert "gamma_sweep" not in served["localization"]
    assert served["localization"]["pixel_auc"] == pytest.approx(localization["pixel_auc"], abs=2e-3)


def test_no_taps_row_is_swept_when_every_weighting_needs_a_missing_map():
    from ffseg.evaluation.runner import sweep_rows

    assert sweep_rows(("low", "mid", "high")) == (tuple(TABLE_VI_GAMMAS), None)
    rows, note = sweep_rows(("low", "mid"))
    assert rows == ()
    assert note.endswith("so there is no gamma sweep") and "no M3 (high)" in note
    rows, note = sweep_rows(("high",))
    assert rows == ((0.0, 0.0, 1.0),)
    assert "no M1 (low), M2 (mid)" in note


def test_semantic_free_run_with_nothing_left_to_train_is_refused_in_one_line(tmp_path, capsys):
    from experiments import train

    model_dir = str(tmp_path / "run")
    status = train.main(
        ["--model_dir", model_dir, "--set", "model.semantic_maps=false",
         "--set", "train.full_epochs=0", "--set", "train.semantic_epochs=3"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err == [
        "error: train.full_epochs: 0, and model.semantic_maps=false leaves step 1 "
        "(train.semantic_epochs=3) nothing to train (it trains the semantic heads): set "
        "train.full_epochs to at least 1"
    ]
    assert not os.path.exists(model_dir)


def test_resolve_ablations_implies_no_step_1_without_semantic_maps(caplog):
    from ffseg.training.trainer import resolve_ablations

    base = config_lib.get_experiment("sample")
    assert resolve_ablations(base) is base
    ablated = config_lib.override(base, ["model.semantic_maps=false"])
    with caplog.at_level("WARNING"):
        resolved = resolve_ablations(ablated)
    assert resolved.train.semantic_epochs == 0
    assert resolved.train.full_epochs == ablated.train.full_epochs
    assert resolved.model == ablated.model
    assert any("train.semantic_epochs=3 -> 0" in record.getMessage() for record in caplog.records)
    assert resolve_ablations(resolved) is resolved
