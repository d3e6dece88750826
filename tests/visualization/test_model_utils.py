"""The shared model utilities: image batches, layers, scores before softmax, features, classes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.visualization.conftest import CNN_INPUT, build_relu_mlp
from visualization._model import (
    all_layers,
    as_image_batch,
    class_scores,
    compiled_for,
    ends_in_softmax,
    feature_model,
    find_layer,
    logits_model,
    resolve_class_index,
)


def test_as_image_batch_converts_and_checks(tiny_cnn):
    x = as_image_batch(np.ones((2, 8, 8, 2), np.uint8), tiny_cnn)
    assert x.dtype == tf.float32 and x.shape == (2, 8, 8, 2)
    assert as_image_batch(np.zeros((1, 5, 7, 3))).shape == (1, 5, 7, 3)  # no model: any size
    with pytest.raises(ValueError, match=r"images must have shape \(N, H, W, C\), got shape "
                                         r"\(8, 8, 2\).*batch axis"):
        as_image_batch(np.zeros((8, 8, 2)), tiny_cnn)
    with pytest.raises(ValueError, match=r"images have size \(8, 8, 3\).*expects \(8, 8, 2\)"):
        as_image_batch(np.zeros((1, 8, 8, 3)), tiny_cnn)
    with pytest.raises(ValueError, match="at least one image"):
        as_image_batch(np.zeros((0, 8, 8, 2)))
    with pytest.raises(TypeError, match="seeds must be numeric"):
        as_image_batch(np.array([[[["a"]]]]), name="seeds")


def test_find_layer_searches_nested_models(nested_cnn):
    assert find_layer(nested_cnn, "conv2") is nested_cnn.get_layer("base").get_layer("conv2")
    names = [layer.name for layer in all_layers(nested_cnn)]
    assert {"base", "conv1", "conv2", "pool", "probs"} <= set(names)
    with pytest.raises(ValueError, match=r"layer_name 'conv3' .*available.*'conv1', 'conv2'"):
        find_layer(nested_cnn, "conv3")
    with pytest.raises(TypeError, match="layer_name must be a string, got 3"):
        find_layer(nested_cnn, 3)


def _softmax_heads():
    """Three ways of ending in softmax, plus a softmax at the end of a nested model."""
    dense = [keras.layers.Dense(3, activation="softmax")]
    activation = [keras.layers.Dense(3), keras.layers.Activation("softmax")]
    layer = [keras.layers.Dense(3), keras.layers.Softmax()]
    nested = [keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])]
    return {"dense": dense, "activation": activation, "layer": layer, "nested": nested}


@pytest.mark.parametrize("head", ["dense", "activation", "layer", "nested"])
def test_logits_model_strips_the_final_softmax(head, cnn_images):
    body = [keras.Input(CNN_INPUT), keras.layers.Conv2D(6, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D()]
    model = keras.Sequential(body + _softmax_heads()[head])
    twin = keras.Sequential([keras.Input(CNN_INPUT), keras.layers.Conv2D(6, 3, activation="relu"),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    twin.set_weights(model.get_weights())
    probs_before = model(cnn_images).numpy()
    assert ends_in_softmax(model)
    np.testing.assert_allclose(logits_model(model)(tf.constant(cnn_images)), twin(cnn_images),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model(cnn_images).numpy(), probs_before)
    assert not any("call" in layer.__dict__ for layer in all_layers(model))


def test_logits_model_on_functional_and_plain_models(tiny_cnn, cnn_images):
    inputs = keras.Input(CNN_INPUT)
    scores = keras.layers.Dense(3)(keras.layers.Flatten()(inputs))
    functional = keras.Model(inputs, keras.layers.Softmax()(scores))
    plain = keras.Model(inputs, scores)
    np.testing.assert_allclose(logits_model(functional)(tf.constant(cnn_images)),
                               plain(cnn_images), rtol=1e-6)
    assert not ends_in_softmax(plain)
    np.testing.assert_array_equal(logits_model(plain)(tf.constant(cnn_images)), plain(cnn_images))

    def double(x):
        return 2.0 * x
    np.testing.assert_array_equal(logits_model(double)(tf.constant([1.0])), [2.0])


def test_feature_model_in_a_nested_base(nested_cnn, cnn_images):
    base = nested_cnn.get_layer("base")
    direct = keras.Model(base.inputs[0], [base.get_layer("conv1").output,
                                           base.get_layer("conv2").output])(cnn_images)
    probs = nested_cnn.get_layer("probs")
    (conv2, conv1), logits = feature_model(nested_cnn, ["conv2", "conv1"])(tf.constant(cnn_images))
    np.testing.assert_allclose(conv1, direct[0], rtol=1e-6)
    np.testing.assert_allclose(conv2, direct[1], rtol=1e-6)
    expected = tf.reduce_mean(direct[1], axis=(1, 2)) @ probs.kernel + probs.bias
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)


def test_feature_model_activations_are_differentiable(tiny_cnn, cnn_images):
    features = feature_model(tiny_cnn, "conv2")
    with tf.GradientTape() as tape:
        (acts,), logits = features(tf.constant(cnn_images))
        score = tf.reduce_sum(logits[:, 0])
    grads = tape.gradient(score, acts)
    # logits = mean_ij(conv2) @ W + b, so dS/dA_ijk = W[k, 0] / (h * w) everywhere
    kernel = tiny_cnn.get_layer("probs").kernel.numpy()
    np.testing.assert_allclose(grads, np.broadcast_to(kernel[:, 0] / 16, grads.shape), rtol=1e-6)


def test_resolve_class_index():
    logits = tf.constant([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    np.testing.assert_array_equal(resolve_class_index(None, logits), [1, 0])
    np.testing.assert_array_equal(resolve_class_index(2, logits), [2, 2])
    np.testing.assert_array_equal(resolve_class_index(np.array([0, 2]), logits), [0, 2])
    assert resolve_class_index(1, logits).dtype == tf.int32
    with pytest.raises(ValueError, match=r"class_index must be in \[0, 3\), got \[3\]"):
        resolve_class_index([0, 3], logits)
    with pytest.raises(ValueError, match=r"class_index must be in \[0, 3\), got \[-1, -1\]"):
        resolve_class_index(-1, logits)
    with pytest.raises(ValueError, match=r"one per example \(2\), got shape \(3,\)"):
        resolve_class_index([0, 1, 2], logits)
    with pytest.raises(TypeError, match="class_index must be an int"):
        resolve_class_index(True, logits)


def test_class_scores_minus_one_is_the_prediction():
    logits = tf.constant([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    np.testing.assert_array_equal(class_scores(logits, tf.constant([-1, 2])), [2.0, 1.0])


def test_compiled_for_caches_per_model_and_does_not_keep_it_alive():
    import gc
    import weakref

    def make_body(model, power):
        return lambda x: model(x) ** power

    model, _ = build_relu_mlp("activation")
    first = compiled_for(model, make_body, 2)
    assert compiled_for(model, make_body, 2) is first
    assert compiled_for(model, make_body, 3) is not first
    x = tf.zeros((2, 3, 3, 1))
    first(x)
    first(x + 1)
    assert first.experimental_get_tracing_count() == 1
    ref = weakref.ref(model)
    del model, first
    gc.collect()
    assert ref() is None
