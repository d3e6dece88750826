"""Square Attack, L-inf (Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a
query-efficient black-box adversarial attack via random search", ECCV 2020).

Black-box: it only reads the model's scores, never a gradient, so it cannot be fooled by a model
that hides or breaks its gradients (input rounding, saturated softmax). Random search on the
margin ``L(x) = z_y - max_{j != y} z_j`` (minimised; the example is broken when ``L < 0``):

1. start at vertical stripes ``x + eps * s`` with one random sign ``s`` per column and channel;
2. each query changes a random ``h x h`` square of ``delta`` to ``+-eps`` (one random sign per
   channel), ``h = round(sqrt(p * H * W))`` clipped to ``[1, H - 1]``, and keeps the change if
   the margin went down. ``p`` follows the paper's schedule: ``p_init`` halved at 10, 50, 200,
   500, 1000, 2000, 4000, 6000 and 8000 of 10,000 (rescaled to ``num_queries``).

Every example draws its squares from ``(seed, example index, query)`` only, so results do not
depend on ``batch_size``. Examples already broken stop changing.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from adversarial._common import (
    DEFAULT_BATCH_SIZE,
    accepts_training_flag,
    aligned_call,
    attack_logits_fn,
    attack_objective,
    check_batch_size,
    check_clip_range,
    check_int,
    check_real,
    compiled,
    example_uniform,
    keep_better,
    prepare_batch,
    seed_tensor,
    weak_model,
)

_STREAM_SQUARE = 1 << 24  # random streams of Square, apart from the gradient attacks'
_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def square_fraction(p_init, query, num_queries):
    """The paper's ``p`` at ``query``: ``p_init / 2^j`` after the ``j``-th mark of ``_SCHEDULE``.

    Works on tensors (inside the compiled loop) and on Python numbers.
    """
    progress = tf.floor(tf.cast(query, tf.float32) / tf.cast(num_queries, tf.float32) * 10000.0)
    halvings = tf.reduce_sum(tf.cast(progress > tf.constant(_SCHEDULE, tf.float32), tf.float32))
    return p_init / 2.0**halvings


def margin(logits, labels):
    """``z_y - max_{j != y} z_j`` per example: negative when misclassified."""
    return -attack_objective(logits, labels, "margin", False)


def _signs(uniform):
    return tf.where(uniform < 0.5, -1.0, 1.0)


def square_run(model_fn, clean, labels, indices, epsilon, num_queries, p_init, seed, clip_min,
               clip_max):
    """The L-inf Square Attack on ``(N, H, W, C)``; returns ``(x_best, margin_best)``."""
    shape = tf.shape(clean)
    num, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    stripes = _signs(example_uniform(seed, indices, _STREAM_SQUARE, width * channels))
    stripes = tf.reshape(stripes, [num, 1, width, channels])
    x_best = tf.clip_by_value(clean + epsilon * stripes, clip_min, clip_max)
    margin_best = margin(model_fn(x_best), labels)
    rows, cols = tf.range(height), tf.range(width)
    pixels = tf.cast(height * width, tf.float32)

    def body(query, x_best, margin_best):
        side = tf.cast(tf.round(tf.sqrt(square_fraction(p_init, query, num_queries) * pixels)),
                       tf.int32)
        side = tf.clip_by_value(side, 1, tf.maximum(height - 1, 1))
        draw = example_uniform(seed, indices, _STREAM_SQUARE + 1 + tf.cast(query, tf.int64),
                               2 + channels)
        top = tf.cast(draw[:, 0] * tf.cast(height - side + 1, tf.float32), tf.int32)
        left = tf.cast(draw[:, 1] * tf.cast(width - side + 1, tf.float32), tf.int32)
        inside_rows = (rows[None] >= top[:, None]) & (rows[None] < top[:, None] + side)
        inside_cols = (cols[None] >= left[:, None]) & (cols[None] < left[:, None] + side)
        window = inside_rows[:, :, None, None] & inside_cols[:, None, :, None]
        signs = tf.reshape(_signs(draw[:, 2:]), [num, 1, 1, channels])
        candidate = _with_square(clean, x_best, window, epsilon * signs, clip_min, clip_max)
        unchanged = tf.reduce_all(tf.abs(candidate - x_best) < 1e-7, axis=[1, 2, 3])
        flipped = _with_square(clean, x_best, window, -epsilon * signs, clip_min, clip_max)
        candidate = keep_better(candidate, flipped, unchanged)
        value = margin(model_fn(candidate), labels)
        accept = (margin_best > 0) & (value < margin_best)
        return (query + 1, tf.ensure_shape(keep_better(x_best, candidate, accept), clean.shape),
                tf.where(accept, value, margin_best))

    _, x_best, margin_best = tf.while_loop(
        lambda query, _, m: (query < num_queries) & tf.reduce_any(m > 0), body,
        (tf.constant(1, tf.int32), x_best, margin_best))
    return x_best, margin_best


def _with_square(clean, x_best, window, value, clip_min, clip_max):
    delta = tf.where(window, value, x_best - clean)
    return tf.clip_by_value(clean + delta, clip_min, clip_max)


def _compiled_square(model, image_shape: tuple):
    key = ("square", image_shape, accepts_training_flag(model))
    vector = functools.partial(tf.TensorSpec, [None])
    scalar = functools.partial(tf.TensorSpec, [])
    signature = [tf.TensorSpec([None, *image_shape], tf.float32), vector(tf.int32),
                 vector(tf.int64), scalar(tf.float32), scalar(tf.int32), scalar(tf.float32),
                 tf.TensorSpec([2], tf.int64), scalar(tf.float32), scalar(tf.float32)]

    def build():
        get_model = weak_model(model)

        @tf.function(input_signature=signature)
        def run(clean, labels, indices, epsilon, num_queries, p_init, seed, clip_min, clip_max):
            return square_run(attack_logits_fn(get_model()), clean, labels, indices, epsilon,
                              num_queries, p_init, seed, clip_min, clip_max)

        return run

    return compiled(model, key, build)


def square_examples(model, images, labels, indices, *, epsilon: float, num_queries: int,
                    p_init: float, seed, clip_min: float, clip_max: float, batch_size: int):
    """Square on validated numpy arrays; returns ``(adversarial, success (N,) bool)``."""
    images = np.asarray(images, np.float32)
    run = _compiled_square(model, images.shape[1:])
    seed = seed if isinstance(seed, tf.Tensor) else seed_tensor(seed)
    adversarial, success = images.copy(), np.zeros(len(images), bool)
    for begin in range(0, len(images), batch_size):
        part = slice(begin, begin + batch_size)
        x_best, margin_best = aligned_call(
            run, 3, tf.constant(images[part]), tf.constant(np.asarray(labels[part], np.int32)),
            tf.constant(np.asarray(indices[part], np.int64)), tf.constant(epsilon, tf.float32),
            tf.constant(num_queries, tf.int32), tf.constant(p_init, tf.float32), seed,
            tf.constant(clip_min, tf.float32), tf.constant(clip_max, tf.float32))
        adversarial[part] = x_best.numpy()
        success[part] = margin_best.numpy() < 0
    return adversarial, success


def check_square_images(images) -> None:
    """Square needs image batches ``(N, H, W, C)`` with ``H, W >= 2``."""
    if images.shape.rank != 4 or images.shape[1] < 2 or images.shape[2] < 2:
        raise ValueError(f"input_image must be images (N, H, W, C) with H, W >= 2 for the "
                         f"Square Attack, got shape {tuple(images.shape)}")


def square_attack(model, input_image, input_label, epsilon, num_queries=1000, p_init=0.8,
                  seed=None, *, clip_value_min=0., clip_value_max=1.0,
                  batch_size=DEFAULT_BATCH_SIZE):
    """L-inf Square Attack (module docstring): black-box random search on the margin.

    Args:
        model: any callable mapping a batch to scores (only its outputs are read; a softmax
            head gives its log-probabilities, the same margin as the logits).
        input_image: ``(N, H, W, C)`` clean images in ``[clip_value_min, clip_value_max]``.
        input_label: the true classes, any form of :func:`adversarial.contract.parse_labels`.
        epsilon: L-inf radius, ``>= 0``.
        num_queries: model evaluations per example, ``>= 1`` (AutoAttack uses 5,000).
        p_init: initial fraction of the pixels in a square, in ``(0, 1]`` (0.8 in AutoAttack).
        seed: int; per-example random streams (results independent of ``batch_size``).
        clip_value_min, clip_value_max: valid input range.
        batch_size: examples per compiled call.

    Returns:
        ``tf.Tensor`` float32 shaped like ``input_image``: the lowest-margin point found.
    """
    if not callable(model):
        raise TypeError(f"model must be callable (batch -> logits), got {type(model)!r}")
    epsilon = check_real(epsilon, "epsilon", minimum=0.0)
    num_queries = check_int(num_queries, "num_queries")
    p_init = check_real(p_init, "p_init", minimum=0.0, strict=True)
    if p_init > 1:
        raise ValueError(f"p_init must be in (0, 1], got {p_init!r}")
    batch_size = check_batch_size(batch_size)
    clip_min, clip_max = check_clip_range(clip_value_min, clip_value_max)
    seed = seed_tensor(seed)
    images, labels, _ = prepare_batch(model, input_image, input_label, clip_min=clip_min,
                                      clip_max=clip_max)
    check_square_images(images)
    if epsilon == 0.0 or images.shape[0] == 0:
        return images
    adversarial, _ = square_examples(
        model, images.numpy(), labels.numpy(), np.arange(images.shape[0]), epsilon=epsilon,
        num_queries=num_queries, p_init=p_init, seed=seed, clip_min=clip_min, clip_max=clip_max,
        batch_size=batch_size)
    return tf.constant(adversarial)
