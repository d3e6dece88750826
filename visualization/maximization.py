"""Optimisation to the image: class model visualisation and neuron / filter maximisation.

Class model visualisation (Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks:
Visualising Image Classification Models and Saliency Maps", ICLR workshop 2014)::

    I* = argmax_I S_c(I) - lambda * ||I||_2^2

with ``S_c`` the score of class ``c`` BEFORE the softmax, from a zero image (lecture 000: feed
zeros, set the gradient of the scores to ``[0, ..., 1, ..., 0]``, back-prop to the image, update,
repeat). Neuron / filter maximisation (lecture 004)::

    I* = argmax_I mean(f_k(I)) - alpha * Omega(I),    I_{t+1} = I_t + eta * grad_I

with ``f_k`` the k-th feature map (or unit) of any layer. Both run on the shared compiled loop of
:mod:`visualization.ascent`, with the regularisers of Yosinski et al. (2015) switchable, and batch
several classes / units into one ascent.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from visualization import ascent
from visualization._model import (
    as_image_batch,
    feature_model,
    logits_model,
    resolve_class_index,
)


def class_model_visualization(model, class_index, *, steps: int = 200,
                              learning_rate: float = 0.05, l2_decay: float = 0.01,
                              blur_every: int = 0, blur_sigma: float = 0.5, jitter: int = 0,
                              norm_percentile: float = 0.0, contribution_percentile: float = 0.0,
                              value_range=None, image_shape=None, initial_images=None,
                              seed: int | None = None, return_history: bool = False):
    """Images that maximise class scores, ``argmax_I S_c(I) - lambda ||I||^2`` (Simonyan 2014).

    Gradient ascent from a "zero" image: 0, or the centre of ``value_range`` when given (for
    inputs in [0, 1] the zero image is black, where a ReLU network whose first-layer biases are
    all negative, like the digits CNN, has no gradient), plus seeded Gaussian noise of std 1% of
    the range (1e-2 without a range), with normalised steps (``learning_rate`` = mean absolute
    pixel change per step) and the L2 term as the decay ``I <- (1 - 2 eta lambda) I`` after each
    step; see :class:`visualization.ascent.Regularizers` for the Yosinski et al. options.

    Args:
        model: Keras model or callable ``(N, H, W, C) -> (N, K)``; a final softmax is skipped.
        class_index: an int or a sequence of ints in ``[0, K)``; one image per class, batched.
        steps: ascent steps > 0.
        learning_rate: ``eta`` > 0.
        l2_decay: ``lambda`` >= 0.
        blur_every, blur_sigma: Gaussian blur every k steps with this sigma (0 = off).
        jitter: random roll of up to this many pixels before each gradient (0 = off).
        norm_percentile: zero pixels of norm below this percentile (0 = off).
        contribution_percentile: zero pixels of contribution below this percentile (0 = off).
        value_range: ``(low, high)`` pixel range kept during the ascent, or ``None``.
        image_shape: ``(H, W, C)``; ``None`` = the model's input shape.
        initial_images: ``(N, H, W, C)`` start instead of the (near-)zero image.
        seed: seed of the jitter.
        return_history: also return the ``(steps, N)`` class scores along the ascent.

    Returns:
        ``(N, H, W, C)`` float32 numpy images (and the history with ``return_history``).
    """
    shape = _image_shape(model, image_shape)
    scores = ascent.cached_objective(model, ("logits",), lambda: logits_model(model))
    num_classes = int(scores(tf.zeros((1, *shape))).shape[-1])
    count = 1 if np.ndim(class_index) == 0 else len(class_index)
    classes = resolve_class_index(class_index, tf.zeros((count, num_classes)), num_classes)
    objective = ascent.cached_objective(model, ("class_score",),
                                        lambda: _class_score_objective(scores))
    start = _start_images(model, count, shape, initial_images, seed, value_range)
    regularizers = ascent.Regularizers(l2_decay, blur_every, blur_sigma, jitter, norm_percentile,
                                       contribution_percentile, value_range)
    return _ascend(objective, start, classes, regularizers, steps, learning_rate, seed,
                   return_history)


def neuron_maximization(model, layer_name: str, unit_index, *, steps: int = 200,
                        learning_rate: float = 0.05, l2_decay: float = 0.01, blur_every: int = 0,
                        blur_sigma: float = 0.5, jitter: int = 0, norm_percentile: float = 0.0,
                        contribution_percentile: float = 0.0, value_range=None, image_shape=None,
                        initial_images=None, seed: int | None = None,
                        return_history: bool = False):
    """Images that maximise a unit or feature map, ``argmax_I mean(f_k(I)) - alpha ||I||^2``.

    ``f_k`` is channel ``k`` (last axis) of the layer's output, averaged over the spatial
    positions for a conv layer, the unit itself for a dense layer. Starts, like
    :func:`class_model_visualization`, from a "zero" image plus 1% seeded noise;
    ``l2_decay`` is ``alpha`` with ``Omega = ||I||^2``; the other arguments are those of
    :func:`class_model_visualization`.

    Args:
        model: Keras model (layers inside nested models are found too).
        layer_name: name of the layer (ValueError lists the available names).
        unit_index: an int or a sequence of ints in ``[0, channels)``; one image per unit.

    Returns:
        ``(N, H, W, C)`` float32 numpy images (and the ``(steps, N)`` history of
        ``mean(f_k)`` with ``return_history``).
    """
    shape = _image_shape(model, image_shape)
    features = ascent.cached_objective(model, ("features", layer_name),
                                       lambda: feature_model(model, [layer_name]))
    channels = int(features(tf.zeros((1, *shape)))[0][0].shape[-1])
    units = _unit_indices(unit_index, channels)
    objective = ascent.cached_objective(model, ("unit_mean", layer_name),
                                        lambda: _unit_mean_objective(features))
    start = _start_images(model, int(units.shape[0]), shape, initial_images, seed, value_range)
    regularizers = ascent.Regularizers(l2_decay, blur_every, blur_sigma, jitter, norm_percentile,
                                       contribution_percentile, value_range)
    return _ascend(objective, start, units, regularizers, steps, learning_rate, seed,
                   return_history)


def _ascend(objective, start, targets, regularizers, steps, learning_rate, seed, return_history):
    """The shared loop for one target (class or unit) per image; the history on request."""
    images, history = ascent.gradient_ascent(objective, start, steps=steps,
                                             learning_rate=learning_rate, objective_args=(targets,),
                                             regularizers=regularizers, seed=seed)
    return (images, history) if return_history else images


def _class_score_objective(scores):
    def objective(images, classes):
        return tf.gather(scores(images), classes, axis=1, batch_dims=1)

    return objective


def _unit_mean_objective(features):
    def objective(images, units):
        activations = features(images)[0][0]
        unit = tf.gather(activations, units, axis=activations.shape.rank - 1, batch_dims=1)
        return tf.reduce_mean(tf.reshape(unit, [tf.shape(unit)[0], -1]), axis=1)

    return objective


def _unit_indices(unit_index, channels: int) -> tf.Tensor:
    values = np.atleast_1d(np.asarray(unit_index))
    if values.dtype == bool or not np.issubdtype(values.dtype, np.integer) or values.ndim != 1:
        raise TypeError(f"`unit_index` must be an int or a sequence of ints, got {unit_index!r}")
    bad = values[(values < 0) | (values >= channels)]
    if values.size == 0 or bad.size:
        raise ValueError(f"`unit_index` must be in [0, {channels}) (the layer's channels), got "
                         f"{unit_index!r}")
    return tf.constant(values, tf.int32)


def _image_shape(model, image_shape) -> tuple[int, int, int]:
    """``(H, W, C)`` from ``image_shape`` or the model's input shape; ValueError otherwise."""
    if image_shape is None:
        shape = getattr(model, "input_shape", None)
        if not isinstance(shape, tuple) or len(shape) != 4 or None in shape[1:]:
            raise ValueError(f"`image_shape` is needed: the model's input shape is {shape!r}")
        return tuple(int(s) for s in shape[1:])
    ok = (isinstance(image_shape, (tuple, list)) and len(image_shape) == 3
          and all(isinstance(s, (int, np.integer)) and s > 0 for s in image_shape))
    if not ok:
        raise ValueError(f"`image_shape` must be (H, W, C) positive ints, got {image_shape!r}")
    return tuple(int(s) for s in image_shape)


def _start_images(model, count, shape, initial_images, seed, value_range):
    """The given start batch (checked), or the range's centre (0 without one) plus 1% noise,
    the same start for every image, so a batch gives the images of single runs."""
    if initial_images is not None:
        images = as_image_batch(initial_images, model, name="initial_images")
        if tuple(images.shape) != (count, *shape):
            raise ValueError(f"`initial_images` must have shape {(count, *shape)}, got "
                             f"{tuple(images.shape)}")
        return images
    rng = np.random.default_rng(seed)
    if value_range is not None:
        ascent.check_value_range(value_range)
    low, high = value_range if value_range is not None else (-0.5, 0.5)
    noise = 0.01 * (high - low) * rng.standard_normal(shape)  # one start for all: batch = single
    return np.repeat((0.5 * (low + high) + noise)[None], count, axis=0).astype(np.float32)
