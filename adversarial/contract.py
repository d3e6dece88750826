"""The one model/input contract of the attacks, adversarial training, evaluation and visualisations.

Every public function of :mod:`adversarial` and :mod:`visualization` accepts "any callable that
maps a batch to class scores" (a Keras 3 model, a tf-keras model, a subclassed model, a plain
function) and reads images and labels in the forms people have. This module holds, once, the
rules for calling such a model and for reading its inputs:

* :func:`call_model`: always in inference mode (dropout off, batch-norm moving statistics).
* :func:`final_activation` and :func:`scores_fn`: the scores BEFORE a final softmax/sigmoid, in
  every form the softmax can take (``activation="softmax"``, ``keras.activations.softmax``,
  ``tf.nn.softmax``, ``keras.ops.softmax``, ``Softmax``/``Activation``/``Lambda`` layers, at the
  end of nested models), read without modifying the model; opaque models returning probability
  rows are recognised by their outputs. Attacking probabilities instead of logits makes the
  margin loss and the cross entropy saturate and reports robustness that is not there.
* :func:`parse_labels`: THE label parser (``(N,)``, Keras-style ``(N, 1)`` columns, one-hot or
  probability rows, a scalar), with range checks.
* :func:`check_input_range`: images outside the attack's ``[clip_value_min, clip_value_max]``
  (uint8 pixels or ``[-1, 1]`` images with the default ``[0, 1]``) are refused, not crushed.
* :func:`require_input_gradient`: a model without an input gradient is an error, not zeros.
* The argument validators (:func:`check_real`, :func:`check_int`, :func:`check_choice`,
  :func:`check_clip_range`, :func:`check_norm`): every message names the argument and shows the
  value, ``f"{name} must be ..., got {value!r}"``.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import types
import weakref
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "FINAL_ACTIVATIONS",
    "NORMS",
    "PROBABILITY_MODES",
    "Scores",
    "accepts_training_flag",
    "as_image_tensor",
    "call_model",
    "check_choice",
    "check_clip_range",
    "check_input_range",
    "check_int",
    "check_norm",
    "check_real",
    "clear_scores_cache",
    "final_activation",
    "final_layer",
    "model_fingerprint",
    "parse_labels",
    "require_input_gradient",
    "scores_fn",
]

FINAL_ACTIVATIONS = ("softmax", "sigmoid", "none", "unknown")
PROBABILITY_MODES = ("error", "log", "raw")
NORMS = (np.inf, 2)


# ----------------------------------------------------------------------------------------------
# Calling a model


def accepts_training_flag(model) -> bool:
    """Whether ``model(x, training=False)`` is a valid call.

    Keras layers and models (Keras 3 and tf-keras) take ``training``; a plain function takes it
    only if it names it or accepts ``**kwargs``.
    """
    if isinstance(model, keras.Layer):
        return True
    try:
        params = inspect.signature(model).parameters.values()
    except (TypeError, ValueError):  # builtins and C callables have no signature
        return False
    return any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in params)


def call_model(model, images, training_flag: bool | None = None):
    """``model(images)`` in inference mode (``training=False`` when the model accepts it).

    Args:
        model: a callable mapping a batch ``(N, ...)`` to scores ``(N, K)``.
        images: the batch, a tensor.
        training_flag: result of :func:`accepts_training_flag`, precomputed by callers that run
            the model in a loop; looked up when ``None``.
    """
    if training_flag is None:
        training_flag = accepts_training_flag(model)
    return model(images, training=False) if training_flag else model(images)


# ----------------------------------------------------------------------------------------------
# Argument validators: every message names the argument and shows the value.


def check_real(value, name: str, *, minimum: float | None = None, strict: bool = False,
               allow_inf: bool = False) -> float:
    """``float(value)`` after checking it is a real number ``>= minimum`` (``>`` if strict).

    NaN is always rejected, infinities unless ``allow_inf``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be {relation} {minimum}, got {value!r}")
    return value


def check_int(value, name: str, *, minimum: int = 1) -> int:
    """``int(value)`` after checking it is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_choice(value, name: str, choices):
    """``value`` after checking it is one of ``choices``."""
    try:
        ok = value in choices
    except TypeError:  # unhashable value against a set
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_clip_range(clip_value_min, clip_value_max) -> tuple[float, float]:
    """The valid input range; infinite bounds are allowed (no clipping on that side)."""
    low = check_real(clip_value_min, "clip_value_min", allow_inf=True)
    high = check_real(clip_value_max, "clip_value_max", allow_inf=True)
    if low > high:
        raise ValueError(
            f"clip_value_min must be <= clip_value_max, got clip_value_min={clip_value_min!r} "
            f"> clip_value_max={clip_value_max!r}")
    return low, high


def check_norm(norm) -> float:
    """``np.inf`` or ``2`` (also given as ``"inf"``/``"2"``)."""
    try:
        value = float(norm)
    except (TypeError, ValueError):
        raise ValueError(f"norm must be np.inf or 2, got {norm!r}") from None
    if value not in NORMS:
        raise ValueError(f"norm must be np.inf or 2, got {norm!r}")
    return value


# ----------------------------------------------------------------------------------------------
# Images


def as_image_tensor(images, name: str = "input_image") -> tf.Tensor:
    """A batch ``(N, ...)`` (numpy, list or tensor, any real or integer dtype) as float32.

    Raises:
        TypeError: not numeric (strings, objects, booleans).
        ValueError: rank < 1, NaN or infinite values, naming ``name``.
    """
    try:
        tensor = tf.convert_to_tensor(images)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric array or tensor, got {type(images)!r}") from err
    if not (tensor.dtype.is_floating or tensor.dtype.is_integer):
        raise TypeError(f"{name} must be a real or integer array, got dtype {tensor.dtype.name}")
    tensor = tf.cast(tensor, tf.float32)
    if tensor.shape.rank is None or tensor.shape.rank < 1:
        raise ValueError(f"{name} must be a batch (N, ...), got shape {tuple(tensor.shape)}")
    num_nan = int(tf.math.count_nonzero(tf.math.is_nan(tensor)))
    if num_nan:
        raise ValueError(f"{name} must not contain NaN, got {num_nan} NaN values "
                         f"in a batch of shape {tuple(tensor.shape)}")
    num_inf = int(tf.math.count_nonzero(tf.math.is_inf(tensor)))
    if num_inf:
        raise ValueError(f"{name} must be finite, got {num_inf} infinite values "
                         f"in a batch of shape {tuple(tensor.shape)}")
    return tensor


def _range_hint(low: float, high: float, dtype_name: str) -> str:
    """How to fix images found in ``[low, high]``: the usual pixel conventions by name."""
    if low >= 0 and high > 1.5 and high <= 255:
        kind = f"{dtype_name} pixels in [0, 255]" if dtype_name == "uint8" else "pixels in [0, 255]"
        return (f"looks like {kind}: pass clip_value_min=0, clip_value_max=255 (epsilon in pixel units, "
                f"e.g. 8 for 8/255), or scale the images to [0, 1] (x / 255)")
    if low < 0 and low >= -1 - 1e-3 and high <= 1 + 1e-3:
        return ("looks like preprocessed images in [-1, 1]: pass clip_value_min=-1, clip_value_max=1 "
                "(epsilon doubles: 8/255 in [0, 1] is 16/255 in [-1, 1])")
    return ("pass the range the images live in as clip_value_min/clip_value_max, or rescale "
            "the images into the given range")


def check_input_range(images, clip_value_min=0.0, clip_value_max=1.0,
                      name: str = "input_image") -> tf.Tensor:
    """The images as float32 after checking they lie in ``[clip_value_min, clip_value_max]``.

    The attacks clip every iterate to this range; images outside it would come back crushed into
    it (uint8 pixels or ``[-1, 1]`` images with the default ``[0, 1]``), so they are refused with
    the range found and the fix. Integer dtypes are accepted and cast to float32. A slack of
    ``1e-5`` of the range width absorbs rounding (``x / 255``).

    Raises:
        ValueError: values outside the range, NaN or infinite values, naming ``name``.
    """
    low, high = check_clip_range(clip_value_min, clip_value_max)
    dtype_name = getattr(getattr(images, "dtype", None), "name", None) or str(
        getattr(images, "dtype", type(images).__name__))
    tensor = as_image_tensor(images, name)
    if tensor.shape.num_elements() == 0:
        return tensor
    found_low, found_high = float(tf.reduce_min(tensor)), float(tf.reduce_max(tensor))
    slack = 1e-5 * (high - low) if math.isfinite(high - low) and high > low else 1e-6
    if found_low < low - slack or found_high > high + slack:
        raise ValueError(
            f"{name} must lie in [clip_value_min, clip_value_max] = [{low:g}, {high:g}], got "
            f"values in [{found_low:g}, {found_high:g}] (dtype {dtype_name}); "
            f"{_range_hint(found_low, found_high, dtype_name)}")
    return tensor


# ----------------------------------------------------------------------------------------------
# Labels


def _label_array(labels, name: str) -> np.ndarray:
    if isinstance(labels, (tf.Tensor, tf.Variable)):
        labels = labels.numpy()
    try:
        array = np.asarray(labels)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be class indices or one-hot rows, got "
                        f"{type(labels)!r}") from err
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must be numeric class indices or one-hot rows, got dtype "
                        f"{array.dtype} ({labels!r})" if array.size < 9 else
                        f"{name} must be numeric class indices or one-hot rows, got dtype "
                        f"{array.dtype}")
    return array


def _rows_to_indices(array: np.ndarray, name: str) -> np.ndarray:
    """``argmax`` of one-hot / probability rows after checking they are such rows."""
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite one-hot or probability rows, got non-finite "
                         f"values at rows {np.flatnonzero(~np.isfinite(array).all(1))[:8].tolist()}")
    sums = array.sum(axis=1)
    bad = (array.min(axis=1) < 0) | (np.abs(sums - 1) > 1e-3)
    if bad.any():
        rows = np.flatnonzero(bad)[:8].tolist()
        raise ValueError(
            f"{name} of shape {array.shape} must be one-hot or probability rows (non-negative, "
            f"summing to 1), got rows {rows} summing to {np.round(sums[rows], 4).tolist()}")
    return np.argmax(array, axis=1)


def _check_scalar_label(value: np.ndarray, num_classes: int | None, name: str) -> None:
    if not np.isfinite(value) or value % 1 != 0:
        raise ValueError(f"{name} must be an integer class index, got {value.item()!r}")
    if value < 0 or (num_classes is not None and value >= num_classes):
        bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
        raise ValueError(f"{name} must be in {bound}, got {value.item()!r}")


def parse_labels(labels, num_examples: int, num_classes: int | None,
                 name: str = "labels") -> np.ndarray:
    """THE label parser: class indices ``(N,)`` int32 from every usual form.

    Accepted: ``(N,)`` indices, Keras-style ``(N, 1)`` columns (what ``keras.datasets`` returns),
    one-hot or probability rows ``(N, K)`` (their argmax), or a scalar (the same class for every
    example, e.g. one target class). Integer-valued floats are accepted.

    Args:
        labels: the labels, numpy, list or tensor.
        num_examples: ``N``.
        num_classes: ``K``, the width of the model's scores; ``None`` skips the upper bound.
        name: the argument name used in the messages.

    Returns:
        int32 array ``(N,)`` with entries in ``[0, K)``.

    Raises:
        TypeError: non-numeric labels.
        ValueError: wrong length or shape, non-integer values, values outside ``[0, K)``;
            the message names ``name`` and shows the values and their positions.
    """
    array = _label_array(labels, name)
    if array.ndim == 0:
        _check_scalar_label(array, num_classes, name)
        array = np.full((num_examples,), array)
    elif array.ndim == 2 and array.shape[1] == 1:  # Keras-style (N, 1) column of indices
        array = array[:, 0]
    elif array.ndim == 2 and array.shape[1] > 1 and (num_classes is None
                                                    or array.shape[1] == num_classes):
        array = _rows_to_indices(array.astype(np.float64), name)
    if array.ndim != 1 or array.shape[0] != num_examples:
        width = f" or one-hot rows ({num_examples}, {num_classes})" if num_classes else ""
        raise ValueError(f"{name} must have shape ({num_examples},), ({num_examples}, 1){width}, "
                         f"got shape {np.shape(labels)}")
    if not np.all(np.isfinite(array)) or not np.all(np.equal(np.mod(array, 1), 0)):
        bad = np.flatnonzero(~np.isfinite(array) | (np.mod(array, 1) != 0))[:8]
        raise ValueError(f"{name} must be integer class indices, got {array[bad].tolist()} "
                         f"at positions {bad.tolist()}")
    upper = np.inf if num_classes is None else num_classes
    bad = (array < 0) | (array >= upper)
    if bad.any():
        where = np.flatnonzero(bad)[:8]
        bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
        raise ValueError(f"{name} must be in {bound}, got {array[where].tolist()} at positions "
                         f"{where.tolist()}" + (" (the model has only "
                                                f"{num_classes} classes)" if num_classes else ""))
    return array.astype(np.int32)


# ----------------------------------------------------------------------------------------------
# Gradients


def require_input_gradient(gradient, name: str = "model"):
    """``gradient`` after checking the input gradient exists.

    Raises:
        ValueError: ``gradient is None``: the model's output does not depend differentiably on
            its input (rounding, quantisation, ``stop_gradient``, a numpy detour).
    """
    if gradient is None:
        raise ValueError(
            f"{name} has no gradient with respect to its input (got None): its output is not "
            f"differentiable in the input (input rounding/quantisation, tf.stop_gradient, numpy "
            f"inside the model). Gradient attacks cannot run on it; attack a differentiable "
            f"surrogate (BPDA: replace the non-differentiable step by the identity in the "
            f"backward pass) or use a black-box attack (adversarial.square_attack)")
    return gradient


# ----------------------------------------------------------------------------------------------
# Final activation: softmax / sigmoid in all their forms


def _sublayers(layer) -> list:
    if hasattr(layer, "_flatten_layers"):
        return list(layer._flatten_layers(include_self=False, recursive=False))
    return list(getattr(layer, "layers", []) or [])


def final_layer(model):
    """The layer (or Keras operation) producing the model's single output, or ``None``.

    Descends into nested Sequential/Functional models; subclassed models and plain functions
    have no known output layer (``None``).
    """
    layer, seen = model, set()
    while id(layer) not in seen:
        seen.add(id(layer))
        if isinstance(layer, keras.Sequential) and layer.layers:
            layer = layer.layers[-1]
        elif (type(layer).__name__ in ("Functional", "Sequential", "Model")
              and hasattr(layer, "_nodes_by_depth")
              and len(getattr(layer, "outputs", None) or []) == 1):
            layer = layer.outputs[0]._keras_history[0]
        elif (getattr(layer, "layers", None) and hasattr(layer, "outputs")
              and len(getattr(layer, "outputs", None) or []) == 1
              and hasattr(layer.outputs[0], "_keras_history")):  # tf-keras Functional
            layer = layer.outputs[0]._keras_history[0]
        else:
            break
    return None if layer is model else layer


_PROBE = np.array([[0.3, -1.2, 2.0, 0.5], [-0.7, 0.1, 0.0, 1.5], [4.0, -3.0, 0.2, -0.1]],
                  np.float32)
_SOFTMAX_NAMES = ("softmax", "softmax_v2")
_SIGMOID_NAMES = ("sigmoid",)
_LINEAR_NAMES = ("linear",)


def _known_functions():
    softmax = {id(f) for f in (keras.activations.softmax, keras.ops.softmax, tf.nn.softmax,
                               tf.math.softmax)}
    sigmoid = {id(f) for f in (keras.activations.sigmoid, keras.ops.sigmoid, tf.nn.sigmoid,
                               tf.math.sigmoid, tf.sigmoid)}
    return softmax, sigmoid


def _probe_function(fn) -> str:
    """``"softmax"``/``"sigmoid"``/``"none"`` by comparing ``fn(z)`` on a fixed ``z``."""
    try:
        out = np.asarray(fn(tf.constant(_PROBE)), np.float64)
    except Exception:  # noqa: BLE001 - a function we cannot probe: decide by the outputs later
        return "unknown"
    if out.shape != _PROBE.shape:
        return "unknown"
    z = _PROBE.astype(np.float64)
    softmax = np.exp(z - z.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    if np.allclose(out, softmax, atol=1e-5):
        return "softmax"
    if np.allclose(out, 1 / (1 + np.exp(-z)), atol=1e-5):
        return "sigmoid"
    return "none"


def _classify_function(fn) -> str:
    """The kind of an activation function: by identity, by name, else by probing it."""
    if fn is None:
        return "none"
    softmax_ids, sigmoid_ids = _known_functions()
    if id(fn) in softmax_ids:
        return "softmax"
    if id(fn) in sigmoid_ids:
        return "sigmoid"
    name = getattr(fn, "__name__", None)
    if name in _SOFTMAX_NAMES:
        return "softmax"
    if name in _SIGMOID_NAMES:
        return "sigmoid"
    if name in _LINEAR_NAMES:
        return "none"
    if isinstance(fn, str):
        return {"softmax": "softmax", "sigmoid": "sigmoid"}.get(fn, "none")
    return _probe_function(fn)


def _layer_kind(layer) -> tuple[str, str | None]:
    """``(activation, how)``: how the pre-activation scores are read.

    ``how`` is ``"input"`` (the layer IS the activation: read its input), ``"activation"`` (a
    layer with an ``activation`` attribute: call it with a linear activation for the duration of
    one call) or ``None`` (nothing to strip).
    """
    if layer is None:
        return "unknown", None
    type_name = type(layer).__name__
    if type_name in ("Softmax", "Sigmoid"):  # keras.layers.Softmax or a keras.ops node
        return type_name.lower(), "input"
    if type_name == "Lambda" and hasattr(layer, "function"):
        kind = _classify_function(layer.function)
        return kind, ("input" if kind in ("softmax", "sigmoid") else None)
    if hasattr(layer, "activation") and (callable(layer.activation) or layer.activation is None):
        kind = _classify_function(layer.activation)
        if kind == "unknown":
            return kind, None
        if type_name == "Activation":
            return kind, ("input" if kind != "none" else None)
        return kind, ("activation" if kind != "none" else None)
    return "unknown", None


def final_activation(model) -> str:
    """The model's final activation: ``"softmax"``, ``"sigmoid"``, ``"none"`` or ``"unknown"``.

    Read from the structure of Sequential/Functional models (nested ones too): the activation of
    the output layer (a string, ``keras.activations``/``keras.ops``/``tf.nn`` function), a
    ``Softmax`` layer, an ``Activation`` layer, a ``keras.ops.softmax`` node or a ``Lambda``
    whose function is a softmax (recognised by name or by probing it on fixed numbers).
    ``"unknown"``: subclassed models, plain functions and output layers of other types (their
    outputs are checked on the first call of :func:`scores_fn` instead).
    """
    return _layer_kind(final_layer(model))[0]


def model_fingerprint(model) -> tuple:
    """A hashable summary that changes when a user edits the model's head or its layers.

    Compiled functions are cached per model under this key, so editing the final activation
    (``model.layers[-1].activation = keras.activations.linear``) or swapping layers re-traces
    instead of reusing a stale trace.
    """
    layer = final_layer(model)
    activation = getattr(layer, "activation", None) if layer is not None else None
    function = getattr(layer, "function", None) if layer is not None else None
    layers = getattr(model, "layers", None)
    return (id(layer), id(activation), id(function), type(layer).__name__,
            len(layers) if isinstance(layers, list) else -1,
            tuple(id(x) for x in layers) if isinstance(layers, list) else (),
            len(getattr(model, "weights", ()) or ()))


@contextlib.contextmanager
def _linear_activation(layer):
    """Temporarily give ``layer`` a linear activation (restored whatever happens)."""
    original = layer.activation
    had_own = "activation" in layer.__dict__
    try:
        object.__setattr__(layer, "activation", keras.activations.linear)
        yield
    finally:
        if had_own:
            object.__setattr__(layer, "activation", original)
        else:
            object.__delattr__(layer, "activation")


@contextlib.contextmanager
def _recorded_input(layer, store: dict):
    """Temporarily wrap ``layer.call`` to record its first positional input."""
    had_own = "call" in layer.__dict__
    own = layer.__dict__.get("call")
    original = layer.call

    def call(*args, **kwargs):
        store["input"] = args[0] if args else next(iter(kwargs.values()))
        return original(*args, **kwargs)

    try:
        object.__setattr__(layer, "call", call)
        yield store
    finally:
        if had_own:
            object.__setattr__(layer, "call", own)
        else:
            object.__delattr__(layer, "call")


def _is_probability_rows(outputs: np.ndarray, dtype) -> bool:
    tolerance = 1e-3 if dtype in (tf.float32, tf.float64) else 1e-2
    if outputs.ndim != 2 or outputs.shape[0] == 0 or not np.all(np.isfinite(outputs)):
        return False
    if outputs.shape[1] == 1:  # one sigmoid probability per example
        return bool(np.all((outputs >= 0) & (outputs <= 1)))
    return bool(np.all(outputs >= -tolerance)
                and np.all(np.abs(outputs.sum(axis=1) - 1) <= tolerance))


class Scores:
    """Callable ``x -> (N, K)`` float32 scores before the model's final softmax/sigmoid.

    Built by :func:`scores_fn`; ``kind`` says where the scores come from: ``"logits"`` (the
    model's own outputs), ``"pre-activation"`` (read before a final softmax/sigmoid layer),
    ``"log-probabilities"`` (``log max(p, 1e-30)`` of probability rows, ``log p - log(1 - p)``
    for one sigmoid column) or ``"undecided"`` (an opaque model before its first eager call).
    """

    def __init__(self, model, probabilities: str, *, weak: bool = False):
        self._get_model = _weak_getter(model) if weak else (lambda: model)
        self.probabilities = probabilities
        self.training_flag = accepts_training_flag(model)
        self.layer = final_layer(model)
        self.activation, self.how = _layer_kind(self.layer)
        self.kind = "pre-activation" if self.how else (
            "undecided" if self.activation == "unknown" and probabilities != "raw" else "logits")

    def _outputs(self, images):
        return call_model(self._get_model(), images, self.training_flag)

    def __call__(self, images):
        if self.how == "activation":
            with _linear_activation(self.layer):
                return tf.cast(self._outputs(images), tf.float32)
        if self.how == "input":
            store: dict = {}
            with _recorded_input(self.layer, store):
                self._outputs(images)
            return tf.cast(store["input"], tf.float32)
        outputs = tf.cast(self._outputs(images), tf.float32)
        if self.kind == "undecided":
            self._decide(outputs)
        if self.kind == "log-probabilities":
            return _log_probabilities(outputs)
        if self.kind == "undecided":  # first call inside a graph: decide per batch
            return _log_probabilities_if_rows(outputs, self.probabilities)
        return outputs

    def _decide(self, outputs):
        if not tf.executing_eagerly() or not hasattr(outputs, "numpy"):
            return
        if not _is_probability_rows(outputs.numpy(), outputs.dtype):
            self.kind = "logits"
            return
        if self.probabilities == "error":
            raise ValueError(
                f"model returns probabilities (rows of non-negative numbers summing to 1, or one "
                f"sigmoid column in [0, 1]), got outputs such as "
                f"{np.round(outputs.numpy()[0], 4).tolist()}; attacks and saliency need the "
                f"scores before the softmax: pass a model that returns logits (e.g. "
                f"classifier_activation=None) or a callable returning logits; if these are "
                f"logits after all, pass probabilities='raw'")
        self.kind = "log-probabilities"


def _log_probabilities(outputs):
    """``log p`` of probability rows; ``log p - log(1 - p)`` (the logit) for one column."""
    if outputs.shape.rank == 2 and outputs.shape[1] == 1:
        p = tf.clip_by_value(outputs, 1e-30, 1.0 - 1e-7)
        return tf.math.log(p) - tf.math.log1p(-p)
    return tf.math.log(tf.maximum(outputs, 1e-30))


def _log_probabilities_if_rows(outputs, probabilities: str):
    """Graph-mode fallback of the probe: per batch, log-probabilities if they are rows."""
    sums = tf.reduce_sum(outputs, axis=1)
    rows = tf.logical_and(tf.reduce_all(outputs >= -1e-3),
                          tf.reduce_all(tf.abs(sums - 1.0) <= 1e-3))
    if probabilities == "error":
        tf.debugging.Assert(tf.logical_not(rows), ["model returns probabilities; pass a model "
                                                   "returning logits"])
        return outputs
    return tf.cond(rows, lambda: _log_probabilities(outputs), lambda: outputs)


_SCORES_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def scores_fn(model, *, probabilities: str = "error") -> Callable:
    """A callable ``x -> (N, K)`` float32: the model's scores before its final softmax/sigmoid.

    The model is never modified: a final ``Softmax``/``Activation``/``Lambda``/``keras.ops``
    softmax is skipped by reading its input during the call, and a layer with a softmax/sigmoid
    ``activation`` (``Dense``, ``Conv``) computes ``x W + b`` by running with a linear activation
    for the duration of the call. Opaque models (subclassed, functions) are checked on the
    first eager call: rows that are non-negative and sum to 1 (within 1e-3), or a single column in
    ``[0, 1]``, are probabilities.

    Since ``log softmax(z) = z - logsumexp(z)`` differs from ``z`` by one number per example,
    the cross entropy and the margin ``max_{j != y} s_j - s_y`` on log-probabilities EQUAL those
    on the logits, so attacking ``log p`` gives the logits model's results (up to the
    ``1e-30`` floor, reached only by probabilities below float32 resolution).

    Args:
        model: Keras model (Sequential, Functional, nested, subclassed, tf-keras) or a callable
            mapping a batch to ``(N, K)``.
        probabilities: what to do with an opaque model returning probabilities: ``"error"``
            (ValueError naming ``model``), ``"log"`` (use ``log max(p, 1e-30)``; one sigmoid
            column gives ``log p - log(1 - p)``) or ``"raw"`` (take the outputs as they are).

    Returns:
        a :class:`Scores` callable (cached per model and ``probabilities``); its ``kind`` says
        where the scores come from.
    """
    if not callable(model):
        raise TypeError(f"model must be callable (batch -> scores), got {type(model)!r}")
    check_choice(probabilities, "probabilities", PROBABILITY_MODES)
    key = (probabilities, model_fingerprint(model))
    owner = model.__self__ if isinstance(model, types.MethodType) else model
    try:
        per_model = _SCORES_CACHE.setdefault(owner, {}).setdefault(
            getattr(model, "__func__", None), {})
    except TypeError:  # not weak-referenceable
        return Scores(model, probabilities)
    if key not in per_model:
        for stale in [k for k in per_model if k[1] != key[1]]:  # an edited model
            del per_model[stale]
        per_model[key] = Scores(model, probabilities, weak=True)
    return per_model[key]


def clear_scores_cache(model=None) -> None:
    """Forget the analyses :func:`scores_fn` cached for ``model`` (or for every model)."""
    if model is None:
        _SCORES_CACHE.clear()
        return
    owner = model.__self__ if isinstance(model, types.MethodType) else model
    try:
        _SCORES_CACHE.pop(owner, None)
    except TypeError:
        pass


def _weak_getter(model):
    """A zero-argument getter of ``model`` holding it weakly (so caches never keep it alive)."""
    try:
        if isinstance(model, types.MethodType):
            return weakref.WeakMethod(model)
        return weakref.ref(model)
    except TypeError:
        return lambda: model
