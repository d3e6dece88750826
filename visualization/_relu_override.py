"""One ReLU override under guided backpropagation and the deconvnet, and the gradient to the image.

The lecture's backward rules for ``f^{l+1} = relu(f^l)`` with ``R^{l+1} = d f^out / d f^{l+1}``:

* backpropagation:        ``R^l = (f^l > 0) * R^{l+1}``
* "deconvnet":            ``R^l = (R^{l+1} > 0) * R^{l+1}``                (Zeiler & Fergus 2014)
* guided backpropagation: ``R^l = (f^l > 0) * (R^{l+1} > 0) * R^{l+1}``    (Springenberg et al. 2015)

:func:`relu_override` swaps, for the duration of a ``with`` block, every ReLU of a model for a
``tf.custom_gradient`` version with the same forward pass and the chosen backward rule (the idea
of Captum's ``ModifiedReluGradientAttribution``). It covers ``activation="relu"``/``"relu6"`` on
any layer (Conv2D, Dense, ...), ``Activation("relu")``, ``keras.layers.ReLU`` (also with
``max_value``/``threshold``: the guided mask is the region where the clipped ReLU passes its
gradient, ``threshold < f < max_value``) and layers of nested models. Leaky ReLUs
(``negative_slope != 0``) are not ReLUs in the lecture's sense and keep their gradient. On exit
every ``layer.activation`` is the very object it was before and every ``call`` is restored.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from visualization._model import (
    all_layers,
    as_image_batch,
    class_scores,
    compiled_for,
    feature_model,
    logits_model,
    probe_classes,
)

RULES = ("guided", "deconvnet")
_RELU_NAMES = {"relu": None, "relu6": 6.0}


def modified_relu(forward: Callable, rule: str, max_value=None, threshold=0.0) -> Callable:
    """``forward`` (a ReLU) with its backward pass replaced by ``rule``.

    Args:
        forward: the original ReLU function; the forward values are exactly its outputs.
        rule: ``"guided"`` (``(f > threshold) * (f < max_value) * (R > 0) * R``) or
            ``"deconvnet"`` (``(R > 0) * R``).
        max_value: upper clip of the ReLU (6 for ReLU6) or ``None``.
        threshold: the ReLU's threshold (0 for the plain ReLU).

    Returns:
        a function of one tensor, differentiable with the modified rule.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")

    @tf.custom_gradient
    def relu(x):
        def grad(upstream):
            keep = upstream > 0
            if rule == "guided":
                keep = keep & (x > threshold)
                if max_value is not None:
                    keep = keep & (x < max_value)
            return upstream * tf.cast(keep, upstream.dtype)

        return forward(x), grad

    return relu


def _relu_activation_clip(fn) -> tuple[bool, float | None]:
    """(is a ReLU activation, its max_value) judged by the function's name."""
    name = getattr(fn, "__name__", None)
    return name in _RELU_NAMES, _RELU_NAMES.get(name)


def _is_relu_layer(layer) -> bool:
    """A ``ReLU`` layer (Keras 3 or tf-keras) without a negative slope."""
    return (type(layer).__name__ == "ReLU" and hasattr(layer, "max_value")
            and float(getattr(layer, "negative_slope", 0.0)) == 0.0)


def _override_activation(layer, rule: str, undo: list) -> None:
    original = layer.activation
    _, max_value = _relu_activation_clip(original)
    undo.append(lambda: setattr(layer, "activation", original))
    layer.activation = modified_relu(original, rule, max_value=max_value)


def _override_relu_layer(layer, rule: str, undo: list) -> None:
    had_own, own = "call" in layer.__dict__, layer.__dict__.get("call")
    original_call = layer.call
    max_value = None if layer.max_value is None else float(layer.max_value)
    relu = modified_relu(original_call, rule, max_value=max_value,
                         threshold=float(layer.threshold))
    undo.append(lambda: setattr(layer, "call", own) if had_own
                else object.__delattr__(layer, "call"))
    layer.call = lambda inputs, *args, **kwargs: relu(inputs)


@contextlib.contextmanager
def relu_override(model, rule: str) -> Iterator[int]:
    """Within the ``with``, every ReLU of ``model`` back-propagates with ``rule``.

    Args:
        model: a Keras model (nested models included).
        rule: ``"guided"`` or ``"deconvnet"``.

    Yields:
        the number of ReLUs overridden (0 for a plain function: a warning says so).
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    undo: list = []
    try:
        is_layer = isinstance(model, keras.Layer) or hasattr(model, "_flatten_layers")
        layers = [model, *all_layers(model)] if is_layer else []
        for layer in layers:
            if _is_relu_layer(layer):
                _override_relu_layer(layer, rule, undo)
            elif _relu_activation_clip(getattr(layer, "activation", None))[0]:
                _override_activation(layer, rule, undo)
        if not undo:
            warnings.warn(f"no ReLU found in {type(model).__name__}: the {rule} gradient equals "
                          "the plain gradient", stacklevel=3)
        yield len(undo)
    finally:
        for restore in reversed(undo):
            restore()


# ---------------------------------------------------------------------------------------------
# What is sent back: a class score or a unit / feature map of a layer
# ---------------------------------------------------------------------------------------------
def _unit_scores(acts: tf.Tensor, mode: str, unit: tf.Tensor) -> tf.Tensor:
    """Per-example score of a layer's activations ``acts`` ``(N, ..., K)``.

    ``"channel"``: sum of feature map ``unit`` (all positions); ``"element"``: the single entry
    at the full index ``unit``; ``"strongest"``: the feature map with the largest sum.
    """
    if mode == "element":
        index = tf.tile(unit[None], [tf.shape(acts)[0], 1])
        return tf.gather_nd(acts, index, batch_dims=1)
    maps = tf.reduce_sum(tf.reshape(acts, [tf.shape(acts)[0], -1, tf.shape(acts)[-1]]), axis=1)
    if mode == "strongest":
        unit = tf.argmax(tf.stop_gradient(maps), axis=-1, output_type=tf.int32)
        return tf.gather(maps, unit, axis=1, batch_dims=1)
    return tf.gather(maps, unit, axis=1)


def _gradient_body(model, layer_name: str | None, mode: str, rule: str | None) -> Callable:
    """Body of the compiled ``(images, target) -> d score / d images``.

    ``rule`` only keys the compiled-function cache: the override is active while tracing.
    """
    del rule
    features = feature_model(model, [layer_name]) if layer_name else None
    logits_fn = None if layer_name else logits_model(model)

    def body(images, target):
        with tf.GradientTape() as tape:
            tape.watch(images)
            if features is None:
                score = class_scores(logits_fn(images), target)
            else:
                score = _unit_scores(features(images)[0][0], mode, target)
            total = tf.reduce_sum(score)  # examples are independent: per-example gradients
        return tape.gradient(total, images)

    return body


def _validate_unit(unit_index, acts_shape: tuple, layer_name: str):
    """``(mode, target tensor)`` for ``unit_index`` on a layer whose output has ``acts_shape``."""
    if unit_index is None:
        return "strongest", tf.constant(0, tf.int32)
    values = np.asarray(unit_index)
    if values.dtype == bool or not np.issubdtype(values.dtype, np.integer) or values.ndim > 1:
        raise TypeError(f"unit_index must be an int (channel) or a tuple of ints (full index "
                        f"without the batch axis), got {unit_index!r}")
    limits = acts_shape[-1:] if values.ndim == 0 else acts_shape[1:]
    if values.ndim == 1 and values.shape[0] != len(limits):
        raise ValueError(f"unit_index must index all {len(limits)} non-batch axes of layer "
                         f"{layer_name!r} (output shape {acts_shape[1:]} per example), "
                         f"got {unit_index!r}")
    if np.any(values < 0) or np.any(values >= np.asarray(limits)):
        raise ValueError(f"unit_index {unit_index!r} is out of range for layer {layer_name!r} "
                         f"with output shape {acts_shape[1:]} per example")
    return ("channel" if values.ndim == 0 else "element"), tf.constant(values, tf.int32)


def image_gradients(model, images, class_index=None, *, layer_name=None, unit_index=None,
                    rule: str | None = None) -> np.ndarray:
    """``d S / d x`` for a batch, optionally with a modified ReLU backward ``rule``.

    ``S`` is the class score before softmax (``class_index`` int, one per example, or ``None``
    for the predicted class), or, with ``layer_name``, a unit of that layer (see
    :func:`visualization.guided.guided_backprop`).

    Args:
        model: Keras model or callable (``rule`` needs a Keras model with ReLUs).
        images: ``(N, H, W, C)``.
        class_index: see above; not allowed together with ``layer_name``.
        layer_name: a layer of the model (nested models searched).
        unit_index: channel index, full index tuple, or ``None`` (the strongest feature map).
        rule: ``None`` (plain gradient), ``"guided"`` or ``"deconvnet"``.

    Returns:
        float32 array ``(N, H, W, C)``.
    """
    x = as_image_batch(images, model)
    if layer_name is None:
        if unit_index is not None:
            raise ValueError(f"unit_index={unit_index!r} needs a layer_name")
        mode, target = "class", probe_classes(class_index, logits_model(model), x)
    else:
        if class_index is not None:
            raise ValueError(f"give class_index ({class_index!r}) or layer_name "
                             f"({layer_name!r}), not both")
        acts = feature_model(model, [layer_name])(x[:1])[0][0]
        mode, target = _validate_unit(unit_index, tuple(acts.shape), layer_name)
    compiled = compiled_for(model, _gradient_body, layer_name, mode, rule)
    if rule is None:
        return compiled(x, target).numpy()
    with relu_override(model, rule):
        return compiled(x, target).numpy()
