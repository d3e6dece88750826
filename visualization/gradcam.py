"""Grad-CAM and guided Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep
Networks via Gradient-based Localization"), per example in a batch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from visualization._model import (
    all_layers,
    as_image_batch,
    class_scores,
    compiled_for,
    feature_model,
    find_layer,
    logits_model,
    probe_classes,
    tapped_layers,
)
from visualization.guided import guided_backprop


def grad_cam(model, images, class_index=None, *, layer_name=None,
             preprocess=None) -> np.ndarray:
    """Class activation map ``L = ReLU(sum_k alpha_k A^k)``, ``alpha_k = mean_ij dS / dA^k_ij``.

    ``A`` are the feature maps of a conv layer and ``S`` the class score before softmax. The
    weights ``alpha`` are computed for EACH example from its own gradient (no averaging across
    the batch). The map is upsampled bilinearly to the image size and divided by its maximum
    (an all-zero map stays zero).

    Args:
        model: Keras model; the layer may sit inside a nested base model.
        images: ``(N, H, W, C)``.
        class_index: ``None`` (predicted class), an int, or one per example.
        layer_name: a layer with a 4-D output ``(N, h, w, K)``; default the last such layer of
            the forward pass.
        preprocess: applied to the images before the model (see
            :func:`visualization._model.resolve_preprocess`); ``images`` are raw.

    Returns:
        float32 array ``(N, H, W)`` in [0, 1].
    """
    x = as_image_batch(images, model)
    name = _spatial_layer_name(model, x, layer_name, preprocess)
    classes = probe_classes(class_index, logits_model(model, preprocess), x)
    return compiled_for(model, _grad_cam_body, name, preprocess)(x, classes).numpy()


def guided_grad_cam(model, images, class_index=None, *, layer_name=None,
                    preprocess=None) -> np.ndarray:
    """Guided Grad-CAM: guided backpropagation times the Grad-CAM map, ``G * L[..., None]``.

    Args: as :func:`grad_cam`.

    Returns:
        float32 array ``(N, H, W, C)``.
    """
    cam = grad_cam(model, images, class_index, layer_name=layer_name, preprocess=preprocess)
    return guided_backprop(model, images, class_index, preprocess=preprocess) * cam[..., None]


def grad_cam_plus_plus(model, images, class_index=None, *, layer_name=None,
                       preprocess=None) -> np.ndarray:
    """Grad-CAM++ (Chattopadhay et al. 2018): ``L = ReLU(sum_k w_k A^k)`` with pixel-weighted
    ``w_k = sum_ij a_ij^k ReLU(g_ij^k)``, ``g = dS / dA``.

    With the exponential output ``Y = exp(S)`` of the paper, the higher derivatives are powers
    of ``g`` and the weights have the closed form
    ``a_ij^k = g_ij^2 / (2 g_ij^2 + sum_ab A_ab^k g_ij^3)`` (0 where the denominator is 0);
    the factor ``exp(S)`` of ``ReLU(dY/dA)`` is one positive number per example and cancels in
    the normalisation. Several instances of a class then all light up, where Grad-CAM's mean
    gradient favours the largest. Upsampling, normalisation and the default layer are those of
    :func:`grad_cam`.

    Args:
        model, images, class_index, layer_name: as :func:`grad_cam`.
        preprocess: applied inside the gradient (``visualization._model.resolve_preprocess``).

    Returns:
        float32 array ``(N, H, W)`` in [0, 1].
    """
    x = as_image_batch(images, model)
    name = _spatial_layer_name(model, x, layer_name)
    classes = probe_classes(class_index, logits_model(model, preprocess=preprocess), x)
    return compiled_for(model, _grad_cam_pp_body, name, preprocess)(x, classes).numpy()


def _grad_cam_pp_body(model, layer_name: str, preprocess) -> Callable:
    """Compiled ``(images, classes) -> (N, H, W)`` Grad-CAM++ maps."""
    features = feature_model(model, [layer_name], preprocess=preprocess)

    def body(images, classes):
        with tf.GradientTape() as tape:
            tape.watch(images)
            (acts,), logits = features(images)
            total = tf.reduce_sum(class_scores(logits, classes))
        grads = tape.gradient(total, acts)
        map_sums = tf.reduce_sum(acts, axis=(1, 2), keepdims=True)  # sum_ab A_ab^k
        denominator = 2.0 * tf.square(grads) + map_sums * grads ** 3
        alpha = tf.math.divide_no_nan(tf.square(grads), denominator)
        weights = tf.reduce_sum(alpha * tf.nn.relu(grads), axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * acts, axis=-1, keepdims=True))
        cam = tf.image.resize(cam, tf.shape(images)[1:3], method="bilinear")[..., 0]
        return tf.math.divide_no_nan(cam, tf.reduce_max(cam, axis=(1, 2), keepdims=True))

    return body


def _grad_cam_body(model, layer_name: str, preprocess=None) -> Callable:
    """Compiled ``(images, classes) -> (N, H, W)`` maps."""
    features = feature_model(model, [layer_name], preprocess)

    def body(images, classes):
        with tf.GradientTape() as tape:
            tape.watch(images)
            (acts,), logits = features(images)
            total = tf.reduce_sum(class_scores(logits, classes))
        grads = tape.gradient(total, acts)
        alpha = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # (N, 1, 1, K) per example
        cam = tf.nn.relu(tf.reduce_sum(alpha * acts, axis=-1, keepdims=True))
        cam = tf.image.resize(cam, tf.shape(images)[1:3], method="bilinear")[..., 0]
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        return tf.math.divide_no_nan(cam, peak)

    return body


def _spatial_layer_name(model, x: tf.Tensor, layer_name: str | None, preprocess=None) -> str:
    """``layer_name`` checked to have a 4-D output, or the last layer with one."""
    if layer_name is None:
        return last_spatial_layer(model, x[:1], preprocess).name
    find_layer(model, layer_name)
    shape = tuple(feature_model(model, [layer_name], preprocess)(x[:1])[0][0].shape)
    if len(shape) != 4:
        raise ValueError(f"layer_name {layer_name!r} has output shape {shape[1:]} per example, "
                         "without spatial dimensions; Grad-CAM needs a (h, w, channels) layer")
    return layer_name


def last_spatial_layer(model, images: tf.Tensor, preprocess=None):
    """The last layer (in forward order, nested models entered) whose output is ``(N, h, w, K)``.

    Raises:
        ValueError: the model has no such layer.
    """
    leaves = [layer for layer in all_layers(model) if not getattr(layer, "layers", None)]
    with tapped_layers(leaves) as store:  # dict order = order of first call
        logits_model(model, preprocess)(images)
    by_id = {id(layer): layer for layer in leaves}
    spatial = [key for key, out in store.items() if getattr(out, "shape", None) is not None
               and len(out.shape) == 4]
    if not spatial:
        raise ValueError(f"layer_name: {getattr(model, 'name', model)!r} has no layer with a "
                         "4-D (N, h, w, channels) output")
    return by_id[spatial[-1]]
