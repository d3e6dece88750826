"""Test-wide settings: quiet TensorFlow, a headless matplotlib, everything seeded."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same random state (numpy, Python, TensorFlow, Keras)."""
    import keras

    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield
