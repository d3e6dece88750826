"""APGD against an independent NumPy re-implementation, and its contract with the package."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from adversarial import apgd_attack, pgd_attack
from adversarial.apgd import apgd_run, checkpoints, dlr_loss


def numpy_apgd(mlp, x, y, start, eps, num_steps, rho=0.75):
    """APGD-CE (L-inf, [0, 1]) written from the paper's Algorithm 1, in float64, per example."""
    def loss_and_grad(z):
        logits = mlp.logits(z)
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return -np.log(p[np.arange(len(y)), y]), mlp.ce_gradient(z, y)

    def proj(z):
        return np.clip(np.clip(z, x - eps, x + eps), 0.0, 1.0)

    marks = set(checkpoints(num_steps))
    x_k = proj(start)
    f_k, g_k = loss_and_grad(x_k)
    eta = np.full(len(x), 2.0 * eps)
    x_prev = x_k.copy()
    best_x, best_f, best_g = x_k.copy(), f_k.copy(), g_k.copy()
    increases, last_mark = np.zeros(len(x)), 0
    best_at_mark, halved_at_mark = best_f.copy(), np.ones(len(x), bool)
    prev_f = f_k.copy()
    for k in range(num_steps):
        alpha = 0.75 if k > 0 else 1.0
        z = proj(x_k + eta[:, None] * np.sign(g_k))
        x_new = proj(x_k + alpha * (z - x_k) + (1 - alpha) * (x_k - x_prev))
        x_prev = x_k
        f_new, g_new = loss_and_grad(x_new)
        increases += f_new > prev_f
        prev_f = f_new
        better = f_new > best_f
        best_x[better], best_f[better], best_g[better] = x_new[better], f_new[better], g_new[better]
        x_k, g_k = x_new, g_new
        if k + 1 in marks:
            length = k + 1 - last_mark
            condition1 = increases <= rho * length
            condition2 = ~halved_at_mark & (best_at_mark >= best_f)
            halve = condition1 | condition2
            eta[halve] /= 2.0
            x_k, g_k = np.where(halve[:, None], best_x, x_k), np.where(halve[:, None], best_g, g_k)
            halved_at_mark, best_at_mark = halve, best_f.copy()
            increases, last_mark = np.zeros(len(x)), k + 1
    return best_x, best_f


def test_checkpoints_follow_the_paper():
    # p = 0, 0.22, 0.41 (+0.19), 0.57 (+0.16), 0.70, 0.80, 0.87, 0.93, 0.99 (+0.06 floor)
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_apgd_equals_the_numpy_reference(numpy_mlp):
    rng = np.random.default_rng(5)
    x = rng.uniform(0.2, 0.8, size=(16, 6))
    y = np.argmax(numpy_mlp.logits(x), 1)
    start = np.clip(x + rng.uniform(-0.1, 0.1, size=x.shape), 0, 1)
    model = numpy_mlp.keras_model()
    run = tf.function(lambda *a: apgd_run(model, *a, norm=np.inf, loss="ce",
                                          target_success=False))
    x_best, f_best, _, _ = run(tf.constant(x, tf.float32), tf.constant(y, tf.int32), None,
                               tf.constant(start, tf.float32), tf.constant(0.1),
                               tf.constant(30), 0.0, 1.0)
    ref_x, ref_f = numpy_apgd(numpy_mlp, x, y, start, 0.1, 30)
    np.testing.assert_allclose(f_best.numpy(), ref_f, rtol=1e-4, atol=1e-5)
    # float32 against float64: a near-zero gradient coordinate may flip its sign once the step
    # size has been halved many times (steps of 0.2 / 2^10); everything else agrees to 1e-5
    np.testing.assert_allclose(x_best.numpy(), ref_x, atol=5e-4)
    assert np.mean(np.abs(x_best.numpy() - ref_x) < 1e-5) > 0.95


def test_dlr_hand_computed():
    z = tf.constant([[3.0, 1.0, 2.0, 0.0], [0.0, 5.0, 1.0, 4.0]])
    # row 0, y = 0: -(3 - 2) / (3 - 1); row 1, y = 2: -(1 - 5) / (5 - 1)
    np.testing.assert_allclose(dlr_loss(z, tf.constant([0, 2])), [-0.5, 1.0], atol=1e-6)
    # targeted, y = 0, t = 1: -(3 - 1) / (3 - (1 + 0) / 2)
    np.testing.assert_allclose(dlr_loss(z[:1], tf.constant([0]), tf.constant([1])), [-0.8],
                               atol=1e-6)
    # invariant to scaling and shifting the logits
    np.testing.assert_allclose(dlr_loss(20 * z + 3, tf.constant([0, 2])), [-0.5, 1.0], atol=1e-5)


def test_apgd_at_least_as_strong_as_pgd_and_in_the_ball(digits_mlp, digits):
    x, y = digits.x_test[:96], digits.y_test[:96]
    eps = 0.1
    pgd = pgd_attack(digits_mlp, x, y, epsilon=eps, num_steps=20, step_size=2.5 * eps / 20,
                     seed=0)
    apgd = apgd_attack(digits_mlp, x, y, eps, num_steps=20, seed=0).numpy()
    assert np.abs(apgd - x).max() <= eps + 1e-6 and apgd.min() >= 0 and apgd.max() <= 1
    acc = [np.mean(np.argmax(digits_mlp(a), 1) == y) for a in (pgd, apgd)]
    assert acc[1] <= acc[0] + 1 / 96
    dlr_t = apgd_attack(digits_mlp, x, y, eps, num_steps=20, loss="dlr", targeted=True,
                        num_targets=3, seed=0)
    assert np.mean(np.argmax(digits_mlp(dlr_t), 1) == y) < np.mean(
        np.argmax(digits_mlp(x), 1) == y) - 0.2


def test_apgd_result_does_not_depend_on_batch_size(digits_mlp, digits):
    x, y = digits.x_test[:40], digits.y_test[:40]
    results = [apgd_attack(digits_mlp, x, y, 0.08, num_steps=8, restarts=2, seed=3,
                           batch_size=b).numpy() for b in (7, 16, 40)]
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_apgd_softmax_twin_equals_logits_model(digits_mlp, digits):
    x, y = digits.x_test[:32], digits.y_test[:32]
    twin = keras.Sequential([digits_mlp, keras.layers.Softmax()])
    for loss in ("ce", "dlr"):
        a = apgd_attack(digits_mlp, x, y, 0.1, num_steps=10, loss=loss, seed=1).numpy()
        b = apgd_attack(twin, x, y, 0.1, num_steps=10, loss=loss, seed=1).numpy()
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_apgd_explicit_targets(digits_mlp, digits):
    x, y = digits.x_test[:32], digits.y_test[:32]
    targets = (y + 1) % 10
    adv = apgd_attack(digits_mlp, x, y, 0.3, num_steps=20, targeted=True, target_label=targets,
                      seed=0)
    assert np.mean(np.argmax(digits_mlp(adv), 1) == targets) > 0.9


@pytest.mark.parametrize("kwargs, error, message", [
    ({"loss": "margin"}, ValueError, r"loss must be one of \('ce', 'dlr'\), got 'margin'"),
    ({"num_steps": 0}, ValueError, "num_steps must be >= 1, got 0"),
    ({"restarts": 1.5}, TypeError, "restarts must be an integer, got 1.5"),
    ({"epsilon": -1}, ValueError, r"epsilon must be >= 0.0, got -1"),
    ({"target_label": 3}, ValueError, "target_label needs targeted=True"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
])
def test_apgd_bad_arguments(digits_mlp, digits, kwargs, error, message):
    args = {"epsilon": 0.1, **kwargs}
    with pytest.raises(error, match=message):
        apgd_attack(digits_mlp, digits.x_test[:4], digits.y_test[:4], **args)


def test_dlr_needs_enough_classes():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="loss='dlr' needs a model with at least 3 classes"):
        apgd_attack(model, np.full((2, 3), 0.5), [0, 1], 0.1, loss="dlr")
