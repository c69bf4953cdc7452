"""Shared test settings: quiet TensorFlow, deterministic seeds, small thread pools (2-core CI)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same seeds."""
    import keras

    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def log_dir(tmp_path):
    """A fresh log directory for one test."""
    path = tmp_path / "logs"
    path.mkdir()
    return str(path)
