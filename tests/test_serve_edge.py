"""Tests for ``ffseg export``: ONNX and TFLite files that serve what the SavedModel serves.

Parity is measured on real face crops (the astronaut, Grace Hopper): the
largest difference of score and localization map between the SavedModel's
``serving_default`` and ONNX Runtime / the TFLite interpreter. The model is
71 px, so the crops' area resize and every map resize are in the graph:
exactly what a converter could get wrong.
"""

import json
import os

import numpy as np
import pytest

from ffseg.inference.predictors import load_predictor
from ffseg.serve import edge
from tests import media
from tests.test_serve import _command, export_sample_model, face_crop, make_model

TOLERANCE_SCORE = 1e-5
TOLERANCE_MAP = 1e-4


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edge")
    model = make_model()
    exported = export_sample_model(model, folder / "export")
    keras_path = str(folder / "model.keras")
    model.save(keras_path)
    return exported, keras_path, folder


@pytest.fixture(scope="module")
def crops():
    return np.stack([face_crop(media.astronaut()), face_crop(media.grace_hopper())])


@pytest.fixture(scope="module")
def reference(models, crops):
    return load_predictor(models[0]).predict(crops)


def _check_parity(path, crops, reference):
    got = edge.load_edge(path).predict(crops)
    assert set(got) == {"score", "localization_map", "class_probabilities"}
    assert got["score"].shape == (2,) and got["localization_map"].shape == (2, 299, 299)
    assert np.abs(got["score"] - reference["score"]).max() < TOLERANCE_SCORE
    assert np.abs(got["localization_map"] - reference["localization_map"]).max() < TOLERANCE_MAP
    np.testing.assert_allclose(got["class_probabilities"], reference["class_probabilities"],
                               atol=TOLERANCE_SCORE)
    # Different faces, different scores: the parity is not that of a constant.
    assert abs(reference["score"][0] - reference["score"][1]) > 1e-3


def test_onnx_from_the_saved_model(models, crops, reference):
    exported, _, folder = models
    path = str(folder / "ffseg.onnx")
    info = edge.export_edge(exported, path, "onnx")
    assert info["format"] == "onnx" and info["bytes"] == os.path.getsize(path)
    # The crops' area resize and the export's resize of the localization map
    # to the crop, as matrix products; the model's three map upsamplings are
    # matrix products already (`ffseg.models.heads.bilinear_upsample`).
    assert info["resizes_replaced"] == 2
    import onnx

    proto = onnx.load(path)
    assert [i.name for i in proto.graph.input] == ["faces"]
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert sorted(o.name for o in proto.graph.output) == sorted(edge.OUTPUTS)
    assert not [node.op_type for node in proto.graph.node if node.op_type == "Resize"]
    with open(path + ".json") as handle:
        card = json.load(handle)
    assert card["dataset"] == "ffpp/sample" and card["image_size"] == 71
    _check_parity(path, crops, reference)
    # Nothing is ever replaced.
    with pytest.raises(FileExistsError):
        edge.export_edge(exported, path, "onnx")


def test_tflite_from_a_keras_file_with_the_command(models, crops, reference, capsys):
    _, keras_path, folder = models
    path = str(folder / "ffseg.tflite")
    args = _command(["export", keras_path, "--format", "tflite", "--output", path])
    assert args.run(args) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"{path}: tflite, ") and out.err == ""
    _check_parity(path, crops, reference)
    # A second run refuses, in one line, and leaves the file as it was.
    size = os.path.getsize(path)
    assert args.run(args) == 2
    assert capsys.readouterr().err.strip() == (
        f"ffseg export: {path}: already exists; choose another --output (nothing was written)")
    assert os.path.getsize(path) == size


def test_export_usage_errors(tmp_path, capsys):
    args = _command(["export", str(tmp_path / "none"), "--format", "onnx",
                     "--output", str(tmp_path / "x.onnx")])
    assert args.run(args) == 2
    assert "no such model" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    args = _command(["export", str(tmp_path / "empty"), "--format", "onnx",
                     "--output", str(tmp_path / "x.onnx")])
    assert args.run(args) == 2
    assert "no saved_model.pb" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.onnx")
    with pytest.raises(SystemExit):
        _command(["export", "m", "--format", "coreml", "--output", "x"])
    with pytest.raises(ValueError, match="unknown format"):
        edge.export_edge("m", str(tmp_path / "y"), "coreml")


def test_resize_matrices_are_the_ops_own():
    import tensorflow as tf

    rng = np.random.RandomState(0)
    image = rng.uniform(0, 255, (1, 299, 299, 3)).astype(np.float32)
    area = edge._resize_matrix("ResizeArea", _Attrs(), 299, 71)
    expected = tf.image.resize(image, (71, 71), method="area").numpy()
    got = np.einsum("ih,nhwc,jw->nijc", area, image, area)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    assert np.allclose(area.sum(axis=1), 1.0, atol=1e-5)  # each output pixel averages
    bilinear = edge._resize_matrix("ResizeBilinear", _Attrs(half_pixel_centers=True), 19, 71)
    small = rng.uniform(0, 1, (1, 19, 19, 1)).astype(np.float32)
    expected = tf.image.resize(small, (71, 71), method="bilinear").numpy()
    np.testing.assert_allclose(np.einsum("ih,nhwc,jw->nijc", bilinear, small, bilinear),
                               expected, atol=1e-5)


class _Flag:
    def __init__(self, value):
        self.b = value


class _Attrs(dict):
    def __init__(self, half_pixel_centers=False):
        super().__init__(align_corners=_Flag(False), half_pixel_centers=_Flag(half_pixel_centers))
