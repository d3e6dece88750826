"""Space vs units (Szegedy et al. 2013, "Intriguing properties of neural networks", section 3).

With ``phi(x)`` the code of an image at a layer, the images of a dataset ``I`` that maximise a
single unit, ``x' = argmax_{x in I} <phi(x), e_i>`` (natural basis), look as semantically coherent
as those maximising a random direction, ``x' = argmax_{x in I} <phi(x), v>``: "it is the space,
rather than the individual units, that contains the semantic information".
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from visualization.representation import code_layer_name, layer_codes


class SpaceVsUnits(NamedTuple):
    """Top images for a unit and for a random direction, best first.

    Attributes:
        unit_indices: ``(k,)`` dataset indices maximising ``<phi(x), e_i>``.
        unit_scores: ``(k,)`` their scores ``phi(x)_i``.
        direction_indices: ``(k,)`` dataset indices maximising ``<phi(x), v>``.
        direction_scores: ``(k,)`` their scores.
        direction: ``(D,)`` the unit-norm direction ``v``.
        unit_index: ``i``.
        layer_name: the layer of ``phi``.
    """

    unit_indices: np.ndarray
    unit_scores: np.ndarray
    direction_indices: np.ndarray
    direction_scores: np.ndarray
    direction: np.ndarray
    unit_index: int
    layer_name: str


def random_direction(dim: int, seed: int = 0) -> np.ndarray:
    """A unit vector ``v = g / ||g||``, ``g ~ N(0, I_dim)``: uniform on the sphere, seeded."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    g = np.random.default_rng(seed).standard_normal(int(dim))
    return (g / np.linalg.norm(g)).astype(np.float32)


def top_along(codes, direction, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the ``k`` rows of ``codes`` with the largest ``<phi(x), v>``.

    Args:
        codes: ``(N, D)``.
        direction: ``(D,)``.
        k: in ``[1, N]``.

    Returns:
        ``(indices (k,) int64, scores (k,) float32)``, best first, ties in dataset order.
    """
    phi = np.asarray(codes, dtype=np.float64)
    v = np.asarray(direction, dtype=np.float64)
    if phi.ndim != 2 or v.shape != (phi.shape[1],):
        raise ValueError(f"direction must have shape ({phi.shape[-1]},) to match codes "
                         f"{phi.shape}, got {v.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {k!r}")
    if not 1 <= k <= len(phi):
        raise ValueError(f"k must be in [1, {len(phi)}] (the number of images), got {k!r}")
    scores = phi @ v
    order = np.argsort(-scores, kind="stable")[:k]
    return order.astype(np.int64), scores[order].astype(np.float32)


def space_vs_units(model, images, layer_name: str | None = None, unit_index: int = 0, *,
                   k: int = 8, seed: int = 0, direction=None,
                   batch_size: int = 256) -> SpaceVsUnits:
    """The images maximising one unit of a layer against those maximising a random direction.

    Args:
        model: Keras model.
        images: the dataset ``I``, ``(N, H, W, C)``.
        layer_name: the layer of ``phi``; default the layer before the classifier. A spatial
            layer's output is flattened, so a unit is one (row, col, channel) neuron.
        unit_index: ``i``, in ``[0, D)``.
        k: images per list, in ``[1, N]``.
        seed: seed of the random direction.
        direction: optional ``(D,)`` direction to use instead (normalised to unit length).
        batch_size: images per forward pass.

    Returns:
        :class:`SpaceVsUnits`.

    Raises:
        ValueError: unknown layer, ``unit_index``/``k`` out of range, a zero or mis-sized
            direction.
    """
    name = code_layer_name(model) if layer_name is None else layer_name
    codes = layer_codes(model, images, name, batch_size=batch_size)
    dim = codes.shape[1]
    if isinstance(unit_index, bool) or not isinstance(unit_index, (int, np.integer)):
        raise TypeError(f"unit_index must be an int, got {unit_index!r}")
    if not 0 <= unit_index < dim:
        raise ValueError(f"unit_index must be in [0, {dim}) (units of {name!r}), got "
                         f"{unit_index!r}")
    v = random_direction(dim, seed) if direction is None else _unit(direction, dim)
    basis = np.zeros(dim, dtype=np.float32)
    basis[unit_index] = 1.0
    unit_idx, unit_scores = top_along(codes, basis, k)
    dir_idx, dir_scores = top_along(codes, v, k)
    return SpaceVsUnits(unit_idx, unit_scores, dir_idx, dir_scores, v, int(unit_index), name)


def _unit(direction, dim: int) -> np.ndarray:
    v = np.asarray(direction, dtype=np.float64).reshape(-1)
    norm = np.linalg.norm(v)
    if v.shape != (dim,) or not np.isfinite(norm) or norm == 0:
        raise ValueError(f"direction must be a non-zero finite vector of shape ({dim},), got "
                         f"shape {np.shape(direction)} with norm {norm}")
    return (v / norm).astype(np.float32)
