"""Starting TensorFlow quietly: no CUDA error lines without a GPU, genuine errors kept."""

import os
import subprocess
import sys
import textwrap

from ffseg import cli

# The line TensorFlow 2.21's CUDA build prints on a machine without a GPU.
CUINIT_LINE = (
    "E0000 00:00:1796084483.538393   15536 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)"
)


def test_only_the_cuda_startup_complaints_are_dropped_and_only_without_a_gpu():
    genuine = "E0000 00:00:1796084483.6 12 op_kernel.cc:1] INVALID_ARGUMENT: a real failure"
    lines = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796084476.922062   15536 cudart_stub.cc:31] Could not find cuda drivers "
        "on your machine, GPU will not be used.",
        CUINIT_LINE,
        genuine,
        "W0000 00:00:1796084483.7 12 loader.cc:1] a warning",
    ]
    assert cli.startup_lines_to_show(lines, gpu_present=False) == lines[3:]
    # With a GPU, cuInit failing is a broken driver: a real error, shown.
    assert cli.startup_lines_to_show(lines, gpu_present=True) == lines
    # TF_CPP_MIN_LOG_LEVEL is honoured for the lines printed before TF reads it.
    assert cli.startup_lines_to_show(lines, gpu_present=True, min_log_level=1) == [
        lines[0], CUINIT_LINE, genuine, lines[4]]
    assert cli.startup_lines_to_show(lines, gpu_present=False, min_log_level=2) == [genuine]


def test_tensorflow_starts_without_cuda_error_lines_but_real_errors_show():
    code = textwrap.dedent(
        """
        from ffseg.cli import import_tensorflow_quietly

        tf = import_tensorflow_quietly()
        print(tf.reduce_sum(tf.ones(3)).numpy(), len(tf.config.list_physical_devices()) > 0)
        import os
        os.write(2, b"E0000 00:00:1.0 1 kernel.cc:1] a genuine native error\\n")
        raise RuntimeError("a genuine Python error")
        """
    )
    environment = {key: value for key, value in os.environ.items()
                   if key != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=environment)
    assert done.returncode == 1
    assert done.stdout.split() == ["3.0", "True"]
    if not cli.nvidia_gpu_present():
        assert "cuInit" not in done.stderr and "cuda" not in done.stderr.lower(), done.stderr
    assert "a genuine native error" in done.stderr
    assert "RuntimeError: a genuine Python error" in done.stderr
