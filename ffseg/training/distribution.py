"""Where training runs: the tf.distribute strategy or the JAX distribution, the chief, workers.

- One machine: `MirroredStrategy` over its GPUs (over its CPU when it has
  none), with the global batch split across replicas.
- Several machines: `MultiWorkerMirroredStrategy` when `TF_CONFIG` names a
  cluster. Every worker builds the same dataset batched by the global batch;
  only the chief writes the run folder, the others write to scratch folders.
- The JAX backend (`KERAS_BACKEND=jax`): `keras.distribution.DataParallel`
  over the local devices (`JaxDataParallel`): the variables are replicated,
  each global batch is split along its first axis across the devices and
  the compiled step reduces the gradients (one host; TensorFlow is not
  imported).

Keras 3.15's `fit` fails under `MultiWorkerMirroredStrategy`
(keras-team/keras#20585) at two places: the symbolic build reduces a
per-replica batch ("Attempt to convert ... PerReplica"), and scalar logs are
reduced across replicas along axis 0 ("Invalid reduction dimension 0").
`apply_multi_worker_workaround` avoids both, and only for the Keras versions
known to need it (`needs_multi_worker_workaround`): once a Keras release
fixes the issue, raise `KERAS_FIXED_IN` to it and the workaround turns itself
off. The two-worker test (tests/test_training.py) runs `fit` under the
installed Keras either way, so a Keras that still fails is caught there.
"""

from __future__ import annotations

import contextlib
import json
import os
import re

import keras

# The first Keras release assumed to fix keras-team/keras#20585. 3.15 (the
# newest checked) still fails; raise this when a release is seen failing too.
KERAS_FIXED_IN = (3, 16)


def _version_tuple(version: str):
    """"3.15.0" -> (3, 15, 0); "3.16.0rc1" -> (3, 16, 0)."""
    parts = []
    for part in version.split(".")[:3]:
        digits = re.match(r"\d*", part).group()
        parts.append(int(digits or 0))
        if digits != part:
            break  # "0rc1", "dev0": the rest is not a release number
    return tuple(parts)


def needs_multi_worker_workaround(version: str | None = None) -> bool:
    """Whether this Keras (or `version`) has keras-team/keras#20585.

    Example:

    >>> needs_multi_worker_workaround("3.15.0"), needs_multi_worker_workaround("3.16.0")
    (True, False)
    """
    return _version_tuple(version or keras.__version__) < KERAS_FIXED_IN


def is_jax() -> bool:
    """Whether Keras runs on JAX (`KERAS_BACKEND=jax`)."""
    return keras.backend.backend() == "jax"


class JaxDataParallel:
    """The JAX backend's counterpart of a tf.distribute strategy, for the trainer.

    Wraps `keras.distribution.DataParallel` over `devices` (default: all
    local devices, `keras.distribution.list_devices()`). `run_scope()` makes
    it Keras' distribution for a whole run (model building, `fit`,
    `predict`); `scope()` is then a no-op, as the trainer calls it where a
    tf.distribute strategy needs it.

    Args:
        devices: device names as Keras lists them, e.g. ["gpu:0", "gpu:1"].

    Example:

    ```python
    # KERAS_BACKEND=jax
    from ffseg.training.distribution import get_strategy, run_scope

    strategy = get_strategy()  # JaxDataParallel over the local devices
    with run_scope(strategy):
        ...  # build, compile and fit: each batch is split over the devices
    ```
    """

    def __init__(self, devices=None):
        self.devices = list(devices or keras.distribution.list_devices())
        self.distribution = keras.distribution.DataParallel(devices=self.devices)

    @property
    def num_replicas_in_sync(self) -> int:
        return len(self.devices)

    def scope(self):
        return contextlib.nullcontext()


def run_scope(strategy):
    """The context a whole training run goes in: Keras' JAX distribution, or nothing.

    A tf.distribute strategy is entered where variables are made
    (`strategy.scope()`); the JAX distribution must also be current when
    `fit` shards the batches, so it spans the run.
    """
    if isinstance(strategy, JaxDataParallel):
        return strategy.distribution.scope()
    return contextlib.nullcontext()


def get_strategy():
    """Multi-worker when `TF_CONFIG` names a cluster, else all local devices.

    Under the JAX backend, `JaxDataParallel` over the local devices (a
    `TF_CONFIG` cluster is refused: the JAX path runs on one host).

    Create it before any other TensorFlow op: a collective strategy must
    configure the runtime first.
    """
    if is_jax():
        if os.environ.get("TF_CONFIG"):
            raise ValueError(
                "TF_CONFIG names a cluster, but KERAS_BACKEND=jax trains on one host: "
                "unset TF_CONFIG, or train the cluster with the TensorFlow backend"
            )
        return JaxDataParallel()
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    cpus = tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in cpus])


def is_multi_worker(strategy) -> bool:
    if isinstance(strategy, JaxDataParallel):
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy=None) -> bool:
    """Whether this process writes the run folder.

    The chief task of `TF_CONFIG`'s cluster, or worker 0 of a cluster without
    one; every process off a cluster. Read from `TF_CONFIG` alone, so it can
    be asked before the strategy exists (`strategy` is accepted, unused).
    """
    del strategy
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task") or {}
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    cluster = tf_config.get("cluster") or {}
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and not cluster.get(
        "chief"
    )


def num_workers(strategy) -> int:
    """Processes taking part in training (1 off a multi-worker cluster)."""
    if not is_multi_worker(strategy):
        return 1
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def task_name() -> str:
    """This process's task in `TF_CONFIG`'s cluster, e.g. "worker-1" ("chief" off a cluster)."""
    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task") or {}
    if not task:
        return "chief"
    return f"{task.get('type', 'worker')}-{int(task.get('index', 0))}"


def _vector_logs(step_fn):
    """Wraps a train/test step so that its scalar logs are shape [1].

    Keras reduces the per-replica logs of a collective strategy with
    `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars; a [1]
    vector reduces to the same mean.
    """

    import tensorflow as tf

    def step(data):
        logs = step_fn(data)
        return {k: tf.reshape(v, [1]) for k, v in logs.items()}

    return step


def apply_multi_worker_workaround(model, strategy) -> bool:
    """Makes `model.fit` work under `strategy` where Keras needs help.

    Call after the model and its optimizer are built (`compile_model` builds
    the optimizer), before `fit`. Does nothing off multi-worker training or
    on a Keras without keras-team/keras#20585. Returns whether it applied.
    """
    if not (is_multi_worker(strategy) and needs_multi_worker_workaround()):
        return False
    if "train_step" not in vars(model):  # once per model, not once per compile
        model.train_step = _vector_logs(model.train_step)
        model.test_step = _vector_logs(model.test_step)
    # Keras reduces the first distributed batch to build the model
    # symbolically, which fails for a collective strategy. The model and its
    # optimizer are already built and FFSeg compiles no loss or metrics, so
    # the symbolic build has nothing to do: skip it.
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    return True
