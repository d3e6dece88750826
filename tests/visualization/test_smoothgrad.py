"""SmoothGrad: the compiled core against a GradientTape loop over the same noisy copies, the
chunked path for any method, VarGrad / SmoothGrad-Squared, batch-size independence, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.visualization.conftest import build_tiny_cnn
from visualization.attribution import noisy_copies
from visualization.gradcam import grad_cam
from visualization.guided import guided_backprop
from visualization.saliency import saliency_map
from visualization.smoothgrad import noise_sigma, smoothgrad


def _logit_model(seed=0):
    """A model that returns logits (no softmax), so a hand-written reference needs no stripping."""
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input((6, 6, 2)),
                              keras.layers.Conv2D(3, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(4)])
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.fixture
def images():
    return np.random.default_rng(5).uniform(0, 1, (3, 6, 6, 2)).astype("float32")


def _noisy(x, m, sigma, seed):
    n = len(x)
    idx = np.arange(n * m, dtype=np.int32)
    return noisy_copies(tf.constant(x), idx // m, idx % m, tf.constant(sigma, tf.float32),
                        tf.constant(seed)).numpy().reshape(n, m, *x.shape[1:])


def _tape_gradients(model, points, classes):
    points = tf.constant(points)
    with tf.GradientTape() as tape:
        tape.watch(points)
        score = tf.gather(model(points), classes, axis=1, batch_dims=1)
    return tape.gradient(score, points).numpy()


def test_gradient_matches_a_tape_loop_over_the_same_noisy_copies(images):
    model, m = _logit_model(), 10
    classes = np.array([0, 1, 3])
    ours = smoothgrad(model, images, classes, num_samples=m, noise_level=0.2, batch_size=7,
                      seed=3)
    sigma = noise_sigma(images, 0.2)
    noisy = _noisy(images, m, sigma, 3)
    grads = np.stack([_tape_gradients(model, noisy[:, k], classes) for k in range(m)], axis=1)
    np.testing.assert_allclose(ours, grads.mean(axis=1), rtol=1e-4, atol=1e-6)
    var = smoothgrad(model, images, classes, num_samples=m, noise_level=0.2, seed=3,
                     aggregate="variance")
    np.testing.assert_allclose(var, grads.var(axis=1), rtol=1e-3, atol=1e-6)
    sq = smoothgrad(model, images, classes, num_samples=m, noise_level=0.2, seed=3,
                    aggregate="square")
    np.testing.assert_allclose(sq, (grads ** 2).mean(axis=1), rtol=1e-4, atol=1e-6)
    saliency = smoothgrad(model, images, classes, method="saliency", num_samples=m,
                          noise_level=0.2, seed=3)
    np.testing.assert_allclose(saliency, np.abs(grads).max(axis=-1).mean(axis=1), rtol=1e-4,
                               atol=1e-6)


def test_noise_is_gaussian_with_the_requested_sigma(images):
    sigma = noise_sigma(images, 0.1)
    spans = images.reshape(3, -1).max(axis=1) - images.reshape(3, -1).min(axis=1)
    np.testing.assert_allclose(sigma, 0.1 * spans, rtol=1e-6)
    noise = _noisy(images, 200, sigma, 0) - images[:, None]
    np.testing.assert_allclose(noise.std(axis=(1, 2, 3, 4)), sigma, rtol=0.05)
    assert np.all(np.abs(noise.mean(axis=(1, 2, 3, 4))) < 0.01)
    np.testing.assert_allclose(noise_sigma(images, 0.1, value_range=(0, 255)), 25.5)


def test_zero_noise_gives_the_plain_saliency_and_batch_size_does_not_matter(images):
    model = build_tiny_cnn()  # ends in softmax: the score is taken before it
    x = np.random.default_rng(2).normal(size=(4, 8, 8, 2)).astype("float32")
    np.testing.assert_allclose(smoothgrad(model, x, method="saliency", num_samples=3,
                                          noise_level=0.0), saliency_map(model, x), atol=1e-6)
    a = smoothgrad(model, x, 1, num_samples=9, batch_size=2, seed=4)
    b = smoothgrad(model, x, 1, num_samples=9, batch_size=500, seed=4)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    c = smoothgrad(model, x, 1, num_samples=9, batch_size=2, seed=5)
    assert not np.allclose(a, c)


def test_compiled_core_equals_chunked_path_with_a_user_callable(images):
    model = _logit_model(1)

    def plain_gradient(model, batch, class_index):
        return _tape_gradients(model, np.asarray(batch), class_index)

    fast = smoothgrad(model, images, num_samples=8, batch_size=5, seed=1)
    chunked = smoothgrad(model, images, method=plain_gradient, num_samples=8, batch_size=5,
                         seed=1)
    np.testing.assert_allclose(fast, chunked, rtol=1e-4, atol=1e-6)


def test_package_methods_average_over_the_same_noisy_copies():
    model = build_tiny_cnn()
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 2)).astype("float32")
    m, classes = 4, np.array([2, 1])
    noisy = _noisy(x, m, noise_sigma(x, 0.15), 0)
    guided = smoothgrad(model, x, classes, method="guided_backprop", num_samples=m, batch_size=3)
    ref = np.mean([guided_backprop(model, noisy[:, k], classes) for k in range(m)], axis=0)
    np.testing.assert_allclose(guided, ref, rtol=1e-4, atol=1e-6)
    cams = smoothgrad(model, x, classes, method="grad_cam", num_samples=m, layer_name="conv1")
    ref = np.mean([grad_cam(model, noisy[:, k], classes, layer_name="conv1") for k in range(m)],
                  axis=0)
    assert cams.shape == (2, 8, 8)
    np.testing.assert_allclose(cams, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"num_samples": 0}, ValueError, "num_samples"),
    ({"noise_level": -0.1}, ValueError, "noise_level"),
    ({"aggregate": "median"}, ValueError, "aggregate"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"seed": -1}, ValueError, "seed"),
    ({"method": "lrp"}, ValueError, "method"),
    ({"method": 3}, TypeError, "method"),
    ({"layer_name": "conv1"}, TypeError, "method 'gradient'"),
    ({"value_range": (1, 0)}, ValueError, "value_range"),
])
def test_bad_arguments(images, kwargs, error, match):
    with pytest.raises(error, match=match):
        smoothgrad(_logit_model(), images, **kwargs)


def test_bad_images_and_method_output(images):
    model = _logit_model()
    with pytest.raises(ValueError, match="images"):
        smoothgrad(model, images[0])
    with pytest.raises(ValueError, match="constant"):
        smoothgrad(model, np.zeros((1, 6, 6, 2), np.float32))
    with pytest.raises(ValueError, match="class_index"):
        smoothgrad(model, images, 4)
    with pytest.raises(ValueError, match="one map per image"):
        smoothgrad(model, images, method=lambda model, x, class_index: np.zeros(3))
