"""The two loaders: tf.data (`ffseg.data.pipeline`) and NumPy (`ffseg.data.arrays`).

Both read builds of the same dummy FF++ data (TFRecord for tf.data,
array_record for NumPy) and share the per-example decisions of
`ffseg.data.augment` (one integer hash, evaluated with TensorFlow ops in the
tf.data graph and with NumPy here): the same examples, the same resizing,
the same flipped stream positions and the same balanced draws for the same
seed.
"""

import json
import os
import textwrap

import numpy as np
import pytest

from ffseg.data import augment
from ffseg.data.arrays import ArrayLoader, as_py_dataset, find_build, open_build
from ffseg.errors import FileError
from tests.scripts import run_python

# Makes `import tensorflow` fail in a process, as if it were not installed
# (`importlib.util.find_spec` still answers, as for a broken install).
BLOCK_TENSORFLOW = """
import importlib.abc, importlib.machinery, sys

class _Blocked(importlib.abc.Loader):
    def create_module(self, spec):
        raise ImportError(f"{spec.name} is blocked in this process")

    def exec_module(self, module):
        pass

class _BlockTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return importlib.machinery.ModuleSpec(name, _Blocked())
        return None

sys.meta_path.insert(0, _BlockTensorFlow())
"""


@pytest.fixture(scope="module")
def array_build(tmp_path_factory):
    """The dummy FF++ data of `dummy_ffpp`, built as array_record; its build folder."""
    import tensorflow_datasets as tfds

    import tfds_ffpp.ffpp  # noqa: F401  (registers `ffpp`)
    from tfds_ffpp.ffpp import ffpp_dataset_builder

    manual_dir = os.path.join(os.path.dirname(ffpp_dataset_builder.__file__), "dummy_data")
    data_dir = str(tmp_path_factory.mktemp("tfds_array_record"))
    builder = tfds.builder("ffpp/c23", data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    return builder.data_dir


def _tf_batches(builder, split, count=None, **kwargs):
    from ffseg.data import pipeline

    ds = pipeline.make_dataset(builder, split, **kwargs)
    if count is not None:
        ds = ds.take(count)
    return [(x.numpy(), {k: v.numpy() for k, v in y.items()}) for x, y in ds]


def _array_batches(build, split, count=None, **kwargs):
    batches = []
    for batch in ArrayLoader(open_build(build), split, **kwargs):
        batches.append(batch)
        if count is not None and len(batches) == count:
            break
    return batches


def test_the_hash_is_the_same_integers_in_tensorflow_and_numpy():
    import tensorflow as tf

    positions = np.concatenate([np.arange(5000), [2**31 - 2, 2**31 - 1, 2**31, 2**40 + 3]])
    for seed in (0, 1, 7, -5, 2**33 + 1):
        for decide in (augment.flip_decision, augment.stream_choice):
            from_numpy = decide(seed, positions)
            from_tf = decide(
                tf.constant(seed, tf.int64), tf.constant(positions, tf.int64),
                ops=augment.tensorflow_ops(),
            ).numpy()
            np.testing.assert_array_equal(from_tf, from_numpy)
        flips = augment.flip_decision(seed, positions[:5000])
        draws = augment.stream_choice(seed, positions[:5000])
        assert set(draws.tolist()) == {0, 1}
        # Fair, and the flip of a position says nothing of its draw or of the next flip.
        assert 0.47 < flips.mean() < 0.53 and 0.47 < draws.mean() < 0.53
        assert abs(np.corrcoef(flips, draws)[0, 1]) < 0.05
        assert abs(np.corrcoef(flips[1:], flips[:-1])[0, 1]) < 0.05
    other_seed = augment.flip_decision(1, positions)
    assert not np.array_equal(augment.flip_decision(0, positions), other_seed)


def test_tf_data_balanced_stream_draws_the_shared_stream_choices(dummy_ffpp):
    from ffseg.data import pipeline

    seed, count = 5, 64
    stream = pipeline.example_stream(
        dummy_ffpp, "train", training=True, deterministic=True, seed=seed, balance=True,
        shuffle_buffer=16,
    )
    labels = np.array([int(e["label"]) for e in stream.take(count).as_numpy_iterator()])
    np.testing.assert_array_equal(labels, augment.stream_choice(seed, np.arange(count)))


@pytest.mark.parametrize("image_size", [299, 71])
def test_evaluation_batches_are_the_same_on_both_loaders(dummy_ffpp, array_build, image_size):
    args = dict(image_size=image_size, batch_size=5, training=False)
    from_tf = _tf_batches(dummy_ffpp, "test", **args)
    from_arrays = _array_batches(array_build, "test", **args)
    assert len(from_tf) == len(from_arrays) == 5  # 24 test examples, the last batch partial
    # Area averaging sums in another order than TensorFlow's kernel: float32
    # rounding only (pixels are 0..255); at the stored size nothing is resized.
    tolerance = 0.0 if image_size == 299 else 5e-3
    for (x0, y0), (x1, y1) in zip(from_tf, from_arrays):
        assert x0.shape == x1.shape and x0.dtype == x1.dtype == np.float32
        np.testing.assert_allclose(x1, x0, rtol=0, atol=tolerance)
        np.testing.assert_allclose(y1["noise"], y0["noise"], rtol=0, atol=tolerance)
        for key in ("label", "method", "mask"):
            assert y1[key].dtype == y0[key].dtype, key
            np.testing.assert_array_equal(y1[key], y0[key], err_msg=key)
    labels = np.concatenate([y["label"] for _, y in from_tf])
    assert 0 < labels.sum() < len(labels)  # real and fake faces both compared


def _flipped_positions(plain, flipped):
    """Stream positions whose image, mask and noise are mirrored (all three or none)."""
    positions = []
    for batch, ((x0, y0), (x1, y1)) in enumerate(zip(plain, flipped)):
        for i in range(len(x0)):
            same = np.array_equal(x0[i], x1[i])
            assert same or np.array_equal(x0[i][:, ::-1], x1[i])
            for key in ("mask", "noise"):
                expected = y0[key][i] if same else y0[key][i][:, ::-1]
                np.testing.assert_array_equal(y1[key][i], expected)
            if not same:
                positions.append(batch * len(x0) + i)
    return positions


def test_both_loaders_flip_the_positions_the_shared_decision_picks(dummy_ffpp, array_build):
    seed, batches, batch_size = 7, 3, 4
    expected = list(np.flatnonzero(augment.flip_decision(seed, np.arange(batches * batch_size))))
    assert 0 < len(expected) < batches * batch_size
    args = dict(image_size=299, batch_size=batch_size, training=True, seed=seed)
    tf_args = dict(args, deterministic=True)
    tf_flips = _flipped_positions(
        _tf_batches(dummy_ffpp, "train", batches, flip=False, **tf_args),
        _tf_batches(dummy_ffpp, "train", batches, flip=True, **tf_args),
    )
    array_flips = _flipped_positions(
        _array_batches(array_build, "train", batches, flip=False, **args),
        _array_batches(array_build, "train", batches, flip=True, **args),
    )
    # A mirrored face that is symmetric would hide a flip: none is, here.
    assert tf_flips == array_flips == expected


def test_array_stream_is_deterministic_and_resumes(array_build):
    args = dict(image_size=71, batch_size=4, training=True, seed=3, balance=True)
    first = _array_batches(array_build, "train", 3, **args)
    again = _array_batches(array_build, "train", 3, **args)
    for (a, ya), (b, yb) in zip(first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ya["noise"], yb["noise"])
    resumed = _array_batches(array_build, "train", 2, skip=4, **args)
    for (a, ya), (b, yb) in zip(first[1:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ya["mask"], yb["mask"])
    other = _array_batches(array_build, "train", 3, **dict(args, seed=4))
    assert any(not np.array_equal(a, b) for (a, _), (b, _) in zip(first, other))


def _stream_labels(build, count, **kwargs):
    loader = ArrayLoader(open_build(build), "train", image_size=71, batch_size=1, training=True,
                         **kwargs)
    labels = []
    for _, index in loader.example_order():
        labels.append(int(loader.labels[index]))
        if len(labels) == count:
            return np.array(labels)


def test_array_balance_evens_a_1_to_4_build(array_build):
    unbalanced = _stream_labels(array_build, 2000, seed=1)
    assert unbalanced.mean() > 0.7  # the dummy train split stores ~4 fakes per real face
    balanced = _stream_labels(array_build, 2000, seed=1, balance=True)
    assert 0.45 <= balanced.mean() <= 0.55


def test_array_method_filter_keeps_real_faces_and_the_listed_methods(array_build):
    builder = open_build(array_build)
    loader = ArrayLoader(builder, "test", image_size=71, batch_size=4, training=False)
    assert all(int(loader.source[int(i)]["method"]) == loader.methods[i] for i in range(3))
    everything = set(loader.methods.tolist())
    assert everything == {0, 1, 2, 3, 4}
    deepfakes = ArrayLoader(builder, "test", image_size=71, batch_size=4, training=False,
                            methods=["Deepfakes"])
    methods = np.concatenate([y["method"] for _, y in deepfakes])
    assert set(methods.tolist()) == {0, 1}
    assert (methods == 0).sum() == (loader.methods == 0).sum()
    with pytest.raises(ValueError, match="methods must be among"):
        ArrayLoader(builder, "test", image_size=71, batch_size=4, training=False,
                    methods=["Faceswap"])


def test_array_loader_refuses_pseudo_fakes_in_one_line(array_build):
    builder = open_build(array_build)
    for options in (dict(pseudo_fakes=0.3), dict(pseudo_fakes=0.3, stored_fakes=False)):
        with pytest.raises(FileError, match="makes no pseudo-fakes") as raised:
            ArrayLoader(builder, "train", image_size=71, batch_size=2, training=True, **options)
        assert "\n" not in str(raised.value) and str(builder.data_dir) in str(raised.value)


def test_find_build_finds_the_newest_build_and_names_a_missing_one(array_build, tmp_path):
    data_dir = os.path.dirname(os.path.dirname(os.path.dirname(array_build)))
    assert find_build("ffpp/c23", data_dir) == str(array_build)
    with pytest.raises(FileError, match="array_record") as raised:
        find_build("ffpp/c40", data_dir)
    assert os.path.join(data_dir, "ffpp", "c40") in str(raised.value)


def test_py_dataset_serves_the_loader_batches(array_build):
    builder = open_build(array_build)
    args = dict(image_size=71, batch_size=3, training=True, seed=2, balance=True)
    loader = ArrayLoader(builder, "train", **args)
    batches = as_py_dataset(loader)
    assert batches.num_batches is None  # endless, as a training stream is
    direct = _array_batches(array_build, "train", 2, **args)
    for number, (x, y) in enumerate(direct):
        x1, y1 = batches[number]
        np.testing.assert_array_equal(x1, x)
        np.testing.assert_array_equal(y1["label"], y["label"])
    # As `fit` reads it, with the trainer's worker threads: the same batches, in order.
    from keras.src.trainers.data_adapters import get_data_adapter

    from ffseg.config import DataConfig
    from ffseg.training.trainer import loader_threads

    assert loader_threads(DataConfig(loader_workers=3)) == 3
    assert 1 <= loader_threads(DataConfig()) <= 8
    adapter = get_data_adapter(as_py_dataset(ArrayLoader(builder, "train", **args), workers=3))
    stream = adapter.get_numpy_iterator()
    for x, y in direct:
        x1, y1 = next(stream)
        np.testing.assert_array_equal(x1, x)
        np.testing.assert_array_equal(y1["label"], y["label"])
    evaluation = ArrayLoader(builder, "test", image_size=71, batch_size=5, training=False)
    assert as_py_dataset(evaluation).num_batches == len(evaluation) == 5
    assert as_py_dataset(evaluation, batches=2).num_batches == 2
    with pytest.raises(IndexError):
        evaluation.batch(5)


def test_open_build_refuses_a_tfrecord_build_naming_it(dummy_ffpp):
    with pytest.raises(FileError, match="array_record") as raised:
        open_build(dummy_ffpp.data_dir)
    assert str(dummy_ffpp.data_dir) in str(raised.value)


def test_array_loader_needs_no_tensorflow(array_build):
    code = BLOCK_TENSORFLOW + textwrap.dedent(f"""
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("the blocker let TensorFlow in")
        from ffseg.data.arrays import ArrayLoader, as_py_dataset, find_build, open_build

        loader = ArrayLoader(open_build({str(array_build)!r}), "train", image_size=71,
                             batch_size=4, training=True, balance=True)
        images, targets = next(iter(loader))
        assert images.shape == (4, 71, 71, 3), images.shape
        assert targets["noise"].shape == (4, 71, 71, 1)
        assert not [name for name in sys.modules if name.split(".")[0] == "tensorflow"]
        print("OK")
    """)
    completed = run_python(code, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().endswith("OK")


def test_noise_labels_at_another_sigma_are_the_same_on_both_loaders(dummy_ffpp, array_build):
    args = dict(image_size=299, batch_size=3, training=False, take=3, noise_sigma=10.0)
    (x0, y0), = _tf_batches(dummy_ffpp, "test", **args)
    (x1, y1), = _array_batches(array_build, "test", **args)
    np.testing.assert_array_equal(x1, x0)
    np.testing.assert_allclose(y1["noise"], y0["noise"], rtol=0, atol=1e-4)
    stored = _array_batches(array_build, "test", **dict(args, noise_sigma=None))[0][1]["noise"]
    assert np.abs(stored - y1["noise"]).max() > 0.1  # recomputed, not the stored label


def test_dataset_options_and_loader_options_carry_the_same_fields():
    from ffseg import config as config_lib
    from ffseg.data import arrays, pipeline

    data = config_lib.get_experiment("sample").data
    assert arrays.loader_options(data) == pipeline.dataset_options(data)


# The `sample` experiment, small: 71 px, batch 2, 1+1 epochs of 2 steps.
TRAIN_ARGS = [
    "--quiet", "--set", "data.dataset=ffpp/c23", "--set", "data.balance=true",
    "--set", "model.image_size=71", "--set", "train.batch_size=2",
    "--set", "train.steps_per_epoch=2", "--set", "train.validation_steps=1",
    "--set", "train.semantic_epochs=1", "--set", "train.full_epochs=1",
    "--set", "train.tensorboard_images=2",
]

# Trains under JAX from the array_record build, in a process where TensorFlow
# cannot be imported, then scores test faces with the resulting model.keras
# (still under JAX).
JAX_TRAIN = """
import keras
import numpy as np
from experiments import train

assert keras.backend.backend() == "jax", keras.backend.backend()
status = train.main(ARGS + ["--model_dir", MODEL_DIR, "--set", "data.data_dir=" + DATA_DIR])
assert status == 0, status
if SCORES:
    import ffseg.models  # noqa: F401  (registers the classes)
    from ffseg.data.arrays import ArrayLoader, find_build, open_build

    # Batch 2, as in training: the compiled predict step is reused.
    loader = ArrayLoader(open_build(find_build("ffpp/c23", DATA_DIR)), "test", image_size=71,
                         batch_size=2, training=False)
    images = loader.batch(0)[0]
    model = keras.saving.load_model(MODEL_DIR + "/model.keras", safe_mode=True)
    outputs = model.predict(images, verbose=0)
    np.savez(SCORES, images=images, **{k: np.asarray(v, "float32") for k, v in outputs.items()})
assert not [name for name in sys.modules if name.split(".")[0] == "tensorflow"]
print("OK")
"""


def _train_under_jax(data_dir, model_dir, scores=None, extra=()):
    code = BLOCK_TENSORFLOW + "".join(
        f"{name} = {value!r}\n"
        for name, value in dict(
            DATA_DIR=str(data_dir), MODEL_DIR=str(model_dir),
            SCORES=str(scores) if scores else None, ARGS=TRAIN_ARGS + list(extra),
        ).items()
    ) + textwrap.dedent(JAX_TRAIN)
    completed = run_python(code, env={"KERAS_BACKEND": "jax"}, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().endswith("OK")
    return completed.stderr


def test_jax_trains_the_sample_experiment_without_tensorflow(array_build, tmp_path):
    import keras

    data_dir = os.path.dirname(os.path.dirname(os.path.dirname(array_build)))
    model_dir, scores = tmp_path / "run", tmp_path / "jax_scores.npz"
    log = _train_under_jax(data_dir, model_dir, scores)
    assert "Strategy JaxDataParallel" in log
    # No TensorFlow: TensorBoard skipped once per step, the export once, each one line.
    assert log.count("no TensorBoard logs (TensorFlow cannot be imported") == 2
    assert log.count("No SavedModel export: TensorFlow cannot be imported") == 1
    assert not (model_dir / "export").exists() and not (model_dir / "logs").exists()
    summary = json.loads((model_dir / "training_summary.json").read_text())
    assert "saved_model" not in summary
    for step, monitor in (("semantic", "val_iou"), ("full", "val_auc")):
        assert summary["steps"][step]["best"]["monitor"] == monitor
        assert (model_dir / step / "done.weights.h5").exists()
        assert len(json.loads((model_dir / step / "epochs.json").read_text())) == 1
    assert (model_dir / "best.weights.h5").exists()
    assert (model_dir / "semantic" / "best.weights.h5").exists()
    # A finished run asked to resume is left as it is.
    log = _train_under_jax(data_dir, model_dir, extra=["--resume"])
    assert "holds a finished run of this config: nothing to do" in log

    # The JAX-trained model.keras scores the same faces under TensorFlow.
    import ffseg.models  # noqa: F401  (registers the classes)

    assert keras.backend.backend() == "tensorflow"
    expected = np.load(scores)
    model = keras.saving.load_model(str(model_dir / "model.keras"), safe_mode=True)
    outputs = model.predict(expected["images"], verbose=0)
    assert len(outputs) >= 5 and set(outputs) <= set(expected.files)
    for name, value in outputs.items():
        np.testing.assert_allclose(np.asarray(value), expected[name], rtol=0, atol=1e-4,
                                   err_msg=name)
