"""Reading SpaceNet 2 areas and prepared folders into tiles, normalisation and the train/val split.

Two kinds of folders are read by :func:`load_tiles`:

- a raw SpaceNet 2 area (``AOI_<n>_<City>_Train`` with ``RGB-PanSharpen/`` and
  ``geojson/buildings/``, or a folder holding several of them); its building polygons are
  rasterised on the fly with each tile's own geotransform (:mod:`assignment2.masks`);
- a prepared folder (``images/<id>.tif``, ``masks/<id>.tif``, optional ``instances/<id>.tif``)
  written by ``python -m assignment2.prepare``.

Every problem with the data raises :class:`DataError` naming the offending file or folder.
"""

from __future__ import annotations

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
from assignment2.masks import building_masks
from data_stubs.files import write_bytes_atomic

__all__ = [
    "MAX_VALUE",
    "DataError",
    "TileSet",
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
    """

    ids: list[str]
    images: list[np.ndarray]
    masks: list[np.ndarray]
    instances: list[np.ndarray] | None = None
    transforms: list[GeoTransform | None] | None = None

    def __len__(self) -> int:
        return len(self.ids)


def load_tiles(data_dir, *, boundary_width: int = 3) -> TileSet:
    """Load a raw SpaceNet area (AOI folder or a folder of them) or a prepared folder.

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
    if (folder / "images").is_dir() or (folder / "masks").is_dir():
        return _load_prepared(folder)
    areas = _area_folders(folder)
    if not areas:
        raise DataError(f"{folder}: neither a prepared folder (images/, masks/) nor a SpaceNet "
                        f"area ({_IMAGE_DIR}/, {_GEOJSON_DIR}/) nor a folder of AOI_* areas")
    tiles = [_load_raw_tile(image, geojson, boundary_width)
             for area in areas for image, geojson in _pair_raw_files(area)]
    return _tile_set(sorted(tiles, key=lambda t: t[0]), with_instances=True)


def _area_folders(folder: Path) -> list[Path]:
    if (folder / _IMAGE_DIR).is_dir():
        return [folder]
    return sorted(p for p in folder.glob("AOI_*") if (p / _IMAGE_DIR).is_dir())


def _tile_set(tiles: list[tuple], with_instances: bool) -> TileSet:
    ids = [t[0] for t in tiles]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise DataError(f"tile ids occur more than once: {duplicates[:5]}")
    return TileSet(ids=ids, images=[t[1] for t in tiles], masks=[t[2] for t in tiles],
                   instances=[t[3] for t in tiles] if with_instances else None,
                   transforms=[t[4] for t in tiles])


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


def _pair_raw_files(area: Path) -> list[tuple[Path, Path]]:
    images = _ids_of(sorted((area / _IMAGE_DIR).glob("*.tif")), area / _IMAGE_DIR)
    if not (area / _GEOJSON_DIR).is_dir():
        raise DataError(f"{area / _GEOJSON_DIR}: building GeoJSON folder is missing")
    geojsons = _ids_of(sorted((area / _GEOJSON_DIR).glob("*.geojson")), area / _GEOJSON_DIR)
    ids = _pair(images, geojsons, ("image", "GeoJSON"))
    return [(images[i], geojsons[i]) for i in ids]


def _load_raw_tile(image_path: Path, geojson_path: Path, boundary_width: int) -> tuple:
    image, transform = read_geotiff(image_path)
    image = _check_image(image, image_path)
    if transform is None:
        raise DataError(f"{image_path}: no GeoTIFF georeferencing (ModelPixelScale/Tiepoint)")
    polygons = [_to_pixels(building, transform) for building in read_buildings(geojson_path)]
    mask, instances = building_masks(polygons, image.shape[:2], boundary_width=boundary_width)
    return _ID.search(image_path.name).group(1), image, mask, instances, transform


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


def _check_image(image: np.ndarray, path: Path) -> np.ndarray:
    if image.ndim != 3 or image.shape[-1] != 3:
        raise DataError(f"{path}: expected a 3-band image, got shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{path}: expected uint16 (or uint8) pixels, got {image.dtype}")
    return image.astype(np.uint16, copy=False)


def _load_prepared(folder: Path) -> TileSet:
    for sub in ("images", "masks"):
        if not (folder / sub).is_dir():
            raise DataError(f"{folder / sub}: folder of the prepared layout is missing")
    images = _ids_of(sorted((folder / "images").glob("*.tif")), folder / "images")
    masks = _ids_of(sorted((folder / "masks").glob("*.tif")), folder / "masks")
    ids = _pair(images, masks, ("image", "mask"))
    instances = None
    if (folder / "instances").is_dir():
        instances = _ids_of(sorted((folder / "instances").glob("*.tif")), folder / "instances")
        _pair(images, instances, ("image", "instance map"))
    tiles = [_load_prepared_tile(images[i], masks[i], instances and instances[i]) for i in ids]
    return _tile_set([(i, *t) for i, t in zip(ids, tiles)], with_instances=instances is not None)


def _load_prepared_tile(image_path: Path, mask_path: Path, instance_path: Path | None) -> tuple:
    image, transform = read_geotiff(image_path)
    image = _check_image(image, image_path)
    mask = read_geotiff(mask_path)[0]
    _check_same_size(image, image_path, mask, mask_path)
    if mask.ndim != 2:
        raise DataError(f"{mask_path}: a mask must be single-band (H, W), got shape {mask.shape}")
    bad = np.setdiff1d(np.unique(mask), [0, 1, 2])
    if bad.size:
        raise DataError(f"{mask_path}: mask values must be in {{0, 1, 2}}, found {bad[:5].tolist()}")
    instances = None
    if instance_path is not None:
        instances = read_geotiff(instance_path)[0]
        _check_same_size(image, image_path, instances, instance_path)
        if instances.ndim != 2 or not np.issubdtype(instances.dtype, np.integer):
            raise DataError(f"{instance_path}: instance map must be 2-D integers, "
                            f"got {instances.dtype} {instances.shape}")
        instances = instances.astype(np.int32, copy=False)
    return image, mask.astype(np.uint8, copy=False), instances, transform


def _check_same_size(image, image_path, other, other_path) -> None:
    if other.shape[:2] != image.shape[:2]:
        raise DataError(f"{other_path}: size {other.shape[:2]} differs from its image "
                        f"{image_path.name} {image.shape[:2]}")


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
