"""The package's layering rules, enforced.

- `ffseg.signal` (and the foundation modules it uses) never imports
  TensorFlow or Keras: checked in a fresh interpreter where importing either
  fails.
- No layer imports a layer above it: checked on the source of every module.
"""

import ast
import os
import pathlib
import subprocess
import sys
import textwrap

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "ffseg"

# Lower rank first; a module may import only modules of a lower rank or of
# its own layer. The package's __init__ (the public API, resolved lazily)
# and the import glue in _compat stand above every layer.
LAYERS = {
    "ffseg.constants": 0,
    "ffseg.errors": 0,
    "ffseg.timing": 0,
    "ffseg.arguments": 0,
    "ffseg.config": 1,
    "ffseg.signal": 2,
    "ffseg.models": 3,
    "ffseg.data": 3,
    "ffseg.inference": 4,
    "ffseg.evaluation": 5,
    "ffseg.training": 6,
    "ffseg.serve": 7,
    "ffseg.cli": 8,
}


def _layer(module: str):
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return None


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _ffseg_imports(path: pathlib.Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("ffseg.") and _layer(name):
                yield node.lineno, name


def test_every_module_belongs_to_a_layer():
    unplaced = []
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        if name in ("ffseg", "ffseg._compat"):
            continue
        if _layer(name) is None:
            unplaced.append(name)
    assert not unplaced, f"modules outside every layer of LAYERS: {unplaced}"


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        own = _layer(name)
        if own is None:
            continue
        for line, imported in _ffseg_imports(path):
            target = _layer(imported)
            if target != own and LAYERS[target] >= LAYERS[own]:
                upward.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line} ({own}) imports {imported}"
                )
    assert not upward, "\n".join(upward)


def test_the_signal_layer_runs_where_tensorflow_and_keras_cannot_be_imported():
    modules = sorted(_module_name(path) for path in (PACKAGE / "signal").rglob("*.py"))
    code = textwrap.dedent(
        f"""
        import importlib, sys

        class Blocked:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "keras", "tf_keras", "jax"):
                    raise ImportError(f"{{name}} is blocked in this test")
                return None

        sys.meta_path.insert(0, Blocked())
        for module in {modules!r}:
            importlib.import_module(module)
        # Use it too: a noise label and a face crop of a real photo.
        from skimage import data
        from ffseg.signal import faces, noise
        image = data.astronaut()
        box = faces.face_box(faces.FaceDetector().largest(image), image.shape)
        crop = faces.crop(image, box)
        print(crop.shape, noise.noise_residual(crop, 5.0).shape)
        assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(PACKAGE.parent),
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[0] == "(299, 299, 3) (299, 299, 3)"
