import dataclasses
import json
import os

import pytest

from ffseg import config as config_lib


def test_named_experiments_resolve():
    for name in ("sample", "ffpp_c23", "ffpp_c40", "ffpp_c23_5class", "ffpp_c40_5class"):
        config = config_lib.get_experiment(name)
        assert config.model.image_size >= 71
    assert config_lib.get_experiment("ffpp_c40_5class").model.num_classes == 5
    assert config_lib.get_experiment("ffpp_c40").data.dataset == "ffpp/c40"
    assert config_lib.get_experiment("sample").data.dataset == "ffpp/sample"


def test_every_experiment_is_valid_and_described():
    for name, config in config_lib.EXPERIMENTS.items():
        assert config_lib.validate(config) is config
        description = config_lib.DESCRIPTIONS.get(name, "")
        assert description.strip() and "\n" not in description, f"{name} needs a description"
    listed = config_lib.describe_experiments()
    assert [name for name, _ in listed] == sorted(config_lib.EXPERIMENTS)


def test_defaults_run_the_papers_first_step_in_full_precision():
    train = config_lib.TrainConfig()
    assert train.first_step == "semantic"
    assert train.mixed_precision is None


def test_unknown_experiment_names_choices():
    with pytest.raises(ValueError, match="ffpp_c23"):
        config_lib.get_experiment("nope")
    with pytest.raises(config_lib.ConfigError, match="unknown experiment 'nope'"):
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
            "train.mixed_precision=mixed_bfloat16",
            "train.first_step=semantic_and_classifier",
        ],
    )
    assert config.train.batch_size == 16
    assert config.train.learning_rate == pytest.approx(1e-3)
    assert config.data.flip is False
    assert config.model.backbone_weights is None
    assert config.model.gammas == (0.0, 0.3, 0.7)
    assert config.data.manual_dir == "/data/ffpp"
    assert config.train.steps_per_epoch == 7
    assert config.train.mixed_precision == "mixed_bfloat16"
    assert config.train.first_step == "semantic_and_classifier"
    again = config_lib.ExperimentConfig.from_dict(json.loads(config.to_json()))
    assert again == config


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("batch_size=4", r"^--set 'batch_size=4': expected section\.field=value"),
        ("optimizer.lr=1", r"^--set 'optimizer.lr=1': expected section\.field=value"),
        (
            "train.batchsize=4",
            r"^train\.batchsize: train has no field 'batchsize'; did you mean train\.batch_size\?",
        ),
        ("train.batch_size=four", r"^train\.batch_size: expected an integer, got 'four'$"),
        ("model.image_size=abc", r"^model\.image_size: expected an integer, got 'abc'$"),
        ("model.image_size=32", r"^model\.image_size: expected an integer of at least 71"),
        ("train.batch_size=none", r"^train\.batch_size: expected an integer, got 'none'$"),
        ("data.flip=maybe", r"^data\.flip: expected a boolean \(true or false\), got 'maybe'$"),
        ("model.gammas=0.5,0.5", r"^model\.gammas: expected a comma-separated list of 3 numbers"),
        ("train.learning_rate=0", r"^train\.learning_rate: expected a positive number, got 0\.0$"),
        ("train.first_step=full", r"^train\.first_step: expected one of semantic, semantic_and_c"),
        (
            "train.mixed_precision=true",
            r"^train\.mixed_precision: expected none or a dtype policy name: float32, mixed_bf",
        ),
        ("data.max_validation_examples=0", r"^data\.max_validation_examples: expected none or a"),
    ],
)
def test_override_rejects_bad_assignments_in_one_line_naming_the_field(assignment, message):
    with pytest.raises(config_lib.ConfigError, match=message) as caught:
        config_lib.override(config_lib.get_experiment("sample"), [assignment])
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_run_with_nothing_to_train_is_refused():
    with pytest.raises(config_lib.ConfigError, match="both are 0"):
        config_lib.override(
            config_lib.get_experiment("sample"), ["train.semantic_epochs=0", "train.full_epochs=0"]
        )


def test_from_dict_names_unknown_and_mistyped_fields():
    values = json.loads(config_lib.get_experiment("sample").to_json())
    with pytest.raises(config_lib.ConfigError, match=r"^train\.batchsize: train has no field"):
        config_lib.ExperimentConfig.from_dict(
            {**values, "train": {**values["train"], "batchsize": 3}}
        )
    with pytest.raises(config_lib.ConfigError, match=r"^model\.image_size: expected an integer"):
        config_lib.ExperimentConfig.from_dict(
            {**values, "model": {**values["model"], "image_size": "96"}}
        )
    with pytest.raises(config_lib.ConfigError, match=r"^optimizer: no such config section"):
        config_lib.ExperimentConfig.from_dict({**values, "optimizer": {}})


def test_config_json_of_version_0_1_reads_with_its_meaning():
    """0.1 wrote mixed_precision as a bool and had no first_step."""
    values = json.loads(config_lib.get_experiment("sample").to_json())
    del values["train"]["first_step"]
    for old, policy in ((False, None), (True, "mixed_float16")):
        values["train"]["mixed_precision"] = old
        config = config_lib.ExperimentConfig.from_dict(values)
        assert config.train.mixed_precision == policy
        # 0.1's step 1 trained the classifier too.
        assert config.train.first_step == "semantic_and_classifier"


def test_differences_name_each_changed_field():
    base = config_lib.get_experiment("sample")
    changed = dataclasses.replace(
        base, train=dataclasses.replace(base.train, batch_size=3, first_step="semantic")
    )
    changed = config_lib.override(changed, ["model.gammas=0,0,1"])
    assert config_lib.differences(base, base) == []
    assert config_lib.differences(base, changed) == [
        "model.gammas: [0.1, 0.2, 0.7] -> [0.0, 0.0, 1.0]",
        "train.batch_size: 8 -> 3",
    ]


# === The command line: errors, --list, --print_config ======================


@pytest.fixture
def in_empty_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--set", "train.batchsize=16"], "train.batchsize: train has no field 'batchsize'"),
        (["--set", "model.image_size=abc"], "model.image_size: expected an integer, got 'abc'"),
        (["--experiment", "nope"], "unknown experiment 'nope'; choose one of"),
    ],
)
def test_train_command_config_errors_exit_2_in_one_line(
    arguments, message, in_empty_folder, capsys
):
    from experiments import train

    assert train.main(arguments + ["--model_dir", "run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert os.listdir(in_empty_folder) == []


def test_train_command_lists_experiments(capsys):
    from experiments import train

    assert train.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(config_lib.EXPERIMENTS)
    for line, name in zip(lines, sorted(config_lib.EXPERIMENTS)):
        assert line.startswith(name + " ") and config_lib.DESCRIPTIONS[name] in line


def test_print_config_prints_the_resolved_config_and_writes_nothing(in_empty_folder, capsys):
    from experiments import train

    code = train.main(
        ["--experiment", "ffpp_c40", "--set", "train.batch_size=4", "--print_config"]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    expected = config_lib.override(config_lib.get_experiment("ffpp_c40"), ["train.batch_size=4"])
    assert config_lib.ExperimentConfig.from_dict(printed) == expected
    assert os.listdir(in_empty_folder) == []
