"""Trains FFSeg: `python -m experiments.train [--experiment NAME] [--set k=v ...]`.

With no arguments it runs the `sample` experiment on the embedded `ffpp/sample`
dataset (built on the fly if missing) at a reduced input size, which finishes
in a few minutes on two CPU cores. For FF++:

    python -m experiments.train --experiment ffpp_c23 --model_dir runs/c23 \
        --set data.manual_dir=/data/FaceForensics++ --set data.data_dir=/data/tfds

Watch it with `tensorboard --logdir runs/c23/logs`. A `--model_dir` that
holds a run is refused unless `--resume` (continue it: the way on after a
kill) or `--overwrite` (move it aside to `<model_dir>.old-<timestamp>`).
Under `KERAS_BACKEND=jax` the same command trains with JAX, from an
array_record build of the dataset (`tfds build ... --file_format=array_record`
into `data.data_dir`), with no TensorFlow needed. `--list` names the
experiments, `--print_config` shows the resolved config without training.
A config or folder that cannot be used exits with status 2 and one line
saying why.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m experiments.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--experiment", default="sample", help="a named experiment (see --list; default sample)"
    )
    parser.add_argument(
        "--model_dir",
        default=None,
        help="the run folder: checkpoints, logs and the export (default runs/<experiment>)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override a config field, e.g. --set train.batch_size=16 (repeatable)",
    )
    folder = parser.add_mutually_exclusive_group()
    folder.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --model_dir (same config); start one if it is empty",
    )
    folder.add_argument(
        "--overwrite",
        action="store_true",
        help="move the run in --model_dir aside (to <model_dir>.old-<timestamp>), train anew",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the experiments, one line each, and exit"
    )
    parser.add_argument(
        "--print_config",
        action="store_true",
        help="print the resolved config as JSON and exit (nothing trained or written)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="one log line per epoch instead of a progress bar"
    )
    return parser.parse_args(argv)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    args = parse_args(argv)
    from ffseg import config as config_lib

    if args.list:
        experiments = config_lib.describe_experiments()
        width = max(len(name) for name, _ in experiments)
        for name, description in experiments:
            print(f"{name:<{width}}  {description}")
        return 0
    try:
        config = config_lib.override(config_lib.get_experiment(args.experiment), args.overrides)
    except config_lib.ConfigError as error:
        return _fail(str(error))
    if args.print_config:
        print(config.to_json())
        return 0

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import keras

    if keras.backend.backend() == "tensorflow":
        from ffseg.cli import import_tensorflow_quietly

        import_tensorflow_quietly()  # no CUDA start-up error lines on a machine without a GPU
    # Under KERAS_BACKEND=jax TensorFlow is optional and not imported for this.
    from ffseg.errors import FileError
    from ffseg.training import run_folder
    from ffseg.training import trainer as training

    model_dir = args.model_dir or os.path.join("runs", args.experiment)
    logging.info("Experiment %s -> %s", args.experiment, os.path.abspath(model_dir))
    try:
        summary = training.train(
            config,
            model_dir,
            resume=args.resume,
            overwrite=args.overwrite,
            verbose=2 if args.quiet else "auto",
            experiment=args.experiment,
        )
    except (config_lib.ConfigError, run_folder.RunFolderError, FileError) as error:
        return _fail(str(error))
    for stage, logs in summary.get("stages", {}).items():
        shown = ", ".join(f"{k}={v[-1]:.4f}" for k, v in sorted(logs.items()))
        print(f"[{stage}] {shown}")
    for key in ("keras_model", "saved_model", "summary"):
        if key in summary:
            print(f"{key}: {summary[key]}")
    if summary.get("steps"):
        print("best epochs: " + json.dumps(summary["steps"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
