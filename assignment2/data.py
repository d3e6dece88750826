"""Reading SpaceNet 2 areas and prepared folders into tiles, normalisation and the train/val split.

Two kinds of folders are read:

- a raw SpaceNet 2 area (``AOI_<n>_<City>_Train`` with ``RGB-PanSharpen/`` (or
  ``MUL-PanSharpen/``) and ``geojson/buildings/``, or a folder holding several of them, e.g. the
  four cities; images-only ``*_Test_public`` areas are skipped for training):
  :func:`list_raw_tiles` lists it, :func:`read_source_tile` reads and checks ONE tile (bands,
  bit depth, CRS against the lon/lat GeoJSON) and rasterises its building polygons with the
  tile's own geotransform (:mod:`assignment2.masks`);
- a prepared data set (``index.json`` + ``tiles/<id>.tile``) written by
  ``python -m assignment2.prepare``: :func:`open_prepared` lists it, :func:`read_tile` reads one
  tile with numpy, :mod:`assignment2.pipeline` streams it with ``tf.data``.

:func:`load_tiles` reads a small folder of either kind wholly into memory (tests, figures).

Every problem with the data raises :class:`DataError` naming the offending file or folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assignment2.geotiff import DataError, GeoTransform, read_geotiff
from assignment2.masks import DEFAULT_BOUNDARY_WIDTH, building_masks
from data_stubs.files import write_bytes_atomic

__all__ = [
    "BAND_FOLDERS",
    "MAX_VALUE",
    "DataError",
    "PreparedData",
    "RawTile",
    "SourceTile",
    "Tile",
    "TileArrays",
    "TileSet",
    "aoi_name",
    "encode_tile",
    "iter_source_tiles",
    "list_raw_tiles",
    "open_prepared",
    "read_source_tile",
    "read_tile",
    "split_tiles",
    "default_data_dir",
    "load_split",
    "load_tiles",
    "normalize",
    "read_buildings",
    "save_split",
    "split_ids",
]

#: Largest value of the 11-bit WorldView-3 pan-sharpened bands; ``normalize`` divides by it.
MAX_VALUE = 2047
_ID = re.compile(r"(AOI_\d+_[A-Za-z]+_img\d+)")
_IMAGE_DIR, _GEOJSON_DIR = "RGB-PanSharpen", Path("geojson") / "buildings"


@dataclass
class TileSet:
    """Tiles of one or more areas, index-aligned.

    Attributes:
        ids: tile ids like ``"AOI_2_Vegas_img1"``, sorted.
        images: uint16 ``(H, W, 3)`` pixel-interleaved 11-bit images.
        masks: uint8 ``(H, W)`` with 0 background, 1 building interior, 2 building boundary.
        instances: int32 ``(H, W)`` (0 no building, k the k-th building polygon of the tile),
            or ``None`` when a prepared folder has no ``instances/``.
        transforms: each image's :class:`~assignment2.geotiff.GeoTransform` (``None`` for
            tiles without georeferencing), or ``None`` if unknown.
        bit_depths: each image's bit depth (8, 11 or 16), or ``None`` if unknown.
    """

    ids: list[str]
    images: list[np.ndarray]
    masks: list[np.ndarray]
    instances: list[np.ndarray] | None = None
    transforms: list[GeoTransform | None] | None = None
    bit_depths: list[int] | None = None

    def __len__(self) -> int:
        return len(self.ids)


def load_tiles(data_dir, *, boundary_width: int = DEFAULT_BOUNDARY_WIDTH) -> TileSet:
    """Load a small raw SpaceNet area (AOI folder or folder of them) or prepared folder into memory.

    Everything is held in memory: use it for a few tiles (tests, figures, grading). Training
    and evaluation stream prepared tiles instead (:func:`open_prepared`,
    :mod:`assignment2.pipeline`). Raw tiles are read and checked by :func:`read_source_tile`.

    Args:
        data_dir: the folder.
        boundary_width: boundary thickness in pixels for masks rasterised from raw polygons
            (ignored for prepared folders, whose masks are read as stored).

    Returns:
        A :class:`TileSet` sorted by id.

    Raises:
        DataError: missing or empty folder, unknown layout, unpaired, corrupt or inconsistent files.
    """
    if not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be a path, got {data_dir!r}")
    if isinstance(boundary_width, bool) or not isinstance(boundary_width, (int, np.integer)) \
            or boundary_width < 0:
        raise ValueError(f"boundary_width must be an int >= 0, got {boundary_width!r}")
    folder = Path(data_dir)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: data folder is a file, not a folder")
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder does not exist")
    if not any(folder.iterdir()):
        raise DataError(f"{folder}: data folder is empty")
    if (folder / "index.json").is_file() or (folder / "images").is_dir():
        return _load_prepared(folder)
    if not _source_areas(folder, _IMAGE_DIR):
        raise DataError(f"{folder}: neither a prepared folder (index.json) nor a SpaceNet "
                        f"area ({_IMAGE_DIR}/, {_GEOJSON_DIR}/) nor a folder of AOI_* areas")
    raws, _ = list_raw_tiles(folder)
    tiles = [read_source_tile(raw, boundary_width=int(boundary_width)) for raw in raws]
    return TileSet(ids=[t.id for t in tiles], images=[t.image for t in tiles],
                   masks=[t.mask for t in tiles], instances=[t.instances for t in tiles],
                   transforms=[t.transform for t in tiles],
                   bit_depths=[t.bit_depth for t in tiles])


def _load_prepared(folder: Path) -> TileSet:
    data = open_prepared(folder)
    arrays = [read_tile(tile) for tile in data.tiles]
    return TileSet(ids=[t.id for t in data.tiles], images=[a.image for a in arrays],
                   masks=[a.mask for a in arrays], instances=[a.instances for a in arrays],
                   transforms=[t.transform for t in data.tiles],
                   bit_depths=[t.bit_depth for t in data.tiles])


def _ids_of(files: list[Path], folder: Path) -> dict[str, Path]:
    found = {}
    for path in files:
        match = _ID.search(path.name)
        if match is None:
            raise DataError(f"{path}: file name has no tile id like AOI_2_Vegas_img1")
        found[match.group(1)] = path
    if not found:
        raise DataError(f"{folder}: no files")
    return found


def _pair(first: dict[str, Path], second: dict[str, Path], what: tuple[str, str]) -> list[str]:
    """Ids present in both; DataError naming the first file that has no partner."""
    for ids, other, missing in ((first, second, what[1]), (second, first, what[0])):
        lonely = sorted(set(ids) - set(other))
        if lonely:
            more = f" (and {len(lonely) - 1} more files)" if len(lonely) > 1 else ""
            raise DataError(f"{ids[lonely[0]]}: has no matching {missing}{more}")
    return sorted(first)


def _to_pixels(building: list, transform) -> list[list[np.ndarray]]:
    polygons = []
    for polygon in building:
        rings = []
        for ring in polygon:
            x, y = transform.lonlat_to_pixel(ring[:, 0], ring[:, 1])
            rings.append(np.stack([x, y], axis=1))
        polygons.append(rings)
    return polygons


def read_buildings(path) -> list[list[list[np.ndarray]]]:
    """Building footprints of a SpaceNet GeoJSON as lon/lat multipolygons.

    An empty (0-byte) file, as some real tiles have, means no buildings. Features whose geometry
    is null or not a (Multi)Polygon are skipped; Z coordinates are dropped.

    Args:
        path: ``buildings_AOI_<n>_<City>_img<k>.geojson``.

    Returns:
        One entry per building: a list of polygons, each a list of ``(N, 2)`` lon/lat rings.

    Raises:
        DataError: unreadable file, invalid JSON or not a FeatureCollection of polygons.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read GeoJSON ({exc})") from None
    if not text.strip():
        return []
    try:
        collection = json.loads(text)
        features = collection["features"]
        return [b for b in (_feature_polygons(f) for f in features) if b]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise DataError(f"{path}: unreadable GeoJSON ({type(exc).__name__}: {exc})") from None


def _feature_polygons(feature: dict) -> list[list[np.ndarray]]:
    geometry = feature.get("geometry") or {}
    kind, coordinates = geometry.get("type"), geometry.get("coordinates")
    polygons = {"Polygon": [coordinates], "MultiPolygon": coordinates}.get(kind, [])
    return [[_ring(ring) for ring in polygon] for polygon in polygons]


def _ring(ring) -> np.ndarray:
    points = np.asarray(ring, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] < 2 or not np.all(np.isfinite(points)):
        raise ValueError(f"ring is not a list of finite [lon, lat(, z)] points: {str(ring)[:60]}")
    return points[:, :2]


def normalize(image):
    """uint16 11-bit digital numbers to float32 reflectance-like values in [0, 1].

    ``x / 2047`` clipped to [0, 1]. A fixed 11-bit scaling (rather than per-tile or per-channel
    percentiles) maps the same roof to the same value in every tile, needs no statistics pass,
    keeps no-data pixels at exactly 0 and commutes with cropping and augmentation.

    Args:
        image: numpy array or TensorFlow tensor of any shape (e.g. ``(H, W, 3)`` or
            ``(N, H, W, 3)``), integer or float, holding raw digital numbers 0..2047.

    Returns:
        float32 of the same shape and kind (numpy in, numpy out; tensor in, tensor out).
    """
    tf = sys.modules.get("tensorflow")
    if tf is not None and tf.is_tensor(image):
        if not (image.dtype.is_integer or image.dtype.is_floating):
            raise TypeError(f"image must hold numbers, got a tensor of {image.dtype!r}")
        return tf.clip_by_value(tf.cast(image, tf.float32) / MAX_VALUE, 0.0, 1.0)
    if isinstance(image, np.generic):
        image = np.asarray(image)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array or a tensor, got {type(image).__name__}")
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise TypeError(f"image must hold numbers, got dtype {image.dtype!r}")
    return np.clip(image.astype(np.float32) / np.float32(MAX_VALUE), 0.0, 1.0)


def split_ids(ids, val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Random, reproducible train/validation split of tile ids.

    ``n_val = floor(val_fraction * n + 0.5)`` clipped to ``[1, n - 1]``; ids are sorted first, so
    the split depends only on the set of ids, the fraction and the seed.

    Args:
        ids: at least two distinct tile ids.
        val_fraction: share of tiles for validation, in (0, 1).
        seed: seed of the permutation.

    Returns:
        ``(train_ids, val_ids)``, each sorted, disjoint, together all ids.
    """
    if isinstance(ids, str) or not all(isinstance(i, str) for i in ids):
        raise TypeError(f"ids must be a list of strings, got {str(ids)[:80]}")
    unique = sorted(set(ids))
    if len(unique) != len(ids) or len(unique) < 2:
        raise ValueError(f"ids must be at least 2 distinct ids, got {len(unique)} distinct "
                         f"of {len(ids)}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) \
            or not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    n_val = min(max(math.floor(val_fraction * len(unique) + 0.5), 1), len(unique) - 1)
    order = np.random.default_rng(seed).permutation(len(unique))
    val = sorted(unique[i] for i in order[:n_val])
    train = sorted(unique[i] for i in order[n_val:])
    return train, val


def save_split(path, train_ids, val_ids) -> Path:
    """Write ``{"train": [...], "val": [...]}`` as JSON, atomically."""
    train_ids, val_ids = list(train_ids), list(val_ids)
    overlap = sorted(set(train_ids) & set(val_ids))
    if overlap:
        raise ValueError(f"train_ids and val_ids overlap: {overlap[:5]}")
    text = json.dumps({"train": train_ids, "val": val_ids}, indent=1)
    return write_bytes_atomic(path, text.encode())


def load_split(path) -> tuple[list[str], list[str]]:
    """Read a split written by :func:`save_split`; DataError naming the file if it is bad."""
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        train, val = content["train"], content["val"]
        if not all(isinstance(i, str) for i in [*train, *val]):
            raise TypeError("ids must be strings")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: unreadable split file ({type(exc).__name__}: {exc})") from None
    return list(train), list(val)


def default_data_dir(*, seed: int = 0, n_tiles: int = 40, tile_size: int = 192) -> Path:
    """The embedded SpaceNet 2 stub area, generated on first use into a cache folder.

    The cache is ``$CNN_COURSE_CACHE`` or ``~/.cache/cnn-course``. The area is generated in a
    temporary folder beside its final place and renamed into it, so concurrent first uses never
    see a half-written area; a folder without its completion marker is regenerated.

    Args:
        seed, n_tiles, tile_size: passed to :func:`data_stubs.spacenet.generate_area`; the
            defaults are the embedded area of the README (40 tiles of 192 px, ~5 s to generate).

    Returns:
        The ``AOI_2_Vegas_Train`` folder of the cached area.
    """
    from data_stubs.spacenet import STUB_VERSION, generate_area

    cache = Path(os.environ.get("CNN_COURSE_CACHE") or Path.home() / ".cache" / "cnn-course")
    target = cache / f"spacenet2-stub-v{STUB_VERSION}-seed{seed}-n{n_tiles}-s{tile_size}"
    area = target / "AOI_2_Vegas_Train"
    if (target / "COMPLETE").is_file():
        return area
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache))
    try:
        generate_area(scratch, seed=seed, n_tiles=n_tiles, tile_size=tile_size)
        (scratch / "COMPLETE").write_text("generated by data_stubs.spacenet.generate_area\n")
        _replace_incomplete(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return area


def _replace_incomplete(scratch: Path, target: Path) -> None:
    """Rename ``scratch`` onto ``target`` unless another process completed it meanwhile."""
    for _ in range(3):
        if (target / "COMPLETE").is_file():
            return
        if target.exists():  # left incomplete by an interrupted run: move it aside, then delete
            _discard_incomplete(target)
        try:
            os.rename(scratch, target)
            return
        except OSError:  # someone renamed theirs first; loop re-checks the marker
            continue
    raise DataError(f"{target}: could not create the cached stub area")


def _discard_incomplete(target: Path) -> None:
    trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    try:
        os.rename(target, trash / "area")
        if (trash / "area" / "COMPLETE").is_file():  # completed by another process meanwhile
            os.rename(trash / "area", target)
    except OSError:
        pass
    shutil.rmtree(trash, ignore_errors=True)


# --------------------------------------------------------------------------- SpaceNet areas, tile by tile

#: Image folder (and file prefix) of each band set; MUL-PanSharpen has WorldView-3's 8 bands.
BAND_FOLDERS = {"rgb": "RGB-PanSharpen", "mul": "MUL-PanSharpen"}
BAND_COUNTS = {"rgb": 3, "mul": 8}


def aoi_name(tile_id: str) -> str:
    """``"AOI_2_Vegas_img12"`` -> ``"AOI_2_Vegas"``: the area of interest a tile belongs to."""
    return tile_id.rsplit("_img", 1)[0]


@dataclass(frozen=True)
class RawTile:
    """One tile of a raw SpaceNet area: its id, AOI, GeoTIFF and building GeoJSON (or None)."""

    id: str
    aoi: str
    image: Path
    geojson: Path | None


@dataclass
class SourceTile:
    """One raw tile read into memory (see :func:`read_source_tile`).

    Attributes:
        id, aoi, source: tile id, its AOI and the GeoTIFF read.
        image: uint16 ``(H, W, C)`` digital numbers.
        transform: the tile's :class:`GeoTransform`; crs: its :class:`~assignment2.geotiff.Crs`.
        bit_depth: 8, 11 or 16 (:func:`assignment2.radiometry.detect_bit_depth`).
        valid: bool ``(H, W)``, False on no-data pixels (every band 0).
        mask, instances: uint8 / int32 ``(H, W)`` rasterised buildings, or None (no GeoJSON).
    """

    id: str
    aoi: str
    source: Path
    image: np.ndarray
    transform: GeoTransform
    crs: object
    bit_depth: int
    valid: np.ndarray
    mask: np.ndarray | None = None
    instances: np.ndarray | None = None


def _check_bands(bands: str) -> str:
    if bands not in BAND_FOLDERS:
        raise ValueError(f"bands must be one of {tuple(BAND_FOLDERS)}, got {bands!r}")
    return bands


def _source_areas(folder: Path, image_dir: str) -> list[Path]:
    if (folder / image_dir).is_dir():
        return [folder]
    return sorted(p for p in folder.glob("AOI_*") if (p / image_dir).is_dir())


def list_raw_tiles(src, *, bands: str = "rgb", labelled: bool = True
                   ) -> tuple[list[RawTile], list[str]]:
    """The tiles of a raw area or a folder of areas, without reading them.

    Args:
        src: ``AOI_<n>_<City>_Train`` (or ``_Test_public``) or a folder holding several.
        bands: ``"rgb"`` (RGB-PanSharpen, 3 bands) or ``"mul"`` (MUL-PanSharpen, 8 bands).
        labelled: True for training: images-only areas (no ``geojson/buildings``, e.g.
            ``AOI_2_Vegas_Test_public``) are skipped with a note; False lists them as well
            (prediction), with ``geojson=None``.

    Returns:
        ``(tiles sorted by id, notes)``; each note is one line saying what was skipped.

    Raises:
        DataError: no area, no tile, unpaired files or duplicate ids (naming the file).
    """
    folder, image_dir = Path(src), BAND_FOLDERS[_check_bands(bands)]
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder does not exist")
    areas = _source_areas(folder, image_dir)
    if not areas:
        raise DataError(f"{folder}: no SpaceNet area with a {image_dir}/ folder (an "
                        f"AOI_<n>_<City>_Train folder or a folder of them)")
    tiles, notes = [], []
    for area in areas:
        if labelled and not (area / _GEOJSON_DIR).is_dir():
            notes.append(f"note: {area.name} has no {_GEOJSON_DIR}/ (images only): "
                         f"not used for training")
            continue
        tiles += _area_tiles(area, image_dir, labelled)
    if not tiles:
        raise DataError(f"{folder}: no labelled tiles to train on ({'; '.join(notes)})")
    ids = [t.id for t in tiles]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise DataError(f"{folder}: tile ids occur in more than one area: {duplicates[:5]}")
    return sorted(tiles, key=lambda t: t.id), notes


def _area_tiles(area: Path, image_dir: str, labelled: bool) -> list[RawTile]:
    images = _ids_of(sorted((area / image_dir).glob("*.tif")), area / image_dir)
    if not (area / _GEOJSON_DIR).is_dir():
        return [RawTile(i, aoi_name(i), images[i], None) for i in sorted(images)]
    geojsons = _ids_of(sorted((area / _GEOJSON_DIR).glob("*.geojson")), area / _GEOJSON_DIR)
    ids = _pair(images, geojsons, ("image", "GeoJSON")) if labelled else sorted(images)
    return [RawTile(i, aoi_name(i), images[i], geojsons.get(i)) for i in ids]


def read_source_tile(raw: RawTile, *, bands: str = "rgb", bit_depth="auto",
                     boundary_width: int = DEFAULT_BOUNDARY_WIDTH) -> SourceTile:
    """Read one raw tile: pixels, georeferencing, CRS check, bit depth and (if labelled) masks.

    Raises:
        DataError: naming the file: corrupt TIFF, wrong band count or dtype, no or non-lon/lat
            georeferencing, values beyond the bit depth, unreadable GeoJSON.
    """
    from assignment2.geotiff import check_lonlat, read_crs
    from assignment2.radiometry import detect_bit_depth, valid_mask

    image, transform = read_geotiff(raw.image)
    expected = BAND_COUNTS[_check_bands(bands)]
    if image.ndim != 3 or image.shape[-1] != expected:
        raise DataError(f"{raw.image}: expected a {expected}-band image ({bands}), got shape "
                        f"{image.shape}")
    depth = detect_bit_depth(image, raw.image, bit_depth)
    if transform is None:
        raise DataError(f"{raw.image}: no GeoTIFF georeferencing (ModelPixelScale/Tiepoint)")
    crs = read_crs(raw.image)
    check_lonlat(raw.image, crs, transform)
    tile = SourceTile(raw.id, raw.aoi, raw.image, image.astype(np.uint16, copy=False),
                      transform, crs, depth, valid_mask(image))
    if raw.geojson is not None:
        buildings = read_buildings(raw.geojson)
        _check_geojson_lonlat(raw.geojson, buildings)
        polygons = [_to_pixels(building, transform) for building in buildings]
        tile.mask, tile.instances = building_masks(polygons, image.shape[:2],
                                                   boundary_width=boundary_width)
    return tile


def _check_geojson_lonlat(path: Path, buildings) -> None:
    for building in buildings:
        for polygon in building:
            for ring in polygon:
                if np.abs(ring[:, 0]).max() > 180 or np.abs(ring[:, 1]).max() > 90:
                    raise DataError(f"{path}: coordinates {ring[0].tolist()} are not lon/lat "
                                    f"degrees (EPSG:4326), as SpaceNet's GeoJSON must be")


def iter_source_tiles(src, *, bands: str = "rgb", bit_depth="auto", labelled: bool = False):
    """Yield the :class:`SourceTile` of every tile of a raw area (or folder of areas), one at a time.

    For prediction (``labelled=False``, the default) images-only ``*_Test_public`` areas are
    included and masks are only made where a GeoJSON exists. Memory holds one tile.
    """
    tiles, _ = list_raw_tiles(src, bands=bands, labelled=labelled)
    for raw in tiles:
        yield read_source_tile(raw, bands=bands, bit_depth=bit_depth)


# --------------------------------------------------------------------------- prepared data sets

#: Version of the prepared layout (``index.json``); older folders must be prepared again.
PREPARED_VERSION = 2


@dataclass(frozen=True)
class Tile:
    """One tile of a prepared data set (metadata only; :func:`read_tile` loads its pixels).

    Attributes:
        id, aoi: ``"AOI_2_Vegas_img1"`` and ``"AOI_2_Vegas"``.
        file: the prepared ``tiles/<id>.tile`` (zlib-compressed little-endian raw bytes: image
            uint16 ``(H, W, C)``, mask uint8 ``(H, W)``, instances int32 ``(H, W)``).
        nbytes: the file's size, checked when the data set is opened.
        source: the raw GeoTIFF it came from.
        height, width, bands, bit_depth: shape and bit depth of the image.
        transform: its :class:`GeoTransform`; epsg: the CRS code its GeoTIFF declares (or None).
    """

    id: str
    aoi: str
    file: Path
    nbytes: int
    source: str
    height: int
    width: int
    bands: int
    bit_depth: int
    transform: GeoTransform | None
    epsg: int | None

    def to_json(self) -> dict:
        record = dataclasses.asdict(self)
        record["file"] = self.file.name
        record["transform"] = None if self.transform is None else list(self.transform)
        return record

    @classmethod
    def from_json(cls, record: dict, folder: Path) -> Tile:
        transform = record.get("transform")
        return cls(**{**record, "file": folder / "tiles" / record["file"],
                      "transform": None if transform is None else GeoTransform(*transform)})


@dataclass
class TileArrays:
    """Pixels of one prepared tile: image uint16 ``(H, W, C)``, mask uint8, instances int32."""

    image: np.ndarray
    mask: np.ndarray
    instances: np.ndarray


@dataclass
class PreparedData:
    """A prepared data set: its folder, tiles (sorted by id), per-AOI radiometry, band set."""

    root: Path
    tiles: list[Tile]
    radiometry: dict
    bands: str
    boundary_width: int
    skipped: list[dict]
    notes: list[str] = dataclasses.field(default_factory=list)

    def by_id(self, ids) -> list[Tile]:
        """The tiles with these ids, in that order (DataError naming an unknown id)."""
        position = {t.id: t for t in self.tiles}
        missing = [i for i in ids if i not in position]
        if missing:
            raise DataError(f"{self.root}: tile ids not in this data set: {missing[:3]}")
        return [position[i] for i in ids]


def encode_tile(image: np.ndarray, mask: np.ndarray, instances: np.ndarray) -> bytes:
    """The bytes of a ``.tile`` file (see :class:`Tile`); zlib level 1: fast, masks shrink ~50x."""
    import zlib

    payload = (np.ascontiguousarray(image, "<u2").tobytes() + np.ascontiguousarray(mask, "u1")
               .tobytes() + np.ascontiguousarray(instances, "<i4").tobytes())
    return zlib.compress(payload, 1)


def read_tile(tile: Tile) -> TileArrays:
    """Decode one prepared tile with numpy (the same bytes ``tf.data`` decodes in the pipeline)."""
    import zlib

    try:
        raw = zlib.decompress(tile.file.read_bytes())
    except (OSError, zlib.error) as exc:
        raise DataError(f"{tile.file}: corrupt prepared tile ({exc}); run prepare again") \
            from None
    h, w, c = tile.height, tile.width, tile.bands
    sizes = (h * w * c * 2, h * w, h * w * 4)
    if len(raw) != sum(sizes):
        raise DataError(f"{tile.file}: prepared tile holds {len(raw)} bytes, expected "
                        f"{sum(sizes)} for {h}x{w}x{c}; run prepare again")
    image = np.frombuffer(raw, "<u2", h * w * c).reshape(h, w, c).astype(np.uint16)
    mask = np.frombuffer(raw, "u1", h * w, sizes[0]).reshape(h, w).copy()
    instances = np.frombuffer(raw, "<i4", h * w, sizes[0] + sizes[1]).reshape(h, w)
    return TileArrays(image, mask, instances.astype(np.int32))


def open_prepared(folder) -> PreparedData:
    """Open a prepared data set (``index.json`` + ``tiles/``), checking every tile file's size.

    Raises:
        DataError: no or unreadable index, an older layout, a missing or truncated tile file.
    """
    from assignment2.radiometry import Radiometry

    folder = Path(folder)
    index = folder / "index.json"
    if not index.is_file():
        if (folder / "images").is_dir():
            raise DataError(f"{folder}: prepared by an older version (images/, masks/); run "
                            f"python -m assignment2.prepare on the raw area again")
        raise DataError(f"{index}: no prepared data set here (index.json is missing)")
    try:
        record = json.loads(index.read_text(encoding="utf-8"))
        if record.get("version") != PREPARED_VERSION:
            raise ValueError(f"version {record.get('version')!r}, expected {PREPARED_VERSION}")
        tiles = [Tile.from_json(t, folder) for t in record["tiles"]]
        radiometry = {a: Radiometry.from_json(r) for a, r in record["radiometry"].items()}
        data = PreparedData(folder, tiles, radiometry, record["bands"],
                            int(record["boundary_width"]), list(record.get("skipped", [])),
                            list(record.get("notes", [])))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{index}: unreadable index ({type(exc).__name__}: {exc})") from None
    for tile in tiles:
        _check_tile_file(tile)
    return data


def _check_tile_file(tile: Tile) -> None:
    try:
        size = tile.file.stat().st_size
    except OSError:
        raise DataError(f"{tile.file}: prepared tile is missing; run prepare again") from None
    if size != tile.nbytes:
        raise DataError(f"{tile.file}: prepared tile has {size} bytes, the index says "
                        f"{tile.nbytes} (truncated or changed); run prepare again")


def split_tiles(tiles, val_fraction: float, seed: int, *, by: str = "tile"
                ) -> tuple[list[str], list[str]]:
    """Train/validation split of :class:`Tile` (or :class:`RawTile`) ids, optionally per AOI.

    ``by="tile"``: :func:`split_ids` over all ids (the split of a one-AOI data set).
    ``by="aoi"``: :func:`split_ids` inside each AOI with the same fraction and seed, so every AOI
    is represented in both parts as in the challenge's per-city scoring (an AOI with a single
    tile goes to training).

    Returns:
        ``(train_ids, val_ids)``, each sorted.
    """
    if by not in ("tile", "aoi"):
        raise ValueError(f"by must be 'tile' or 'aoi', got {by!r}")
    if by == "tile":
        return split_ids([t.id for t in tiles], val_fraction, seed)
    train, val = [], []
    for aoi in sorted({t.aoi for t in tiles}):
        ids = [t.id for t in tiles if t.aoi == aoi]
        if len(ids) < 2:
            train += ids
            continue
        part_train, part_val = split_ids(ids, val_fraction, seed)
        train, val = train + part_train, val + part_val
    return sorted(train), sorted(val)
