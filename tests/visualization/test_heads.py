"""Every form of final softmax / sigmoid, on every method: the scores are read before it.

The reference is independent of the package: the same network without its head, a plain
``Sequential`` whose outputs ARE the logits, differentiated with a ``GradientTape``.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from visualization.guided import guided_backprop
from visualization.maximization import class_model_visualization
from visualization.occlusion import occlusion_sensitivity
from visualization.saliency import saliency_map

SHAPE = (6, 6, 2)


def _body():
    return [keras.layers.Conv2D(3, 3, activation="relu", name="conv"),
            keras.layers.Flatten(), keras.layers.Dense(4, name="dense")]


def _weights(model):
    rng = np.random.default_rng(3)
    model.set_weights([0.7 * rng.standard_normal(w.shape).astype("float32")
                       for w in model.get_weights()])
    return model


def _head_model(form):
    """The logits network followed by a softmax written in ``form``."""
    layers = _body()
    if form == "dense_tf_nn":  # Dense(activation=tf.nn.softmax): its __name__ is softmax_v2
        layers[-1] = keras.layers.Dense(4, activation=tf.nn.softmax, name="dense")
    elif form == "dense_string":
        layers[-1] = keras.layers.Dense(4, activation="softmax", name="dense")
    elif form == "activation_layer":
        layers.append(keras.layers.Activation("softmax"))
    elif form == "softmax_layer":
        layers.append(keras.layers.Softmax())
    elif form == "lambda_tf":
        layers.append(keras.layers.Lambda(tf.nn.softmax))
    elif form == "lambda_ops":
        layers.append(keras.layers.Lambda(lambda z: keras.ops.softmax(z)))
    return _weights(keras.Sequential([keras.Input(SHAPE), *layers]))


def _logits(model):
    twin = keras.Sequential([keras.Input(SHAPE), *_body()])
    twin.set_weights(model.get_weights())
    return twin


FORMS = ["dense_tf_nn", "dense_string", "activation_layer", "softmax_layer", "lambda_tf",
         "lambda_ops"]
IMAGES = np.random.default_rng(4).standard_normal((3, *SHAPE)).astype("float32")


def _tape_gradient(twin, images, classes):
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.reduce_sum(tf.gather(twin(x), classes, axis=1, batch_dims=1))
    return tape.gradient(score, x).numpy()


@pytest.mark.parametrize("form", FORMS)
def test_saliency_and_occlusion_read_the_scores_before_every_softmax_form(form):
    model = _head_model(form)
    twin = _logits(model)
    classes = np.array([0, 3, 1])
    expected = np.max(np.abs(_tape_gradient(twin, IMAGES, classes)), axis=-1)
    np.testing.assert_allclose(saliency_map(model, IMAGES, classes), expected, rtol=1e-4,
                               atol=1e-6)
    occluded = IMAGES.copy()
    occluded[:, :3, :3] = 0.0  # the first square of a 3-pixel patch, stride 3
    probs = keras.ops.softmax(twin(occluded)).numpy()[np.arange(3), classes]
    got = occlusion_sensitivity(model, IMAGES, classes, patch_size=3, stride=3, fill_value=0.0)
    np.testing.assert_allclose(got[:, 0, 0], probs, rtol=1e-4)  # softmax applied once


def test_guided_backprop_reads_the_scores_before_a_lambda_softmax():
    model, twin = _head_model("lambda_tf"), None
    twin = _logits(model)
    np.testing.assert_allclose(guided_backprop(model, IMAGES, 2), guided_backprop(twin, IMAGES, 2),
                               rtol=1e-4, atol=1e-6)


def test_class_model_ascends_the_logit_of_a_sigmoid_output():
    """A single sigmoid output: the score is its logit z (a softmax of one logit is flat)."""
    model = _weights(keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                                       keras.layers.Dense(1, activation="sigmoid")]))
    w, b = (v.astype(np.float64) for v in model.get_weights())
    images, history = class_model_visualization(model, 0, l2_decay=0.5, seed=0,
                                                return_history=True)
    optimum = float((w ** 2).sum() / 2.0 + b[0])  # ||w||^2 / (4 lambda) + b
    assert history[-1, 0] >= 0.95 * optimum


class _ProbabilityModel(keras.Model):
    """A subclassed model whose call ends in a softmax: its head cannot be unwrapped."""

    def __init__(self):
        super().__init__(name="probability_model")
        self.flatten, self.dense = keras.layers.Flatten(), keras.layers.Dense(4)

    def call(self, x):
        return tf.nn.softmax(self.dense(self.flatten(x)))


@pytest.mark.parametrize("method", [
    lambda m: saliency_map(m, IMAGES),
    lambda m: guided_backprop(m, IMAGES, 0),
    lambda m: occlusion_sensitivity(m, IMAGES, patch_size=3, stride=3),
])
def test_probability_outputs_that_cannot_be_unwrapped_are_refused(method):
    model = _ProbabilityModel()
    model(IMAGES)
    with pytest.raises(ValueError, match=r"model returns probabilities.*logits"):
        method(model)
    with pytest.raises(ValueError, match=r"model returns probabilities.*logits"):
        method(lambda x: keras.ops.softmax(keras.ops.reshape(x, (-1, 72))[:, :4]))


def test_a_model_not_differentiable_in_its_input_is_refused():
    def rounded(x):  # tf.round has no gradient
        return keras.ops.reshape(tf.round(x), (-1, 72))[:, :4]

    with pytest.raises(ValueError, match=r"model .*differentiable"):
        saliency_map(rounded, IMAGES)
