"""FFSeg heads: semantic maps, noise maps, classification and fusion layers.

Paper section III: on each of the three backbone taps a semantic-map head
(Sec. III-B) and a noise-map head (Sec. III-C), both depthwise-separable
convolution blocks; a classification module on the fused last features
(Sec. III-A); the localization map as a weighted sum of the resized semantic
maps (Sec. III-B, Table VI).

Every head keeps the spatial size of its input: maps come out at the tap's
resolution and the losses resize the targets to them (Eq. 3).

Map, logit and score outputs are computed in the policy's variable dtype
(float32 under "mixed_bfloat16"/"mixed_float16"), so mixed precision never
feeds half-precision probabilities to a cross-entropy.
"""

import keras
import numpy as np
from keras import ops


def bilinear_matrix(input_size, output_size):
    """The `(output_size, input_size)` matrix of 1-D bilinear resizing.

    Half-pixel centres, edges clamped: what `tf.image.resize(method="bilinear")`
    and `jax.image.resize(method="linear")` compute when upsampling. Resizing
    by two matrix products instead of `ops.image.resize` gives the same map on
    every backend and compiler: TensorFlow's XLA kernel (used by a compiled
    `predict`) is wrong when upsampling a 5x5 map to 71x71 (off by up to 0.8),
    so a `.keras` file scored under TensorFlow and JAX disagreed.
    """
    source = (np.arange(output_size, dtype=np.float64) + 0.5) * input_size / output_size - 0.5
    source = np.clip(source, 0, input_size - 1)
    lower = np.floor(source).astype(int)
    upper = np.minimum(lower + 1, input_size - 1)
    weight = source - lower
    matrix = np.zeros((output_size, input_size), np.float64)
    rows = np.arange(output_size)
    np.add.at(matrix, (rows, lower), 1.0 - weight)
    np.add.at(matrix, (rows, upper), weight)
    return matrix.astype(np.float32)


def bilinear_upsample(image, size):
    """`(B, h, w, C)` -> `(B, size[0], size[1], C)` by `bilinear_matrix` products."""
    rows = ops.convert_to_tensor(bilinear_matrix(image.shape[1], size[0]), dtype=image.dtype)
    columns = ops.convert_to_tensor(
        bilinear_matrix(image.shape[2], size[1]).T, dtype=image.dtype
    )
    # Plain (broadcast) matmuls, not einsum: the ONNX and TFLite converters
    # of the exported model take them as they are.
    channels_first = ops.transpose(image, (0, 3, 1, 2))  # (B, C, h, w)
    resized = ops.matmul(ops.matmul(rows, channels_first), columns)  # (B, C, S0, S1)
    # The reshape restates the static size, which a broadcast matmul's
    # shape inference can lose (an exported graph needs it to stay static).
    return ops.reshape(ops.transpose(resized, (0, 2, 3, 1)), (-1, size[0], size[1], image.shape[3]))


def _use_synchronized_batch_norm(synchronized_batch_norm):
    # `synchronized=True` exists only on the TensorFlow backend (where
    # tf.distribute needs it); under JAX the global batch is seen anyway.
    if synchronized_batch_norm is None:
        return keras.backend.backend() == "tensorflow"
    return bool(synchronized_batch_norm)


def _separable_conv_block(filters, kernel_size, synchronized, momentum, name, dtype_policy):
    return [
        keras.layers.SeparableConv2D(
            filters,
            kernel_size,
            padding="same",
            use_bias=False,
            name=f"{name}_sepconv",
            dtype=dtype_policy,
        ),
        keras.layers.BatchNormalization(
            momentum=momentum, synchronized=synchronized, name=f"{name}_bn", dtype=dtype_policy
        ),
        keras.layers.ReLU(name=f"{name}_relu", dtype=dtype_policy),
    ]


class _SeparableConvStack(keras.layers.Layer):
    """`num_blocks` x (SeparableConv2D + BatchNormalization + ReLU): the body
    shared by the map heads and the classification head."""

    def __init__(
        self,
        filters,
        num_blocks=2,
        kernel_size=3,
        synchronized_batch_norm=None,
        batch_norm_momentum=0.99,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be at least 1, got {num_blocks}")
        self.filters = int(filters)
        self.num_blocks = int(num_blocks)
        self.kernel_size = kernel_size
        self.synchronized_batch_norm = synchronized_batch_norm
        self.batch_norm_momentum = float(batch_norm_momentum)
        synchronized = _use_synchronized_batch_norm(synchronized_batch_norm)
        self.block_layers = []
        for index in range(self.num_blocks):
            self.block_layers.extend(
                _separable_conv_block(
                    self.filters,
                    kernel_size,
                    synchronized,
                    self.batch_norm_momentum,
                    name=f"block{index + 1}",
                    dtype_policy=self.dtype_policy,
                )
            )

    def _build_blocks(self, input_shape):
        """Builds the blocks; returns their output shape."""
        shape = input_shape
        for layer in self.block_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        return shape

    def _call_blocks(self, inputs, training=None):
        x = inputs
        for layer in self.block_layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                x = layer(x, training=training)
            else:
                x = layer(x)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "num_blocks": self.num_blocks,
                "kernel_size": self.kernel_size,
                "synchronized_batch_norm": self.synchronized_batch_norm,
                "batch_norm_momentum": self.batch_norm_momentum,
            }
        )
        return config


class _MapHead(_SeparableConvStack):
    """Separable conv blocks followed by a 1x1 conv to a one-channel map."""

    output_activation = None

    def __init__(self, filters, **kwargs):
        super().__init__(filters, **kwargs)
        self.map_conv = keras.layers.Conv2D(
            1,
            1,
            activation=self.output_activation,
            name="map_conv",
            dtype=self.dtype_policy.variable_dtype,
        )

    def build(self, input_shape):
        self.map_conv.build(self._build_blocks(input_shape))

    def call(self, inputs, training=None):
        x = self._call_blocks(inputs, training=training)
        return x, self.map_conv(x)


@keras.saving.register_keras_serializable(package="ffseg")
class SemanticMapHead(_MapHead):
    """Semantic map prediction module on one backbone tap (paper Sec. III-B).

    `num_blocks` x (SeparableConv2D + BatchNormalization + ReLU) at `filters`
    channels, then a 1x1 convolution with a sigmoid: each pixel is the
    probability that its receptive field is manipulated.

    Args:
        filters: channels of the separable conv blocks (the head's features).
        num_blocks: number of separable conv blocks.
        kernel_size: depthwise kernel size.
        synchronized_batch_norm: `None` (synchronized on the TensorFlow
            backend only), `True` or `False`.
        batch_norm_momentum: momentum of the moving statistics (Keras'
            0.99; lower for runs of a few hundred steps).

    Call returns `(features, semantic_map)`: `(B, h, w, filters)` in the
    compute dtype and `(B, h, w, 1)` probabilities in the variable dtype.
    """

    output_activation = "sigmoid"


@keras.saving.register_keras_serializable(package="ffseg")
class NoiseMapHead(_MapHead):
    """Noise map prediction module on one backbone tap (paper Sec. III-C).

    Same blocks as `SemanticMapHead`, with a linear 1x1 output: the map
    regresses the wavelet noise residual n = F - f(F) (Eq. 4), in the unit
    of its targets (`FFSeg`'s `noise_unit`).

    Call returns `(features, noise_map)`: `(B, h, w, filters)` and
    `(B, h, w, 1)` in the variable dtype.
    """

    output_activation = None


@keras.saving.register_keras_serializable(package="ffseg")
class ClassificationHead(_SeparableConvStack):
    """Classification module on the attention-weighted fused features (Sec. III-A).

    `num_blocks` x (SeparableConv2D + BatchNormalization + ReLU), global
    average pooling, and a dense layer to logits.

    Args:
        num_classes: 2 gives one logit (real/fake, sigmoid); more give
            `num_classes` logits (softmax over real and the methods).
        filters: channels of the separable conv blocks.
        num_blocks: number of separable conv blocks.
        kernel_size: depthwise kernel size.
        synchronized_batch_norm: as in `SemanticMapHead`.

    Call returns logits `(B, 1)` or `(B, num_classes)` in the variable dtype.
    """

    def __init__(self, num_classes, filters=512, **kwargs):
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        super().__init__(filters, **kwargs)
        self.num_classes = int(num_classes)
        self.pooling = keras.layers.GlobalAveragePooling2D(name="pool", dtype=self.dtype_policy)
        self.logits_dense = keras.layers.Dense(
            1 if self.num_classes == 2 else self.num_classes,
            name="logits",
            dtype=self.dtype_policy.variable_dtype,
        )

    def build(self, input_shape):
        self.logits_dense.build(self.pooling.compute_output_shape(self._build_blocks(input_shape)))

    def call(self, inputs, training=None):
        return self.logits_dense(self.pooling(self._call_blocks(inputs, training=training)))

    def get_config(self):
        config = super().get_config()
        config["num_classes"] = self.num_classes
        return config


@keras.saving.register_keras_serializable(package="ffseg")
class LocalizationMap(keras.layers.Layer):
    """Final manipulation localization map (paper Sec. III-B, Table VI).

    M = sum_j gamma_j * bilinear_resize(M_j, image_size), the semantic maps
    of all taps brought to the input resolution and weighted.

    Args:
        image_size: side of the output map (the model's input size).
        gammas: one weight per input map, shallow to deep.

    Call takes a list of `(B, h_j, w_j, 1)` maps, returns `(B, S, S, 1)`.
    """

    def __init__(self, image_size, gammas=(0.1, 0.2, 0.7), **kwargs):
        kwargs.setdefault("dtype", keras.config.dtype_policy().variable_dtype)
        super().__init__(**kwargs)
        self.image_size = int(image_size)
        self.gammas = tuple(float(gamma) for gamma in gammas)

    def call(self, maps):
        if len(maps) != len(self.gammas):
            raise ValueError(f"Expected {len(self.gammas)} maps, got {len(maps)}")
        size = (self.image_size, self.image_size)
        fused = None
        for gamma, semantic_map in zip(self.gammas, maps):
            if tuple(semantic_map.shape[1:3]) != size:
                semantic_map = bilinear_upsample(semantic_map, size)
            term = gamma * semantic_map
            fused = term if fused is None else fused + term
        return fused

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], self.image_size, self.image_size, 1)

    def get_config(self):
        config = super().get_config()
        config.update({"image_size": self.image_size, "gammas": list(self.gammas)})
        return config


@keras.saving.register_keras_serializable(package="ffseg")
class DetectionScores(keras.layers.Layer):
    """Turns classification logits into a fake score and class probabilities.

    Binary (`num_classes=2`, one logit): p = sigmoid(logit), probabilities
    [1 - p, p]. Multi-class: softmax over [real, method_1, ...]; the score is
    the probability of any method, i.e. 1 - P(real), summed over the method
    classes so that scores near 0 keep their precision.

    Call returns `(score (B,), class_probabilities (B, num_classes))`.
    """

    def __init__(self, num_classes, **kwargs):
        kwargs.setdefault("dtype", keras.config.dtype_policy().variable_dtype)
        super().__init__(**kwargs)
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = int(num_classes)

    def call(self, logits):
        if self.num_classes == 2:
            fake = ops.sigmoid(logits)
            probabilities = ops.concatenate([1.0 - fake, fake], axis=-1)
            return fake[:, 0], probabilities
        probabilities = ops.softmax(logits, axis=-1)
        return ops.sum(probabilities[:, 1:], axis=-1), probabilities

    def compute_output_shape(self, input_shape):
        return (input_shape[0],), (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes})
        return config
