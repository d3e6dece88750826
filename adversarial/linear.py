"""The slides' linear-classifier example: a logistic regression fooled by ``x + eps*sign(w)``.

``P(y = 1 | x) = sigma(w^T x + b)``. The gradient of the class-1 score is ``w``, so every
coordinate moving by ``eps`` in the direction ``sign(w_i)`` raises the score by
``eps * ||w||_1``: many tiny changes add up in high dimension (Goodfellow et al., ICLR 2015).

Run ``python -m adversarial.linear`` to print the two examples of the lectures:

* 10 dimensions (lecture 000): score -3 (``p = 0.0474``) becomes 2 (``p = 0.88``) with eps 0.5;
* 8 dimensions (lecture 002): score -2 becomes -1, 0, 1 with eps 0.1, 0.2, 0.3.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

LECTURE_10D = {"x": [2, -1, 3, -2, 2, 2, 1, -4, 5, 1], "w": [-1, -1, 1, -1, 1, -1, 1, 1, -1, 1],
               "epsilons": (0.5,)}
LECTURE_8D = {"x": [1, -2, -2, 3, -1, 2, -2, -3], "w": [2, -1, -1, -1, 2, -1, -1, 1],
              "epsilons": (0.1, 0.2, 0.3)}


class LinearExample(NamedTuple):
    """Numbers of one fooled logistic regression (scores are ``w^T x + b``)."""

    epsilon: float
    x_adv: np.ndarray
    score: float
    score_adv: float
    probability: float  # P(y = 1 | x) = sigma(score)
    probability_adv: float


def sigmoid(score: float) -> float:
    """``sigma(s) = 1 / (1 + exp(-s))``."""
    return 1.0 / (1.0 + math.exp(-score))


def fool_logistic_regression(x, w, epsilon: float, b: float = 0.0) -> LinearExample:
    """``x_adv = x + eps * sign(w)``: the FGSM step towards class 1 of a logistic regression.

    The score rises by exactly ``eps * ||w||_1``.

    Args:
        x, w: vectors of the same length ``d``. epsilon: ``>= 0``. b: bias.
    """
    x, w = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    if x.ndim != 1 or x.shape != w.shape:
        raise ValueError(f"x and w must be vectors of the same length, got {x.shape}, {w.shape}")
    if not epsilon >= 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
    x_adv = x + epsilon * np.sign(w)
    score, score_adv = float(w @ x + b), float(w @ x_adv + b)
    return LinearExample(float(epsilon), x_adv, score, score_adv, sigmoid(score),
                         sigmoid(score_adv))


def slides_examples() -> dict[str, list[LinearExample]]:
    """Both lecture examples, ``{"10d": [...], "8d": [...]}``, one entry per epsilon."""
    return {name: [fool_logistic_regression(spec["x"], spec["w"], eps) for eps in spec["epsilons"]]
            for name, spec in (("10d", LECTURE_10D), ("8d", LECTURE_8D))}


def main() -> None:
    for name, examples in slides_examples().items():
        print(f"{name} example")
        for ex in examples:
            print(f"  eps={ex.epsilon:g}: x_adv={np.round(ex.x_adv, 2).tolist()}")
            print(f"    score {ex.score:+.1f} -> {ex.score_adv:+.1f}, "
                  f"P(y=1) {ex.probability:.4f} -> {ex.probability_adv:.4f}")


if __name__ == "__main__":
    main()
