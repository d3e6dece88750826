"""FGSM: hand-computed steps on linear models, properties, labels, soft labels."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from adversarial import fgsm_attack
from tests.adversarial.conftest import two_class_linear

W = np.array([-1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 1.0, -1.0, 1.0])
X = np.array([[2.0, -1, 3, -2, 2, 2, 1, -4, 5, 1]])


def test_fgsm_on_logistic_regression_is_x_plus_eps_sign_w():
    # class 0 is the true class: CE(0) grows along +w, so x_adv = x + eps * sign(w) (the slides)
    model = two_class_linear(W)
    x_adv = fgsm_attack(model, X, [0], epsilon=0.5, clip_value_min=-np.inf,
                        clip_value_max=np.inf)
    np.testing.assert_allclose(x_adv.numpy(), X + 0.5 * np.sign(W), atol=1e-6)
    # untargeted from class 1 goes the other way; targeted towards class 1 equals untargeted from 0
    away = fgsm_attack(model, X, [1], 0.5, -np.inf, np.inf)
    toward = fgsm_attack(model, X, [1], 0.5, -np.inf, np.inf, targeted=True)
    np.testing.assert_allclose(away.numpy(), X - 0.5 * np.sign(W), atol=1e-6)
    np.testing.assert_allclose(toward.numpy(), x_adv.numpy(), atol=1e-6)


def test_fgsm_on_dense_softmax_matches_hand_gradient_and_clips():
    rng = np.random.default_rng(0)
    weights, bias = rng.normal(size=(5, 3)), rng.normal(size=3)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.set_weights([weights, bias])
    x = rng.uniform(0, 1, size=(4, 5))
    y = np.array([0, 1, 2, 1])
    z = x @ weights + bias
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    gradient = (p - np.eye(3)[y]) @ weights.T  # d CE / d x
    x_adv = fgsm_attack(model, x, y, epsilon=0.2)
    np.testing.assert_allclose(x_adv.numpy(), np.clip(x + 0.2 * np.sign(gradient), 0, 1),
                               atol=1e-6)
    l2 = fgsm_attack(model, x, y, epsilon=0.2, norm=2, clip_value_min=-np.inf,
                     clip_value_max=np.inf)
    unit = gradient / np.linalg.norm(gradient, axis=1, keepdims=True)
    np.testing.assert_allclose(l2.numpy(), x + 0.2 * unit, atol=1e-5)


def test_fgsm_output_type_ball_range_and_stopped_gradient(digits_mlp, test_batch):
    x, y = test_batch
    x_tensor = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tensor)
        x_adv = fgsm_attack(digits_mlp, x_tensor, y, epsilon=0.1)
    assert tape.gradient(x_adv, x_tensor) is None
    assert isinstance(x_adv, tf.Tensor) and x_adv.dtype == tf.float32 and x_adv.shape == x.shape
    delta = x_adv.numpy() - x
    assert np.abs(delta).max() <= 0.1 + 1e-6
    assert x_adv.numpy().min() >= 0.0 and x_adv.numpy().max() <= 1.0
    # away from the box's faces every pixel moves by exactly epsilon
    inner = (x > 0.1) & (x < 0.9)
    np.testing.assert_allclose(np.abs(delta[inner]), 0.1, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_epsilon_zero_is_identity(digits_mlp, test_batch, dtype):
    x, y = test_batch
    x_adv = fgsm_attack(digits_mlp, x.astype(dtype), y, epsilon=0.0)
    assert x_adv.dtype == tf.float32
    np.testing.assert_array_equal(x_adv.numpy(), x.astype(np.float32))


def test_fgsm_lowers_accuracy_and_labels_may_be_one_hot_or_a_column(digits_mlp, test_batch):
    x, y = test_batch
    x_adv = fgsm_attack(digits_mlp, x, y, epsilon=0.2)
    one_hot = fgsm_attack(digits_mlp, x, np.eye(10)[y], epsilon=0.2)
    column = fgsm_attack(digits_mlp, x, tf.constant(y[:, None]), epsilon=0.2)
    np.testing.assert_array_equal(x_adv.numpy(), one_hot.numpy())
    np.testing.assert_array_equal(x_adv.numpy(), column.numpy())
    clean_acc = np.mean(np.argmax(digits_mlp(x), 1) == y)
    adv_acc = np.mean(np.argmax(digits_mlp(x_adv), 1) == y)
    assert clean_acc >= 0.9 and adv_acc <= 0.3, (clean_acc, adv_acc)


def test_soft_label_attacks_the_predicted_labels(digits_mlp, test_batch):
    x, _ = test_batch
    predicted = np.argmax(digits_mlp(x), axis=1)
    soft = fgsm_attack(digits_mlp, x, None, epsilon=0.1, soft_label=True)
    explicit = fgsm_attack(digits_mlp, x, predicted, epsilon=0.1)
    np.testing.assert_array_equal(soft.numpy(), explicit.numpy())
