"""The paper's figures: the data file, which of them applies to a run, and the report."""

import json
import os

import pytest

from ffseg import config as config_lib
from ffseg.constants import METHODS
from ffseg.evaluation import paper

SETTING_KEYS = {
    "train_quality",
    "test",
    "trained_methods",
    "classes",
    "semantic_maps",
    "noise_maps",
    "taps",
    "noise_sigma",
}


def _cell(table, row, column, setting=None):
    for entry in paper.load_figures()["entries"]:
        if entry["table"] == table and entry["row"] == row:
            if setting and any(entry["setting"].get(k) != v for k, v in setting.items()):
                continue
            for cell in entry["cells"]:
                if cell["column"] == column:
                    return cell["value"]
    raise KeyError((table, row, column))


def test_data_file_has_provenance_for_every_figure():
    data = paper.load_figures()
    tables = set()
    for entry in data["entries"]:
        assert {"table", "row", "model", "setting", "cells"} <= set(entry)
        assert entry["model"] in ("ffseg", "xception")
        assert set(entry["setting"]) <= SETTING_KEYS, entry["setting"]
        assert {"train_quality", "test"} <= set(entry["setting"])
        for cell in entry["cells"]:
            assert {"column", "metric", "value", "unit"} <= set(cell)
            assert cell["unit"] in ("%", "fraction", "sigma")
            if cell["unit"] == "%":
                assert 0 < cell["value"] <= 100
            if cell["unit"] == "fraction":
                assert 0 < cell["value"] <= 1
        tables.add(entry["table"])
    expected = {f"Table {n}" for n in ("II", "III", "IV", "V", "VI", "VII", "VIII")} | {"Fig. 4"}
    assert tables == expected
    # As printed in the paper (Tables II, V, VI, VII, VIII).
    assert _cell("Table II", "Ours", "HQ (QP=23) AUC(%)") == 99.77
    assert _cell("Table II", "Ours", "LQ (QP=40) ACC(%)") == 84.84
    assert _cell("Table V", "Xception(fusion) (Ours)", "AVG(%)") == 82.19
    assert _cell("Table VI", "gamma sweep", "IoU (HQ), g = 0.1/0.2/0.7") == 0.9305
    assert _cell("Table VI", "gamma sweep", "IoU (LQ), g = 0.1/0.2/0.7") == 0.8413
    assert _cell("Table VII", "Xception + Segmentation", "AUC(%)") == 86.87
    assert _cell("Table VIII", "Xception + f3", "AUC(%)") == 86.39
    # Table II's Xception LQ AUC is Table VII's Xception row.
    assert _cell("Table II", "Xception [33]", "LQ (QP=40) AUC(%)") == _cell(
        "Table VII", "Xception", "AUC(%)"
    )
    # Table VI: nine weightings per quality, each summing to 1.
    for entry in data["entries"]:
        if entry["table"] == "Table VI":
            assert len(entry["cells"]) == 9
            assert all(sum(c["gammas"]) == pytest.approx(1.0) for c in entry["cells"])


def test_data_file_ships_with_the_package():
    import configparser

    parser = configparser.ConfigParser()
    parser.read(os.path.join(os.path.dirname(os.path.dirname(__file__)), "setup.cfg"))
    assert "paper_figures.json" in parser["options.package_data"]["ffseg"]
    assert os.path.exists(paper.DATA_FILE)


def _setting(experiment, test, classes=None, **changes):
    config = config_lib.get_experiment(experiment).to_dict()
    for key, value in changes.items():
        section, field = key.split("__")
        config[section][field] = value
    record = {"experiment": experiment, "config": config, "source": "test"}
    return paper.run_setting(record, test, classes)


def test_the_paper_figures_of_a_full_c40_run():
    found = paper.for_results(_setting("ffpp_c40", "ffpp/c40/1.0.0", 2))
    assert found["tables"] == ["Table II", "Table VI", "Table VII", "Table VIII", "Fig. 4"]
    figures = found["figures"]
    auc = figures["paper"]["frame_level.auc"]
    # One run, three tables, one figure.
    assert auc["value"] == 87.10 and "other_values" not in auc
    assert [s.split(",")[0] for s in auc["sources"]] == ["Table II", "Table VII", "Table VIII"]
    assert figures["paper"]["frame_level.accuracy"]["value"] == 84.84
    assert figures["paper"]["localization.iou"]["value"] == 0.8413
    assert figures["paper"]["localization.gamma_sweep[0.0,0.0,1.0]"]["value"] == 0.8399
    assert figures["paper"]["training.noise_sigma"]["value"] == 10
    assert figures["baseline"]["frame_level.auc"]["value"] == 84.38
    # Table III beside the all-methods model's figure on the same faces.
    other = figures["different_protocol"]["per_method_accuracy.NeuralTextures.with_real.accuracy"]
    assert other["value"] == 84.63 and "one detector per method" in other["notes"][-1]


def test_the_paper_figures_follow_the_data_and_the_model():
    # c23: Table II HQ; the ablations (VII, VIII) and Table V are LQ only.
    c23 = paper.for_results(_setting("ffpp_c23", "ffpp/c23"))
    assert c23["tables"] == ["Table II", "Table VI", "Fig. 4"]
    assert c23["figures"]["paper"]["frame_level.auc"]["value"] == 99.77
    # A c23 model tested on c40 faces: no table of the paper.
    assert paper.for_results(_setting("ffpp_c23", "ffpp/c40"))["tables"] == []
    # Five classes (the model's output width wins over the config); the
    # paper's localization and sigma figures are of its binary model.
    five = paper.for_results(_setting("ffpp_c40", "ffpp/c40", 5))
    assert five["tables"] == ["Table V"]
    assert five["figures"]["paper"]["five_class.average_recall"]["value"] == 82.19
    assert five["figures"]["baseline"]["five_class.recall.real"]["value"] == 75.55
    # Table VII: without noise maps; Table VIII: the deep tap alone.
    no_noise = paper.for_results(_setting("ffpp_c40", "ffpp/c40", model__noise_maps=False))
    assert no_noise["tables"] == ["Table VII"]
    assert no_noise["figures"]["paper"]["frame_level.auc"]["value"] == 86.87
    deep = paper.for_results(_setting("ffpp_c40", "ffpp/c40", model__taps=["high"]))
    assert deep["tables"] == ["Table VIII"]
    assert deep["figures"]["paper"]["frame_level.auc"]["value"] == 86.39
    # Detection only: the Xception rows are the paper's figure, not a baseline.
    bare = paper.for_results(
        _setting("ffpp_c40", "ffpp/c40", model__noise_maps=False, model__semantic_maps=False)
    )
    assert bare["tables"] == ["Table II", "Table VII"]
    assert bare["figures"]["paper"]["frame_level.auc"]["value"] == 84.38
    assert bare["figures"]["baseline"] == {}
    # Fig. 4: another sigma leaves only the sigma figure.
    sigma = paper.for_results(_setting("ffpp_c23", "ffpp/c23", data__noise_sigma=7.0))
    assert sigma["tables"] == ["Fig. 4"] and sigma["setting"]["noise_sigma"] == 7.0
    # The embedded sample has no figure in the paper.
    assert paper.for_results(_setting("sample", "ffpp/sample"))["tables"] == []


def test_table_iv_for_a_deepfakes_model():
    on_celeb = paper.for_results(
        _setting("ffpp_c23", "celeb_df/1.0.0", data__methods=["Deepfakes"])
    )
    assert on_celeb["tables"] == ["Table IV"]
    figure = on_celeb["figures"]["paper"]["frame_level.auc"]
    assert figure["value"] == 69.34 and "74.54" in figure["notes"][0]
    assert on_celeb["figures"]["baseline"]["frame_level.auc"]["value"] == 65.30
    on_ffpp = paper.for_results(
        _setting("ffpp_c40", "ffpp/c40", data__methods=["Deepfakes"])
    )
    # Table III's DF detector and Table IV's QP=40 model are the same run.
    assert on_ffpp["tables"] == ["Table III", "Table IV"]
    paper_figures = on_ffpp["figures"]["paper"]
    assert paper_figures["trained_methods.frame_level.accuracy"]["value"] == 97.25
    assert paper_figures["trained_methods.frame_level.auc"]["value"] == 99.98
    # All four methods listed is the all-methods model.
    assert _setting("ffpp_c40", "ffpp/c40", data__methods=list(METHODS))["trained_methods"] == "all"


def test_unknown_training_assumes_the_full_model_and_says_so():
    setting = paper.run_setting({"config": None}, "ffpp/c23_paper/1.0.0", 2)
    assert setting["known"] is False and setting["train_quality"] == "c23"
    assert setting["test"] == "ffpp/c23" and setting["noise_sigma"] == 5.0
    assert paper.for_results(setting)["tables"] == ["Table II", "Table VI", "Fig. 4"]


def test_training_record_is_read_from_what_training_leaves(tmp_path):
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    config = json.loads(config_lib.get_experiment("ffpp_c40").to_json())
    (run / "config.json").write_text(json.dumps(config))
    # Beside a .keras model: the run folder's config.json.
    record = paper.training_record(str(run / "model.keras"))
    assert record["config"] == config and record["source"] == str(run / "config.json")
    assert record["experiment"] is None
    # An export: its metadata's experiment name, the run folder's config.
    (run / "export" / "ffseg.json").write_text(json.dumps({"experiment": "ffpp_c40"}))
    record = paper.training_record(str(run / "export") + "/")
    assert record["experiment"] == "ffpp_c40" and record["config"] == config
    # The run folder itself (evaluate serves its export/).
    record = paper.training_record(str(run))
    assert record["experiment"] == "ffpp_c40" and record["config"] == config
    # A config in the export's metadata wins (an export copied elsewhere).
    c23 = json.loads(config_lib.get_experiment("ffpp_c23").to_json())
    (run / "export" / "ffseg.json").write_text(json.dumps({"experiment": "x", "config": c23}))
    assert paper.training_record(str(run / "export"))["config"] == c23
    # Nothing stored: the named experiment's defaults, said so.
    alone = tmp_path / "alone.keras"
    assert paper.training_record(str(alone))["config"] is None
    named = paper.training_record(str(alone), "ffpp_c23_5class")
    assert named["config"]["model"]["num_classes"] == 5 and "defaults" in named["source"]
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        paper.training_record(str(alone), "nope")
