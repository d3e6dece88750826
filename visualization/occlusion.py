"""Occlusion sensitivity (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional
Networks"): the class probability as a function of the position of a grey square."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from visualization._model import (
    as_image_batch,
    class_scores,
    compiled_for,
    logits_model,
    resolve_class_index,
    resolve_preprocess,
)


def occlusion_sensitivity(model, images, class_index=None, *, patch_size=8, stride=4,
                          fill_value=None, batch_size=256, preprocess=None) -> np.ndarray:
    """``P(class | image with square (i, j) set to fill_value)`` for every square position.

    The square covers rows ``i*stride : i*stride+patch_size`` and columns
    ``j*stride : j*stride+patch_size`` (all channels), for ``i, j`` while it fits:
    ``H' = (H - patch_size) // stride + 1``, ``W' = (W - patch_size) // stride + 1``. The
    occluded copies are built with a vectorised mask inside a compiled function and go through
    the model ``batch_size`` at a time. Probabilities are ``softmax`` of the scores before any
    final softmax of the model, so a model ending in softmax is not normalised twice; a model
    with a single output (a sigmoid, or one logit) gives ``P = sigmoid(z)`` of that output.

    Args:
        model: Keras model or callable mapping ``(N, H, W, C)`` to ``(N, K)`` scores, or a
            Keras model ending in a softmax / sigmoid.
        images: ``(N, H, W, C)``; non-square images keep their orientation.
        class_index: the class whose probability is mapped: ``None`` (the predicted class of
            the unoccluded image), an int, or one per example (pass the true labels when you
            have them: Zeiler & Fergus map the probability of the correct class).
        patch_size: side of the square in pixels, ``1 <= patch_size <= min(H, W)``.
        stride: step between square positions in pixels, ``>= 1``.
        fill_value: value written into the square: a number, one number per channel, or
            ``None`` for the mean of ``images`` per channel (grey for a dataset of natural
            images; give the dataset's mean when ``images`` are a few examples).
        batch_size: occluded copies per model call, ``>= 1``.
        preprocess: applied to the occluded copies before the model (see
            :func:`visualization._model.resolve_preprocess`); ``fill_value`` is raw.

    Returns:
        float32 array ``(N, H', W')`` of probabilities in [0, 1].
    """
    x = as_image_batch(images, model)
    height, width = int(x.shape[1]), int(x.shape[2])
    _check_positive_int(patch_size, "patch_size")
    _check_positive_int(stride, "stride")
    _check_positive_int(batch_size, "batch_size")
    if patch_size > min(height, width):
        raise ValueError(f"patch_size must be at most the image size ({height}x{width}), got "
                         f"{patch_size}")
    fill = _fill(fill_value, x)
    prep = resolve_preprocess(preprocess)
    classes = _classes(model, x, class_index, prep)
    return _occlude_all(model, x, classes, patch_size, stride, fill, batch_size, prep)


def _fill(fill_value, x: tf.Tensor) -> tf.Tensor:
    """The ``(C,)`` fill: ``fill_value`` broadcast to the channels, or the per-channel mean."""
    channels = int(x.shape[-1])
    if fill_value is None:
        return tf.reduce_mean(x, axis=[0, 1, 2])
    values = np.asarray(fill_value)
    if values.dtype == bool or not np.issubdtype(values.dtype, np.number):
        raise TypeError(f"fill_value must be a number or one per channel, got {fill_value!r}")
    if values.ndim > 1 or (values.ndim == 1 and values.shape[0] not in (1, channels)):
        raise ValueError(f"fill_value must be a number or {channels} numbers (one per "
                         f"channel), got {fill_value!r}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"fill_value must be finite, got {fill_value!r}")
    return tf.constant(np.broadcast_to(values, (channels,)), tf.float32)


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _classes(model, x: tf.Tensor, class_index, prep) -> tf.Tensor:
    """Resolved classes ``(N,)``: the unoccluded prediction when ``class_index`` is None."""
    scores = logits_model(model, prep)
    logits = scores(x) if class_index is None else scores(x[:1])
    if class_index is None:
        return resolve_class_index(None, logits)
    return resolve_class_index(class_index, tf.zeros((x.shape[0], logits.shape[-1])))


def _occlude_all(model, x, classes, patch_size, stride, fill, batch_size, prep) -> np.ndarray:
    """All ``N * H' * W'`` occluded copies, ``batch_size`` per compiled call."""
    n, height, width = (int(d) for d in x.shape[:3])
    rows = np.arange(0, height - patch_size + 1, stride)
    cols = np.arange(0, width - patch_size + 1, stride)
    image_idx, top, left = (a.ravel().astype(np.int32) for a in
                            np.meshgrid(np.arange(n), rows, cols, indexing="ij"))
    compiled = compiled_for(model, _occluded_probability_body, prep)
    constants = (classes, tf.constant(patch_size, tf.int32), fill)
    probs = [compiled(x, image_idx[s:s + batch_size], top[s:s + batch_size],
                      left[s:s + batch_size], *constants).numpy()
             for s in range(0, image_idx.size, batch_size)]
    return np.concatenate(probs).reshape(n, rows.size, cols.size)


def _occluded_probability_body(model, prep) -> Callable:
    """Compiled ``(images, image_idx, top, left, classes, patch, fill) -> (B,)`` probabilities."""
    logits_fn = logits_model(model, prep)

    def body(images, image_idx, top, left, classes, patch, fill):
        copies = tf.gather(images, image_idx)
        rows = tf.range(tf.shape(images)[1])[None, :, None]
        cols = tf.range(tf.shape(images)[2])[None, None, :]
        inside = ((rows >= top[:, None, None]) & (rows < top[:, None, None] + patch)
                  & (cols >= left[:, None, None]) & (cols < left[:, None, None] + patch))
        copies = tf.where(inside[..., None], fill, copies)
        probs = _probabilities(logits_fn(copies))
        return class_scores(probs, tf.gather(classes, image_idx))

    return body


def _probabilities(logits: tf.Tensor) -> tf.Tensor:
    """``softmax(z)`` of ``(N, K)`` scores; ``sigmoid(z)`` for a single output ``(N, 1)``."""
    if logits.shape[-1] == 1:
        return tf.sigmoid(logits)
    return tf.nn.softmax(logits, axis=-1)
