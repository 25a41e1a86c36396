"""Import-time glue: old module paths, and Keras' class registry.

Two things happen when `ffseg` is imported, without importing Keras or
TensorFlow (the signal layer must stay free of both):

- The flat module paths of ffseg 0.1 (`ffseg.faces`, `ffseg.model`, ...)
  still import, as deprecated aliases of their new homes.
- ffseg's Keras classes (the model, its heads, losses and metrics) are
  registered with Keras as soon as Keras is imported, so
  `keras.saving.load_model("model.keras")` works after `import ffseg` alone:
  Keras finds classes of packages other than its own only in its registry.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# ffseg 0.1's module -> where it lives now.
LEGACY_MODULES = {
    "ffseg.video": "ffseg.signal.video",
    "ffseg.faces": "ffseg.signal.faces",
    "ffseg.masks": "ffseg.signal.masks",
    "ffseg.noise": "ffseg.signal.noise",
    "ffseg.extract": "ffseg.signal.extract",
    "ffseg.sample": "ffseg.signal.sample",
    "ffseg.backbone": "ffseg.models.backbone",
    "ffseg.heads": "ffseg.models.heads",
    "ffseg.model": "ffseg.models.ffseg_model",
    "ffseg.losses": "ffseg.models.losses",
    "ffseg.metrics": "ffseg.models.metrics",
    "ffseg.callbacks": "ffseg.training.callbacks",
    "ffseg.report": "ffseg.evaluation.report",
    "ffseg.export": "ffseg.inference.export",
    "ffseg.predictors": "ffseg.inference.predictors",
    "ffseg.detect": "ffseg.inference.detect",
}
# The module whose import registers every serializable Keras class.
KERAS_CLASSES_MODULE = "ffseg.models"


class _Alias(importlib.abc.Loader):
    """Loads a legacy module path as a view of the module that replaced it."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        warnings.warn(
            f"{module.__name__} is deprecated; import {self.target} instead",
            DeprecationWarning,
            stacklevel=2,
        )
        real = importlib.import_module(self.target)
        module.__dict__.update(
            {name: value for name, value in vars(real).items() if not name.startswith("__")}
        )
        module.__doc__ = real.__doc__
        module.__getattr__ = lambda name: getattr(real, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Answers for the legacy module paths, and watches for `import keras`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in LEGACY_MODULES:
            return importlib.util.spec_from_loader(fullname, _Alias(LEGACY_MODULES[fullname]))
        if fullname != "keras" or self._busy:
            return None
        # Find Keras through the other finders, then register ffseg's classes
        # once its module has run.
        self._busy = True
        try:
            spec = importlib.util.find_spec("keras")
        finally:
            self._busy = False
        if spec is None or spec.loader is None:
            return spec
        run_keras = spec.loader.exec_module

        def exec_module(module):
            run_keras(module)
            _register_keras_classes()

        spec.loader.exec_module = exec_module
        return spec

    _busy = False


def _register_keras_classes():
    try:
        importlib.import_module(KERAS_CLASSES_MODULE)
    except Exception as error:  # never break `import keras` for the user's code
        warnings.warn(f"ffseg could not register its Keras classes: {error}", RuntimeWarning)


def install():
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    if "keras" in sys.modules:
        _register_keras_classes()
