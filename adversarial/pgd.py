"""Projected Gradient Descent (ascent) attack (Madry et al., "Towards Deep Learning Models
Resistant to Adversarial Attacks", ICLR 2018), with the signature of the course slides.
"""

from __future__ import annotations

import numpy as np

from adversarial._common import run_attack


def pgd_attack(model, input_image, input_label, epsilon=0.3, num_steps=20, step_size=0.01,
               clip_value_min=0., clip_value_max=1.0, soft_label=False, *, targeted=False,
               random_init=True, norm=np.inf, loss="ce", restarts=1, seed=None, batch_size=256):
    """``num_steps`` projected steps of steepest ascent of the loss inside the epsilon ball.

    ``x_0 = x + U(-eps, eps)`` (``random_init``; ``False`` gives the basic iterative method),
    ``x_{t+1} = clip(Proj_{B_eps(x)}(x_t + a * sign(grad_x l(f(x_t), y))), min, max)``; targeted
    (``input_label`` is the target ``t``): ``x_t - a * sign(grad_x l(f(x_t), t))``. With
    ``norm=2`` the step is ``a * g / ||g||_2``, the projection rescales ``x' - x`` to L2 norm
    ``<= eps`` and the start is uniform in the L2 ball. The whole loop runs in one cached
    ``tf.function`` (no retracing for repeated shapes).

    Differences from the slides' code, on purpose: the random start is clipped to the valid
    range (the model is never evaluated outside it), and ``soft_label=True`` computes the
    predicted labels ONCE on the clean input; the slides recompute the argmax at each iterate,
    which after the first successful step makes PGD defend the new, wrong class.

    Args:
        model: any callable mapping a batch to logits ``(N, K)``; called with
            ``training=False`` when it accepts it, never modified.
        input_image: ``(N, ...)`` clean images, numpy or tensor, any float dtype.
        input_label: ``(N,)`` indices, ``(N, K)`` one-hot rows or one index for all; ignored
            (may be ``None``) when ``soft_label=True``.
        epsilon: radius of the ball, ``>= 0``; ``0`` returns the input (as float32).
        num_steps: number of steps, ``>= 1``. step_size: ``a > 0``.
        clip_value_min, clip_value_max: valid input range.
        soft_label: attack the labels the model predicts on ``x``.
        targeted: move towards class ``input_label``.
        random_init: start at a uniform random point of the ball (else at ``x``).
        norm: ``np.inf`` or ``2``. loss: ``"ce"`` or ``"margin"`` (see :func:`fgsm_attack`).
        restarts: independent random starts; per example a successful one (misclassified, or
            classified as the target) is kept if any, and among equally successful ones the
            one of highest final loss (with the cross entropy the highest loss need not be a
            misclassification).
        seed: int making the random start reproducible; ``None`` draws from TF's global RNG.

    Returns:
        ``tf.Tensor`` float32 shaped like ``input_image``, gradients stopped.

    Raises:
        ValueError, TypeError: bad arguments, naming the argument and showing the value.
    """
    return run_attack(model, input_image, input_label, epsilon=epsilon, num_steps=num_steps,
                      step_size=step_size, clip_value_min=clip_value_min,
                      clip_value_max=clip_value_max, soft_label=soft_label, targeted=targeted,
                      random_init=random_init, norm=norm, loss=loss, restarts=restarts, seed=seed,
                      batch_size=batch_size)
