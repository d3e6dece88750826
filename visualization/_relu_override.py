"""One ReLU override under guided backpropagation and the deconvnet, and the gradient to the image.

The lecture's backward rules for ``f^{l+1} = relu(f^l)`` with ``R^{l+1} = d f^out / d f^{l+1}``:

* backpropagation:        ``R^l = (f^l > 0) * R^{l+1}``
* "deconvnet":            ``R^l = (R^{l+1} > 0) * R^{l+1}``                (Zeiler & Fergus 2014)
* guided backpropagation: ``R^l = (f^l > 0) * (R^{l+1} > 0) * R^{l+1}``    (Springenberg et al. 2015)

Every ReLU is reached, whatever its form, at two levels:

* the op: while the model is traced (inside the compiled gradient function), every TensorFlow
  ``Relu`` and ``Relu6`` op gets the modified backward rule through the graph's
  ``gradient_override_map`` and the gradient is taken with ``tf.gradients``. This covers
  ``tf.nn.relu``/``keras.ops.relu`` in ``Lambda`` layers, ``lambda`` activations, the ``call``
  of a subclassed model, a plain function wrapping a model, and tf-keras models.
* the layer: :func:`relu_override` swaps, for the duration of a ``with`` block, the
  ``activation`` of layers with ``activation="relu"``/``"relu6"`` and the ``call`` of
  ``keras.layers.ReLU`` for a ``tf.custom_gradient`` version with the same forward pass (the idea
  of Captum's ``ModifiedReluGradientAttribution``), so that a ``ReLU(max_value=m,
  threshold=t)``, which Keras computes without a ``Relu`` op, gets the guided mask
  ``t < f < m`` too.

A ReLU the override cannot reach (a ``Relu`` op inside a nested ``tf.function``, a loop or a
branch, which are traced in graphs of their own) is an error naming the op (its name starts with
the layer's), never a silently partial map. ReLU6 is a ReLU clipped at 6: its guided mask is
``0 < f < 6``, its deconvnet rule ``(R > 0) R``. Leaky ReLUs (``negative_slope != 0``) are not
ReLUs in the lecture's sense and keep their gradient. On exit every ``layer.activation`` is the
very object it was before and every ``call`` is restored.
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
    require_gradient,
    resolve_preprocess,
    resolve_unit,
)

RULES = ("guided", "deconvnet")
_RELU_NAMES = {"relu": None, "relu6": 6.0}
_RELU_OPS = ("Relu", "Relu6")


def _op_rule(rule: str, max_value: float | None) -> Callable:
    """The backward function of a ``Relu``/``Relu6`` op under ``rule`` (judged on its output:
    ``f > 0`` exactly where the input is)."""

    def grad(op, upstream):
        keep = upstream > 0
        if rule == "guided":
            out = op.outputs[0]
            keep = keep & (out > 0)
            if max_value is not None:
                keep = keep & (out < max_value)
        return upstream * tf.cast(keep, upstream.dtype)

    return grad


def _op_gradient_name(rule: str, op_type: str) -> str:
    return f"VisualizationModifiedRelu_{rule}_{op_type}"


for _rule in RULES:
    for _op_type, _max in (("Relu", None), ("Relu6", 6.0)):
        tf.RegisterGradient(_op_gradient_name(_rule, _op_type))(_op_rule(_rule, _max))


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
        the number of ReLU layers and activations overridden (0 for a plain function, whose
        ReLU ops the compiled gradient overrides while tracing).
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


def _gradient_body(model, layer_name: str | None, mode: str, rule: str | None,
                   preprocess=None) -> Callable:
    """Body of the compiled ``(images, target) -> d score / d images``.

    With a ``rule``, the forward pass is traced under the graph's ``gradient_override_map``
    (every ``Relu``/``Relu6`` op back-propagates with the rule) and differentiated with
    ``tf.gradients``, which honours that map (a ``GradientTape`` looks gradients up by op type
    and would not).
    """
    features = feature_model(model, [layer_name], preprocess) if layer_name else None
    logits_fn = None if layer_name else logits_model(model, preprocess)

    def total_score(images, target):
        if features is None:
            score = class_scores(logits_fn(images), target)
        else:
            score = _unit_scores(features(images)[0][0], mode, target)
        return tf.reduce_sum(score)  # examples are independent: per-example gradients

    def body(images, target):
        if rule is None:
            with tf.GradientTape() as tape:
                tape.watch(images)
                total = total_score(images, target)
            return require_gradient(tape.gradient(total, images), model)
        graph = tf.compat.v1.get_default_graph()
        overrides = {op: _op_gradient_name(rule, op) for op in _RELU_OPS}
        with graph.gradient_override_map(overrides):
            total = total_score(images, target)
        _check_every_relu_reached(graph, rule)
        return require_gradient(tf.gradients(total, images)[0], model)

    return body


def _check_every_relu_reached(graph, rule: str) -> None:
    """ValueError naming the ``Relu`` ops the override map cannot reach; a warning when the
    traced model has no ReLU at all (the rule then equals the plain gradient)."""
    definition = graph.as_graph_def()
    nodes = list(definition.node) + [node for function in definition.library.function
                                     for node in function.node_def]
    relus = [node for node in nodes if node.op in _RELU_OPS]
    missed = [node.name for node in relus if "_gradient_op_type" not in node.attr]
    if missed:
        raise ValueError(f"model: the {rule} rule cannot reach the ReLU op(s) {missed} (traced "
                         "in a nested tf.function, loop or branch); call the model's layers "
                         "directly, without an inner tf.function")
    custom = any(node.op == "IdentityN" and "_gradient_op_type" in node.attr for node in nodes)
    if not relus and not custom:
        warnings.warn(f"no ReLU found in the model: the {rule} gradient equals the plain "
                      "gradient", stacklevel=2)


def _validate_unit(unit_index, acts_shape: tuple, layer_name: str):
    """``(mode, target tensor)`` for ``unit_index`` on a layer whose output has ``acts_shape``."""
    if unit_index is None:
        return "strongest", tf.constant(0, tf.int32)
    channel, position = resolve_unit(unit_index, acts_shape, layer_name)
    if position is None:
        return "channel", tf.constant(channel, tf.int32)
    return "element", tf.constant(position, tf.int32)


def image_gradients(model, images, class_index=None, *, layer_name=None, unit_index=None,
                    rule: str | None = None, preprocess=None) -> np.ndarray:
    """``d S / d x`` for a batch, optionally with a modified ReLU backward ``rule``.

    ``S`` is the class score before softmax (``class_index`` int, one per example, or ``None``
    for the predicted class), or, with ``layer_name``, a unit of that layer (see
    :func:`visualization.guided.guided_backprop`), of the model applied to ``preprocess(x)``.

    Args:
        model: Keras model or callable returning scores (logits) or a model ending in a
            softmax/sigmoid (see :func:`visualization._model.logits_model`).
        images: ``(N, H, W, C)`` in the range ``preprocess`` expects (the model's own range
            without it).
        class_index: see above; not allowed together with ``layer_name``.
        layer_name: a layer of the model (nested models searched).
        unit_index: a channel (int: the sum of its feature map), one neuron (a tuple
            ``(row, col, channel)``, or ``(unit,)`` for a dense layer), or ``None`` (the
            strongest feature map of each example).
        rule: ``None`` (plain gradient), ``"guided"`` or ``"deconvnet"``.
        preprocess: see :func:`visualization._model.resolve_preprocess`; applied inside the
            gradient, so the result is ``d S / d x`` for the raw images.

    Returns:
        float32 array ``(N, H, W, C)``.

    Raises:
        ValueError: a bad class, layer or unit; a model not differentiable with respect to its
            input; a ReLU the rule cannot reach.
    """
    if rule is not None and rule not in RULES:
        raise ValueError(f"rule must be None or one of {RULES}, got {rule!r}")
    x = as_image_batch(images, model)
    prep = resolve_preprocess(preprocess)
    if layer_name is None:
        if unit_index is not None:
            raise ValueError(f"unit_index={unit_index!r} needs a layer_name")
        mode, target = "class", probe_classes(class_index, logits_model(model, prep), x)
    else:
        if class_index is not None:
            raise ValueError(f"give class_index ({class_index!r}) or layer_name "
                             f"({layer_name!r}), not both")
        acts = feature_model(model, [layer_name], prep)(x[:1])[0][0]
        mode, target = _validate_unit(unit_index, tuple(acts.shape), layer_name)
    compiled = compiled_for(model, _gradient_body, layer_name, mode, rule, prep)
    if rule is None:
        return compiled(x, target).numpy()
    with relu_override(model, rule):
        return compiled(x, target).numpy()
