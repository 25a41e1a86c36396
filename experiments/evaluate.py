"""Evaluates a trained FFSeg as in the paper: `python -m experiments.evaluate`.

    python -m experiments.evaluate --model runs/c23/export --dataset ffpp/c23 \
        --split test --output runs/c23/eval --data_dir /data/tfds

`--model` is an exported SavedModel folder or a `.keras` file (the latter also
gives the paper's Table VI gamma sweep). `--dataset` is any prepared TFDS
dataset of face crops: `ffpp/<config>` or `celeb_df` (cross-dataset, Table
IV). Writes results.json, report.md, roc.png, maps.png and scores.csv into
`--output`, with the paper's figure beside ours wherever the paper has one:
which figures apply follows from the dataset and from how the model was
trained (the run folder's `config.json`, the export's metadata, or
`--experiment`).

An evaluation never replaces an earlier one: an `--output` folder that
already holds results is refused before anything is loaded or written; with
no `--output`, a fresh folder `<model folder>/eval_<dataset>_<split>` (then
`...-2`, `...-3`) is chosen.
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
        "--output",
        default=None,
        help="report folder; refused if it holds results already "
        "(default: a fresh <model folder>/eval_<dataset>_<split>)",
    )
    parser.add_argument(
        "--experiment",
        default=None,
        help="the experiment the model was trained as, when neither a config.json beside "
        "the model nor the export's metadata says (chooses the paper's figures)",
    )
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_examples", type=int, default=None)
    parser.add_argument("--threshold", type=float, default=0.5)
    return parser.parse_args(argv)


def default_output(model: str, dataset: str, split: str) -> str:
    """A fresh folder beside the model: eval_<dataset>_<split>, or -2, -3, ..."""
    from ffseg.evaluation.report import fresh_folder

    base = os.path.join(
        os.path.dirname(os.path.abspath(model.rstrip("/"))),
        f"eval_{dataset.replace('/', '_')}_{split}",
    )
    return fresh_folder(base)


def _summary(results: dict) -> list:
    lines = []
    figures = (results.get("paper") or {}).get("figures", {}).get("paper", {})

    def paper(key):
        figure = figures.get(key)
        return f" (paper {figure['value']:g})" if figure else ""

    for level in ("frame_level", "video_level"):
        m = results[level]
        lines.append(
            f"{level.replace('_', '-')}: {m['count']} ({m['real_count']} real : "
            f"{m['fake_count']} fake) AUC {m['auc']:.4f}{paper(level + '.auc')} "
            f"ACC {m['accuracy']:.4f}{paper(level + '.accuracy')} "
            f"balanced ACC {m['balanced_accuracy']:.4f}"
        )
    if "localization" in results:
        loc = results["localization"]
        lines.append(
            f"IoU (a) manipulated faces {loc['iou']:.4f} | (b) all faces "
            f"{loc['iou_all_faces']:.4f} | (c) two-class mIoU {loc['miou_two_class']:.4f}"
            f"{paper('localization.iou')}"
        )
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from ffseg.evaluation import paper as paper_lib
    from ffseg.evaluation import report

    # Refused before anything is loaded: an evaluation can take hours.
    output = args.output or default_output(args.model, args.dataset, args.split)
    try:
        report.check_output(output)
        record = paper_lib.training_record(args.model, args.experiment)
    except (report.ResultsExistError, ValueError) as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 2

    from ffseg.cli import import_tensorflow_quietly

    import_tensorflow_quietly()  # no CUDA start-up error lines on a machine without a GPU
    from ffseg.data import pipeline as data_lib
    from ffseg.evaluation import runner as evaluation
    from ffseg.inference.predictors import load_predictor

    predictor = load_predictor(args.model)
    builder = data_lib.ensure_built(
        args.dataset, data_dir=args.data_dir, manual_dir=args.manual_dir
    )
    # Paper Tables III and IV test a model trained on real + some methods on
    # real + the same methods: those faces get their own figures.
    setting = paper_lib.run_setting(record, builder.info.full_name)
    trained = setting["trained_methods"]
    results = evaluation.evaluate_split(
        predictor,
        builder,
        args.split,
        batch_size=args.batch_size,
        max_examples=args.max_examples,
        threshold=args.threshold,
        trained_methods=None if trained == "all" or setting["test"] == "celeb_df" else trained,
    )
    results["model"] = os.path.abspath(args.model)
    # The model's own output width is what was trained (2 or 5 classes).
    setting = paper_lib.run_setting(record, builder.info.full_name, results["num_classes"])
    results["training"] = record
    results["paper"] = paper_lib.for_results(setting)
    paths = report.write(results, output)
    for line in _summary(results):
        print(line)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
