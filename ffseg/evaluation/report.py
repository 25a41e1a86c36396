"""Writing an evaluation: JSON of every figure, Markdown tables, ROC and map grid PNGs."""

from __future__ import annotations

import json
import math
import os

import numpy as np


def _fmt(value, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.2f}" if percent else f"{value:.4f}"


def markdown(results: dict) -> str:
    """The evaluation as Markdown tables, laid out as the paper's tables."""
    lines = [
        f"# ffseg evaluation: {results.get('dataset', '?')} / {results.get('split', '?')}",
        "",
        f"Model: `{results.get('model', '?')}`",
        "",
        "## Detection (paper Table II; AUC, ACC, EER, AP in %)",
        "",
        "| level | faces/videos | AUC | ACC@0.5 | EER | AP |",
        "|---|---|---|---|---|---|",
    ]
    for level in ("frame_level", "video_level"):
        m = results[level]
        lines.append(
            f"| {level.replace('_', ' ')} | {m['count']} | {_fmt(m['auc'], True)} | "
            f"{_fmt(m['accuracy'], True)} | {_fmt(m['eer'], True)} | "
            f"{_fmt(m['average_precision'], True)} |"
        )
    if "per_method_accuracy" in results:
        lines += ["", "## Frame-level accuracy per method (paper Table III, %)", ""]
        names = list(results["per_method_accuracy"])
        lines.append("| " + " | ".join(names) + " |")
        lines.append("|" + "---|" * len(names))
        lines.append(
            "| "
            + " | ".join(_fmt(results["per_method_accuracy"][n]["accuracy"], True) for n in names)
            + " |"
        )
    if "five_class" in results:
        five = results["five_class"]
        names = list(five["recall"])
        lines += ["", "## 5-class recall (paper Table V, %)", ""]
        lines.append("| " + " | ".join(names) + " | average |")
        lines.append("|" + "---|" * (len(names) + 1))
        lines.append(
            "| "
            + " | ".join(_fmt(five["recall"][n], True) for n in names)
            + f" | {_fmt(five['average_recall'], True)} |"
        )
    if "localization" in results:
        loc = results["localization"]
        lines += [
            "",
            "## Localization (paper Eq. 7, Table VI)",
            "",
            "| IoU (mean per manipulated face) | IoU (pooled) "
            "| false-positive area on real faces | pixel AUC |",
            "|---|---|---|---|",
            f"| {_fmt(loc['iou'])} | {_fmt(loc['iou_pooled'])} "
            f"| {_fmt(loc['false_positive_area'])} | "
            f"{_fmt(loc['pixel_auc'])} |",
            "",
            f"{loc['manipulated_frames']} manipulated and {loc['real_frames']} real faces.",
        ]
        if "gamma_sweep" in loc:
            lines += ["", "| gamma1 | gamma2 | gamma3 | IoU |", "|---|---|---|---|"]
            for row in loc["gamma_sweep"]:
                g1, g2, g3 = row["gammas"]
                lines.append(f"| {g1:.1f} | {g2:.1f} | {g3:.1f} | {_fmt(row['iou'])} |")
    return "\n".join(lines) + "\n"


def roc_png(roc: dict, path: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    for level, (fpr, tpr) in roc.items():
        axes.plot(fpr, tpr, label=f"{level} level")
    axes.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title("ROC")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def grid_png(grid: list, path: str, size: int = 128):
    """One row per face: the face, its true mask (grey if none) and the predicted map."""
    import cv2

    rows = []
    for item in grid:
        face = cv2.resize(item["image"], (size, size), interpolation=cv2.INTER_AREA)
        if item.get("mask") is not None:
            mask = cv2.resize(
                (item["mask"] * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST
            )
            true = np.repeat(mask[..., None], 3, axis=-1)
        else:
            true = np.full((size, size, 3), 128, np.uint8)
        heat = cv2.resize((np.clip(item["map"], 0, 1) * 255).astype(np.uint8), (size, size))
        heat = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        row = np.concatenate([face, true, heat], axis=1)
        label = f"{'fake' if item['label'] else 'real'} {item['score']:.2f}"
        cv2.putText(
            row, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA
        )
        rows.append(row)
    if not rows:
        return
    cv2.imwrite(path, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def _plain(value):
    """JSON-safe: numpy scalars to Python, NaN to null (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write(results: dict, out_dir: str) -> dict:
    """Writes results.json, report.md, roc.png, maps.png and scores.csv; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    results = dict(results)
    roc = results.pop("roc", {})
    grid = results.pop("grid", [])
    scores = results.pop("scores", None)
    paths = {
        "json": os.path.join(out_dir, "results.json"),
        "markdown": os.path.join(out_dir, "report.md"),
        "roc": os.path.join(out_dir, "roc.png"),
        "grid": os.path.join(out_dir, "maps.png"),
        "scores": os.path.join(out_dir, "scores.csv"),
    }
    with open(paths["json"], "w") as f:
        json.dump(_plain(results), f, indent=2, sort_keys=True)
    with open(paths["markdown"], "w") as f:
        f.write(markdown(results))
    if roc:
        roc_png(roc, paths["roc"])
    else:
        del paths["roc"]
    grid_png(grid, paths["grid"])
    if scores:
        write_scores(scores, paths["scores"])
    else:
        del paths["scores"]
    return paths


def write_scores(scores: dict, path: str):
    """One row per face: video, frame, label, method, score (for own analyses)."""
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "frame", "label", "method", "score"])
        for row in zip(
            scores["video"], scores["frame"], scores["label"], scores["method"], scores["score"]
        ):
            video, frame, label, method, score = row
            writer.writerow([video, frame, label, "" if method is None else method, f"{score:.7f}"])
