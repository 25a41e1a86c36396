"""FFSeg: outputs, training, metrics, training stages, saving."""

import dataclasses
import inspect
import math

import keras
import numpy as np
import pytest

from ffseg.constants import TRAINING_STAGES
from ffseg.models.backbone import TAP_NAMES
from ffseg.models.ffseg_model import STAGES, FFSeg, ffseg_arguments

SMALL = dict(head_filters=(8, 8, 8), classifier_filters=8)


def numpy_bilinear_upsample(images, size):
    """Bilinear resize with half-pixel centres, edge-clamped (no anti-aliasing)."""

    def axis_weights(size_in, size_out):
        source = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0, size_in - 1)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, size_in - 1)
        weights = np.zeros((size_out, size_in))
        weights[np.arange(size_out), low] += 1 - (source - low)
        weights[np.arange(size_out), high] += source - low
        return weights

    rows = axis_weights(images.shape[1], size)
    cols = axis_weights(images.shape[2], size)
    return np.einsum("hi,bijc,wj->bhwc", rows, images, cols, optimize=True)


def random_batch(batch_size, image_size, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")
    label = np.arange(batch_size, dtype="int32") % 2
    method = label * (1 + np.arange(batch_size, dtype="int32") % 4)
    mask = np.zeros((batch_size, image_size, image_size, 1), "float32")
    quarter = image_size // 4
    mask[label == 1, quarter : 3 * quarter, quarter : 3 * quarter] = 1.0
    noise = rng.normal(scale=3.0, size=(batch_size, image_size, image_size, 1)).astype("float32")
    return images, {"label": label, "method": method, "mask": mask, "noise": noise}


@pytest.fixture(scope="module")
def binary_model():
    return FFSeg(image_size=96, **SMALL)


@pytest.fixture(scope="module")
def binary_outputs(binary_model):
    images, _ = random_batch(2, 96)
    return binary_model.predict(images, verbose=0)


def test_binary_outputs(binary_outputs):
    shapes = {name: value.shape for name, value in binary_outputs.items()}
    assert shapes == {
        "logits": (2, 1),
        "score": (2,),
        "class_probabilities": (2, 2),
        "semantic_map_1": (2, 45, 45, 1),
        "semantic_map_2": (2, 12, 12, 1),
        "semantic_map_3": (2, 6, 6, 1),
        "noise_map_1": (2, 45, 45, 1),
        "noise_map_2": (2, 12, 12, 1),
        "noise_map_3": (2, 6, 6, 1),
        "localization_map": (2, 96, 96, 1),
    }
    fake = 1 / (1 + np.exp(-binary_outputs["logits"][:, 0]))
    np.testing.assert_allclose(binary_outputs["score"], fake, rtol=1e-5)
    np.testing.assert_allclose(
        binary_outputs["class_probabilities"], np.stack([1 - fake, fake], axis=1), rtol=1e-5
    )


def test_localization_map_is_gamma_weighted_sum(binary_outputs):
    expected = sum(
        gamma * numpy_bilinear_upsample(binary_outputs[f"semantic_map_{j + 1}"], 96)
        for j, gamma in enumerate((0.1, 0.2, 0.7))
    )
    np.testing.assert_allclose(binary_outputs["localization_map"], expected, atol=1e-5)


def test_multiclass_outputs():
    model = FFSeg(image_size=71, num_classes=5, **SMALL)
    images, _ = random_batch(2, 71)
    outputs = model.predict(images, verbose=0)
    assert outputs["logits"].shape == (2, 5)
    assert outputs["class_probabilities"].shape == (2, 5)
    assert outputs["semantic_map_1"].shape == (2, 33, 33, 1)
    assert outputs["localization_map"].shape == (2, 71, 71, 1)
    logits = outputs["logits"]
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(outputs["class_probabilities"], softmax, rtol=1e-5)
    np.testing.assert_allclose(outputs["score"], 1 - softmax[:, 0], rtol=1e-5, atol=1e-6)


def test_fit_logs_true_loss_components(binary_model):
    images, targets = random_batch(4, 96)
    binary_model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-3))
    before = [np.copy(weight) for weight in binary_model.get_weights()]
    history = binary_model.fit(images, targets, batch_size=2, epochs=1, verbose=0).history

    logs = {name: values[-1] for name, values in history.items()}
    assert set(logs) == {
        "loss", "classification_loss", "noise_loss", "mask_loss", "auc", "accuracy", "iou",
    }
    assert all(math.isfinite(value) for value in logs.values())
    # Eq. 1 holds on the logged (epoch-averaged) components.
    assert logs["loss"] == pytest.approx(
        logs["classification_loss"] + 0.1 * logs["noise_loss"] + logs["mask_loss"], rel=1e-5
    )
    assert 0.0 < logs["classification_loss"] < 5.0
    assert 0.0 <= logs["iou"] <= 1.0
    after = binary_model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))

    evaluation = binary_model.evaluate(images, targets, batch_size=2, verbose=0, return_dict=True)
    assert set(evaluation) == set(logs)


def test_metrics_are_listed_and_reset(binary_model):
    names = [metric.name for metric in binary_model.metrics]
    for name in ("classification_loss", "noise_loss", "mask_loss", "auc", "accuracy", "iou"):
        assert name in names
    binary_model.mask_loss_tracker.update_state(3.0)
    binary_model.reset_metrics()
    assert float(binary_model.mask_loss_tracker.result()) == 0.0


def test_compute_metrics_by_hand(binary_model):
    binary_model.reset_metrics()
    mask = np.zeros((3, 96, 96, 1), "float32")
    mask[1, :48] = 1.0  # fake frame, top half manipulated
    mask[2, :, :24] = 1.0  # fake frame, left quarter manipulated
    localization = np.zeros_like(mask)
    localization[0] = 0.9  # a real frame: ignored by the IoU
    localization[1, :48] = 0.8  # exact
    localization[2, :, :48] = 0.6  # twice too wide: IoU 1/2 on this frame
    y = {"label": np.array([0, 1, 1], "int32"), "mask": mask}
    y_pred = {
        "score": np.array([0.2, 0.7, 0.4], "float32"),
        "class_probabilities": np.zeros((3, 2), "float32"),
        "localization_map": localization,
    }
    results = binary_model.compute_metrics(None, y, y_pred)
    # Accumulated: (48*96 + 24*96) / (48*96 + 48*96).
    assert float(results["iou"]) == pytest.approx(0.75, rel=1e-6)
    assert float(results["accuracy"]) == pytest.approx(2 / 3, rel=1e-6)
    assert float(results["auc"]) == pytest.approx(1.0, abs=1e-3)
    binary_model.reset_metrics()


def test_compile_with_loss_is_refused():
    model = FFSeg(image_size=71, **SMALL)
    model.compile(optimizer="sgd", loss="mse")
    images, targets = random_batch(2, 71)
    with pytest.raises(ValueError, match="own loss"):
        model.fit(images, targets, batch_size=2, epochs=1, verbose=0)


def _head_weights(heads):
    return [np.copy(weight) for head in heads for weight in head.get_weights()]


def test_semantic_and_classifier_stage_trains_without_noise_heads_and_reloads(
    tmp_path,
):
    model = FFSeg(image_size=71, training_stage="semantic_and_classifier", **SMALL)
    assert model.get_config()["training_stage"] == "semantic_and_classifier"
    assert all(not head.trainable for head in model.noise_heads)
    trainable = {id(weight) for weight in model.trainable_weights}
    assert not any(id(w) in trainable for head in model.noise_heads for w in head.weights)

    images, targets = random_batch(4, 71, seed=1)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-2))
    noise_before = _head_weights(model.noise_heads)
    semantic_before = _head_weights(model.semantic_heads)
    logs = model.fit(images, targets, batch_size=4, epochs=1, verbose=0).history
    for before, after in zip(noise_before, _head_weights(model.noise_heads)):
        np.testing.assert_array_equal(before, after)  # frozen, BN statistics included
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(semantic_before, _head_weights(model.semantic_heads))
    )
    # The noise loss is logged but not part of the total in this stage.
    assert logs["loss"][0] == pytest.approx(
        logs["classification_loss"][0] + logs["mask_loss"][0], rel=1e-5
    )

    path = tmp_path / "ffseg.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(restored, FFSeg)
    assert restored.training_stage == "semantic_and_classifier"
    assert all(not head.trainable for head in restored.noise_heads)
    assert restored.get_config() == model.get_config()
    expected = model.predict(images, verbose=0)
    actual = restored.predict(images, verbose=0)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-6, atol=1e-6)

    with pytest.warns(UserWarning, match="compile"):
        restored.set_training_stage("full")
    assert all(head.trainable for head in restored.noise_heads)
    assert restored.effective_noise_loss_weight == pytest.approx(0.1)


def _weights(layers):
    return [np.copy(weight) for layer in layers for weight in layer.get_weights()]


def test_semantic_stage_leaves_the_classifier_and_noise_heads_bit_identical():
    # Paper Sec. IV-B.1, step 1: backbone + semantic heads on the mask loss alone.
    model = FFSeg(image_size=71, training_stage="semantic", **SMALL)
    assert model.effective_noise_loss_weight == 0.0
    assert model.effective_classification_loss_weight == 0.0
    trainable = {id(weight) for weight in model.trainable_weights}
    frozen = model.noise_heads + [model.classification_head]
    assert not any(id(w) in trainable for layer in frozen for w in layer.weights)

    images, targets = random_batch(4, 71, seed=2)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2))
    frozen_before = _weights(frozen)
    trained_before = _weights([model.backbone] + model.semantic_heads)
    logs = model.fit(images, targets, batch_size=2, epochs=1, verbose=0).history
    for before, after in zip(frozen_before, _weights(frozen)):
        np.testing.assert_array_equal(before, after)  # BN statistics included
    trained_after = _weights([model.backbone] + model.semantic_heads)
    changed = [not np.array_equal(a, b) for a, b in zip(trained_before, trained_after)]
    assert sum(changed) > 0.9 * len(changed)
    # The loss is the mask loss alone; the other components are still logged.
    assert logs["loss"][0] == pytest.approx(logs["mask_loss"][0], rel=1e-5)
    assert logs["classification_loss"][0] > 0.0 and logs["noise_loss"][0] > 0.0


def test_training_stages():
    assert STAGES == ("semantic", "semantic_and_classifier", "full")
    assert (STAGES[0], STAGES[-1]) == TRAINING_STAGES  # the paper's two steps


ABLATIONS = {
    # paper Table VII
    "detection_only": dict(semantic_maps=False, noise_maps=False),
    "semantic_maps_only": dict(noise_maps=False),
    "noise_maps_only": dict(semantic_maps=False),
    # paper Table VIII
    "taps_mid_high": dict(taps=("high", "mid")),
    "tap_low": dict(taps=("low",), noise_maps=False),
}


@pytest.fixture(scope="module")
def ablations():
    models = {name: FFSeg(image_size=71, **SMALL, **kwargs) for name, kwargs in ABLATIONS.items()}
    models["complete"] = FFSeg(image_size=71, **SMALL)
    return models


def _expected_keys(semantic_maps=True, noise_maps=True, taps=("low", "mid", "high")):
    scales = [j + 1 for j, tap in enumerate(("low", "mid", "high")) if tap in taps]
    keys = {"logits", "score", "class_probabilities"}
    if semantic_maps:
        keys |= {f"semantic_map_{j}" for j in scales} | {"localization_map"}
    if noise_maps:
        keys |= {f"noise_map_{j}" for j in scales}
    return keys


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablations_remove_heads(ablations, name):
    kwargs = ABLATIONS[name]
    model = ablations[name]
    outputs = model.predict(random_batch(2, 71)[0], verbose=0)
    assert set(outputs) == _expected_keys(**kwargs)
    semantic = kwargs.get("semantic_maps", True)
    noise = kwargs.get("noise_maps", True)
    taps = kwargs.get("taps", ("low", "mid", "high"))
    # Removed heads have no layer and no weight at all.
    names = {layer.name for layer in model.layers}
    for j, tap in enumerate(("low", "mid", "high")):
        assert (f"semantic_head_{j + 1}" in names) == (semantic and tap in taps)
        assert (f"noise_head_{j + 1}" in names) == (noise and tap in taps)
    assert ("semantic_attention" in names) == semantic
    assert ("fusion" in names) == (semantic and noise)
    # The heads' weights are gone, not only unused.
    removed_heads = [
        layer for layer in ablations["complete"].layers
        if layer.name.startswith(("semantic_head", "noise_head")) and layer.name not in names
    ]
    removed = sum(len(layer.weights) for layer in removed_heads)
    assert removed > 0
    assert len(model.weights) == len(ablations["complete"].weights) - removed
    # The classifier sees the deepest present tap's features.
    deepest = [tap for tap in ("low", "mid", "high") if tap in taps][-1]
    channels = {
        (True, True): 2 * 8, (True, False): 8, (False, True): 8,
        (False, False): {"low": 64, "mid": 256, "high": 728}[deepest],
    }[(semantic, noise)]
    depthwise = model.classification_head.block_layers[0].depthwise_kernel
    assert depthwise.shape[2] == channels
    assert set(model.get_config()) >= {"semantic_maps", "noise_maps", "taps"}
    metric_names = {metric.name for metric in model.metrics}
    assert ("mask_loss" in metric_names) == ("iou" in metric_names) == semantic
    assert ("noise_loss" in metric_names) == noise


def test_ablations_train_save_and_reload(ablations, tmp_path):
    images, targets = random_batch(2, 71, seed=3)
    detection = ablations["detection_only"]
    detection.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-2))
    logs = detection.fit(images, targets, batch_size=2, epochs=1, verbose=0).history
    # No maps, no map losses: the total is the classification loss alone.
    assert set(logs) == {"loss", "classification_loss", "auc", "accuracy"}
    assert logs["loss"][0] == pytest.approx(logs["classification_loss"][0], rel=1e-5)
    for name in ("detection_only", "taps_mid_high"):
        model = ablations[name]
        path = tmp_path / f"{name}.keras"
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
        assert restored.get_config() == model.get_config()
        expected = model.predict(images, verbose=0)
        actual = restored.predict(images, verbose=0)
        assert set(actual) == set(expected) == _expected_keys(**ABLATIONS[name])
        for key in expected:
            np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, atol=1e-6)


def test_tap_subset_keeps_the_gammas_total(ablations):
    outputs = ablations["taps_mid_high"].predict(random_batch(2, 71)[0], verbose=0)
    expected = sum(
        gamma / 0.9 * numpy_bilinear_upsample(outputs[f"semantic_map_{j}"], 71)
        for j, gamma in ((2, 0.2), (3, 0.7))
    )
    np.testing.assert_allclose(outputs["localization_map"], expected, atol=1e-5)


def test_stage_semantic_needs_semantic_maps(ablations):
    with pytest.raises(ValueError, match="semantic_maps=False"):
        ablations["noise_maps_only"].set_training_stage("semantic")
    ablations["semantic_maps_only"].set_training_stage("semantic")
    ablations["semantic_maps_only"].set_training_stage("full")


def test_model_arguments_follow_the_experiment_config():
    from ffseg import config as config_lib

    config = config_lib.override(
        config_lib.get_experiment("ffpp_c23"),
        ["model.taps=mid,high", "model.noise_maps=false", "loss.noise_unit=pixel"],
    )
    arguments = ffseg_arguments(config.model, config.loss)
    assert arguments["taps"] == ("mid", "high") and arguments["noise_maps"] is False
    assert arguments["noise_unit"] == "pixel" and arguments["noise_loss_weight"] == 0.1
    # Every ModelConfig and LossConfig field reaches the model.
    renamed = {"noise_weight": "noise_loss_weight", "mask_weight": "mask_loss_weight"}
    fields = [f.name for section in (config.model, config.loss)
              for f in dataclasses.fields(section)]
    assert {renamed.get(name, name) for name in fields} == set(arguments)
    assert set(arguments) <= set(inspect.signature(FFSeg.__init__).parameters)
    assert config_lib.TAPS == TAP_NAMES


def test_models_saved_without_a_noise_unit_trained_in_pixels(binary_model):
    config = binary_model.get_config()
    assert config["noise_unit"] == "unit"  # the default: the authors' targets
    del config["noise_unit"]  # as ffseg 0.1 saved it
    assert FFSeg.from_config(config).noise_unit == "pixel"


def test_mixed_precision_outputs_are_float32():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = FFSeg(image_size=71, **SMALL)
    finally:
        keras.config.set_dtype_policy(previous)
    for name, tensor in model.output.items():
        assert keras.backend.standardize_dtype(tensor.dtype) == "float32", name
    images, _ = random_batch(2, 71)
    outputs = model.predict(images, verbose=0)
    assert all(np.isfinite(value).all() for value in outputs.values())


def test_invalid_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        FFSeg(image_size=71, num_classes=1, **SMALL)
    with pytest.raises(ValueError, match="gammas"):
        FFSeg(image_size=71, gammas=(0.5, 0.5), **SMALL)
    model = FFSeg(image_size=71, **SMALL)
    with pytest.raises(ValueError, match="training stage"):
        model.set_training_stage("noise")
    with pytest.raises(ValueError, match="taps"):
        FFSeg(image_size=71, taps=("low", "deep"), **SMALL)
    with pytest.raises(ValueError, match="taps"):
        FFSeg(image_size=71, taps=(), **SMALL)
    with pytest.raises(ValueError, match="noise unit"):
        FFSeg(image_size=71, noise_unit="volts", **SMALL)
    with pytest.raises(ValueError, match="mask loss alone"):
        FFSeg(image_size=71, mask_loss_weight=0.0, training_stage="semantic", **SMALL)
