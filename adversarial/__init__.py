"""Adversarial examples and defences of the course (issue 3).

Attacks: :func:`fgsm_attack`, :func:`pgd_attack`, :func:`mim_attack` (signatures of the
slides), :func:`lbfgs_attack` (Szegedy et al.). Defence: :class:`AdversarialTraining`.
Distances: :func:`l1_distance`, :func:`l2_distance`, :func:`linf_distance`,
:func:`average_minimal_distortion`. The slides' logistic-regression example:
:mod:`adversarial.linear`.
"""

from adversarial.distances import (
    average_minimal_distortion,
    l1_distance,
    l2_distance,
    linf_distance,
)
from adversarial.fgsm import fgsm_attack
from adversarial.lbfgs import LBFGSResult, lbfgs_attack
from adversarial.mim import mim_attack
from adversarial.pgd import pgd_attack
from adversarial.training import AdversarialTraining

_LINEAR_NAMES = ("LinearExample", "fool_logistic_regression", "slides_examples")


def __getattr__(name):
    # adversarial.linear is imported lazily so that ``python -m adversarial.linear`` runs cleanly
    if name in _LINEAR_NAMES:
        from adversarial import linear

        return getattr(linear, name)
    raise AttributeError(f"module 'adversarial' has no attribute {name!r}")


__all__ = [
    "AdversarialTraining",
    "LBFGSResult",
    "LinearExample",
    "average_minimal_distortion",
    "fgsm_attack",
    "fool_logistic_regression",
    "l1_distance",
    "l2_distance",
    "lbfgs_attack",
    "linf_distance",
    "mim_attack",
    "pgd_attack",
    "slides_examples",
]
