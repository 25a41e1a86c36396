import collections
import dataclasses
import inspect
import types

import numpy as np
import pytest

from ffseg.constants import METHODS
from ffseg.data import pipeline as data_lib
from ffseg.errors import FileError


def _batches(builder, **kwargs):
    args = dict(image_size=96, batch_size=4, training=True, deterministic=True, seed=3)
    args.update(kwargs)
    ds = data_lib.make_dataset(builder, "train", **args)
    return [tuple(map(lambda t: t.numpy() if hasattr(t, "numpy") else t, b)) for b in ds.take(3)]


def test_batches_have_model_shapes_and_types(dummy_ffpp):
    image, targets = next(iter(data_lib.make_dataset(
        dummy_ffpp, "train", image_size=96, batch_size=4, training=True, deterministic=True)))
    assert image.shape == (4, 96, 96, 3) and image.dtype.name == "float32"
    assert float(image.numpy().max()) <= 255.0 and float(image.numpy().min()) >= 0.0
    assert targets["mask"].shape == (4, 96, 96, 1)
    assert set(np.unique(targets["mask"].numpy())) <= {0.0, 1.0}
    assert targets["noise"].shape == (4, 96, 96, 1) and targets["noise"].dtype.name == "float32"
    assert targets["label"].dtype.name == "int32" and targets["method"].dtype.name == "int32"
    labels, methods = targets["label"].numpy(), targets["method"].numpy()
    np.testing.assert_array_equal(labels, (methods > 0).astype(np.int32))


def test_flip_moves_image_mask_and_noise_together(dummy_ffpp):
    plain = _batches(dummy_ffpp, image_size=299, flip=False)
    flipped = _batches(dummy_ffpp, image_size=299, flip=True)
    seen = {"flipped": 0, "kept": 0}
    for (x0, y0), (x1, y1) in zip(plain, flipped):
        for i in range(len(x0)):
            same = np.array_equal(x0[i], x1[i])
            mirrored = np.array_equal(x0[i][:, ::-1], x1[i])
            assert same or mirrored
            for key in ("mask", "noise"):
                expected = y0[key][i] if same else y0[key][i][:, ::-1]
                np.testing.assert_array_equal(y1[key][i], expected)
            seen["kept" if same else "flipped"] += 1
    assert seen["flipped"] > 0 and seen["kept"] > 0


def test_deterministic_stream_and_skip_resume_the_same_place(dummy_ffpp):
    first = _batches(dummy_ffpp)
    again = _batches(dummy_ffpp)
    for (a, ya), (b, yb) in zip(first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ya["noise"], yb["noise"])
    resumed = _batches(dummy_ffpp, skip=4)  # one batch of 4 already consumed
    for (a, _), (b, _) in zip(first[1:], resumed):
        np.testing.assert_array_equal(a, b)


def test_evaluation_batches_keep_every_example_and_metadata(dummy_ffpp):
    ds = data_lib.make_dataset(
        dummy_ffpp, "test", image_size=96, batch_size=3, training=False, with_metadata=True)
    count = 0
    for image, targets, metadata in ds:
        count += int(image.shape[0])
        assert metadata["video"].dtype.name == "string"
    assert count == dummy_ffpp.info.splits["test"].num_examples


# === The paper's protocol: balance, method filter, absent methods, sigma ===


def _labels(builder, count, **kwargs):
    ds = data_lib.example_stream(builder, "train", training=True, **kwargs)
    return np.array([int(example["label"]) for example in ds.take(count)])


def test_balanced_stream_is_half_fake_from_a_1_to_4_build(dummy_ffpp):
    # The dummy c23 train split stores about one real face per four fakes.
    unbalanced = _labels(dummy_ffpp, 2000, shuffle_buffer=16, deterministic=True, seed=1)
    assert unbalanced.mean() > 0.7
    balanced = _labels(
        dummy_ffpp, 2000, shuffle_buffer=16, deterministic=True, seed=1, balance=True
    )
    assert 0.45 <= balanced.mean() <= 0.55
    # Not deterministic: still balanced.
    assert 0.45 <= _labels(dummy_ffpp, 2000, shuffle_buffer=16, balance=True).mean() <= 0.55


def test_balanced_stream_is_deterministic_and_resumes(dummy_ffpp):
    first = _batches(dummy_ffpp, balance=True)
    again = _batches(dummy_ffpp, balance=True)
    for (a, ya), (b, yb) in zip(first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ya["label"], yb["label"])
    resumed = _batches(dummy_ffpp, balance=True, skip=4)  # one batch of 4 already consumed
    for (a, ya), (b, yb) in zip(first[1:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ya["label"], yb["label"])
    # Another seed draws another stream.
    other = _batches(dummy_ffpp, balance=True, seed=4)
    assert any(not np.array_equal(a, b) for (a, _), (b, _) in zip(first, other))


def _method_counts(builder, split="train", **kwargs):
    ds = data_lib.example_stream(builder, split, training=False, **kwargs)
    return collections.Counter(int(example["method"]) for example in ds)


def test_method_filter_keeps_real_faces_and_the_listed_methods(dummy_ffpp):
    everything = _method_counts(dummy_ffpp)
    assert set(everything) == {0, 1, 2, 3, 4}
    kept = _method_counts(dummy_ffpp, methods=["FaceSwap", "Deepfakes"])
    assert kept == {method: everything[method] for method in (0, 1, 3)}
    deepfakes = _method_counts(dummy_ffpp, methods=("Deepfakes",))
    assert deepfakes == {0: everything[0], 1: everything[1]}

    # In training, filtered and balanced: real and Deepfakes only, about 1:1.
    ds = data_lib.make_dataset(
        dummy_ffpp, "train", image_size=71, batch_size=50, training=True,
        deterministic=True, methods=["Deepfakes"], balance=True)
    _, targets = next(iter(ds))
    assert set(targets["method"].numpy()) == {0, 1}
    assert 10 <= int(targets["label"].numpy().sum()) <= 40


class _Recorded:
    """A prepared builder whose metadata records other methods (as a partial build does)."""

    def __init__(self, builder, metadata):
        self._builder = builder
        self.info = types.SimpleNamespace(
            metadata=metadata,
            full_name=builder.info.full_name,
            features=builder.info.features,
            splits=builder.info.splits,
        )

    def __getattr__(self, name):
        return getattr(self._builder, name)


def test_absent_methods_stop_before_training_naming_them(dummy_ffpp):
    partial = _Recorded(dummy_ffpp, {"methods": ["NeuralTextures", "Deepfakes"]})
    assert data_lib.dataset_methods(partial) == ("Deepfakes", "NeuralTextures")
    with pytest.raises(FileError, match="holds no Face2Face, FaceSwap fakes") as error:
        data_lib.check_methods(partial)  # all four asked for
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(dummy_ffpp.data_dir))
    assert "data.methods=Deepfakes,NeuralTextures" in message
    data_lib.check_methods(partial, ["Deepfakes"])
    with pytest.raises(FileError, match="holds no FaceSwap fakes"):
        data_lib.make_dataset(
            partial, "train", image_size=71, batch_size=2, training=True, methods=["FaceSwap"])
    # Recorded the other way round, and builds that record nothing (all four).
    absent = _Recorded(dummy_ffpp, {"methods_absent": ["Face2Face"]})
    with pytest.raises(FileError, match="holds no Face2Face fakes"):
        data_lib.check_methods(absent, ["Deepfakes", "Face2Face"])
    assert data_lib.dataset_methods(_Recorded(dummy_ffpp, None)) == METHODS
    data_lib.check_methods(dummy_ffpp)
    with pytest.raises(ValueError, match="methods must be among"):
        data_lib.check_methods(dummy_ffpp, ["DeepFakeDetection"])


def test_recomputed_noise_label_equals_the_stored_one_at_the_builds_sigma(dummy_ffpp):
    assert dummy_ffpp.builder_config.sigma == 5.0
    examples = list(dummy_ffpp.as_dataset(split="validation").take(3))
    for example in examples:
        stored = example["noise"].numpy().astype(np.float32)
        recomputed = data_lib.noise_label(example["image"].numpy(), 5.0)
        assert recomputed.shape == stored.shape and np.abs(recomputed).max() > 1.0
        # float16 keeps 11 significant bits: half an ulp is 2**-11 of the value.
        np.testing.assert_array_less(
            np.abs(recomputed - stored), np.abs(recomputed) * 2.0**-11 + 2.0**-24 + 1e-7)


def test_noise_sigma_recomputes_labels_only_when_it_differs(dummy_ffpp):
    def first_batch(**kwargs):
        ds = data_lib.make_dataset(
            dummy_ffpp, "validation", image_size=299, batch_size=2, training=False, **kwargs)
        image, targets = next(iter(ds))
        return image.numpy(), targets["noise"].numpy()

    image, stored = first_batch()
    np.testing.assert_array_equal(first_batch(noise_sigma=5.0)[1], stored)
    _, sigma_10 = first_batch(noise_sigma=10.0)
    for face, label in zip(image.astype(np.uint8), sigma_10):
        np.testing.assert_allclose(label, data_lib.noise_label(face, 10.0), atol=1e-5)
    # A larger sigma attributes more of the signal to noise (Eq. 5).
    assert np.abs(sigma_10).mean() > 1.2 * np.abs(stored).mean()


def test_dataset_options_carry_every_pipeline_field():
    from ffseg.config import DataConfig

    config = DataConfig(balance=True, methods=("Deepfakes",), noise_sigma=7.0, seed=3)
    options = data_lib.dataset_options(config)
    assert options["balance"] is True and options["methods"] == ("Deepfakes",)
    assert options["noise_sigma"] == 7.0 and options["seed"] == 3
    # Every DataConfig field reaches either make_dataset or the trainer.
    elsewhere = {
        "dataset", "data_dir", "manual_dir", "train_split", "validation_split",
        "max_validation_examples", "loader_workers",
    }
    fields = {field.name for field in dataclasses.fields(DataConfig)}
    assert fields == set(options) | elsewhere
    signature = inspect.signature(data_lib.make_dataset).parameters
    assert set(options) <= set(signature)


# === Pseudo-fakes made on the fly (self-blended images) ===


def _flags(builder, count, **kwargs):
    ds = data_lib.example_stream(builder, "train", training=True, shuffle_buffer=16,
                                 deterministic=True, seed=1, **kwargs)
    rows = [(bool(example["pseudo"]), int(example["label"])) for example in ds.take(count)]
    return np.array(rows, np.int64)


def test_pseudo_fakes_are_their_fraction_of_the_stream(dummy_ffpp):
    flags = _flags(dummy_ffpp, 1200, pseudo_fakes=0.3, balance=True)
    pseudo, labels = flags[:, 0] == 1, flags[:, 1]
    assert 0.26 <= pseudo.mean() <= 0.34
    assert (labels[pseudo] == 0).all()  # made from real faces only
    assert 0.45 <= labels[~pseudo].mean() <= 0.55  # the rest balanced as before
    # Real faces only: no stored fake, half the stream pseudo-fakes.
    flags = _flags(dummy_ffpp, 1200, pseudo_fakes=0.5, stored_fakes=False)
    assert (flags[:, 1] == 0).all() and 0.45 <= flags[:, 0].mean() <= 0.55
    with pytest.raises(ValueError, match="real faces only"):
        _flags(dummy_ffpp, 1, stored_fakes=False)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        _flags(dummy_ffpp, 1, pseudo_fakes=1.0)


def _pseudo_batches(builder, split="train", **kwargs):
    args = dict(image_size=299, batch_size=4, training=split == "train", deterministic=True,
                seed=5, flip=False, with_metadata=True, pseudo_fakes=0.5, stored_fakes=False)
    args.update(kwargs)
    ds = data_lib.make_dataset(builder, split, **args)
    return [tuple({k: v.numpy() for k, v in part.items()} if isinstance(part, dict)
                  else part.numpy() for part in batch) for batch in ds.take(3)]


def test_pseudo_fakes_carry_their_mask_noise_label_and_method(dummy_ffpp):
    from ffseg.constants import PSEUDO_FAKE_METHOD
    from ffseg.signal.noise import noise_residual, to_gray

    batches = _pseudo_batches(dummy_ffpp)
    sigma = dummy_ffpp.builder_config.sigma
    made = 0
    for images, targets, _ in batches:
        for i in range(len(images)):
            mask = targets["mask"][i]
            if targets["method"][i] == PSEUDO_FAKE_METHOD:
                made += 1
                assert targets["label"][i] == 1 and 0.02 < mask.mean() < 0.9
                # The noise label is that of the blended face (paper Eq. 4-5).
                expected = to_gray(noise_residual(images[i].astype(np.uint8), sigma))
                np.testing.assert_allclose(targets["noise"][i][..., 0], expected, atol=1e-3)
            else:
                assert targets["method"][i] == 0 and targets["label"][i] == 0
                assert not mask.any()
    assert 0 < made < 12
    # Same seed, same pseudo-fakes; a resume skips into the same stream.
    for (a, ta, _), (b, tb, _) in zip(batches, _pseudo_batches(dummy_ffpp)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ta["mask"], tb["mask"])
    for (a, _, _), (b, _, _) in zip(batches[1:], _pseudo_batches(dummy_ffpp, skip=4)):
        np.testing.assert_array_equal(a, b)


def test_validation_turns_the_same_real_faces_into_pseudo_fakes(dummy_ffpp):
    from ffseg.constants import PSEUDO_FAKE_METHOD

    def methods(**kwargs):
        batches = _pseudo_batches(dummy_ffpp, "validation", **kwargs)
        return [(m, v) for _, t, meta in batches for m, v in zip(t["method"], meta["video"])]

    first = methods()
    assert first == methods()  # the same faces every epoch
    kinds = {m for m, _ in first}
    assert kinds == {0, PSEUDO_FAKE_METHOD}  # stored fakes left out, some reals made fakes
    with_stored = methods(stored_fakes=True)
    assert {m for m, _ in with_stored} - {0, PSEUDO_FAKE_METHOD}  # stored fakes kept


def test_an_earlier_build_without_landmarks_still_loads_and_makes_pseudo_fakes(
    dummy_ffpp, tmp_path
):
    # A build of ffpp 1.1.0 (no landmarks feature) written as TFDS writes it.
    import tensorflow_datasets as tfds

    features = dict(dummy_ffpp.info.features)
    del features["landmarks"]
    features = tfds.features.FeaturesDict(features)
    source = dummy_ffpp.as_dataset(split="validation").map(
        lambda e: {k: v for k, v in e.items() if k != "landmarks"})
    tfds.dataset_builders.store_as_tfds_dataset(
        name="ffpp", version="1.1.0", config="c23", features=features,
        split_datasets={"train": source.take(12), "validation": source.take(4)},
        data_dir=tmp_path)
    builder = data_lib.ensure_built("ffpp/c23", data_dir=str(tmp_path))
    assert str(builder.version) == "1.1.0" and "landmarks" not in builder.info.features
    assert not (tmp_path / "ffpp" / "c23" / "1.2.0" / "dataset_info.json").exists()
    images, targets = next(iter(data_lib.make_dataset(
        builder, "train", image_size=96, batch_size=8, training=True, deterministic=True,
        pseudo_fakes=0.5, stored_fakes=False)))
    assert images.shape == (8, 96, 96, 3)
    assert set(targets["label"].numpy()) == {0, 1}  # landmarks were found on the faces
    # Its noise sigma is its config's, though the stored build records none.
    assert data_lib._build_sigma(builder) == 5.0


def test_pseudo_fake_grid_shows_real_faces_of_the_split(dummy_ffpp):
    grid = data_lib.pseudo_fake_grid(dummy_ffpp, "train", rows=2, seed=0, cell=64)
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[2] == 3
    assert grid.shape[0] > 2 * 64 and grid.std() > 10
