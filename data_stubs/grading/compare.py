"""Comparison of an output with its reference: element-wise limits and the share allowed outside.

Two outputs agree element-wise when ``|actual - expected| <= atol + rtol * |expected|``; a case
passes when the share of elements that do not agree is at most ``max_share``. Sign-based attacks
(FGSM, PGD, MIM) use a small ``max_share``: where the loss gradient is (numerically) zero its sign
may flip between two correct implementations, moving a pixel by a whole step. The verdict always
states the limits and the measured values, so a student sees which limit failed and by how much.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """Element-wise tolerance ``atol + rtol * |expected|`` and the share allowed outside it."""

    atol: float = 1e-5
    rtol: float = 1e-4
    max_share: float = 0.0

    def describe(self) -> str:
        share = f", at most {100 * self.max_share:.2f}% of elements outside" if self.max_share else ""
        return f"|actual - expected| <= {self.atol:g} + {self.rtol:g} * |expected|{share}"


@dataclass(frozen=True)
class Comparison:
    """How far an output is from its reference, and the limits it was held to."""

    passed: bool
    max_abs_diff: float
    share_differing: float
    detail: str = ""
    tolerance: Tolerance | None = None
    worst: str = ""

    def summary(self) -> str:
        """One line: the verdict's reason, the limits and the measured values."""
        if self.detail:
            return self.detail
        limits = f" (limit {self.tolerance.describe()})" if self.tolerance else ""
        worst = f"; worst element {self.worst}" if self.worst else ""
        return (f"max abs diff {self.max_abs_diff:.3g}, {100 * self.share_differing:.2f}% of "
                f"elements differ{limits}{worst}")


def _worst_element(actual: np.ndarray, expected: np.ndarray, diff: np.ndarray) -> str:
    index = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return (f"at index {tuple(int(i) for i in index)}: got {actual[index]:.6g}, "
            f"expected {expected[index]:.6g}")


def compare(actual, expected, tolerance: Tolerance) -> Comparison:
    """Compares ``actual`` with ``expected`` under ``tolerance``; shapes must match exactly.

    Args:
        actual: the output graded, anything ``np.asarray`` reads as numbers.
        expected: the reference output.
        tolerance: the limits.

    Returns:
        A :class:`Comparison`; an unreadable output, another shape or a NaN fails with a reason.
    """
    try:
        a = np.asarray(actual).astype(np.float64)
    except (TypeError, ValueError) as exc:
        return Comparison(False, float("inf"), 1.0,
                          f"output is not an array of numbers: {type(actual).__name__} ({exc})")
    e = np.asarray(expected).astype(np.float64)
    if a.shape != e.shape:
        return Comparison(False, float("inf"), 1.0,
                          f"output shape {a.shape} differs from the reference's {e.shape}")
    if not np.all(np.isfinite(a)):
        share = float(np.mean(~np.isfinite(a)))
        return Comparison(False, float("inf"), 1.0,
                          f"output has NaN or infinite values ({100 * share:.2f}% of elements)")
    diff = np.abs(a - e)
    bad = diff > tolerance.atol + tolerance.rtol * np.abs(e)
    share = float(bad.mean()) if bad.size else 0.0
    max_diff = float(diff.max()) if diff.size else 0.0
    worst = _worst_element(a, e, diff) if bad.any() else ""
    return Comparison(share <= tolerance.max_share, max_diff, share, tolerance=tolerance,
                      worst=worst)
