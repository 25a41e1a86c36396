"""Training FFSeg: strategy, the paper's two steps, callbacks, export.

`train(config, model_dir)` is what `python -m experiments.train` runs:

1. writes the resolved config to `model_dir/config.json`;
2. picks the strategy: MultiWorkerMirroredStrategy when `TF_CONFIG` is set,
   else MirroredStrategy over the visible GPUs (the CPU when there are none);
3. prepares the TFDS dataset if missing (`ffpp/sample` builds itself);
4. step 1 ("semantic": backbone + semantic heads + classifier, noise branch
   frozen), then step 2 ("full": everything, from step 1's weights), each a
   `fit` with TensorBoard, best-on-validation-AUC checkpoint and
   `BackupAndRestore`;
5. saves `model.keras` and exports the SavedModel for serving.

Resuming: `BackupAndRestore` backs up at every epoch end. A run killed at any
point restarts the interrupted epoch from that epoch's starting weights, and
the training stream is fast-forwarded to the same place (the shuffled stream
is deterministic given `data.seed`), so no batch is trained twice or skipped.
A step that finished leaves `<stage>/done.weights.h5` and is not re-run.
"""

from __future__ import annotations

import json
import logging
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from ffseg.config import ExperimentConfig
from ffseg.constants import BINARY_CLASS_NAMES, CLASS_NAMES, TRAINING_STAGES
from ffseg.data import pipeline as data_lib
from ffseg.inference import export as export_lib
from ffseg.training.callbacks import BestCheckpoint, MapImages

STAGES = TRAINING_STAGES


def get_strategy() -> tf.distribute.Strategy:
    """Multi-worker when `TF_CONFIG` names a cluster, else one machine."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    cpus = tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in cpus])


def is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not os.environ.get("TF_CONFIG"):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0)


def _is_multi_worker(strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _num_workers(strategy) -> int:
    if not _is_multi_worker(strategy):
        return 1
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def _vector_logs(step_fn):
    """Wraps a train/test step so its scalar logs are shape [1].

    Keras 3.15 reduces per-replica logs of a multi-worker collective strategy
    with `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars
    (keras-team/keras#20585); a [1] vector reduces to the same mean.
    """

    def step(data):
        logs = step_fn(data)
        return {k: tf.reshape(v, [1]) for k, v in logs.items()}

    return step


def build_model(config: ExperimentConfig, stage: str):
    from ffseg.models.ffseg_model import FFSeg, ffseg_arguments

    model = FFSeg(**ffseg_arguments(config.model, config.loss))
    model.set_training_stage(stage)
    return model


def compile_model(model, config: ExperimentConfig):
    # Keras' Adam applies weight decay decoupled from the gradient (as AdamW);
    # the authors' PyTorch Adam adds it to the gradient. At 1e-5 the
    # difference is small; we keep Keras' form.
    optimizer = keras.optimizers.Adam(
        learning_rate=config.train.learning_rate,
        beta_1=0.9,
        beta_2=0.999,
        weight_decay=config.train.weight_decay or None,
    )
    model.compile(optimizer=optimizer)
    # Building the optimizer and model here avoids Keras' symbolic build on a
    # distributed batch, which fails under MultiWorkerMirroredStrategy.
    model.optimizer.build(model.trainable_variables)


def _resume_epoch(backup_dir: str) -> int:
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(json.load(f).get("epoch", 0))


def _steps(builder, split: str, batch_size: int, requested, *, training: bool) -> int:
    if requested:
        return int(requested)
    count = builder.info.splits[split].num_examples
    steps = count // batch_size if training else -(-count // batch_size)
    if steps < 1:
        raise ValueError(
            f"split {split!r} of {builder.info.full_name} has {count} examples, "
            f"fewer than one batch of {batch_size}"
        )
    return steps


def _worker_dir(model_dir: str, chief: bool, name: str) -> str:
    """Non-chief workers write to a private scratch folder (saved, then unused)."""
    if chief:
        return model_dir
    import tempfile

    return tempfile.mkdtemp(prefix=f"ffseg-{name}-")


def train(config: ExperimentConfig, model_dir: str, *, verbose="auto", callbacks=()) -> dict:
    """Runs the experiment; returns paths of what it wrote and the final logs.

    `callbacks` are added to each step's `fit` (after the built-in ones).
    """
    strategy = get_strategy()
    chief = is_chief(strategy)
    os.makedirs(model_dir, exist_ok=True)
    out_dir = _worker_dir(model_dir, chief, "worker")
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(config.to_json())
    logging.info(
        "Strategy %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync
    )
    if config.train.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    if config.data.deterministic:
        keras.utils.set_random_seed(config.data.seed)
        tf.config.experimental.enable_op_determinism()

    builder = data_lib.ensure_built(
        config.data.dataset, data_dir=config.data.data_dir, manual_dir=config.data.manual_dir
    )
    # Before any training: a dataset without a method the run asks for stops it.
    data_lib.check_methods(builder, config.data.methods)
    train_split, val_split = config.data.train_split, config.data.validation_split
    batch = config.train.batch_size
    steps_per_epoch = _steps(
        builder, train_split, batch, config.train.steps_per_epoch, training=True
    )
    val_take = config.data.max_validation_examples
    workers = _num_workers(strategy)
    splits = builder.info.splits
    dataset_kwargs = dict(
        image_size=config.model.image_size,
        batch_size=batch,
        **data_lib.dataset_options(config.data),
        shard_by_files=min(splits[train_split].num_shards, splits[val_split].num_shards) >= workers,
    )
    val_ds = data_lib.make_dataset(
        builder, val_split, training=False, take=val_take, **dataset_kwargs
    )
    image_batch = next(iter(val_ds.unbatch().batch(config.train.tensorboard_images)))

    results = {"model_dir": model_dir, "stages": {}}
    model = None
    for stage in STAGES:
        epochs = getattr(config.train, f"{stage}_epochs")
        stage_dir = os.path.join(out_dir, stage)
        done_path = os.path.join(stage_dir, "done.weights.h5")
        if epochs <= 0:
            continue
        with strategy.scope():
            if model is None:
                model = build_model(config, stage)
                model(np.zeros((1,) + (config.model.image_size,) * 2 + (3,), np.float32))
            else:
                with warnings.catch_warnings():
                    # The recompile just below is what that warning asks for.
                    warnings.filterwarnings("ignore", "set_training_stage")
                    model.set_training_stage(stage)
            compile_model(model, config)
        if _is_multi_worker(strategy) and "train_step" not in vars(model):
            model.train_step = _vector_logs(model.train_step)
            model.test_step = _vector_logs(model.test_step)
            # Keras 3.15 reduces the first distributed batch to build the
            # model symbolically, which fails for a multi-worker collective
            # strategy (keras-team/keras#20585). The model and its optimizer
            # are built above and FFSeg compiles no loss or metrics, so the
            # symbolic build has nothing to do: skip it.
            model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
        if os.path.exists(done_path):
            logging.info("Step %r already finished: loading %s", stage, done_path)
            model.load_weights(done_path)
            continue
        backup_dir = os.path.join(stage_dir, "backup")
        initial_epoch = _resume_epoch(backup_dir)
        if initial_epoch:
            logging.info("Resuming step %r at epoch %d", stage, initial_epoch)
        # Each step reads its own deterministic stream; a resumed step skips
        # exactly the examples its finished epochs consumed.
        train_ds = data_lib.make_dataset(
            builder,
            train_split,
            training=True,
            skip=initial_epoch * steps_per_epoch * batch,
            **dataset_kwargs,
        )
        stage_callbacks = [
            keras.callbacks.BackupAndRestore(backup_dir, save_freq="epoch"),
            keras.callbacks.TensorBoard(os.path.join(out_dir, "logs", stage)),
            MapImages(os.path.join(out_dir, "logs", stage, "maps"), image_batch),
            BestCheckpoint(os.path.join(out_dir, "best.weights.h5"), monitor="val_auc"),
            *callbacks,
        ]
        history = model.fit(
            train_ds,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=val_ds,
            validation_steps=config.train.validation_steps,
            callbacks=stage_callbacks,
            verbose=verbose,
            shuffle=False,  # the dataset shuffles itself
        )
        model.save_weights(done_path)
        results["stages"][stage] = {k: [float(v) for v in vs] for k, vs in history.history.items()}

    if model is None:
        raise ValueError("nothing to train: semantic_epochs and full_epochs are both 0")
    best_path = os.path.join(out_dir, "best.weights.h5")
    if os.path.exists(best_path):
        with warnings.catch_warnings():
            # The best epoch may be from step 1, whose optimizer had fewer
            # variables; only the model weights matter from here on.
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            model.load_weights(best_path)
    if chief:
        model_path = os.path.join(model_dir, "model.keras")
        model.save(model_path)
        results["keras_model"] = model_path
        if config.train.export:
            export_path = os.path.join(model_dir, "export")
            export_lib.export_saved_model(
                model,
                export_path,
                metadata={
                    "class_names": list(CLASS_NAMES[: config.model.num_classes])
                    if config.model.num_classes > 2
                    else list(BINARY_CLASS_NAMES),
                    "dataset": config.data.dataset,
                },
            )
            results["saved_model"] = export_path
        with open(os.path.join(model_dir, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
    return results
