"""Feature visualisation (Olah et al. 2017): the Fourier parameterisation round-trips and matches
a numpy inverse FFT, Lucid's colour matrix, transforms, the four objectives on a
keras.applications MobileNetV2 built offline, and bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.visualization.conftest import build_tiny_cnn
from visualization._model import logits_model
from visualization.digits_model import load_digits_cnn
from visualization.feature_vis import (
    COLOR_CORRELATION_SVD_SQRT,
    COLOR_DECORRELATION,
    NO_TRANSFORMS,
    Transforms,
    channel,
    class_logit,
    decorrelate_colors,
    direction,
    feature_visualization,
    fourier_image,
    image_to_fourier,
    neuron,
    random_transform,
    spectrum_scale,
    transform_images,
)


@pytest.fixture(scope="module")
def mobilenet():
    """MobileNetV2 (alpha 0.35, 64x64, no weights: no network). With random weights its
    activations shrink layer after layer to ~1e-11, so the batch-norm statistics are set once
    from a batch of random images (momentum 0, one training-mode call): every layer then sees
    unit-scale inputs, as in a trained network."""
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), alpha=0.35)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    images = np.random.default_rng(0).uniform(-1, 1, (16, 64, 64, 3)).astype("float32")
    model(images, training=True)
    return model


def test_fourier_image_equals_numpy_inverse_fft_of_the_scaled_spectrum():
    rng = np.random.default_rng(0)
    params = rng.normal(size=(2, 6, 4, 6)).astype("float32")  # H = 6, W = 6 -> 4 frequencies
    ours = fourier_image(tf.constant(params), (6, 6)).numpy()
    fy, fx = np.fft.fftfreq(6)[:, None], np.fft.rfftfreq(6)[None]
    scale = np.sqrt(36) / np.maximum(np.sqrt(fx ** 2 + fy ** 2), 1 / 6)
    spectrum = (params[..., :3] + 1j * params[..., 3:]) * scale[None, :, :, None]
    expected = np.fft.irfft2(spectrum, s=(6, 6), axes=(1, 2)) / 4
    np.testing.assert_allclose(ours, expected, atol=1e-4)
    np.testing.assert_allclose(spectrum_scale(6, 6), scale, rtol=1e-6)


@pytest.mark.parametrize("size", [(8, 8), (7, 9)])
def test_parameterisation_round_trips(size):
    images = np.random.default_rng(1).normal(size=(2, *size, 3)).astype("float32")
    params = image_to_fourier(images, decay_power=1.0)
    assert params.shape == (2, size[0], size[1] // 2 + 1, 6)
    np.testing.assert_allclose(fourier_image(tf.constant(params), size).numpy(), images,
                               atol=1e-4)


def test_lucid_colour_matrix_properties():
    m = COLOR_CORRELATION_SVD_SQRT
    np.testing.assert_allclose(m[:, 0], [0.26, 0.27, 0.27])  # Lucid's values, first column
    gram = m.T @ m  # columns of U sqrt(S) are orthogonal: a diagonal Gram matrix
    assert np.all(np.abs(gram - np.diag(np.diag(gram))) < 2e-3)
    assert np.all(np.diff(np.diag(gram)) < 0)  # singular values in decreasing order
    assert np.linalg.norm(COLOR_DECORRELATION, axis=0).max() == pytest.approx(1.0)
    covariance = m @ m.T  # the colour correlation: positive, strong between channels
    assert np.all(covariance > 0) and covariance[0, 1] / np.sqrt(
        covariance[0, 0] * covariance[1, 1]) > 0.8
    t = np.random.default_rng(2).normal(size=(4, 5, 3)).astype("float32")
    np.testing.assert_allclose(decorrelate_colors(t).numpy(), t @ COLOR_DECORRELATION.T, atol=1e-6)


def test_identity_and_known_transforms():
    images = np.random.default_rng(3).uniform(size=(2, 9, 9, 1)).astype("float32")
    generator = tf.random.Generator.from_seed(0)
    np.testing.assert_allclose(random_transform(tf.constant(images), NO_TRANSFORMS, generator),
                               images, atol=1e-6)
    shift = tf.constant([[1.0, 0, 1, 0, 1, 0, 0, 0]] * 2)  # sample the input at x + 1
    moved = transform_images(tf.constant(images), shift, fill=0.5).numpy()
    np.testing.assert_allclose(moved[:, :, :-1], images[:, :, 1:], atol=1e-6)
    np.testing.assert_allclose(moved[:, :, -1], 0.5)
    rotated = random_transform(tf.constant(images), Transforms(0, (1, 1), 90.0), generator)
    assert not np.allclose(rotated, images)


def _rises(history, factor=0.5):
    """Mean of the last three steps above the first three by ``factor`` of their size."""
    start, end = history[:3].mean(axis=0), history[-3:].mean(axis=0)
    assert np.all(start != 0), start  # every objective alive at the start
    return end > start + factor * np.abs(start) + 1e-3


def test_objectives_increase_on_mobilenet_v2(mobilenet):
    rng = np.random.default_rng(4)
    # a ReLU unit that is 0 on the starting image has no gradient and cannot move: take the
    # neuron of channel 3 most active on near-grey images (the start), so it is alive
    features = keras.Model(mobilenet.input, mobilenet.get_layer("block_6_expand_relu").output)
    grey = rng.uniform(-0.05, 0.05, (4, 64, 64, 3)).astype("float32")  # 127.5 +- 6 preprocessed
    row, col = np.unravel_index(np.argmax(features(grey).numpy()[..., 3].min(axis=0)), (8, 8))
    objectives = [channel("block_6_expand_relu", 3),
                  neuron("block_6_expand_relu", (int(row), int(col), 3)),
                  class_logit(7), direction("out_relu", rng.normal(size=1280))]
    kwargs = dict(steps=24, preprocess="mobilenet_v2", value_range=(0, 255), seed=0)
    # Without transforms every objective rises (a step normalised by the mean |gradient|,
    # the previous update, lowered the class logit and the direction here)
    plain = feature_visualization(mobilenet, objectives, transforms=NO_TRANSFORMS, **kwargs)
    assert plain.images.shape == (4, 64, 64, 3) and plain.history.shape == (24, 4)
    assert plain.images.min() >= 0 and plain.images.max() <= 255
    assert np.all(_rises(plain.history)), plain.history[[0, -1]]
    # Under the default transforms the shallow objectives rise; the deep layers of a random
    # network change erratically under a 1-pixel shift (see the trained CNN below)
    robust = feature_visualization(mobilenet, objectives[:2], **kwargs)
    assert np.all(_rises(robust.history)), robust.history[[0, -1]]


def test_every_objective_increases_under_transforms_on_the_trained_digits_cnn():
    model = load_digits_cnn()
    objectives = [channel("conv3", 5), class_logit(3), class_logit(8),
                  direction("fc", np.random.default_rng(0).normal(size=64))]
    result = feature_visualization(model, objectives, steps=48, seed=0,
                                   transforms=Transforms(jitter=2.0))
    assert result.images.shape == (4, 28, 28, 1)
    # measured: class 3 logit 1.6 -> 38.9, class 8 0.3 -> 25.8, direction -6.8 -> 66.0
    assert np.all(_rises(result.history, factor=2.0)), result.history[[0, -1]]
    final_logits = logits_model(model)(result.images).numpy()
    assert final_logits[1].argmax() == 3 and final_logits[2].argmax() == 8


def test_tiny_cnn_grey_pixel_parameterisation_and_reproducibility():
    model = build_tiny_cnn()  # 2-channel input: no colour decorrelation
    kwargs = dict(steps=15, size=None, seed=3, transforms=Transforms(jitter=1.0))
    a = feature_visualization(model, [channel("conv2", 1), class_logit(2)], **kwargs)
    b = feature_visualization(model, [channel("conv2", 1), class_logit(2)], **kwargs)
    np.testing.assert_allclose(a.images, b.images)
    assert a.images.shape == (2, 8, 8, 2) and 0 < a.images.min() and a.images.max() < 1
    assert np.all(a.history[-1] > a.history[0])
    pixels = feature_visualization(model, class_logit(0), steps=10, fourier=False)
    assert pixels.history[-1, 0] > pixels.history[0, 0]


@pytest.mark.parametrize("objective, match", [
    (lambda: channel("conv2", 6), "channel index"),
    (lambda: neuron("conv2", (4, 0, 0)), "neuron position"),
    (lambda: neuron("conv2", (1, 2)), "neuron position"),
    (lambda: class_logit(3), "class index"),
    (lambda: channel("nope", 0), "layer_name"),
    (lambda: direction("conv2", np.ones(5)), "direction"),
    (lambda: direction("conv2", np.zeros(6)), "direction"),
    (lambda: channel("conv2", -1), "channel index"),
])
def test_bad_objectives(objective, match):
    with pytest.raises(ValueError, match=match):
        feature_visualization(build_tiny_cnn(), objective(), steps=1)


def test_bad_arguments():
    model = build_tiny_cnn()
    with pytest.raises(TypeError, match="objectives"):
        feature_visualization(model, ["conv2"], steps=1)
    with pytest.raises(ValueError, match="steps"):
        feature_visualization(model, class_logit(0), steps=0)
    with pytest.raises(ValueError, match="value_range"):
        feature_visualization(model, class_logit(0), value_range=(1, 0))
    with pytest.raises(ValueError, match="scale"):
        Transforms(scale=(1.2, 1.0))
    with pytest.raises(ValueError, match="jitter"):
        Transforms(jitter=-1)
    with pytest.raises(ValueError, match="size"):
        feature_visualization(model, class_logit(0), size=(8,))
    with pytest.raises(TypeError, match="layer_name"):
        channel(3, 0)
