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
_GT_MODEL_TYPE_KEY = 1024
_GT_RASTER_TYPE_KEY = 1025
_GEOGRAPHIC_TYPE_KEY = 2048
_PROJECTED_CS_TYPE_KEY = 3072
_MODEL_PROJECTED, _MODEL_GEOGRAPHIC = 1, 2
_RASTER_PIXEL_IS_POINT = 2
#: EPSG code of WGS84 longitude/latitude, the CRS of SpaceNet's GeoTIFFs and GeoJSON.
WGS84 = 4326
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


class Crs(NamedTuple):
    """A GeoTIFF's coordinate reference system, as its GeoKeyDirectory states it.

    Attributes:
        kind: ``"geographic"`` (longitude/latitude), ``"projected"`` (metres, e.g. UTM) or
            ``"unknown"`` (no GeoKeyDirectory).
        epsg: the EPSG code (GeographicTypeGeoKey / ProjectedCSTypeGeoKey), or ``None``.
    """

    kind: str
    epsg: int | None

    def __str__(self) -> str:
        return f"{self.kind} EPSG:{self.epsg}" if self.epsg is not None else self.kind


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


def read_crs(path) -> Crs:
    """The CRS a GeoTIFF declares in its GeoKeyDirectory (tags only; the pixels are not read).

    Raises:
        DataError: missing or unreadable file.
    """
    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages[0].tags
            keys = None if GEO_KEY_DIRECTORY_TAG not in tags else \
                np.asarray(tags[GEO_KEY_DIRECTORY_TAG].value, dtype=np.int64)
    except (ValueError, OSError, struct.error, EOFError, KeyError, IndexError) as exc:
        raise DataError(f"{path}: corrupt or truncated TIFF, cannot read its tags ({exc})") \
            from None
    return _crs_of(keys)


def _crs_of(keys) -> Crs:
    if keys is None:
        return Crs("unknown", None)
    values = {int(key): int(value) for key, location, _, value in keys[4:].reshape(-1, 4)
              if location == 0}
    model = values.get(_GT_MODEL_TYPE_KEY)
    if model == _MODEL_PROJECTED or _PROJECTED_CS_TYPE_KEY in values:
        return Crs("projected", values.get(_PROJECTED_CS_TYPE_KEY))
    if model == _MODEL_GEOGRAPHIC or _GEOGRAPHIC_TYPE_KEY in values:
        return Crs("geographic", values.get(_GEOGRAPHIC_TYPE_KEY))
    return Crs("unknown", None)


def check_lonlat(path, crs: Crs, transform: GeoTransform | None) -> None:
    """Refuse a GeoTIFF whose pixels cannot be matched with lon/lat GeoJSON polygons.

    SpaceNet's building GeoJSON is in WGS84 longitude/latitude. A tile in a projected CRS (UTM
    metres) would map every polygon far outside the tile and silently give empty masks; so
    does a tile without geokeys whose tie point is not a plausible longitude/latitude.

    Raises:
        DataError: naming ``path``, its CRS and what the GeoJSON needs.
    """
    if crs.kind == "projected":
        raise DataError(f"{path}: GeoTIFF is in a projected CRS ({crs}) but the building GeoJSON "
                        f"is in lon/lat (EPSG:{WGS84}); reproject the tile to EPSG:{WGS84}")
    if crs.kind == "geographic" and crs.epsg not in (None, WGS84):
        raise DataError(f"{path}: GeoTIFF CRS is EPSG:{crs.epsg}, the building GeoJSON uses "
                        f"EPSG:{WGS84} lon/lat; reproject the tile to EPSG:{WGS84}")
    if transform is not None and not (abs(transform.lon0) <= 180 and abs(transform.lat0) <= 90
                                      and transform.dlon < 1 and transform.dlat < 1):
        raise DataError(f"{path}: georeferencing {tuple(transform)} is not in degrees of "
                        f"lon/lat as the building GeoJSON; reproject the tile to EPSG:{WGS84}")


def geotiff_tags(transform: GeoTransform, epsg: int = WGS84, projected: bool = False
                 ) -> list[tuple]:
    """tifffile ``extratags`` that georeference a tile: pixel scale, tie point, geokeys.

    The default is WGS84 lon/lat (PixelIsArea); ``projected=True`` writes a projected CRS with
    ProjectedCSTypeGeoKey ``epsg`` (e.g. 32611, UTM 11N), as some GDAL exports are.
    """
    scale = (float(transform.dlon), float(transform.dlat), 0.0)
    tiepoint = (0.0, 0.0, 0.0, float(transform.lon0), float(transform.lat0), 0.0)
    keys = _WGS84_GEO_KEYS
    if projected:
        keys = (1, 1, 0, 3, 1024, 0, 1, _MODEL_PROJECTED, 1025, 0, 1, 1,
                3072, 0, 1, int(epsg))
    elif epsg != WGS84:
        keys = _WGS84_GEO_KEYS[:12] + (2048, 0, 1, int(epsg)) + _WGS84_GEO_KEYS[16:]
    return [(MODEL_PIXEL_SCALE_TAG, "d", 3, scale, True),
            (MODEL_TIEPOINT_TAG, "d", 6, tiepoint, True),
            (GEO_KEY_DIRECTORY_TAG, "H", len(keys), keys, True)]


def write_geotiff(path, image: np.ndarray, transform: GeoTransform | None = None, *,
                  planar: bool = False, photometric: str | None = None,
                  compression: str | None = None, tile: tuple[int, int] | None = None,
                  epsg: int = WGS84, projected: bool = False) -> Path:
    """Write ``(H, W)`` or ``(H, W, C)`` pixels as a (Geo)TIFF, atomically.

    Args:
        path: destination; written to a temporary file in the same folder, then renamed.
        image: 2-D or 3-D array (any dtype tifffile supports: uint8, uint16, int32, float16...).
        transform: georeferencing to embed (PixelIsArea), or ``None`` for a plain TIFF.
        planar: store a multi-band image band-interleaved (planar *separate*, ``(C, H, W)`` on
            disk, as some GDAL exports do) instead of pixel-interleaved.
        photometric: ``"rgb"`` or ``"minisblack"``; default rgb for 3 bands, else minisblack.
            GDAL writes uint16 3-band tiles as MINISBLACK with two *extra samples*.
        compression: ``None`` (uncompressed), ``"lzw"``, ``"deflate"`` (lzw needs imagecodecs,
            as the real SpaceNet tiles do).
        tile: internal tiling ``(rows, cols)`` (multiples of 16), or ``None`` for strips.
        epsg, projected: the CRS written in the geokeys (default WGS84 lon/lat).

    Returns:
        The path written.
    """
    path = Path(path)
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
    extratags = geotiff_tags(transform, epsg, projected) if transform is not None else []
    kwargs = {"photometric": photometric or "minisblack"}
    if image.ndim == 3:
        default = "rgb" if image.shape[-1] == 3 else "minisblack"
        kwargs = {"photometric": photometric or default,
                  "planarconfig": "separate" if planar else "contig"}
        if planar:
            image = np.moveaxis(image, -1, 0)
    if compression is not None:
        kwargs["compression"] = compression
    if tile is not None:
        kwargs["tile"] = tuple(tile)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image, extratags=extratags, metadata=None, **kwargs)
    return write_bytes_atomic(path, buffer.getvalue())
