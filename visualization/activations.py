"""Activation maps: what a layer of the network computes for an image.

The lecture's "activation map visualization" (FIT3181 week 6; Zeiler & Fergus 2014): the output
``f_l(x)`` of a conv layer is a stack of ``K`` feature maps ``(H', W')``, one per filter, each
showing where in the image that filter responds.
"""

from __future__ import annotations

import numpy as np

from visualization._model import as_image_batch, feature_model


def layer_outputs(model, images, layer_name: str, *, batch_size: int = 256) -> np.ndarray:
    """``f_l(x)``: the output of ``layer_name`` for every image, computed in batches.

    Args:
        model: Keras model (nested base models are searched too).
        images: ``(N, H, W, C)`` numpy array or tensor, sized for the model.
        layer_name: name of any layer (see :func:`visualization._model.find_layer`).
        batch_size: images per forward pass, >= 1.

    Returns:
        float32 numpy array ``(N, ...)``, the layer's output shape per image.

    Raises:
        ValueError: unknown layer (the message lists the names), bad images or batch size.
    """
    x = as_image_batch(images, model)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    features = feature_model(model, [layer_name])
    chunks = [np.asarray(features(x[i:i + batch_size])[0][0], dtype=np.float32)
              for i in range(0, int(x.shape[0]), int(batch_size))]
    return np.concatenate(chunks, axis=0)


def activation_maps(model, images, layer_name: str, *, batch_size: int = 256) -> np.ndarray:
    """The ``K`` feature maps of a spatial layer for each image.

    Args:
        model: Keras model.
        images: ``(N, H, W, C)``.
        layer_name: a layer with spatial output (convolution, pooling, activation after them).
        batch_size: images per forward pass.

    Returns:
        float32 numpy array ``(N, H', W', K)``; ``[n, :, :, k]`` is the map of filter ``k``.

    Raises:
        ValueError: unknown layer, or a layer without spatial dimensions (``Dense``, ``Flatten``).
    """
    maps = layer_outputs(model, images, layer_name, batch_size=batch_size)
    if maps.ndim != 4:
        raise ValueError(f"layer_name {layer_name!r} has no spatial dimensions: its output has "
                         f"shape {(None,) + maps.shape[1:]}, expected (N, H', W', K)")
    return maps
