"""The one compiled, batched core under Integrated Gradients and SmoothGrad.

Both methods average the gradient of a class score over many *perturbed samples* of each image:

* Integrated Gradients (Sundararajan et al. 2017): points ``x' + a_k (x - x')`` on the straight
  path from a baseline ``x'`` to the image, weighted by a quadrature rule ``w_k``;
* SmoothGrad (Smilkov et al. 2017): noisy copies ``x + eps``, ``eps ~ N(0, sigma^2)``, weight
  ``1 / m``.

:func:`sample_gradients` evaluates the ``N * m`` samples ``batch_size`` at a time inside ONE
``tf.function`` (a ``tf.while_loop`` over chunks), summing per image with
``tf.math.unsorted_segment_sum``: memory holds one chunk of samples, whatever ``m`` is. Every
number that changes between calls (path weights, noise scale, seed, ``batch_size``) enters as a
tensor, so calls with the same image shape reuse the compiled graph. The noise of sample ``k`` of
image ``n`` is a function of ``(seed, n, k)`` only (:func:`noisy_copies`), so results do not
depend on ``batch_size``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from visualization._model import (
    class_scores,
    compiled_for,
    logits_model,
    require_gradient,
    resolve_class_index,
    resolve_preprocess,
)

KINDS = ("path", "noise")
REDUCTIONS = ("gradient", "saliency")


def batched_scores(model, images: tf.Tensor, *, preprocess=None, batch_size: int = 256
                   ) -> np.ndarray:
    """Scores before the softmax ``(N, K)``, ``batch_size`` images per compiled call.

    One image goes through the model eagerly first, so that a model returning probabilities
    (which the compiled call could only stop with a graph assertion) gets the contract's
    ValueError asking for logits.
    """
    logits_model(model, preprocess=resolve_preprocess(preprocess))(images[:1])
    compiled = compiled_for(model, _scores_body, preprocess)
    return np.concatenate([compiled(images[s:s + batch_size]).numpy()
                           for s in range(0, int(images.shape[0]), batch_size)])


def _scores_body(model, preprocess) -> Callable:
    return logits_model(model, preprocess=resolve_preprocess(preprocess))


def resolve_classes(model, images: tf.Tensor, class_index, *, preprocess=None,
                    batch_size: int = 256) -> tf.Tensor:
    """The class of each image, fixed BEFORE any perturbation: ``None`` = predicted on the image.

    A perturbed sample must keep the clean image's class (the class predicted at a path point
    or on a noisy copy may differ), so the compiled core only ever receives explicit classes.

    Returns:
        int32 tensor ``(N,)``; ValueError/TypeError from :func:`resolve_class_index` otherwise.
    """
    if class_index is None:
        return resolve_class_index(None, batched_scores(model, images, preprocess=preprocess,
                                                        batch_size=batch_size))
    num_classes = int(batched_scores(model, images[:1], preprocess=preprocess).shape[-1])
    n = int(images.shape[0])
    return resolve_class_index(class_index, tf.zeros((n, num_classes)), num_classes)


@tf.function(reduce_retracing=True)
def noisy_copies(images, image_idx, sample_idx, sigma, seed):
    """``images[n] + sigma[n] * eps``, ``eps ~ N(0, 1)`` seeded by ``(seed + n, k)`` per sample.

    Args:
        images: ``(N, H, W, C)`` float32.
        image_idx: int32 ``(B,)`` image of each sample.
        sample_idx: int32 ``(B,)`` index ``k`` of each sample within its image.
        sigma: ``(N,)`` noise standard deviation per image.
        seed: int32 scalar.

    Returns:
        ``(B, H, W, C)`` noisy copies.
    """
    return _noisy(images, image_idx, sample_idx, sigma, seed)


def _noisy(images, image_idx, sample_idx, sigma, seed):
    seeds = tf.stack([seed + image_idx, sample_idx], axis=1)
    shape = tf.shape(images)[1:]
    noise = tf.vectorized_map(lambda s: tf.random.stateless_normal(shape, seed=s), seeds)
    return tf.gather(images, image_idx) + tf.gather(sigma, image_idx)[:, None, None, None] * noise


def _path_points(images, references, image_idx, sample_idx, alphas):
    """``x' + a_k (x - x')`` for each (image, step) pair of the chunk."""
    x, ref = tf.gather(images, image_idx), tf.gather(references, image_idx)
    return ref + tf.gather(alphas, sample_idx)[:, None, None, None] * (x - ref)


def _sample_body(model, kind: str, reduce: str, preprocess) -> Callable:
    """Compiled ``(images, references, classes, weights, alphas, sigma, seed, m, batch) ->
    (sum_k w_k f(g_k), sum_k w_k f(g_k)^2)`` per image, ``f`` the identity or ``max_c |.|``."""
    logits_fn = logits_model(model, preprocess=resolve_preprocess(preprocess))

    def gradients(points, classes):
        with tf.GradientTape() as tape:
            tape.watch(points)
            total = tf.reduce_sum(class_scores(logits_fn(points), classes))
        grad = require_gradient(tape.gradient(total, points), model)
        if reduce == "saliency":
            return tf.reduce_max(tf.abs(grad), axis=-1)
        return grad

    def body(images, references, classes, weights, alphas, sigma, seed, num_samples, batch):
        n = tf.shape(images)[0]
        total = n * num_samples

        def chunk(start, acc, acc_sq):
            idx = tf.range(start, tf.minimum(start + batch, total))
            image_idx, sample_idx = idx // num_samples, idx % num_samples
            if kind == "path":
                points = _path_points(images, references, image_idx, sample_idx, alphas)
            else:
                points = _noisy(images, image_idx, sample_idx, sigma, seed)
            f = gradients(points, tf.gather(classes, image_idx))
            w = tf.reshape(tf.gather(weights, sample_idx), [-1] + [1] * (f.shape.rank - 1))
            # segment sums have a dynamic first dimension; keep the accumulators' static shape so
            # the while_loop's shape invariant holds when the images' batch size is known
            acc = tf.ensure_shape(acc + tf.math.unsorted_segment_sum(w * f, image_idx, n), acc.shape)
            acc_sq = tf.ensure_shape(
                acc_sq + tf.math.unsorted_segment_sum(w * tf.square(f), image_idx, n), acc_sq.shape)
            return start + batch, acc, acc_sq

        shape = tf.shape(images) if reduce == "gradient" else tf.shape(images)[:3]
        zeros = tf.zeros(shape, tf.float32)
        _, acc, acc_sq = tf.while_loop(lambda start, *_: start < total, chunk,
                                       (tf.constant(0), zeros, zeros))
        return acc, acc_sq

    return body


def sample_gradients(model, images: tf.Tensor, classes: tf.Tensor, *, kind: str,
                     weights, alphas=None, references=None, sigma=None, seed: int = 0,
                     batch_size: int, reduce: str = "gradient", preprocess=None):
    """Weighted sums over perturbed samples of ``f(dS_c/dx)`` and of its square, per image.

    For image ``n`` and samples ``k = 0..m-1`` (``m = len(weights)``) this returns
    ``A_n = sum_k w_k f(g_nk)`` and ``B_n = sum_k w_k f(g_nk)^2`` with ``g_nk`` the gradient of
    the class score ``S_c`` (before softmax, after ``preprocess``) at sample ``k`` and ``f`` the
    identity (``reduce="gradient"``) or the saliency ``max_c |g|`` (``reduce="saliency"``).

    Args:
        model: Keras model or callable to scores (see :func:`visualization._model.logits_model`).
        images: float32 ``(N, H, W, C)``.
        classes: int32 ``(N,)`` explicit classes (see :func:`resolve_classes`).
        kind: ``"path"`` (samples ``x' + a_k (x - x')``; needs ``alphas`` and ``references``)
            or ``"noise"`` (samples ``x + sigma_n eps_nk``; needs ``sigma``).
        weights: ``(m,)`` weight of each sample.
        alphas: ``(m,)`` path positions in [0, 1].
        references: ``(N, H, W, C)`` baselines.
        sigma: ``(N,)`` noise standard deviations.
        seed: noise seed (int).
        batch_size: samples per chunk inside the compiled loop.
        reduce: ``"gradient"`` or ``"saliency"``.
        preprocess: see :func:`visualization._model.resolve_preprocess`.

    Returns:
        ``(A, B)`` numpy float32, each ``(N, H, W, C)`` (``(N, H, W)`` for ``"saliency"``).
    """
    if kind not in KINDS or reduce not in REDUCTIONS:
        raise ValueError(f"kind must be one of {KINDS} and reduce one of {REDUCTIONS}, got "
                         f"{kind!r}, {reduce!r}")
    weights = tf.constant(np.asarray(weights, np.float32))
    m = int(weights.shape[0])
    alphas = tf.zeros((m,)) if alphas is None else tf.constant(np.asarray(alphas, np.float32))
    references = images[:1] if references is None else tf.convert_to_tensor(references)
    sigma = tf.zeros((int(images.shape[0]),)) if sigma is None else tf.convert_to_tensor(
        sigma, tf.float32)
    compiled = compiled_for(model, _sample_body, kind, reduce, preprocess)
    acc, acc_sq = compiled(images, references, classes, weights, alphas, sigma,
                           tf.constant(seed, tf.int32), tf.constant(m, tf.int32),
                           tf.constant(batch_size, tf.int32))
    return acc.numpy(), acc_sq.numpy()
