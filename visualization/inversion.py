"""Feature inversion (Mahendran & Vedaldi, "Understanding Deep Image Representations by Inverting
Them", CVPR 2015).

Given the code ``Phi_0 = Phi(x_0)`` of an image at some layer, find an image with that code that
"looks natural" (lecture 003)::

    x* = argmin_x ||Phi(x) - Phi_0||^2 / ||Phi_0||^2 + lambda_tv * TV(x) + lambda_a * ||x||_a^a

with the total-variation prior ``TV`` of :func:`visualization.style.total_variation` and the
optional ``alpha``-norm. Descent from noise on the shared compiled loop of
:mod:`visualization.ascent` (the ascent of the negative).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from visualization import ascent
from visualization._model import as_image_batch, feature_model
from visualization.style import total_variation


def invert_features(model, layer_name: str, images, *, steps: int = 200,
                    learning_rate: float = 0.02, final_learning_rate: float | None = None,
                    tv_weight: float = 0.002, tv_beta: float = 2.0,
                    alpha_weight: float = 0.0, alpha: float = 6.0, value_range=None,
                    seed: int | None = None, return_history: bool = False):
    """Reconstruct ``images`` from their activations at ``layer_name``.

    Starts from Gaussian noise of mean ``mean(x_0)`` and std ``0.1 * std(x_0)`` (seeded), with
    normalised steps (``learning_rate`` = mean absolute pixel change per step).

    Args:
        model: Keras model (the layer may be inside a nested base model).
        layer_name: the layer whose code ``Phi`` is inverted.
        images: ``(N, H, W, C)`` originals ``x_0``, in the model's input range.
        steps: descent steps > 0.
        learning_rate: > 0.
        final_learning_rate: rate at the last step, reached by geometric decay; ``None`` =
            ``learning_rate / 10``.
        tv_weight: ``lambda_tv`` >= 0.
        tv_beta: exponent of the TV prior > 0 (2 = squared differences).
        alpha_weight: ``lambda_a`` >= 0 (0 = no alpha-norm).
        alpha: exponent of the alpha-norm >= 1 (Mahendran & Vedaldi use 6).
        value_range: ``(low, high)`` pixel range kept, or ``None``.
        seed: seed of the initial noise.
        return_history: also return the ``(steps, N)`` loss along the descent.

    Returns:
        ``(N, H, W, C)`` float32 numpy reconstructions (and the loss history).
    """
    originals = as_image_batch(images, model, name="images")
    for name, value in (("tv_weight", tv_weight), ("alpha_weight", alpha_weight)):
        ascent.check_real(name, value, minimum=0.0)
    ascent.check_real("tv_beta", tv_beta, minimum=0.0, strict=True)
    ascent.check_real("alpha", alpha, minimum=1.0)
    features = ascent.cached_objective(model, ("features", layer_name),
                                       lambda: feature_model(model, [layer_name]))
    target = features(originals)[0][0]
    objective = ascent.cached_objective(model, ("inversion", layer_name, float(tv_beta)),
                                        lambda: _inversion_objective(features, tv_beta))
    weights = tf.constant([tv_weight, alpha_weight, alpha], tf.float32)
    rng = np.random.default_rng(ascent.resolve_seed(seed))
    mean, std = float(tf.reduce_mean(originals)), float(tf.math.reduce_std(originals))
    start = (mean + 0.1 * std * rng.standard_normal(originals.shape)).astype(np.float32)
    recon, history = ascent.gradient_ascent(
        objective, start, steps=steps, learning_rate=learning_rate,
        final_learning_rate=ascent._settling_rate(learning_rate, final_learning_rate),
        objective_args=(target, weights), regularizers=ascent.Regularizers(value_range=value_range),
        seed=seed)
    return (recon, -history) if return_history else recon


def inversion_loss(features, images, target, tv_weight, alpha_weight, alpha, tv_beta=2.0):
    """The per-image loss ``||Phi(x) - Phi_0||^2 / ||Phi_0||^2 + l_tv TV(x) + l_a ||x||_a^a``.

    Args:
        features: callable ``images -> ([Phi(images)], logits)`` (see ``feature_model``).
        images: ``(N, H, W, C)`` candidates ``x``.
        target: ``Phi_0``, ``(N, ...)``.
        tv_weight, alpha_weight, alpha, tv_beta: as in :func:`invert_features`.

    Returns:
        float32 tensor ``(N,)``.
    """
    code = features(images)[0][0]
    batch = tf.shape(code)[0]
    diff = tf.reshape(code - target, [batch, -1])
    norm = tf.reduce_sum(tf.square(tf.reshape(target, [batch, -1])), axis=1)
    loss = tf.reduce_sum(tf.square(diff), axis=1) / (norm + 1e-12)
    loss += tv_weight * total_variation(images, beta=tv_beta)
    alpha_norm = tf.reduce_sum(tf.pow(tf.abs(tf.reshape(images, [batch, -1])), alpha), axis=1)
    return loss + alpha_weight * alpha_norm


def _inversion_objective(features, tv_beta):
    def objective(images, target, weights):
        return -inversion_loss(features, images, target, weights[0], weights[1], weights[2],
                               tv_beta)

    return objective
