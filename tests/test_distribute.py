"""FFSeg under tf.distribute (two logical CPUs) and under the JAX backend.

Each case runs in a fresh interpreter: TensorFlow must split the CPU into
logical devices before its first op, and the Keras backend is fixed at import.
"""

import json
import math
import textwrap

import pytest

from tests.scripts import run_python

COMMON = """
import numpy as np

def random_batch(batch_size, image_size, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")
    label = (np.arange(batch_size) % 2).astype("int32")
    mask = np.zeros((batch_size, image_size, image_size, 1), "float32")
    mask[label == 1, 10:50, 10:50] = 1.0
    noise = rng.normal(scale=3.0, size=mask.shape).astype("float32")
    return images, {"label": label, "method": 2 * label, "mask": mask, "noise": noise}

SMALL = dict(image_size=71, head_filters=(8, 8, 8), classifier_filters=8)
"""

MIRRORED_STEP = """
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras

# float64 makes the two runs agree to rounding (2e-16 seen): in float32 the
# rounding differences of the all-reduces grow through ~30 batch-normalised
# layers of a 4-image batch to ~1e-4 after one step, the size of the effects
# this test is for.
keras.config.set_floatx("float64")
from ffseg.models.ffseg_model import FFSeg

images, targets = random_batch(4, 71)
dataset = tf.data.Dataset.from_tensor_slices((images, targets)).batch(4, drop_remainder=True)

def train_one_step(model, initial_weights):
    model.set_weights(initial_weights)
    # Plain SGD: a gradient off by the replica count would move weights 2x.
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05))
    history = model.fit(dataset, epochs=1, verbose=0).history
    return model.get_weights(), {name: values[-1] for name, values in history.items()}

keras.utils.set_random_seed(0)
single = FFSeg(**SMALL)
initial = [np.copy(weight) for weight in single.get_weights()]
single_weights, single_logs = train_one_step(single, initial)

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = FFSeg(**SMALL)
    mirrored_weights, mirrored_logs = train_one_step(mirrored, initial)

print("RESULT " + json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "max_weight_difference": max(
        float(np.abs(a - b).max()) for a, b in zip(single_weights, mirrored_weights)
    ),
    "max_weight_change": max(
        float(np.abs(a - b).max()) for a, b in zip(single_weights, initial)
    ),
    "single": single_logs,
    "mirrored": mirrored_logs,
}))
"""

JAX_STEP = """
import keras
from ffseg.models.ffseg_model import FFSeg

assert keras.backend.backend() == "jax", keras.backend.backend()
images, targets = random_batch(2, 71)
model = FFSeg(**SMALL)
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01))
history = model.fit(images, targets, batch_size=2, epochs=1, verbose=0).history
print("RESULT " + json.dumps({name: values[-1] for name, values in history.items()}))
"""


def _run(script, backend, timeout=420):
    code = "import json\n" + textwrap.dedent(COMMON) + textwrap.dedent(script)
    completed = run_python(
        code, env={"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=timeout
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    (line,) = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line[len("RESULT ") :])


def test_mirrored_step_equals_single_device_step():
    result = _run(MIRRORED_STEP, "tensorflow")
    assert result["replicas"] == 2
    # The comparison can only catch a scaling error if the step moved weights.
    assert result["max_weight_change"] > 1e-3
    assert result["max_weight_difference"] < 1e-9
    single, mirrored = result["single"], result["mirrored"]
    assert set(single) == set(mirrored)
    for name in ("loss", "classification_loss", "noise_loss", "mask_loss"):
        # Trackers must show the true components, not 1/replicas of them.
        assert mirrored[name] == pytest.approx(single[name], rel=1e-9), name


def test_jax_backend_trains():
    pytest.importorskip("jax")
    logs = _run(JAX_STEP, "jax")
    assert {"loss", "classification_loss", "noise_loss", "mask_loss", "auc", "iou"} <= set(logs)
    assert all(math.isfinite(value) for value in logs.values())
    assert logs["loss"] == pytest.approx(
        logs["classification_loss"] + 0.1 * logs["noise_loss"] + logs["mask_loss"], rel=1e-5
    )
