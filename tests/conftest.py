"""Test-wide settings: quiet TensorFlow, a headless matplotlib, everything seeded."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same random state (numpy, Python, TensorFlow, Keras)."""
    import keras

    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield


def pytest_addoption(parser):
    """``--impl PACKAGE=MODULE``: grade MODULE in place of the package's PACKAGE (tests/grading)."""
    parser.addoption(
        "--impl", action="append", default=[], metavar="PACKAGE=MODULE",
        help="grade MODULE (an importable name or a .py path) in place of the package's "
             "PACKAGE (adversarial, visualization or assignment2) against the stored references; "
             "repeatable. Same as the environment variable GRADING_IMPL='PACKAGE=MODULE,...'.")
