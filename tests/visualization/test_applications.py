"""A keras.applications model as people bring it: its default softmax head, its own
preprocessing, raw [0, 255] images; built offline (weights=None) at a small size."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from visualization.gradcam import grad_cam
from visualization.guided import guided_backprop
from visualization.saliency import saliency_map


@pytest.fixture(scope="module")
def mobilenet():
    keras.utils.set_random_seed(0)
    kwargs = {"input_shape": (32, 32, 3), "alpha": 0.35, "weights": None, "classes": 5}
    model = keras.applications.MobileNetV2(**kwargs)  # default head: softmax
    logits = keras.applications.MobileNetV2(classifier_activation=None, **kwargs)
    logits.set_weights(model.get_weights())
    return model, logits


@pytest.fixture(scope="module")
def raw_images():
    return np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("uint8")


def test_saliency_with_the_applications_preprocessing_inside_the_gradient(mobilenet, raw_images):
    model, logits = mobilenet
    x = tf.constant(raw_images, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.reduce_sum(logits(x / 127.5 - 1.0, training=False)[:, 3])  # by hand
    expected = np.max(np.abs(tape.gradient(score, x).numpy()), axis=-1)
    got = saliency_map(model, raw_images, 3, preprocess="mobilenet_v2")
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-6 * expected.max())
    np.testing.assert_allclose(saliency_map(model, raw_images, 3, preprocess="tf"), got,
                               rtol=1e-5)


def test_guided_backprop_and_grad_cam_reach_every_relu6_of_mobilenet(mobilenet, raw_images):
    model, logits = mobilenet
    guided = guided_backprop(model, raw_images, 1, preprocess="mobilenet_v2")
    plain_twin = guided_backprop(logits, raw_images, 1, preprocess="mobilenet_v2")
    np.testing.assert_allclose(guided, plain_twin, rtol=1e-4, atol=1e-6 * np.abs(guided).max())
    gradient = saliency_map(model, raw_images, 1, preprocess="mobilenet_v2")
    assert np.abs(np.max(np.abs(guided), axis=-1) - gradient).max() > 0.01 * gradient.max()
    cams = grad_cam(model, raw_images, 1, preprocess="mobilenet_v2")
    assert cams.shape == (2, 32, 32) and np.all((cams >= 0) & (cams <= 1))
