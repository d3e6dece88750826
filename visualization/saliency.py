"""Image-specific class saliency (Simonyan, Vedaldi & Zisserman 2014, "Deep Inside
Convolutional Networks: Visualising Image Classification Models and Saliency Maps")."""

from __future__ import annotations

import numpy as np

from visualization._relu_override import image_gradients


def saliency_map(model, images, class_index=None, *, normalize: bool = False,
                 preprocess=None) -> np.ndarray:
    """Saliency ``M_ij = max_c |d S_k / d x_ijc|`` of the class score before softmax.

    One backward pass per batch: the gradient of the class score ``S_k`` (the logit, taken
    before a final softmax) with respect to the image, its absolute value, the maximum over the
    colour channels.

    Args:
        model: Keras model or callable mapping ``(N, H, W, C)`` to ``(N, K)`` scores; a final
            softmax / sigmoid of a Keras model in any form is skipped, a function or subclassed
            model returning probabilities is refused (ValueError: pass logits).
        images: ``(N, H, W, C)`` array or tensor, in the range the model (or ``preprocess``)
            expects.
        class_index: ``None`` (the predicted class of each image), an int, or one per example.
        normalize: if True, each map is rescaled to [0, 1] by ``(M - min M) / (max M - min M)``
            (an all-constant map becomes zeros).
        preprocess: applied inside the gradient (see
            :func:`visualization._model.resolve_preprocess`); the map is for the raw image.

    Returns:
        float32 array ``(N, H, W)``, ``M >= 0`` (in [0, 1] with ``normalize``).
    """
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be True or False, got {normalize!r}")
    gradients = image_gradients(model, images, class_index, preprocess=preprocess)
    saliency = np.max(np.abs(gradients), axis=-1)
    return _rescale_each(saliency) if normalize else saliency


def _rescale_each(maps: np.ndarray) -> np.ndarray:
    """Min-max rescale each ``(H, W)`` map of ``(N, H, W)`` to [0, 1]."""
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0).astype(np.float32)
