"""MIM: L1 normalisation, two hand-computed momentum steps, decay 0 is BIM, properties."""

import numpy as np
import tensorflow as tf

from adversarial import mim_attack, pgd_attack
from adversarial._common import l1_normalize


def test_l1_normalize_per_example_with_floor():
    g = tf.constant([[[1.0, -3.0]], [[0.0, 0.0]], [[0.5, 0.5]]])
    np.testing.assert_allclose(l1_normalize(g).numpy(),
                               [[[0.25, -0.75]], [[0.0, 0.0]], [[0.5, 0.5]]])


def _mim_reference(mlp, x, y, eps, step, decay, steps, normalise=True):
    adv, velocity = x.copy(), np.zeros_like(x)
    for _ in range(steps):
        g = mlp.ce_gradient(adv, y)
        if normalise:
            g = g / np.abs(g).sum(axis=1, keepdims=True)
        velocity = decay * velocity + g
        adv = np.clip(np.clip(adv + step * np.sign(velocity), x - eps, x + eps), 0.0, 1.0)
    return adv


def test_mim_first_two_steps_match_hand_computation(numpy_mlp):
    rng = np.random.default_rng(3)
    x = rng.uniform(0.2, 0.8, size=(6, 6))
    y = np.array([0, 1, 2, 0, 1, 2])
    kwargs = {"epsilon": 0.3, "step_size": 0.1, "decay": 1.0}
    x_adv = mim_attack(numpy_mlp.keras_model(), x, y, num_steps=2, random_init=False, **kwargs)
    expected = _mim_reference(numpy_mlp, x, y, 0.3, 0.1, 1.0, 2)
    np.testing.assert_allclose(x_adv.numpy(), expected, atol=1e-5)
    # the unnormalised momentum would give another point: the test sees the normalisation
    unnormalised = _mim_reference(numpy_mlp, x, y, 0.3, 0.1, 1.0, 2, normalise=False)
    assert np.abs(unnormalised - expected).max() > 0.05


def test_decay_zero_is_the_basic_iterative_method(digits_mlp, test_batch):
    x, y = test_batch
    kwargs = {"epsilon": 0.1, "num_steps": 4, "step_size": 0.03, "random_init": False}
    np.testing.assert_allclose(mim_attack(digits_mlp, x, y, decay=0.0, **kwargs).numpy(),
                               pgd_attack(digits_mlp, x, y, **kwargs).numpy(), atol=1e-6)


def test_mim_in_ball_range_and_fools_the_model(digits_mlp, test_batch):
    x, y = test_batch
    x_adv = mim_attack(digits_mlp, x, y, epsilon=0.15, num_steps=10, step_size=0.03,
                       seed=0).numpy()
    assert np.abs(x_adv - x).max() <= 0.15 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.mean(np.argmax(digits_mlp(x_adv), 1) == y) <= 0.3


def test_targeted_mim_reaches_the_target(digits_mlp, test_batch):
    x, y = test_batch
    target = (y + 3) % 10
    x_adv = mim_attack(digits_mlp, x, target, epsilon=0.3, num_steps=20, step_size=0.03,
                       targeted=True, seed=0)
    assert np.mean(np.argmax(digits_mlp(x_adv), 1) == target) >= 0.9
