"""Deletion / insertion curves: hand-computed on a linear model, against a numpy loop that builds
every copy, integrated gradients beat a random order on the digits CNN, bad input."""

import keras
import numpy as np
import pytest

from data_stubs.digits import load_digits
from visualization.digits_model import load_digits_cnn
from visualization.faithfulness import deletion_insertion, pixel_ranks
from visualization.integrated_gradients import integrated_gradients


def _linear_model(w):
    """Logits ``S_c = sum_ijk w[c] x_ijk`` (no bias)."""
    h, wd, c, k = w.shape
    model = keras.Sequential([keras.Input((h, wd, c)), keras.layers.Flatten(),
                              keras.layers.Dense(k, use_bias=False)])
    model.set_weights([w.reshape(-1, k)])
    return model


def test_linear_model_deletion_removes_the_largest_contributions_first():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 4, 1, 2)).astype("float32")
    x = rng.uniform(0, 1, (1, 4, 4, 1)).astype("float32")
    contribution = (w[..., 0] * x[0])[..., 0]  # (4, 4), map of class 0
    curves = deletion_insertion(_linear_model(w), x, contribution[None], 0, steps=16,
                                score="logit", batch_size=5)
    ordered = np.sort(contribution.ravel())[::-1]
    expected_deletion = contribution.sum() - np.concatenate([[0], np.cumsum(ordered)])
    np.testing.assert_allclose(curves.deletion[0], expected_deletion, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(curves.insertion[0], np.concatenate([[0], np.cumsum(ordered)]),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(curves.fractions, np.arange(17) / 16)
    np.testing.assert_allclose(curves.deletion_auc[0],
                               np.trapezoid(expected_deletion, dx=1 / 16), rtol=1e-5)


def test_matches_a_numpy_loop_with_probabilities_and_baselines():
    model = load_digits_cnn()
    x = load_digits(image_size=28).x_test[:2]
    maps = np.random.default_rng(1).random((2, 28, 28)).astype("float32")
    blurred = np.full_like(x, 0.3)
    curves = deletion_insertion(model, x, maps, [3, 7], steps=5, insertion_baseline=blurred,
                                batch_size=4)
    ranks = pixel_ranks(maps)
    for n, c in enumerate([3, 7]):
        for t in range(6):
            top = (ranks[n] < round(t * 784 / 5))[..., None]
            deleted = np.where(top, 0.0, x[n])[None]
            inserted = np.where(top, x[n], 0.3)[None]
            p_del = np.asarray(model(deleted))[0, c]  # the model's own softmax
            p_ins = np.asarray(model(inserted))[0, c]
            assert curves.deletion[n, t] == pytest.approx(p_del, abs=1e-5)
            assert curves.insertion[n, t] == pytest.approx(p_ins, abs=1e-5)


def test_ranks_are_permutations_and_ties_follow_the_seed():
    maps = np.array([[[3.0, 1.0], [2.0, 5.0]]])
    np.testing.assert_array_equal(pixel_ranks(maps)[0], [[1, 3], [2, 0]])
    flat = np.zeros((1, 5, 5))
    a, b = pixel_ranks(flat, 0), pixel_ranks(flat, 1)
    assert sorted(a.ravel()) == list(range(25)) and not np.array_equal(a, b)


def test_integrated_gradients_are_more_faithful_than_a_random_order():
    model = load_digits_cnn()
    x = load_digits(image_size=28).x_test[:8]
    ig = integrated_gradients(model, x, steps=16).sum(axis=-1)
    random_maps = np.random.default_rng(0).random(ig.shape)
    ours = deletion_insertion(model, x, ig, steps=10)
    chance = deletion_insertion(model, x, random_maps, steps=10)
    assert ours.deletion_auc.mean() < chance.deletion_auc.mean() - 0.1
    assert ours.insertion_auc.mean() > chance.insertion_auc.mean()


@pytest.mark.parametrize("kwargs, error, match", [
    ({"steps": 0}, ValueError, "steps"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"score": "prob"}, ValueError, "score"),
    ({"deletion_baseline": np.zeros((2, 2, 1))}, ValueError, "deletion_baseline"),
    ({"insertion_baseline": "blur"}, TypeError, "insertion_baseline"),
])
def test_bad_arguments(kwargs, error, match):
    w = np.ones((4, 4, 1, 2), np.float32)
    with pytest.raises(error, match=match):
        deletion_insertion(_linear_model(w), np.ones((1, 4, 4, 1)), np.ones((1, 4, 4)), **kwargs)


def test_bad_maps():
    w = np.ones((4, 4, 1, 2), np.float32)
    model, x = _linear_model(w), np.ones((1, 4, 4, 1))
    with pytest.raises(ValueError, match="maps"):
        deletion_insertion(model, x, np.ones((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="maps"):
        deletion_insertion(model, x, np.full((1, 4, 4), np.nan))
    with pytest.raises(ValueError, match="class_index"):
        deletion_insertion(model, x, np.ones((1, 4, 4)), 2)
