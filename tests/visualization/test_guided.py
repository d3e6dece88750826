"""Guided backpropagation and deconvnet against a layer-by-layer numpy computation of the rules."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.visualization.conftest import CLIPPED_AT_6, MLP_INPUT, RELU_FORMS
from visualization._model import all_layers
from visualization._relu_override import image_gradients, modified_relu, relu_override
from visualization.guided import deconvnet, guided_backprop


def _mlp_images(n=5, scale=4.0):
    """Inputs large enough that some hidden units exceed 6 (ReLU6 clips) and some are < 0."""
    return (scale * np.random.default_rng(5).standard_normal((n, *MLP_INPUT))).astype("float32")


def _reference(weights, images, classes, rule, max_value=None):
    """The lecture's rules by hand: R^l = mask * R^{l+1} at each ReLU, linear layers transposed."""
    w1, b1, w2, b2, w3, _ = weights
    x = images.reshape(len(images), -1)
    z1 = x @ w1 + b1
    a1 = np.clip(z1, 0, max_value) if max_value else np.maximum(z1, 0)
    z2 = a1 @ w2 + b2

    def backward_relu(upstream, pre):
        forward = (pre > 0) & ((pre < max_value) if max_value else True)
        keep = {"vanilla": forward, "guided": forward & (upstream > 0),
                "deconvnet": upstream > 0}[rule]
        return upstream * keep

    r = w3[:, classes].T                      # dS_c / da2, (N, 5)
    r = backward_relu(r, z2) @ w2.T           # dS_c / da1
    r = backward_relu(r, z1) @ w1.T           # dS_c / dx
    return r.reshape(images.shape), (z1, z2)


def _model_state(model, images):
    activations = [getattr(layer, "activation", None) for layer in _leaves(model)]
    with tf.GradientTape() as tape:
        x = tf.constant(images)
        tape.watch(x)
        out = model(x)
        score = out[:, 1]
    return activations, out.numpy(), tape.gradient(score, x).numpy()


def _leaves(model):
    return all_layers(model)


@pytest.mark.parametrize("form", RELU_FORMS)
def test_rules_match_layer_by_layer_numpy_and_model_is_unchanged(relu_mlp, form):
    model, weights = relu_mlp(form)
    images = _mlp_images()
    acts_before, out_before, grad_before = _model_state(model, images)
    classes = np.array([0, 1, 2, 0, 1])
    max_value = 6.0 if form in CLIPPED_AT_6 else None
    results = {"guided": guided_backprop(model, images, classes),
               "deconvnet": deconvnet(model, images, classes),
               "vanilla": image_gradients(model, images, classes)}
    for rule, got in results.items():
        expected, (z1, z2) = _reference(weights, images, classes, rule, max_value)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=rule)
    assert np.abs(results["guided"] - results["vanilla"]).max() > 1e-2
    assert np.abs(results["deconvnet"] - results["vanilla"]).max() > 1e-2
    assert np.abs(results["deconvnet"] - results["guided"]).max() > 1e-2
    # the inputs exercise every branch of the masks
    assert (z1 < 0).any() and (z2 < 0).any() and (z1 > 6).any()
    # afterwards: the same activation objects, no patched call, bit-identical outputs/gradients
    acts_after, out_after, grad_after = _model_state(model, images)
    assert all(a is b for a, b in zip(acts_before, acts_after, strict=True))
    assert not any("call" in layer.__dict__ for layer in _leaves(model))
    np.testing.assert_array_equal(out_before, out_after)
    np.testing.assert_array_equal(grad_before, grad_after)


def test_relu6_mask_differs_from_plain_relu(relu_mlp):
    """The clipped region blocks the guided signal: ReLU6 and ReLU give different results."""
    relu6, _ = relu_mlp("ReLU6")
    plain, _ = relu_mlp("ReLU")
    images = _mlp_images()
    assert np.abs(guided_backprop(relu6, images, 1) - guided_backprop(plain, images, 1)).max() > 1e-2


def test_override_is_undone_after_an_error(relu_mlp):
    model, _ = relu_mlp("ReLU")
    relu_layer = model.get_layer("hidden1_relu")
    with pytest.raises(RuntimeError), relu_override(model, "guided") as count:
        assert count == 2 and "call" in relu_layer.__dict__
        raise RuntimeError("boom")
    assert "call" not in relu_layer.__dict__


def test_modified_relu_keeps_forward_and_applies_rule():
    x = tf.constant([-2.0, 0.5, 3.0, 7.0])
    upstream = tf.constant([1.0, -1.0, 2.0, 3.0])
    for rule, expected in {"guided": [0, 0, 2, 0], "deconvnet": [1, 0, 2, 3]}.items():
        relu = modified_relu(lambda t: tf.clip_by_value(t, 0, 6), rule, max_value=6.0)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = relu(x)
        np.testing.assert_array_equal(y.numpy(), [0, 0.5, 3, 6])
        np.testing.assert_array_equal(tape.gradient(y, x, output_gradients=upstream), expected)


def test_unit_of_a_layer(relu_mlp):
    """Target = one unit of hidden1: guided R = W1[:, k] * (z1_k > 0), deconvnet R = W1[:, k]."""
    model, (w1, b1, *_) = relu_mlp("activation")
    images = _mlp_images()
    z1 = images.reshape(len(images), -1) @ w1 + b1
    got_guided = guided_backprop(model, images, layer_name="hidden1", unit_index=3)
    got_deconv = deconvnet(model, images, layer_name="hidden1", unit_index=(3,))
    expected = np.tile(w1[:, 3], (len(images), 1)).reshape(images.shape)
    np.testing.assert_allclose(got_deconv, expected, atol=1e-6)
    np.testing.assert_allclose(got_guided, expected * (z1[:, 3] > 0)[:, None, None, None],
                               atol=1e-6)
    assert (z1[:, 3] > 0).any() and (z1[:, 3] <= 0).any()


def test_feature_map_targets_on_a_conv_layer(tiny_cnn, cnn_images):
    """Channel = sum of the map; a full index = one element; None = the strongest map."""
    conv1 = tf.constant(keras.Model(tiny_cnn.inputs[0], tiny_cnn.get_layer("conv1").output)(cnn_images))
    strongest = np.argmax(conv1.numpy().sum(axis=(1, 2)), axis=-1)
    per_channel = np.stack([guided_backprop(tiny_cnn, cnn_images, layer_name="conv1",
                                            unit_index=k) for k in range(4)])
    default = guided_backprop(tiny_cnn, cnn_images, layer_name="conv1")
    np.testing.assert_allclose(default, per_channel[strongest, np.arange(4)], atol=1e-6)
    element = deconvnet(tiny_cnn, cnn_images, layer_name="conv1", unit_index=(2, 5, 1))
    # a 3x3 'same' conv unit at (2, 5) only sees pixels rows 1..3, columns 4..6
    outside = np.ones(element.shape[1:3], bool)
    outside[1:4, 4:7] = False
    assert np.all(element[:, outside] == 0) and np.abs(element).max() > 0


def test_nested_model_matches_flat_model(nested_cnn, tiny_cnn, cnn_images):
    """Same weights, conv layers inside a nested Functional base: same guided gradients."""
    tiny_cnn.set_weights(nested_cnn.get_weights())
    np.testing.assert_allclose(guided_backprop(nested_cnn, cnn_images, 2),
                               guided_backprop(tiny_cnn, cnn_images, 2), atol=1e-6)
    np.testing.assert_allclose(deconvnet(nested_cnn, cnn_images, layer_name="conv2", unit_index=4),
                               deconvnet(tiny_cnn, cnn_images, layer_name="conv2", unit_index=4),
                               atol=1e-6)


def test_compiled_once_for_repeated_shapes(relu_mlp):
    from visualization._model import _COMPILED
    model, _ = relu_mlp("ReLU")
    images = _mlp_images()
    guided_backprop(model, images)
    guided_backprop(model, images + 1)
    (compiled,) = [f for key, f in _COMPILED[model].items() if "guided" in key[1]]
    assert compiled.experimental_get_tracing_count() == 1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"class_index": 3}, r"class_index .*\[3"),
    ({"class_index": [0, 1]}, "class_index"),
    ({"layer_name": "nope"}, r"layer_name 'nope'.*available.*hidden1"),
    ({"layer_name": "hidden1", "unit_index": 6}, "unit_index 6"),
    ({"layer_name": "hidden1", "unit_index": (0, 1)}, r"unit_index .*\(0, 1\)"),
    ({"unit_index": 1}, "unit_index=1 needs a layer_name"),
    ({"class_index": 1, "layer_name": "hidden1"}, "not both"),
])
def test_bad_arguments(relu_mlp, kwargs, match):
    model, _ = relu_mlp("activation")
    with pytest.raises(ValueError, match=match):
        guided_backprop(model, _mlp_images(), **kwargs)


def test_bad_images(relu_mlp):
    model, _ = relu_mlp("activation")
    with pytest.raises(ValueError, match=r"images .*\(3, 3, 1\)"):
        deconvnet(model, _mlp_images()[0])
    with pytest.raises(ValueError, match=r"images .*\(4, 3, 1\)"):
        deconvnet(model, np.zeros((2, 4, 3, 1)))


# ---------------------------------------------------------------------------------------------
# ReLUs written as TensorFlow ops: Lambda layers, lambda activations, subclassed calls, functions
# ---------------------------------------------------------------------------------------------
class _SubclassedMLP(keras.Model):
    """The fixture's MLP with ``tf.nn.relu`` / ``keras.ops.relu`` written in ``call``."""

    def __init__(self):
        super().__init__(name="subclassed_mlp")
        self.flatten = keras.layers.Flatten()
        self.hidden1, self.hidden2 = keras.layers.Dense(6), keras.layers.Dense(5)
        self.scores = keras.layers.Dense(3)

    def call(self, x):
        h = tf.nn.relu(self.hidden1(self.flatten(x)))
        return self.scores(keras.ops.relu(self.hidden2(h)))


def _op_relu_mlp(form, weights):
    """The same network as ``relu_mlp`` with its ReLUs written in ``form``."""
    if form == "subclassed":
        model = _SubclassedMLP()
        model(np.zeros((1, *MLP_INPUT), np.float32))
        model.set_weights(weights)
        return model
    relu = {"lambda_tf": lambda: keras.layers.Lambda(tf.nn.relu),
            "lambda_ops": lambda: keras.layers.Lambda(lambda x: keras.ops.relu(x)),
            "activation_fn": None, "function": None}[form]
    hidden = []
    for units in (6, 5):
        if relu is None:  # a lambda activation on the Dense layer
            hidden.append(keras.layers.Dense(units, activation=lambda x: tf.nn.relu(x)))
        else:
            hidden += [keras.layers.Dense(units), relu()]
    linear = keras.Sequential([keras.Input(MLP_INPUT), keras.layers.Flatten(), *hidden,
                               keras.layers.Dense(3)])
    linear.set_weights(weights)
    if form == "function":  # a plain function around the model: the ReLUs are ops in its call
        return lambda x: linear(x)
    return linear


@pytest.mark.parametrize("form", ["lambda_tf", "lambda_ops", "activation_fn", "subclassed",
                                  "function"])
def test_op_relu_forms_match_the_hand_computed_rules(relu_mlp, form):
    _, weights = relu_mlp("activation")
    model = _op_relu_mlp(form, weights)
    images = _mlp_images()
    classes = np.array([0, 1, 2, 0, 1])
    for rule, method in (("guided", guided_backprop), ("deconvnet", deconvnet)):
        expected, _ = _reference(weights, images, classes, rule)
        np.testing.assert_allclose(method(model, images, classes), expected, rtol=1e-4,
                                   atol=1e-5, err_msg=rule)
    vanilla, _ = _reference(weights, images, classes, "vanilla")
    np.testing.assert_allclose(image_gradients(model, images, classes), vanilla, rtol=1e-4,
                               atol=1e-5)


def test_a_relu_in_an_inner_tf_function_is_an_error_not_a_partial_map(relu_mlp):
    _, weights = relu_mlp("activation")
    linear = _op_relu_mlp("lambda_tf", weights)
    inner = tf.function(lambda x: linear(x))
    with pytest.raises(ValueError, match=r"guided rule cannot reach the ReLU op"):
        guided_backprop(lambda x: inner(x), _mlp_images(), 0)


def test_preprocess_is_inside_the_gradient(relu_mlp):
    """model(x / 127.5 - 1): the gradient to the raw image is the chain rule's 1/127.5."""
    model, weights = relu_mlp("ReLU")
    raw = 127.5 * (_mlp_images() + 1.0)
    classes = np.array([0, 1, 2, 0, 1])
    expected, _ = _reference(weights, raw / 127.5 - 1.0, classes, "guided")
    np.testing.assert_allclose(guided_backprop(model, raw, classes, preprocess="tf"),
                               expected / 127.5, rtol=1e-4, atol=1e-7)
