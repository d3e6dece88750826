"""Image-specific class saliency (Simonyan, Vedaldi & Zisserman 2014, "Deep Inside
Convolutional Networks: Visualising Image Classification Models and Saliency Maps")."""

from __future__ import annotations

import numpy as np

from visualization._relu_override import image_gradients


def saliency_map(model, images, class_index=None, *, normalize: bool = False) -> np.ndarray:
    """Saliency ``M_ij = max_c |d S_k / d x_ijc|`` of the class score before softmax.

    One backward pass per batch: the gradient of the class score ``S_k`` (the logit, taken
    before a final softmax) with respect to the image, its absolute value, the maximum over the
    colour channels.

    Args:
        model: Keras model or callable mapping ``(N, H, W, C)`` to ``(N, K)`` scores or
            probabilities (a final softmax layer is skipped).
        images: ``(N, H, W, C)`` array or tensor, any value range the model expects.
        class_index: ``None`` (the predicted class of each image), an int, or one per example.
        normalize: if True, each map is rescaled to [0, 1] by ``(M - min M) / (max M - min M)``
            (an all-constant map becomes zeros).

    Returns:
        float32 array ``(N, H, W)``, ``M >= 0`` (in [0, 1] with ``normalize``).
    """
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be True or False, got {normalize!r}")
    saliency = np.max(np.abs(image_gradients(model, images, class_index)), axis=-1)
    return _rescale_each(saliency) if normalize else saliency


def _rescale_each(maps: np.ndarray) -> np.ndarray:
    """Min-max rescale each ``(H, W)`` map of ``(N, H, W)`` to [0, 1]."""
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0).astype(np.float32)
