"""Writing an evaluation: JSON of every figure, Markdown tables, ROC and map grid PNGs.

One labelling convention everywhere (tables, pictures and `ffseg detect`'s
overlays): a face's *fake score* is the model's probability that the face
was manipulated; a face scoring at or above the threshold (0.5) counts as
fake; the ground truth is written "true: real" or "true: fake"; maps show
manipulation probability from 0 (pristine) to 1 (manipulated) in one colour
scale with its colour bar.

An evaluation never replaces an earlier one: `write` refuses, before its
first write, a folder that already holds any file it would write.
"""

from __future__ import annotations

import contextlib
import json
import math
import os

import numpy as np

from ffseg.errors import FileError

# What `write` leaves in its folder, by kind.
OUTPUT_FILES = {
    "json": "results.json",
    "markdown": "report.md",
    "roc": "roc.png",
    "grid": "maps.png",
    "scores": "scores.csv",
}
# The colour scale of every map (the overlays of `ffseg detect` use
# OpenCV's COLORMAP_JET, the same scale).
MAP_COLORMAP = "jet"

IOU_DEFINITIONS = (
    ("iou", "(a) foreground IoU, mean over manipulated faces"),
    ("iou_all_faces", "(b) mean over all faces (pristine face: empty prediction 1, else 0)"),
    ("miou_two_class", "(c) two-class mean IoU (manipulated, pristine), pixels pooled"),
)


class ResultsExistError(FileError):
    """An output folder that already holds an earlier evaluation's results."""


def output_paths(out_dir: str) -> dict:
    """The files `write` would write into `out_dir`, by kind."""
    return {kind: os.path.join(out_dir, name) for kind, name in OUTPUT_FILES.items()}


def check_output(out_dir: str):
    """Raises `ResultsExistError` if `out_dir` holds any file `write` would write."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ResultsExistError(out_dir, "is a file, not a folder for the evaluation's results")
    taken = [name for name in OUTPUT_FILES.values() if os.path.lexists(os.path.join(out_dir, name))]
    if taken:
        raise ResultsExistError(
            out_dir,
            f"already holds {', '.join(taken)} of an earlier evaluation; nothing was "
            "written: give a new --output folder (or leave --output out for a fresh one)",
        )


def fresh_folder(base: str) -> str:
    """`base` if no such file or folder exists, else the first free `base-2`, `base-3`, ..."""
    candidate, number = base, 1
    while os.path.lexists(candidate):
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def _fmt(value, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.2f}" if percent else f"{value:.4f}"


class _Paper:
    """The paper's figures of one evaluation (`results["paper"]`), and their notes."""

    def __init__(self, results: dict):
        paper = results.get("paper") or {}
        self.figures = paper.get("figures", {})
        self.notes = []

    def value(self, key: str, group: str = "paper", mark: bool = True) -> str:
        """The paper's figure for `key`, with its note's number (unless `mark` is False)."""
        from ffseg.evaluation.paper import paper_value

        figure = self.figures.get(group, {}).get(key)
        if figure is None:
            return "–"
        if not mark:
            return paper_value(figure)
        return f"{paper_value(figure)} [{self.note(key, group)}]"

    def note(self, key: str, group: str = "paper", sources=None) -> int:
        """The number of the note that gives the figure's sources (added if new)."""
        figure = self.figures[group][key]
        text = "; ".join(sources or figure["sources"])
        if figure.get("notes"):
            text += ". " + " ".join(figure["notes"])
        if figure.get("other_values"):
            text += f". Another table prints {figure['other_values']} for the same run."
        if text not in self.notes:
            self.notes.append(text)
        return self.notes.index(text) + 1

    def has(self, prefix: str, group: str = "paper") -> bool:
        return any(key.startswith(prefix) for key in self.figures.get(group, {}))


def _setting_lines(results: dict) -> list:
    paper = results.get("paper")
    if not paper:
        return []
    setting = paper["setting"]
    training = results.get("training") or {}
    if setting.get("known"):
        name = training.get("experiment")
        trained = (
            f"experiment `{name}`" if name else "an unnamed experiment"
        ) + f" (config: `{training.get('source')}`)"
    else:
        trained = (
            "unknown: no `config.json` beside the model, no config in its export metadata and "
            "no `--experiment` given; the paper's figures below assume the paper's full model "
            f"trained on this dataset's quality ({setting.get('train_quality') or 'n/a'})"
        )
    methods = setting["trained_methods"]
    methods = "all methods" if methods == "all" else "real + " + ", ".join(methods)
    sigma = setting.get("noise_sigma")
    lines = [
        f"Trained as: {trained}.",
        "",
        f"Setting: trained on {setting.get('train_dataset') or setting.get('train_quality')} "
        f"({methods}), {setting['classes']} classes, semantic maps "
        f"{'on' if setting['semantic_maps'] else 'off'}, noise maps "
        f"{'on' if setting['noise_maps'] else 'off'}, taps {' '.join(setting['taps'])}, "
        f"noise sigma {sigma if sigma is not None else 'n/a'}; tested on {setting['test']}.",
        "",
    ]
    if paper["tables"]:
        lines.append(
            "The paper's figures for this setting: "
            + ", ".join(paper["tables"])
            + " (marked `paper`; sources in the notes at the end)."
        )
    else:
        lines.append("No figure of the paper applies to this setting.")
    return lines + [""]


def _detection_row(name, m, paper: _Paper, prefix=None) -> str:
    auc = paper.value(f"{prefix}.auc") if prefix else "–"
    acc = paper.value(f"{prefix}.accuracy") if prefix else "–"
    return (
        f"| {name} | {m['count']} ({m.get('real_count', '?')}:{m.get('fake_count', '?')}) "
        f"| {_fmt(m['auc'], True)} | {auc} | {_fmt(m['accuracy'], True)} | {acc} "
        f"| {_fmt(m.get('balanced_accuracy'), True)} | {_fmt(m['eer'], True)} "
        f"| {_fmt(m['average_precision'], True)} |"
    )


DETECTION_HEADER = [
    "| level | faces/videos (real:fake) | AUC | paper AUC | ACC (stored ratio) | paper ACC "
    "| balanced ACC | EER | AP |",
    "|---|---|---|---|---|---|---|---|---|",
]


def markdown(results: dict) -> str:
    """The evaluation as Markdown tables, laid out as the paper's tables,
    with the paper's figure beside ours wherever the paper has one."""
    paper = _Paper(results)
    threshold = results.get("threshold", 0.5)
    lines = [
        f"# ffseg evaluation: {results.get('dataset', '?')} / {results.get('split', '?')}",
        "",
        f"Model: `{results.get('model', '?')}`",
        "",
        *_setting_lines(results),
        f"A face's fake score is the model's probability that it was manipulated; a face "
        f"scoring {threshold:g} or more counts as fake. ACC is at the split's stored "
        "real:fake ratio; balanced ACC is the mean of the real and fake recalls. The paper "
        "reports frame-level figures only.",
        "",
        "## Detection (paper Table II; AUC, ACC, EER, AP in %)",
        "",
        *DETECTION_HEADER,
        _detection_row("frame level", results["frame_level"], paper, "frame_level"),
        _detection_row("video level", results["video_level"], paper),
    ]
    baseline = paper.figures.get("baseline", {})
    if "frame_level.auc" in baseline or "frame_level.accuracy" in baseline:
        lines += [
            "",
            "The paper's Xception baseline on the same data: AUC "
            f"{paper.value('frame_level.auc', 'baseline')}, ACC "
            f"{paper.value('frame_level.accuracy', 'baseline')}.",
        ]
    if "trained_methods" in results:
        subset = results["trained_methods"]
        lines += [
            "",
            f"## Real and trained-method faces only: {', '.join(subset['methods'])} "
            "(paper Tables III, IV: trained and tested on real + these methods)",
            "",
            *DETECTION_HEADER,
            _detection_row(
                "frame level", subset["frame_level"], paper, "trained_methods.frame_level"
            ),
            _detection_row("video level", subset["video_level"], paper),
        ]
        if any(k.startswith("trained_methods") for k in baseline):
            lines += [
                "",
                "The paper's Xception baseline on the same faces: AUC "
                f"{paper.value('trained_methods.frame_level.auc', 'baseline')}, ACC "
                f"{paper.value('trained_methods.frame_level.accuracy', 'baseline')}.",
            ]
    if "per_method_accuracy" in results:
        per_method = results["per_method_accuracy"]
        lines += [
            "",
            "## Frame-level accuracy per method (paper Table III, %)",
            "",
            "| class | faces | ACC on its faces | ACC on real + its faces | paper ACC, "
            "one detector per method |",
            "|---|---|---|---|---|",
        ]
        for name, entry in per_method.items():
            with_real = entry.get("with_real", {})
            lines.append(
                f"| {name} | {entry['count']} | {_fmt(entry['accuracy'], True)} "
                f"| {_fmt(with_real.get('accuracy'), True)} "
                f"| {paper.value(f'per_method_accuracy.{name}.with_real.accuracy', 'different_protocol')} |"  # noqa: E501
            )
    if "five_class" in results:
        five = results["five_class"]
        names = list(five["recall"])
        lines += ["", "## 5-class recall (paper Table V, %)", ""]
        lines.append("| | " + " | ".join(names) + " | average |")
        lines.append("|---|" + "---|" * (len(names) + 1))
        lines.append(
            "| ours | "
            + " | ".join(_fmt(five["recall"][n], True) for n in names)
            + f" | {_fmt(five['average_recall'], True)} |"
        )
        if paper.has("five_class"):
            lines.append(
                "| paper | "
                + " | ".join(paper.value(f"five_class.recall.{n}") for n in names)
                + f" | {paper.value('five_class.average_recall')} |"
            )
        if paper.has("five_class", "baseline"):
            lines.append(
                "| paper's Xception | "
                + " | ".join(paper.value(f"five_class.recall.{n}", "baseline") for n in names)
                + f" | {paper.value('five_class.average_recall', 'baseline')} |"
            )
    if "localization" in results:
        lines += _localization_lines(results["localization"], paper)
    elif "localization_note" in results:
        # An ablated model (paper Table VII) without semantic maps: say so
        # rather than leave the reader to wonder where the section went.
        lines += ["", "## Localization (paper Eq. 7, Table VI)", "",
                  results["localization_note"][0].upper() + results["localization_note"][1:]
                  + "."]
    if paper.has("training.noise_sigma"):
        setting = results["paper"]["setting"]
        lines += [
            "",
            "## Noise label sigma (paper Fig. 4)",
            "",
            f"This model's noise labels used sigma {setting.get('noise_sigma')}; the paper's "
            f"chosen sigma for this quality: {paper.value('training.noise_sigma')}. A sweep "
            "is one training run per sigma, each evaluated like this one; compare their "
            "frame-level AUCs.",
        ]
    if paper.notes:
        lines += ["", "## Notes", ""]
        lines += [f"[{i}] {note}" for i, note in enumerate(paper.notes, start=1)]
    return "\n".join(lines) + "\n"


def _localization_lines(loc: dict, paper: _Paper) -> list:
    lines = [
        "",
        "## Localization (paper Eq. 7, Table VI)",
        "",
        "Eq. 7 does not say how faces are pooled or whether pristine faces count; the "
        "paper's figure is printed beside each definition. (c) is the most plausible "
        "reading of it (the paper calls IoU 'one of the standard metrics in semantic "
        "segmentation').",
        "",
        "| IoU definition | ours | paper |",
        "|---|---|---|",
    ]
    for key, label in IOU_DEFINITIONS:
        lines.append(f"| {label} | {_fmt(loc.get(key))} | {paper.value('localization.iou')} |")
    lines += [
        "",
        "| IoU pooled over manipulated faces | IoU manipulated class | IoU pristine class "
        "| false-positive area on real faces | pixel AUC |",
        "|---|---|---|---|---|",
        f"| {_fmt(loc.get('iou_pooled'))} | {_fmt(loc.get('iou_manipulated_class'))} "
        f"| {_fmt(loc.get('iou_pristine_class'))} | {_fmt(loc['false_positive_area'])} "
        f"| {_fmt(loc['pixel_auc'])} |",
        "",
        f"{loc['manipulated_frames']} manipulated and {loc['real_frames']} real faces.",
    ]
    if "gamma_sweep" in loc:
        keys = [
            "localization.gamma_sweep[{:.1f},{:.1f},{:.1f}]".format(*row["gammas"])
            for row in loc["gamma_sweep"]
        ]
        column = "paper"
        found = [key for key in keys if key in paper.figures.get("paper", {})]
        if found:
            # One note for the column: the table and its column, not each cell.
            source = paper.figures["paper"][found[0]]["sources"][0].rsplit(",", 1)[0]
            number = paper.note(found[0], sources=[f"{source}, one row per weighting"])
            column = f"paper [{number}]"
        lines += [
            "",
            "Table VI: the fused map M = g1*M1 + g2*M2 + g3*M3 for each weighting.",
            "",
            f"| gamma1 | gamma2 | gamma3 | (a) | (b) | (c) | {column} |",
            "|---|---|---|---|---|---|---|",
        ]
        for row, key in zip(loc["gamma_sweep"], keys):
            g1, g2, g3 = row["gammas"]
            lines.append(
                f"| {g1:.1f} | {g2:.1f} | {g3:.1f} | {_fmt(row['iou'])} "
                f"| {_fmt(row.get('iou_all_faces'))} | {_fmt(row.get('miou_two_class'))} "
                f"| {paper.value(key, mark=False)} |"
            )
    if loc.get("gamma_sweep_note"):
        note = loc["gamma_sweep_note"]
        lines += ["", f"Table VI: {note}."]
    return lines


@contextlib.contextmanager
def _new_file(path: str, mode: str = "x"):
    """Opens `path` for writing only if it does not exist; removes it if writing fails."""
    # newline="": the csv module writes its own line ends.
    f = open(path, mode) if "b" in mode else open(path, mode, newline="")
    try:
        with f:
            yield f
    except BaseException:
        os.remove(path)
        raise


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc_figure(roc: dict, title: str = "ROC", aucs: dict | None = None):
    """The ROC plot (a matplotlib figure): one curve per level, AUC in the legend.

    Args:
        roc: {level: (false positive rates, true positive rates)}.
        title: the plot's title (name the dataset in it).
        aucs: {level: AUC} for the legend.
    """
    plt = _pyplot()
    aucs = aucs or {}
    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    for level, (fpr, tpr) in roc.items():
        auc = aucs.get(level)
        label = f"{level} level" + (f" (AUC {auc:.4f})" if auc is not None else "")
        axes.plot(fpr, tpr, label=label)
    axes.plot([0, 1], [0, 1], "k:", linewidth=0.8, label="chance (AUC 0.5)")
    axes.set_xlabel("false positive rate (real faces scored fake)")
    axes.set_ylabel("true positive rate (fake faces scored fake)")
    axes.set_title(title, fontsize=10)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.legend(loc="lower right")
    figure.tight_layout()
    return figure


def _save(figure, path: str, **options):
    plt = _pyplot()
    try:
        with _new_file(path, "xb") as f:
            figure.savefig(f, format="png", **options)
    finally:
        plt.close(figure)


def roc_png(roc: dict, path: str, title: str = "ROC", aucs: dict | None = None):
    """Writes `roc_figure(roc, title, aucs)` to the PNG `path` (refused if it exists)."""
    _save(roc_figure(roc, title, aucs), path)


def grid_png(grid: list, path: str, threshold: float = 0.5, title: str | None = None):
    """Writes `grid_figure(grid, threshold, title)` to the PNG `path` (refused if it
    exists); nothing for an empty grid."""
    if grid:
        _save(grid_figure(grid, threshold, title), path, bbox_inches="tight")


def grid_figure(grid: list, threshold: float = 0.5, title: str | None = None):
    """One row per face under headed columns: the face, its true mask, the predicted map.

    Each row is labelled with the truth and the model's fake score ("true:
    real, fake score 0.02"); mask and map share one colour scale, shown by a
    colour bar (0 pristine .. 1 manipulated). A dataset without masks
    (Celeb-DF) shows "no mask in this dataset" in the mask column, and a
    face without a map (`map` None: a model without semantic maps, paper
    Table VII) "no map: this model does not localise" in the map column. A
    label in red marks a face the model gets wrong at `threshold`.
    """
    plt = _pyplot()
    from mpl_toolkits.axes_grid1.inset_locator import inset_axes

    rows = len(grid)
    # Inches: 2 a row, and a fixed 1.2 on top for the title and the headings
    # (a fraction of the height would grow with the rows).
    height = 2.0 * rows + 1.3
    figure, axes = plt.subplots(
        rows, 3, figsize=(6.6, height), dpi=100, squeeze=False,
        gridspec_kw={"wspace": 0.05, "hspace": 0.35, "top": 1 - 1.2 / height,
                     "bottom": 0.1 / height},
    )
    image = None
    for row, item in enumerate(grid):
        face_axes, mask_axes, map_axes = axes[row]
        face_axes.imshow(item["image"])
        truth = "fake" if item["label"] else "real"
        if item["label"] and item.get("method"):
            truth += f" ({item['method']})"
        verdict = "fake" if item["score"] >= threshold else "real"
        face_axes.set_title(
            f"true: {truth}, fake score {item['score']:.2f}",
            fontsize=8, loc="left", color="black" if verdict == truth[:4] else "firebrick",
        )
        if item.get("mask") is not None:
            masked = mask_axes.imshow(
                np.asarray(item["mask"], np.float32), cmap=MAP_COLORMAP, vmin=0, vmax=1
            )
            if image is None:  # the colour bar's scale when no map is drawn
                image = masked
        else:
            # A grey square the size of the others, so the columns stay aligned.
            side = item["map"] if item.get("map") is not None else item["image"]
            mask_axes.imshow(np.full(np.shape(side)[:2] + (3,), 217, np.uint8))
            mask_axes.text(0.5, 0.5, "no mask in\nthis dataset", ha="center", va="center",
                           fontsize=8, transform=mask_axes.transAxes)
        if item.get("map") is not None:
            image = map_axes.imshow(
                np.clip(np.asarray(item["map"], np.float32), 0, 1), cmap=MAP_COLORMAP,
                vmin=0, vmax=1,
            )
        else:
            # A model without semantic maps (paper Table VII): no map to show.
            map_axes.imshow(np.full(np.shape(item["image"])[:2] + (3,), 217, np.uint8))
            map_axes.text(0.5, 0.5, "no map: this\nmodel does not\nlocalise", ha="center",
                          va="center", fontsize=8, transform=map_axes.transAxes)
        for axis in (face_axes, mask_axes, map_axes):
            axis.set_xticks([])
            axis.set_yticks([])
    for axis, heading in zip(axes[0], ("face", "true mask", "predicted map")):
        axis.annotate(heading, (0.5, 1.0), xytext=(0, 18), textcoords="offset points",
                      xycoords="axes fraction", ha="center", va="bottom", fontsize=10,
                      fontweight="bold")
    if image is not None:  # no mask and no map: nothing on the colour scale
        # Beside the first predicted map, as tall as it, so it reads with the headings.
        bar_axes = inset_axes(
            axes[0, 2], width="7%", height="100%", loc="lower left",
            bbox_to_anchor=(1.06, 0, 1, 1), bbox_transform=axes[0, 2].transAxes, borderpad=0,
        )
        bar = figure.colorbar(image, cax=bar_axes)
        bar.set_label("0 pristine .. 1 manipulated", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    figure.suptitle(
        (f"{title}\n" if title else "")
        + f"fake score: probability of manipulation; red: wrong at threshold {threshold:g}",
        fontsize=9,
        y=1 - 0.1 / height,
        va="top",
    )
    return figure


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
    """Writes results.json, report.md, roc.png, maps.png and scores.csv; returns their paths.

    Refuses (`ResultsExistError`, before writing anything) a folder that
    already holds any of these files: an evaluation never replaces another.

    Args:
        results: from `ffseg.evaluation.runner.evaluate_split`, optionally
            with `model`, `training` and `paper` (see `ffseg.evaluation.paper`)
            added by the caller.
        out_dir: the folder to write into (created if missing).

    Example:

    ```python
    from ffseg.evaluation import figures, report

    results = {
        "dataset": "ffpp/c23/1.0.0",
        "split": "test",
        "frame_level": figures.detection_metrics([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9]),
        "video_level": figures.detection_metrics([0, 1], [0.35, 0.8]),
    }
    paths = report.write(results, "eval_example")  # a second call refuses
    print(open(paths["markdown"]).read())
    ```
    """
    check_output(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    results = dict(results)
    roc = results.pop("roc", {})
    grid = results.pop("grid", [])
    scores = results.pop("scores", None)
    paths = output_paths(out_dir)
    with _new_file(paths["json"]) as f:
        json.dump(_plain(results), f, indent=2, sort_keys=True)
    with _new_file(paths["markdown"]) as f:
        f.write(markdown(results))
    dataset = f"{results.get('dataset', '?')}, {results.get('split', '?')} split"
    if roc:
        aucs = {
            level: results[f"{level}_level"]["auc"]
            for level in roc
            if f"{level}_level" in results
        }
        roc_png(roc, paths["roc"], title=f"ROC: {dataset}", aucs=aucs)
    else:
        del paths["roc"]
    if grid:
        grid_png(grid, paths["grid"], results.get("threshold", 0.5), title=dataset)
    else:
        del paths["grid"]
    if scores:
        write_scores(scores, paths["scores"])
    else:
        del paths["scores"]
    return paths


def write_scores(scores: dict, path: str):
    """One row per face: video, frame, label, method, fake score (for own analyses)."""
    import csv

    with _new_file(path, "x") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "frame", "label", "method", "score"])
        for row in zip(
            scores["video"], scores["frame"], scores["label"], scores["method"], scores["score"]
        ):
            video, frame, label, method, score = row
            writer.writerow([video, frame, label, "" if method is None else method, f"{score:.7f}"])
