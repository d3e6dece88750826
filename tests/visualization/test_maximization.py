"""Class model visualisation and neuron maximisation on the tiny CNNs of the conftest: the score /
activation rises, batches equal single runs, no retracing, bad input."""

import keras
import numpy as np
import pytest

from tests.visualization.conftest import CNN_INPUT, build_nested_cnn, build_tiny_cnn
from visualization import ascent
from visualization.maximization import class_model_visualization, neuron_maximization


@pytest.fixture(scope="module")
def cnn():
    return build_tiny_cnn()


@pytest.fixture(scope="module")
def nested():
    return build_nested_cnn()


def _scores_before_softmax(model, images):
    """Independent logits: the pooled features times the last Dense kernel, plus its bias."""
    pooled = images
    for layer in model.layers[:-1]:
        pooled = layer(pooled)
    kernel, bias = model.get_layer("probs").get_weights()
    return np.asarray(pooled) @ kernel + bias


def test_class_visualisation_raises_each_class_score_from_the_zero_image(cnn, cnn_images):
    outputs_before = np.asarray(cnn(cnn_images))
    zeros = np.zeros((3, *CNN_INPUT), np.float32)
    images, history = class_model_visualization(cnn, [0, 1, 2], steps=25, learning_rate=0.05,
                                                l2_decay=0.01, seed=0, return_history=True,
                                                initial_images=zeros)
    assert images.shape == (3, *CNN_INPUT) and images.dtype == np.float32
    before = _scores_before_softmax(cnn, np.zeros((1, *CNN_INPUT), np.float32))[0]
    after = np.diag(_scores_before_softmax(cnn, images))
    np.testing.assert_allclose(history[0], before, rtol=1e-5, atol=1e-6)  # scores, not probs
    penalty = 0.01 * np.sum(images.astype(np.float64) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(history[-1], after - penalty, rtol=0.05, atol=0.05)  # one step
    assert np.all(after > before + 5.0), (before, after)
    np.testing.assert_array_equal(np.asarray(cnn(cnn_images)), outputs_before)  # model intact


def test_regularised_batch_equals_single_runs_and_still_raises_the_score(cnn):
    kwargs = {"steps": 25, "learning_rate": 0.05, "l2_decay": 0.05, "blur_every": 4,
              "blur_sigma": 0.5, "jitter": 1, "norm_percentile": 10,
              "contribution_percentile": 10, "value_range": (-1.0, 1.0), "seed": 3}
    batch = class_model_visualization(cnn, [2, 0], **kwargs)
    single = class_model_visualization(cnn, 0, **kwargs)
    np.testing.assert_allclose(batch[1:], single, atol=1e-5)
    assert batch.min() >= -1.0 and batch.max() <= 1.0
    before = _scores_before_softmax(cnn, np.zeros((1, *CNN_INPUT), np.float32))[0]
    after = _scores_before_softmax(cnn, batch)
    assert after[0, 2] > before[2] + 0.5 and after[1, 0] > before[0] + 0.5


def test_other_classes_learning_rates_and_regularisers_do_not_retrace(cnn):
    class_model_visualization(cnn, [0, 1, 2], steps=3, seed=0)
    count = ascent.tracing_count()
    class_model_visualization(cnn, [2, 2, 1], steps=5, learning_rate=0.2, jitter=2,
                              blur_every=2, norm_percentile=50, seed=1)
    assert ascent.tracing_count() == count


def test_filter_maximisation_raises_the_mean_activation_inside_a_nested_model(nested):
    units = [0, 5]
    images, history = neuron_maximization(nested, "conv2", units, steps=25, learning_rate=0.05,
                                          seed=0, return_history=True)
    base = nested.get_layer("base")
    maps = np.asarray(base(images))  # (2, 4, 4, 6)
    after = [maps[i, :, :, k].mean() for i, k in enumerate(units)]
    np.testing.assert_allclose(history[-1], after, rtol=0.1, atol=0.05)
    assert np.all(np.asarray(after) > history[0] + 5.0), (history[0], after)


@pytest.mark.parametrize("call, match", [
    (lambda m: class_model_visualization(m, 3), r"class_index.*\[3\]"),
    (lambda m: class_model_visualization(m, [0, -1]), r"class_index.*-1"),
    (lambda m: class_model_visualization(m, 0, steps=0), r"steps.*0"),
    (lambda m: class_model_visualization(m, 0, learning_rate=-0.1), r"learning_rate.*-0.1"),
    (lambda m: class_model_visualization(m, 0, image_shape=(8, 8)), r"image_shape.*\(8, 8\)"),
    (lambda m: class_model_visualization(m, [0, 1], initial_images=np.zeros((1, 8, 8, 2))),
     "initial_images"),
    (lambda m: neuron_maximization(m, "conv9", 0), r"conv9.*available.*conv1.*conv2"),
    (lambda m: neuron_maximization(m, "conv2", 6), r"unit_index 6 .*\[0, 6\)"),
    (lambda m: neuron_maximization(m, "conv1", [1, -2]), r"unit_index.*-2"),
    (lambda m: neuron_maximization(m, "conv1", 0, blur_every=-1), r"blur_every.*-1"),
])
def test_bad_input_raises_value_error_naming_the_argument(cnn, call, match):
    with pytest.raises(ValueError, match=match):
        call(cnn)


@pytest.mark.parametrize("l2_decay", [0.5, 0.1])
def test_linear_model_reaches_the_analytic_optimum_and_records_the_whole_objective(l2_decay):
    """S_c(I) = w_c.I + b_c: max_I S_c - lambda ||I||^2 = ||w_c||^2 / (4 lambda) + b_c."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8 * 8 * 3, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(4, activation="softmax")])
    model.set_weights([w, b])
    images, history = class_model_visualization(model, [0, 1, 2, 3], l2_decay=l2_decay, seed=0,
                                                return_history=True)
    optimum = (w.astype(np.float64) ** 2).sum(axis=0) / (4 * l2_decay) + b
    flat = images.reshape(4, -1).astype(np.float64)
    reached = np.einsum("nd,dn->n", flat, w) + b - l2_decay * (flat ** 2).sum(axis=1)
    assert np.all(reached >= 0.95 * optimum), (reached, optimum)
    assert np.all(reached <= optimum + 1e-3)
    np.testing.assert_allclose(history[-1], reached, rtol=1e-3)  # the penalty is recorded
    best = (w / (2 * l2_decay)).T  # I* = w_c / (2 lambda)
    assert np.linalg.norm(flat - best) < 0.1 * np.linalg.norm(best)


def test_units_are_a_channel_or_one_neuron_the_same_as_guided_backprop(cnn):
    """(2, 1, 3) is ONE neuron of conv1 (its activation ascended); [2, 1, 3] three channels."""
    kwargs = {"steps": 20, "learning_rate": 0.05, "l2_decay": 0.0, "seed": 0,
              "return_history": True}
    images, history = neuron_maximization(cnn, "conv1", (2, 1, 3), **kwargs)
    conv1 = keras.Model(cnn.inputs[0], cnn.get_layer("conv1").output)
    np.testing.assert_allclose(history[-1, 0], np.asarray(conv1(images))[0, 2, 1, 3], rtol=0.1)
    assert history[-1, 0] > history[0, 0] + 1.0
    images, history = neuron_maximization(cnn, "conv1", [2, 1, 3], **kwargs)
    maps = np.asarray(conv1(images))
    np.testing.assert_allclose(history[-1], [maps[i, ..., k].mean() for i, k in
                                             enumerate([2, 1, 3])], rtol=0.1, atol=0.05)
    with pytest.raises(ValueError, match=r"unit_index \(3, 7\) must index all 3"):
        neuron_maximization(cnn, "conv1", (3, 7))
