"""Grad-CAM++ against the paper's closed-form weights computed here (Chattopadhay et al. 2018,
exponential output), on the digits CNN and on a nested model; bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from data_stubs.digits import load_digits
from tests.visualization.conftest import build_nested_cnn
from visualization.digits_model import load_digits_cnn
from visualization.gradcam import grad_cam, grad_cam_plus_plus


def _closed_form(acts, grads):
    """Eq. 19 of the paper with Y = exp(S), in numpy; upsampling left to the caller."""
    g2, g3 = grads ** 2, grads ** 3
    sums = acts.sum(axis=(1, 2), keepdims=True)
    denominator = 2 * g2 + sums * g3
    alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=denominator != 0)
    weights = (alpha * np.maximum(grads, 0)).sum(axis=(1, 2), keepdims=True)
    return np.maximum((weights * acts).sum(axis=-1, keepdims=True), 0)


def _normalised(cam, size):
    up = tf.image.resize(cam, size, method="bilinear")[..., 0].numpy()
    peak = up.max(axis=(1, 2), keepdims=True)
    return np.divide(up, peak, out=np.zeros_like(up), where=peak > 0)


def test_digits_cnn_matches_the_closed_form_from_a_hand_written_head():
    model = load_digits_cnn()
    x = load_digits(image_size=28).x_test[:5]
    conv3 = keras.Model(model.input, model.get_layer("conv3").output)
    w_fc, b_fc = model.get_layer("fc").get_weights()
    w, b = model.get_layer("predictions").get_weights()
    acts = tf.constant(conv3(x))
    with tf.GradientTape() as tape:
        tape.watch(acts)
        hidden = tf.nn.relu(tf.reshape(acts, (len(x), -1)) @ w_fc + b_fc)
        logits = hidden @ w + b
        classes = tf.argmax(logits, axis=1)
        score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))
    grads = tape.gradient(score, acts).numpy()
    expected = _normalised(_closed_form(acts.numpy(), grads), (28, 28))
    ours = grad_cam_plus_plus(model, x, layer_name="conv3")
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    assert ours.shape == (5, 28, 28) and ours.min() >= 0 and np.allclose(ours.max(axis=(1, 2)), 1)
    # not Grad-CAM under another name
    assert np.abs(ours - grad_cam(model, x, layer_name="conv3")).max() > 0.05


def test_nested_model_default_layer_and_preprocess():
    model = build_nested_cnn()
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 2)).astype("float32")
    base = model.layers[0]
    w, b = model.layers[-1].get_weights()
    acts = tf.constant(base(x))
    with tf.GradientTape() as tape:
        tape.watch(acts)
        score = tf.reduce_sum((tf.reduce_mean(acts, axis=(1, 2)) @ w + b)[:, 1])
    expected = _normalised(_closed_form(acts.numpy(), tape.gradient(score, acts).numpy()), (8, 8))
    np.testing.assert_allclose(grad_cam_plus_plus(model, x, 1), expected, atol=1e-5)
    shifted = grad_cam_plus_plus(model, x + 1.0, 1, preprocess=lambda t: t - 1.0)
    np.testing.assert_allclose(shifted, expected, atol=1e-5)


def test_bad_input():
    model = build_nested_cnn()
    x = np.zeros((2, 8, 8, 2), np.float32)
    with pytest.raises(ValueError, match="layer_name"):
        grad_cam_plus_plus(model, x, layer_name="nope")
    with pytest.raises(ValueError, match="class_index"):
        grad_cam_plus_plus(model, x, 3)
    with pytest.raises(ValueError, match="images"):
        grad_cam_plus_plus(model, x[0])
    with pytest.raises(ValueError, match="spatial"):
        grad_cam_plus_plus(model, x, layer_name="probs")
