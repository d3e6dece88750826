"""Fast Gradient Sign Method (Goodfellow, Shlens & Szegedy, "Explaining and Harnessing
Adversarial Examples", ICLR 2015), with the signature of the course slides.
"""

from __future__ import annotations

import numpy as np

from adversarial._common import run_attack


def fgsm_attack(model, input_image, input_label, epsilon=0.3, clip_value_min=0.,
                clip_value_max=1.0, soft_label=False, *, targeted=False, norm=np.inf, loss="ce",
                seed=None, batch_size=256):
    """One gradient step of size ``epsilon``, then clip to the valid range.

    Untargeted: ``x_adv = clip(x + eps * sign(grad_x l(f(x), y)), min, max)``.
    Targeted (``input_label`` is the target ``t``): ``x_adv = clip(x - eps * sign(grad_x
    l(f(x), t)), min, max)``. With ``norm=2`` the step is ``eps * g / ||g||_2`` per example.

    Args:
        model: any callable mapping a batch to logits ``(N, K)`` (Keras 3 or tf-keras model,
            function); called with ``training=False`` when it accepts it, never modified.
        input_image: ``(N, ...)`` clean images, numpy or tensor, any float dtype.
        input_label: ``(N,)`` class indices, ``(N, K)`` one-hot rows, or one index for all;
            ignored (may be ``None``) when ``soft_label=True``.
        epsilon: size of the perturbation, ``>= 0``; ``0`` returns the input (as float32).
        clip_value_min, clip_value_max: valid input range.
        soft_label: attack the labels the model predicts on ``x`` instead of ``input_label``.
        targeted: move towards the class ``input_label`` (down its loss).
        norm: ``np.inf`` (sign of the gradient, the slides) or ``2``.
        loss: ``"ce"`` (sparse softmax cross entropy, the slides) or ``"margin"`` (CW logit
            margin ``max_{j != y} z_j - z_y``; targeted ``z_t - max_{j != t} z_j``, ascended).
        seed: accepted for an interface uniform with PGD/MIM; FGSM is deterministic.

    Returns:
        ``tf.Tensor`` float32 shaped like ``input_image``, in ``[clip_value_min,
        clip_value_max]`` and within ``epsilon`` of ``x`` in the chosen norm, gradients stopped.

    Raises:
        ValueError, TypeError: bad arguments, naming the argument and showing the value.
    """
    return run_attack(model, input_image, input_label, epsilon=epsilon,
                      clip_value_min=clip_value_min, clip_value_max=clip_value_max,
                      soft_label=soft_label, targeted=targeted, norm=norm, loss=loss, seed=seed,
                      batch_size=batch_size)
