"""Occlusion sensitivity (Zeiler & Fergus 2014) against a naive per-position loop."""

import keras
import numpy as np
import pytest

from tests.visualization.conftest import build_tiny_cnn
from visualization.occlusion import occlusion_sensitivity


def _naive(model, images, classes, patch, stride, fill):
    """One model call per square position; the model's own softmax output is the probability."""
    n, height, width, _ = images.shape
    rows = range(0, height - patch + 1, stride)
    cols = range(0, width - patch + 1, stride)
    out = np.zeros((n, len(rows), len(cols)), np.float32)
    for k in range(n):
        for i, top in enumerate(rows):
            for j, left in enumerate(cols):
                copy = images[k:k + 1].copy()
                copy[:, top:top + patch, left:left + patch, :] = fill
                out[k, i, j] = np.asarray(model(copy))[0, classes[k]]
    return out


def test_equals_naive_loop_on_a_softmax_model(tiny_cnn, cnn_images):
    images = cnn_images[:2]
    predicted = np.argmax(tiny_cnn(images).numpy(), axis=-1)
    got = occlusion_sensitivity(tiny_cnn, images, patch_size=3, stride=2, fill_value=0.5,
                                batch_size=5)
    assert got.shape == (2, 3, 3) and predicted.tolist() == [2, 1]
    np.testing.assert_allclose(got, _naive(tiny_cnn, images, predicted, 3, 2, 0.5),
                               rtol=1e-5, atol=1e-6)
    assert got.std() > 1e-3  # the square position matters


def test_non_square_images_keep_orientation_and_batch_size_is_irrelevant():
    model = keras.Sequential([keras.Input((6, 10, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(4)])  # scores: softmax applied once
    model.set_weights([np.random.default_rng(2).standard_normal((60, 4)).astype("float32"),
                       np.zeros(4, "float32")])
    images = np.random.default_rng(3).random((2, 6, 10, 1)).astype("float32")
    got = occlusion_sensitivity(model, images, [3, 1], patch_size=2, stride=3, fill_value=-1.0)
    assert got.shape == (2, 2, 3)  # H' = (6-2)//3+1, W' = (10-2)//3+1

    def probabilities(x):
        return keras.ops.softmax(model(x)).numpy()

    np.testing.assert_allclose(got, _naive(probabilities, images, [3, 1], 2, 3, -1.0),
                               rtol=1e-5, atol=1e-7)
    one_at_a_time = occlusion_sensitivity(model, images, [3, 1], patch_size=2, stride=3,
                                          fill_value=-1.0, batch_size=1)
    np.testing.assert_allclose(one_at_a_time, got, rtol=1e-6, atol=1e-7)


def test_patch_covering_the_image_gives_the_blank_image_probability(tiny_cnn, cnn_images):
    got = occlusion_sensitivity(tiny_cnn, cnn_images, 1, patch_size=8, stride=1, fill_value=0.0)
    blank = tiny_cnn(np.zeros((1, 8, 8, 2), "float32")).numpy()[0, 1]
    assert got.shape == (4, 1, 1)
    np.testing.assert_allclose(got[:, 0, 0], blank, rtol=1e-5)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"patch_size": 9}, ValueError, r"patch_size must be at most the image size \(8x8\), got 9"),
    ({"fill_value": [0.1, 0.2, 0.3]}, ValueError, r"fill_value must be a number or 2 numbers"),
    ({"patch_size": 0}, ValueError, "patch_size must be a positive int, got 0"),
    ({"stride": 0}, ValueError, "stride must be a positive int, got 0"),
    ({"stride": -2}, ValueError, "stride must be a positive int, got -2"),
    ({"batch_size": 0}, ValueError, "batch_size must be a positive int, got 0"),
    ({"stride": 1.5}, TypeError, "stride must be a positive int, got 1.5"),
    ({"fill_value": "grey"}, TypeError, "fill_value"),
    ({"class_index": 3}, ValueError, r"class_index .*\[3"),
])
def test_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        occlusion_sensitivity(build_tiny_cnn(), np.zeros((2, 8, 8, 2), "float32"), **kwargs)


def test_bad_images(tiny_cnn):
    with pytest.raises(ValueError, match=r"images .*\(8, 8, 2\)"):
        occlusion_sensitivity(tiny_cnn, np.zeros((8, 8, 2)))


def test_default_fill_is_the_per_channel_mean_of_the_images(tiny_cnn, cnn_images):
    mean = cnn_images.mean(axis=(0, 1, 2))
    got = occlusion_sensitivity(tiny_cnn, cnn_images, [2, 1, 1, 1], patch_size=3, stride=2)
    np.testing.assert_allclose(got, _naive(tiny_cnn, cnn_images, [2, 1, 1, 1], 3, 2, mean),
                               rtol=1e-5, atol=1e-6)


def test_single_sigmoid_output_maps_its_probability_not_a_constant_one():
    """Dense(1, sigmoid): P = sigmoid(z) of the occluded image (a softmax of one logit is 1)."""
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.set_weights([np.random.default_rng(4).standard_normal((36, 1)).astype("float32"),
                       np.zeros(1, "float32")])
    images = np.random.default_rng(5).random((2, 6, 6, 1)).astype("float32")
    got = occlusion_sensitivity(model, images, 0, patch_size=2, stride=2, fill_value=0.5)
    np.testing.assert_allclose(got, _naive(model, images, [0, 0], 2, 2, 0.5), rtol=1e-5,
                               atol=1e-6)
    assert got.std() > 1e-3 and got.max() < 1.0
