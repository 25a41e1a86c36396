import numpy as np

from ffseg.data import pipeline as data_lib


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
