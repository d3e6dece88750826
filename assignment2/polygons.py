"""Building polygons: instance maps to polygons, lon/lat GeoJSON, and the SpaceNet polygon matching.

Pixel coordinates follow :mod:`assignment2.geotiff`: pixel ``(r, c)`` covers
``[c, c + 1) x [r, r + 1)``, so the polygon of an instance traced along pixel edges has integer
vertices and an area equal to its pixel count, and rasterising it back with the pixel-centre rule
of :mod:`assignment2.masks` gives the instance again.

The matching reproduces the SpaceNet 2 scorer (CosmiQ ``solaris``, ``eval/base.py``,
``Evaluator.eval_iou_spacenet_csv``, called by ``eval/challenges.py::spacenet_buildings_2`` with
``miniou=0.5, min_area=20``):

- ground-truth polygons with area ``< 20`` px and proposals with area ``<= 20`` px are left out
  (the scorer writes ``area >= min_area`` for the truth and ``area > min_area`` for proposals);
- proposals are visited by decreasing confidence (invalid ones repaired with ``buffer(0)``; an
  invalid truth polygon gets IoU 0); each takes the remaining ground-truth polygon
  of highest IoU (polygon areas, shapely), and is a true positive when that IoU is **> 0.5**;
  the matched truth is then removed;
- unmatched proposals are false positives, unmatched truth polygons false negatives.

For polygons that do not overlap among themselves (buildings of one tile), a proposal can have
IoU > 0.5 with at most one truth polygon (more than half of the proposal lies in it), so with the
strict ``>`` the matching does not depend on the visiting order.
"""

from __future__ import annotations

import csv
from typing import NamedTuple

import numpy as np
import shapely
from scipy import ndimage
from shapely.geometry import mapping
from shapely.geometry.polygon import orient

from assignment2.geotiff import GeoTransform, lonlat_to_pixel, pixel_to_lonlat

#: SpaceNet 2: smallest IoU (exclusive) of a true positive, smallest polygon area in pixels.
IOU_THRESHOLD, MIN_AREA = 0.5, 20


class Building(NamedTuple):
    """One building of a tile.

    Attributes:
        id: the instance id in the label map (1..n).
        polygon: shapely Polygon (or MultiPolygon) in pixel coordinates ``(x, y)`` = (column, row).
        confidence: mean building probability (interior + boundary) over its pixels, in [0, 1];
            1.0 without probabilities.
    """

    id: int
    polygon: shapely.Geometry
    confidence: float


def instance_polygons(instances, probs=None) -> list[Building]:
    """Polygons of an instance map, traced along pixel edges.

    Each row of each instance is split into runs of pixels, each run becomes a box
    ``[c0, c1) x [r, r + 1)``, and the boxes of an instance are merged (``shapely.union_all``),
    with collinear vertices removed. Holes (courtyards) are kept.

    Args:
        instances: int ``(H, W)`` label map, 0 = no building.
        probs: optional float ``(H, W, 3)`` class probabilities; the confidence of a building is
            the mean of ``1 - probs[..., 0]`` over its pixels.

    Returns:
        One :class:`Building` per instance id present, in increasing id order; a building's
        polygon area equals its pixel count.
    """
    labels = np.asarray(instances)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"instances must be an integer label map (H, W), got "
                         f"{labels.dtype} {labels.shape}")
    confidence = _confidences(labels, probs)
    ids, boxes = _row_runs(labels)
    buildings = []
    for k in np.unique(ids):
        polygon = shapely.simplify(shapely.union_all(boxes[ids == k]), 0.0)
        buildings.append(Building(int(k), polygon, confidence.get(int(k), 1.0)))
    return buildings


def _row_runs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of equal non-zero labels along each row: their labels and boxes (pixel edges)."""
    height, width = labels.shape
    padded = np.zeros((height, width + 2), dtype=labels.dtype)
    padded[:, 1:-1] = labels
    change = padded[:, 1:] != padded[:, :-1]  # (H, W + 1): a run starts or ends at column c
    rows, cols = np.nonzero(change)
    starts = padded[rows, cols + 1] != 0  # the edge at cols opens a run when the right label != 0
    row_s, col_s = rows[starts], cols[starts]
    ids = padded[row_s, col_s + 1]
    # The run of a start ends at the next change in the same row.
    order = np.arange(rows.size)
    next_change = order[starts] + 1
    col_e = cols[next_change]
    boxes = shapely.box(col_s, row_s, col_e, row_s + 1)
    return ids, boxes


def _confidences(labels: np.ndarray, probs) -> dict[int, float]:
    if probs is None:
        return {}
    probs = np.asarray(probs)
    if probs.shape != labels.shape + (3,):
        raise ValueError(f"probs must have shape {labels.shape + (3,)}, got {probs.shape}")
    building = 1.0 - probs[..., 0].astype(np.float64)
    ids = np.unique(labels[labels > 0])
    means = ndimage.mean(building, labels, index=ids)
    return {int(k): float(np.clip(m, 0.0, 1.0)) for k, m in zip(ids, np.atleast_1d(means))}


def to_lonlat(geometry, transform: GeoTransform):
    """A geometry in pixel coordinates moved to lon/lat with the tile's geotransform."""
    return shapely.transform(geometry, lambda xy: np.stack(
        pixel_to_lonlat(xy[:, 0], xy[:, 1], transform), axis=1))


def to_pixels(geometry, transform: GeoTransform):
    """A geometry in lon/lat moved to the tile's pixel coordinates (inverse of :func:`to_lonlat`)."""
    return shapely.transform(geometry, lambda xy: np.stack(
        lonlat_to_pixel(xy[:, 0], xy[:, 1], transform), axis=1))


def feature_collection(buildings: list[Building], transform: GeoTransform) -> dict:
    """SpaceNet-style GeoJSON FeatureCollection (lon/lat, CRS84) of a tile's buildings.

    Rings follow RFC 7946 (exterior counter-clockwise in lon/lat); properties are ``BuildingId``
    (1..n in the order given), ``Confidence`` and ``area_px`` (the polygon area in pixels).
    """
    features = []
    for k, building in enumerate(buildings, start=1):
        geometry = _oriented(to_lonlat(building.polygon, transform))
        features.append({"type": "Feature",
                         "properties": {"BuildingId": k, "Confidence": building.confidence,
                                        "area_px": float(building.polygon.area)},
                         "geometry": mapping(geometry)})
    return {"type": "FeatureCollection",
            "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
            "features": features}


def _oriented(geometry):
    if geometry.geom_type == "MultiPolygon":
        return shapely.MultiPolygon([orient(p, 1.0) for p in geometry.geoms])
    return orient(geometry, 1.0)


def polygon_iou(a, b) -> float:
    """Intersection over union of two polygons' areas; 0.0 when their union is empty."""
    union = shapely.area(shapely.union(a, b))
    return float(shapely.area(shapely.intersection(a, b)) / union) if union > 0 else 0.0


def valid_polygon(geometry):
    """``geometry`` made valid the way the SpaceNet scorer repairs proposals (``buffer(0)``)."""
    return geometry if geometry.is_valid else geometry.buffer(0)


def match_polygons(truth, proposals, confidences=None, *, iou_threshold: float = IOU_THRESHOLD,
                   min_area: float = MIN_AREA) -> tuple[int, int, int]:
    """``(TP, FP, FN)`` of one tile under the SpaceNet 2 rules (see the module docstring).

    Args:
        truth: sequence of shapely polygons (pixel coordinates) of the ground truth.
        proposals: sequence of shapely polygons (pixel coordinates) of the prediction.
        confidences: one number per proposal (higher first); None keeps the given order.
        iou_threshold: a proposal matches when its IoU is strictly above this.
        min_area: truth polygons need ``area >= min_area``, proposals ``area > min_area``.

    Returns:
        Python ints ``(tp, fp, fn)``.
    """
    truth = [t for t in truth if t.area >= min_area]
    kept = [i for i, p in enumerate(proposals) if p.area > min_area]
    if confidences is not None:
        if len(confidences) != len(proposals):
            raise ValueError(f"confidences must have one value per proposal ({len(proposals)}), "
                             f"got {len(confidences)}")
        kept.sort(key=lambda i: -float(confidences[i]))  # stable: ties keep the file order
    tree = shapely.STRtree(truth)
    remaining = np.ones(len(truth), dtype=bool)
    tp = 0
    for i in kept:
        proposal = valid_polygon(proposals[i])
        candidates = [j for j in tree.query(proposal, predicate="intersects") if remaining[j]]
        # As the scorer: an invalid truth polygon has IoU 0 with everything (it is never repaired).
        ious = [polygon_iou(proposal, truth[j]) if truth[j].is_valid else 0.0
                for j in sorted(candidates)]
        if ious and max(ious) > iou_threshold:
            remaining[sorted(candidates)[int(np.argmax(ious))]] = False
            tp += 1
    return tp, len(kept) - tp, int(remaining.sum())


# --------------------------------------------------------------------------- SpaceNet CSV

#: Columns of a SpaceNet 2 proposal (submission) file; ground-truth CSVs have them too.
SOLUTION_COLUMNS = ("ImageId", "BuildingId", "PolygonWKT_Pix", "Confidence")
#: The row of a tile without buildings.
EMPTY_POLYGON = "POLYGON EMPTY"


def solution_rows(image_id: str, buildings: list[Building]) -> list[list]:
    """CSV rows of one tile: ``ImageId, BuildingId (1..n), PolygonWKT_Pix, Confidence``.

    A tile without buildings gets the one row ``ImageId, -1, POLYGON EMPTY, 1`` that SpaceNet
    uses, so every tile of the area appears in the file.
    """
    if not buildings:
        return [[image_id, -1, EMPTY_POLYGON, 1]]
    return [[image_id, k, shapely.to_wkt(b.polygon, trim=True, rounding_precision=6),
             round(b.confidence, 6)] for k, b in enumerate(buildings, start=1)]


class SolutionRow(NamedTuple):
    """One building of a SpaceNet CSV: its tile id, polygon (pixel coordinates) and confidence."""

    image_id: str
    polygon: shapely.Geometry
    confidence: float


def read_solution_csv(path, *, confidence_required: bool = True) -> list[SolutionRow]:
    """Rows of a SpaceNet proposal or ground-truth CSV, ``POLYGON EMPTY`` rows left out.

    Args:
        path: CSV with at least ``ImageId`` and ``PolygonWKT_Pix`` (and ``Confidence`` when
            ``confidence_required``; missing confidences count as 1).
        confidence_required: proposals need a ``Confidence`` column, ground truth does not.

    Returns:
        The buildings in file order; image ids of tiles whose only row is ``POLYGON EMPTY`` are
        not lost: see :func:`solution_image_ids`.

    Raises:
        ValueError: unreadable file, missing column, malformed WKT or confidence (naming the
            file and the line).
    """
    rows, _ = _read_csv(path, confidence_required)
    return rows


def solution_image_ids(path) -> set[str]:
    """Every ``ImageId`` in a SpaceNet CSV, including tiles listed with ``POLYGON EMPTY``."""
    return _read_csv(path, False)[1]


def _read_csv(path, confidence_required: bool) -> tuple[list[SolutionRow], set[str]]:
    required = ("ImageId", "PolygonWKT_Pix") + (("Confidence",) if confidence_required else ())
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: missing column(s) {missing}; a SpaceNet CSV has "
                                 f"{', '.join(SOLUTION_COLUMNS)}")
            rows, ids = [], set()
            for line, record in enumerate(reader, start=2):
                ids.add(record["ImageId"])
                row = _parse_row(record, path, line)
                if row is not None:
                    rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: cannot read CSV ({exc})") from None
    return rows, ids


def _parse_row(record: dict, path, line: int) -> SolutionRow | None:
    text = (record.get("PolygonWKT_Pix") or "").strip()
    try:
        geometry = shapely.from_wkt(text)
    except shapely.errors.GEOSException as exc:
        raise ValueError(f"{path}, line {line}: malformed WKT {text[:60]!r} ({exc})") from None
    if geometry is None or geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"{path}, line {line}: PolygonWKT_Pix must be a POLYGON, got "
                         f"{text[:60]!r}")
    if geometry.is_empty:
        return None
    confidence = (record.get("Confidence") or "1").strip()
    try:
        value = float(confidence)
    except ValueError:
        raise ValueError(f"{path}, line {line}: Confidence must be a number, got "
                         f"{confidence!r}") from None
    if not np.isfinite(value):
        raise ValueError(f"{path}, line {line}: Confidence must be finite, got {confidence!r}")
    return SolutionRow(record["ImageId"], shapely.force_2d(geometry), value)
