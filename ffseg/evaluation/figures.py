"""Evaluation figures of the paper's tables, computed with numpy/scikit-learn.

Detection (paper section IV-C, Tables II-V): AUC, accuracy at 0.5, equal
error rate and average precision, at the frame level and at the video level
(the mean score of each video's frames: peers mix the two up, so every figure
here carries its level in its name); per-method accuracy (Table III);
per-class recall and their average in 5-class mode (Table V).

Localization (section IV-D, Eq. 7, Table VI): IoU of the fused map
thresholded at 0.5 against the ground-truth mask on manipulated frames, the
false-positive area on real frames, pixel-level AUC, and the sweep over the
gamma weights of Table VI.
"""

from __future__ import annotations

import collections

import numpy as np

# Paper Table VI: (gamma1, gamma2, gamma3) for M = g1*M1 + g2*M2 + g3*M3.
TABLE_VI_GAMMAS = (
    (0.0, 0.0, 1.0),
    (0.0, 0.1, 0.9),
    (0.1, 0.1, 0.8),
    (0.1, 0.2, 0.7),
    (0.1, 0.3, 0.6),
    (0.1, 0.4, 0.5),
    (0.2, 0.2, 0.6),
    (0.2, 0.3, 0.5),
    (0.2, 0.4, 0.4),
)


def _check_binary(labels, scores):
    labels = np.asarray(labels).astype(np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in length")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    return labels, scores


def equal_error_rate(labels, scores) -> float:
    """The error rate where false positive and false negative rates are equal.

    Interpolated linearly between the two ROC points that bracket
    FPR = 1 - TPR. NaN when only one class is present.
    """
    from sklearn.metrics import roc_curve

    labels, scores = _check_binary(labels, scores)
    if labels.min() == labels.max():
        return float("nan")
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1.0 - tpr
    diff = fpr - fnr  # increases from <= 0 to >= 0 along the curve
    index = int(np.argmax(diff >= 0))
    if index == 0 or diff[index] == 0:
        return float(fpr[index])
    # Linear interpolation between points index-1 and index.
    d0, d1 = diff[index - 1], diff[index]
    t = d0 / (d0 - d1)
    return float(fpr[index - 1] + t * (fpr[index] - fpr[index - 1]))


def detection_metrics(labels, scores, threshold: float = 0.5) -> dict:
    """AUC, accuracy at `threshold`, EER and average precision of fake scores."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels, scores = _check_binary(labels, scores)
    both = labels.size > 0 and labels.min() != labels.max()
    return {
        "count": int(labels.size),
        "auc": float(roc_auc_score(labels, scores)) if both else float("nan"),
        "accuracy": float(np.mean((scores >= threshold) == labels))
        if labels.size
        else float("nan"),
        "eer": equal_error_rate(labels, scores) if both else float("nan"),
        "average_precision": float(average_precision_score(labels, scores))
        if both
        else float("nan"),
    }


def video_level(videos, labels, scores):
    """Mean score per video: returns (video ids, labels, mean scores)."""
    groups = collections.OrderedDict()
    for video, label, score in zip(videos, np.asarray(labels).ravel(), np.asarray(scores).ravel()):
        entry = groups.setdefault(video, [int(label), []])
        if entry[0] != int(label):
            raise ValueError(f"video {video!r} has frames with different labels")
        entry[1].append(float(score))
    ids = list(groups)
    return (
        ids,
        np.array([groups[v][0] for v in ids], np.int64),
        np.array([np.mean(groups[v][1]) for v in ids], np.float64),
    )


def per_method_accuracy(methods, scores, method_names, threshold: float = 0.5) -> dict:
    """Accuracy on each method's fake frames and on real frames (Table III).

    Table III trains and tests one detector per method; evaluated on a model
    trained on all methods, this is that model's accuracy per method.
    """
    methods = np.asarray(methods).ravel()
    scores = np.asarray(scores, np.float64).ravel()
    result = {}
    for index, name in enumerate(method_names):
        chosen = methods == index
        if not chosen.any():
            continue
        predicted_fake = scores[chosen] >= threshold
        correct = predicted_fake if index > 0 else ~predicted_fake
        result[name] = {"count": int(chosen.sum()), "accuracy": float(correct.mean())}
    return result


def per_class_recall(methods, class_probabilities, class_names) -> dict:
    """5-class mode (Table V): recall of each class and their average."""
    methods = np.asarray(methods).ravel()
    predicted = np.argmax(np.asarray(class_probabilities), axis=-1)
    recalls = {}
    for index, name in enumerate(class_names):
        chosen = methods == index
        if chosen.any():
            recalls[name] = float(np.mean(predicted[chosen] == index))
    return {
        "recall": recalls,
        "average_recall": float(np.mean(list(recalls.values()))) if recalls else float("nan"),
        "accuracy": float(np.mean(predicted == methods)) if methods.size else float("nan"),
    }


def iou(predicted, truth) -> float:
    """Intersection over union of two boolean masks (paper Eq. 7).

    Both empty counts as a perfect match (1.0).
    """
    predicted = np.asarray(predicted, bool)
    truth = np.asarray(truth, bool)
    if predicted.shape != truth.shape:
        raise ValueError(f"mask shapes differ: {predicted.shape} vs {truth.shape}")
    union = np.logical_or(predicted, truth).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(predicted, truth).sum() / union)


class LocalizationAccumulator:
    """Streams localization figures over batches in bounded memory.

    - `iou`: mean per-frame IoU of map >= threshold vs mask, over manipulated
      frames (those whose mask is not empty);
    - `iou_pooled`: intersection / union summed over all manipulated frames;
    - `false_positive_area`: mean fraction of pixels predicted manipulated on
      real frames;
    - `pixel_auc`: ROC AUC over every pixel of every frame, from 1,000-bin
      score histograms (exact up to the bin width).
    - Table VI: the same mean IoU for each gamma triple, when the three
      semantic maps are given.
    """

    BINS = 1000

    def __init__(self, threshold: float = 0.5, gammas=TABLE_VI_GAMMAS):
        self.threshold = threshold
        self.gammas = tuple(tuple(float(g) for g in triple) for triple in gammas)
        self.ious = []
        self.intersection = 0
        self.union = 0
        self.false_positive_areas = []
        self.positive_hist = np.zeros(self.BINS, np.int64)
        self.negative_hist = np.zeros(self.BINS, np.int64)
        self.sweep = {triple: [] for triple in self.gammas}

    def update(self, maps, masks, labels, semantic_maps=None):
        """maps, masks: [N, S, S] (or [N, S, S, 1]); labels [N]; semantic_maps:
        three [N, S, S] arrays already resized to S (for the gamma sweep)."""
        maps = np.asarray(maps, np.float32).reshape(len(labels), -1)
        masks = np.asarray(masks).reshape(len(labels), -1) > 0.5
        labels = np.asarray(labels).ravel()
        predicted = maps >= self.threshold
        for i, label in enumerate(labels):
            if label and masks[i].any():
                self.ious.append(iou(predicted[i], masks[i]))
                self.intersection += int(np.logical_and(predicted[i], masks[i]).sum())
                self.union += int(np.logical_or(predicted[i], masks[i]).sum())
            elif not label:
                self.false_positive_areas.append(float(predicted[i].mean()))
        bins = np.clip((maps * self.BINS).astype(np.int64), 0, self.BINS - 1)
        self.positive_hist += np.bincount(bins[masks], minlength=self.BINS)
        self.negative_hist += np.bincount(bins[~masks], minlength=self.BINS)
        if semantic_maps is not None:
            stacked = [np.asarray(m, np.float32).reshape(len(labels), -1) for m in semantic_maps]
            for triple in self.gammas:
                fused = sum(g * m for g, m in zip(triple, stacked)) >= self.threshold
                for i, label in enumerate(labels):
                    if label and masks[i].any():
                        self.sweep[triple].append(iou(fused[i], masks[i]))

    def pixel_auc(self) -> float:
        positives, negatives = self.positive_hist.sum(), self.negative_hist.sum()
        if positives == 0 or negatives == 0:
            return float("nan")
        # P(score_pos > score_neg) + 0.5 P(equal bin), from the histograms.
        negatives_below = np.cumsum(self.negative_hist) - self.negative_hist
        wins = (self.positive_hist * negatives_below).sum()
        ties = (self.positive_hist * self.negative_hist).sum()
        return float((wins + 0.5 * ties) / (positives * negatives))

    def result(self) -> dict:
        mean = lambda values: float(np.mean(values)) if values else float("nan")  # noqa: E731
        out = {
            "iou": mean(self.ious),
            "iou_pooled": float(self.intersection / self.union) if self.union else float("nan"),
            "manipulated_frames": len(self.ious),
            "false_positive_area": mean(self.false_positive_areas),
            "real_frames": len(self.false_positive_areas),
            "pixel_auc": self.pixel_auc(),
        }
        if any(self.sweep.values()):
            out["gamma_sweep"] = [
                {"gammas": list(triple), "iou": mean(values)}
                for triple, values in self.sweep.items()
            ]
        return out
