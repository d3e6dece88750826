"""PGD: an independent numpy reference, properties in L-inf and L2, targeted, restarts, margin,
seeds, no retracing, the model left untouched."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from adversarial import pgd_attack
from adversarial._common import attack_objective


def test_pgd_without_random_start_equals_numpy_reference(numpy_mlp):
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(5, 6))
    y = np.array([0, 1, 2, 0, 1])
    eps, step, steps = 0.2, 0.07, 6
    reference = x.copy()
    for _ in range(steps):  # the slides' loop, in float64 numpy
        reference = reference + step * np.sign(numpy_mlp.ce_gradient(reference, y))
        reference = np.clip(np.clip(reference, x - eps, x + eps), 0.0, 1.0)
    x_adv = pgd_attack(numpy_mlp.keras_model(), x, y, epsilon=eps, num_steps=steps,
                       step_size=step, random_init=False)
    np.testing.assert_allclose(x_adv.numpy(), reference, atol=1e-5)
    assert np.abs(reference - x).max() > 0.19  # the reference did reach the ball's border


def test_pgd_l2_without_random_start_equals_numpy_reference(numpy_mlp):
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, size=(4, 6))
    y = np.array([2, 1, 0, 2])
    eps, step, steps = 0.5, 0.2, 5
    reference = x.copy()
    for _ in range(steps):
        g = numpy_mlp.ce_gradient(reference, y)
        reference = reference + step * g / np.linalg.norm(g, axis=1, keepdims=True)
        delta = reference - x
        norms = np.linalg.norm(delta, axis=1, keepdims=True)
        reference = x + delta * np.minimum(1.0, eps / norms)
    x_adv = pgd_attack(numpy_mlp.keras_model(), x, y, epsilon=eps, num_steps=steps,
                       step_size=step, random_init=False, norm=2, clip_value_min=-np.inf,
                       clip_value_max=np.inf)
    np.testing.assert_allclose(x_adv.numpy(), reference, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(reference - x, axis=1), eps, atol=1e-6)


@pytest.mark.parametrize("norm, eps", [(np.inf, 0.15), (2, 0.8)])
@pytest.mark.parametrize("random_init", [True, False])
def test_pgd_stays_in_ball_and_range(digits_mlp, test_batch, norm, eps, random_init):
    x, y = test_batch
    x_adv = pgd_attack(digits_mlp, x, y, epsilon=eps, num_steps=5, step_size=eps / 2,
                       norm=norm, random_init=random_init, seed=3).numpy()
    delta = (x_adv - x).reshape(len(x), -1)
    size = np.abs(delta).max(1) if norm == np.inf else np.linalg.norm(delta, axis=1)
    assert size.max() <= eps * (1 + 1e-5)
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    adv_acc = np.mean(np.argmax(digits_mlp(x_adv), 1) == y)
    assert adv_acc <= 0.5, adv_acc


def test_random_start_is_seeded_and_inside_the_ball(digits_mlp, test_batch):
    x, y = test_batch
    kwargs = {"epsilon": 0.1, "num_steps": 1, "step_size": 1e-6, "clip_value_min": -np.inf,
                  "clip_value_max": np.inf}
    first = pgd_attack(digits_mlp, x, y, seed=5, **kwargs).numpy()
    again = pgd_attack(digits_mlp, x, y, seed=5, **kwargs).numpy()
    other = pgd_attack(digits_mlp, x, y, seed=6, **kwargs).numpy()
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 0.05
    noise = first - x  # U(-eps, eps): fills the cube, mean about 0
    assert np.abs(noise).max() <= 0.1 + 1e-5 and np.abs(noise).max() > 0.09
    assert abs(noise.mean()) < 0.005


def test_targeted_pgd_reaches_the_target(digits_mlp, test_batch):
    x, y = test_batch
    target = (y + 1) % 10
    for norm, eps, step in ((np.inf, 0.3, 0.03), (2, 3.0, 0.3)):
        x_adv = pgd_attack(digits_mlp, x, target, epsilon=eps, num_steps=20, step_size=step,
                           targeted=True, norm=norm, seed=0)
        success = np.mean(np.argmax(digits_mlp(x_adv), 1) == target)
        assert success >= 0.9, (norm, success)


def test_margin_loss_hand_computed_and_used():
    logits = tf.constant([[1.0, 3.0, 2.0], [0.5, -1.0, 4.0]])
    labels = tf.constant([1, 0])
    np.testing.assert_allclose(attack_objective(logits, labels, "margin", False).numpy(),
                               [2.0 - 3.0, 4.0 - 0.5])
    np.testing.assert_allclose(attack_objective(logits, labels, "margin", True).numpy(),
                               [3.0 - 2.0, 0.5 - 4.0])
    ce = attack_objective(logits, labels, "ce", False).numpy()
    expected = -np.log(np.exp([3.0, 0.5]) / np.exp(logits.numpy()).sum(1))
    np.testing.assert_allclose(ce, expected, rtol=1e-6)


def test_margin_attack_raises_the_margin(digits_mlp, test_batch):
    x, y = test_batch
    x_adv = pgd_attack(digits_mlp, x, y, epsilon=0.1, num_steps=10, step_size=0.02, loss="margin",
                       seed=0)
    before = attack_objective(digits_mlp(x), y, "margin", False).numpy()
    after = attack_objective(digits_mlp(x_adv), y, "margin", False).numpy()
    assert np.all(after > before)
    assert np.mean(after > 0) >= 0.4  # those examples are misclassified


def test_restarts_keep_the_best_restart_per_example(digits_mlp, test_batch):
    x, y = test_batch
    kwargs = {"epsilon": 0.3, "num_steps": 2, "step_size": 0.01, "seed": 11}
    single = pgd_attack(digits_mlp, x, y, restarts=1, **kwargs)  # restart 0 of the run below
    best = pgd_attack(digits_mlp, x, y, restarts=4, **kwargs)
    loss_single = attack_objective(digits_mlp(single), y, "ce", False).numpy()
    loss_best = attack_objective(digits_mlp(best), y, "ce", False).numpy()
    assert np.all(loss_best >= loss_single - 1e-5)
    assert np.mean(loss_best > loss_single + 1e-3) > 0.3


def test_soft_label_is_computed_once_on_the_clean_input(digits_mlp, test_batch):
    x, _ = test_batch
    predicted = np.argmax(digits_mlp(x), 1)
    soft = pgd_attack(digits_mlp, x, None, epsilon=0.2, step_size=0.02, soft_label=True, seed=1)
    explicit = pgd_attack(digits_mlp, x, predicted, epsilon=0.2, step_size=0.02, seed=1)
    np.testing.assert_array_equal(soft.numpy(), explicit.numpy())
    # with labels fixed once, PGD keeps pushing away from them
    assert np.mean(np.argmax(digits_mlp(soft), 1) == predicted) <= 0.1


def test_no_retracing_for_repeated_shapes(test_batch):
    x, y = test_batch
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    traces = []

    def logits(images):
        traces.append(1)  # runs only while tracing (and in the one eager probe per shape)
        return model(images, training=False)

    for seed in range(3):
        pgd_attack(logits, 0.9 * x + 0.01 * seed, y, epsilon=0.1, step_size=0.01 * (seed + 1),
                   num_steps=3 + seed, seed=seed)
        if seed == 0:
            after_first = len(traces)
    assert len(traces) == after_first


def test_model_is_left_unchanged_and_run_in_inference_mode(dropout_bn_model, test_batch):
    x, y = test_batch
    weights = [w.copy() for w in dropout_bn_model.get_weights()]
    kwargs = {"epsilon": 0.1, "num_steps": 3, "step_size": 0.03, "random_init": False}
    first = pgd_attack(dropout_bn_model, x, y, **kwargs).numpy()
    second = pgd_attack(dropout_bn_model, x, y, **kwargs).numpy()

    def inference(images):  # no `training` argument: called as is
        return dropout_bn_model(images, training=False)

    reference = pgd_attack(inference, x, y, **kwargs).numpy()
    np.testing.assert_array_equal(first, second)  # dropout would make these differ
    np.testing.assert_allclose(first, reference, atol=1e-6)
    for before, after in zip(weights, dropout_bn_model.get_weights()):
        np.testing.assert_array_equal(before, after)  # includes the BN moving statistics


def test_any_batch_size_tensors_and_float64(digits_mlp, test_batch):
    x, y = test_batch
    single = pgd_attack(digits_mlp, tf.constant(x[:1], tf.float64), tf.constant(y[:1]),
                        epsilon=0.1, num_steps=3, step_size=0.03, random_init=False)
    batch = pgd_attack(digits_mlp, x[:7], y[:7], epsilon=0.1, num_steps=3, step_size=0.03,
                       random_init=False)
    assert single.shape == (1, 8, 8, 1) and batch.shape == (7, 8, 8, 1)
    np.testing.assert_allclose(single.numpy()[0], batch.numpy()[0], atol=1e-6)
    empty = pgd_attack(digits_mlp, x[:0], y[:0])
    assert empty.shape == (0, 8, 8, 1)


def test_attack_inside_the_callers_tf_function_matches_eager(digits_mlp, test_batch):
    x, y = test_batch
    kwargs = {"epsilon": 0.1, "num_steps": 3, "step_size": 0.03, "seed": 4}

    @tf.function
    def graph_attack(images, labels):
        return pgd_attack(digits_mlp, images, labels, **kwargs)

    np.testing.assert_allclose(graph_attack(tf.constant(x), tf.constant(y)).numpy(),
                               pgd_attack(digits_mlp, x, y, **kwargs).numpy(), atol=1e-6)
