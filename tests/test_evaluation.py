import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from ffseg.evaluation import figures as evaluation


def test_detection_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = np.clip(labels * 0.3 + rng.normal(0.35, 0.25, 500), 0, 1)
    metrics = evaluation.detection_metrics(labels, scores)
    assert metrics["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert metrics["average_precision"] == pytest.approx(average_precision_score(labels, scores))
    assert metrics["accuracy"] == pytest.approx(np.mean((scores >= 0.5) == labels))
    assert metrics["count"] == 500


def test_equal_error_rate_by_brute_force():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 2000)
    scores = labels * 1.0 + rng.normal(0, 0.8, 2000)
    eer = evaluation.equal_error_rate(labels, scores)
    # Brute force: the threshold where FPR and FNR cross.
    best = min(
        (abs(np.mean(scores[labels == 0] >= t) - np.mean(scores[labels == 1] < t)), t)
        for t in np.sort(scores)
    )[1]
    fpr = np.mean(scores[labels == 0] >= best)
    fnr = np.mean(scores[labels == 1] < best)
    assert eer == pytest.approx((fpr + fnr) / 2, abs=2e-3)
    assert 0.2 < eer < 0.4


def test_equal_error_rate_extremes():
    assert evaluation.equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert evaluation.equal_error_rate([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 1.0
    assert np.isnan(evaluation.equal_error_rate([1, 1], [0.2, 0.3]))


def test_video_level_means_frames_of_each_video():
    videos = ["a", "a", "b", "b", "b", "c"]
    labels = [1, 1, 0, 0, 0, 1]
    scores = [0.2, 0.6, 0.1, 0.3, 0.2, 0.9]
    ids, video_labels, video_scores = evaluation.video_level(videos, labels, scores)
    assert ids == ["a", "b", "c"]
    assert video_labels.tolist() == [1, 0, 1]
    np.testing.assert_allclose(video_scores, [0.4, 0.2, 0.9])
    with pytest.raises(ValueError, match="different labels"):
        evaluation.video_level(["a", "a"], [0, 1], [0.1, 0.2])


def test_per_method_accuracy_and_class_recall():
    methods = np.array([0, 0, 1, 1, 2, 3, 4, 4])
    scores = np.array([0.1, 0.7, 0.9, 0.4, 0.8, 0.6, 0.2, 0.51])
    names = ["real", "Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
    acc = evaluation.per_method_accuracy(methods, scores, names)
    assert acc["real"] == {"count": 2, "accuracy": 0.5}
    assert acc["Deepfakes"]["accuracy"] == 0.5
    assert acc["Face2Face"]["accuracy"] == 1.0
    assert acc["NeuralTextures"]["accuracy"] == 0.5
    probabilities = np.eye(5)[[0, 1, 1, 1, 2, 0, 4, 3]]
    recall = evaluation.per_class_recall(methods, probabilities, names)
    assert recall["recall"] == {
        "real": 0.5,
        "Deepfakes": 1.0,
        "Face2Face": 1.0,
        "FaceSwap": 0.0,
        "NeuralTextures": 0.5,
    }
    assert recall["average_recall"] == pytest.approx(0.6)


def test_iou_on_hand_made_masks():
    a = np.zeros((6, 6), bool)
    b = np.zeros((6, 6), bool)
    a[1:4, 1:4] = True  # 9 pixels
    b[2:5, 2:5] = True  # 9 pixels, overlap 4
    assert evaluation.iou(a, b) == pytest.approx(4 / 14)
    assert evaluation.iou(a, a) == 1.0
    assert evaluation.iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        evaluation.iou(a, np.zeros((5, 5)))


def test_localization_accumulator():
    masks = np.zeros((3, 8, 8), np.float32)
    masks[0, :4] = 1  # manipulated frame: top half
    masks[1, :, :4] = 1  # manipulated frame: left half
    maps = np.zeros((3, 8, 8), np.float32)
    maps[0, :4] = 0.9  # exact
    maps[1, :4, :4] = 0.8  # a quarter: IoU 0.5
    maps[2, 0, :] = 0.7  # real frame with 8 false-positive pixels
    acc = evaluation.LocalizationAccumulator()
    acc.update(maps[:2], masks[:2], [1, 1], semantic_maps=[maps[:2]] * 3)
    acc.update(maps[2:], masks[2:], [0])
    result = acc.result()
    assert result["iou"] == pytest.approx(0.75)
    assert result["iou_pooled"] == pytest.approx((32 + 16) / (32 + 32))
    assert result["false_positive_area"] == pytest.approx(8 / 64)
    assert result["manipulated_frames"] == 2 and result["real_frames"] == 1
    expected_auc = roc_auc_score(masks.ravel() > 0.5, maps.ravel())
    assert result["pixel_auc"] == pytest.approx(expected_auc, abs=1e-3)
    sweep = {tuple(row["gammas"]): row["iou"] for row in result["gamma_sweep"]}
    # All three maps equal: every gamma triple sums to 1 and gives the same map.
    assert sweep[(0.1, 0.2, 0.7)] == pytest.approx(0.75)
    assert len(sweep) == 9


def test_report_writes_json_markdown_and_pictures(tmp_path):
    import json

    import cv2

    from ffseg.evaluation import report

    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 10)
    scores = np.clip(labels * 0.5 + rng.uniform(0, 0.5, 20), 0, 1)
    loc = evaluation.LocalizationAccumulator()
    maps = rng.uniform(0, 1, (20, 16, 16)).astype(np.float32)
    masks = np.zeros((20, 16, 16), np.float32)
    masks[labels == 1, :8] = 1
    loc.update(maps, masks, labels, semantic_maps=[maps] * 3)
    results = {
        "dataset": "ffpp/sample/1.0.0",
        "split": "test",
        "model": "/m",
        "frame_level": evaluation.detection_metrics(labels, scores),
        "video_level": evaluation.detection_metrics([0, 1], [0.2, 0.9]),
        "per_method_accuracy": evaluation.per_method_accuracy(
            labels, scores, ["real", "Deepfakes"]
        ),
        "localization": loc.result(),
        "roc": {"frame": (np.array([0, 0.5, 1]), np.array([0, 0.9, 1]))},
        "grid": [
            {
                "image": np.full((299, 299, 3), 90, np.uint8),
                "mask": masks[1],
                "map": maps[1],
                "score": 0.7,
                "label": 1,
            },
            {
                "image": np.full((299, 299, 3), 30, np.uint8),
                "mask": None,
                "map": maps[0],
                "score": 0.1,
                "label": 0,
            },
        ],
    }
    paths = report.write(results, str(tmp_path / "eval"))
    data = json.loads(open(paths["json"]).read())  # strict JSON: NaN became null
    assert data["frame_level"]["auc"] == pytest.approx(results["frame_level"]["auc"])
    assert data["video_level"]["eer"] == 0.0
    assert "grid" not in data and "roc" not in data
    text = open(paths["markdown"]).read()
    assert "| frame level | 20 |" in text and "Table VI" in text and "0.1 | 0.2 | 0.7" in text
    roc = cv2.imread(paths["roc"])
    grid = cv2.imread(paths["grid"])
    assert roc is not None and roc.shape[0] > 100
    assert grid.shape == (256, 384, 3)
