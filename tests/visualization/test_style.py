"""Style transfer: Gram matrix, style, content and TV losses on literal arrays computed by hand;
the transfer lowers its loss on a tiny conv net; bad input."""

import keras
import numpy as np
import pytest

from visualization import ascent
from visualization.style import (
    content_loss,
    gram_matrix,
    style_layer_loss,
    style_loss,
    style_transfer,
    style_transfer_loss,
    total_variation,
)

# one image, 2x2 positions, 2 channels: the position vectors are (1,2), (3,4), (5,6), (7,8)
FEATURES = np.arange(1, 9, dtype=np.float32).reshape(1, 2, 2, 2)
# G = sum_k f_k f_k^T: 1+9+25+49 = 84, 2+12+30+56 = 100, 4+16+36+64 = 120
GRAM = np.array([[84.0, 100.0], [100.0, 120.0]])


def test_gram_matrix_sums_outer_products_over_positions():
    np.testing.assert_array_equal(gram_matrix(FEATURES)[0], GRAM)
    batch = np.concatenate([FEATURES, 2 * FEATURES])
    np.testing.assert_array_equal(gram_matrix(batch), [GRAM, 4 * GRAM])


def test_style_layer_loss_is_the_normalised_squared_gram_difference():
    target = np.array([[80.0, 100.0], [100.0, 121.0]])  # G - Ghat = [[4, 0], [0, -1]]
    # 1 / (4 N^2 M^2) with N = 2 channels, M = 4 positions: 1 / 256; sum of squares 17
    np.testing.assert_allclose(style_layer_loss(FEATURES, target), [17 / 256], rtol=1e-6)
    np.testing.assert_allclose(style_layer_loss(FEATURES, GRAM), [0.0], atol=1e-7)


def test_style_loss_weights_the_layers():
    second = np.array([[[[1.0], [0.0], [2.0]]]], np.float32)  # 1x3 positions, 1 channel: G = 5
    # E_2 = (5 - 3)^2 / (4 * 1 * 9) = 1/9; E_1 = 17/256
    targets = [np.array([[80.0, 100.0], [100.0, 121.0]]), np.array([[3.0]])]
    expected = 0.5 * 17 / 256 + 2.0 * 1 / 9
    np.testing.assert_allclose(style_loss([FEATURES, second], targets, [0.5, 2.0]), [expected],
                               rtol=1e-6)
    default = (17 / 256 + 1 / 9) / 2  # weights 1/L each
    np.testing.assert_allclose(style_loss([FEATURES, second], targets), [default], rtol=1e-6)


def test_content_loss_is_half_the_squared_error_per_image():
    features = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    target = np.array([[0.0, 2.0], [3.0, 1.0]], np.float32)
    # image 0: 1/2 (1 + 0) = 0.5; image 1: 1/2 (0 + 9) = 4.5
    np.testing.assert_allclose(content_loss(features, target), [0.5, 4.5])
    np.testing.assert_allclose(content_loss(features, target[:1]), [0.5, 0.5 * (9 + 4)])


def test_total_variation_on_a_literal_image():
    image = np.array([[1.0, 2.0, 4.0], [4.0, 8.0, 0.0], [0.0, 1.0, 1.0]], np.float32)
    image = image[None, :, :, None]
    # positions (i, j) in 0..1 x 0..1: (down^2 + right^2) = (9+1), (36+4), (16+16), (49+64)
    np.testing.assert_allclose(total_variation(image), [10 + 40 + 32 + 113], rtol=1e-6)
    beta1 = np.sqrt(10) + np.sqrt(40) + np.sqrt(32) + np.sqrt(113)
    np.testing.assert_allclose(total_variation(image, beta=1.0), [beta1], rtol=1e-6)
    np.testing.assert_allclose(total_variation(np.ones((2, 4, 5, 3))), [0.0, 0.0])


@pytest.fixture(scope="module")
def conv_net():
    rng = np.random.default_rng(0)
    inputs = keras.Input((None, None, 3))  # fully convolutional: any image size
    h = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c2")(h)
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    model = keras.Model(inputs, keras.layers.Dense(2, name="scores")(h))
    model.set_weights([0.5 * rng.standard_normal(w.shape) for w in model.get_weights()])
    return model


def _images():
    rng = np.random.default_rng(1)
    grid = np.linspace(0, 1, 12, dtype=np.float32)
    content = np.stack([*np.meshgrid(grid, grid), np.full((12, 12), 0.5, np.float32)], -1)
    style = rng.random((1, 10, 10, 3)).astype(np.float32)  # another size: Grams rescaled
    return content[None], style


LAYERS = {"content_layers": "c2", "style_layers": ["c1", "c2"], "style_weights": [1e3, 1e3],
          "tv_weight": 0.1}


def test_style_transfer_lowers_the_total_loss(conv_net):
    content, style = _images()
    out, history = style_transfer(conv_net, content, style, steps=40, learning_rate=0.01,
                                  value_range=(0.0, 1.0), seed=0, return_history=True, **LAYERS)
    assert out.shape == content.shape and 0.0 <= out.min() and out.max() <= 1.0
    before, after = style_transfer_loss(conv_net, np.concatenate([content, out]), content, style,
                                        **LAYERS)
    np.testing.assert_allclose(history[0], before, rtol=1e-4)  # starts from the content image
    assert after < 0.2 * before, (before, after)
    assert history[-1] < history[0]


def test_a_callable_feature_extractor_works_and_reuses_the_trace(conv_net):
    inner = keras.Model(conv_net.input, [conv_net.get_layer("c1").output,
                                         conv_net.get_layer("c2").output])

    def extractor(images):
        c1, c2 = inner(images)
        return {"c1": c1, "c2": c2}

    content, style = _images()
    out = style_transfer(extractor, content, style, steps=10, seed=0, **LAYERS)
    count = ascent.tracing_count()
    again = style_transfer(extractor, content, style, steps=10, seed=0, **LAYERS)
    assert ascent.tracing_count() == count
    np.testing.assert_array_equal(out, again)
    before, after = style_transfer_loss(extractor, np.concatenate([content, out]), content,
                                        style, **LAYERS)
    assert after < 0.2 * before
    with pytest.raises(ValueError, match="c3"):
        style_transfer(extractor, content, style, content_layers="c3", style_layers=["c1"])


@pytest.mark.parametrize("kwargs, match", [
    ({"style_weights": [1.0]}, r"style_weights.*\[1.0\]"),
    ({"style_weights": [1.0, -1.0]}, r"style_weights.*-1"),
    ({"init": "zeros"}, r"init.*zeros"),
    ({"steps": 0}, r"steps.*0"),
    ({"style_layers": []}, r"style_layers.*\[\]"),
    ({"style_layers": ["c1", "nope"]}, r"nope.*available"),
    ({"content_image": np.zeros((2, 12, 12, 3))}, r"content_image.*\(2, 12, 12, 3\)"),
    ({"style_image": np.zeros((1, 12, 12, 1))}, r"style_image.*channels"),
    ({"tv_weight": -1.0}, r"tv_weight.*-1"),
])
def test_bad_input_raises_value_error_naming_the_argument(conv_net, kwargs, match):
    content, style = _images()
    args = dict(LAYERS, content_image=content, style_image=style, steps=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        style_transfer(conv_net, args.pop("content_image"), args.pop("style_image"), **args)


def test_bad_literal_shapes_are_reported():
    with pytest.raises(ValueError, match="features"):
        gram_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"target_gram.*\(3, 3\)"):
        style_layer_loss(FEATURES, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="target_grams"):
        style_loss([FEATURES, FEATURES], [GRAM])
    with pytest.raises(ValueError, match="content_features"):
        content_loss(np.zeros((1, 4)), np.zeros((1, 5)))
    with pytest.raises(ValueError, match=r"beta.*0"):
        total_variation(np.zeros((1, 3, 3, 1)), beta=0.0)
