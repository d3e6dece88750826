"""DeepDream raises its layer energy (one and several octaves); feature inversion matches the
code of the original and its TV prior smooths; bad input."""

import numpy as np
import pytest

from tests.visualization.conftest import CNN_INPUT, build_tiny_cnn
from visualization.deepdream import deep_dream
from visualization.inversion import invert_features
from visualization.style import total_variation


@pytest.fixture(scope="module")
def cnn():
    return build_tiny_cnn()


@pytest.fixture
def images():
    """Four ``(8, 8, 2)`` images in [0, 1] (own fixture: the dream keeps this range)."""
    return np.random.default_rng(11).random((4, *CNN_INPUT)).astype("float32")


def _layer(model, name, images):
    """The output of the Sequential's layer ``name``, by running its layers one by one."""
    x = images
    for layer in model.layers:
        x = layer(x)
        if layer.name == name:
            return np.asarray(x)
    raise KeyError(name)


def _energy(model, name, images):
    """``1/2 mean(a^2)`` per image, computed apart from the package."""
    return 0.5 * np.mean(_layer(model, name, images) ** 2, axis=(1, 2, 3))


def test_deep_dream_raises_the_layer_energy(cnn, images):
    dreamt = deep_dream(cnn, images, "conv2", steps=15, learning_rate=0.02, octaves=1,
                        jitter=1, seed=0)
    assert dreamt.shape == images.shape
    before, after = _energy(cnn, "conv2", images), _energy(cnn, "conv2", dreamt)
    assert np.all(after > 1.5 * before), (before, after)


def test_deep_dream_octaves_on_a_fixed_size_model(cnn, images):
    dreamt = deep_dream(cnn, images, ["conv2"], steps=8, learning_rate=0.02, octaves=2,
                        octave_scale=1.4, value_range=(0.0, 1.0), seed=0)  # 6x6 then 8x8
    assert dreamt.shape == images.shape and np.isfinite(dreamt).all()
    assert dreamt.min() >= 0.0 and dreamt.max() <= 1.0
    assert np.all(_energy(cnn, "conv2", dreamt) > 1.5 * _energy(cnn, "conv2", images))
    again = deep_dream(cnn, images, ["conv2"], steps=8, learning_rate=0.02, octaves=2,
                       octave_scale=1.4, value_range=(0.0, 1.0), seed=0)
    np.testing.assert_array_equal(dreamt, again)


def _relative_error(model, images, originals):
    code, target = _layer(model, "conv1", images), _layer(model, "conv1", originals)
    return np.sum((code - target) ** 2, axis=(1, 2, 3)) / np.sum(target**2, axis=(1, 2, 3))


def test_inversion_reproduces_the_code_and_the_tv_prior_smooths(cnn, images):
    originals = images[:2]
    plain, history = invert_features(cnn, "conv1", originals, steps=60, learning_rate=0.02,
                                     tv_weight=0.0, seed=0, return_history=True)
    error = _relative_error(cnn, plain, originals)
    np.testing.assert_allclose(history[-1], error, rtol=0.2, atol=1e-3)
    assert np.all(error < 0.01 * history[0]), (history[0], error)
    assert np.all(np.abs(plain - originals).mean(axis=(1, 2, 3)) < 0.1)
    smooth = invert_features(cnn, "conv1", originals, steps=60, learning_rate=0.02,
                             tv_weight=0.05, seed=0)
    assert np.all(np.asarray(total_variation(smooth)) < np.asarray(total_variation(plain)))


@pytest.mark.parametrize("call, match", [
    (lambda m, x: deep_dream(m, x, "conv7"), r"conv7.*available"),
    (lambda m, x: deep_dream(m, x, []), r"layer_names.*\[\]"),
    (lambda m, x: deep_dream(m, x, "conv1", octaves=4, octave_scale=2.0), r"octaves.*4"),
    (lambda m, x: deep_dream(m, x, "conv1", octaves=2, octave_scale=1.0), r"octave_scale.*1.0"),
    (lambda m, x: deep_dream(m, x, "conv1", steps=0), r"steps.*0"),
    (lambda m, x: deep_dream(m, x[0], "conv1"), r"images.*\(8, 8, 2\)"),
    (lambda m, x: deep_dream(m, x[:, :4], "conv1"), r"images.*\(4, 8, 2\)"),
    (lambda m, x: invert_features(m, "conv7", x), r"conv7.*available"),
    (lambda m, x: invert_features(m, "conv1", x, tv_weight=-1.0), r"tv_weight.*-1"),
    (lambda m, x: invert_features(m, "conv1", x, alpha=0.5), r"alpha.*0.5"),
    (lambda m, x: invert_features(m, "conv1", x, learning_rate=0.0), r"learning_rate.*0"),
])
def test_bad_input_raises_value_error_naming_the_argument(cnn, images, call, match):
    with pytest.raises(ValueError, match=match):
        call(cnn, images)


def test_a_small_octave_is_mirrored_not_resized_for_a_fixed_size_model():
    """The network sees the octave at its own scale: the centre of its input IS the octave."""
    import tensorflow as tf

    from visualization.deepdream import _mirror_to_size

    small = np.random.default_rng(0).random((2, 5, 6, 2)).astype("float32")
    seen = _mirror_to_size(tf.constant(small), (8, 8)).numpy()
    assert seen.shape == (2, 8, 8, 2)
    np.testing.assert_array_equal(seen[:, 1:6, 1:7], small)
    np.testing.assert_array_equal(seen[:, 0, 1:7], small[:, 0])  # the mirrored border row
    np.testing.assert_array_equal(seen[:, :, 0], seen[:, :, 1])
    tiny = np.arange(2 * 2, dtype="float32").reshape(1, 2, 2, 1)  # mirrored several times
    seen = _mirror_to_size(tf.constant(tiny), (7, 7)).numpy()
    np.testing.assert_array_equal(seen[0, 2:4, 2:4, 0], tiny[0, ..., 0])
    with pytest.raises(ValueError, match=r"\(5, 6\) do not fit"):
        _mirror_to_size(tf.constant(small), (4, 8))
