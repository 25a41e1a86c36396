"""Evaluation figures of the paper's tables, computed with numpy/scikit-learn.

Detection (paper section IV-C, Tables II-V): AUC, accuracy at 0.5, equal
error rate and average precision, at the frame level and at the video level
(the mean score of each video's frames: peers mix the two up, so every figure
here carries its level in its name); per-method accuracy (Table III);
per-class recall and their average in 5-class mode (Table V).

Localization (section IV-D, Eq. 7, Table VI): IoU of the fused map
thresholded at 0.5 against the ground-truth mask, the false-positive area on
real frames, pixel-level AUC, and the sweep over the gamma weights of Table
VI. Eq. 7 does not say how faces are pooled or whether pristine faces count,
so three definitions are reported side by side (see `LocalizationAccumulator`):

- (a) `iou`: foreground IoU, the mean over manipulated faces;
- (b) `iou_all_faces`: the mean over every face, where a face whose true
  mask and prediction are both empty counts 1 and a pristine face with a
  non-empty prediction counts 0 (its IoU: nothing shared, something claimed);
- (c) `miou_two_class`: semantic segmentation's mean IoU over the two pixel
  classes (manipulated, pristine), from one confusion matrix pooled over
  every pixel of the split.
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
    """AUC, accuracy at `threshold`, EER and average precision of fake scores.

    Accuracy is at the split's stored real:fake ratio (`real_count`,
    `fake_count`), as the paper's ACC; `balanced_accuracy` is the mean of the
    two classes' recalls (`real_recall`: real faces scored below the
    threshold; `fake_recall`: fake faces at or above it), which does not
    move with that ratio.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels, scores = _check_binary(labels, scores)
    both = labels.size > 0 and labels.min() != labels.max()
    predicted = scores >= threshold
    real, fake = labels == 0, labels == 1
    real_recall = float(np.mean(~predicted[real])) if real.any() else float("nan")
    fake_recall = float(np.mean(predicted[fake])) if fake.any() else float("nan")
    return {
        "count": int(labels.size),
        "real_count": int(real.sum()),
        "fake_count": int(fake.sum()),
        "auc": float(roc_auc_score(labels, scores)) if both else float("nan"),
        "accuracy": float(np.mean(predicted == labels)) if labels.size else float("nan"),
        "balanced_accuracy": float(np.mean([real_recall, fake_recall])) if both else float("nan"),
        "real_recall": real_recall,
        "fake_recall": fake_recall,
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
    trained on all methods, `accuracy` is that model's accuracy on each
    method's faces alone, and `with_real` its detection figures on the faces
    a Table III detector is tested on: real faces plus that method's.
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
        if index > 0 and (methods == 0).any():
            subset = (methods == 0) | chosen
            result[name]["with_real"] = detection_metrics(
                (methods[subset] > 0).astype(np.int64), scores[subset], threshold
            )
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


class _IouCounts:
    """The three IoU definitions of Eq. 7, summed over faces (see the module docstring)."""

    def __init__(self):
        self.manipulated = []  # (a): one IoU per manipulated face
        self.all_faces_sum, self.all_faces = 0.0, 0  # (b)
        self.confusion = np.zeros(4, np.int64)  # (c): TP, FP, FN, TN over every pixel

    def update(self, predicted, truth, manipulated):
        """predicted, truth: [N, P] bool; manipulated: [N] bool (fake with a mask)."""
        intersection = np.logical_and(predicted, truth).sum(axis=1)
        union = np.logical_or(predicted, truth).sum(axis=1)
        # Both empty: a perfect match (a pristine face predicted pristine).
        per_face = np.where(union == 0, 1.0, intersection / np.maximum(union, 1))
        self.manipulated.extend(per_face[manipulated].tolist())
        self.all_faces_sum += float(per_face.sum())
        self.all_faces += len(per_face)
        tp = int(intersection.sum())
        fp = int(predicted.sum()) - tp
        fn = int(truth.sum()) - tp
        self.confusion += np.array([tp, fp, fn, predicted.size - tp - fp - fn], np.int64)

    def result(self) -> dict:
        tp, fp, fn, tn = (int(v) for v in self.confusion)
        manipulated_class = tp / (tp + fp + fn) if tp + fp + fn else float("nan")
        pristine_class = tn / (tn + fp + fn) if tn + fp + fn else float("nan")
        all_faces = self.all_faces_sum / self.all_faces if self.all_faces else float("nan")
        return {
            "iou": float(np.mean(self.manipulated)) if self.manipulated else float("nan"),
            "iou_all_faces": all_faces,
            "miou_two_class": float(np.mean([manipulated_class, pristine_class])),
            "iou_manipulated_class": float(manipulated_class),
            "iou_pristine_class": float(pristine_class),
        }


class LocalizationAccumulator:
    """Streams localization figures over batches in bounded memory.

    Eq. 7's IoU in three definitions, reported side by side because the
    paper does not say which it uses:

    - `iou` (a): mean per-face foreground IoU of map >= threshold vs mask,
      over manipulated faces (fake faces whose mask is not empty);
    - `iou_all_faces` (b): mean per-face IoU over every face; a face whose
      true mask and prediction are both empty counts 1, a pristine face with
      a non-empty prediction counts 0;
    - `miou_two_class` (c): semantic segmentation's mean IoU over the
      classes manipulated and pristine, from the confusion matrix pooled
      over every pixel of every face (as segmentation benchmarks pool it;
      per-face averaging would leave the manipulated class undefined, 0/0,
      on every pristine face predicted clean), with the two class IoUs
      `iou_manipulated_class` and `iou_pristine_class`.

    Also:

    - `iou_pooled`: intersection / union summed over the manipulated faces;
    - `false_positive_area`: mean fraction of pixels predicted manipulated on
      real frames;
    - `pixel_auc`: ROC AUC over every pixel of every frame, from 1,000-bin
      score histograms (exact up to the bin width);
    - `gamma_sweep` (Table VI): the three IoUs for each gamma triple, when
      the three semantic maps are given.
    """

    BINS = 1000

    def __init__(self, threshold: float = 0.5, gammas=TABLE_VI_GAMMAS):
        self.threshold = threshold
        self.gammas = tuple(tuple(float(g) for g in triple) for triple in gammas)
        self.counts = _IouCounts()
        self.intersection = 0
        self.union = 0
        self.false_positive_areas = []
        self.positive_hist = np.zeros(self.BINS, np.int64)
        self.negative_hist = np.zeros(self.BINS, np.int64)
        self.sweep = {triple: _IouCounts() for triple in self.gammas}

    def update(self, maps, masks, labels, semantic_maps=None):
        """maps, masks: [N, S, S] (or [N, S, S, 1]); labels [N]; semantic_maps:
        three [N, S, S] arrays already resized to S (for the gamma sweep)."""
        maps = np.asarray(maps, np.float32).reshape(len(labels), -1)
        masks = np.asarray(masks).reshape(len(labels), -1) > 0.5
        labels = np.asarray(labels).ravel()
        predicted = maps >= self.threshold
        manipulated = (labels > 0) & masks.any(axis=1)
        self.counts.update(predicted, masks, manipulated)
        self.intersection += int(np.logical_and(predicted[manipulated], masks[manipulated]).sum())
        self.union += int(np.logical_or(predicted[manipulated], masks[manipulated]).sum())
        self.false_positive_areas.extend(predicted[labels == 0].mean(axis=1).tolist())
        bins = np.clip((maps * self.BINS).astype(np.int64), 0, self.BINS - 1)
        self.positive_hist += np.bincount(bins[masks], minlength=self.BINS)
        self.negative_hist += np.bincount(bins[~masks], minlength=self.BINS)
        if semantic_maps is not None:
            stacked = [np.asarray(m, np.float32).reshape(len(labels), -1) for m in semantic_maps]
            for triple in self.gammas:
                fused = sum(g * m for g, m in zip(triple, stacked)) >= self.threshold
                self.sweep[triple].update(fused, masks, manipulated)

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
        out = self.counts.result()
        out.update(
            {
                "iou_pooled": float(self.intersection / self.union) if self.union else float("nan"),
                "manipulated_frames": len(self.counts.manipulated),
                "false_positive_area": mean(self.false_positive_areas),
                "real_frames": len(self.false_positive_areas),
                "faces": self.counts.all_faces,
                "pixel_auc": self.pixel_auc(),
            }
        )
        if any(counts.all_faces for counts in self.sweep.values()):
            out["gamma_sweep"] = [
                {"gammas": list(triple), **counts.result()}
                for triple, counts in self.sweep.items()
            ]
        return out
