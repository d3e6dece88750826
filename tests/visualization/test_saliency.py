"""Saliency maps (Simonyan et al. 2014) against an independent GradientTape computation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.visualization.conftest import build_tiny_cnn
from visualization.saliency import saliency_map


def _logits_twin(model):
    """The same network with a linear last layer: its outputs are the scores before softmax."""
    twin = keras.Sequential([keras.Input(model.input_shape[1:])]
                            + [keras.layers.Dense(3, name="logits") if layer.name == "probs"
                               else layer.__class__.from_config(layer.get_config())
                               for layer in model.layers])
    twin.set_weights(model.get_weights())
    return twin


def _hand_saliency(model, images, classes):
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x)
        score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))
    return np.max(np.abs(tape.gradient(score, x).numpy()), axis=-1)


def test_equals_max_abs_gradient_of_the_logit(tiny_cnn, cnn_images):
    twin = _logits_twin(tiny_cnn)
    classes = np.array([2, 0, 1, 2])
    got = saliency_map(tiny_cnn, cnn_images, classes)
    assert got.shape == (4, 8, 8)
    np.testing.assert_allclose(got, _hand_saliency(twin, cnn_images, classes),
                               rtol=1e-5, atol=1e-7)
    # not the gradient of the softmax probability
    probs_grad = _hand_saliency(tiny_cnn, cnn_images, classes)
    assert np.abs(probs_grad - got).max() > 1e-3 * np.abs(got).max()


def test_default_is_predicted_class_and_int_broadcasts(tiny_cnn, cnn_images):
    predicted = np.argmax(tiny_cnn(cnn_images).numpy(), axis=-1)
    np.testing.assert_allclose(saliency_map(tiny_cnn, cnn_images),
                               saliency_map(tiny_cnn, cnn_images, predicted), atol=1e-7)
    np.testing.assert_allclose(saliency_map(tiny_cnn, cnn_images, 1),
                               saliency_map(tiny_cnn, cnn_images, [1, 1, 1, 1]), atol=1e-7)


def test_batch_equals_one_by_one(tiny_cnn, cnn_images):
    batch = saliency_map(tiny_cnn, cnn_images, 0)
    for n in range(len(cnn_images)):
        np.testing.assert_allclose(batch[n], saliency_map(tiny_cnn, cnn_images[n:n + 1], 0)[0],
                                   rtol=1e-5, atol=1e-7)


def test_normalize_rescales_each_map(tiny_cnn, cnn_images):
    raw = saliency_map(tiny_cnn, cnn_images, 1)
    norm = saliency_map(tiny_cnn, cnn_images, 1, normalize=True)
    np.testing.assert_allclose(norm.min(axis=(1, 2)), 0, atol=1e-7)
    np.testing.assert_allclose(norm.max(axis=(1, 2)), 1, atol=1e-6)
    low = raw.min(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(norm, (raw - low) / (raw.max(axis=(1, 2), keepdims=True) - low),
                               rtol=1e-5, atol=1e-6)


def test_plain_function_model():
    """Any callable mapping a batch to scores: here a linear map, whose gradient is known."""
    weights = np.random.default_rng(0).standard_normal((2 * 2 * 3, 4)).astype("float32")

    def linear(x):
        return tf.reshape(x, (-1, 12)) @ weights

    images = np.ones((2, 2, 2, 3), "float32")
    expected = np.abs(weights[:, 3]).reshape(2, 2, 3).max(axis=-1)
    np.testing.assert_allclose(saliency_map(linear, images, 3), np.stack([expected] * 2),
                               rtol=1e-6)


@pytest.mark.parametrize(("images", "kwargs", "error", "match"), [
    (np.zeros((8, 8, 2)), {}, ValueError, r"images .*\(8, 8, 2\)"),
    (np.zeros((1, 7, 8, 2)), {}, ValueError, r"images .*\(7, 8, 2\)"),
    (np.zeros((1, 8, 8, 2)), {"class_index": 3}, ValueError, r"class_index .*\[3\]"),
    (np.zeros((2, 8, 8, 2)), {"class_index": [0, 1, 2]}, ValueError, "class_index"),
    (np.zeros((1, 8, 8, 2)), {"class_index": 0.5}, TypeError, "class_index"),
    (np.zeros((1, 8, 8, 2)), {"normalize": "yes"}, TypeError, "normalize"),
])
def test_bad_input(images, kwargs, error, match):
    with pytest.raises(error, match=match):
        saliency_map(build_tiny_cnn(), images, **kwargs)


def test_inference_mode_dropout_is_off(cnn_images):
    """A model with heavy dropout gives the dropout-free gradient (training=False)."""
    layers = [keras.layers.Flatten(), keras.layers.Dense(3)]
    with_dropout = keras.Sequential([keras.Input((8, 8, 2)), layers[0],
                                     keras.layers.Dropout(0.9), layers[1]])
    without = keras.Sequential([keras.Input((8, 8, 2)), *layers])
    np.testing.assert_array_equal(saliency_map(with_dropout, cnn_images, 0),
                                  saliency_map(without, cnn_images, 0))
