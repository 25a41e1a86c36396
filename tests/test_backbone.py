"""Xception taps: shapes, the right layers whatever their auto-names, weights, normalisation."""

import keras
import numpy as np
import pytest

from ffseg.models.backbone import xception_backbone


def _producer(tensor):
    return tensor._keras_history.operation


def _inbound_layer_names(layer):
    (node,) = layer._inbound_nodes
    return {tensor._keras_history.operation.name for tensor in node.input_tensors}


def _encoder(backbone):
    return backbone.get_layer("xception")


def test_tap_shapes_at_299():
    backbone = xception_backbone((299, 299, 3))
    shapes = {name: tuple(tensor.shape) for name, tensor in backbone.output.items()}
    assert shapes == {
        "low": (None, 147, 147, 64),
        "mid": (None, 37, 37, 256),
        "high": (None, 19, 19, 728),
    }


def test_taps_are_the_paper_layers_after_another_xception():
    # A first Xception takes auto-names "add_N" that a fresh process would
    # give the backbone's residual Adds; the backbone's are shifted.
    keras.applications.Xception(include_top=False, weights=None, input_shape=(71, 71, 3))
    fresh_process_names = {"add"} | {f"add_{index}" for index in range(1, 12)}
    backbone = xception_backbone((96, 96, 3))
    taps = _encoder(backbone).output

    assert _producer(taps["low"]).name == "block1_conv2_act"
    mid, high = _producer(taps["mid"]), _producer(taps["high"])
    assert isinstance(mid, keras.layers.Add) and isinstance(high, keras.layers.Add)
    assert mid.name not in fresh_process_names and high.name not in fresh_process_names
    # The Add closing block 3 sums block3's pooled path with its residual;
    # the one closing block 12 sums block12's last BN with block 11's output.
    assert "block3_pool" in _inbound_layer_names(mid)
    assert "block12_sepconv3_bn" in _inbound_layer_names(high)
    layer_names = {layer.name for layer in _encoder(backbone).layers}
    assert "block12_sepconv3_bn" in layer_names
    assert "block13_sepconv1" not in layer_names  # the exit flow is cut off

    outputs = backbone.predict(np.zeros((2, 96, 96, 3), "float32"), verbose=0)
    assert {name: value.shape for name, value in outputs.items()} == {
        "low": (2, 45, 45, 64),
        "mid": (2, 12, 12, 256),
        "high": (2, 6, 6, 728),
    }


def test_normalises_pixels_inside():
    backbone = xception_backbone((71, 71, 3))
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 71, 71, 3)).astype("float32")
    direct = backbone.predict(pixels, verbose=0)
    normalised = _encoder(backbone).predict(pixels / 127.5 - 1.0, verbose=0)
    for name in direct:
        np.testing.assert_allclose(direct[name], normalised[name], atol=1e-5)


def test_loads_weights_from_file(tmp_path):
    source = keras.applications.Xception(include_top=False, weights=None, input_shape=(71, 71, 3))
    path = tmp_path / "xception_notop.weights.h5"
    source.save_weights(path)
    backbone = xception_backbone((71, 71, 3), weights=path)
    encoder = _encoder(backbone)
    for name in ("block1_conv1", "block3_sepconv2", "block12_sepconv3_bn"):
        for loaded, saved in zip(
            encoder.get_layer(name).get_weights(), source.get_layer(name).get_weights()
        ):
            np.testing.assert_array_equal(loaded, saved)


def test_missing_weights_file_is_named(tmp_path):
    missing = tmp_path / "nowhere.weights.h5"
    with pytest.raises(FileNotFoundError, match="nowhere.weights.h5"):
        xception_backbone((71, 71, 3), weights=missing)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow-only BN option")
def test_batch_norm_is_synchronized():
    encoder = _encoder(xception_backbone((71, 71, 3)))
    norms = [
        layer for layer in encoder.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert norms and all(layer.synchronized for layer in norms)
