"""Distances between clean and adversarial images, and Szegedy et al.'s average minimal
distortion ("Intriguing properties of neural networks", ICLR 2014).

All distances are per example: images ``(N, ...)`` in, ``(N,)`` float64 out, computed over all
non-batch axes.
"""

from __future__ import annotations

import numpy as np

MEASURES = ("rms", "l1", "l2", "linf")


def _differences(clean, adversarial) -> np.ndarray:
    clean = np.asarray(clean, dtype=np.float64)
    adversarial = np.asarray(adversarial, dtype=np.float64)
    if clean.shape != adversarial.shape or clean.ndim < 1:
        raise ValueError(f"adversarial must have the shape of clean (N, ...), got "
                         f"{adversarial.shape} and {clean.shape}")
    return (adversarial - clean).reshape(len(clean), -1)


def l1_distance(clean, adversarial) -> np.ndarray:
    """``||x' - x||_1 = sum_i |x'_i - x_i|`` per example, ``(N,)``."""
    return np.abs(_differences(clean, adversarial)).sum(axis=1)


def l2_distance(clean, adversarial) -> np.ndarray:
    """``||x' - x||_2 = sqrt(sum_i (x'_i - x_i)^2)`` per example, ``(N,)``."""
    return np.sqrt(np.square(_differences(clean, adversarial)).sum(axis=1))


def linf_distance(clean, adversarial) -> np.ndarray:
    """``||x' - x||_inf = max_i |x'_i - x_i|`` per example, ``(N,)``."""
    diff = _differences(clean, adversarial)
    return np.abs(diff).max(axis=1) if diff.shape[1] else np.zeros(len(diff))


def rms_distance(clean, adversarial) -> np.ndarray:
    """Szegedy et al.'s distortion ``sqrt(sum_i (x'_i - x_i)^2 / m)`` (``m`` pixels), ``(N,)``."""
    diff = _differences(clean, adversarial)
    return np.sqrt(np.square(diff).mean(axis=1)) if diff.shape[1] else np.zeros(len(diff))


def average_minimal_distortion(clean, adversarial, success=None, *, measure="rms") -> float:
    """Mean distortion of the successful adversarial examples (Szegedy et al., Table 1).

    With minimal adversarial examples (e.g. from :func:`adversarial.lbfgs_attack`) this is the
    "Av. min. distortion" of the paper: the mean over successful examples of
    ``sqrt(sum_i (x'_i - x_i)^2 / m)`` for images in ``[0, 1]`` (``measure="rms"``).

    Args:
        clean, adversarial: ``(N, ...)`` image batches of the same shape.
        success: optional ``(N,)`` booleans; only those examples count (``None``: all).
        measure: ``"rms"`` (the paper), ``"l1"``, ``"l2"`` or ``"linf"``.

    Returns:
        The mean as a float; ``nan`` when no example is successful.
    """
    distances = {"rms": rms_distance, "l1": l1_distance, "l2": l2_distance,
                 "linf": linf_distance}
    if measure not in distances:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    values = distances[measure](clean, adversarial)
    if success is not None:
        success = np.asarray(success)
        if success.shape != values.shape or success.dtype != bool:
            raise ValueError(f"success must be {values.shape[0]} booleans, got "
                             f"{success.dtype} array of shape {success.shape}")
        values = values[success]
    return float(values.mean()) if values.size else float("nan")
