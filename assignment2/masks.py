"""Building polygons (in pixel coordinates) to 3-class masks: background, interior, boundary.

Rasterisation follows the pixel-centre convention: pixel ``(r, c)`` belongs to a polygon when its
centre ``(x, y) = (c + 0.5, r + 0.5)`` lies inside by the even-odd rule, so holes are respected and
two buildings that share an edge never share a pixel. A centre exactly on an edge is decided by the
half-open rule (inside for left/top edges, outside for right/bottom edges), the same tie-break as
the top-left fill rule of GPUs and GDAL.

The boundary class separates touching buildings: for every building,
``boundary = footprint - erode(footprint)`` with a ``(2w + 1) x (2w + 1)`` square
(``w = boundary_width`` iterations of a 3x3 erosion), so the boundary is ``w`` pixels thick and
two buildings sharing a wall each keep their own band along it, their interiors ``2w`` pixels
apart (:mod:`assignment2.instances` splits them there). The area outside the tile counts as
footprint, so a building cut by the tile edge gets no boundary along that edge. The three classes
(outside, inside, border) are those of the first SpaceNet challenge's winning entries (wleite,
marek.cygan; CosmiQ Works, "SpaceNet: Winning Implementations and New Imagery Release", 2017);
``solaris``' ``boundary_mask`` is different (a 1-pixel inner edge of the merged footprint for its
default ``boundary_width=3``, which is the side of its 3x3 structuring element, so touching
buildings get no boundary between them). ``DEFAULT_BOUNDARY_WIDTH = 2``: with it the ground truth
scored against itself reaches building F1 0.993 on the embedded area (0.998 with 1 px, 0.976 with
3 px, where buildings narrower than 7 px have no interior and thin wings split off) and 1.000 on
30 tiles of dense row houses 10-40 px wide (every width), while the interiors of touching
buildings stay 4 pixels apart for the network to learn the split
(``python benchmarks/bench_polygons.py --ceilings``).

Polygon nesting follows GeoJSON: a *ring* is an ``(N, 2)`` (or ``(N, 3)``) sequence of ``(x, y)``
points, a *polygon* is a list of rings (exterior first, then holes), a *multipolygon* a list of
polygons. A building may be given as any of the three.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

_SQUARE = np.ones((3, 3), dtype=bool)
#: Boundary thickness in pixels used by default everywhere (masks, preparation, instances).
DEFAULT_BOUNDARY_WIDTH = 2


def rasterize_polygon(polygon, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centres lie inside a polygon or multipolygon (even-odd rule).

    Crossings of every ring with the horizontal line through each row of pixel centres
    (``y = r + 0.5``) toggle "inside" from column ``ceil(x - 0.5)`` on; a cumulative parity along
    the row then marks ``(r, c)`` inside iff an odd number of crossings satisfy ``x <= c + 0.5``.

    Args:
        polygon: a ring, a polygon (list of rings) or a multipolygon (list of polygons) in pixel
            coordinates ``(x, y)`` = (column, row); a third (Z) coordinate is ignored.
        shape: ``(H, W)`` of the output.

    Returns:
        bool array ``(H, W)``; parts of the polygon outside the tile are cut off.
    """
    height, width = _check_shape(shape)
    inside = np.zeros((height, width), dtype=bool)
    for rings in _as_polygons(polygon):
        inside |= _rasterize_rings(rings, height, width)
    return inside


def _rasterize_rings(rings: list[np.ndarray], height: int, width: int) -> np.ndarray:
    inside = np.zeros((height, width), dtype=bool)
    rings = [ring for ring in rings if len(ring) >= 3]
    if not rings:
        return inside
    ys = np.concatenate([ring[:, 1] for ring in rings])
    r0 = int(np.clip(np.floor(ys.min() - 0.5), 0, height))  # only rows the polygon can cover
    r1 = int(np.clip(np.ceil(ys.max() + 0.5), 0, height))
    toggles = np.zeros((r1 - r0, width + 1), dtype=np.int32)
    centres = np.arange(r0, r1)[:, None] + 0.5
    for ring in rings:
        x0, y0 = ring[:, 0], ring[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        crosses = (y0 > centres) != (y1 > centres)  # half-open: horizontal edges never cross
        r_idx, e_idx = np.nonzero(crosses)
        yc = centres[r_idx, 0]
        xc = x0[e_idx] + (yc - y0[e_idx]) * (x1[e_idx] - x0[e_idx]) / (y1[e_idx] - y0[e_idx])
        cols = np.clip(np.ceil(xc - 0.5), 0, width).astype(np.int64)
        np.add.at(toggles, (r_idx, cols), 1)
    inside[r0:r1] = np.cumsum(toggles, axis=1)[:, :width] % 2 == 1
    return inside


def building_masks(polygons_px: Sequence, shape: tuple[int, int], *,
                   boundary_width: int = DEFAULT_BOUNDARY_WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """3-class mask and instance map of buildings given in pixel coordinates.

    Args:
        polygons_px: one entry per building (ring, polygon or multipolygon, see the module doc).
        shape: ``(H, W)`` of the tile.
        boundary_width: thickness ``w >= 0`` of the boundary class in pixels (0: no boundary).

    Returns:
        ``(mask, instances)``: ``mask`` uint8 ``(H, W)`` with 0 background, 1 interior,
        2 boundary (boundary wins where buildings overlap); ``instances`` int32 ``(H, W)`` with
        0 for no building and ``k`` for the k-th building of ``polygons_px`` (1-based; a later
        building wins where they overlap; buildings covering no pixel centre are absent).
    """
    height, width = _check_shape(shape)
    boundary_width = check_boundary_width(boundary_width)
    footprint = np.zeros((height, width), dtype=bool)
    boundary = np.zeros((height, width), dtype=bool)
    instances = np.zeros((height, width), dtype=np.int32)
    for k, building in enumerate(polygons_px, start=1):
        inside = rasterize_polygon(building, (height, width))
        if not inside.any():
            continue
        footprint |= inside
        boundary |= inner_boundary(inside, boundary_width)
        instances[inside] = k
    mask = footprint.astype(np.uint8)
    mask[boundary] = 2
    return mask, instances


def check_boundary_width(boundary_width) -> int:
    """``boundary_width`` as an int >= 0; ``TypeError``/``ValueError`` naming it otherwise."""
    if isinstance(boundary_width, bool) or not isinstance(boundary_width, (int, np.integer)):
        raise TypeError(f"boundary_width must be an int, got {boundary_width!r}")
    if boundary_width < 0:
        raise ValueError(f"boundary_width must be >= 0, got {boundary_width!r}")
    return int(boundary_width)


def inner_boundary(footprint: np.ndarray, boundary_width: int = 3) -> np.ndarray:
    """``footprint - erode(footprint, square(2w + 1))``, the outside of the tile counting as inside.

    Args:
        footprint: bool ``(H, W)`` of one building.
        boundary_width: ``w``, the boundary's thickness in pixels.

    Returns:
        bool ``(H, W)``: footprint pixels within Chebyshev distance ``w`` of a non-footprint pixel.
    """
    if boundary_width == 0 or not footprint.any():
        return np.zeros_like(footprint, dtype=bool)
    rows, cols = np.nonzero(footprint)
    margin = boundary_width + 1  # crop edges inside the tile stay >= w+1 away from the building
    r0, r1 = max(rows.min() - margin, 0), min(rows.max() + margin + 1, footprint.shape[0])
    c0, c1 = max(cols.min() - margin, 0), min(cols.max() + margin + 1, footprint.shape[1])
    crop = footprint[r0:r1, c0:c1]
    eroded = ndimage.binary_erosion(crop, _SQUARE, iterations=boundary_width, border_value=1)
    out = np.zeros(footprint.shape, dtype=bool)
    out[r0:r1, c0:c1] = crop & ~eroded
    return out


def _check_shape(shape) -> tuple[int, int]:
    try:
        height, width = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (H, W), got {shape!r}") from None
    if height <= 0 or width <= 0 or (height, width) != tuple(shape):
        raise ValueError(f"shape must be two positive ints (H, W), got {shape!r}")
    return height, width


def _as_polygons(geometry) -> list[list[np.ndarray]]:
    """Normalise a ring, polygon or multipolygon into a list of polygons of float (N, 2) rings."""
    if isinstance(geometry, (list, tuple, np.ndarray)) and len(geometry) == 0:
        return []
    depth, probe = 0, geometry
    while isinstance(probe, (list, tuple, np.ndarray)) and len(probe) > 0:
        depth, probe = depth + 1, probe[0]
    if depth == 0 or not np.isscalar(probe):
        raise ValueError(f"polygon must be a ring, polygon or multipolygon of points, "
                         f"got {_short(geometry)}")
    nested = {2: [[geometry]], 3: [geometry], 4: geometry}.get(depth)
    if nested is None:
        raise ValueError(f"polygon must nest 2 to 4 levels deep, got {depth}: {_short(geometry)}")
    return [[_as_ring(ring) for ring in polygon if len(ring)] for polygon in nested]


def _as_ring(ring) -> np.ndarray:
    points = np.asarray(ring, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] < 2 or not np.all(np.isfinite(points[:, :2])):
        raise ValueError(f"a ring must be finite (N, 2) or (N, 3) points, got {_short(ring)}")
    return points[:, :2]


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
