"""Filters of a convolution layer as images ("visualize the filters/kernels (raw weights)").

The weights of the first layer of AlexNet look like oriented edges and colour blobs; deeper
filters are "not that interesting" but can be shown the same way, one grey image per input
channel (lecture 13, slides 4-6; FIT3181 week 6 "first layer visualization").
"""

from __future__ import annotations

import numpy as np

from visualization._model import find_layer

_SCALES = ("filter", "channel", "layer", None)


def filter_grid(model, layer_name: str, *, scale: str | None = "auto") -> np.ndarray:
    """The kernels of a 2-D convolution, one image per filter, rescaled for display.

    A ``Conv2D`` kernel ``W`` of shape ``(kh, kw, C, F)`` is returned as ``F`` images
    ``(kh, kw, C)``; a ``DepthwiseConv2D`` kernel ``(kh, kw, C, m)`` as ``C * m`` one-channel
    images. Min-max rescaling to [0, 1], ``(w - min) / (max - min)`` (0.5 where constant), over:

    - ``"filter"``: all values of one filter (keeps the colours of a first RGB layer);
    - ``"channel"``: each input channel of each filter on its own (one grey image per channel);
    - ``"layer"``: the whole layer (keeps relative magnitudes between filters);
    - ``None``: the raw weights.

    ``"auto"`` is ``"filter"`` when ``C`` is 1 or 3 (the first layer, shown in colour) and
    ``"channel"`` otherwise.

    Args:
        model: Keras model (nested models are searched).
        layer_name: a ``Conv2D`` (or subclass, ``SeparableConv2D``'s depthwise part) or
            ``DepthwiseConv2D`` layer.
        scale: see above.

    Returns:
        float32 array ``(F, kh, kw, C)``, in [0, 1] unless ``scale=None``.

    Raises:
        ValueError: unknown layer, a layer that is not a 2-D convolution, or a bad ``scale``.
    """
    if scale != "auto" and scale not in _SCALES:
        raise ValueError(f"scale must be one of 'auto', 'filter', 'channel', 'layer' or None, "
                         f"got {scale!r}")
    kernel = _kernel(find_layer(model, layer_name), layer_name)
    filters = np.transpose(kernel, (3, 0, 1, 2))  # (F, kh, kw, C)
    if scale == "auto":
        scale = "filter" if filters.shape[-1] in (1, 3) else "channel"
    axes = {"filter": (1, 2, 3), "channel": (1, 2), "layer": (0, 1, 2, 3)}.get(scale)
    return filters if axes is None else _minmax(filters, axes)


def _kernel(layer, layer_name: str) -> np.ndarray:
    kind = type(layer).__name__
    kernel = getattr(layer, "kernel", None)
    if kind in ("DepthwiseConv2D", "SeparableConv2D"):
        depthwise = layer.depthwise_kernel if kind == "SeparableConv2D" else kernel
        w = np.asarray(depthwise, dtype=np.float32)  # (kh, kw, C, m): one 2-D filter each
        return w.reshape(w.shape[0], w.shape[1], 1, -1)
    if kernel is None or len(kernel.shape) != 4 or "Transpose" in kind:
        shape = None if kernel is None else tuple(kernel.shape)
        raise ValueError(f"layer_name {layer_name!r} is a {kind} (kernel shape {shape}), not a "
                         f"2-D convolution with a (kh, kw, C, F) kernel")
    return np.asarray(kernel, dtype=np.float32)


def _minmax(values: np.ndarray, axes: tuple) -> np.ndarray:
    low = values.min(axis=axes, keepdims=True)
    span = values.max(axis=axes, keepdims=True) - low
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (values - low) / safe, 0.5).astype(np.float32)
