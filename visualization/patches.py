"""Maximally activating patches and the receptive fields they are cropped at.

Girshick et al. (2014), "Rich feature hierarchies for accurate object detection and semantic
segmentation": for one unit (channel) of a conv layer, show the dataset regions where it fires the
most. The region of a position is its receptive field, computed from the layer stack.

Receptive field arithmetic (Dumoulin & Visin 2016; Araujo et al. 2019), per spatial axis, from the
input (``size = 1, jump = 1, start = 0``) through each layer with kernel ``k``, stride ``s``,
dilation ``d`` and leading padding ``p``::

    k_eff = d * (k - 1) + 1
    size  <- size + (k_eff - 1) * jump
    start <- start - p * jump
    jump  <- jump * s

Output position ``i`` of the layer then sees input pixels ``[start + i * jump,
start + i * jump + size)`` (``start`` may be negative: the field reaches into the padding).
Stacked 3x3 convolutions with dilations 1, 2, 4 give fields of 3, 7 and 15 pixels (Yu & Koltun
2016, the lecture's dilated-convolution figure).
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import keras
import numpy as np

from visualization._model import all_layers, as_image_batch, find_layer
from visualization.activations import activation_maps

_POINTWISE = (
    "InputLayer", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
    "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "Rescaling", "Normalization", "Identity", "ActivityRegularization",
)
_MERGE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot")


class ReceptiveField(NamedTuple):
    """Receptive field of a layer's units in input pixels, per axis ``(rows, cols)``.

    Attributes:
        size: extent of one unit's field.
        jump: distance between the fields of neighbouring units (the product of the strides).
        start: first pixel of the field of unit ``(0, 0)``; negative where it covers padding.
    """

    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]

    def box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` of unit ``(row, col)``, bottom/right exclusive, not
        clipped to the image."""
        top = self.start[0] + row * self.jump[0]
        left = self.start[1] + col * self.jump[1]
        return top, left, top + self.size[0], left + self.size[1]


class TopPatches(NamedTuple):
    """Result of :func:`top_patches` (``k`` entries, strongest first).

    Attributes:
        patches: ``(k, size_h, size_w, C)`` image crops at the units' receptive fields.
        activations: ``(k,)`` the unit's activation at each location.
        locations: ``(k, 3)`` int ``(image index, row, col)`` in the layer's feature map.
        boxes: ``(k, 4)`` int ``(top, left, bottom, right)`` of each field clipped to the image.
        receptive_field: the layer's :class:`ReceptiveField`.
    """

    patches: np.ndarray
    activations: np.ndarray
    locations: np.ndarray
    boxes: np.ndarray
    receptive_field: ReceptiveField


# ---------------------------------------------------------------------------------------------
# Receptive fields
# ---------------------------------------------------------------------------------------------
def receptive_field(model_or_layers, layer_name: str,
                    input_size: tuple[int, int] | None = None) -> ReceptiveField:
    """Receptive field of the units of ``layer_name``, from the layers between it and the input.

    Supported layers: ``Conv2D``/``DepthwiseConv2D``/``SeparableConv2D`` (kernel, strides,
    dilation, ``"valid"``/``"same"`` padding), ``MaxPooling2D``/``AveragePooling2D``,
    ``ZeroPadding2D``, ``Cropping2D``, pointwise layers (activations, normalisation, dropout,
    rescaling) and merges (``Add``, ``Concatenate``, ...). For a Keras model the layer graph is
    followed from ``layer_name`` back to the input, through nested models (a
    ``keras.applications`` base in a Sequential); where branches merge (ResNet shortcuts) the
    field is the union of the branches' fields, ``start = min start_b``,
    ``size = max(start_b + size_b) - start``. A list of layers is read as a chain.

    TensorFlow's ``"same"`` padding puts ``floor(total / 2)`` pixels first, with
    ``total = max((ceil(n / s) - 1) * s + k_eff - n, 0)``, so it depends on the input size ``n``
    when the stride is above 1; that size is taken from the model or from ``input_size``.

    Args:
        model_or_layers: a Keras model, or a list of layers forming a chain (in order).
        layer_name: the layer whose units are asked for; it must keep spatial dimensions.
        input_size: ``(H, W)`` of the images, needed only when the model's input size is unknown
            and a ``"same"`` layer has a stride above 1.

    Returns:
        :class:`ReceptiveField` with ``size``, ``jump`` and ``start`` per axis.

    Raises:
        ValueError: unknown layer (the message lists the names), a layer without spatial
            dimensions on the way (``Flatten``, ``Dense``, global pooling), a layer whose effect
            on positions is not known, or branches with different strides.
    """
    extent = list(input_size) if input_size is not None else _input_size(model_or_layers)
    initial = tuple((1, 1, 0, n) for n in extent)  # per axis (size, jump, start, n)
    graph = None
    if not isinstance(model_or_layers, (list, tuple)):
        graph = _graph_state(model_or_layers, layer_name, initial)
    if graph is None:
        graph = initial
        for layer in _layer_stack(model_or_layers, layer_name):  # a chain: merges refused
            graph = tuple(_through(layer, axis, *graph[axis], layer_name) for axis in (0, 1))
    size, jump, start, _ = zip(*graph)
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))


class _NoGraph(Exception):
    """The model has no usable layer graph (subclassed model, layer called several times)."""


def _graph_state(model, layer_name: str, initial):
    """State at ``layer_name`` following the Keras layer graph, or ``None`` without a graph."""
    target = find_layer(model, layer_name)  # raises with the list of names
    containers = _containers(model, target)
    try:
        if len(getattr(model, "inputs", None) or []) != 1:
            raise _NoGraph
        mapping = {id(model.inputs[0]): initial}
        for outer, inner in itertools.pairwise(containers):
            mapping = {id(inner.inputs[0]): _call_state(outer, inner, mapping, layer_name)}
        if getattr(target, "layers", None):
            raise ValueError(f"layer_name {layer_name!r} is a model, not a layer; choose one of "
                             f"its layers: {[layer.name for layer in target.layers]}")
        return _state_of(target.output, mapping, {}, layer_name)
    except (_NoGraph, AttributeError):
        return None


def _containers(model, target) -> list:
    """``[model, ..., the nested model whose own layers include target]``."""
    path = [model]
    while not any(layer is target for layer in getattr(path[-1], "layers", [])):
        inner = [layer for layer in getattr(path[-1], "layers", []) if hasattr(layer, "layers")
                 and any(sub is target for sub in all_layers(layer))]
        if not inner:
            raise _NoGraph
        path.append(inner[0])
    return path


def _call_state(outer, inner, mapping, target_name):
    """State at the input of the nested model ``inner`` where ``outer``'s graph calls it."""
    for node in inner._inbound_nodes:
        try:
            return _merge([_state_of(t, mapping, {}, target_name) for t in node.input_tensors],
                          inner)
        except _NoGraph:
            continue
    raise _NoGraph


def _state_of(tensor, mapping, memo, target_name):
    """Receptive-field state of a symbolic tensor, walking back to a mapped input."""
    if id(tensor) in mapping:
        return mapping[id(tensor)]
    if id(tensor) not in memo:
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            raise _NoGraph
        op = history.operation
        node = op._inbound_nodes[history.node_index]
        if node.is_input:
            raise _NoGraph  # an input of another model: not on the path from our input
        state = _merge([_state_of(t, mapping, memo, target_name) for t in node.input_tensors],
                       op)
        if isinstance(op, keras.Model):
            state = _state_of(op.outputs[0], {id(op.inputs[0]): state}, {}, target_name)
        else:
            state = _apply(op, state, target_name)
        memo[id(tensor)] = state
    return memo[id(tensor)]


def _merge(states, op):
    """Union of the fields of merged branches (same jump), e.g. a residual ``Add``."""
    if len(states) == 1:
        return states[0]
    merged = []
    for axis in zip(*states):
        if len({jump for _, jump, _, _ in axis}) != 1:
            raise ValueError(f"layer {op.name!r} merges branches with different strides "
                             f"{[jump for _, jump, _, _ in axis]}; their fields do not align")
        start = min(st for _, _, st, _ in axis)
        end = max(st + size for size, _, st, _ in axis)
        merged.append((end - start, axis[0][1], start, axis[0][3]))
    return tuple(merged)


def _apply(layer, state, target):
    """State after ``layer``, axis by axis."""
    if type(layer).__name__ in _MERGE:
        return state  # the union was taken over the inputs
    return tuple(_through(layer, axis, *state[axis], target) for axis in (0, 1))


def _layer_stack(model_or_layers, layer_name: str) -> list:
    """The leaf layers from the input up to and including ``layer_name``, read as a chain."""
    if isinstance(model_or_layers, (list, tuple)):
        if not isinstance(layer_name, str):
            raise TypeError(f"layer_name must be a string, got {layer_name!r}")
        leaves = list(model_or_layers)
        names = [layer.name for layer in leaves]
        if layer_name not in names:
            raise ValueError(f"layer_name {layer_name!r} is not in the layers; available: {names}")
    else:
        find_layer(model_or_layers, layer_name)  # raises with the list of names
        leaves = [layer for layer in all_layers(model_or_layers)
                  if not isinstance(layer, keras.Model)]
        names = [layer.name for layer in leaves]
        if layer_name not in names:
            raise ValueError(f"layer_name {layer_name!r} is a model, not a layer; choose one of "
                             f"its layers: {names}")
    return leaves[:names.index(layer_name) + 1]


def _input_size(model) -> list:
    shape = getattr(model, "input_shape", None) if not isinstance(model, (list, tuple)) else None
    if isinstance(shape, tuple) and len(shape) == 4:
        return [shape[1], shape[2]]
    return [None, None]


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _through(layer, axis, size, jump, start, n, target):
    """``(size, jump, start, n)`` after ``layer`` along ``axis`` (0 rows, 1 cols)."""
    kind = type(layer).__name__
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        raise ValueError(f"layer {layer.name!r} uses channels_first; only channels_last is "
                         f"supported for receptive fields")
    if kind in _POINTWISE:
        return size, jump, start, n
    if kind in ("ZeroPadding2D", "Cropping2D"):
        before, after = _pair(layer.padding if kind == "ZeroPadding2D" else layer.cropping)[axis]
        sign = 1 if kind == "ZeroPadding2D" else -1
        n = None if n is None else n + sign * (before + after)
        return size, jump, start - sign * before * jump, n
    if hasattr(layer, "kernel_size") and kind not in ("Conv2DTranspose",):
        k, s = _pair(layer.kernel_size)[axis], _pair(layer.strides)[axis]
        d = _pair(getattr(layer, "dilation_rate", 1))[axis]
        return _window(layer, k, s, d, size, jump, start, n)
    if hasattr(layer, "pool_size") and "Global" not in kind:
        k = _pair(layer.pool_size)[axis]
        s = _pair(layer.strides if layer.strides is not None else layer.pool_size)[axis]
        return _window(layer, k, s, 1, size, jump, start, n)
    if kind in _MERGE:
        raise ValueError(f"layer {layer.name!r} ({kind}) merges branches; pass the model, not a "
                         f"list of layers, so that the graph is followed")
    what = "has no spatial dimensions" if kind in ("Flatten", "Dense", "Reshape") or \
        kind.startswith("Global") else "changes positions in a way not supported here"
    raise ValueError(f"layer_name {target!r}: layer {layer.name!r} ({kind}) on the way {what}; "
                     f"choose a convolution or pooling layer before it")


def _window(layer, k, s, d, size, jump, start, n):
    k_eff = d * (k - 1) + 1
    if layer.padding == "valid":
        pad, n_out = 0, None if n is None else (n - k_eff) // s + 1
    elif layer.padding == "same":
        if s > 1 and n is None:
            raise ValueError(f"input_size is needed: layer {layer.name!r} has 'same' padding and "
                             f"stride {s}, and the model's input size is unknown")
        n_out = None if n is None else math.ceil(n / s)
        pad = (k_eff - 1) // 2 if n is None else max((n_out - 1) * s + k_eff - n, 0) // 2
    else:
        raise ValueError(f"layer {layer.name!r}: padding {layer.padding!r} is not supported")
    return size + (k_eff - 1) * jump, jump * s, start - pad * jump, n_out


# ---------------------------------------------------------------------------------------------
# Top patches
# ---------------------------------------------------------------------------------------------
def top_patches(model, images, layer_name: str, unit_index: int, *, k: int = 9,
                one_per_image: bool = True, pad_value: float = 0.0,
                batch_size: int = 256) -> TopPatches:
    """The ``k`` image regions that activate unit ``unit_index`` of ``layer_name`` the most.

    The activation ``a[n, r, c] = f_l(x_n)[r, c, unit_index]`` is computed for every image and
    position (in batches); the ``k`` largest are kept (by default the best position of ``k``
    different images) and each is cropped at its receptive field ``[start + r * jump,
    start + r * jump + size)`` per axis. **Border:** where the field sticks out of the image, the
    crop is padded with ``pad_value`` (default 0, what ``"same"`` zero padding feeds the network),
    so every patch has the full field size and the unit's centre stays at the patch centre;
    ``boxes`` holds the part inside the image.

    Args:
        model: Keras model with images ``(N, H, W, C)`` as input.
        images: the dataset, ``(N, H, W, C)``.
        layer_name: a layer with spatial output ``(N, H', W', K)``.
        unit_index: the channel, in ``[0, K)``.
        k: number of patches, in ``[1, N]`` (``[1, N * H' * W']`` when ``one_per_image=False``).
        one_per_image: at most one patch per image.
        pad_value: value of the pixels outside the image.
        batch_size: images per forward pass.

    Returns:
        :class:`TopPatches`, strongest first.

    Raises:
        ValueError: unknown layer, layer without spatial dimensions, ``unit_index`` or ``k`` out
            of range.
    """
    x = as_image_batch(images, model)
    maps = activation_maps(model, x, layer_name, batch_size=batch_size)
    unit = _check_index(unit_index, maps.shape[-1], "unit_index")
    scores = maps[..., unit]  # (N, H', W')
    flat_index = _top_locations(scores, k, one_per_image)
    n, r, c = np.unravel_index(flat_index, scores.shape)
    field = receptive_field(model, layer_name, input_size=tuple(x.shape[1:3]))
    pixels = x.numpy()
    crops = [_crop(pixels[i], field.box(rr, cc), pad_value) for i, rr, cc in zip(n, r, c)]
    boxes = [_clip_box(field.box(rr, cc), pixels.shape[1:3]) for rr, cc in zip(r, c)]
    return TopPatches(np.stack(crops), scores[n, r, c], np.stack([n, r, c], axis=1),
                      np.asarray(boxes, dtype=np.int64), field)


def _check_index(value, upper: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if not 0 <= value < upper:
        raise ValueError(f"{name} must be in [0, {upper}), got {value!r}")
    return int(value)


def _top_locations(scores: np.ndarray, k: int, one_per_image: bool) -> np.ndarray:
    """Flat indices into ``scores`` (N, H', W') of the ``k`` largest, best first."""
    flat = scores.reshape(len(scores), -1)
    if one_per_image:
        best = np.argmax(flat, axis=1)
        _check_k(k, len(scores), "images (one patch per image)")
        order = np.argsort(-flat[np.arange(len(flat)), best], kind="stable")[:k]
        return order * flat.shape[1] + best[order]
    _check_k(k, flat.size, "positions")
    return np.argsort(-flat.ravel(), kind="stable")[:k]


def _check_k(k, available: int, what: str) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {k!r}")
    if not 1 <= k <= available:
        raise ValueError(f"k must be in [1, {available}] ({available} {what}), got {k!r}")


def _crop(image: np.ndarray, box, pad_value: float) -> np.ndarray:
    """``image[top:bottom, left:right]`` with the parts outside the image set to ``pad_value``."""
    top, left, bottom, right = box
    h, w = image.shape[:2]
    out = np.full((bottom - top, right - left, image.shape[2]), pad_value, dtype=image.dtype)
    t, lf, b, r = _clip_box(box, (h, w))
    if b > t and r > lf:
        out[t - top:b - top, lf - left:r - left] = image[t:b, lf:r]
    return out


def _clip_box(box, shape) -> tuple[int, int, int, int]:
    top, left, bottom, right = box
    return max(top, 0), max(left, 0), min(bottom, shape[0]), min(right, shape[1])
