"""Momentum Iterative Method (Dong et al., "Boosting Adversarial Attacks with Momentum",
CVPR 2018), with the signature of the course slides.
"""

from __future__ import annotations

import numpy as np

from adversarial._common import run_attack


def mim_attack(model, input_image, input_label, epsilon=0.3, num_steps=20, step_size=0.01,
               decay=1.0, clip_value_min=0., clip_value_max=1.0, soft_label=False, *,
               targeted=False, random_init=True, loss="ce", seed=None, batch_size=256):
    """PGD whose step follows the sign of an accumulated, L1-normalised gradient (L-inf).

    ``x_0 = x + U(-eps, eps)``, ``v_{t+1} = decay * v_t + g_t / ||g_t||_1`` with ``g_t =
    grad_x l(f(x_t), y)`` and the L1 norm per example over all non-batch axes (floored at
    1e-12), ``x_{t+1} = clip(Proj_{B_eps(x)}(x_t + a * sign(v_{t+1})), min, max)``. Targeted
    (``input_label`` is the target ``t``): the momentum of ``-grad_x l(f(x_t), t)``, i.e. the
    slides' ``x_t - a * v_{t+1}`` direction. Shares the step/projection of :func:`pgd_attack`;
    the start is clipped to the valid range and ``soft_label`` labels are computed once on ``x``.

    Args:
        decay: momentum decay ``gamma >= 0`` (``0`` gives the basic iterative method).
        model, input_image, input_label, epsilon, num_steps, step_size, clip_value_min,
        clip_value_max, soft_label, targeted, random_init, loss, seed: as in :func:`pgd_attack`.

    Returns:
        ``tf.Tensor`` float32 shaped like ``input_image``, gradients stopped.

    Raises:
        ValueError, TypeError: bad arguments, naming the argument and showing the value.
    """
    return run_attack(model, input_image, input_label, epsilon=epsilon, num_steps=num_steps,
                      step_size=step_size, decay=decay, clip_value_min=clip_value_min,
                      clip_value_max=clip_value_max, soft_label=soft_label, targeted=targeted,
                      random_init=random_init, norm=np.inf, loss=loss, seed=seed,
                      batch_size=batch_size)
