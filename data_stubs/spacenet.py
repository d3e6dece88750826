"""A deterministic miniature SpaceNet 2 area (Van Etten et al., "SpaceNet: A Remote Sensing Dataset
and Challenge Series", 2018), written in the real layout so the same code reads it and a download:

    AOI_2_Vegas_Train/RGB-PanSharpen/RGB-PanSharpen_AOI_2_Vegas_img<k>.tif
    AOI_2_Vegas_Train/geojson/buildings/buildings_AOI_2_Vegas_img<k>.geojson

Tiles are uint16 with 11-bit values (0..2047), 3 bands, ~0.3 m pixels georeferenced in WGS84 near
Las Vegas (-115.3, 36.2) with ModelPixelScale/ModelTiepoint/GeoKeys; even-numbered tiles are
stored band-interleaved (planar), odd ones pixel-interleaved. Building footprints are GeoJSON
polygons in lon/lat with a Z coordinate, like the real files.

Scenes: desert ground with low-frequency colour variation, roads with lane markings, trees and
lawns, concrete lots and pools (roof-like distractors without labels), buildings of varied size
and shape (rectangles, rotated rectangles, L-shapes, courtyards with holes, touching row
houses) with gable shading, stripes and roof fixtures, shadows cast away from the sun, a soft
sensor blur and noise. Tile 2's GeoJSON is an empty (0-byte) file and tiles with
``k % 17 == 5`` have ``"features": []``; tiles with ``k % 6 == 3`` have an all-zero no-data
wedge in one corner, as edge tiles of the real mosaic. Every tile is drawn from its own seeded
generator, so files are byte-identical across runs and independent of ``n_tiles``.
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
from scipy import ndimage

from assignment2.geotiff import GeoTransform, atomic_write_bytes, pixel_to_lonlat, write_geotiff
from assignment2.masks import rasterize_polygon

LON_ORIGIN, LAT_ORIGIN = -115.3, 36.2
DEGREES_PER_PIXEL = 2.7e-6  # ModelPixelScale of the real Vegas RGB-PanSharpen tiles (~0.3 m)
MAX_DN = 2047  # 11-bit sensor range
_SHADOW = np.array([0.8, 0.55])  # shadow direction (x, y) per unit of building height
_ROOFS = np.array([[0.72, 0.71, 0.68], [0.64, 0.40, 0.30], [0.33, 0.32, 0.31],
                   [0.86, 0.85, 0.82], [0.66, 0.58, 0.46], [0.52, 0.50, 0.52]])
_GROUND = np.array([0.58, 0.50, 0.40])


def generate_area(root, *, seed: int = 0, n_tiles: int = 40, tile_size: int = 192,
                  city: str = "Vegas", aoi: int = 2) -> pathlib.Path:
    """Write a miniature SpaceNet 2 training area under ``root`` and return its AOI folder.

    Args:
        root: folder that receives ``AOI_<aoi>_<city>_Train`` (created if missing).
        seed: seed of every scene; the same arguments give byte-identical files.
        n_tiles: number of tiles ``img1 .. img<n_tiles>`` (>= 1).
        tile_size: side of the square tiles in pixels (>= 32; the real tiles have 650).
        city: city name in the folder and file names (letters only, e.g. ``"Vegas"``).
        aoi: area-of-interest number in the names (>= 1).

    Returns:
        ``root/AOI_<aoi>_<city>_Train``.
    """
    _check_args(seed, n_tiles, tile_size, city, aoi)
    area = pathlib.Path(root) / f"AOI_{aoi}_{city}_Train"
    columns = math.ceil(math.sqrt(n_tiles))
    for k in range(1, n_tiles + 1):
        row, col = divmod(k - 1, columns)
        transform = GeoTransform(LON_ORIGIN + col * tile_size * DEGREES_PER_PIXEL,
                                 LAT_ORIGIN - row * tile_size * DEGREES_PER_PIXEL,
                                 DEGREES_PER_PIXEL, DEGREES_PER_PIXEL)
        image, buildings = render_tile(np.random.default_rng([seed, k]), tile_size, k)
        name = f"AOI_{aoi}_{city}_img{k}"
        write_geotiff(area / "RGB-PanSharpen" / f"RGB-PanSharpen_{name}.tif", image, transform,
                      planar=k % 2 == 0)
        text = b"" if k == 2 else _geojson(buildings, transform).encode()
        atomic_write_bytes(area / "geojson" / "buildings" / f"buildings_{name}.geojson", text)
    return area


def _check_args(seed, n_tiles, tile_size, city, aoi) -> None:
    for name, value, low in (("seed", seed, 0), ("n_tiles", n_tiles, 1),
                             ("tile_size", tile_size, 32), ("aoi", aoi, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value!r}")
    if not isinstance(city, str) or not city.isalpha():
        raise ValueError(f"city must be a non-empty string of letters, got {city!r}")


def render_tile(rng: np.random.Generator, size: int, k: int = 1
                ) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """One scene: uint16 ``(size, size, 3)`` 11-bit image and its buildings in pixel coordinates.

    Args:
        rng: the tile's random generator.
        size: tile side in pixels.
        k: tile number; decides the special tiles (no buildings, no-data wedge).

    Returns:
        ``(image, buildings)``, each building a polygon (list of ``(N, 2)`` rings ``(x, y)``).
    """
    refl = _ground(rng, size)
    occupied = np.zeros((size, size), dtype=bool)
    wedge = _wedge(rng, size) if k % 6 == 3 else occupied.copy()
    occupied |= ndimage.binary_dilation(wedge, iterations=3)
    _draw_roads(rng, refl, occupied)
    _draw_distractors(rng, refl, occupied)
    with_buildings = k != 2 and k % 17 != 5
    buildings = _place_buildings(rng, size, occupied) if with_buildings else []
    _draw_vegetation(rng, refl, occupied)
    _draw_shadows(refl, buildings)
    for polygon, height in buildings:
        _draw_roof(rng, refl, polygon)
    refl = ndimage.gaussian_filter(refl, sigma=(0.6, 0.6, 0))  # sensor point spread
    refl += rng.normal(0.0, 0.012, refl.shape)
    image = np.clip(np.rint(refl * 1900 + 40), 1, MAX_DN).astype(np.uint16)
    image[wedge] = 0
    return image, [polygon for polygon, _ in buildings]


def _smooth_noise(rng, size: int, sigma: float, channels: int = 1) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.normal(size=(size, size, channels)), (sigma, sigma, 0),
                                    truncate=2.5)
    return field / (field.std() + 1e-12)


def _ground(rng, size: int) -> np.ndarray:
    base = _GROUND * rng.uniform(0.85, 1.1) + rng.normal(0, 0.02, 3)
    refl = base + 0.05 * _smooth_noise(rng, size, 10.0) + 0.02 * _smooth_noise(rng, size, 10.0, 3)
    return refl + 0.025 * rng.normal(size=(size, size, 1))


def _wedge(rng, size: int) -> np.ndarray:
    a, b = rng.uniform(0.3, 0.6, 2) * size
    corner = rng.integers(4)
    y, x = np.mgrid[0:size, 0:size] + 0.5
    x, y = (x, size - x)[corner % 2], (y, size - y)[corner // 2]
    return x / a + y / b < 1


def _draw_roads(rng, refl: np.ndarray, occupied: np.ndarray) -> None:
    size = refl.shape[0]
    y, x = np.mgrid[0:size, 0:size] + 0.5
    for _ in range(rng.integers(0, 3)):
        angle = rng.choice([0.0, np.pi / 2, rng.uniform(0, np.pi)])
        offset = rng.uniform(0.1, 0.9) * size
        dist = (x - size / 2) * np.sin(angle) - (y - size / 2) * np.cos(angle) + size / 2 - offset
        half = rng.uniform(5, 9)
        road = np.abs(dist) < half
        along = (x - size / 2) * np.cos(angle) + (y - size / 2) * np.sin(angle)
        marking = (np.abs(dist) < 0.6) & (np.mod(along, 10) < 5)
        refl[road] = 0.27 + 0.03 * rng.normal(size=(road.sum(), 1))
        refl[marking] = 0.8
        occupied |= np.abs(dist) < half + 2


def _draw_distractors(rng, refl: np.ndarray, occupied: np.ndarray) -> None:
    """Concrete lots and pools: roof-like shapes that carry no label."""
    size = refl.shape[0]
    for _ in range(rng.integers(0, 3)):
        pool = rng.random() < 0.4
        w, h = rng.uniform(5, 9, 2) if pool else rng.uniform(14, 40, 2)
        polygon = [_rectangle(rng.uniform(0, size, 2), w, h, rng.uniform(0, np.pi / 2))]
        inside = rasterize_polygon(polygon, (size, size)) & ~occupied
        colour = np.array([0.25, 0.55, 0.75]) if pool else _ROOFS[0] * rng.uniform(0.8, 1.05)
        refl[inside] = colour + 0.02 * rng.normal(size=(inside.sum(), 1))
        occupied |= ndimage.binary_dilation(inside, iterations=2)


def _draw_vegetation(rng, refl: np.ndarray, occupied: np.ndarray) -> None:
    size = refl.shape[0]
    y, x = np.mgrid[0:size, 0:size] + 0.5
    for _ in range(rng.integers(2, 12)):
        cx, cy = rng.uniform(0, size, 2)
        radius = rng.uniform(2, 6)
        tree = ((x - cx) ** 2 + (y - cy) ** 2 < radius ** 2) & ~occupied
        shade = 0.7 + 0.3 * ((x[tree] - cx) + (y[tree] - cy) < 0)  # sunlit upper-left half
        refl[tree] = np.array([0.16, 0.27, 0.11]) * shade[:, None]
    if rng.random() < 0.5:
        lawn = _smooth_noise(rng, size, 12.0)[..., 0] > 1.2
        lawn &= ~occupied
        refl[lawn] = np.array([0.30, 0.42, 0.20]) + 0.03 * rng.normal(size=(lawn.sum(), 1))


def _rectangle(centre, w: float, h: float, angle: float) -> np.ndarray:
    corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    return _rotate(corners, angle) + centre


def _l_shape(centre, w: float, h: float, angle: float, rng) -> np.ndarray:
    cw, ch = rng.uniform(0.35, 0.6) * w, rng.uniform(0.35, 0.6) * h
    corners = np.array([[0, 0], [w, 0], [w, h - ch], [w - cw, h - ch], [w - cw, h], [0, h]])
    return _rotate(corners - [w / 2, h / 2], angle) + centre


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _candidate(rng, size: int) -> list[list[np.ndarray]]:
    """One or two (touching) buildings: list of polygons, each a list of rings."""
    kind = rng.choice(["rect", "rotated", "l", "row", "courtyard", "shed"],
                      p=[0.3, 0.2, 0.2, 0.15, 0.05, 0.1])
    centre = rng.uniform(-4, size + 4, 2)
    w, h = rng.uniform(14, 38, 2)
    axis_aligned = kind == "rect" or (kind != "rotated" and rng.random() < 0.5)
    angle = 0.0 if axis_aligned else rng.uniform(0.1, np.pi / 2 - 0.1)
    if axis_aligned:  # integer corners: the lon/lat round trip cannot move an edge past a centre
        centre, w, h = np.round(centre), 2 * np.round(w / 2), 2 * np.round(h / 2)
    if kind == "shed":
        w, h = rng.uniform(6, 11, 2)
        return [[_rectangle(centre, w, h, angle)]]
    if kind == "l":
        return [[_l_shape(centre, w, h, angle, rng)]]
    if kind == "courtyard":
        w, h = rng.uniform(40, 60, 2)
        return [[_rectangle(centre, w, h, angle), _rectangle(centre, w / 2.5, h / 2.5, angle)]]
    if kind == "row":  # terraced houses sharing a wall
        shift = _rotate(np.array([[w / 2, 0.0]]), angle)[0]
        return [[_rectangle(centre - shift, w, h, angle)], [_rectangle(centre + shift, w, h, angle)]]
    return [[_rectangle(centre, w, h, angle)]]


def _place_buildings(rng, size: int, occupied: np.ndarray) -> list[tuple[list, float]]:
    """Rejection-sample buildings that keep a 2-pixel gap to everything already placed."""
    wanted = rng.integers(3, 6 + (size * size) // 1800)
    buildings = []
    for _ in range(12 * wanted):
        if len(buildings) >= wanted:
            break
        group = _candidate(rng, size)
        masks = [rasterize_polygon(polygon, (size, size)) for polygon in group]
        union = np.logical_or.reduce(masks)
        if min(m.sum() for m in masks) < 20 or (union & occupied).any():
            continue
        occupied |= ndimage.binary_dilation(union, iterations=2)
        buildings += [(polygon, rng.uniform(2.5, 8.0)) for polygon in group]
    return buildings


def _draw_shadows(refl: np.ndarray, buildings) -> None:
    size = refl.shape[0]
    shape = (size, size)
    roofs = np.zeros(shape, dtype=bool)
    shadow = np.zeros(shape, dtype=bool)
    for polygon, height in buildings:
        roofs |= rasterize_polygon(polygon, shape)
        for t in np.linspace(0.25, 1.0, 4):  # sweep of the footprint along the sun direction
            shifted = [ring + t * height * _SHADOW for ring in polygon]
            shadow |= rasterize_polygon(shifted, shape)
    refl[shadow & ~roofs] *= 0.45


def _draw_roof(rng, refl: np.ndarray, polygon) -> None:
    size = refl.shape[0]
    inside = rasterize_polygon(polygon, (size, size))
    rows, cols = np.nonzero(inside)
    ring = polygon[0]
    edge = ring[1] - ring[0]
    angle = np.arctan2(edge[1], edge[0])
    u = (cols + 0.5 - ring[:, 0].mean()) * np.cos(angle) + (rows + 0.5 - ring[:, 1].mean()) * np.sin(angle)
    v = -(cols + 0.5 - ring[:, 0].mean()) * np.sin(angle) + (rows + 0.5 - ring[:, 1].mean()) * np.cos(angle)
    colour = _ROOFS[rng.integers(len(_ROOFS))] * rng.uniform(0.9, 1.08)
    gable = np.where(v < 0, 1.08, 0.86) if rng.random() < 0.6 else np.ones_like(v)
    stripes = 1 + 0.04 * np.sin(2 * np.pi * u / rng.uniform(2.5, 5.0))
    value = colour * (gable * stripes)[:, None] + 0.02 * rng.normal(size=(len(u), 1))
    fixtures = rng.random(len(u)) < 0.004  # air-conditioning units, skylights
    value[fixtures] = rng.choice([0.2, 0.9])
    refl[rows, cols] = value


def _geojson(polygons, transform: GeoTransform) -> str:
    """SpaceNet-style FeatureCollection of polygons in lon/lat with Z = 0, rings closed."""
    features = []
    for k, polygon in enumerate(polygons, start=1):
        rings = []
        for ring in polygon:
            lon, lat = pixel_to_lonlat(ring[:, 0], ring[:, 1], transform)
            coords = [[float(a), float(b), 0.0] for a, b in zip(lon, lat)]
            rings.append(coords + coords[:1])
        features.append({"type": "Feature",
                         "properties": {"OBJECTID": k, "BuildingId": k, "Name": "", "partialBuilding": 0},
                         "geometry": {"type": "Polygon", "coordinates": rings}})
    collection = {"type": "FeatureCollection",
                  "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
                  "features": features}
    return json.dumps(collection, indent=1)
