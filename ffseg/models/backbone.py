"""Xception feature pyramid for FFSeg (paper section III-A, IV-B.1).

The paper taps its Xception "after conv2, block2 and block11" in the authors'
PyTorch numbering, where block N is keras.applications' block N+1. In
`keras.applications.Xception` at 299x299 the three taps are:

- ``"low"``:  ``block1_conv2_act``                        147x147x64
- ``"mid"``:  the residual ``Add`` that closes block 3     37x37x256
- ``"high"``: the residual ``Add`` that closes block 12    19x19x728
  (the last middle-flow block)

The residual ``Add`` layers carry global auto-generated names (``add``,
``add_1``, ... and ``add_12``... for a second model in the same process), so
they are found by structure: walking the layers in topological order, the
k-th ``Add`` (0-based) closes block k+2.
"""

import os

import keras

TAP_NAMES = ("low", "mid", "high")

# keras.applications.Xception has 12 residual Adds, closing blocks 2..13.
_NUM_RESIDUAL_ADDS = 12
_FIRST_BLOCK_CLOSED_BY_ADD = 2
_MID_TAP_BLOCK = 3
_HIGH_TAP_BLOCK = 12
_TAP_CHANNELS = {"low": 64, "mid": 256, "high": 728}


def _residual_add_closing_block(xception, block):
    adds = [layer for layer in xception.layers if isinstance(layer, keras.layers.Add)]
    if len(adds) != _NUM_RESIDUAL_ADDS:
        raise ValueError(
            f"Expected {_NUM_RESIDUAL_ADDS} residual Add layers in Xception, "
            f"found {len(adds)}: is this keras.applications.Xception?"
        )
    return adds[block - _FIRST_BLOCK_CLOSED_BY_ADD]


def _xception_taps(xception):
    taps = {
        "low": xception.get_layer("block1_conv2_act").output,
        "mid": _residual_add_closing_block(xception, _MID_TAP_BLOCK).output,
        "high": _residual_add_closing_block(xception, _HIGH_TAP_BLOCK).output,
    }
    for name, tensor in taps.items():
        if tensor.shape[-1] != _TAP_CHANNELS[name]:
            raise ValueError(
                f"Xception tap {name!r} has {tensor.shape[-1]} channels, "
                f"expected {_TAP_CHANNELS[name]}"
            )
    return taps


def _clone_with_batch_norm(model, synchronized: bool, momentum: float):
    """Returns a copy of `model` with its BatchNormalization layers reconfigured.

    `momentum` sets how fast the moving statistics follow the data (Keras'
    Xception uses 0.99: after a few hundred steps inference still normalises
    with mostly the initial statistics, so short runs choose less).

    Plain BatchNormalization normalises each replica's slice of the batch on
    its own, so results change with the replica count under tf.distribute
    (measured 1e-2 apart between one and two replicas); synchronized BN uses
    the global batch statistics (2e-7 apart).
    Only the TensorFlow backend has synchronized BN; under JAX the jitted step
    sees the global batch anyway.
    """

    def clone_layer(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            config["synchronized"] = synchronized
            config["momentum"] = momentum
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_layer)
    clone.set_weights(model.get_weights())
    return clone


def xception_backbone(
    input_shape=(299, 299, 3), weights=None, name="xception_backbone", batch_norm_momentum=0.99
):
    """Builds the Xception feature extractor used by FFSeg.

    The model takes RGB pixels as floats in [0, 255] and applies Xception's
    own normalisation (x / 127.5 - 1) inside, so data pipelines and serving
    code only cast uint8 images to float. Layers after block 12 (the exit
    flow) are not part of the model: no tap needs them.

    Args:
        input_shape: (height, width, 3); at least 71x71.
        weights: `"imagenet"`, `None` (random initialisation) or the path to
            a weights file of `keras.applications.Xception(include_top=False)`
            (the Keras notop `.h5` file, or a `.weights.h5` saved from such
            a model).
        name: name of the returned model.
        batch_norm_momentum: momentum of every BatchNormalization layer.

    Returns:
        A functional `keras.Model` mapping images to a dict of feature maps
        `{"low": (B, h1, w1, 64), "mid": (B, h2, w2, 256),
        "high": (B, h3, w3, 728)}`; 147/37/19 pixels a side at 299x299.

    Raises:
        FileNotFoundError: `weights` is a path that does not exist.
    """
    if weights not in ("imagenet", None):
        weights = os.fspath(weights)
        if not os.path.exists(weights):
            raise FileNotFoundError(f"Xception weights file not found: {weights}")
    input_shape = tuple(input_shape)
    xception = keras.applications.Xception(
        include_top=False, weights=weights, input_shape=input_shape
    )
    # Only the layers that lead to the taps are kept.
    encoder = keras.Model(xception.inputs, _xception_taps(xception), name="xception")
    synchronized = keras.backend.backend() == "tensorflow"
    if synchronized or batch_norm_momentum != 0.99:
        encoder = _clone_with_batch_norm(encoder, synchronized, float(batch_norm_momentum))

    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name="xception_preprocessing")(
        inputs
    )
    return keras.Model(inputs, encoder(x), name=name)
