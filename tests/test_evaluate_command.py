"""`python -m experiments.evaluate` end to end on the dummy FF++ build, with an
untrained 71 px model in a run folder as training leaves it (config.json
beside model.keras): the paper's figures chosen from that config, real:fake
counts, the three IoUs, and no result ever written over."""

import json
import os

import pytest

from ffseg import config as config_lib


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run folder: config.json (experiment ffpp_c23 at 71 px) and model.keras."""
    from ffseg.training.trainer import build_model

    config = config_lib.override(
        config_lib.get_experiment("ffpp_c23"),
        ["model.image_size=71", "model.backbone_weights=none"],
    )
    folder = tmp_path_factory.mktemp("run")
    (folder / "config.json").write_text(config.to_json())
    model = build_model(config, "full")
    model.save(str(folder / "model.keras"))
    return folder


def _evaluate(model, dummy_ffpp, *extra):
    from experiments import evaluate

    return evaluate.main(
        [
            "--model",
            str(model),
            "--dataset",
            "ffpp/c23",
            "--data_dir",
            str(dummy_ffpp.data_dir_root),
            "--batch_size",
            "8",
            *extra,
        ]
    )


def test_evaluate_reports_the_paper_beside_ours(run_folder, dummy_ffpp, capsys):
    assert _evaluate(run_folder / "model.keras", dummy_ffpp) == 0
    out = run_folder / "eval_ffpp_c23_test"  # the default folder, fresh
    results = json.loads((out / "results.json").read_text())
    frame = results["frame_level"]
    assert frame["count"] == dummy_ffpp.info.splits["test"].num_examples
    assert frame["real_count"] + frame["fake_count"] == frame["count"]
    assert frame["real_count"] > 0 and frame["fake_count"] > 0
    assert 0 <= frame["balanced_accuracy"] <= 1
    loc = results["localization"]
    for key in ("iou", "iou_all_faces", "miou_two_class"):
        assert 0 <= loc[key] <= 1, key
    assert loc["faces"] == frame["count"]
    assert {"iou", "iou_all_faces", "miou_two_class"} <= set(loc["gamma_sweep"][0])
    # Which paper figures apply: from the run folder's config.json.
    assert results["training"]["source"] == str(run_folder / "config.json")
    assert results["paper"]["tables"] == ["Table II", "Table VI", "Fig. 4"]
    assert results["paper"]["setting"]["train_quality"] == "c23"
    text = (out / "report.md").read_text()
    assert "| 99.77 [" in text and "| 0.9305 [" in text
    assert f"({frame['real_count']}:{frame['fake_count']})" in text
    printed = capsys.readouterr().out
    assert "(paper 99.77)" in printed and "(c) two-class mIoU" in printed
    assert f"{frame['real_count']} real : {frame['fake_count']} fake" in printed
    assert (out / "maps.png").stat().st_size > 1000 and (out / "roc.png").stat().st_size > 1000


def test_evaluate_never_writes_over_an_earlier_result(run_folder, dummy_ffpp, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ("--max_examples", "6")
    assert _evaluate(run_folder / "model.keras", dummy_ffpp, "--output", str(out), *args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    # The same --output again: refused before loading anything, nothing touched.
    assert _evaluate(run_folder / "model.keras", dummy_ffpp, "--output", str(out), *args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"evaluate: {out}: already holds results.json")
    assert captured.out == ""
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # No --output: a fresh folder beside the model each time.
    model = tmp_path / "model.keras"
    model.symlink_to(run_folder / "model.keras")
    (tmp_path / "config.json").symlink_to(run_folder / "config.json")
    assert _evaluate(model, dummy_ffpp, *args) == 0
    assert _evaluate(model, dummy_ffpp, *args) == 0
    assert (tmp_path / "eval_ffpp_c23_test" / "results.json").exists()
    assert (tmp_path / "eval_ffpp_c23_test-2" / "results.json").exists()


def test_evaluate_a_one_method_model_on_its_faces(run_folder, dummy_ffpp, tmp_path, capsys):
    """Tables III/IV: a model trained on real + Deepfakes is also scored on
    real + Deepfakes faces; an unknown --experiment is one line, exit 2."""
    config = json.loads((run_folder / "config.json").read_text())
    config["data"]["methods"] = ["Deepfakes"]
    run = tmp_path / "df"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config))
    (run / "model.keras").symlink_to(run_folder / "model.keras")
    assert _evaluate(run / "model.keras", dummy_ffpp) == 0
    results = json.loads((run / "eval_ffpp_c23_test" / "results.json").read_text())
    subset = results["trained_methods"]
    assert subset["methods"] == ["Deepfakes"]
    per_method = results["per_method_accuracy"]
    assert subset["frame_level"]["count"] == per_method["real"]["count"] + per_method[
        "Deepfakes"
    ]["count"]
    assert subset["frame_level"]["accuracy"] == pytest.approx(
        per_method["Deepfakes"]["with_real"]["accuracy"]
    )
    assert results["paper"]["tables"] == ["Table IV"]
    assert "| 99.47 [" in (run / "eval_ffpp_c23_test" / "report.md").read_text()
    capsys.readouterr()
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "model.keras").symlink_to(run_folder / "model.keras")
    code = _evaluate(alone / "model.keras", dummy_ffpp, "--experiment", "nope")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unknown experiment 'nope'" in err[0]
    assert not any(p.name.startswith("eval_") for p in alone.iterdir())
    assert os.listdir(alone) == ["model.keras"]
