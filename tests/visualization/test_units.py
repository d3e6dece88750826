"""Space vs units: top images along e_i and along a seeded random direction v."""

import keras
import numpy as np
import pytest

from visualization.units import random_direction, space_vs_units, top_along


def _model():
    """phi(x) = W^T vec(x) with a fixed W (3 units), then a classifier."""
    code = keras.layers.Dense(3, name="code", use_bias=False)
    model = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(), code,
                              keras.layers.Dense(2, activation="softmax", name="cls")])
    code.set_weights([np.array([[1, 0, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]], np.float32)])
    return model


IMAGES = np.array([[1, 0, 0, 0], [0, 3, 0, 0], [2, 0, 5, 0], [0, 0, 0, 9]],
                  np.float32).reshape(4, 2, 2, 1)
CODES = np.array([[1, 0, 1], [0, 3, 3], [2, 0, 7], [0, 0, 0]], np.float32)


def test_unit_ranking_is_the_unit_column_sorted():
    result = space_vs_units(_model(), IMAGES, "code", unit_index=0, k=3)
    np.testing.assert_array_equal(result.unit_indices, [2, 0, 1])  # ties keep dataset order
    np.testing.assert_allclose(result.unit_scores, [2, 1, 0])
    assert result.layer_name == "code" and result.unit_index == 0


def test_direction_ranking_uses_the_normalised_direction():
    result = space_vs_units(_model(), IMAGES, unit_index=1, k=4, direction=[0.0, 3.0, -4.0])
    assert result.layer_name == "code"  # the default: the layer before the classifier
    np.testing.assert_allclose(result.direction, [0.0, 0.6, -0.8])
    scores = CODES @ np.array([0.0, 0.6, -0.8])
    np.testing.assert_array_equal(result.direction_indices, np.argsort(-scores, kind="stable"))
    np.testing.assert_allclose(result.direction_scores, np.sort(scores)[::-1], atol=1e-6)
    np.testing.assert_array_equal(result.unit_indices[:1], [1])


def test_random_direction_is_unit_norm_seeded_and_used_by_default():
    v = random_direction(50, seed=3)
    assert v.shape == (50,) and abs(np.linalg.norm(v) - 1) < 1e-6
    np.testing.assert_array_equal(v, random_direction(50, seed=3))
    assert not np.allclose(v, random_direction(50, seed=4))
    result = space_vs_units(_model(), IMAGES, "code", k=2, seed=7)
    np.testing.assert_array_equal(result.direction, random_direction(3, seed=7))
    indices, scores = top_along(CODES, result.direction, 2)
    np.testing.assert_array_equal(result.direction_indices, indices)
    np.testing.assert_allclose(result.direction_scores, scores, atol=1e-6)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"unit_index": 3}, r"unit_index must be in \[0, 3\).*got 3"),
    ({"k": 5}, r"k must be in \[1, 4\].*got 5"),
    ({"direction": [0, 0, 0]}, "direction must be a non-zero"),
    ({"direction": [1, 0]}, r"direction must be .*shape \(3,\)"),
    ({"layer_name": "nope"}, "available"),
])
def test_bad_input(kwargs, pattern):
    args = {"layer_name": "code", "unit_index": 0, "k": 2, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        space_vs_units(_model(), IMAGES, **args)
