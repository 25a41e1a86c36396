"""End-to-end training on the dummy FF++ dataset: outputs, resume, multi-worker."""

import glob
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from ffseg import config as config_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

OVERRIDES = [
    "data.dataset=ffpp/c23",
    "data.shuffle_buffer=16",
    "data.deterministic=true",
    "model.image_size=71",
    "model.backbone_weights=none",
    "train.batch_size=2",
    "train.steps_per_epoch=2",
    "train.validation_steps=2",
    "train.semantic_epochs=1",
    "train.full_epochs=2",
    "train.tensorboard_images=2",
]


def tiny_config(data_dir):
    base = config_lib.get_experiment("sample")
    return config_lib.override(base, OVERRIDES + [f"data.data_dir={data_dir}"])


def _run_script(code, env=None, timeout=300):
    env = dict(os.environ, **(env or {}))
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def trained(dummy_ffpp, tmp_path_factory):
    from ffseg.training import trainer as training

    model_dir = str(tmp_path_factory.mktemp("run"))
    config = tiny_config(dummy_ffpp.data_dir_root)
    results = training.train(config, model_dir, verbose=0)
    return config, model_dir, results


def _scalar_tags(log_dir):
    import tensorflow as tf

    tags = set()
    for path in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add(value.tag)
    return tags


def test_training_writes_config_logs_checkpoints_and_export(trained):
    config, model_dir, results = trained
    with open(os.path.join(model_dir, "config.json")) as f:
        assert config_lib.ExperimentConfig.from_dict(json.load(f)) == config
    assert set(results["stages"]) == {"semantic", "full"}
    full = results["stages"]["full"]
    for key in (
        "loss",
        "classification_loss",
        "noise_loss",
        "mask_loss",
        "auc",
        "accuracy",
        "iou",
        "val_loss",
        "val_auc",
    ):
        assert key in full, key
        assert np.all(np.isfinite(full[key])) or key.endswith("auc")
    # Step 1 trains with the noise branch frozen and unweighted; step 2 uses it.
    tags = _scalar_tags(os.path.join(model_dir, "logs"))
    assert {
        "epoch_classification_loss",
        "epoch_noise_loss",
        "epoch_mask_loss",
        "epoch_auc",
        "epoch_iou",
    } <= tags
    assert any("predicted map" in tag for tag in tags)
    assert os.path.exists(os.path.join(model_dir, "best.weights.h5"))
    assert os.path.exists(os.path.join(model_dir, "full", "done.weights.h5"))


def test_saved_model_and_keras_file_reload_and_agree(trained):
    import keras
    import tensorflow as tf
    from skimage import data as skdata

    import ffseg.models.ffseg_model  # noqa: F401

    _, model_dir, results = trained
    model = keras.saving.load_model(results["keras_model"], safe_mode=True)
    face = skdata.astronaut()[0:299, 100:399]
    crops = np.stack([face, face[:, ::-1]]).astype(np.uint8)
    loaded = tf.saved_model.load(results["saved_model"])
    served = loaded.signatures["serving_default"](faces=tf.constant(crops))
    assert served["score"].shape == (2,)
    assert served["localization_map"].shape == (2, 299, 299)
    images = tf.image.resize(tf.cast(crops, tf.float32), (71, 71), method="area")
    expected = model(images, training=False)
    np.testing.assert_allclose(served["score"].numpy(), np.asarray(expected["score"]), atol=1e-5)
    np.testing.assert_allclose(
        served["class_probabilities"].numpy(),
        np.asarray(expected["class_probabilities"]),
        atol=1e-5,
    )


KILL_SCRIPT = """
import os, sys, keras
from ffseg import config as config_lib
from ffseg.training import trainer as training
sys.path.insert(0, {tests!r})
from test_training import OVERRIDES

class Kill(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
    def on_train_batch_end(self, batch, logs=None):
        if self.model.training_stage == "full" and self.epoch == 1 and batch == 0:
            os._exit(17)

config = config_lib.override(
    config_lib.get_experiment("sample"), OVERRIDES + ["data.data_dir={data_dir}"]
)
training.train(config, {model_dir!r}, verbose=0, callbacks=[Kill()] if {kill} else [])
"""


def test_run_killed_mid_epoch_resumes_to_the_same_weights(trained, dummy_ffpp, tmp_path):
    import keras

    import ffseg.models.ffseg_model  # noqa: F401

    _, reference_dir, reference = trained
    model_dir = str(tmp_path / "interrupted")
    fill = dict(
        tests=os.path.join(REPO, "tests"), data_dir=dummy_ffpp.data_dir_root, model_dir=model_dir
    )
    killed = _run_script(KILL_SCRIPT.format(kill=True, **fill))
    assert killed.returncode == 17, killed.stderr[-3000:]
    assert os.path.exists(os.path.join(model_dir, "semantic", "done.weights.h5"))
    assert not os.path.exists(os.path.join(model_dir, "model.keras"))
    resumed = _run_script(KILL_SCRIPT.format(kill=False, **fill))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = keras.saving.load_model(
        os.path.join(model_dir, "full", "..", "model.keras"), safe_mode=True
    )
    b = keras.saving.load_model(reference["keras_model"], safe_mode=True)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_allclose(np.asarray(wa), np.asarray(wb), atol=1e-6, err_msg=wa.path)


def _free_ports(count):
    """Distinct free ports: the sockets stay open until all are chosen."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_two_workers_on_localhost_complete_a_run(dummy_ffpp, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    overrides = [
        a
        for o in OVERRIDES
        + [f"data.data_dir={dummy_ffpp.data_dir_root}", "train.full_epochs=0", "train.export=false"]
        for a in ("--set", o)
    ]
    processes, logs = [], []
    for index in range(2):
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        env["PYTHONPATH"] = REPO
        # Logs go to files: a worker blocked on a full pipe would stall the
        # other one inside a collective.
        logs.append(tmp_path / f"worker{index}.log")
        with open(logs[-1], "w") as log:
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "experiments.train",
                        "--quiet",
                        "--model_dir",
                        str(tmp_path / "mw"),
                        *overrides,
                    ],
                    env=env,
                    cwd=REPO,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        for process in processes:
            process.wait(timeout=540)
    except subprocess.TimeoutExpired:
        for process in processes:
            os.killpg(process.pid, 9)
            process.wait()
    outputs = [path.read_text() for path in logs]
    for process, out in zip(processes, outputs):
        assert process.returncode == 0, out[-4000:]
    assert "CollectiveAllReduceStrategy with 2 replica(s)" in outputs[0]
    assert os.path.exists(tmp_path / "mw" / "model.keras")


def test_evaluate_writes_the_paper_figures(trained, dummy_ffpp, tmp_path, capsys):
    from experiments import evaluate

    _, model_dir, results = trained
    out = tmp_path / "eval"
    code = evaluate.main(
        [
            "--model",
            results["keras_model"],
            "--dataset",
            "ffpp/c23",
            "--split",
            "test",
            "--data_dir",
            str(dummy_ffpp.data_dir_root),
            "--output",
            str(out),
            "--batch_size",
            "5",
        ]
    )
    assert code == 0
    report = json.loads((out / "results.json").read_text())
    assert report["frame_level"]["count"] == dummy_ffpp.info.splits["test"].num_examples
    assert report["video_level"]["count"] < report["frame_level"]["count"]
    assert 0.0 <= report["frame_level"]["auc"] <= 1.0
    assert set(report["per_method_accuracy"]) <= {
        "real",
        "Deepfakes",
        "Face2Face",
        "FaceSwap",
        "NeuralTextures",
    }
    loc = report["localization"]
    assert loc["manipulated_frames"] > 0 and loc["real_frames"] > 0
    assert len(loc["gamma_sweep"]) == 9
    text = (out / "report.md").read_text()
    assert "video level" in text and "Table VI" in text
    assert (out / "roc.png").stat().st_size > 1000 and (out / "maps.png").stat().st_size > 1000
    # The exported SavedModel gives the same detection figures.
    served = tmp_path / "eval_served"
    assert (
        evaluate.main(
            [
                "--model",
                results["saved_model"],
                "--dataset",
                "ffpp/c23",
                "--split",
                "test",
                "--data_dir",
                str(dummy_ffpp.data_dir_root),
                "--output",
                str(served),
            ]
        )
        == 0
    )
    served_report = json.loads((served / "results.json").read_text())
    assert served_report["frame_level"]["count"] == report["frame_level"]["count"]
    assert "gamma_sweep" not in served_report["localization"]
    # Per-face scores agree (the untrained model's scores are near-ties, so
    # its AUC is not a fair comparison).
    keras_rows = (out / "scores.csv").read_text().splitlines()
    served_rows = (served / "scores.csv").read_text().splitlines()
    assert keras_rows[0] == "video,frame,label,method,score" and len(keras_rows) == len(served_rows)
    for a, b in zip(keras_rows[1:], served_rows[1:]):
        assert a.rsplit(",", 1)[0] == b.rsplit(",", 1)[0]
        assert float(a.rsplit(",", 1)[1]) == pytest.approx(float(b.rsplit(",", 1)[1]), abs=1e-5)


def test_cross_dataset_evaluation_on_celeb_df(trained, tmp_path):
    """Table IV's experiment: an FF++ model on Celeb-DF (no masks, no methods)."""
    from experiments import evaluate

    _, _, results = trained
    manual_dir = os.path.join(REPO, "tfds_ffpp", "celeb_df", "dummy_data")
    out = tmp_path / "celeb"
    assert (
        evaluate.main(
            [
                "--model",
                results["saved_model"],
                "--dataset",
                "celeb_df",
                "--split",
                "test",
                "--data_dir",
                str(tmp_path / "tfds"),
                "--manual_dir",
                manual_dir,
                "--output",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "results.json").read_text())
    assert report["frame_level"]["count"] == 12 and report["video_level"]["count"] == 4
    assert "localization" not in report and "per_method_accuracy" not in report
    assert "## Localization" not in (out / "report.md").read_text()
