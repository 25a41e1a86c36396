"""Model files written by ffseg 0.1 (the flat layout) still load and score alike.

`fixtures/legacy_v0_1/` holds a `.keras` file and a SavedModel that ffseg
0.1 wrote (`make_fixture.py` there says how), and the outputs 0.1 computed
on two real faces.
"""

import os
import subprocess
import sys
import tarfile
import textwrap

import numpy as np
import pytest

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "legacy_v0_1")


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    out = tmp_path_factory.mktemp("legacy")
    with tarfile.open(os.path.join(FIXTURE, "legacy_v0_1.tar.xz")) as archive:
        archive.extractall(out, filter="data")
    return out, dict(np.load(os.path.join(FIXTURE, "expected.npz")))


@pytest.mark.parametrize("name, prefix", [("model.keras", "keras"), ("export", "saved")])
def test_legacy_model_files_score_as_they_did(legacy, name, prefix):
    from ffseg.inference.predictors import load_predictor

    folder, expected = legacy
    outputs = load_predictor(str(folder / name)).predict(expected["crops"])
    np.testing.assert_allclose(outputs["score"], expected[f"{prefix}_score"], atol=1e-6)
    np.testing.assert_allclose(outputs["localization_map"], expected[f"{prefix}_map"], atol=1e-5)


def test_import_ffseg_alone_lets_keras_load_a_legacy_model(legacy):
    folder, expected = legacy
    code = textwrap.dedent(
        f"""
        import sys
        import ffseg
        assert "keras" not in sys.modules, "import ffseg must not import keras"
        import keras
        model = keras.saving.load_model({str(folder / "model.keras")!r})
        print(type(model).__name__, model.input_shape[1])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["FFSeg", "71"]


def test_legacy_module_paths_still_import_with_a_warning():
    import importlib

    cases = [
        ("ffseg.faces", "ffseg.signal.faces", "FaceDetector"),
        ("ffseg.noise", "ffseg.signal.noise", "noise_residual"),
        ("ffseg.predictors", "ffseg.inference.predictors", "load_predictor"),
    ]
    for old, new, name in cases:
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match=new):
            module = importlib.import_module(old)
        assert getattr(module, name) is getattr(importlib.import_module(new), name)
    from ffseg.faces import FaceDetector  # the README of 0.1 documented this import
    from ffseg.signal.faces import FaceDetector as current

    assert FaceDetector is current
