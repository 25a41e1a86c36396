"""A `.keras` FFSeg moves between the TensorFlow and JAX backends unchanged.

The Keras backend is fixed when keras is first imported, so each side runs in
a fresh interpreter: TensorFlow saves a model that JAX loads and scores, JAX
trains and saves one that TensorFlow loads and scores. Every output (score,
class probabilities, semantic, noise and localization maps) on real face crops
must agree within 1e-4 across the two backends.
"""

import json
import textwrap

import numpy as np
import pytest

from ffseg.signal import faces
from tests import media
from tests.scripts import run_python

SIZE = 71
TOLERANCE = 1e-4

# Builds FFSeg, moves its weights and batch-norm statistics off their initial
# values with two training steps on the crops (a fresh model's maps are nearly
# constant and would hide a wrongly loaded weight), saves it and scores.
SAVE = """
import keras
import numpy as np
from ffseg.models.ffseg_model import FFSeg

assert keras.backend.backend() == BACKEND, keras.backend.backend()
keras.utils.set_random_seed(SEED)
crops = np.load(CROPS).astype("float32")
model = FFSeg(image_size=crops.shape[1], backbone_weights=None, batch_norm_momentum=0.5)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3))
size = crops.shape[1]
mask = np.zeros((len(crops), size, size, 1), "float32")
mask[1::2, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1.0
targets = {
    "label": (np.arange(len(crops)) % 2).astype("int32"),
    "mask": mask,
    "noise": np.random.default_rng(SEED).normal(scale=3.0, size=mask.shape).astype("float32"),
}
model.fit(crops, targets, batch_size=len(crops), epochs=2, verbose=0)
model.save(MODEL)
save_outputs(model.predict(crops, verbose=0), OUTPUTS)
"""

SCORE = """
import keras
import numpy as np
import ffseg.models  # noqa: F401  (registers the classes)

assert keras.backend.backend() == BACKEND, keras.backend.backend()
loaded = keras.saving.load_model(LOAD)
save_outputs(loaded.predict(np.load(CROPS).astype("float32"), verbose=0), SCORED)
"""

COMMON = """
import numpy as np

def save_outputs(outputs, path):
    np.savez(path, **{name: np.asarray(value, "float32") for name, value in outputs.items()})
"""


def _run(script, backend, **names):
    assignments = "".join(f"{key} = {json.dumps(value)}\n" for key, value in names.items())
    code = (
        f"BACKEND = {backend!r}\n" + assignments + textwrap.dedent(COMMON) + textwrap.dedent(script)
    )
    completed = run_python(
        code, env={"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-4000:]


def _outputs(path):
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files}


def _assert_same(saved, scored, description):
    assert set(saved) == set(scored), description
    assert {"score", "class_probabilities", "localization_map", "noise_map_3"} <= set(saved)
    for name in saved:
        assert saved[name].shape == scored[name].shape, (description, name)
        difference = float(np.abs(saved[name] - scored[name]).max())
        assert difference <= TOLERANCE, f"{description}: {name} differs by {difference}"


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """Real face crops (dlib boxes, FF++ 1.3x square) of the two sample photos, flipped too."""
    images = []
    for name in ("astronaut", "grace_hopper"):
        photo = media.PHOTOS[name]()
        box = faces.face_box(media.photo_face_box(name), photo.shape)
        face = faces.crop(photo, box, size=SIZE)
        images += [face, face[:, ::-1]]
    path = tmp_path_factory.mktemp("crops") / "crops.npy"
    np.save(path, np.stack(images).astype("uint8"))
    return str(path)


def test_keras_file_moves_between_tensorflow_and_jax(crops, tmp_path):
    pytest.importorskip("jax")
    paths = {
        name: str(tmp_path / name)
        for name in (
            "tf.keras",
            "jax.keras",
            "tf_saved.npz",
            "tf_in_jax.npz",
            "jax_saved.npz",
            "jax_in_tf.npz",
        )
    }
    # TensorFlow saves; JAX scores it, then trains and saves its own; TensorFlow scores that.
    _run(SAVE, "tensorflow", SEED=1, CROPS=crops, MODEL=paths["tf.keras"],
         OUTPUTS=paths["tf_saved.npz"])
    _run(SCORE + SAVE, "jax", CROPS=crops, LOAD=paths["tf.keras"],
         SCORED=paths["tf_in_jax.npz"], SEED=2, MODEL=paths["jax.keras"],
         OUTPUTS=paths["jax_saved.npz"])
    _run(SCORE, "tensorflow", CROPS=crops, LOAD=paths["jax.keras"],
         SCORED=paths["jax_in_tf.npz"])

    tf_saved, jax_saved = _outputs(paths["tf_saved.npz"]), _outputs(paths["jax_saved.npz"])
    _assert_same(tf_saved, _outputs(paths["tf_in_jax.npz"]), "saved under TF, scored under JAX")
    _assert_same(jax_saved, _outputs(paths["jax_in_tf.npz"]), "saved under JAX, scored under TF")
    # The comparison only means something if the models score the faces
    # differently from one another and from a constant.
    for outputs in (tf_saved, jax_saved):
        assert float(np.ptp(outputs["localization_map"])) > 1e-3
    assert float(np.abs(tf_saved["score"] - jax_saved["score"]).max()) > 1e-4


@pytest.mark.parametrize("input_size", [5, 9, 33, 71])
def test_localization_upsampling_is_bilinear_resize(input_size):
    """The matrix upsampling equals eager bilinear resize (float32 coordinates: 1e-5)."""
    from keras import ops

    from ffseg.models.heads import bilinear_matrix, bilinear_upsample

    maps = np.random.default_rng(input_size).uniform(size=(2, input_size, input_size, 1))
    maps = maps.astype("float32")
    upsampled = ops.convert_to_numpy(bilinear_upsample(ops.convert_to_tensor(maps), (71, 71)))
    assert upsampled.shape == (2, 71, 71, 1)
    # Each output pixel is a convex combination of at most two inputs per axis.
    matrix = bilinear_matrix(input_size, 71)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-6)
    assert ((matrix > 0).sum(axis=1) <= 2).all()
    tf = pytest.importorskip("tensorflow")
    expected = tf.image.resize(maps, (71, 71), method="bilinear").numpy()
    np.testing.assert_allclose(upsampled, expected, atol=1e-5)
    jax = pytest.importorskip("jax")
    expected = np.asarray(jax.image.resize(maps, (2, 71, 71, 1), method="linear"))
    np.testing.assert_allclose(upsampled, expected, atol=1e-5)
