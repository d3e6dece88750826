"""GeoTIFF reading and writing with tifffile only (no GDAL): pixels plus a north-up geotransform.

A SpaceNet 2 tile (``RGB-PanSharpen_AOI_2_Vegas_img1.tif``) is a 650x650x3 uint16 TIFF whose
georeferencing lives in three GeoTIFF tags (GeoTIFF 1.0 specification, Ritter & Ruth, 1995):

- ``ModelPixelScaleTag`` (33550): ``(sx, sy, sz)``, the size of one pixel in degrees;
- ``ModelTiepointTag`` (33922): ``(i, j, k, X, Y, Z)``, raster point ``(i, j)`` sits at ``(X, Y)``;
- ``GeoKeyDirectoryTag`` (34735): model type geographic, raster type *PixelIsArea*, WGS84 (4326).

Pixel coordinates are continuous: pixel ``(row r, column c)`` covers ``[c, c + 1) x [r, r + 1)``
and its centre is ``(x, y) = (c + 0.5, r + 0.5)``. For a north-up tile

    lon = lon0 + x * dlon,        lat = lat0 - y * dlat,

with ``(lon0, lat0)`` the upper-left corner of the upper-left pixel and ``dlon, dlat > 0``.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tifffile

from data_stubs.files import write_bytes_atomic

MODEL_PIXEL_SCALE_TAG = 33550
MODEL_TIEPOINT_TAG = 33922
MODEL_TRANSFORMATION_TAG = 34264
GEO_KEY_DIRECTORY_TAG = 34735
_GT_RASTER_TYPE_KEY = 1025
_RASTER_PIXEL_IS_POINT = 2
# GeoKeyDirectory: header (version 1, revision 1.0, 4 keys), then (key, location, count, value):
# GTModelType = geographic (2), GTRasterType = PixelIsArea (1), GeographicType = WGS84 (4326),
# GeogAngularUnits = degree (9102).
_WGS84_GEO_KEYS = (1, 1, 0, 4,
                   1024, 0, 1, 2,
                   1025, 0, 1, 1,
                   2048, 0, 1, 4326,
                   2054, 0, 1, 9102)


class DataError(ValueError):
    """A data file or folder is missing, incomplete or corrupt; the message names it."""


class GeoTransform(NamedTuple):
    """North-up pixel <-> lon/lat mapping: ``lon = lon0 + x * dlon``, ``lat = lat0 - y * dlat``.

    Attributes:
        lon0: longitude of the upper-left corner of pixel (0, 0), degrees.
        lat0: latitude of that corner, degrees.
        dlon: pixel width in degrees of longitude (> 0).
        dlat: pixel height in degrees of latitude (> 0; latitude decreases down the rows).
    """

    lon0: float
    lat0: float
    dlon: float
    dlat: float

    def lonlat_to_pixel(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """Continuous pixel coordinates ``(x, y)`` (column, row) of points in lon/lat."""
        return lonlat_to_pixel(lon, lat, self)

    def pixel_to_lonlat(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Lon/lat of continuous pixel coordinates ``(x, y)`` (column, row)."""
        return pixel_to_lonlat(x, y, self)


def lonlat_to_pixel(lon, lat, transform: GeoTransform) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of lon/lat points: ``x = (lon - lon0) / dlon``, ``y = (lat0 - lat) / dlat``.

    Args:
        lon, lat: array-likes of the same shape, degrees (WGS84).
        transform: the tile's :class:`GeoTransform`.

    Returns:
        ``(x, y)`` float64 arrays of that shape; the centre of pixel (r, c) is ``(c + .5, r + .5)``.
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    return (lon - transform.lon0) / transform.dlon, (transform.lat0 - lat) / transform.dlat


def pixel_to_lonlat(x, y, transform: GeoTransform) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat of pixel coordinates: ``lon = lon0 + x * dlon``, ``lat = lat0 - y * dlat``.

    Args:
        x, y: array-likes of the same shape, continuous column and row coordinates.
        transform: the tile's :class:`GeoTransform`.

    Returns:
        ``(lon, lat)`` float64 arrays of that shape, degrees.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return transform.lon0 + x * transform.dlon, transform.lat0 - y * transform.dlat


def read_geotiff(path) -> tuple[np.ndarray, GeoTransform | None]:
    """Read a (Geo)TIFF into ``(H, W, C)`` (or ``(H, W)``) pixels and its geotransform.

    The band layout is taken from the TIFF's PlanarConfiguration tag, never guessed from the
    array shape: band-interleaved files (planar *separate*, ``(C, H, W)`` on disk) are moved to
    ``(H, W, C)``; one band per page (several single-sample pages of one size) is stacked as well.

    Args:
        path: file to read.

    Returns:
        ``(image, transform)``: the pixels in the file's dtype, and a :class:`GeoTransform` or
        ``None`` when the file carries no georeferencing.

    Raises:
        DataError: missing, truncated or corrupt file, or a rotated/sheared geotransform.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: TIFF file not found")
    try:
        with tifffile.TiffFile(path) as tif:
            image = _read_pixels(tif)
            transform = _read_transform(tif.pages[0], path)
    except DataError:
        raise
    except (ValueError, OSError, struct.error, EOFError, KeyError, IndexError,
            RuntimeError, MemoryError) as exc:  # tifffile reports corruption in all these ways
        if "imagecodecs" in str(exc):
            raise DataError(f"{path}: compressed with a codec that needs the 'imagecodecs' "
                            f"package (pip install imagecodecs): {exc}") from None
        raise DataError(f"{path}: corrupt or truncated TIFF, cannot decode it ({exc})") from None
    return image, transform


def _read_pixels(tif: tifffile.TiffFile) -> np.ndarray:
    page = tif.pages[0]
    data = page.asarray()
    if page.samplesperpixel > 1 and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
        return np.ascontiguousarray(np.moveaxis(data, 0, -1))
    if page.samplesperpixel == 1 and len(tif.pages) > 1:
        bands = [p.asarray() for p in tif.pages]
        if all(b.shape == data.shape and b.ndim == 2 for b in bands):
            return np.stack(bands, axis=-1)
    return data


def _read_transform(page, path: Path) -> GeoTransform | None:
    tags = page.tags
    if MODEL_TRANSFORMATION_TAG in tags:
        m = np.asarray(tags[MODEL_TRANSFORMATION_TAG].value, dtype=np.float64).reshape(4, 4)
        if m[0, 1] != 0 or m[1, 0] != 0 or m[0, 0] <= 0 or m[1, 1] >= 0:
            raise DataError(f"{path}: only north-up geotransforms are supported, got {m[:2]}")
        lon0, lat0, dlon, dlat = m[0, 3], m[1, 3], m[0, 0], -m[1, 1]
    elif MODEL_PIXEL_SCALE_TAG in tags and MODEL_TIEPOINT_TAG in tags:
        sx, sy = tags[MODEL_PIXEL_SCALE_TAG].value[:2]
        i, j, _, lon, lat, _ = tags[MODEL_TIEPOINT_TAG].value[:6]
        if sx <= 0 or sy <= 0:
            raise DataError(f"{path}: ModelPixelScale must be positive, got {(sx, sy)}")
        lon0, lat0, dlon, dlat = lon - i * sx, lat + j * sy, sx, sy
    else:
        return None
    if _pixel_is_point(tags):  # tie point names a pixel centre: move it to the pixel's corner
        lon0, lat0 = lon0 - 0.5 * dlon, lat0 + 0.5 * dlat
    return GeoTransform(float(lon0), float(lat0), float(dlon), float(dlat))


def _pixel_is_point(tags) -> bool:
    if GEO_KEY_DIRECTORY_TAG not in tags:
        return False
    keys = np.asarray(tags[GEO_KEY_DIRECTORY_TAG].value, dtype=np.int64)
    for key, location, _, value in keys[4:].reshape(-1, 4):
        if key == _GT_RASTER_TYPE_KEY and location == 0:
            return value == _RASTER_PIXEL_IS_POINT
    return False


def geotiff_tags(transform: GeoTransform) -> list[tuple]:
    """tifffile ``extratags`` that georeference a tile: pixel scale, tie point, WGS84 geokeys."""
    scale = (float(transform.dlon), float(transform.dlat), 0.0)
    tiepoint = (0.0, 0.0, 0.0, float(transform.lon0), float(transform.lat0), 0.0)
    return [(MODEL_PIXEL_SCALE_TAG, "d", 3, scale, True),
            (MODEL_TIEPOINT_TAG, "d", 6, tiepoint, True),
            (GEO_KEY_DIRECTORY_TAG, "H", len(_WGS84_GEO_KEYS), _WGS84_GEO_KEYS, True)]


def write_geotiff(path, image: np.ndarray, transform: GeoTransform | None = None, *,
                  planar: bool = False) -> Path:
    """Write ``(H, W)`` or ``(H, W, C)`` pixels as an uncompressed (Geo)TIFF, atomically.

    Args:
        path: destination; written to a temporary file in the same folder, then renamed.
        image: 2-D or 3-D array (any dtype tifffile supports: uint8, uint16, int32, float16...).
        transform: georeferencing to embed (WGS84, PixelIsArea), or ``None`` for a plain TIFF.
        planar: store a multi-band image band-interleaved (planar *separate*, ``(C, H, W)`` on
            disk, as some GDAL exports do) instead of pixel-interleaved.

    Returns:
        The path written.
    """
    path = Path(path)
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
    extratags = geotiff_tags(transform) if transform is not None else []
    kwargs = {"photometric": "minisblack"}
    if image.ndim == 3:
        kwargs = {"photometric": "rgb" if image.shape[-1] == 3 else "minisblack",
                  "planarconfig": "separate" if planar else "contig"}
        if planar:
            image = np.moveaxis(image, -1, 0)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image, extratags=extratags, metadata=None, **kwargs)
    return write_bytes_atomic(path, buffer.getvalue())
