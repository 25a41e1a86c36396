"""Shared pytest set-up: slow tests are opt-in, TF logs are quiet, long files run first."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="run tests marked slow"
    )


# The files that take minutes on 2 cores, longest first. They run first, so
# that under `-n 2` (whole files per worker, in this order) no worker is left
# with a long file at the end while the other idles.
SLOW_FIRST = (
    "tests/test_training.py",
    "tests/test_ablations.py",
    "tests/test_loaders.py",
    "tests/test_serve_edge.py",
    "tests/test_experiments.py",
    "tests/test_model.py",
    "tests/test_backends.py",
    "tfds_ffpp/ffpp/ffpp_dataset_builder_test.py",
    "tfds_ffpp/ffpp/scale_out_test.py",
    "tests/test_distribute.py",
)


def _file_rank(item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return SLOW_FIRST.index(path) if path in SLOW_FIRST else len(SLOW_FIRST)


def pytest_collection_modifyitems(config, items):
    items.sort(key=_file_rank)  # stable: each file's tests keep their order
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: pass --run-slow to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def dummy_ffpp(tmp_path_factory):
    """`ffpp/c23` prepared from the committed dummy FF++ layout (tiny, real videos)."""
    import tensorflow_datasets as tfds

    import tfds_ffpp.ffpp  # noqa: F401  (registers `ffpp`)
    from tfds_ffpp.ffpp import ffpp_dataset_builder

    manual_dir = os.path.join(os.path.dirname(ffpp_dataset_builder.__file__), "dummy_data")
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    builder = tfds.builder("ffpp/c23", data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    return builder
