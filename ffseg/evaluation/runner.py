"""Running a predictor over a TFDS split: every figure of the paper's tables.

`evaluate_split(predictor, builder, split)` streams the split's faces through
the predictor and returns what `ffseg.evaluation.report` writes.
"""

from __future__ import annotations

import numpy as np

from ffseg.config import TAPS
from ffseg.evaluation.figures import (
    TABLE_VI_GAMMAS,
    LocalizationAccumulator,
    detection_metrics,
    per_class_recall,
    per_method_accuracy,
    video_level,
)

# What the report says of a model that returns no localization map.
NO_SEMANTIC_MAPS = "this model has no semantic maps: no localization figures"


def sweep_rows(map_taps, gammas=TABLE_VI_GAMMAS):
    """The Table VI weightings that a model with semantic maps at `map_taps` can compute.

    A weighting is computable when it gives no weight to a missing map
    (with taps mid and high: (0, 0, 1) and (0, 0.1, 0.9)); the others would
    need M1 and are left out, not approximated.

    Returns:
        `(rows, note)`: the computable weightings, and a sentence saying
        which were left out and why (None when none were).
    """
    map_taps = tuple(map_taps)
    rows = tuple(
        row for row in gammas
        if all(weight == 0 for weight, tap in zip(row, TAPS) if tap not in map_taps)
    )
    if len(rows) == len(gammas):
        return rows, None
    missing = [f"M{number} ({tap})" for number, tap in enumerate(TAPS, start=1)
               if tap not in map_taps]
    note = (
        f"this model has semantic maps at taps {', '.join(map_taps)} only (no "
        f"{', '.join(missing)}): {len(gammas) - len(rows)} of the {len(gammas)} weightings "
        "of Table VI weigh a missing map and are left out"
        + ("" if rows else ", so there is no gamma sweep")
    )
    return rows, note


class _Progress:
    """One self-overwriting stderr line, at most every `every` seconds."""

    def __init__(self, total, every: float = 2.0):
        import time

        self.total, self.every, self._clock, self._last = total, every, time.monotonic, -every

    def __call__(self, done: int, final: bool = False):
        import sys

        now = self._clock()
        if final or now - self._last >= self.every:
            self._last = now
            end = "\n" if final else ""
            print(f"\revaluating: {done}/{self.total} faces", end=end, file=sys.stderr, flush=True)


def evaluate_split(
    predictor,
    builder,
    split: str,
    *,
    batch_size: int = 32,
    max_examples: int | None = None,
    threshold: float = 0.5,
    grid_faces: int = 8,
    progress: bool = True,
    trained_methods=None,
) -> dict:
    """Scores every face of `split` and returns every figure of the paper.

    Detection figures are frame level (paper Sec. IV-B.2) and video level
    (each video's mean frame score); localization follows Eq. 7 in three
    definitions (`ffseg.evaluation.figures.LocalizationAccumulator`).

    Args:
        predictor: from `ffseg.inference.predictors.load_predictor`.
        builder: a prepared TFDS builder (`ffpp/...` or `celeb_df/...`).
        split: e.g. "test".
        batch_size: faces per predictor call.
        max_examples: evaluate only the first examples (None: all).
        threshold: a fake score at or above it counts as "fake" (ACC) and a
            map pixel at or above it as manipulated (IoU).
        grid_faces: how many real and how many fake faces to keep for the
            picture grid (with their true and predicted maps).
        progress: print a self-overwriting progress line on stderr.
        trained_methods: the FF++ methods the model was trained on, when a
            subset (paper Tables III and IV train on real + one method and
            test on the same faces): adds `trained_methods`, the detection
            figures over real faces and those methods' faces only.

    Returns a dict with `frame_level`, `video_level` (each with the real and
    fake counts, ACC at the stored ratio and balanced accuracy),
    `per_method_accuracy` (if the dataset has methods), `five_class`
    (5-class models), `localization` (if the dataset has masks),
    `trained_methods` (see above), plus `roc` points, the `grid` arrays and
    per-face `scores` for the report (written beside the JSON, not into it).

    Ablated models (paper Tables VII and VIII): a model without semantic
    maps returns no localization map, so on a dataset with masks the
    results have `localization_note` (`NO_SEMANTIC_MAPS`) instead of
    `localization`, and the grid's maps are None. The Table VI gamma sweep
    (a `.keras` predictor only) runs over the weightings that the present
    maps can compute (`sweep_rows`); `localization["gamma_sweep_note"]`
    says which were left out.

    Example:

    ```python
    from ffseg.data.pipeline import ensure_built
    from ffseg.evaluation import report, runner
    from ffseg.inference.predictors import load_predictor

    results = runner.evaluate_split(
        load_predictor("runs/sample/model.keras"),
        ensure_built("ffpp/sample"),
        "test",
    )
    print(results["frame_level"]["auc"], results["localization"]["iou"])
    report.write(results, "runs/sample/eval_ffpp_sample_test")
    ```
    """
    import tensorflow_datasets as tfds

    features = builder.info.features
    has_mask = "mask" in features
    has_method = "method" in features
    method_names = list(features["method"].names) if has_method else None
    total = builder.info.splits[split].num_examples
    if max_examples:
        total = min(total, max_examples)
        split = f"{split}[:{total}]"
    dataset = builder.as_dataset(split=split, shuffle_files=False).batch(batch_size)
    map_taps = tuple(getattr(predictor, "semantic_map_taps", ()) or ())
    gammas, sweep_note = sweep_rows(map_taps) if map_taps else (TABLE_VI_GAMMAS, None)
    localization = LocalizationAccumulator(threshold, gammas=gammas) if has_mask else None
    labels, methods, scores, videos, frames, probabilities = [], [], [], [], [], []
    grid = {0: [], 1: []}
    done = 0
    report_progress = _Progress(total) if progress else (lambda done, final=False: None)
    for batch in tfds.as_numpy(dataset):
        out = predictor.predict(batch["image"], batch_size=batch_size)
        batch_labels = batch["label"].astype(np.int64)
        labels.append(batch_labels)
        scores.append(out["score"])
        probabilities.append(out["class_probabilities"])
        videos.extend(v.decode() if isinstance(v, bytes) else str(v) for v in batch["video"])
        frames.extend(int(f) for f in batch["frame"])
        if has_method:
            methods.append(batch["method"].astype(np.int64))
        masks = batch["mask"][..., 0] if has_mask else None
        maps = out.get("localization_map")
        if maps is None:
            localization = None  # a model without semantic maps (paper Table VII)
        if localization is not None:
            localization.update(
                maps,
                masks,
                batch_labels,
                semantic_maps=_sweep_maps(out.get("semantic_maps"), map_taps),
            )
        for i, label in enumerate(batch_labels):
            if len(grid[int(label)]) < grid_faces:
                grid[int(label)].append(
                    {
                        "image": batch["image"][i],
                        "mask": masks[i] if masks is not None else None,
                        "map": maps[i] if maps is not None else None,
                        "score": float(out["score"][i]),
                        "label": int(label),
                        "method": method_names[int(batch["method"][i])] if has_method else None,
                    }
                )
        done += len(batch_labels)
        report_progress(done)
    report_progress(done, final=True)
    if not labels:
        raise ValueError(f"split {split!r} of {builder.info.full_name} has no examples")
    labels = np.concatenate(labels)
    scores = np.concatenate(scores)
    probabilities = np.concatenate(probabilities)
    results = {
        "dataset": builder.info.full_name,
        "split": split,
        "num_classes": int(probabilities.shape[-1]),
        "frame_level": detection_metrics(labels, scores, threshold),
    }
    ids, video_labels, video_scores = video_level(videos, labels, scores)
    results["video_level"] = detection_metrics(video_labels, video_scores, threshold)
    if has_method:
        methods = np.concatenate(methods)
        results["per_method_accuracy"] = per_method_accuracy(
            methods, scores, method_names, threshold
        )
        if probabilities.shape[-1] == len(method_names) > 2:
            results["five_class"] = per_class_recall(methods, probabilities, method_names)
        if trained_methods and set(trained_methods) != set(method_names[1:]):
            unknown = sorted(set(trained_methods) - set(method_names[1:]))
            if unknown:
                raise ValueError(
                    f"trained_methods {unknown} are not methods of {builder.info.full_name} "
                    f"({', '.join(method_names[1:])})"
                )
            chosen = np.isin(methods, [0] + [method_names.index(m) for m in trained_methods])
            _, subset_labels, subset_scores = video_level(
                [v for v, keep in zip(videos, chosen) if keep], labels[chosen], scores[chosen]
            )
            results["trained_methods"] = {
                "methods": list(trained_methods),
                "frame_level": detection_metrics(labels[chosen], scores[chosen], threshold),
                "video_level": detection_metrics(subset_labels, subset_scores, threshold),
            }
    if localization is not None:
        results["localization"] = localization.result()
        if sweep_note is not None:
            results["localization"]["gamma_sweep_note"] = sweep_note
    elif has_mask:
        results["localization_note"] = NO_SEMANTIC_MAPS
    results["roc"] = _roc_points(labels, scores, video_labels, video_scores)
    results["threshold"] = threshold
    results["scores"] = {
        "video": videos,
        "frame": frames,
        "label": labels.tolist(),
        "method": methods.tolist() if has_method else [None] * len(videos),
        "score": scores.astype(float).tolist(),
    }
    results["grid"] = grid[1] + grid[0]
    return results


def _sweep_maps(semantic_maps, map_taps):
    """The predictor's k semantic maps as the three of Table VI: zeros where a tap has none.

    Only weightings that give a missing map no weight are swept
    (`sweep_rows`), so its zeros never reach a result.
    """
    if semantic_maps is None or not map_taps:
        return None
    by_tap = dict(zip(map_taps, semantic_maps))
    blank = np.zeros_like(semantic_maps[0])
    return [by_tap.get(tap, blank) for tap in TAPS]


def _roc_points(labels, scores, video_labels, video_scores) -> dict:
    from sklearn.metrics import roc_curve

    points = {}
    for level, (y, s) in {"frame": (labels, scores), "video": (video_labels, video_scores)}.items():
        if y.min() != y.max():
            fpr, tpr, _ = roc_curve(y, s)
            points[level] = (fpr, tpr)
    return points
