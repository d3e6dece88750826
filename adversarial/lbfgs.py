"""Box-constrained L-BFGS attack (Szegedy et al., "Intriguing properties of neural networks",
ICLR 2014).

For an image ``x`` and a target class ``l`` the paper looks for the smallest ``r`` with
``f(x + r) = l`` and ``x + r`` in ``[0, 1]^m``, approximated by

    minimise   c * |r| + loss_f(x + r, l)   subject to   x + r in [0, 1]^m

with box-constrained L-BFGS, and a line search over ``c > 0`` for the minimiser that still
reaches ``l``. A larger ``c`` weights the distortion more, so the search keeps, per example,
the successful minimiser of least distortion: it multiplies ``c`` by 10 while the minimiser
reaches the target (by 1/10 while it does not), then bisects ``c`` geometrically between the
largest success and the smallest failure.

Choices: ``|r|`` is the squared L2 norm ``||r||_2^2``, which is smooth at ``r = 0`` where
L-BFGS starts (``||r||_2`` has no gradient there) and traces the same distortion/loss
trade-off as ``c`` varies; ``loss_f`` is the softmax cross entropy of the logits. The
optimiser is scipy's L-BFGS-B on ``x + r`` directly (the box becomes simple bounds), with the
value and gradient from one compiled TensorFlow function.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import scipy.optimize
import tensorflow as tf

from adversarial._common import (
    attack_logits_fn,
    check_clip_range,
    check_int,
    check_real,
    compiled,
    prepare_batch,
    weak_model,
)
from adversarial.contract import require_input_gradient


class LBFGSResult(NamedTuple):
    """Outcome of :func:`lbfgs_attack` with ``return_info=True``, one entry per example."""

    adversarial: np.ndarray  # (N, ...) float32: least-distortion success, else the lowest-c try
    success: np.ndarray  # (N,) bool: argmax f(x_adv) == target
    c: np.ndarray  # (N,) float64: c of the returned minimiser
    distortion: np.ndarray  # (N,) float64: ||x_adv - x||_2


def _value_and_gradient_fn(model, image_shape):
    """Compiled ``(z, x, c, l) -> (c*||z-x||^2 + CE(f(z), l), gradient)`` for one image.

    ``f`` gives the attack logits (:func:`adversarial._common.attack_logits_fn`: the
    log-probabilities of a softmax model, whose cross entropy equals that of its logits).
    """

    def build():
        get_model = weak_model(model)
        spec = tf.TensorSpec((1, *image_shape), tf.float32)

        @tf.function(input_signature=[spec, spec, tf.TensorSpec([], tf.float32),
                                      tf.TensorSpec([1], tf.int32)])
        def value_and_gradient(candidate, clean, c, target):
            with tf.GradientTape() as tape:
                tape.watch(candidate)
                logits = attack_logits_fn(get_model())(candidate)
                loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits)
                value = c * tf.reduce_sum(tf.square(candidate - clean)) + tf.reduce_sum(loss)
            predicted = tf.argmax(logits, axis=1, output_type=tf.int32)[0]
            gradient = require_input_gradient(tape.gradient(value, candidate))
            return value, gradient, predicted

        # the concrete function skips tf.function's dispatch, ~7x faster per scipy evaluation
        return value_and_gradient.get_concrete_function()

    return compiled(model, ("lbfgs", image_shape), build)


def _minimise(fn, clean, target, c, bounds, max_iterations):
    """The L-BFGS-B minimiser ``x + r`` for one ``c``; returns ``(x + r, reached target)``."""
    shape = clean.shape
    c_tensor, target_tensor = tf.constant(c, tf.float32), tf.constant([target], tf.int32)

    def objective(flat):
        candidate = tf.constant(flat.reshape(shape), tf.float32)
        value, gradient, _ = fn(candidate, clean, c_tensor, target_tensor)
        return float(value), gradient.numpy().astype(np.float64).ravel()

    start = np.clip(clean.numpy().ravel().astype(np.float64), *_finite_or_none(bounds, np.inf))
    found = scipy.optimize.minimize(objective, start, jac=True, method="L-BFGS-B",
                                    bounds=[bounds] * start.size,
                                    options={"maxiter": max_iterations})
    candidate = tf.constant(found.x.reshape(shape), tf.float32)
    predicted = int(fn(candidate, clean, c_tensor, target_tensor)[2])
    return candidate.numpy()[0], predicted == target


def _finite_or_none(bounds, fill):
    return tuple(-fill if b is None and i == 0 else fill if b is None else b
                 for i, b in enumerate(bounds))


def _attack_one(fn, clean, target, c_init, search_steps, bounds, max_iterations):
    """The c search for one example; returns ``(x_adv, success, c, distortion)``."""
    best = None  # (distortion, x_adv, c) of the least-distortion success
    lowest = None  # (c, x_adv) of the most aggressive try, returned on failure
    c, c_success, c_failure = c_init, None, None
    for _ in range(search_steps):
        candidate, reached = _minimise(fn, clean, target, c, bounds, max_iterations)
        distortion = float(np.linalg.norm(candidate - clean.numpy()[0]))
        if lowest is None or c < lowest[0]:
            lowest = (c, candidate)
        if reached:
            if best is None or distortion < best[0]:
                best = (distortion, candidate, c)
            c_success = c if c_success is None else max(c_success, c)
        else:
            c_failure = c if c_failure is None else min(c_failure, c)
        if c_success is None:
            c = c / 10.0
        elif c_failure is None:
            c = c * 10.0
        else:
            c = math.sqrt(c_success * c_failure)
    if best is None:
        c, candidate = lowest
        return candidate, False, c, float(np.linalg.norm(candidate - clean.numpy()[0]))
    return best[1], True, best[2], best[0]


def lbfgs_attack(model, input_image, target_label, *, clip_value_min=0., clip_value_max=1.0,
                 c_init=1.0, search_steps=10, max_iterations=100, return_info=False):
    """Targeted minimal-distortion adversarial examples of Szegedy et al. (see module doc).

    Args:
        model: any callable mapping a batch to logits ``(N, K)`` (a softmax head is attacked
            through its log-probabilities); called with ``training=False`` when it accepts
            it, never modified.
        input_image: ``(N, ...)`` clean images in ``[clip_value_min, clip_value_max]``
            (values outside are refused with a ValueError).
        target_label: ``(N,)`` target classes, ``(N, K)`` one-hot rows, or one class for all.
        clip_value_min, clip_value_max: the box (``[0, 1]`` in the paper).
        c_init: first ``c > 0`` of the search.
        search_steps: L-BFGS runs per example (``>= 1``), each with a new ``c``.
        max_iterations: L-BFGS-B iterations per run (``>= 1``).
        return_info: also return success flags, ``c`` and distortions.

    Returns:
        ``(N, ...)`` float32 numpy adversarial images; with ``return_info=True`` an
        :class:`LBFGSResult` ``(adversarial, success, c, distortion)``. For an example where no
        ``c`` reached the target, the minimiser of the smallest ``c`` tried is returned and
        ``success`` is False.
    """
    if not callable(model):
        raise TypeError(f"model must be callable (batch -> logits), got {type(model)!r}")
    low, high = check_clip_range(clip_value_min, clip_value_max)
    c_init = check_real(c_init, "c_init", minimum=0.0, strict=True)
    search_steps = check_int(search_steps, "search_steps")
    max_iterations = check_int(max_iterations, "max_iterations")
    images, targets, _ = prepare_batch(model, input_image, target_label, clip_min=low,
                                       clip_max=high, label_name="target_label")
    targets = targets.numpy()
    fn = _value_and_gradient_fn(model, tuple(images.shape[1:]))
    bounds = (None if math.isinf(low) else low, None if math.isinf(high) else high)
    rows = [_attack_one(fn, images[i:i + 1], int(targets[i]), c_init, search_steps, bounds,
                        max_iterations) for i in range(images.shape[0])]
    adversarial = np.stack([r[0] for r in rows]) if rows else images.numpy()
    result = LBFGSResult(adversarial.astype(np.float32), np.array([r[1] for r in rows], bool),
                         np.array([r[2] for r in rows], np.float64),
                         np.array([r[3] for r in rows], np.float64))
    return result if return_info else result.adversarial
