"""Polygonisation and scoring per 650 x 650 tile: ``python benchmarks/bench_polygons.py``

For ``--tiles`` synthetic SpaceNet 2 tiles of 650 x 650 pixels (``data_stubs.spacenet``, the
size of the real RGB-PanSharpen tiles), times per tile, as the predict / score CLIs and the
training run's ``polygon_*`` metrics do it:

- instances: :func:`assignment2.instances.building_instances` of the 3-class mask (seeds grown
  into the boundary);
- polygons: :func:`assignment2.polygons.instance_polygons` (instances traced along pixel edges);
- matching: :func:`assignment2.polygons.match_polygons` of those polygons against the ground-truth
  GeoJSON polygons (in pixel coordinates) (the SpaceNet 2 rules).

The prediction is the ground truth itself, so the script also prints the F1 of that matching
(close to 1.0: the polygon ceiling). Medians over ``--repeats`` passes; quote ``uptime``, the
numbers are noisy on a busy machine.

``--ceilings`` instead prints the ceiling of building F1 (raster ``building_f1`` and polygon
``polygon_f1`` of :func:`assignment2.metrics.segmentation_metrics`, the ground truth scored
against itself) for boundary widths 1, 2 and 3 on the embedded area and on 30 tiles of dense row
houses (128 px, houses 10-40 px wide and deep sharing walls): the numbers behind
``DEFAULT_BOUNDARY_WIDTH``; and, on the embedded area, the F1 of the ground-truth masks'
polygons against the GeoJSON polygons, as ``python -m assignment2.score`` scores them (the
ceiling of the official number for any raster prediction).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from data_stubs.spacenet import row_houses

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=4, help="650 px tiles per timed pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ceilings", action="store_true",
                        help="print F1 of the ground truth against itself per boundary width")
    return parser.parse_args(argv)


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def _one_pass(tiles):
    from assignment2.instances import building_instances
    from assignment2.polygons import instance_polygons, match_polygons

    seconds, counts = {"instances": 0.0, "polygons": 0.0, "matching": 0.0}, [0, 0, 0]
    for mask, truth in tiles:
        instances, t = _timed(building_instances, mask)
        seconds["instances"] += t
        buildings, t = _timed(instance_polygons, instances)
        seconds["polygons"] += t
        tp_fp_fn, t = _timed(match_polygons, truth, [b.polygon for b in buildings])
        seconds["matching"] += t
        counts = [c + n for c, n in zip(counts, tp_fp_fn)]
    return {k: v / len(tiles) for k, v in seconds.items()}, counts



def _ceilings() -> None:
    import numpy as np

    from assignment2.data import default_data_dir, load_tiles
    from assignment2.masks import building_masks
    from assignment2.metrics import segmentation_metrics

    for width in (1, 2, 3):
        embedded = load_tiles(default_data_dir(), boundary_width=width)
        rng = np.random.default_rng(0)
        rows = [building_masks(row_houses(rng), (128, 128), boundary_width=width)
                for _ in range(30)]
        for name, masks, instances in (
                ("embedded area", embedded.masks, embedded.instances),
                ("row houses", [m for m, _ in rows], [i for _, i in rows])):
            m = segmentation_metrics(masks, masks, true_instances=instances,
                                     boundary_width=width, polygons=True)
            print(f"boundary width {width}, {name:13s}: building_f1 {m['building_f1']:.3f} "
                  f"polygon_f1 {m['polygon_f1']:.3f} (TP {m['building_tp']}, "
                  f"FN {m['building_fn']}, FP {m['building_fp']})")
        print(f"boundary width {width}, embedded area against its GeoJSON polygons (the "
              f"official truth): F1 {_official_ceiling(embedded, width):.3f}")


def _official_ceiling(tiles, width: int) -> float:
    """F1 of the ground-truth masks' polygons against the GeoJSON polygons (score's truth)."""
    from assignment2.data import default_data_dir
    from assignment2.instances import building_instances
    from assignment2.polygons import MIN_AREA, instance_polygons, match_polygons
    from assignment2.score import truth_tiles

    truth = dict(truth_tiles(Path(default_data_dir())))
    counts = [0, 0, 0]
    for tile_id, mask in zip(tiles.ids, tiles.masks):
        buildings = instance_polygons(building_instances(mask, boundary_width=width,
                                                         min_area=MIN_AREA + 1))
        counts = [c + n for c, n in zip(counts, match_polygons(
            truth[tile_id], [b.polygon for b in buildings], [b.confidence for b in buildings]))]
    tp, fp, fn = counts
    return 2 * tp / max(2 * tp + fp + fn, 1)


def main(argv=None) -> int:
    args = _parse(argv)
    if args.ceilings:
        _ceilings()
        return 0
    from assignment2.data import load_tiles
    from assignment2.score import truth_tiles
    from data_stubs.spacenet import generate_area

    with tempfile.TemporaryDirectory() as root:
        area = generate_area(root, n_tiles=args.tiles, tile_size=650)
        data = load_tiles(area)
        truth = dict(truth_tiles(Path(area)))  # the GeoJSON polygons in pixel coordinates
        tiles = [(mask, truth[tile_id]) for tile_id, mask in zip(data.ids, data.masks)]
    buildings = sum(len(truth) for _, truth in tiles)
    passes = [_one_pass(tiles) for _ in range(args.repeats)]
    tp, fp, fn = passes[-1][1]
    print(f"{args.tiles} tiles of 650 x 650 px, {buildings / args.tiles:.0f} buildings per tile, "
          f"medians of {args.repeats} passes, seconds per tile:")
    for step in ("instances", "polygons", "matching"):
        print(f"  {step:10s} {statistics.median(p[0][step] for p in passes):.4f}")
    total = statistics.median(sum(p[0].values()) for p in passes)
    print(f"  {'total':10s} {total:.4f}")
    print(f"ground truth against itself: TP {tp} FP {fp} FN {fn}, "
          f"F1 {2 * tp / max(2 * tp + fp + fn, 1):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
