"""Running a predictor over a TFDS split: every figure of the paper's tables.

`evaluate_split(predictor, builder, split)` streams the split's faces through
the predictor and returns what `ffseg.evaluation.report` writes.
"""

from __future__ import annotations

import numpy as np

from ffseg.evaluation.figures import (
    LocalizationAccumulator,
    detection_metrics,
    per_class_recall,
    per_method_accuracy,
    video_level,
)


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
    localization = LocalizationAccumulator(threshold) if has_mask else None
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
        if localization is not None:
            semantic = out.get("semantic_maps")
            localization.update(
                out["localization_map"],
                masks,
                batch_labels,
                semantic_maps=list(semantic) if semantic is not None else None,
            )
        for i, label in enumerate(batch_labels):
            if len(grid[int(label)]) < grid_faces:
                grid[int(label)].append(
                    {
                        "image": batch["image"][i],
                        "mask": masks[i] if masks is not None else None,
                        "map": out["localization_map"][i],
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


def _roc_points(labels, scores, video_labels, video_scores) -> dict:
    from sklearn.metrics import roc_curve

    points = {}
    for level, (y, s) in {"frame": (labels, scores), "video": (video_labels, video_scores)}.items():
        if y.min() != y.max():
            fpr, tpr, _ = roc_curve(y, s)
            points[level] = (fpr, tpr)
    return points
