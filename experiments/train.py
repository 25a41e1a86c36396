"""Trains FFSeg: `python -m experiments.train [--experiment NAME] [--set k=v ...]`.

With no arguments it runs the `sample` experiment on the embedded `ffpp/sample`
dataset (built on the fly if missing) at a reduced input size, which finishes
in a few minutes on two CPU cores. For FF++:

    python -m experiments.train --experiment ffpp_c23 --model_dir runs/c23 \
        --set data.manual_dir=/data/FaceForensics++ --set data.data_dir=/data/tfds

Watch it with `tensorboard --logdir runs/c23/logs`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def parse_args(argv=None):
    from ffseg.config import EXPERIMENTS

    parser = argparse.ArgumentParser(
        prog="python -m experiments.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--experiment", default="sample", choices=sorted(EXPERIMENTS))
    parser.add_argument(
        "--model_dir",
        default=None,
        help="where checkpoints, logs and the export go (default runs/<experiment>)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override a config field, e.g. --set train.batch_size=16 (repeatable)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="one log line per epoch instead of a progress bar"
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from ffseg import config as config_lib
    from ffseg.training import trainer as training

    config = config_lib.override(config_lib.get_experiment(args.experiment), args.overrides)
    model_dir = args.model_dir or os.path.join("runs", args.experiment)
    logging.info("Experiment %s -> %s", args.experiment, os.path.abspath(model_dir))
    results = training.train(config, model_dir, verbose=2 if args.quiet else "auto")
    for stage, logs in results["stages"].items():
        summary = ", ".join(f"{k}={v[-1]:.4f}" for k, v in sorted(logs.items()))
        print(f"[{stage}] {summary}")
    for key in ("keras_model", "saved_model"):
        if key in results:
            print(f"{key}: {results[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
