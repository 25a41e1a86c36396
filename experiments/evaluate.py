"""Evaluates a trained FFSeg as in the paper: `python -m experiments.evaluate`.

    python -m experiments.evaluate --model runs/c23/export --dataset ffpp/c23 \
        --split test --output runs/c23/eval --data_dir /data/tfds

`--model` is an exported SavedModel folder or a `.keras` file (the latter also
gives the paper's Table VI gamma sweep). `--dataset` is any prepared TFDS
dataset of face crops: `ffpp/<config>` or `celeb_df` (cross-dataset, Table
IV). Writes results.json, report.md, roc.png and maps.png into `--output`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m experiments.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--model", required=True, help="SavedModel folder, model_dir with export/, or .keras file"
    )
    parser.add_argument(
        "--dataset", default="ffpp/sample", help="TFDS name/config (default ffpp/sample)"
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--data_dir", default=None, help="TFDS data directory")
    parser.add_argument(
        "--manual_dir", default=None, help="dataset root, to build the dataset if missing"
    )
    parser.add_argument(
        "--output", default=None, help="report folder (default <model>/../eval_<dataset>_<split>)"
    )
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_examples", type=int, default=None)
    parser.add_argument("--threshold", type=float, default=0.5)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from ffseg.data import pipeline as data_lib
    from ffseg.evaluation import report
    from ffseg.evaluation import runner as evaluation
    from ffseg.inference.predictors import load_predictor

    predictor = load_predictor(args.model)
    builder = data_lib.ensure_built(
        args.dataset, data_dir=args.data_dir, manual_dir=args.manual_dir
    )
    results = evaluation.evaluate_split(
        predictor,
        builder,
        args.split,
        batch_size=args.batch_size,
        max_examples=args.max_examples,
        threshold=args.threshold,
    )
    results["model"] = os.path.abspath(args.model)
    output = args.output or os.path.join(
        os.path.dirname(os.path.abspath(args.model.rstrip("/"))),
        f"eval_{args.dataset.replace('/', '_')}_{args.split}",
    )
    paths = report.write(results, output)
    frame, video = results["frame_level"], results["video_level"]
    print(
        f"frame-level AUC {frame['auc']:.4f} ACC {frame['accuracy']:.4f} | "
        f"video-level AUC {video['auc']:.4f} ACC {video['accuracy']:.4f}"
    )
    if "localization" in results:
        print(f"IoU {results['localization']['iou']:.4f}")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
