"""Distances and Szegedy et al.'s average minimal distortion, hand-computed."""

import numpy as np
import pytest

from adversarial import average_minimal_distortion, l1_distance, l2_distance, linf_distance
from adversarial.distances import rms_distance

CLEAN = np.zeros((2, 2, 2))
ADV = np.array([[[0.1, -0.2], [0.0, 0.2]], [[0.0, 0.0], [0.0, 0.5]]])


def test_distances_hand_computed():
    np.testing.assert_allclose(l1_distance(CLEAN, ADV), [0.5, 0.5])
    np.testing.assert_allclose(l2_distance(CLEAN, ADV), [0.3, 0.5])
    np.testing.assert_allclose(linf_distance(CLEAN, ADV), [0.2, 0.5])
    np.testing.assert_allclose(rms_distance(CLEAN, ADV), [0.15, 0.25])  # sqrt(sum r^2 / m)


def test_average_minimal_distortion_counts_successes_only():
    assert average_minimal_distortion(CLEAN, ADV) == pytest.approx(0.2)
    assert average_minimal_distortion(CLEAN, ADV, np.array([True, False])) == pytest.approx(0.15)
    assert average_minimal_distortion(CLEAN, ADV, measure="linf") == pytest.approx(0.35)
    assert np.isnan(average_minimal_distortion(CLEAN, ADV, np.array([False, False])))


def test_distance_errors_name_the_argument():
    with pytest.raises(ValueError, match="adversarial must have the shape"):
        l2_distance(CLEAN, ADV[:1])
    with pytest.raises(ValueError, match="measure .*'l3'"):
        average_minimal_distortion(CLEAN, ADV, measure="l3")
    with pytest.raises(ValueError, match="success must be 2 booleans"):
        average_minimal_distortion(CLEAN, ADV, [1, 0])
