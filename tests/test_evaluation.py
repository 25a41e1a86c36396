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
    assert "| frame level | 20 (10:10) |" in text and "Table VI" in text
    assert "0.1 | 0.2 | 0.7" in text
    roc = cv2.imread(paths["roc"])
    grid = cv2.imread(paths["grid"])
    assert roc is not None and roc.shape[0] > 100
    # Three columns of faces side by side, two rows of them under a heading
    # (the layout's own figures are tested in test_map_grid_*).
    assert grid is not None and grid.shape[1] > 3 * 100 and grid.shape[0] > 2 * 100


def test_detection_metrics_count_the_classes_and_balance_the_accuracy():
    # 4 real : 1 fake; one real face scored fake.
    metrics = evaluation.detection_metrics([0, 0, 0, 0, 1], [0.1, 0.2, 0.6, 0.3, 0.9])
    assert (metrics["real_count"], metrics["fake_count"]) == (4, 1)
    assert metrics["accuracy"] == pytest.approx(4 / 5)  # at the stored 4:1 ratio
    assert metrics["real_recall"] == pytest.approx(3 / 4)
    assert metrics["fake_recall"] == 1.0
    assert metrics["balanced_accuracy"] == pytest.approx((3 / 4 + 1) / 2)
    # Balanced accuracy does not move with the ratio: the same faces, real ones x3.
    tripled = evaluation.detection_metrics(
        [0] * 12 + [1], [0.1, 0.2, 0.6, 0.3] * 3 + [0.9]
    )
    assert tripled["balanced_accuracy"] == pytest.approx(metrics["balanced_accuracy"])
    assert tripled["accuracy"] != pytest.approx(metrics["accuracy"])
    assert np.isnan(evaluation.detection_metrics([1, 1], [0.2, 0.9])["balanced_accuracy"])


def test_per_method_accuracy_with_real_faces_is_table_iii_test_set():
    methods = np.array([0, 0, 1, 1, 2])
    scores = np.array([0.1, 0.7, 0.9, 0.4, 0.8])
    names = ["real", "Deepfakes", "Face2Face"]
    acc = evaluation.per_method_accuracy(methods, scores, names)
    # Real + Deepfakes: 0.1 right, 0.7 wrong, 0.9 right, 0.4 wrong.
    assert acc["Deepfakes"]["with_real"]["accuracy"] == 0.5
    assert acc["Deepfakes"]["with_real"]["count"] == 4
    # Real + Face2Face: 0.1 right, 0.7 wrong, 0.8 right.
    assert acc["Face2Face"]["with_real"]["accuracy"] == pytest.approx(2 / 3)
    assert "with_real" not in acc["real"]


def _hand_made_faces():
    """Five 4x4 faces with known IoUs under the three definitions.

    0 fake, mask rows 0-1 (8 px), prediction row 0 (4 px): IoU 4/8
    1 fake, mask cols 0-1, prediction the same: IoU 1
    2 real, nothing predicted: both empty
    3 real, 2 px predicted: nothing shared, something claimed
    4 fake whose mask is empty (lost in compression), 1 px predicted
    """
    masks = np.zeros((5, 4, 4), np.float32)
    maps = np.zeros((5, 4, 4), np.float32)
    masks[0, :2] = 1
    maps[0, 0] = 0.9
    masks[1, :, :2] = 1
    maps[1, :, :2] = 0.8
    maps[3, 3, :2] = 0.6
    maps[4, 0, 0] = 0.7
    return maps, masks, np.array([1, 1, 0, 0, 1])


def test_three_iou_definitions_on_hand_made_masks():
    maps, masks, labels = _hand_made_faces()
    accumulator = evaluation.LocalizationAccumulator()
    # In two batches: the figures are sums over faces, not per batch.
    accumulator.update(maps[:3], masks[:3], labels[:3])
    accumulator.update(maps[3:], masks[3:], labels[3:])
    result = accumulator.result()
    # (a) manipulated faces (fake with a mask) only: faces 0 and 1.
    assert result["iou"] == pytest.approx((0.5 + 1.0) / 2)
    assert result["manipulated_frames"] == 2
    # (b) every face; both empty counts 1 (face 2), a claim on an empty mask 0 (3, 4).
    assert result["iou_all_faces"] == pytest.approx((0.5 + 1 + 1 + 0 + 0) / 5)
    assert result["faces"] == 5
    # (c) pooled over all 80 pixels: TP 4 + 8, FP 2 + 1, FN 4, TN the rest.
    tp, fp, fn = 12, 3, 4
    tn = 80 - tp - fp - fn
    assert result["iou_manipulated_class"] == pytest.approx(tp / (tp + fp + fn))
    assert result["iou_pristine_class"] == pytest.approx(tn / (tn + fp + fn))
    assert result["miou_two_class"] == pytest.approx((12 / 19 + 61 / 68) / 2)
    assert result["false_positive_area"] == pytest.approx((0 + 2 / 16) / 2)


def test_gamma_sweep_reports_the_three_definitions():
    maps, masks, labels = _hand_made_faces()
    binary = (maps >= 0.5).astype(np.float32)
    zeros = np.zeros_like(binary)
    accumulator = evaluation.LocalizationAccumulator()
    accumulator.update(maps, masks, labels, semantic_maps=[zeros, zeros, binary])
    result = accumulator.result()
    sweep = {tuple(row["gammas"]): row for row in result["gamma_sweep"]}
    # g3 >= 0.5: the fused map is the prediction itself.
    for triple in [(0.0, 0.0, 1.0), (0.1, 0.2, 0.7), (0.2, 0.2, 0.6)]:
        for key in ("iou", "iou_all_faces", "miou_two_class"):
            assert sweep[triple][key] == pytest.approx(result[key]), (triple, key)
    # g3 = 0.4 < 0.5: nothing predicted anywhere.
    empty = sweep[(0.2, 0.4, 0.4)]
    assert empty["iou"] == 0.0
    assert empty["iou_all_faces"] == pytest.approx(3 / 5)  # faces 2, 3, 4: both empty
    assert empty["iou_manipulated_class"] == 0.0
    assert empty["miou_two_class"] == pytest.approx((0 + 64 / 80) / 2)


def test_iou_definitions_differ_as_the_readme_says():
    """On a split of perfect manipulated faces and clean pristine faces all
    three are 1; a pristine face with a false alarm lowers (b) and (c) only."""
    maps, masks, labels = _hand_made_faces()
    perfect = masks[:3].copy()
    accumulator = evaluation.LocalizationAccumulator()
    accumulator.update(perfect, masks[:3], labels[:3])
    assert {k: accumulator.result()[k] for k in ("iou", "iou_all_faces", "miou_two_class")} == {
        "iou": 1.0,
        "iou_all_faces": 1.0,
        "miou_two_class": 1.0,
    }
    accumulator.update(maps[3:4], masks[3:4], labels[3:4])
    result = accumulator.result()
    assert result["iou"] == 1.0
    assert result["iou_all_faces"] < 1.0 and result["miou_two_class"] < 1.0


def _small_results():
    from ffseg.evaluation import paper

    maps, masks, labels = _hand_made_faces()
    loc = evaluation.LocalizationAccumulator()
    loc.update(maps, masks, labels, semantic_maps=[maps] * 3)
    record = {"experiment": "ffpp_c40", "config": None, "source": None}
    from ffseg import config as config_lib

    record["config"] = config_lib.get_experiment("ffpp_c40").to_dict()
    setting = paper.run_setting(record, "ffpp/c40/1.0.0", 2)
    return {
        "dataset": "ffpp/c40/1.0.0",
        "split": "test",
        "model": "/runs/c40/model.keras",
        "threshold": 0.5,
        "frame_level": evaluation.detection_metrics([0, 0, 0, 1], [0.1, 0.6, 0.2, 0.9]),
        "video_level": evaluation.detection_metrics([0, 1], [0.3, 0.9]),
        "per_method_accuracy": evaluation.per_method_accuracy(
            [0, 0, 1, 4], [0.1, 0.6, 0.9, 0.3], ["real", *evaluation_methods()]
        ),
        "localization": loc.result(),
        "training": record,
        "paper": paper.for_results(setting),
    }


def evaluation_methods():
    from ffseg.constants import METHODS

    return list(METHODS)


def test_report_prints_the_paper_figure_beside_ours():
    from ffseg.evaluation import report

    text = report.markdown(_small_results())
    frame_row = next(line for line in text.splitlines() if line.startswith("| frame level"))
    # Ours, then the paper's, with a numbered source note.
    assert "| 4 (3:1) | 100.00 | 87.10 [1] | 75.00 | 84.84 [2] | 83.33 |" in frame_row
    assert "[1] Table II, Ours, LQ (QP=40) AUC(%); Table VII" in text
    assert "Table VIII, Xception + f3 + f2 + f1, AUC(%)" in text
    assert "Xception baseline on the same data: AUC 84.38" in text
    assert "experiment `ffpp_c40`" in text
    assert "Table II, Table VI, Table VII, Table VIII, Fig. 4" in text
    # The three IoU definitions, each labelled, with the paper's 0.8413 beside.
    for label in ("(a) foreground IoU", "(b) mean over all faces", "(c) two-class mean IoU"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {label}"))
        assert "0.8413" in row
    sweep_row = next(line for line in text.splitlines() if line.startswith("| 0.0 | 0.0 | 1.0"))
    assert sweep_row.endswith("| 0.8399 |")
    assert "| gamma1 | gamma2 | gamma3 | (a) | (b) | (c) | paper [" in text
    assert "Table VI, gamma sweep, IoU (LQ), one row per weighting" in text
    # Table III's per-method detectors, marked as another protocol.
    assert "| Deepfakes | 1 | 100.00 | 66.67 | 97.25" in text
    assert "one detector per method" in text
    assert "sigma 10.0" in text


def test_report_without_a_paper_figure_says_so():
    from ffseg.evaluation import paper, report

    results = _small_results()
    results["paper"] = paper.for_results(
        paper.run_setting({"config": None}, "ffpp/sample/1.0.0", 2)
    )
    text = report.markdown(results)
    assert "No figure of the paper applies" in text and "unknown:" in text
    assert "| frame level | 4 (3:1) | 100.00 | – |" in text
    del results["paper"]
    assert "## Notes" not in report.markdown(results)


def test_report_never_writes_over_an_earlier_evaluation(tmp_path):
    from ffseg.evaluation import report

    results = _small_results()
    out = tmp_path / "eval"
    paths = report.write(dict(results), str(out))
    before = {path: open(path, "rb").read() for path in paths.values()}
    with pytest.raises(report.ResultsExistError) as refused:
        report.write(dict(results, dataset="other"), str(out))
    message = str(refused.value)
    assert message.startswith(f"{out}: already holds results.json, report.md")
    assert "--output" in message and "\n" not in message
    assert {path: open(path, "rb").read() for path in paths.values()} == before
    # A single stray result file is enough to refuse; other files are not.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    report.check_output(str(tmp_path / "mine"))
    (tmp_path / "mine" / "maps.png").write_bytes(b"the user's picture")
    with pytest.raises(report.ResultsExistError, match="maps.png"):
        report.write(dict(results), str(tmp_path / "mine"))
    assert not (tmp_path / "mine" / "results.json").exists()
    with pytest.raises(report.ResultsExistError, match="is a file"):
        report.check_output(str(tmp_path / "mine" / "notes.txt"))
    # Fresh names for the default folder.
    assert report.fresh_folder(str(out)) == f"{out}-2"
    (tmp_path / "eval-2").mkdir()
    assert report.fresh_folder(str(out)) == f"{out}-3"
    assert report.fresh_folder(str(tmp_path / "new")) == str(tmp_path / "new")


def test_map_grid_has_headed_columns_labels_and_a_colour_bar():
    from ffseg.evaluation import report

    maps, masks, _ = _hand_made_faces()
    face = np.full((8, 8, 3), 120, np.uint8)
    grid = [
        {"image": face, "mask": masks[0], "map": maps[0], "score": 0.98, "label": 1,
         "method": "Deepfakes"},
        {"image": face, "mask": None, "map": maps[3], "score": 0.61, "label": 0,
         "method": None},
    ]
    figure = report.grid_figure(grid, 0.5, title="celeb_df/2.0.0, test split")
    texts = [t.get_text() for t in figure.findobj(match=lambda a: hasattr(a, "get_text"))]
    for heading in ("face", "true mask", "predicted map"):
        assert heading in texts
    assert "true: fake (Deepfakes), fake score 0.98" in texts
    assert "true: real, fake score 0.61" in texts
    assert any("no mask" in t for t in texts)
    assert any(t.startswith("celeb_df/2.0.0, test split") for t in texts)
    colour_bars = [axis for axis in figure.axes if "pristine .. 1 manipulated" in axis.get_ylabel()]
    assert len(colour_bars) == 1
    assert colour_bars[0].get_ylim() == (0.0, 1.0)
    # The wrong verdict (a real face scored 0.61) is marked in red.
    import matplotlib.colors
    import matplotlib.pyplot as plt

    colours = {
        t.get_text(): matplotlib.colors.to_hex(t.get_color())
        for t in figure.findobj(match=lambda a: hasattr(a, "get_color") and hasattr(a, "get_text"))
    }
    assert colours["true: fake (Deepfakes), fake score 0.98"] == "#000000"
    assert colours["true: real, fake score 0.61"] == matplotlib.colors.to_hex("firebrick")

    plt.close(figure)


def test_roc_names_the_dataset_and_each_curves_auc():
    from ffseg.evaluation import report

    figure = report.roc_figure(
        {"frame": (np.array([0, 0.2, 1]), np.array([0, 0.8, 1]))},
        title="ROC: ffpp/c23/1.0.0, test split",
        aucs={"frame": 0.8},
    )
    axes = figure.axes[0]
    assert axes.get_title() == "ROC: ffpp/c23/1.0.0, test split"
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert legend == ["frame level (AUC 0.8000)", "chance (AUC 0.5)"]
    import matplotlib.pyplot as plt

    plt.close(figure)
