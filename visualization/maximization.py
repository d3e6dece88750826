"""Optimisation to the image: class model visualisation and neuron / filter maximisation.

Class model visualisation (Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks:
Visualising Image Classification Models and Saliency Maps", ICLR workshop 2014)::

    I* = argmax_I S_c(I) - lambda * ||I||_2^2

with ``S_c`` the score of class ``c`` BEFORE the softmax, from a zero image (lecture 000: feed
zeros, set the gradient of the scores to ``[0, ..., 1, ..., 0]``, back-prop to the image, update,
repeat). Neuron / filter maximisation (lecture 004)::

    I* = argmax_I f_k(I) - alpha * ||I||_2^2,    I_{t+1} = I_t + eta * grad_I

with ``f_k`` a channel of any layer (the mean of its feature map) or one neuron. The WHOLE
objective, penalty included, is what is ascended and recorded; it runs on the shared compiled
loop of :mod:`visualization.ascent`, with the regularisers of Yosinski et al. (2015) (blur,
jitter, clipping to the input range, small-norm / small-contribution zeroing) as options on top,
and batches several classes / units into one ascent.
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
    resolve_preprocess,
    resolve_unit,
)


def class_model_visualization(model, class_index, *, steps: int = 200,
                              learning_rate: float = 0.05, final_learning_rate=None,
                              l2_decay: float = 0.01, blur_every: int = 0, blur_sigma: float = 0.5,
                              jitter: int = 0, norm_percentile: float = 0.0,
                              contribution_percentile: float = 0.0, value_range=None,
                              image_shape=None, initial_images=None, preprocess=None,
                              seed: int | None = None, return_history: bool = False):
    """Images that maximise ``S_c(I) - lambda ||I||^2`` (Simonyan et al. 2014), one per class.

    Gradient ascent on the whole objective from a "zero" image: 0, or the centre of
    ``value_range`` when given (for inputs in [0, 1] the zero image is black, where a ReLU
    network whose first-layer biases are all negative, like the digits CNN, has no gradient),
    plus seeded Gaussian noise of std 1% of the range (1e-2 without a range). Steps are
    normalised, ``I <- I + eta_t g / mean|g|`` with ``g`` the gradient of the objective, and
    ``eta_t`` decays geometrically from ``learning_rate`` to ``final_learning_rate`` so that the
    ascent settles on the optimum (on a linear score ``w.I + b`` the optimum is
    ``I* = w / (2 lambda)``, worth ``||w||^2 / (4 lambda) + b``). Blur, jitter and the
    percentile zeroing of Yosinski et al. (2015) are options on top
    (:class:`visualization.ascent.Regularizers`), as is clipping to ``value_range``.

    Args:
        model: Keras model or callable ``(N, H, W, C) -> (N, K)``; scores are taken before a
            final softmax (or sigmoid).
        class_index: an int or a sequence of ints in ``[0, K)``; one image per class, batched.
        steps: ascent steps > 0.
        learning_rate: first ``eta`` > 0 (mean absolute pixel change per step).
        final_learning_rate: last ``eta``; ``None`` = ``learning_rate / 10``.
        l2_decay: ``lambda`` >= 0 of the objective.
        blur_every, blur_sigma: Gaussian blur every k steps with this sigma (0 = off).
        jitter: random roll of up to this many pixels before each gradient (0 = off).
        norm_percentile: zero pixels of norm below this percentile (0 = off).
        contribution_percentile: zero pixels of contribution below this percentile (0 = off).
        value_range: ``(low, high)`` pixel range kept during the ascent (the model's input
            range, e.g. ``(0, 1)``, or ``(0, 255)`` with ``preprocess``), or ``None``.
        image_shape: ``(H, W, C)``; ``None`` = the model's input shape.
        initial_images: ``(N, H, W, C)`` start instead of the (near-)zero image.
        preprocess: applied to the image inside the objective (see
            :func:`visualization._model.resolve_preprocess`); images stay raw.
        seed: seed of the start noise and the jitter.
        return_history: also return the ``(steps, N)`` objective ``S_c - lambda ||I||^2``
            along the ascent.

    Returns:
        ``(N, H, W, C)`` float32 numpy images (and the history with ``return_history``).
    """
    shape = _image_shape(model, image_shape)
    prep = resolve_preprocess(preprocess)
    scores = ascent.cached_objective(model, ("logits", prep), lambda: logits_model(model, prep))
    num_classes = int(scores(tf.zeros((1, *shape))).shape[-1])
    count = 1 if np.ndim(class_index) == 0 else len(class_index)
    classes = resolve_class_index(class_index, tf.zeros((count, num_classes)), num_classes)
    objective = ascent.cached_objective(model, ("class_score", prep),
                                        lambda: _penalised(_class_score_objective(scores)))
    start = _start_images(model, count, shape, initial_images, seed, value_range)
    return _ascend(objective, start, (classes,), l2_decay, _regularizers(
        blur_every, blur_sigma, jitter, norm_percentile, contribution_percentile, value_range),
        steps, learning_rate, final_learning_rate, seed, return_history)


def neuron_maximization(model, layer_name: str, unit_index, *, steps: int = 200,
                        learning_rate: float = 0.05, final_learning_rate=None,
                        l2_decay: float = 0.01, blur_every: int = 0, blur_sigma: float = 0.5,
                        jitter: int = 0, norm_percentile: float = 0.0,
                        contribution_percentile: float = 0.0, value_range=None, image_shape=None,
                        initial_images=None, preprocess=None, seed: int | None = None,
                        return_history: bool = False):
    """Images that maximise ``f_k(I) - alpha ||I||^2`` for units of a layer, one per unit.

    The unit convention of the package (:func:`visualization._model.resolve_unit`): an int
    ``k`` is a channel, ``f_k`` the mean of its feature map over the positions (the unit itself
    for a dense layer); a tuple ``(row, col, channel)`` is one neuron, ``f_k`` its activation.
    A list gives several units, one image each (``[3, 3, 7]``: three channels;
    ``[(3, 3, 7)]``: one neuron). The ascent is that of :func:`class_model_visualization`
    (``l2_decay`` is ``alpha``), whose other arguments apply.

    Args:
        model: Keras model (layers inside nested models are found too).
        layer_name: name of the layer (ValueError lists the available names).
        unit_index: a unit or a list of units, see above.

    Returns:
        ``(N, H, W, C)`` float32 numpy images (and the ``(steps, N)`` history of
        ``f_k - alpha ||I||^2`` with ``return_history``).
    """
    shape = _image_shape(model, image_shape)
    prep = resolve_preprocess(preprocess)
    features = ascent.cached_objective(model, ("features", layer_name, prep),
                                       lambda: feature_model(model, [layer_name], prep))
    acts_shape = tuple(features(tf.zeros((1, *shape)))[0][0].shape)
    channels, positions, is_neuron = _unit_targets(unit_index, acts_shape, layer_name)
    objective = ascent.cached_objective(model, ("unit", layer_name, prep),
                                        lambda: _penalised(_unit_objective(features)))
    start = _start_images(model, int(channels.shape[0]), shape, initial_images, seed,
                          value_range)
    return _ascend(objective, start, (channels, positions, is_neuron), l2_decay, _regularizers(
        blur_every, blur_sigma, jitter, norm_percentile, contribution_percentile, value_range),
        steps, learning_rate, final_learning_rate, seed, return_history)


def _regularizers(blur_every, blur_sigma, jitter, norm_percentile, contribution_percentile,
                  value_range) -> ascent.Regularizers:
    """Yosinski et al.'s options; the L2 term is in the objective, not a decay."""
    return ascent.Regularizers(0.0, blur_every, blur_sigma, jitter, norm_percentile,
                               contribution_percentile, value_range)


def _ascend(objective, start, targets, l2_decay, regularizers, steps, learning_rate,
            final_learning_rate, seed, return_history):
    """The shared loop for one target (class or unit) per image; the history on request."""
    ascent.check_real("l2_decay", l2_decay, minimum=0.0)
    images, history = ascent.gradient_ascent(
        objective, start, steps=steps, learning_rate=learning_rate,
        final_learning_rate=ascent._settling_rate(learning_rate, final_learning_rate),
        objective_args=(tf.constant(l2_decay, tf.float32), *targets),
        regularizers=regularizers, seed=seed)
    return (images, history) if return_history else images


def _penalised(objective):
    """``(images, lambda, *targets) -> A(I) - lambda ||I||^2`` per image: the slides' objective."""

    def penalised(images, l2_decay, *targets):
        penalty = tf.reduce_sum(tf.square(images), axis=[1, 2, 3])
        return objective(images, *targets) - l2_decay * penalty

    return penalised


def _class_score_objective(scores):
    def objective(images, classes):
        return tf.gather(scores(images), classes, axis=1, batch_dims=1)

    return objective


def _unit_objective(features):
    """Per image: the mean of channel ``k``'s map, or the single neuron at ``position``."""

    def objective(images, channels, positions, is_neuron):
        activations = features(images)[0][0]
        unit = tf.gather(activations, channels, axis=activations.shape.rank - 1, batch_dims=1)
        channel_mean = tf.reduce_mean(tf.reshape(unit, [tf.shape(unit)[0], -1]), axis=1)
        neuron = tf.gather_nd(activations, positions, batch_dims=1)
        return tf.where(is_neuron, neuron, channel_mean)

    return objective


def _unit_targets(unit_index, acts_shape: tuple, layer_name: str):
    """``(channels (N,), positions (N, rank - 1), is_neuron (N,))`` tensors, one row a unit."""
    units = unit_index if isinstance(unit_index, list) else [unit_index]
    if isinstance(unit_index, (range, np.ndarray)):
        units = [int(u) if np.ndim(u) == 0 else tuple(u) for u in unit_index]
    if not units:
        raise ValueError(f"unit_index must name at least one unit, got {unit_index!r}")
    resolved = [resolve_unit(unit, acts_shape, layer_name) for unit in units]
    rank = len(acts_shape) - 1
    positions = [p if p is not None else (0,) * rank for _, p in resolved]
    return (tf.constant([c for c, _ in resolved], tf.int32),
            tf.constant(positions, tf.int32, shape=(len(units), rank)),
            tf.constant([p is not None for _, p in resolved]))


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
