"""``python -m assignment2.prepare SRC OUT``: SpaceNet 2 areas to a streamable prepared data set.

Reads a raw area (real download or :mod:`data_stubs.spacenet` stub; an ``AOI_*_Train`` folder or a
folder of them, Vegas, Paris, Shanghai, Khartoum; images-only ``*_Test_public`` folders are
skipped with a note) ONE TILE AT A TIME: it checks the tile (bands, size, bit depth, CRS against
the lon/lat GeoJSON), rasterises its building polygons with the tile's own geotransform
(:mod:`assignment2.masks`) and writes::

    OUT/tiles/<id>.tile      image uint16 (H, W, C), mask uint8 (H, W) (0 background,
                             1 interior, 2 boundary), instances int32 (H, W); zlib-compressed raw
                             bytes that tf.data decodes in parallel (assignment2.data.Tile)
    OUT/tiles/<id>.json      the tile's metadata (id, AOI, size, source, georeferencing, CRS)
    OUT/index.json           every tile's metadata, per-AOI radiometry (bit depth, 2nd/98th
                             percentiles of the valid pixels per band), skipped tiles, notes
    OUT/prepare_config.json  the config of the run

Memory holds one tile and one histogram per AOI, whatever the number of tiles. Every file is
written atomically and ``index.json`` last, so an interrupted run loses nothing: the next run
reuses each tile already written for the same source file and options (resume). Bad input (a
truncated TIFF, an unreadable GeoJSON, a tile of another size, band count or CRS) prints one line
naming the file on stderr and exits with 2; ``--skip-bad-tiles`` skips such tiles instead and
lists them in ``index.json`` (and on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assignment2.cli import OneLineParser, fail
from assignment2.data import (
    BAND_FOLDERS,
    PREPARED_VERSION,
    DataError,
    PreparedData,
    RawTile,
    Tile,
    encode_tile,
    list_raw_tiles,
    open_prepared,
    read_source_tile,
    read_tile,
)
from assignment2.masks import DEFAULT_BOUNDARY_WIDTH
from assignment2.radiometry import BIT_DEPTH_CHOICES, BandHistogram, valid_mask
from data_stubs.files import write_bytes_atomic, write_json_atomic


@dataclass
class PrepareConfig:
    """Options of ``python -m assignment2.prepare``."""

    src: Path  # raw SpaceNet area: AOI_<n>_<City>_Train or a folder holding several
    out: Path  # output folder (created); tiles already prepared with the same options are reused
    boundary_width: int = DEFAULT_BOUNDARY_WIDTH  # thickness of the boundary class in pixels
    bands: str = "rgb"  # "rgb" (RGB-PanSharpen, 3 bands) or "mul" (MUL-PanSharpen, 8 bands)
    bit_depth: str = "auto"  # "auto" (uint8 -> 8, uint16 -> 11), or force "8", "11", "16"
    skip_bad_tiles: bool = False  # skip unreadable/inconsistent tiles (listed) instead of failing

    def __post_init__(self) -> None:
        self.src, self.out = Path(self.src), Path(self.out)
        if isinstance(self.boundary_width, bool) or not isinstance(self.boundary_width, int):
            raise TypeError(f"boundary_width must be an int, got {self.boundary_width!r}")
        if not 0 <= self.boundary_width <= 64:
            raise ValueError(f"--boundary-width must be in [0, 64], got {self.boundary_width!r}")
        if self.bands not in BAND_FOLDERS:
            raise ValueError(f"--bands must be one of {tuple(BAND_FOLDERS)}, got {self.bands!r}")
        self.bit_depth = str(self.bit_depth)
        if self.bit_depth not in BIT_DEPTH_CHOICES:
            raise ValueError(f"--bit-depth must be one of {BIT_DEPTH_CHOICES}, "
                             f"got {self.bit_depth!r}")
        if self.out.resolve() == self.src.resolve():
            raise ValueError(f"OUT must differ from SRC, got {str(self.out)!r} for both")

    def settings(self) -> dict:
        """The options a prepared tile depends on (a tile is reused only if they match)."""
        return {"boundary_width": self.boundary_width, "bands": self.bands,
                "bit_depth": self.bit_depth}


def _stamp(path: Path | None) -> list:
    if path is None:
        return []
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def _reusable(raw: RawTile, config: PrepareConfig) -> Tile | None:
    """The tile an earlier (interrupted) run prepared from the same files and options, if any."""
    meta = config.out / "tiles" / f"{raw.id}.json"
    try:
        record = json.loads(meta.read_text(encoding="utf-8"))
        if record["settings"] != config.settings() or \
                record["stamp"] != [_stamp(raw.image), _stamp(raw.geojson)]:
            return None
        tile = Tile.from_json(record["tile"], config.out)
        return tile if tile.file.stat().st_size == tile.nbytes else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _prepare_one(raw: RawTile, config: PrepareConfig, first: Tile | None, depths: dict
                 ) -> tuple[Tile, np.ndarray]:
    """Prepare (or reuse) one tile; returns its metadata and its image (for the statistics).

    The tile is checked against the data set (``first`` tile, per-AOI bit ``depths``) before
    anything is written.
    """
    tile = _reusable(raw, config)
    if tile is not None:
        _check_consistent(tile, first, depths)
        return tile, read_tile(tile).image
    source = read_source_tile(raw, bands=config.bands, bit_depth=config.bit_depth,
                              boundary_width=config.boundary_width)
    height, width, bands = source.image.shape
    path = config.out / "tiles" / f"{raw.id}.tile"
    tile = Tile(raw.id, raw.aoi, path, 0, str(raw.image), height, width, bands,
                source.bit_depth, source.transform, source.crs.epsg)
    _check_consistent(tile, first, depths)
    payload = encode_tile(source.image, source.mask, source.instances)
    write_bytes_atomic(path, payload)
    tile = dataclasses.replace(tile, nbytes=len(payload))
    write_json_atomic(config.out / "tiles" / f"{raw.id}.json",
                      {"tile": tile.to_json(), "settings": config.settings(),
                       "stamp": [_stamp(raw.image), _stamp(raw.geojson)]})
    return tile, source.image


def _check_consistent(tile: Tile, first: Tile | None, depths: dict) -> None:
    """A tile of another size, band count or bit depth than the data set is an error."""
    if first is not None and (tile.height, tile.width, tile.bands) != \
            (first.height, first.width, first.bands):
        raise DataError(f"{tile.source}: tile is {tile.height}x{tile.width}x{tile.bands}, the "
                        f"data set's tiles are {first.height}x{first.width}x{first.bands} "
                        f"(first: {Path(first.source).name})")
    if depths.get(tile.aoi, tile.bit_depth) != tile.bit_depth:
        raise DataError(f"{tile.source}: {tile.bit_depth}-bit pixels in {tile.aoi}, whose "
                        f"other tiles are {depths[tile.aoi]}-bit")
    depths[tile.aoi] = tile.bit_depth


def prepare(config: PrepareConfig, *, log=None) -> PreparedData:
    """Prepare ``config.src`` into ``config.out`` tile by tile (see the module docstring).

    Args:
        config: the options.
        log: called with each note / skipped-tile line (default: print to stderr).

    Returns:
        The prepared data set, as :func:`assignment2.data.open_prepared` reads it.

    Raises:
        DataError: missing or empty source, or a bad file (without ``skip_bad_tiles``).
    """
    log = log or (lambda line: print(line, file=sys.stderr))
    raws, notes = list_raw_tiles(config.src, bands=config.bands)
    for note in notes:
        log(note)
    tiles, skipped, histograms, depths = [], [], {}, {}
    for raw in raws:
        try:
            tile, image = _prepare_one(raw, config, tiles[0] if tiles else None, depths)
        except DataError as exc:
            if not config.skip_bad_tiles:
                raise
            skipped.append({"id": raw.id, "path": str(raw.image), "error": str(exc)})
            log(f"skipped: {exc}")
            continue
        histogram = histograms.setdefault(tile.aoi, BandHistogram(tile.bands, tile.bit_depth))
        histogram.add(image, valid_mask(image))
        tiles.append(tile)
    if not tiles:
        raise DataError(f"{config.src}: no usable tile ({len(skipped)} skipped)")
    _write_index(config, tiles, histograms, skipped, notes)
    return open_prepared(config.out)


def _write_index(config, tiles, histograms, skipped, notes) -> None:
    record = {"version": PREPARED_VERSION, "bands": config.bands,
              "boundary_width": config.boundary_width,
              "tile_size": [tiles[0].height, tiles[0].width],
              "tiles": [t.to_json() for t in tiles],
              "radiometry": {a: h.radiometry().to_json() for a, h in sorted(histograms.items())},
              "skipped": skipped, "notes": notes}
    write_json_atomic(config.out / "index.json", record, indent=1)
    config_record = {k: str(v) if isinstance(v, Path) else v
                     for k, v in dataclasses.asdict(config).items()}
    write_bytes_atomic(config.out / "prepare_config.json",
                       json.dumps(config_record, indent=1).encode())


def _cache_root() -> Path:
    return Path(os.environ.get("CNN_COURSE_CACHE") or Path.home() / ".cache" / "cnn-course")


def prepared_data(data_dir, *, bands: str = "rgb", boundary_width: int = DEFAULT_BOUNDARY_WIDTH,
                  bit_depth: str = "auto", skip_bad_tiles: bool = False, cache=None,
                  log=None) -> PreparedData:
    """A prepared data set for ``data_dir``: opened if prepared, else prepared once into a cache.

    A raw folder is prepared into ``<cache>/prepared/<name>-<key>`` where the key hashes the
    folder, the options and every source file's size and modification time: a changed file or
    option prepares again (reusing the unchanged tiles is :func:`prepare`'s resume), an
    interrupted preparation resumes.

    Args:
        data_dir: prepared folder (``index.json``), raw area or folder of areas.
        bands, boundary_width, bit_depth, skip_bad_tiles: as :class:`PrepareConfig`.
        cache: cache folder (default ``$CNN_COURSE_CACHE`` or ``~/.cache/cnn-course``).
        log: where notes go (default stderr).

    Raises:
        DataError: bad data (naming the file); a cached preparation that skipped tiles when
            ``skip_bad_tiles`` is False (naming the first bad file).
    """
    folder = Path(data_dir)
    if (folder / "index.json").is_file() or (folder / "images").is_dir():
        data = open_prepared(folder)
        if data.bands != bands:
            raise DataError(f"{folder}: prepared with --bands {data.bands}, not {bands}")
    else:
        config = PrepareConfig(folder, Path(), boundary_width, bands, bit_depth, True)
        raws, _ = list_raw_tiles(folder, bands=bands)
        key = hashlib.sha1(json.dumps([str(folder.resolve()), config.settings(), [
            [_stamp(r.image), _stamp(r.geojson)] for r in raws]]).encode()).hexdigest()[:12]
        config.out = Path(cache or _cache_root()) / "prepared" / f"{folder.name}-{key}"
        data = open_prepared(config.out) if (config.out / "index.json").is_file() \
            else prepare(config, log=log)
    if data.skipped and not skip_bad_tiles:
        first = data.skipped[0]
        raise DataError(f"{first['error']} ({len(data.skipped)} bad tiles; --skip-bad-tiles "
                        f"skips them)")
    return data


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m assignment2.prepare",
                     description="Prepare SpaceNet 2 areas for streaming: checked tiles and "
                                 "3-class masks (0 background, 1 interior, 2 boundary).")
    parser.add_argument("src", type=Path, help="raw area: AOI_<n>_<City>_Train or its parent")
    parser.add_argument("out", type=Path, help="output folder (index.json, tiles/)")
    parser.add_argument("--boundary-width", type=int, default=DEFAULT_BOUNDARY_WIDTH,
                        metavar="PIXELS", help="thickness of the boundary class in pixels "
                        f"(default: {DEFAULT_BOUNDARY_WIDTH})")
    parser.add_argument("--bands", choices=tuple(BAND_FOLDERS), default="rgb",
                        help="RGB-PanSharpen (3 bands) or MUL-PanSharpen (8 bands) "
                        "(default: rgb)")
    parser.add_argument("--bit-depth", choices=BIT_DEPTH_CHOICES, default="auto",
                        help="digital number range: auto = uint8 8-bit, uint16 11-bit "
                        "(default: auto)")
    parser.add_argument("--skip-bad-tiles", action="store_true",
                        help="skip unreadable or inconsistent tiles (listed in index.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return int(exc.code or 0)
    try:
        config = PrepareConfig(args.src, args.out, args.boundary_width, args.bands,
                               args.bit_depth, args.skip_bad_tiles)
        data = prepare(config)
    except (DataError, ValueError, TypeError, OSError) as exc:
        return fail(parser.prog, exc)
    depths = {a: r.bit_depth for a, r in data.radiometry.items()}
    print(f"prepared {len(data.tiles)} tiles ({', '.join(f'{a}: {b}-bit' for a, b in depths.items())}"
          f"; {len(data.skipped)} skipped) into {config.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
