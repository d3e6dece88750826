"""Shared model utilities of the visualisations: image batches, logits, layers and their outputs.

Every visualisation accepts any Keras model (Sequential, Functional, nested base models such as
``keras.applications`` inside a Sequential) or a plain callable mapping a batch to scores. These
helpers never change the caller's model: intermediate outputs are read by *tapping* a layer for
the duration of one call (its ``call`` is wrapped in a recorder and restored in a ``finally``),
and the scores before a final softmax are recomputed from the softmax's input.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from adversarial.contract import final_activation, require_input_gradient, scores_fn

__all__ = [
    "all_layers",
    "as_image_batch",
    "class_scores",
    "compiled_for",
    "ends_in_softmax",
    "feature_model",
    "find_layer",
    "logits_model",
    "probe_classes",
    "require_gradient",
    "resolve_class_index",
    "resolve_unit",
    "resolve_preprocess",
    "tapped_layers",
]


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------
def _model_image_shape(model) -> tuple | None:
    """``(H, W, C)`` the model expects (entries may be ``None``), or ``None`` when unknown."""
    try:
        shape = model.input_shape
    except (AttributeError, ValueError, TypeError):
        return None
    if isinstance(shape, list):  # several inputs: nothing to check against
        return None
    if shape is None or len(shape) != 4:
        return None
    return tuple(shape[1:])


def as_image_batch(images, model=None, name: str = "images") -> tf.Tensor:
    """A batch of images as a float32 tensor ``(N, H, W, C)``, checked against the model.

    Args:
        images: numpy array, tensor or nested list of shape ``(N, H, W, C)``. A single image
            ``(H, W, C)`` is not silently batched (add the axis yourself: ``x[None]``).
        model: optional; when its ``input_shape`` is known, ``H, W, C`` must match it.
        name: the argument name used in error messages.

    Returns:
        ``tf.Tensor`` float32 of shape ``(N, H, W, C)`` with ``N >= 1``.

    Raises:
        TypeError: ``images`` is not numeric.
        ValueError: wrong rank, an empty batch, or a size the model does not accept.
    """
    try:
        x = tf.convert_to_tensor(images)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric array of shape (N, H, W, C), got "
                        f"{type(images).__name__}") from err
    if not (x.dtype.is_floating or x.dtype.is_integer or x.dtype.is_bool):
        raise TypeError(f"{name} must be numeric, got dtype {x.dtype.name}")
    if x.shape.rank != 4:
        raise ValueError(f"{name} must have shape (N, H, W, C), got shape {tuple(x.shape)}"
                         + (" (a single image? add a batch axis: images[None])"
                            if x.shape.rank == 3 else ""))
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image, got shape {tuple(x.shape)}")
    expected = _model_image_shape(model) if model is not None else None
    if expected is not None:
        got = tuple(x.shape[1:])
        if any(e is not None and e != g for e, g in zip(expected, got)):
            raise ValueError(f"{name} have size {got} (H, W, C) but the model expects "
                             f"{expected}; got shape {tuple(x.shape)}")
    return tf.cast(x, tf.float32)


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------
def _sublayers(layer) -> list:
    """Direct sublayers of a layer or model (Keras 3 and tf-keras)."""
    if hasattr(layer, "_flatten_layers"):
        return list(layer._flatten_layers(include_self=False, recursive=False))
    return list(getattr(layer, "layers", []) or [])


def all_layers(model) -> list:
    """Every layer of a model, nested models included, depth first, each once."""
    found, seen, stack = [], set(), list(reversed(_sublayers(model)))
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        found.append(layer)
        stack.extend(reversed(_sublayers(layer)))
    return found


def find_layer(model, layer_name: str):
    """The layer called ``layer_name``, searched through nested models too.

    Raises:
        TypeError: ``layer_name`` is not a string.
        ValueError: no such layer; the message lists the available names.
    """
    if not isinstance(layer_name, str):
        raise TypeError(f"layer_name must be a string, got {layer_name!r}")
    layers = all_layers(model)
    for layer in layers:
        if layer.name == layer_name:
            return layer
    names = [layer.name for layer in layers]
    raise ValueError(f"layer_name {layer_name!r} is not a layer of the model; available: "
                     f"{names}")


@contextlib.contextmanager
def tapped_layers(layers: Sequence, record: str = "output") -> Iterator[dict]:
    """Temporarily wrap the ``call`` of ``layers`` to record their input or output.

    Yields a dict ``id(layer) -> tensor`` filled during calls inside the ``with``; the layers'
    ``call`` is restored afterwards, whatever happens. A layer called several times in one
    forward pass keeps its last value.
    """
    store: dict = {}
    patched = []
    try:
        for layer in layers:
            if id(layer) in store or any(p[0] is layer for p in patched):
                continue
            own = layer.__dict__.get("call", None)
            patched.append((layer, "call" in layer.__dict__, own))
            layer.call = _recording_call(layer.call, store, id(layer), record)
        yield store
    finally:
        for layer, had_own, own in reversed(patched):
            if had_own:
                layer.call = own
            else:
                object.__delattr__(layer, "call")


def _recording_call(original: Callable, store: dict, key: int, record: str) -> Callable:
    def call(*args, **kwargs):
        outputs = original(*args, **kwargs)
        store[key] = outputs if record == "output" else (args[0] if args else
                                                         next(iter(kwargs.values())))
        return outputs

    return call


# ---------------------------------------------------------------------------------------------
# Preprocessing, inside the gradient
# ---------------------------------------------------------------------------------------------
PREPROCESS_MODES = ("none", "caffe", "tf", "torch")


def preprocess_names() -> list[str]:
    """Every string :func:`resolve_preprocess` accepts: the modes and the ``keras.applications``
    modules that have a ``preprocess_input``."""
    modules = [name for name in dir(keras.applications) if not name.startswith("_")
               and hasattr(getattr(keras.applications, name), "preprocess_input")]
    return [*PREPROCESS_MODES, *sorted(set(modules) - {"imagenet_utils"})]


def resolve_preprocess(preprocess) -> Callable | None:
    """The differentiable function ``x -> x'`` applied to the images before the model.

    Every visualisation takes ``preprocess``: the images it receives (and those it returns) stay
    in the raw range, e.g. ``[0, 255]`` for ImageNet models, and the gradient flows through the
    preprocessing to them.

    Args:
        preprocess: ``None`` or ``"none"`` (the model takes the images as they are);
            ``"caffe"`` (RGB to BGR, minus the ImageNet mean ``(103.939, 116.779, 123.68)``),
            ``"tf"`` (``x / 127.5 - 1``) or ``"torch"`` (``(x / 255 - mean) / std`` with the
            ImageNet ``mean = (0.485, 0.456, 0.406)``, ``std = (0.229, 0.224, 0.225)``), each on
            ``[0, 255]`` RGB images as in ``keras.applications.imagenet_utils``; the name of a
            ``keras.applications`` module (``"mobilenet_v2"``, ``"resnet50"``, ...: its
            ``preprocess_input``); or a callable of a float32 tensor built from TensorFlow /
            ``keras.ops`` operations.

    Returns:
        the callable, or ``None`` for no preprocessing. Strings give the same object every time
        (compiled functions keyed on it are reused).

    Raises:
        TypeError: neither a string, ``None`` nor a callable.
        ValueError: an unknown name (the message lists the accepted ones).
    """
    if preprocess is None or callable(preprocess):
        return preprocess
    if not isinstance(preprocess, str):
        raise TypeError(f"preprocess must be None, a name or a callable, got {preprocess!r}")
    return _named_preprocess(preprocess)


@functools.lru_cache(maxsize=None)
def _named_preprocess(name: str) -> Callable | None:
    if name == "none":
        return None
    if name in PREPROCESS_MODES:
        return functools.partial(keras.applications.imagenet_utils.preprocess_input, mode=name)
    module = getattr(keras.applications, name, None) if not name.startswith("_") else None
    function = getattr(module, "preprocess_input", None)
    if function is None or name == "imagenet_utils":
        raise ValueError(f"preprocess must be one of {preprocess_names()} or a callable, got "
                         f"{name!r}")
    return function


def _with_preprocess(function: Callable, preprocess: Callable | None) -> Callable:
    if preprocess is None:
        return function
    return lambda x: function(tf.cast(preprocess(tf.identity(x)), tf.float32))


def require_gradient(gradient, model, name: str = "model"):
    """``gradient`` unless it is ``None`` (the model's output does not depend on its input);
    the error is :func:`adversarial.contract.require_input_gradient`'s."""
    del model
    require_input_gradient(gradient, name)
    return gradient


# ---------------------------------------------------------------------------------------------
# Scores before softmax
# ---------------------------------------------------------------------------------------------
def logits_model(model, preprocess=None) -> Callable:
    """A callable ``x -> scores before the final softmax or sigmoid`` (inference mode).

    The one model contract of the package, :func:`adversarial.contract.scores_fn`: a final
    softmax in any form (``activation="softmax"`` as a string or a function, ``tf.nn.softmax``,
    ``keras.ops.softmax``, a ``Softmax`` or ``Activation`` layer, a ``Lambda``, also at the end
    of a nested model) is skipped by reading its input, a ``Dense``/``Conv`` softmax or sigmoid
    head gives ``z = x W + b``, a single sigmoid output its logit ``z``; the user's model is not
    changed. A subclassed model or a function is probed on its first (eager) call: if it returns
    probability rows, ValueError asks for a model or callable returning logits.

    Args:
        model: Keras model or callable mapping ``(N, H, W, C)`` to ``(N, K)``.
        preprocess: applied to the images first (see :func:`resolve_preprocess`).

    Returns:
        callable mapping a float32 batch to the ``(N, K)`` scores.
    """
    return _with_preprocess(scores_fn(model), resolve_preprocess(preprocess))


def ends_in_softmax(model) -> bool:
    """Whether :func:`logits_model` reads ``model``'s scores before a final softmax or sigmoid."""
    return final_activation(model) in ("softmax", "sigmoid")


# ---------------------------------------------------------------------------------------------
# Intermediate activations
# ---------------------------------------------------------------------------------------------
def feature_model(model, layer_names: str | Sequence[str], preprocess=None) -> Callable:
    """A callable ``x -> ([activations of layer_names], logits)`` in one forward pass.

    Works for layers inside nested models (a ``keras.applications`` base in a Sequential):
    each named layer's output is recorded while the whole model runs; inside a
    ``GradientTape`` the activations are differentiable targets (Grad-CAM's ``dS/dA``).

    Args:
        model: Keras model (Sequential, Functional, subclassed, nested).
        layer_names: one name or a list of names (see :func:`find_layer`).
        preprocess: applied to the images first (see :func:`resolve_preprocess`).

    Returns:
        callable mapping ``(N, H, W, C)`` to ``(list of tensors, (N, K) scores before softmax)``.
    """
    names = [layer_names] if isinstance(layer_names, str) else list(layer_names)
    layers = [find_layer(model, name) for name in names]
    logits_fn = logits_model(model, preprocess)

    def features(x):
        with tapped_layers(layers) as store:
            logits = logits_fn(x)
        return [store[id(layer)] for layer in layers], logits

    return features


# ---------------------------------------------------------------------------------------------
# Class indices
# ---------------------------------------------------------------------------------------------
def resolve_class_index(class_index, logits, num_classes: int | None = None) -> tf.Tensor:
    """Class per example: ``None`` = predicted (argmax of ``logits``), an int, or one per example.

    Args:
        class_index: ``None``, an int, or a sequence/array of ``N`` ints.
        logits: ``(N, K)`` scores (only ``N`` and, for ``None``, the argmax are used).
        num_classes: ``K``; defaults to ``logits.shape[-1]``.

    Returns:
        int32 tensor ``(N,)``.

    Raises:
        TypeError: not an integer.
        ValueError: out of ``[0, num_classes)`` or not one per example.
    """
    logits = tf.convert_to_tensor(logits)
    n = int(logits.shape[0])
    k = int(num_classes if num_classes is not None else logits.shape[-1])
    if class_index is None:
        return tf.cast(tf.argmax(tf.reshape(logits, (n, -1)), axis=-1), tf.int32)
    values = np.asarray(class_index)
    if values.dtype == bool or not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"class_index must be an int or integers, got {class_index!r}")
    if values.ndim == 0:
        values = np.full((n,), int(values))
    elif values.shape != (n,):
        raise ValueError(f"class_index must be an int or one per example ({n}), got shape "
                         f"{values.shape}: {class_index!r}")
    bad = values[(values < 0) | (values >= k)]
    if bad.size:
        raise ValueError(f"class_index must be in [0, {k}), got {bad.tolist()}")
    return tf.constant(values, tf.int32)


# ---------------------------------------------------------------------------------------------
# Units of a layer: one convention for every method
# ---------------------------------------------------------------------------------------------
def resolve_unit(unit_index, acts_shape: tuple, layer_name: str,
                 name: str = "unit_index") -> tuple[int, tuple[int, ...] | None]:
    """``(channel, position)`` of one unit of a layer whose output is ``acts_shape``.

    The one convention of the package: an int is a CHANNEL (a whole feature map of a conv
    layer, a unit of a dense layer); a tuple of ints indexing every non-batch axis is ONE
    NEURON, ``(row, col, channel)`` for a conv layer (``(unit,)`` for a dense layer).
    Several units are a list of these (``[3, 3, 7]`` is three channels, ``(3, 3, 7)`` one
    neuron).

    Args:
        unit_index: an int or a tuple of ints, see above.
        acts_shape: the layer's output shape, batch axis first.
        layer_name: for the error messages.
        name: the argument name for the error messages.

    Returns:
        ``(channel, None)`` for a channel, ``(channel, full index without the batch axis)``
        for a neuron.

    Raises:
        TypeError: not an int or a tuple of ints.
        ValueError: a tuple of the wrong length or an index out of range.
    """
    per_example = tuple(int(d) for d in acts_shape[1:])
    is_int = isinstance(unit_index, (int, np.integer)) and not isinstance(unit_index, bool)
    is_tuple = isinstance(unit_index, tuple) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in unit_index)
    if not (is_int or is_tuple):
        raise TypeError(f"{name} must be an int (a channel) or a tuple of ints (one neuron, "
                        f"e.g. (row, col, channel)), got {unit_index!r}")
    if is_tuple and len(unit_index) != len(per_example):
        raise ValueError(f"{name} {unit_index!r} must index all {len(per_example)} non-batch "
                         f"axes of layer {layer_name!r} (output shape {per_example} per "
                         "example) to name one neuron; a list such as [3, 7] names several "
                         "channels")
    index = (int(unit_index),) if is_int else tuple(int(v) for v in unit_index)
    limits = per_example[-1:] if is_int else per_example
    if any(not 0 <= i < n for i, n in zip(index, limits)):
        raise ValueError(f"{name} {unit_index!r} is out of range for layer {layer_name!r} with "
                         f"output shape {per_example} per example (channels in [0, "
                         f"{per_example[-1]}))")
    return (index[0], None) if is_int else (index[-1], index)


# ---------------------------------------------------------------------------------------------
# Compiled functions, cached per model
# ---------------------------------------------------------------------------------------------
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled_for(model, make_body: Callable, *static) -> Callable:
    """A ``tf.function`` of ``make_body(model, *static)``, built once per model and ``static``.

    The cache holds the model weakly (the traced body only sees a weak reference), so it never
    keeps a user's model alive. Repeated shapes reuse the trace; ``reduce_retracing`` makes a
    new batch size generalise instead of retracing each time.

    Args:
        model: the model (any weak-referenceable callable).
        make_body: module-level function ``(model, *static) -> body``; called at trace time.
        static: hashable Python values fixed in the trace (layer names, rule names).
    """
    try:
        per_model = _COMPILED.setdefault(model, {})
    except TypeError:  # not weak-referenceable: compile without caching
        return tf.function(make_body(model, *static), reduce_retracing=True)
    key = (make_body, static)
    if key not in per_model:
        ref = weakref.ref(model)
        per_model[key] = tf.function(lambda *args: make_body(ref(), *static)(*args),
                                     reduce_retracing=True)
    return per_model[key]


def class_scores(logits: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
    """``S_n = logits[n, classes[n]]``; a class of ``-1`` means the predicted class (argmax).

    Args:
        logits: ``(N, K)`` scores.
        classes: int32 ``(N,)``, entries in ``[0, K)`` or ``-1``.

    Returns:
        ``(N,)`` scores.
    """
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
    classes = tf.where(classes < 0, predicted, classes)
    return tf.gather(logits, classes, axis=1, batch_dims=1)


def probe_classes(class_index, logits_fn: Callable, images: tf.Tensor) -> tf.Tensor:
    """Validated classes ``(N,)`` int32 for compiled code; ``-1`` stands for "predicted".

    Runs the model on the first image only (to learn ``K``), so the predicted class is left to
    the compiled function instead of costing a full extra forward pass.
    """
    num_classes = int(logits_fn(images[:1]).shape[-1])
    n = int(images.shape[0])
    if class_index is None:
        return tf.fill((n,), -1)
    return resolve_class_index(class_index, tf.zeros((n, num_classes)), num_classes)
