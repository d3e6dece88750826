"""Sanity checks (Adebayo et al. 2018) on the digits CNN: saliency decorrelates under cascading
randomisation, guided backpropagation barely does (the known failure); Spearman against scipy;
the caller's model is untouched; label randomisation with a cached random-label model."""

import keras
import numpy as np
import pytest
import scipy.stats

from data_stubs.digits import load_digits
from tests.visualization.conftest import build_tiny_cnn
from visualization.digits_model import load_digits_cnn
from visualization.sanity import (
    label_randomization,
    load_random_label_cnn,
    model_randomization,
    rank_correlation,
    randomization_stages,
    randomize_layer,
)


@pytest.fixture(scope="module")
def digits():
    return load_digits_cnn(), load_digits(image_size=28).x_test[:8]


def test_rank_correlation_matches_scipy_spearman():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 5, 5, 2)), rng.normal(size=(3, 5, 5, 2))
    b[0] = a[0] * 2 + 0.1 * rng.normal(size=(5, 5, 2))
    a[2, :2] = 0.0  # ties
    ours = rank_correlation(a, b, absolute=False)
    for n in range(3):
        expected = scipy.stats.spearmanr(a[n].sum(-1).ravel(), b[n].sum(-1).ravel()).statistic
        assert ours[n] == pytest.approx(expected, abs=1e-12)
    absolute = rank_correlation(a, b)
    expected = scipy.stats.spearmanr(np.abs(a[1].sum(-1)).ravel(),
                                     np.abs(b[1].sum(-1)).ravel()).statistic
    assert absolute[1] == pytest.approx(expected, abs=1e-12)
    assert np.isnan(rank_correlation(np.ones((1, 5, 5)), a[:1, ..., 0]))[0]


def test_cascading_saliency_decorrelates_guided_backprop_does_not(digits):
    model, x = digits
    before = [w.copy() for w in model.get_weights()]
    result = model_randomization(model, x, ["saliency", "guided_backprop"])
    assert result.stages == ["trained", "predictions", "fc", "conv3", "conv2", "conv1"]
    saliency, guided = result.curve("saliency"), result.curve("guided_backprop")
    assert saliency[0] == pytest.approx(1.0) and guided[0] == pytest.approx(1.0)
    # measured on the cached model: saliency 0.64, 0.55, 0.50 over the top three layers,
    # guided backprop 0.88, 0.86, 0.81 (Adebayo et al. Fig. 2 shows the same split)
    assert np.all(saliency[1:4] < 0.75), saliency
    assert np.all(guided[1:4] > 0.75), guided
    assert np.all(guided[1:] - saliency[1:] > 0.15), (guided, saliency)
    assert result.maps["saliency"].shape == (6, 8, 28, 28)
    for w, w0 in zip(model.get_weights(), before):  # the caller's model is untouched
        np.testing.assert_array_equal(w, w0)


def test_independent_mode_randomises_one_layer_at_a_time():
    model = build_tiny_cnn()
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 2)).astype("float32")
    seen = []

    def record(m, images, classes, preprocess):
        seen.append([m.get_layer(name).get_weights()[0].copy() for name in ("probs", "conv1")])
        return np.asarray(images)[..., 0]

    trained = [model.get_layer(name).get_weights()[0] for name in ("probs", "conv1")]
    model_randomization(model, x, {"probe": record}, mode="independent")
    stages = randomization_stages(model)
    assert stages == ["probs", "conv2", "conv1"]
    # stage "probs": probs changed, conv1 kept; stage "conv1": probs restored, conv1 changed
    assert not np.allclose(seen[1][0], trained[0]) and np.allclose(seen[1][1], trained[1])
    assert np.allclose(seen[3][0], trained[0]) and not np.allclose(seen[3][1], trained[1])
    seen.clear()
    model_randomization(model, x, {"probe": record}, mode="cascading")
    assert not np.allclose(seen[3][0], trained[0]) and not np.allclose(seen[3][1], trained[1])


def test_randomize_layer_uses_the_layers_initializer_with_a_seed():
    layer = keras.layers.Dense(200, kernel_initializer="he_normal", bias_initializer="ones")
    layer.build((None, 100))
    randomize_layer(layer, seed=3)
    kernel, bias = (np.asarray(w) for w in layer.get_weights())
    assert kernel.std() == pytest.approx(np.sqrt(2 / 100), rel=0.1)  # He normal (truncated)
    np.testing.assert_array_equal(bias, 1.0)
    first = kernel.copy()
    randomize_layer(layer, seed=3)
    np.testing.assert_array_equal(np.asarray(layer.get_weights()[0]), first)


def test_label_randomization_with_a_small_cached_random_label_model(digits, tmp_path):
    model, x = digits
    random_model = load_random_label_cnn(tmp_path, epochs=1, train_size=64)
    assert (tmp_path / "digits_cnn_random_labels.json").exists()
    again = load_random_label_cnn(tmp_path, epochs=1, train_size=64)
    for a, b in zip(random_model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    result = label_randomization(model, random_model, x[:4], ["saliency"])
    assert result.stages == ["trained", "random labels"] and result.mode == "labels"
    assert result.spearman_abs["saliency"].shape == (2, 4)
    np.testing.assert_allclose(result.spearman_abs["saliency"][0], 1.0)
    assert np.all(result.spearman_abs["saliency"][1] < 0.99)


def test_bad_input(digits):
    model, x = digits
    with pytest.raises(ValueError, match="methods"):
        model_randomization(model, x, ["lime"])
    with pytest.raises(TypeError, match="methods"):
        model_randomization(model, x, "saliency")
    with pytest.raises(ValueError, match="mode"):
        model_randomization(model, x, mode="top-down")
    with pytest.raises(ValueError, match="layers"):
        model_randomization(model, x, layers=["pool1"])
    with pytest.raises(ValueError, match="images"):
        model_randomization(model, x[0])
    with pytest.raises(ValueError, match="maps_a"):
        rank_correlation(np.ones((2, 3)), np.ones((2, 3)))

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, inputs):
            return self.dense(keras.ops.reshape(inputs, (-1, 784)))

    sub = Subclassed()
    sub(x[:1])
    with pytest.raises(ValueError, match="model"):
        model_randomization(sub, x, ["saliency"])
