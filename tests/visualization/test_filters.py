"""Filters as images: layout (F, kh, kw, C) and the min-max rescaling per filter/channel/layer."""

import keras
import numpy as np
import pytest

from visualization.filters import filter_grid


def _model(in_channels, kernel):
    conv = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[:2], name="conv", use_bias=False)
    model = keras.Sequential([keras.Input((6, 6, in_channels)), conv,
                              keras.layers.Flatten(), keras.layers.Dense(2, name="fc")])
    conv.set_weights([kernel])
    return model


def test_raw_filters_are_the_kernel_transposed_to_filter_first():
    kernel = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    raw = filter_grid(_model(4, kernel), "conv", scale=None)
    assert raw.shape == (5, 2, 3, 4)
    np.testing.assert_array_equal(raw[3, 1, 2, 0], kernel[1, 2, 0, 3])


def test_rgb_first_layer_is_scaled_per_filter_keeping_colours():
    kernel = np.zeros((2, 2, 3, 2), np.float32)
    kernel[..., 0, 0], kernel[..., 2, 0] = 1.0, -1.0  # filter 0: red +, blue -
    kernel[..., 1] = 7.0                              # filter 1: constant
    kernel[0, 0, 1, 1] = 9.0
    grid = filter_grid(_model(3, kernel), "conv")
    np.testing.assert_allclose(grid[0, ..., 0], 1.0)
    np.testing.assert_allclose(grid[0, ..., 1], 0.5)
    np.testing.assert_allclose(grid[0, ..., 2], 0.0)
    assert grid[1].max() == 1.0 and grid[1].min() == 0.0 and grid[1, 0, 0, 1] == 1.0


def test_deeper_layer_is_scaled_per_input_channel():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 4, 2)).astype(np.float32)
    kernel[..., 3, 1] = 2.5  # a constant channel shows as mid grey
    grid = filter_grid(_model(4, kernel), "conv")
    low, high = grid.min(axis=(1, 2)), grid.max(axis=(1, 2))
    np.testing.assert_allclose(low[low != 0.5], 0.0)
    np.testing.assert_allclose(high[high != 0.5], 1.0)
    np.testing.assert_allclose(grid[1, ..., 3], 0.5)
    w = kernel[..., 2, 0]
    np.testing.assert_allclose(grid[0, ..., 2], (w - w.min()) / (w.max() - w.min()), rtol=1e-6)


def test_layer_scale_keeps_relative_magnitudes():
    kernel = np.stack([np.full((2, 2, 1), 1.0), np.full((2, 2, 1), 3.0)], -1).astype(np.float32)
    kernel[0, 0, 0, 0] = -1.0
    grid = filter_grid(_model(1, kernel), "conv", scale="layer")
    np.testing.assert_allclose(grid[:, 1, 1, 0], [0.5, 1.0])


def test_depthwise_kernels_are_one_grey_image_per_channel_and_multiplier():
    layer = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")
    model = keras.Sequential([keras.Input((6, 6, 3)), layer])
    grid = filter_grid(model, "dw", scale=None)
    assert grid.shape == (6, 3, 3, 1)
    kernel = np.asarray(layer.kernel)
    np.testing.assert_array_equal(grid[2 * 2 + 1, ..., 0], kernel[..., 2, 1])


@pytest.mark.parametrize("layer_name, scale, pattern", [
    ("fc", "auto", r"'fc' is a Dense.*not a 2-D convolution"),
    ("missing", "auto", r"available.*'conv'"),
    ("conv", "pixel", "scale must be one of.*'pixel'"),
])
def test_bad_input(layer_name, scale, pattern):
    with pytest.raises(ValueError, match=pattern):
        filter_grid(_model(1, np.ones((2, 2, 1, 2), np.float32)), layer_name, scale=scale)
