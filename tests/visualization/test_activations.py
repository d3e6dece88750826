"""Activation maps against a hand computation; batching; the user's model is left unchanged."""

import keras
import numpy as np
import pytest

from visualization.activations import activation_maps, layer_outputs


def _model():
    inputs = keras.Input((5, 5, 1))
    conv = keras.layers.Conv2D(2, 2, padding="valid", activation="relu", name="conv")
    x = conv(inputs)
    x = keras.layers.Flatten(name="flat")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs)
    kernel = np.stack([np.array([[1.0, 0.0], [0.0, -1.0]]),    # x[i, j] - x[i+1, j+1]
                       np.array([[0.5, 0.5], [0.5, 0.5]])], -1)  # 2x2 mean * 2
    conv.set_weights([kernel[:, :, None, :], np.array([0.0, -1.0])])
    return model


def _by_hand(images):
    x = images[..., 0]
    diagonal = x[:, :-1, :-1] - x[:, 1:, 1:]
    mean2 = 0.5 * (x[:, :-1, :-1] + x[:, :-1, 1:] + x[:, 1:, :-1] + x[:, 1:, 1:]) - 1.0
    return np.maximum(np.stack([diagonal, mean2], -1), 0.0)


def test_activation_maps_equal_the_hand_computed_convolution():
    images = np.random.default_rng(0).random((4, 5, 5, 1), dtype=np.float32) * 2
    maps = activation_maps(_model(), images, "conv")
    assert maps.shape == (4, 4, 4, 2) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, _by_hand(images), atol=1e-6)


def test_batching_does_not_change_the_result_and_the_model_is_unchanged():
    model = _model()
    images = np.random.default_rng(1).random((5, 5, 5, 1), dtype=np.float32)
    before = np.asarray(model(images))
    np.testing.assert_allclose(activation_maps(model, images, "conv", batch_size=2),
                               activation_maps(model, images, "conv"), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(model(images)), before)
    assert "call" not in model.get_layer("conv").__dict__  # the recording tap was removed


def test_layer_outputs_of_a_dense_layer_are_its_vectors():
    images = np.zeros((2, 5, 5, 1), np.float32)
    assert layer_outputs(_model(), images, "flat").shape == (2, 32)


@pytest.mark.parametrize("layer_name, images, error, pattern", [
    ("flat", np.zeros((1, 5, 5, 1)), ValueError, "'flat' has no spatial dimensions"),
    ("nope", np.zeros((1, 5, 5, 1)), ValueError, r"'nope'.*available.*'conv'"),
    ("conv", np.zeros((5, 5, 1)), ValueError, r"images must have shape.*\(5, 5, 1\)"),
    ("conv", np.zeros((1, 6, 6, 1)), ValueError, "model expects"),
])
def test_bad_input_names_the_argument(layer_name, images, error, pattern):
    with pytest.raises(error, match=pattern):
        activation_maps(_model(), images, layer_name)


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size.*0"):
        activation_maps(_model(), np.zeros((1, 5, 5, 1)), "conv", batch_size=0)
