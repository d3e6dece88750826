"""Building instances from a 3-class mask: interior seeds grown into the boundary.

The boundary class exists to keep touching buildings apart: where two buildings share a wall, each
keeps a band of boundary pixels along it, so their *interiors* never touch. The instances are
therefore found in two steps (a marker-controlled watershed, Beucher and Meyer, "The morphological
approach to segmentation: the watershed transformation", 1993):

1. **Seeds**: the 4-connected components of the interior class.
2. **Growth**: every building pixel (interior or boundary) within Chebyshev distance ``w`` of a seed
   joins its nearest seed (a Voronoi partition of the boundary, the watershed of the distance to
   the seeds), so a shared wall is split where the two boundary bands meet:
   ``w = boundary_width``, and a boundary pixel of a rasterised building lies at least ``w + 1``
   from a neighbour's interior (the interior is the footprint eroded by a ``(2w+1)`` square) and,
   for all but thin parts, within ``w`` of its own. Pixels that the partition cuts off from their
   seed (not 4-connected to it through their own instance) are not grown.
3. **Buildings without interior**: building pixels that no seed reaches (buildings narrower than
   ``2w + 1`` pixels, all boundary) are instances of their own, one per 4-connected component,
   even when they touch a building that has an interior.

On a perfect mask this recovers every rasterised building exactly, touching or not, as long as
each building is either at least ``2w + 1`` pixels wide everywhere or has no interior at all; a
thin wing (narrower than ``2w + 1`` and longer than ``w``) of a larger building becomes a separate
instance. :func:`building_instances` is the one instance function of the package: the metrics and
the polygon output both use it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import measure

from assignment2.masks import DEFAULT_BOUNDARY_WIDTH, check_boundary_width

#: Mask values of building pixels: 1 interior, 2 boundary.
INTERIOR, BOUNDARY = 1, 2
#: 4-connectivity: pixels touching only at a corner belong to different components.
FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)
#: 8-connectivity for seeds: the interior of a thin diagonal building is a chain of corner-touching
#: pixels. Interiors of two different buildings are >= 2w + 1 apart, so they never touch.
EIGHT_CONNECTED = ndimage.generate_binary_structure(2, 2)


def building_instances(mask_or_probs, *, boundary_width: int = DEFAULT_BOUNDARY_WIDTH,
                       valid=None, min_area: int = 0) -> np.ndarray:
    """Building instances of a 3-class mask or of class probabilities.

    Args:
        mask_or_probs: a class mask ``(H, W)`` of integers (0 background, 1 interior, 2 boundary;
            any other value, e.g. ``IGNORE_INDEX`` 255, counts as background), or probabilities
            ``(H, W, 3)`` (background, interior, boundary) whose per-pixel argmax is taken.
        boundary_width: ``w``, the boundary thickness the mask was made with (how far a seed
            grows into the boundary, Chebyshev distance in pixels); 0 makes every 4-connected
            component of building pixels one instance (the plain connected components).
        valid: optional bool ``(H, W)``; pixels where it is False (no-data) are background.
        min_area: instances with fewer pixels are removed (0 keeps all).

    Returns:
        int32 ``(H, W)``: 0 outside buildings, instances numbered 1..n in raster order of their
        first pixel.
    """
    mask = class_mask(mask_or_probs, "mask_or_probs")
    width = check_boundary_width(boundary_width)
    min_area = check_min_area(min_area)
    if valid is not None:
        valid = np.asarray(valid)
        if valid.shape != mask.shape or valid.dtype != bool:
            raise ValueError(f"valid must be a bool array of shape {mask.shape}, got "
                             f"{valid.dtype} {valid.shape}")
        mask = np.where(valid, mask, 0)
    footprint = (mask == INTERIOR) | (mask == BOUNDARY)
    interior = mask == INTERIOR
    if width == 0 or not interior.any():
        labels = ndimage.label(footprint, structure=FOUR_CONNECTED)[0]
    else:
        distance, nearest = ndimage.distance_transform_cdt(
            ~interior, metric="chessboard", return_indices=True)
        labels = _grow_seeds(interior, footprint & (distance <= width), nearest)
        labels = _label_leftovers(labels, footprint, distance, width)
    return drop_small(labels, min_area)


def class_mask(mask_or_probs, name: str) -> np.ndarray:
    """An integer class mask ``(H, W)`` from a mask or from probabilities ``(H, W, K)``."""
    array = np.asarray(mask_or_probs)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3:
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"{name} of shape {array.shape} must be float probabilities, got "
                            f"dtype {array.dtype}")
        if array.shape[-1] != 3:
            raise ValueError(f"{name} must hold 3 class probabilities (H, W, 3), got shape "
                             f"{array.shape}")
        return np.argmax(array, axis=-1).astype(np.uint8)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a mask (H, W) or probabilities (H, W, 3), got shape "
                         f"{array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise TypeError(f"{name} must be an integer class mask, got dtype {array.dtype}")
    return array


def _grow_seeds(interior: np.ndarray, reachable: np.ndarray, nearest: np.ndarray) -> np.ndarray:
    """Seeds (8-connected interior components) grown into ``reachable`` pixels.

    Each reachable pixel takes the seed of its nearest interior pixel ``nearest`` (row and
    column indices); a pixel joins only if it stays 8-connected to its seed through pixels of the
    same instance, so cut-off fragments are left for :func:`_label_leftovers`.
    """
    seeds = ndimage.label(interior, structure=EIGHT_CONNECTED)[0]
    grown = np.where(reachable, seeds[nearest[0], nearest[1]], 0)
    regions = measure.label(grown, connectivity=2, background=0)
    grown[~np.isin(regions, np.unique(regions[interior]))] = 0
    return grown.astype(np.int32)


def _label_leftovers(labels: np.ndarray, footprint: np.ndarray, distance: np.ndarray,
                     width: int) -> np.ndarray:
    """Building pixels no seed reached: corners joined to their building, the rest own instances.

    A leftover component (4-connected) joins the grown instance it touches when it touches exactly
    one and lies within ``2 w`` of a seed: the corners of a rotated or acute building lie up to
    ``sqrt(2) w`` from its interior, whereas a building without interior beside it reaches farther
    unless it is at most ``w`` pixels wide. Every other leftover component is an instance.
    """
    leftovers, n_left = ndimage.label(footprint & (labels == 0), structure=FOUR_CONNECTED)
    if n_left == 0:
        return labels
    owner = _single_neighbour(leftovers, labels, n_left)
    far = ndimage.maximum(distance, leftovers, index=np.arange(1, n_left + 1)) > 2 * width
    owner[1:][far] = 0
    new_ids = np.zeros(n_left + 1, dtype=np.int32)
    alone = np.flatnonzero(owner == 0)[1:]
    new_ids[alone] = int(labels.max(initial=0)) + np.arange(1, alone.size + 1)
    new_ids = np.where(owner > 0, owner, new_ids)
    new_ids[0] = 0
    return np.where(leftovers > 0, new_ids[leftovers], labels).astype(np.int32)


def _single_neighbour(leftovers: np.ndarray, labels: np.ndarray, n_left: int) -> np.ndarray:
    """For each leftover id, the one instance id it touches (4-neighbours), else 0."""
    pairs = []
    for a, b in ((leftovers[1:], labels[:-1]), (leftovers[:-1], labels[1:]),
                 (leftovers[:, 1:], labels[:, :-1]), (leftovers[:, :-1], labels[:, 1:])):
        touching = (a > 0) & (b > 0)
        pairs.append(np.stack([a[touching], b[touching]], axis=1))
    pairs = np.unique(np.concatenate(pairs), axis=0)
    owner = np.zeros(n_left + 1, dtype=np.int64)
    ids, counts = np.unique(pairs[:, 0], return_counts=True)
    single = ids[counts == 1]
    owner[single] = pairs[np.isin(pairs[:, 0], single), 1]
    return owner


def check_min_area(min_area) -> int:
    """``min_area`` as an int >= 0, or ``ValueError`` naming it."""
    if isinstance(min_area, bool) or not isinstance(min_area, (int, np.integer)) or min_area < 0:
        raise ValueError(f"min_area must be an int >= 0, got {min_area!r}")
    return int(min_area)


def drop_small(labels: np.ndarray, min_area: int) -> np.ndarray:
    """Zero the instances of ``labels`` smaller than ``min_area`` pixels, renumber the rest 1..n.

    Ids are renumbered in raster order of each instance's first pixel, so the result does not
    depend on how the ids were assigned.
    """
    ids, first, areas = np.unique(labels.ravel(), return_index=True, return_counts=True)
    keep = (ids != 0) & (areas >= min_area)
    kept_ids = ids[keep][np.argsort(first[keep], kind="stable")]
    lookup = np.zeros(int(labels.max(initial=0)) + 1, dtype=np.int32)
    lookup[kept_ids] = np.arange(1, kept_ids.size + 1, dtype=np.int32)
    return lookup[labels]


__all__ = ["BOUNDARY", "INTERIOR", "building_instances", "check_min_area", "class_mask",
           "drop_small"]
