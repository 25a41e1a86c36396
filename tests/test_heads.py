"""Heads on 4x4 feature maps: shapes, output ranges, dtypes, configs."""

import keras
import numpy as np
import pytest

from ffseg.models.heads import (
    ClassificationHead,
    DetectionScores,
    LocalizationMap,
    NoiseMapHead,
    SemanticMapHead,
)


@pytest.fixture
def features():
    return np.random.default_rng(0).normal(size=(2, 4, 4, 16)).astype("float32")


def test_semantic_map_head(features):
    head = SemanticMapHead(8)
    head_features, semantic_map = head(features, training=True)
    assert tuple(head_features.shape) == (2, 4, 4, 8)
    assert tuple(semantic_map.shape) == (2, 4, 4, 1)
    semantic_map = np.asarray(semantic_map)
    assert semantic_map.min() > 0.0 and semantic_map.max() < 1.0
    # Two separable conv blocks (depthwise, pointwise, BN gamma/beta) + 1x1 map conv.
    assert len(head.trainable_weights) == 2 * 4 + 2


def test_noise_map_head_is_linear(features):
    head = NoiseMapHead(8, num_blocks=1)
    _, noise_map = head(features * 100.0, training=True)
    noise_map = np.asarray(noise_map)
    assert noise_map.shape == (2, 4, 4, 1)
    assert noise_map.min() < 0.0  # not squashed into a probability


@pytest.mark.parametrize("num_classes,width", [(2, 1), (5, 5)])
def test_classification_head_logits(features, num_classes, width):
    logits = ClassificationHead(num_classes, filters=8)(features, training=False)
    assert tuple(logits.shape) == (2, width)


def test_heads_keep_float32_outputs_under_mixed_precision(features):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        head_features, semantic_map = SemanticMapHead(8)(features)
        _, noise_map = NoiseMapHead(8)(features)
        logits = ClassificationHead(2, filters=8)(features)
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(head_features.dtype) == "bfloat16"
    for output in (semantic_map, noise_map, logits):
        assert keras.backend.standardize_dtype(output.dtype) == "float32"


def test_localization_map_is_weighted_sum():
    maps = [np.full((1, side, side, 1), value, "float32") for side, value in
            ((4, 1.0), (2, 0.5), (1, 0.25))]
    fused = np.asarray(LocalizationMap(8, gammas=(0.1, 0.2, 0.7))(maps))
    assert fused.shape == (1, 8, 8, 1)
    np.testing.assert_allclose(fused, 0.1 * 1.0 + 0.2 * 0.5 + 0.7 * 0.25, rtol=1e-6)


def test_detection_scores():
    logits = np.array([[0.3], [-2.0]], "float32")
    score, probabilities = DetectionScores(2)(logits)
    fake = 1 / (1 + np.exp(-logits[:, 0]))
    np.testing.assert_allclose(score, fake, rtol=1e-6)
    np.testing.assert_allclose(probabilities, np.stack([1 - fake, fake], axis=1), rtol=1e-6)

    logits = np.array([[2.0, 0.1, -1.0, 0.0, 0.5]], "float32")
    score, probabilities = DetectionScores(5)(logits)
    softmax = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(probabilities, softmax, rtol=1e-6)
    np.testing.assert_allclose(score, 1 - softmax[:, 0], rtol=1e-6)


@pytest.mark.parametrize(
    "layer",
    [
        SemanticMapHead(8, num_blocks=3, kernel_size=5),
        NoiseMapHead(8),
        ClassificationHead(5, filters=8, num_blocks=1),
        LocalizationMap(16, gammas=(0.2, 0.3, 0.5)),
        DetectionScores(5),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_heads_serialize(layer):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == layer.get_config()
