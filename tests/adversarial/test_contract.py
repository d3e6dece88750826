"""The model/input contract: softmax and sigmoid in every form, labels in every form, pixel ranges."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from adversarial import contract

RNG = np.random.default_rng(3)
X = RNG.uniform(size=(6, 5)).astype(np.float32)


def _dense_weights():
    rng = np.random.default_rng(11)
    return [rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)]


def _logits_model():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
    model.set_weights(_dense_weights())
    return model


def _head(activation):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation=activation)])
    model.set_weights(_dense_weights())
    return model


def _on_top(layer):
    return keras.Sequential([_logits_model(), layer])


def _functional_ops_softmax():
    inputs = keras.Input((5,))
    dense = keras.layers.Dense(4)
    model = keras.Model(inputs, keras.ops.softmax(dense(inputs)))
    dense.set_weights(_dense_weights())
    return model


def _softmax_by_hand(z):
    e = keras.ops.exp(z - keras.ops.max(z, axis=-1, keepdims=True))
    return e / keras.ops.sum(e, axis=-1, keepdims=True)


SOFTMAX_TWINS = {
    "string": lambda: _head("softmax"),
    "keras.activations.softmax": lambda: _head(keras.activations.softmax),
    "tf.nn.softmax": lambda: _head(tf.nn.softmax),
    "keras.ops.softmax": lambda: _head(keras.ops.softmax),
    "Softmax layer": lambda: _on_top(keras.layers.Softmax()),
    "Activation layer": lambda: _on_top(keras.layers.Activation("softmax")),
    "Lambda tf.nn.softmax": lambda: _on_top(keras.layers.Lambda(tf.nn.softmax)),
    "Lambda by hand (probed)": lambda: _on_top(keras.layers.Lambda(_softmax_by_hand)),
    "nested Sequential": lambda: keras.Sequential([keras.Input((5,)),
                                                   keras.Sequential([_head("softmax")])]),
    "functional keras.ops.softmax": _functional_ops_softmax,
}


@pytest.mark.parametrize("name", list(SOFTMAX_TWINS))
def test_every_softmax_form_gives_the_logits(name):
    model = SOFTMAX_TWINS[name]()
    assert contract.final_activation(model) == "softmax"
    probabilities = np.asarray(model(X))
    expected = X @ _dense_weights()[0] + _dense_weights()[1]
    np.testing.assert_allclose(contract.scores_fn(model)(tf.constant(X)), expected, atol=1e-5)
    np.testing.assert_allclose(model(X), probabilities, atol=1e-7)  # the model is unchanged


def test_scores_inside_tf_function_and_gradient():
    model = _head("softmax")
    scores = contract.scores_fn(model)
    compiled = tf.function(lambda x: scores(x))
    np.testing.assert_allclose(compiled(tf.constant(X)), _logits_model()(X), atol=1e-5)
    x = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(scores(x)[:, 1])
    np.testing.assert_allclose(tape.gradient(total, x),
                               np.tile(_dense_weights()[0][:, 1], (6, 1)), atol=1e-5)


def test_mobilenet_v2_default_head_is_softmax():
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10)
    x = np.random.default_rng(0).uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)
    assert contract.final_activation(model) == "softmax"
    probabilities = np.asarray(model(x, training=False), np.float64)
    scores = np.asarray(contract.scores_fn(model)(tf.constant(x)), np.float64)
    # log softmax(z) = z - logsumexp(z): the difference is constant along each row
    diff = np.log(probabilities) - scores
    np.testing.assert_allclose(diff - diff[:, :1], 0.0, atol=1e-4)
    assert contract.final_activation(keras.Sequential([model])) == "softmax"


SIGMOID_FORMS = {
    "string": lambda: _head("sigmoid"),
    "tf.nn.sigmoid": lambda: _head(tf.nn.sigmoid),
    "keras.ops.sigmoid": lambda: _head(keras.ops.sigmoid),
    "Activation layer": lambda: _on_top(keras.layers.Activation("sigmoid")),
    "Lambda": lambda: _on_top(keras.layers.Lambda(tf.math.sigmoid)),
}


@pytest.mark.parametrize("name", list(SIGMOID_FORMS))
def test_every_sigmoid_form_gives_the_pre_activation(name):
    model = SIGMOID_FORMS[name]()
    assert contract.final_activation(model) == "sigmoid"
    expected = X @ _dense_weights()[0] + _dense_weights()[1]
    np.testing.assert_allclose(contract.scores_fn(model)(tf.constant(X)), expected, atol=1e-4)


def test_linear_and_relu_heads_are_none():
    assert contract.final_activation(_logits_model()) == "none"
    assert contract.final_activation(_head("relu")) == "none"
    assert contract.scores_fn(_logits_model()).kind == "logits"


class _SubclassedProbabilities(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(4)

    def call(self, x):
        return tf.nn.softmax(self.dense(x))


def _probability_function(x):
    return keras.ops.softmax(x @ _dense_weights()[0] + _dense_weights()[1])


@pytest.mark.parametrize("make", [_SubclassedProbabilities, lambda: _probability_function])
def test_opaque_probability_models(make):
    model = make()
    assert contract.final_activation(model) == "unknown"
    with pytest.raises(ValueError, match="model returns probabilities"):
        contract.scores_fn(model)(tf.constant(X))
    scores = np.asarray(contract.scores_fn(model, probabilities="log")(tf.constant(X)))
    np.testing.assert_allclose(scores, np.log(np.asarray(model(X))), atol=1e-6)
    assert contract.scores_fn(model, probabilities="log").kind == "log-probabilities"


def test_log_probabilities_give_the_logits_ce_and_margin():
    logits = _logits_model()(X)
    log_p = contract.scores_fn(_probability_function, probabilities="log")(tf.constant(X))
    labels = np.array([0, 1, 2, 3, 0, 1])
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits
    np.testing.assert_allclose(ce(labels, log_p), ce(labels, logits), atol=1e-5)

    def margin(z):
        z = np.asarray(z)
        own = z[np.arange(6), labels]
        z = z.copy()
        z[np.arange(6), labels] = -np.inf
        return z.max(1) - own

    np.testing.assert_allclose(margin(log_p), margin(logits), atol=1e-5)


def test_opaque_sigmoid_column_gives_its_logit():
    def binary(x):
        return tf.sigmoid(tf.reduce_sum(x, axis=1, keepdims=True) - 2.5)

    scores = contract.scores_fn(binary, probabilities="log")(tf.constant(X))
    np.testing.assert_allclose(scores[:, 0], X.sum(1) - 2.5, atol=1e-4)


def test_opaque_logits_function_passes_through():
    def logits(x):
        return x @ _dense_weights()[0] + _dense_weights()[1]

    scores = contract.scores_fn(logits)
    np.testing.assert_allclose(scores(tf.constant(X)), logits(X), atol=1e-6)
    assert scores.kind == "logits"


def test_edited_head_is_noticed():
    model = _head("softmax")
    first = contract.scores_fn(model)
    model.layers[-1].activation = keras.activations.linear
    assert contract.final_activation(model) == "none"
    assert contract.scores_fn(model) is not first
    np.testing.assert_allclose(contract.scores_fn(model)(tf.constant(X)), model(X), atol=1e-6)


# ----------------------------------------------------------------------------------------------
# labels


@pytest.mark.parametrize("labels", [
    np.array([2, 0, 1]), np.array([[2], [0], [1]]), np.eye(4)[[2, 0, 1]],
    np.array([2.0, 0.0, 1.0]), tf.constant([[2], [0], [1]]),
    np.array([[0.1, 0.2, 0.6, 0.1], [0.7, 0.1, 0.1, 0.1], [0.0, 1.0, 0.0, 0.0]])])
def test_label_forms(labels):
    np.testing.assert_array_equal(contract.parse_labels(labels, 3, 4), [2, 0, 1])


def test_scalar_label_is_broadcast():
    np.testing.assert_array_equal(contract.parse_labels(3, 4, 10), [3, 3, 3, 3])


def test_keras_datasets_column_is_not_read_as_one_hot():
    """(N, 1) columns (keras.datasets.cifar10) used to become all zeros through argmax."""
    labels = np.array([[3], [8], [8], [0]], np.uint8)
    np.testing.assert_array_equal(contract.parse_labels(labels, 4, 10), [3, 8, 8, 0])


@pytest.mark.parametrize("labels, message", [
    ([0, 1, 10], r"labels must be in \[0, 10\), got \[10\] at positions \[2\]"),
    ([0, -1, 2], r"labels must be in \[0, 10\), got \[-1\] at positions \[1\]"),
    ([0, 1.5, 2], r"labels must be integer class indices, got \[1.5\] at positions \[1\]"),
    ([0, 1], r"labels must have shape \(3,\), \(3, 1\).*got shape \(2,\)"),
    (np.ones((3, 10)), r"labels of shape \(3, 10\) must be one-hot or probability rows"),
    (np.ones((3, 2, 2)), r"labels must have shape .*got shape \(3, 2, 2\)"),
    (12, r"labels must be in \[0, 10\), got 12$"),
    (2.5, r"labels must be an integer class index, got 2.5"),
])
def test_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        contract.parse_labels(labels, 3, 10)


def test_label_name_and_type():
    with pytest.raises(ValueError, match=r"input_label must be in"):
        contract.parse_labels([5], 1, 3, name="input_label")
    with pytest.raises(TypeError, match="labels must be numeric"):
        contract.parse_labels(["cat", "dog"], 2, 3)


# ----------------------------------------------------------------------------------------------
# pixel ranges and gradients


def test_uint8_images_need_their_range():
    images = np.random.default_rng(0).integers(0, 256, size=(2, 4, 4, 3)).astype(np.uint8)
    with pytest.raises(ValueError, match=r"input_image must lie in \[clip_value_min, "
                                         r"clip_value_max\] = \[0, 1\], got values in \[\d+, "
                                         r"\d+\] \(dtype uint8\); looks like uint8 pixels in "
                                         r"\[0, 255\]: pass clip_value_min=0, clip_value_max=255"):
        contract.check_input_range(images, 0.0, 1.0)
    out = contract.check_input_range(images, 0, 255)
    assert out.dtype == tf.float32
    np.testing.assert_array_equal(out, images.astype(np.float32))


def test_float_255_and_minus_one_images():
    contract.check_input_range(np.full((1, 3), 200.0), 0.0, 255.0)
    with pytest.raises(ValueError, match=r"preprocessed images in \[-1, 1\]: pass "
                                         r"clip_value_min=-1, clip_value_max=1"):
        contract.check_input_range(np.linspace(-1, 1, 12).reshape(1, 12), 0.0, 1.0)
    contract.check_input_range(np.linspace(-1, 1, 12).reshape(1, 12), -1.0, 1.0)
    contract.check_input_range(np.array([[1.0 + 1e-7]]), 0.0, 1.0)  # rounding slack


def test_nan_and_inf_images():
    with pytest.raises(ValueError, match="input_image must not contain NaN, got 1 NaN"):
        contract.check_input_range(np.array([[0.5, np.nan]]))
    with pytest.raises(ValueError, match="x must be finite, got 1 infinite"):
        contract.check_input_range(np.array([[0.5, np.inf]]), name="x")


def test_missing_gradient_is_an_error():
    with pytest.raises(ValueError, match="model has no gradient with respect to its input"):
        contract.require_input_gradient(None)
    gradient = tf.ones(3)
    assert contract.require_input_gradient(gradient) is gradient


def test_validators():
    with pytest.raises(ValueError, match=r"loss must be one of \('ce', 'dlr'\), got 'l1'"):
        contract.check_choice("l1", "loss", ("ce", "dlr"))
    with pytest.raises(ValueError, match=r"probabilities must be one of .*got 'soft'"):
        contract.scores_fn(_logits_model(), probabilities="soft")
    with pytest.raises(TypeError, match="model must be callable"):
        contract.scores_fn(3)
    assert contract.check_norm("inf") == np.inf
