"""Loss components against numpy, and FFSeg.compute_loss on hand-made predictions."""

import keras
import numpy as np
import pytest

from ffseg.models.ffseg_model import FFSeg
from ffseg.models.losses import (
    MultiScaleMaskLoss,
    MultiScaleNoiseLoss,
    classification_loss,
    noise_unit_scale,
    resize_target,
)

EPSILON = 1e-7  # keras' clipping of probabilities in binary cross-entropy


def _triangle_weights(size_in, size_out):
    """Rows of anti-aliased bilinear resampling weights (a triangle filter
    stretched by the downsampling factor, renormalised at the borders)."""
    scale = size_in / size_out
    radius = max(scale, 1.0)
    centres = (np.arange(size_out) + 0.5) * scale
    distances = np.abs(np.arange(size_in)[None, :] + 0.5 - centres[:, None])
    weights = np.maximum(0.0, 1.0 - distances / radius)
    return weights / weights.sum(axis=1, keepdims=True)


def numpy_resize(images, size):
    rows = _triangle_weights(images.shape[1], size[0])
    cols = _triangle_weights(images.shape[2], size[1])
    return np.einsum("hi,bijc,wj->bhwc", rows, images, cols, optimize=True)


def numpy_bce(target, probability):
    probability = np.clip(probability, EPSILON, 1 - EPSILON)
    return -(target * np.log(probability) + (1 - target) * np.log(1 - probability))


def numpy_mask_loss(mask, maps):
    per_sample = sum(
        numpy_bce(numpy_resize(mask, m.shape[1:3]), m).mean(axis=(1, 2, 3)) for m in maps
    )
    return per_sample


def numpy_noise_loss(noise, maps):
    return sum(
        np.abs(numpy_resize(noise, m.shape[1:3]) - m).mean(axis=(1, 2, 3)) for m in maps
    )


def numpy_sigmoid_bce(label, logit):
    probability = 1 / (1 + np.exp(-logit))
    return -(label * np.log(probability) + (1 - label) * np.log(1 - probability))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_resize_target_gives_soft_mask_by_hand():
    mask = np.zeros((1, 8, 8, 1), "float32")
    mask[:, :, :4] = 1.0
    resized = np.asarray(resize_target(mask, (4, 4)))
    # Triangle filter over 4 source columns, weights 1/8, 3/8, 3/8, 1/8.
    np.testing.assert_allclose(resized[0, 0, :, 0], [1.0, 0.875, 0.125, 0.0], atol=1e-6)


@pytest.mark.parametrize("size_in,size_out", [(299, 147), (299, 37), (299, 19), (96, 45)])
def test_resize_target_matches_triangle_filter(rng, size_in, size_out):
    mask = (rng.random((2, size_in, size_in, 1)) > 0.5).astype("float32")
    resized = np.asarray(resize_target(mask, (size_out, size_out)))
    np.testing.assert_allclose(resized, numpy_resize(mask, (size_out, size_out)), atol=5e-5)
    assert resized.min() >= -1e-6 and resized.max() <= 1 + 1e-6


def test_resize_target_same_size_is_identity(rng):
    target = rng.normal(size=(2, 5, 5, 1)).astype("float32")
    assert resize_target(target, (5, 5)) is target


def _tiny_batch(rng):
    mask = (rng.random((2, 8, 8, 1)) > 0.6).astype("float32")
    noise = rng.normal(scale=3.0, size=(2, 8, 8, 1)).astype("float32")
    semantic_maps = [
        rng.uniform(0.05, 0.95, size=(2, side, side, 1)).astype("float32") for side in (8, 4, 3)
    ]
    noise_maps = [
        rng.normal(size=(2, side, side, 1)).astype("float32") for side in (8, 4, 3)
    ]
    return mask, noise, semantic_maps, noise_maps


def test_mask_loss_matches_numpy(rng):
    mask, _, semantic_maps, _ = _tiny_batch(rng)
    value = float(MultiScaleMaskLoss()(mask, semantic_maps))
    assert value == pytest.approx(numpy_mask_loss(mask, semantic_maps).mean(), rel=1e-5)


def test_mask_loss_sample_weight(rng):
    mask, _, semantic_maps, _ = _tiny_batch(rng)
    weights = np.array([1.0, 0.0], "float32")
    value = float(MultiScaleMaskLoss()(mask, semantic_maps, sample_weight=weights))
    expected = (numpy_mask_loss(mask, semantic_maps) * weights).sum() / 2
    assert value == pytest.approx(expected, rel=1e-5)


def test_noise_loss_matches_numpy(rng):
    _, noise, _, noise_maps = _tiny_batch(rng)
    value = float(MultiScaleNoiseLoss()(noise, noise_maps))
    assert value == pytest.approx(numpy_noise_loss(noise, noise_maps).mean(), rel=1e-5)


def test_classification_losses_match_numpy(rng):
    logits = rng.normal(size=(4, 1)).astype("float32")
    labels = np.array([0, 1, 1, 0], "int32")
    binary = float(classification_loss(2)(labels, logits))
    assert binary == pytest.approx(numpy_sigmoid_bce(labels, logits[:, 0]).mean(), rel=1e-5)

    logits = rng.normal(size=(4, 5)).astype("float32")
    methods = np.array([0, 3, 1, 4], "int32")
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -log_softmax[np.arange(4), methods].mean()
    assert float(classification_loss(5)(methods, logits)) == pytest.approx(expected, rel=1e-5)


def test_noise_loss_in_unit_divides_the_pixel_target_by_255(rng):
    _, noise, _, noise_maps = _tiny_batch(rng)
    noise_maps = [m / 255.0 for m in noise_maps]
    value = float(MultiScaleNoiseLoss(unit="unit")(noise, noise_maps))
    assert value == pytest.approx(numpy_noise_loss(noise / 255.0, noise_maps).mean(), rel=1e-5)
    assert noise_unit_scale("pixel") == 1.0 and noise_unit_scale("unit") == 1 / 255
    with pytest.raises(ValueError, match="noise unit"):
        MultiScaleNoiseLoss(unit="uint8")


def test_losses_serialize():
    for loss in (MultiScaleMaskLoss(), MultiScaleNoiseLoss(), MultiScaleNoiseLoss(unit="unit")):
        restored = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(restored) is type(loss)
        assert restored.get_config() == loss.get_config()


# FFSeg.compute_loss: Eq. 1 from a chosen prediction dict.


@pytest.fixture(scope="module")
def small_model():
    return FFSeg(
        image_size=71,
        head_filters=(4, 4, 4),
        classifier_filters=4,
        noise_loss_weight=0.1,
        mask_loss_weight=1.0,
        noise_unit="pixel",
    )


def _prediction_dict(logits, semantic_maps, noise_maps):
    y_pred = {"logits": logits}
    for j, (semantic_map, noise_map) in enumerate(zip(semantic_maps, noise_maps)):
        y_pred[f"semantic_map_{j + 1}"] = semantic_map
        y_pred[f"noise_map_{j + 1}"] = noise_map
    return y_pred


def test_compute_loss_is_equation_1(small_model, rng):
    mask, noise, semantic_maps, noise_maps = _tiny_batch(rng)
    logits = rng.normal(size=(2, 1)).astype("float32")
    label = np.array([1, 0], "int32")
    y = {"label": label, "method": np.array([2, 0], "int32"), "mask": mask, "noise": noise}
    for tracker in small_model.metrics:
        tracker.reset_state()

    total = float(
        small_model.compute_loss(y=y, y_pred=_prediction_dict(logits, semantic_maps, noise_maps))
    )

    classification = numpy_sigmoid_bce(label, logits[:, 0]).mean()
    noise_loss = numpy_noise_loss(noise, noise_maps).mean()
    mask_loss = numpy_mask_loss(mask, semantic_maps).mean()
    assert total == pytest.approx(classification + 0.1 * noise_loss + 1.0 * mask_loss, rel=1e-5)
    assert float(small_model.classification_loss_tracker.result()) == pytest.approx(
        classification, rel=1e-5
    )
    assert float(small_model.noise_loss_tracker.result()) == pytest.approx(noise_loss, rel=1e-5)
    assert float(small_model.mask_loss_tracker.result()) == pytest.approx(mask_loss, rel=1e-5)


def test_compute_loss_semantic_and_classifier_stage_drops_noise(small_model, rng):
    mask, noise, semantic_maps, noise_maps = _tiny_batch(rng)
    logits = rng.normal(size=(2, 1)).astype("float32")
    label = np.array([0, 1], "int32")
    y = {"label": label, "mask": mask, "noise": noise}
    y_pred = _prediction_dict(logits, semantic_maps, noise_maps)
    try:
        small_model.set_training_stage("semantic_and_classifier")
        total = float(small_model.compute_loss(y=y, y_pred=y_pred))
        # Without noise targets at all, the semantic stage still trains.
        without_noise = float(
            small_model.compute_loss(y={"label": label, "mask": mask}, y_pred=y_pred)
        )
    finally:
        small_model.set_training_stage("full")
    expected = numpy_sigmoid_bce(label, logits[:, 0]).mean() + numpy_mask_loss(
        mask, semantic_maps
    ).mean()
    assert total == pytest.approx(expected, rel=1e-5)
    assert without_noise == pytest.approx(expected, rel=1e-5)
    with pytest.raises(KeyError, match="noise"):
        small_model.compute_loss(y={"label": label, "mask": mask}, y_pred=y_pred)


def test_compute_loss_multiclass_uses_method(rng):
    model = FFSeg(
        image_size=71, num_classes=5, head_filters=(4, 4, 4), classifier_filters=4,
        noise_unit="pixel",
    )
    mask, noise, semantic_maps, noise_maps = _tiny_batch(rng)
    logits = rng.normal(size=(2, 5)).astype("float32")
    methods = np.array([3, 0], "int32")
    y = {"label": np.array([1, 0], "int32"), "method": methods, "mask": mask, "noise": noise}
    total = float(
        model.compute_loss(y=y, y_pred=_prediction_dict(logits, semantic_maps, noise_maps))
    )
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = (
        -log_softmax[np.arange(2), methods].mean()
        + 0.1 * numpy_noise_loss(noise, noise_maps).mean()
        + numpy_mask_loss(mask, semantic_maps).mean()
    )
    assert total == pytest.approx(expected, rel=1e-5)


def test_compute_loss_semantic_stage_is_the_mask_loss_alone(small_model, rng):
    # Paper Sec. IV-B.1 step 1: no classification, no noise loss (both logged).
    mask, noise, semantic_maps, noise_maps = _tiny_batch(rng)
    logits = rng.normal(size=(2, 1)).astype("float32")
    label = np.array([0, 1], "int32")
    y_pred = _prediction_dict(logits, semantic_maps, noise_maps)
    for tracker in small_model.metrics:
        tracker.reset_state()
    try:
        small_model.set_training_stage("semantic")
        total = float(small_model.compute_loss(
            y={"label": label, "mask": mask, "noise": noise}, y_pred=y_pred))
        without_noise = float(small_model.compute_loss(
            y={"label": label, "mask": mask}, y_pred=y_pred))
    finally:
        small_model.set_training_stage("full")
    assert total == pytest.approx(numpy_mask_loss(mask, semantic_maps).mean(), rel=1e-5)
    assert without_noise == pytest.approx(total, rel=1e-6)
    assert float(small_model.classification_loss_tracker.result()) == pytest.approx(
        numpy_sigmoid_bce(label, logits[:, 0]).mean(), rel=1e-5)
    assert float(small_model.noise_loss_tracker.result()) == pytest.approx(
        numpy_noise_loss(noise, noise_maps).mean(), rel=1e-5)


def test_compute_loss_in_the_default_unit_is_the_authors(rng):
    # Default noise_unit "unit": the noise term compares maps with residual / 255.
    model = FFSeg(image_size=71, head_filters=(4, 4, 4), classifier_filters=4, noise_maps=True,
                  semantic_maps=False)
    assert model.noise_unit == "unit"
    mask, noise, semantic_maps, noise_maps = _tiny_batch(rng)
    noise_maps = [m / 255.0 for m in noise_maps]
    logits = rng.normal(size=(2, 1)).astype("float32")
    label = np.array([1, 0], "int32")
    y_pred = {"logits": logits, **{f"noise_map_{j + 1}": m for j, m in enumerate(noise_maps)}}
    # No semantic maps: a mask target is not needed, nor used.
    total = float(model.compute_loss(y={"label": label, "noise": noise}, y_pred=y_pred))
    expected = (
        numpy_sigmoid_bce(label, logits[:, 0]).mean()
        + 0.1 * numpy_noise_loss(noise / 255.0, noise_maps).mean()
    )
    assert total == pytest.approx(expected, rel=1e-5)
    again = float(model.compute_loss(
        y={"label": label, "noise": noise, "mask": mask}, y_pred=y_pred))
    assert again == pytest.approx(expected, rel=1e-5)
