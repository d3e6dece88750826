"""Tiny deterministic models for the visualisation tests.

Weights are drawn from a fixed numpy generator (not from Keras initialisers), so every model
below is the same in every run, and tests can recompute its forward and backward passes by hand.

Fixtures:
    relu_mlp: factory ``relu_mlp(form, final_softmax=False) -> (model, weights)`` of the
        network ``Flatten -> Dense(6) -> ReLU -> Dense(5) -> ReLU -> Dense(3)`` on ``(3, 3, 1)``
        images, with the ReLUs written in one of :data:`RELU_FORMS`; ``weights`` is the list
        ``[W1, b1, W2, b2, W3, b3]`` of numpy arrays.
    tiny_cnn: ``Conv2D(4, 3, relu, same) -> Conv2D(6, 3, relu, stride 2) -> GAP -> Dense(3,
        softmax)`` on ``(8, 8, 2)``; layer names ``conv1``, ``conv2``, ``pool``, ``probs``.
    nested_cnn: a Functional base (``conv1``, ``conv2`` as above) inside a Sequential with a
        pooling and a softmax head: the ``keras.applications``-in-a-Sequential situation.
    cnn_images: ``(4, 8, 8, 2)`` float32 images, 2 * standard normal; tiny_cnn predicts
        classes [2, 1, 1, 1] for them and every Grad-CAM map of them is non-zero.
"""

import keras
import numpy as np
import pytest

RELU_FORMS = ("activation", "relu6", "Activation", "ReLU", "ReLU6", "nested")
CLIPPED_AT_6 = ("relu6", "ReLU6")

MLP_INPUT = (3, 3, 1)
CNN_INPUT = (8, 8, 2)


def _fixed_weights(model, seed=7, scale=0.6):
    """Overwrite every weight of ``model`` with fixed normal draws (kernels and biases alike)."""
    rng = np.random.default_rng(seed)
    weights = [scale * rng.standard_normal(w.shape).astype("float32")
               for w in model.get_weights()]
    model.set_weights(weights)
    return weights


def _relu_block(form, units, name):
    """``Dense(units)`` followed by a ReLU written in the given form (list of layers)."""
    if form in ("activation", "relu6"):
        return [keras.layers.Dense(units, activation=form.replace("activation", "relu"),
                                   name=name)]
    dense = keras.layers.Dense(units, name=name)
    relu = {"Activation": lambda: keras.layers.Activation("relu", name=f"{name}_relu"),
            "ReLU": lambda: keras.layers.ReLU(name=f"{name}_relu"),
            "ReLU6": lambda: keras.layers.ReLU(max_value=6.0, name=f"{name}_relu")}[form]()
    return [dense, relu]


def build_relu_mlp(form, final_softmax=False, seed=7, scale=1.5):
    """See the module docstring; ``nested`` puts the hidden layers in an inner Sequential."""
    hidden_form = "activation" if form == "nested" else form
    hidden = _relu_block(hidden_form, 6, "hidden1") + _relu_block(hidden_form, 5, "hidden2")
    if form == "nested":
        hidden = [keras.Sequential([keras.Input((9,)), *hidden], name="inner")]
    head = keras.layers.Dense(3, activation="softmax" if final_softmax else None, name="scores")
    model = keras.Sequential([keras.Input(MLP_INPUT), keras.layers.Flatten(), *hidden, head])
    return model, _fixed_weights(model, seed, scale)


def build_tiny_cnn(seed=12):
    model = keras.Sequential([
        keras.Input(CNN_INPUT),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv2"),
        keras.layers.GlobalAveragePooling2D(name="pool"),
        keras.layers.Dense(3, activation="softmax", name="probs"),
    ], name="tiny_cnn")
    _fixed_weights(model, seed)
    return model


def build_nested_cnn(seed=12):
    inputs = keras.Input(CNN_INPUT)
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv2")(h)
    base = keras.Model(inputs, h, name="base")
    model = keras.Sequential([
        keras.Input(CNN_INPUT), base,
        keras.layers.GlobalAveragePooling2D(name="pool"),
        keras.layers.Dense(3, activation="softmax", name="probs"),
    ], name="nested_cnn")
    _fixed_weights(model, seed)
    return model


@pytest.fixture
def relu_mlp():
    return build_relu_mlp


@pytest.fixture
def tiny_cnn():
    return build_tiny_cnn()


@pytest.fixture
def nested_cnn():
    return build_nested_cnn()


@pytest.fixture
def cnn_images():
    return (2 * np.random.default_rng(11).standard_normal((4, *CNN_INPUT))).astype("float32")
