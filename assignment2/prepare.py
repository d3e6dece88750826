"""``python -m assignment2.prepare SRC OUT``: a SpaceNet 2 area to images and 3-class masks.

Reads a raw area (real download or :mod:`data_stubs.spacenet` stub; an ``AOI_*_Train`` folder or a
folder of them), rasterises each tile's building polygons with the tile's own geotransform
(pixel-centre convention, boundary = footprint minus its erosion, see :mod:`assignment2.masks`)
and writes, atomically and georeferenced like the source tile::

    OUT/images/<id>.tif      uint16 (H, W, 3), pixel-interleaved
    OUT/masks/<id>.tif       uint8 (H, W): 0 background, 1 building interior, 2 boundary
    OUT/instances/<id>.tif   int32 (H, W): 0 no building, k the k-th building polygon
    OUT/prepare_config.json  the config of the run

with ``<id>`` like ``AOI_2_Vegas_img1``. Bad input prints one line on stderr and exits with 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from assignment2.data import DataError, TileSet, load_tiles
from assignment2.geotiff import write_geotiff
from data_stubs.files import write_bytes_atomic


@dataclass
class PrepareConfig:
    """Options of ``python -m assignment2.prepare``."""

    src: Path  # raw SpaceNet area: AOI_<n>_<City>_Train or a folder holding several
    out: Path  # output folder (created); existing tiles of the same ids are replaced
    boundary_width: int = 3  # thickness of the boundary class in pixels (SpaceNet tooling: 3)

    def __post_init__(self) -> None:
        self.src, self.out = Path(self.src), Path(self.out)
        if isinstance(self.boundary_width, bool) or not isinstance(self.boundary_width, int):
            raise TypeError(f"boundary_width must be an int, got {self.boundary_width!r}")
        if not 0 <= self.boundary_width <= 64:
            raise ValueError(f"--boundary-width must be in [0, 64], got {self.boundary_width!r}")
        if self.out.resolve() == self.src.resolve():
            raise ValueError(f"OUT must differ from SRC, got {str(self.out)!r} for both")


def prepare(config: PrepareConfig) -> TileSet:
    """Read ``config.src``, write images, masks, instance maps and the config under ``config.out``.

    Returns:
        The tiles written.

    Raises:
        DataError: the source area is missing, empty or has bad files (the message names them).
    """
    tiles = load_tiles(config.src, boundary_width=config.boundary_width)
    for k, tile_id in enumerate(tiles.ids):
        transform = tiles.transforms[k] if tiles.transforms else None
        write_geotiff(config.out / "images" / f"{tile_id}.tif", tiles.images[k], transform)
        write_geotiff(config.out / "masks" / f"{tile_id}.tif", tiles.masks[k], transform)
        if tiles.instances is not None:
            write_geotiff(config.out / "instances" / f"{tile_id}.tif", tiles.instances[k],
                          transform)
    record = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()}
    write_bytes_atomic(config.out / "prepare_config.json", json.dumps(record, indent=1).encode())
    return tiles


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line on stderr, exit status 2, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m assignment2.prepare",
                     description="Rasterise a SpaceNet 2 area's building polygons into "
                                 "3-class masks (0 background, 1 interior, 2 boundary).")
    parser.add_argument("src", type=Path, help="raw area: AOI_<n>_<City>_Train or its parent")
    parser.add_argument("out", type=Path, help="output folder for images/, masks/, instances/")
    parser.add_argument("--boundary-width", type=int, default=3, metavar="PIXELS",
                        help="thickness of the boundary class in pixels (default: 3)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return int(exc.code or 0)
    try:
        config = PrepareConfig(args.src, args.out, args.boundary_width)
        tiles = prepare(config)
    except (DataError, ValueError, TypeError, OSError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    n_buildings = sum(len(set(inst[inst > 0].tolist())) for inst in tiles.instances or [])
    print(f"prepared {len(tiles)} tiles with {n_buildings} buildings into {config.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
