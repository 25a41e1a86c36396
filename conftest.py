"""Shared pytest set-up: slow tests are opt-in, TF logs are quiet."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="run tests marked slow"
    )


def pytest_collection_modifyitems(config, items):
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
