"""Adversarial examples and defences of the course.

Attacks: :func:`fgsm_attack`, :func:`pgd_attack`, :func:`mim_attack` (the slides' signatures),
:func:`lbfgs_attack` (Szegedy et al.), :func:`apgd_attack` (Croce & Hein),
:func:`square_attack` (Andriushchenko et al., black-box). Evaluation that is hard to fool:
:func:`evaluate_robustness` (an AutoAttack-style ensemble, per-example worst case, with sanity
warnings; :func:`clean_evaluation` gives its epsilon-0 row). Model/input contract: :mod:`adversarial.contract`; :func:`clear_cache` forgets the
compiled attacks. Defence: :class:`AdversarialTraining` (Madry et al.).
Distances: :func:`l1_distance`, :func:`l2_distance`, :func:`linf_distance`, :func:`rms_distance`,
:func:`average_minimal_distortion`. Evaluation: :func:`robust_accuracy`,
:func:`targeted_success_rate`, :func:`minimal_distortion`, :func:`transfer_matrix`,
:func:`loss_surface`. Target models: :func:`small_cnn`, :func:`resnet` with the slides'
:class:`Residual` and :class:`ResnetBlock`. Figures: the ``plot_*`` functions. The slides'
logistic-regression example: :mod:`adversarial.linear`. Command lines: ``python -m
adversarial.train`` and ``python -m adversarial.evaluate``.

``import adversarial`` is light: the submodule holding a name (and TensorFlow with it) is
imported on first access, so ``python -m adversarial.train --help`` answers at once, while
``from adversarial import pgd_attack`` works as usual.
"""

from __future__ import annotations

import importlib

# name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    "fgsm_attack": "fgsm",
    "pgd_attack": "pgd",
    "mim_attack": "mim",
    "lbfgs_attack": "lbfgs",
    "apgd_attack": "apgd",
    "square_attack": "square",
    "evaluate_robustness": "robustness",
    "clean_evaluation": "robustness",
    "clear_cache": "_common",
    "LBFGSResult": "lbfgs",
    "AdversarialTraining": "training",
    "l1_distance": "distances",
    "l2_distance": "distances",
    "linf_distance": "distances",
    "rms_distance": "distances",
    "average_minimal_distortion": "distances",
    "accuracy": "evaluation",
    "adversarial_examples": "evaluation",
    "robust_accuracy": "evaluation",
    "targeted_success_rate": "evaluation",
    "random_target_labels": "evaluation",
    "minimal_distortion": "evaluation",
    "transfer_matrix": "evaluation",
    "loss_surface": "evaluation",
    "small_cnn": "models",
    "resnet": "models",
    "Residual": "models",
    "ResnetBlock": "models",
    "plot_accuracy_vs_epsilon": "plots",
    "plot_adversarial_examples": "plots",
    "plot_loss_surface": "plots",
    "LinearExample": "linear",
    "fool_logistic_regression": "linear",
    "slides_examples": "linear",
}

# the same names, spelled out for static tools
__all__ = [
    "AdversarialTraining",
    "LBFGSResult",
    "LinearExample",
    "Residual",
    "ResnetBlock",
    "accuracy",
    "adversarial_examples",
    "apgd_attack",
    "average_minimal_distortion",
    "clean_evaluation",
    "clear_cache",
    "evaluate_robustness",
    "fgsm_attack",
    "fool_logistic_regression",
    "l1_distance",
    "l2_distance",
    "lbfgs_attack",
    "linf_distance",
    "loss_surface",
    "mim_attack",
    "minimal_distortion",
    "pgd_attack",
    "plot_accuracy_vs_epsilon",
    "plot_adversarial_examples",
    "plot_loss_surface",
    "random_target_labels",
    "resnet",
    "rms_distance",
    "robust_accuracy",
    "slides_examples",
    "square_attack",
    "small_cnn",
    "targeted_success_rate",
    "transfer_matrix",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'adversarial' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"adversarial.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
