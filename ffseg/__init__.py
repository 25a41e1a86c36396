"""ffseg: face forgery detection and localization (Kong et al., TIFS 2022).

The package is layered; each layer imports only those listed before it:

- `ffseg.constants`, `ffseg.errors`, `ffseg.timing`, `ffseg.config`: shared
  facts, the file error, stage timers and the experiment configuration;
- `ffseg.signal`: video -> faces, masks, noise labels (numpy, OpenCV, dlib;
  never TensorFlow or Keras);
- `ffseg.models`: the FFSeg network, its heads, losses and metrics (Keras 3);
- `ffseg.data`: TFDS examples -> augmented batches (tf.data);
- `ffseg.inference`: export, predictors, `ffseg detect`;
- `ffseg.evaluation`: the paper's figures, the evaluation run, the report;
- `ffseg.training`: the training loop, its callbacks, distribution;
- `ffseg.cli`: the `ffseg` command.

The names below are importable from `ffseg` itself and load their layer on
first use, so `import ffseg` stays light. Importing `ffseg` also registers
ffseg's Keras classes as soon as Keras is imported, so that

>>> import ffseg, keras
>>> model = keras.saving.load_model("runs/sample/model.keras")  # doctest: +SKIP

works without importing `ffseg.models` by name.
"""

import importlib

from ffseg import _compat

__version__ = "0.1.0"

# Public name -> the module that defines it.
_API = {
    "FFSeg": "ffseg.models.ffseg_model",
    "ExperimentConfig": "ffseg.config",
    "get_experiment": "ffseg.config",
    "FaceDetector": "ffseg.signal.faces",
    "noise_residual": "ffseg.signal.noise",
    "load_model": "ffseg.inference.predictors",
    "load_predictor": "ffseg.inference.predictors",
    "detect_file": "ffseg.inference.detect",
    "FrameSample": "ffseg.signal.video",
    "FileError": "ffseg.errors",
}

__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ffseg' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))


_compat.install()
