"""Class model visualisation and neuron maximisation on the tiny CNNs of the conftest: the score /
activation rises, batches equal single runs, no retracing, bad input."""

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
    np.testing.assert_allclose(history[-1], after, rtol=0.05, atol=0.05)  # one step apart
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
    assert after[0, 2] > before[2] + 1.5 and after[1, 0] > before[0] + 1.5


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
    (lambda m: neuron_maximization(m, "conv2", 6), r"unit_index.*\[0, 6\).*6"),
    (lambda m: neuron_maximization(m, "conv1", [1, -2]), r"unit_index.*-2"),
    (lambda m: neuron_maximization(m, "conv1", 0, blur_every=-1), r"blur_every.*-1"),
])
def test_bad_input_raises_value_error_naming_the_argument(cnn, call, match):
    with pytest.raises(ValueError, match=match):
        call(cnn)
