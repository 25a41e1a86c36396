import json

import pytest

from ffseg import config as config_lib


def test_named_experiments_resolve():
    for name in ("sample", "ffpp_c23", "ffpp_c40", "ffpp_c23_5class", "ffpp_c40_5class"):
        config = config_lib.get_experiment(name)
        assert config.model.image_size >= 71
    assert config_lib.get_experiment("ffpp_c40_5class").model.num_classes == 5
    assert config_lib.get_experiment("ffpp_c40").data.dataset == "ffpp/c40"
    assert config_lib.get_experiment("sample").data.dataset == "ffpp/sample"


def test_unknown_experiment_names_choices():
    with pytest.raises(ValueError, match="ffpp_c23"):
        config_lib.get_experiment("nope")


def test_override_types_and_json_round_trip():
    config = config_lib.override(
        config_lib.get_experiment("ffpp_c23"),
        [
            "train.batch_size=16",
            "train.learning_rate=1e-3",
            "data.flip=false",
            "model.backbone_weights=none",
            "model.gammas=0,0.3,0.7",
            "data.manual_dir=/data/ffpp",
            "train.steps_per_epoch=7",
        ],
    )
    assert config.train.batch_size == 16
    assert config.train.learning_rate == pytest.approx(1e-3)
    assert config.data.flip is False
    assert config.model.backbone_weights is None
    assert config.model.gammas == (0.0, 0.3, 0.7)
    assert config.data.manual_dir == "/data/ffpp"
    assert config.train.steps_per_epoch == 7
    again = config_lib.ExperimentConfig.from_dict(json.loads(config.to_json()))
    assert again == config


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("batch_size=4", "section.field=value"),
        ("train.batchsize=4", "no field 'batchsize'"),
        ("optimizer.lr=1", "section.field=value"),
        ("train.batch_size=four", "invalid literal"),
        ("data.flip=maybe", "boolean"),
    ],
)
def test_override_rejects_bad_assignments(assignment, message):
    with pytest.raises(ValueError, match=message):
        config_lib.override(config_lib.get_experiment("sample"), [assignment])
