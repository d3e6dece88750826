"""Integrated Gradients against a plain GradientTape Riemann sum written here, completeness on the
digits CNN, baselines, batch-size independence, preprocessing, and bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from data_stubs.digits import load_digits
from visualization.digits_model import load_digits_cnn
from visualization.integrated_gradients import (
    completeness,
    integrated_gradients,
    path_quadrature,
)


@pytest.fixture(scope="module")
def digits():
    return load_digits_cnn(), load_digits(image_size=28).x_test[:6]


def _reference_ig(model, x, classes, baseline, steps):
    """Right Riemann sum of the paper, one GradientTape per path point (independent of the core);
    logits recomputed by hand as ``fc(x) W + b``."""
    fc = keras.Model(model.input, model.get_layer("fc").output)
    w, b = model.get_layer("predictions").get_weights()
    total = np.zeros_like(x)
    for k in range(1, steps + 1):
        point = tf.constant(baseline + k / steps * (x - baseline))
        with tf.GradientTape() as tape:
            tape.watch(point)
            logits = tf.matmul(fc(point, training=False), w) + b
            target = tf.gather(logits, classes, axis=1, batch_dims=1)
        total += tape.gradient(target, point).numpy() / steps
    return (x - baseline) * total


def _hand_logits(model, x):
    """Logits of the digits CNN: ``fc`` output times the last kernel plus bias (by hand)."""
    fc = keras.Model(model.input, model.get_layer("fc").output)
    last = model.get_layer("predictions")
    w, b = last.get_weights()
    return np.asarray(fc(x)) @ w + b


def test_right_riemann_sum_matches_a_gradient_tape_loop_on_a_linear_softmax_model():
    # on a model whose logit is linear, log-softmax gradients differ from logit gradients: use a
    # logits model directly so that the reference loop needs no softmax stripping
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((5, 5, 2)), keras.layers.Conv2D(3, 3, activation="tanh"),
                              keras.layers.Flatten(), keras.layers.Dense(4)])
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    x = rng.uniform(0, 1, (3, 5, 5, 2)).astype("float32")
    classes = np.array([0, 3, 1])
    ours = integrated_gradients(model, x, classes, steps=16, method="right", batch_size=5)
    ref = np.zeros_like(x)
    for k in range(1, 17):
        point = tf.constant(k / 16 * x)
        with tf.GradientTape() as tape:
            tape.watch(point)
            score = tf.gather(model(point), classes, axis=1, batch_dims=1)
        ref += tape.gradient(score, point).numpy() / 16
    np.testing.assert_allclose(ours, x * ref, rtol=1e-4, atol=1e-6)


def test_digits_cnn_matches_reference_and_completeness_within_one_percent_at_64_steps(digits):
    model, x = digits
    classes = np.argmax(_hand_logits(model, x), axis=1)
    ours = integrated_gradients(model, x, steps=64, method="right", batch_size=50)
    np.testing.assert_allclose(ours, _reference_ig(model, x, classes, 0.0, 64), atol=2e-5,
                               rtol=1e-3)
    attributions = integrated_gradients(model, x, steps=64)  # trapezoid rule, the default
    report = completeness(model, x, attributions)
    hand = _hand_logits(model, x)[np.arange(len(x)), classes] - _hand_logits(
        model, np.zeros_like(x))[np.arange(len(x)), classes]
    np.testing.assert_allclose(report.score_difference, hand, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(report.attribution_sum, attributions.sum(axis=(1, 2, 3)), rtol=1e-5)
    assert np.all(report.relative_error < 0.01), report.relative_error
    assert np.all(np.abs(report.score_difference) > 1.0)  # the check is not vacuous


def test_result_does_not_depend_on_batch_size_and_class_is_fixed_on_the_image(digits):
    model, x = digits
    a = integrated_gradients(model, x[:3], [1, 2, 3], steps=20, batch_size=7)
    b = integrated_gradients(model, x[:3], [1, 2, 3], steps=20, batch_size=1000)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    predicted = np.argmax(_hand_logits(model, x[:3]), axis=1)
    np.testing.assert_allclose(integrated_gradients(model, x[:3], steps=20),
                               integrated_gradients(model, x[:3], predicted, steps=20), atol=1e-7)


def test_baselines_image_and_batch_and_constant_image_equal_to_baseline(digits):
    model, x = digits
    grey = np.full((28, 28, 1), 0.5, np.float32)
    a = integrated_gradients(model, x[:2], steps=8, baseline=grey)
    b = integrated_gradients(model, x[:2], steps=8, baseline=np.stack([grey, grey]))
    c = integrated_gradients(model, x[:2], steps=8, baseline=0.5)
    np.testing.assert_allclose(a, b, atol=1e-7)
    np.testing.assert_allclose(a, c, atol=1e-7)
    same = integrated_gradients(model, np.stack([grey]), 3, steps=8, baseline=grey)
    assert np.all(same == 0)  # x = x': no attribution at all


def test_quadrature_weights_and_positions():
    alphas, weights = path_quadrature(4, "trapezoid")
    np.testing.assert_allclose(alphas, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(weights, [0.125, 0.25, 0.25, 0.25, 0.125])
    np.testing.assert_allclose(path_quadrature(4, "midpoint")[0], [0.125, 0.375, 0.625, 0.875])
    for method in ("left", "right", "midpoint", "trapezoid"):
        assert path_quadrature(7, method)[1].sum() == pytest.approx(1.0)


def test_preprocess_is_inside_the_gradient():
    rng = np.random.default_rng(1)
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(2)])
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    raw = rng.uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    ours = integrated_gradients(model, raw, 1, steps=32, preprocess="tf", baseline=127.5)
    # same thing by hand: the model on x / 127.5 - 1, baseline 0 there; chain rule factor 1/127.5
    # cancels against (x - x') scaled by 127.5, so IG is the same as on the scaled images
    scaled = integrated_gradients(model, raw / 127.5 - 1, 1, steps=32, baseline=0.0)
    np.testing.assert_allclose(ours, scaled, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"steps": 0}, ValueError, "steps"),
    ({"steps": 2.5}, TypeError, "steps"),
    ({"method": "simpson"}, ValueError, "method"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"baseline": "black"}, TypeError, "baseline"),
    ({"baseline": np.zeros((3, 3, 1))}, ValueError, "baseline"),
    ({"baseline": np.nan}, ValueError, "baseline"),
])
def test_bad_arguments_name_themselves(digits, kwargs, error, match):
    model, x = digits
    with pytest.raises(error, match=match):
        integrated_gradients(model, x[:2], **kwargs)


def test_bad_images_and_classes(digits):
    model, x = digits
    with pytest.raises(ValueError, match="images"):
        integrated_gradients(model, x[0])
    with pytest.raises(ValueError, match="class_index"):
        integrated_gradients(model, x[:2], 10)
    with pytest.raises(ValueError, match="attributions"):
        completeness(model, x[:2], np.zeros((2, 28, 28)))


def _rounded_one_hot(x):
    return tf.one_hot(tf.cast(tf.round(tf.reduce_mean(x, axis=(1, 2, 3))), tf.int32), 3)


def test_non_differentiable_model_is_refused():
    model = lambda x: 5.0 * _rounded_one_hot(x)  # noqa: E731  (scores, not probability rows)
    with pytest.raises(ValueError, match="not differentiable"):
        integrated_gradients(model, np.ones((1, 4, 4, 1), np.float32), 0, steps=2)


def test_function_returning_probability_rows_is_refused_eagerly():
    with pytest.raises(ValueError, match="returns probabilities.*logits"):
        integrated_gradients(_rounded_one_hot, np.ones((1, 4, 4, 1), np.float32), 0, steps=2)
