"""Training FFSeg: the paper's two steps, run folders, save and export.

`train(config, model_dir)` is what `python -m experiments.train` runs:

1. checks the config and decides what to do with `model_dir` (see
   `ffseg.training.run_folder`: a folder holding another run is refused
   before anything is written);
2. picks the strategy (`ffseg.training.distribution`);
3. prepares the TFDS dataset if missing (`ffpp/sample` builds itself);
4. writes the resolved config to `model_dir/config.json`;
5. step 1 (`train.first_step`, paper Sec. IV-B.1: backbone and semantic
   heads on the mask loss) keeps its best validation IoU epoch in
   `semantic/best.weights.h5`; step 2 ("full", Eq. 1) starts from those
   weights and keeps its best validation AUC epoch in `best.weights.h5`;
6. saves that best step-2 model as `model.keras`, exports the SavedModel,
   and writes `training_summary.json`.

Each step is a `fit` with `BackupAndRestore`, TensorBoard (step 2's epochs
continue step 1's numbering: the logs of `semantic/` and `full/` form one
time line), validation EER and pixel AUC, and map images.

Under the JAX backend (`KERAS_BACKEND=jax`) the same run trains under
`keras.distribution.DataParallel` over the local devices
(`ffseg.training.distribution`), fed by the TensorFlow-free loader
(`ffseg.data.arrays`: a prepared array_record build of `data.dataset` in
`data.data_dir`) with the same flips, balanced draws, method filter and
seeds. TensorFlow is then optional: without it, TensorBoard (and its map
images) and the SavedModel export are skipped, one log line each; with
it, the export is written by a TensorFlow process from `model.keras`.

Resuming (`resume=True`): `BackupAndRestore` backs up at every epoch end. A
run killed at any point restarts the interrupted epoch from that epoch's
starting weights and optimizer state, and the training stream is
fast-forwarded to the same place (the shuffled stream is deterministic given
`data.seed`), so no batch is trained twice or skipped. A step that finished
leaves `<step>/done.weights.h5` and is not run again.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import warnings

import keras
import numpy as np

from ffseg import config as config_lib
from ffseg.config import ExperimentConfig
from ffseg.constants import BINARY_CLASS_NAMES, CLASS_NAMES, TRAINING_STAGES
from ffseg.training import distribution
from ffseg.training import run_folder as run_folder_lib
from ffseg.training.callbacks import (
    BestCheckpoint,
    EpochRecord,
    MapImages,
    ValidationFigures,
    epoch_history,
)

# The paper's two steps, in order: their folder names in a run folder.
STAGES = TRAINING_STAGES
# The validation figure that chooses each step's checkpoint: step 1 trains
# the maps (IoU, Eq. 7), step 2 the detector (AUC).
CHECKPOINT_MONITORS = {"semantic": "val_iou", "full": "val_auc"}


def step_stage(config: ExperimentConfig, step: str) -> str:
    """The FFSeg training stage that `step` ("semantic" or "full") runs."""
    return config.train.first_step if step == "semantic" else "full"


def step_epochs(config: ExperimentConfig, step: str) -> int:
    return getattr(config.train, f"{step}_epochs")


def resolve_ablations(config: ExperimentConfig) -> ExperimentConfig:
    """`config` with what its model switches imply (paper Table VII).

    Step 1 (`train.semantic_epochs`, Sec. IV-B.1) trains the semantic heads;
    a model built with `model.semantic_maps=false` has none, so step 1 has
    nothing to train. Rather than make every Table VII command also say
    `--set train.semantic_epochs=0`, that is implied: step 1 is skipped with
    a log line, and the config written to `config.json` (and the export's
    model card) records `train.semantic_epochs=0`, what was run. Running the
    same command again resolves to the same config, so `resume` matches.

    Raises:
        ConfigError: nothing would be trained (step 2 has
            `train.full_epochs=0` too).
    """
    if config.model.semantic_maps or config.train.semantic_epochs == 0:
        return config
    if config.train.full_epochs == 0:
        raise config_lib.ConfigError(
            "train.full_epochs: 0, and model.semantic_maps=false leaves step 1 "
            f"(train.semantic_epochs={config.train.semantic_epochs}) nothing to train "
            "(it trains the semantic heads): set train.full_epochs to at least 1"
        )
    logging.warning(
        "model.semantic_maps=false: step 1 trains the semantic heads, which this model "
        "does not have; skipping it (train.semantic_epochs=%d -> 0, recorded in %s)",
        config.train.semantic_epochs,
        run_folder_lib.CONFIG_FILE,
    )
    train = dataclasses.replace(config.train, semantic_epochs=0)
    return dataclasses.replace(config, train=train)


def build_model(config: ExperimentConfig, stage: str):
    """A fresh FFSeg for `config`, set to the training `stage`."""
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
    # Built here, not on the first batch: the multi-worker workaround needs
    # it, and BackupAndRestore restores the optimizer's state into it.
    model.optimizer.build(model.trainable_variables)


# === Datasets ===============================================================


@dataclasses.dataclass
class Datasets:
    """The inputs of a run: the validation batches and a resumable training stream.

    Args:
        builder: the prepared TFDS builder.
        config: the run's config.
        steps_per_epoch: training batches per epoch.
        validation: the batched validation split (capped by
            `data.max_validation_examples`).
        image_batch: the validation faces shown in TensorBoard.
        options: keyword arguments of `make_dataset` shared by both splits.
        numpy_loader: the batches come from the TensorFlow-free loader
            (`ffseg.data.arrays`, as `keras.utils.PyDataset`s), not tf.data.
        validation_figures: the validation batches `ValidationFigures`
            scores each epoch.
    """

    builder: object
    config: ExperimentConfig
    steps_per_epoch: int
    validation: object
    image_batch: object
    options: dict
    numpy_loader: bool = False
    validation_figures: object = None

    def training(self, epochs_done: int = 0):
        """The training stream, past the examples of `epochs_done` epochs."""
        skip = epochs_done * self.steps_per_epoch * self.config.train.batch_size
        split = self.config.data.train_split
        if self.numpy_loader:
            from ffseg.data import arrays

            loader = arrays.ArrayLoader(
                self.builder, split, training=True, skip=skip, **self.options
            )
            return arrays.as_py_dataset(loader, workers=loader_threads(self.config.data))
        from ffseg.data import pipeline as data_lib

        return data_lib.make_dataset(self.builder, split, training=True, skip=skip, **self.options)


def loader_threads(data_config) -> int:
    """The threads of the TensorFlow-free loader: `data.loader_workers`, 0 for one per core."""
    if data_config.loader_workers:
        return int(data_config.loader_workers)
    return max(1, min(8, os.cpu_count() or 1))


class _FirstBatches:
    """The first `count` batches of an `ArrayLoader` (None: all), each time it is iterated."""

    def __init__(self, loader, count):
        self.loader, self.count = loader, count

    def __iter__(self):
        for number, batch in enumerate(self.loader):
            if self.count is not None and number >= self.count:
                return
            yield batch


def _steps(builder, split: str, batch_size: int, requested) -> int:
    if requested:
        return int(requested)
    count = builder.info.splits[split].num_examples
    steps = count // batch_size
    if steps < 1:
        raise config_lib.ConfigError(
            f"train.batch_size: split {split!r} of {builder.info.full_name} has {count} "
            f"examples, fewer than one batch of {batch_size}"
        )
    return steps


def prepare_dataset(config: ExperimentConfig):
    """The prepared TFDS builder of `config.data.dataset` (built if missing).

    Under the JAX backend, the newest array_record build of the dataset in
    `data.data_dir` (not built here: its builder needs TensorFlow).

    Raises:
        ConfigError: the dataset is not prepared and needs source files that
            `data.manual_dir` does not give.
        FileError: under JAX, no array_record build is there.
    """
    if distribution.is_jax():
        from ffseg.data import arrays

        builder = arrays.open_build(arrays.find_build(config.data.dataset, config.data.data_dir))
        if config.data.stored_fakes:
            arrays.check_methods(builder, config.data.methods)
        return builder
    from ffseg.data import pipeline as data_lib

    try:
        builder = data_lib.ensure_built(
            config.data.dataset, data_dir=config.data.data_dir, manual_dir=config.data.manual_dir
        )
    except FileNotFoundError as error:
        if config.data.manual_dir is not None:
            raise
        where = config.data.data_dir or "the default TFDS data_dir"
        raise config_lib.ConfigError(
            f"data.manual_dir: {config.data.dataset} is not prepared in {where} and building "
            "it needs its source files: pass --set data.manual_dir=PATH (the FF++ or "
            "Celeb-DF root) or --set data.data_dir=PATH where it is built"
        ) from error
    # Before any training: a dataset without a method the run asks for stops it.
    if config.data.stored_fakes:
        data_lib.check_methods(builder, config.data.methods)
    return builder


def make_datasets(config: ExperimentConfig, builder, workers: int = 1) -> Datasets:
    """The validation batches and training stream of `config` from `builder`.

    tf.data under TensorFlow; the TensorFlow-free loader under JAX.
    """
    data, train = config.data, config.train
    if distribution.is_jax():
        return _array_datasets(config, builder)
    from ffseg.data import pipeline as data_lib

    splits = builder.info.splits
    options = dict(
        image_size=config.model.image_size,
        batch_size=train.batch_size,
        **data_lib.dataset_options(data),
        shard_by_files=min(
            splits[data.train_split].num_shards, splits[data.validation_split].num_shards
        )
        >= workers,
    )
    validation = data_lib.make_dataset(
        builder,
        data.validation_split,
        training=False,
        take=data.max_validation_examples,
        **options,
    )
    image_batch = None
    if train.tensorboard_images:
        image_batch = next(iter(validation.unbatch().batch(train.tensorboard_images)))
    return Datasets(
        builder=builder,
        config=config,
        steps_per_epoch=_steps(builder, data.train_split, train.batch_size, train.steps_per_epoch),
        validation=validation,
        image_batch=image_batch,
        options=options,
        validation_figures=validation
        if train.validation_steps is None
        else validation.take(train.validation_steps),
    )


def _array_datasets(config: ExperimentConfig, builder) -> Datasets:
    """`make_datasets` on the TensorFlow-free loader (`ffseg.data.arrays`)."""
    from ffseg.data import arrays

    data, train = config.data, config.train
    options = dict(
        image_size=config.model.image_size,
        batch_size=train.batch_size,
        **arrays.loader_options(data),
    )
    loader = arrays.ArrayLoader(
        builder,
        data.validation_split,
        training=False,
        take=data.max_validation_examples,
        **options,
    )
    image_batch = loader.head(train.tensorboard_images) if train.tensorboard_images else None
    return Datasets(
        builder=builder,
        config=config,
        steps_per_epoch=_steps(builder, data.train_split, train.batch_size, train.steps_per_epoch),
        validation=arrays.as_py_dataset(loader, batches=train.validation_steps),
        image_batch=image_batch,
        options=options,
        numpy_loader=True,
        validation_figures=_FirstBatches(loader, train.validation_steps),
    )


def tensorflow_available() -> bool:
    """Whether TensorFlow imports here (under JAX it is optional).

    Under JAX, TensorFlow (then only writing TensorBoard summaries) is kept
    off the GPUs: it would otherwise take their memory from JAX.
    """
    try:
        import tensorflow as tf
    except ImportError:
        return False
    if distribution.is_jax() and not getattr(tensorflow_available, "_hidden", False):
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            pass  # TensorFlow's devices were already started by the caller
        tensorflow_available._hidden = True
    return True


def write_pseudo_fake_grid(builder, config: ExperimentConfig, log_dir: str) -> None:
    """TensorBoard image "pseudo-fakes" at step 0: face | pseudo-fake | mask | noise label.

    Made once per run folder (a resumed run finds it there), from the first
    real faces of the training split, by the generator the input pipeline
    runs.
    """
    if os.path.isdir(log_dir):
        return
    import tensorflow as tf

    from ffseg.data import pipeline as data_lib

    grid = data_lib.pseudo_fake_grid(
        builder, config.data.train_split, seed=config.data.seed, sigma=config.data.noise_sigma
    )
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        tf.summary.image(
            "pseudo-fakes: face | pseudo-fake | mask | noise label", grid[None], step=0
        )
    writer.close()


# === One step ===============================================================


def _backup_epoch(backup_dir: str) -> int:
    """The epoch a `BackupAndRestore` backup resumes at (0 without one)."""
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(json.load(f).get("epoch", 0))


def run_step(
    model,
    step: str,
    datasets: Datasets,
    out_dir: str,
    *,
    first_epoch: int,
    verbose="auto",
    callbacks=(),
):
    """Trains one step ("semantic" or "full") of a compiled model, resumably.

    Epochs are numbered from `first_epoch` (the epochs of the steps before),
    so TensorBoard draws the steps as one time line. The step's best epoch
    (by `CHECKPOINT_MONITORS[step]`) is saved in `<step>/best.weights.h5`
    (step 2: `best.weights.h5` in `out_dir`), and the model ends with those
    weights (its last epoch's when no epoch was scored). Returns nothing: its
    records are in `<step>/epochs.json`.
    """
    config = datasets.config
    epochs = step_epochs(config, step)
    step_dir = os.path.join(out_dir, step)
    backup_dir = os.path.join(step_dir, "backup")
    resume_at = max(_backup_epoch(backup_dir), first_epoch)
    if resume_at > first_epoch:
        logging.info("Resuming step %r at epoch %d", step, resume_at)
    # Each step reads its own deterministic stream; a resumed step skips
    # exactly the examples its finished epochs consumed.
    train_ds = datasets.training(epochs_done=resume_at - first_epoch)
    best_path = (
        os.path.join(out_dir, "best.weights.h5")
        if step == "full"
        else os.path.join(step_dir, "best.weights.h5")
    )
    log_dir = os.path.join(out_dir, "logs", step)
    step_callbacks = [
        keras.callbacks.BackupAndRestore(backup_dir, save_freq="epoch"),
        # Before the callbacks that read the logs it completes.
        ValidationFigures(datasets.validation_figures),
        EpochRecord(os.path.join(step_dir, "epochs.json")),
        BestCheckpoint(best_path, monitor=CHECKPOINT_MONITORS[step]),
    ]
    # TensorBoard writes its summaries with TensorFlow: optional under JAX.
    if tensorflow_available():
        step_callbacks.append(keras.callbacks.TensorBoard(log_dir))
        if datasets.image_batch is not None:
            step_callbacks.append(MapImages(os.path.join(log_dir, "maps"), datasets.image_batch))
    else:
        logging.warning(
            "Step %r: no TensorBoard logs (TensorFlow cannot be imported; the epoch "
            "records are in %s)", step, os.path.join(step_dir, "epochs.json"),
        )
    # Keras keeps a restored epoch on the model across `fit` calls: a
    # resumed step 1 would otherwise shift step 2's epochs.
    model._initial_epoch = None
    model.fit(
        train_ds,
        initial_epoch=first_epoch,
        epochs=first_epoch + epochs,
        steps_per_epoch=datasets.steps_per_epoch,
        validation_data=datasets.validation,
        validation_steps=config.train.validation_steps,
        callbacks=step_callbacks + list(callbacks),
        verbose=verbose,
        shuffle=False,  # the dataset shuffles itself
    )
    if os.path.exists(best_path):
        model.load_weights(best_path)
    else:
        logging.warning(
            "Step %r: %s was never computed; keeping the last epoch's weights",
            step,
            CHECKPOINT_MONITORS[step],
        )


# === Save and export ========================================================


def save_and_export(
    model, config: ExperimentConfig, model_dir: str, *, experiment=None, started=None
) -> dict:
    """Writes `model.keras` and (if `train.export`) the SavedModel `export/`.

    The export's model card (`ffseg.json`) records the experiment's name,
    its resolved config and when training started, so an evaluation knows
    which of the paper's figures apply and a server can say what it serves.

    Returns the paths written: `{"keras_model": ..., "saved_model": ...}`.
    """
    paths = {}
    model_path = os.path.join(model_dir, "model.keras")
    model.save(model_path)
    paths["keras_model"] = model_path
    if config.train.export:
        export_path = os.path.join(model_dir, "export")
        num_classes = config.model.num_classes
        metadata = {
            "class_names": list(CLASS_NAMES[:num_classes])
            if num_classes > 2
            else list(BINARY_CLASS_NAMES),
            "dataset": config.data.dataset,
            "experiment": experiment,
            "config": config.to_dict(),
            "training_started": started,
        }
        if distribution.is_jax():
            if not tensorflow_available():
                logging.warning(
                    "No SavedModel export: TensorFlow cannot be imported (%s is written; "
                    "export it where TensorFlow is installed)", model_path,
                )
                return paths
            export_in_tensorflow(model_path, export_path, metadata)
        else:
            from ffseg.inference import export as export_lib

            export_lib.export_saved_model(model, export_path, metadata=metadata)
        paths["saved_model"] = export_path
    return paths


# The SavedModel export of a `.keras` file, in a TensorFlow process.
_EXPORT_SCRIPT = """
import json, sys
import keras
import ffseg.models  # noqa: F401  (registers the classes)
from ffseg.inference import export as export_lib

model_path, export_path, metadata = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = keras.saving.load_model(model_path, safe_mode=True)
export_lib.export_saved_model(model, export_path, metadata=metadata)
"""


def export_in_tensorflow(model_path: str, export_path: str, metadata: dict) -> None:
    """Exports a `.keras` file as the SavedModel `export_saved_model` writes, under TensorFlow.

    A model trained under JAX is exported by a fresh process on the
    TensorFlow backend: the `.keras` file scores the same faces there within
    1e-4, and the SavedModel's graph is TensorFlow's own.

    Raises:
        RuntimeError: the export failed (its last error lines).
    """
    import subprocess
    import sys

    environment = dict(os.environ, KERAS_BACKEND="tensorflow")
    completed = subprocess.run(
        [sys.executable, "-c", _EXPORT_SCRIPT, model_path, export_path, json.dumps(metadata)],
        env=environment, capture_output=True, text=True,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{model_path}: the SavedModel export under TensorFlow failed: "
            + completed.stderr.strip()[-2000:]
        )


def _summary(config, model_dir, out_dir, paths) -> dict:
    steps, stages = {}, {}
    for step in STAGES:
        record = os.path.join(out_dir, step, "epochs.json")
        if step_epochs(config, step) <= 0 or not os.path.exists(record):
            continue
        history = epoch_history(record)
        stages[step] = history
        best_path = os.path.join(
            out_dir, "best.weights.h5" if step == "full" else os.path.join(step, "best.weights.h5")
        )
        best = None
        if os.path.exists(best_path + ".json"):
            with open(best_path + ".json") as f:
                best = json.load(f)
        steps[step] = {"stage": step_stage(config, step), "best": best}
    final = "full" if "full" in steps else "semantic"
    return {
        "model_dir": model_dir,
        "final_weights": f"step {final!r}, best {CHECKPOINT_MONITORS[final]}",
        "steps": steps,
        "stages": stages,
        **paths,
    }


# === The run ================================================================


def train(
    config: ExperimentConfig,
    model_dir: str,
    *,
    resume: bool = False,
    overwrite: bool = False,
    verbose="auto",
    callbacks=(),
    experiment: str | None = None,
) -> dict:
    """Runs the experiment `config` in the run folder `model_dir`.

    Args:
        config: the experiment (see `ffseg.config`).
        model_dir: the run folder. New or empty: a new run. Holding a run:
            refused, unless `resume` (continue it; a finished run is left
            as it is) or `overwrite` (move it aside to
            `<model_dir>.old-<timestamp>`, then train anew).
        verbose: Keras' `fit` verbosity.
        callbacks: added to each step's `fit`, after the built-in ones.
        experiment: the experiment's name, recorded in the export's model
            card.

    Returns:
        the training summary, also written to `training_summary.json`:
        per-step epoch logs under "stages", each step's best epoch under
        "steps", and the paths "keras_model" and "saved_model".

    Raises:
        ConfigError: a config value that cannot be used.
        RunFolderError: `model_dir` may not be used so (nothing written).

    A model without semantic maps (`model.semantic_maps=false`, paper
    Table VII) skips step 1: see `resolve_ablations`.

    Example:

    >>> from ffseg import config as config_lib
    >>> config = config_lib.override(
    ...     config_lib.get_experiment("sample"),
    ...     ["train.semantic_epochs=1", "train.full_epochs=1", "train.steps_per_epoch=2"],
    ... )
    >>> summary = train(config, "runs/quick")  # doctest: +SKIP
    >>> summary["keras_model"]  # doctest: +SKIP
    'runs/quick/model.keras'
    """
    config_lib.validate(config)
    config = resolve_ablations(config)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    # Only the chief writes the run folder; the other workers of a cluster
    # write to scratch folders and follow the chief's plan.
    chief = distribution.is_chief()
    if chief:
        plan = run_folder_lib.plan(model_dir, config, resume=resume, overwrite=overwrite)
    else:
        plan = run_folder_lib.RunFolderPlan(model_dir, run_folder_lib.NEW)
    if plan.action == run_folder_lib.FINISHED:
        logging.info("%s holds a finished run of this config: nothing to do", model_dir)
        return run_folder_lib.read_summary(model_dir)
    # The strategy comes before any other TensorFlow op.
    strategy = distribution.get_strategy()
    logging.info(
        "Strategy %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync
    )
    builder = prepare_dataset(config)
    datasets = make_datasets(config, builder, distribution.num_workers(strategy))
    if distribution.is_jax() and config.train.batch_size % strategy.num_replicas_in_sync:
        raise config_lib.ConfigError(
            f"train.batch_size: {config.train.batch_size} does not split over the "
            f"{strategy.num_replicas_in_sync} devices of keras.distribution.DataParallel"
        )

    # Only now, with the dataset ready, is anything written.
    if chief:
        if plan.action == run_folder_lib.OVERWRITE:
            run_folder_lib.move_aside(model_dir)
        os.makedirs(model_dir, exist_ok=True)
        out_dir = model_dir
    else:
        out_dir = run_folder_lib.worker_folder(
            model_dir, distribution.task_name(), resume=resume
        )
    config_path = os.path.join(out_dir, run_folder_lib.CONFIG_FILE)
    if not os.path.exists(config_path):  # a resumed run keeps its own
        run_folder_lib.write_new_file(config_path, config.to_json())
    if chief and config.data.pseudo_fakes:
        write_pseudo_fake_grid(builder, config, os.path.join(out_dir, "logs", "pseudo_fakes"))

    previous_policy = keras.config.dtype_policy()
    if config.train.mixed_precision:
        keras.config.set_dtype_policy(config.train.mixed_precision)
    try:
        if config.data.deterministic:
            keras.utils.set_random_seed(config.data.seed)
            if not distribution.is_jax():  # XLA on JAX needs no switch
                import tensorflow as tf

                tf.config.experimental.enable_op_determinism()
        with distribution.run_scope(strategy):
            model = _train_steps(config, strategy, datasets, out_dir, verbose, callbacks)
    finally:
        keras.config.set_dtype_policy(previous_policy)

    paths = (
        save_and_export(model, config, model_dir, experiment=experiment, started=started)
        if chief
        else {}
    )
    summary = _summary(config, model_dir, out_dir, paths)
    if chief:
        summary_path = os.path.join(model_dir, run_folder_lib.SUMMARY_FILE)
        run_folder_lib.write_new_file(summary_path, json.dumps(summary, indent=2))
        summary["summary"] = summary_path
    return summary


def _train_steps(config, strategy, datasets, out_dir, verbose, callbacks):
    """Runs both steps (or what is left of them); returns the final model."""
    model = None
    first_epoch = 0
    for step in STAGES:
        epochs = step_epochs(config, step)
        if epochs <= 0:
            continue
        stage = step_stage(config, step)
        done_path = os.path.join(out_dir, step, "done.weights.h5")
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
        distribution.apply_multi_worker_workaround(model, strategy)
        if os.path.exists(done_path):
            logging.info("Step %r already finished: loading %s", step, done_path)
            model.load_weights(done_path)
        else:
            run_step(
                model,
                step,
                datasets,
                out_dir,
                first_epoch=first_epoch,
                verbose=verbose,
                callbacks=callbacks,
            )
            # The weights the next step starts from (the best epoch's).
            model.save_weights(done_path)
        first_epoch += epochs
    return model
