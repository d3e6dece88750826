"""Grad-CAM and guided Grad-CAM (Selvaraju et al. 2017), per example, also in nested models."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from visualization.gradcam import grad_cam, guided_grad_cam, last_spatial_layer
from visualization.guided import guided_backprop


def _hand_grad_cam(model, layer_name, images, classes):
    """Grad-CAM by hand: a two-output Functional twin with the scores before softmax."""
    probs = model.get_layer("probs")
    pooled = model.get_layer("pool").output
    logits = pooled @ probs.kernel + probs.bias
    twin = keras.Model(model.inputs[0], [model.get_layer(layer_name).output, logits])
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        acts, scores = twin(x)
        score = tf.reduce_sum(tf.gather(scores, classes, axis=1, batch_dims=1))
    grads, acts = tape.gradient(score, acts).numpy(), acts.numpy()
    alpha = grads.mean(axis=(1, 2))                                   # (N, K)
    cam = np.maximum(np.einsum("nk,nijk->nij", alpha, acts), 0)
    return cam / cam.max(axis=(1, 2), keepdims=True)


def test_equals_hand_computation(tiny_cnn, cnn_images):
    classes = np.array([0, 1, 2, 1])
    got = grad_cam(tiny_cnn, cnn_images, classes, layer_name="conv1")
    expected = _hand_grad_cam(tiny_cnn, "conv1", cnn_images, classes)
    assert got.shape == (4, 8, 8) and np.all(expected.max(axis=(1, 2)) == 1)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_per_example_equals_one_image_and_default_layer(tiny_cnn, cnn_images):
    assert last_spatial_layer(tiny_cnn, tf.constant(cnn_images[:1])).name == "conv2"
    batch = grad_cam(tiny_cnn, cnn_images, 2)
    np.testing.assert_array_equal(batch, grad_cam(tiny_cnn, cnn_images, 2, layer_name="conv2"))
    for n in range(len(cnn_images)):
        np.testing.assert_allclose(batch[n], grad_cam(tiny_cnn, cnn_images[n:n + 1], 2)[0],
                                   atol=1e-6)
    assert batch.min() >= 0
    np.testing.assert_allclose(batch.max(axis=(1, 2)), 1, atol=1e-6)
    # the maps differ between examples (no gradient averaged over the batch)
    assert np.abs(batch[0] - batch[1]).max() > 1e-2


def test_nested_base_model(nested_cnn, tiny_cnn, cnn_images):
    tiny_cnn.set_weights(nested_cnn.get_weights())
    for layer_name in (None, "conv1"):
        np.testing.assert_allclose(grad_cam(nested_cnn, cnn_images, 1, layer_name=layer_name),
                                   grad_cam(tiny_cnn, cnn_images, 1, layer_name=layer_name),
                                   atol=1e-6)


def test_guided_grad_cam_is_the_product(tiny_cnn, cnn_images):
    got = guided_grad_cam(tiny_cnn, cnn_images, [0, 1, 2, 0], layer_name="conv1")
    expected = (guided_backprop(tiny_cnn, cnn_images, [0, 1, 2, 0])
                * grad_cam(tiny_cnn, cnn_images, [0, 1, 2, 0], layer_name="conv1")[..., None])
    assert got.shape == cnn_images.shape
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_bad_input(tiny_cnn, cnn_images, relu_mlp):
    with pytest.raises(ValueError, match=r"layer_name 'pool' has output shape \(6,\)"):
        grad_cam(tiny_cnn, cnn_images, layer_name="pool")
    with pytest.raises(ValueError, match=r"layer_name 'conv9'.*available.*conv1"):
        grad_cam(tiny_cnn, cnn_images, layer_name="conv9")
    with pytest.raises(ValueError, match=r"class_index .*\[5\]"):
        guided_grad_cam(tiny_cnn, cnn_images, [0, 5, 1, 1])
    mlp, _ = relu_mlp("activation")
    with pytest.raises(ValueError, match="layer_name.*no layer with a 4-D"):
        grad_cam(mlp, np.zeros((1, 3, 3, 1)))
