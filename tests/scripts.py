"""Python code run in a fresh interpreter, with this checkout importable.

Tests that need a clean process (another Keras backend, TensorFlow blocked,
a worker of a cluster, a run to kill) share this one way to start it.
"""

import os
import subprocess
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code: str, env=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs `code` with `python -c` in the repository root; output captured as text.

    Args:
        code: the program.
        env: variables set on top of this process' environment.
        timeout: seconds before `subprocess.TimeoutExpired`.
    """
    environment = dict(os.environ, **(env or {}))
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [REPOSITORY, environment.get("PYTHONPATH")])
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
