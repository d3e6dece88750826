"""``python -m assignment2.score PROPOSALS.csv TRUTH``: the SpaceNet 2 building score of a submission.

``PROPOSALS.csv`` is a SpaceNet proposal file (``ImageId,BuildingId,PolygonWKT_Pix,Confidence``,
as ``python -m assignment2.predict`` writes it). ``TRUTH`` is one SpaceNet 2 area
(``AOI_<n>_<City>_Train`` with ``geojson/buildings/``), a folder of areas, or a ground-truth CSV
(``ImageId,BuildingId,PolygonWKT_Pix``; SpaceNet's ``*_Building_Solutions.csv``). Ground-truth
polygons from GeoJSON are moved to pixel coordinates with each tile's GeoTIFF georeferencing and
clipped to the tile (a building cut by the tile edge is scored by its visible part, as in the
chipped labels of SpaceNet's ground-truth CSVs).

Rules (those of the official scorer, ``solaris.eval.challenges.spacenet_buildings_2`` over
``solaris.eval.base.Evaluator.eval_iou_spacenet_csv``; see :mod:`assignment2.polygons`): polygon
IoU with shapely, a match needs IoU **> 0.5**, one to one, proposals by decreasing confidence each
taking its best remaining truth polygon; truth polygons of area < 20 px and proposals of area
<= 20 px are left out; TP, FP and FN are summed per AOI (``AOI_2_Vegas``...), F1 is computed per
AOI, and the **score is the mean of the per-AOI F1** (the challenge ranked by the F1 averaged over
its four cities). Truth tiles absent from the proposals count their buildings as false negatives.

Output: JSON on stdout (and atomically to ``--output``) with ``per_aoi`` (tp, fp, fn, precision,
recall, f1, tiles), ``score``, ``pooled`` (counts summed over all AOIs) and the rules used. Bad
input (a CSV with missing columns or malformed WKT, image ids that match no truth tile, an empty
folder, a folder without images or labels) prints one line naming the file and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely

from assignment2.cli import OneLineParser, fail
from assignment2.data import DataError, list_raw_tiles, read_buildings
from assignment2.geotiff import read_geotiff
from assignment2.metrics import aoi_of, detection_scores
from assignment2.polygons import (
    IOU_THRESHOLD,
    MIN_AREA,
    match_polygons,
    read_solution_csv,
    solution_image_ids,
    to_pixels,
)
from data_stubs.files import write_json_atomic


@dataclass
class ScoreConfig:
    """Options of ``python -m assignment2.score``."""

    proposals: Path  # SpaceNet proposal CSV (ImageId,BuildingId,PolygonWKT_Pix,Confidence)
    truth: Path  # SpaceNet area(s) with geojson/buildings, or a ground-truth CSV
    output: Path | None = None  # also write the JSON here (atomically)
    iou_threshold: float = IOU_THRESHOLD  # a match needs IoU strictly above this (0.5)
    min_area: float = MIN_AREA  # truth needs area >= this, proposals area > this (20 px)

    def __post_init__(self) -> None:
        self.proposals, self.truth = Path(self.proposals), Path(self.truth)
        self.output = None if self.output is None else Path(self.output)
        if not 0 <= self.iou_threshold < 1:
            raise ValueError(f"--iou-threshold must be in [0, 1), got {self.iou_threshold!r}")
        if not self.min_area >= 0:
            raise ValueError(f"--min-area must be >= 0, got {self.min_area!r}")


def truth_tiles(truth: Path):
    """``(image_id, [polygons in pixel coordinates])`` per ground-truth tile, one at a time.

    Args:
        truth: a ground-truth CSV, or a SpaceNet area / folder of areas with GeoJSON labels.
    """
    if truth.is_file():
        rows = read_solution_csv(truth, confidence_required=False)
        by_id = defaultdict(list)
        for row in rows:
            by_id[row.image_id].append(row.polygon)
        for image_id in sorted(solution_image_ids(truth)):
            yield image_id, by_id.get(image_id, [])
        return
    tiles, _ = list_raw_tiles(truth, labelled=True)
    for raw in tiles:
        image, transform = read_geotiff(raw.image)
        if transform is None:
            raise DataError(f"{raw.image}: no GeoTIFF georeferencing (ModelPixelScale/Tiepoint)")
        extent = shapely.box(0, 0, image.shape[1], image.shape[0])
        polygons = [to_pixels(_geometry(b), transform) for b in read_buildings(raw.geojson)]
        yield raw.id, [p.intersection(extent) if p.is_valid else p for p in polygons]


def _geometry(building: list) -> shapely.Geometry:
    """A building of :func:`assignment2.data.read_buildings` as a shapely (Multi)Polygon."""
    polygons = [shapely.Polygon(rings[0], rings[1:]) for rings in building]
    return polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)


def score(config: ScoreConfig) -> dict:
    """Score ``config.proposals`` against ``config.truth`` (see the module docstring)."""
    if not config.proposals.is_file():
        raise ValueError(f"{config.proposals}: proposal CSV not found")
    if not config.truth.exists():
        raise ValueError(f"{config.truth}: truth folder or CSV not found")
    proposals = defaultdict(list)
    for row in read_solution_csv(config.proposals):
        proposals[row.image_id].append(row)
    proposal_ids = solution_image_ids(config.proposals)
    counts, tiles_per_aoi, seen = defaultdict(lambda: np.zeros(3, np.int64)), defaultdict(int), set()
    for image_id, truth in truth_tiles(config.truth):
        rows = proposals.get(image_id, [])
        counts[aoi_of(image_id)] += match_polygons(
            truth, [r.polygon for r in rows], [r.confidence for r in rows],
            iou_threshold=config.iou_threshold, min_area=config.min_area)
        tiles_per_aoi[aoi_of(image_id)] += 1
        seen.add(image_id)
    unknown = sorted(proposal_ids - seen)
    if unknown:
        raise ValueError(f"{config.proposals}: {len(unknown)} image id(s) match no truth tile in "
                         f"{config.truth}, e.g. {unknown[:3]}")
    if not seen:
        raise ValueError(f"{config.truth}: no ground-truth tile")
    return _summary(config, counts, tiles_per_aoi)


def _summary(config: ScoreConfig, counts: dict, tiles_per_aoi: dict) -> dict:
    per_aoi = {aoi: {**detection_scores(*counts[aoi]), "tiles": tiles_per_aoi[aoi]}
               for aoi in sorted(counts)}
    pooled = {**detection_scores(*sum(counts.values())), "tiles": sum(tiles_per_aoi.values())}
    return {"score": float(np.mean([m["f1"] for m in per_aoi.values()])),
            "per_aoi": per_aoi, "pooled": pooled,
            "proposals": str(config.proposals), "truth": str(config.truth),
            "rules": {"iou": f"> {config.iou_threshold}", "truth_area": f">= {config.min_area}",
                      "proposal_area": f"> {config.min_area}",
                      "matching": "one to one, proposals by decreasing Confidence",
                      "score": "mean over AOIs of the per-AOI F1"}}


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m assignment2.score",
                     description="SpaceNet 2 building score (F1 per AOI, averaged over AOIs) of a "
                                 "proposal CSV.")
    parser.add_argument("proposals", type=Path, help="proposal CSV (ImageId,BuildingId,"
                        "PolygonWKT_Pix,Confidence)")
    parser.add_argument("truth", type=Path, help="SpaceNet area(s) with geojson/buildings, or a "
                        "ground-truth CSV")
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--iou-threshold", type=float, default=IOU_THRESHOLD,
                        help=f"a match needs IoU above this (default: {IOU_THRESHOLD})")
    parser.add_argument("--min-area", type=float, default=MIN_AREA, metavar="PIXELS",
                        help=f"area rule: truth >= it, proposals > it (default: {MIN_AREA})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return int(exc.code or 0)
    try:
        config = ScoreConfig(**vars(args))
        result = score(config)
        if config.output is not None:
            write_json_atomic(config.output, result)
    except (DataError, ValueError, TypeError, OSError) as exc:
        return fail(parser.prog, exc)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
