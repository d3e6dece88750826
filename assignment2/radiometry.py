"""Radiometry that is checked: bit depth, no-data pixels and the scaling to the network's input.

SpaceNet 2's RGB-PanSharpen and MUL-PanSharpen tiles are uint16 WorldView-3 digital numbers with
11-bit range (0..2047); 8-bit exports (0..255) and 16-bit stretches exist as well. The scaling
is therefore decided per area of interest (AOI), never assumed:

- **bit depth** (:func:`detect_bit_depth`): uint8 pixels are 8-bit; uint16 pixels are 11-bit
  unless the caller says 16. A value above 2047 under 11-bit scaling is an error naming the file
  (it would be clipped to white), which tells the user to pass ``--bit-depth 16``.
- **fixed scaling** (``normalization="fixed"``): ``x / (2**bits - 1)``, the same roof gives the
  same value in every tile.
- **percentile scaling** (``normalization="percentile"``): per AOI and band,
  ``(x - p2) / (p98 - p2)`` clipped to [0, 1], with the 2nd and 98th percentiles of the AOI's
  valid pixels. This is the contrast stretch of the SpaceNet 2 winner (XD_XD), which evens out the
  four cities' very different brightness. The statistics come from an exact histogram
  (:class:`BandHistogram`) accumulated one tile at a time by ``prepare`` and stored with the
  prepared data (``index.json``), so no pass ever holds more than one tile.
- **no-data** (:func:`valid_mask`): pixels where every band is 0 lie outside the satellite strip
  (the black wedges of edge tiles). They carry no label: the masks get ``IGNORE_INDEX`` there, so
  the loss and every metric skip them, and they are left out of the percentiles.

Every scaling is ``clip(x * scale + offset, 0, 1)`` with a per-band ``(scale, offset)``
(:meth:`Radiometry.scale_offset`), one formula for numpy and for ``tf.data``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assignment2.geotiff import DataError
from data_stubs.files import write_json_atomic

__all__ = [
    "BIT_DEPTH_CHOICES",
    "NORMALIZATION_CHOICES",
    "BandHistogram",
    "Radiometry",
    "detect_bit_depth",
    "load_radiometry",
    "model_input",
    "normalize_image",
    "save_radiometry",
    "valid_mask",
]

BIT_DEPTH_CHOICES = ("auto", "8", "11", "16")
NORMALIZATION_CHOICES = ("fixed", "percentile")
#: Percentiles of the contrast stretch (the SpaceNet 2 winner's 2-98 %).
LOW_PERCENTILE, HIGH_PERCENTILE = 2.0, 98.0


def valid_mask(image) -> np.ndarray:
    """``True`` where a pixel holds data: not every band is 0. ``(H, W, C)`` -> bool ``(H, W)``."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must be (H, W, C), got shape {image.shape}")
    return np.any(image != 0, axis=-1)


def detect_bit_depth(image, path, requested: str | int = "auto") -> int:
    """The bit depth of a tile's digital numbers, checked against its values.

    Args:
        image: uint8 or uint16 pixels ``(H, W, C)``.
        path: the file, named in errors.
        requested: ``"auto"`` (uint8 -> 8, uint16 -> 11, SpaceNet's sensor range) or 8, 11, 16
            (as int or string) to force it.

    Returns:
        8, 11 or 16.

    Raises:
        DataError: values above the range of the (detected or requested) depth, or 8-bit asked
            for uint16 data.
    """
    requested = str(requested)
    if requested not in BIT_DEPTH_CHOICES:
        raise ValueError(f"bit_depth must be one of {BIT_DEPTH_CHOICES}, got {requested!r}")
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{path}: expected uint8 or uint16 pixels, got {image.dtype}")
    bits = (8 if image.dtype == np.uint8 else 11) if requested == "auto" else int(requested)
    top = int(image.max(initial=0))
    if top > 2**bits - 1:
        hint = "; pass --bit-depth 16 if the imagery is 16-bit" if bits == 11 else ""
        raise DataError(f"{path}: value {top} exceeds the {bits}-bit range 0..{2**bits - 1} "
                        f"of {image.dtype} pixels scaled as {bits}-bit{hint}")
    return bits


@dataclass(frozen=True)
class Radiometry:
    """Scaling of one AOI: its bit depth and (optionally) its per-band 2nd/98th percentiles.

    Attributes:
        bit_depth: 8, 11 or 16.
        low, high: per-band percentiles in digital numbers, or ``None`` when not computed.
    """

    bit_depth: int
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None

    def scale_offset(self, normalization: str = "fixed") -> tuple[np.ndarray, np.ndarray]:
        """Per-band ``(scale, offset)`` float32 so that ``x * scale + offset`` is the input.

        ``"fixed"``: ``scale = 1 / (2**bits - 1)``, ``offset = 0``. ``"percentile"``:
        ``scale = 1 / (p98 - p2)``, ``offset = -p2 / (p98 - p2)`` (a flat band, p98 == p2, is
        scaled as fixed around p2).
        """
        if normalization not in NORMALIZATION_CHOICES:
            raise ValueError(f"normalization must be one of {NORMALIZATION_CHOICES}, "
                             f"got {normalization!r}")
        if normalization == "fixed":
            return np.float32(1.0 / (2**self.bit_depth - 1)), np.float32(0.0)
        if self.low is None or self.high is None:
            raise ValueError("normalization 'percentile' needs the per-AOI percentiles, which "
                             "this data set lacks; prepare it again")
        low, high = np.asarray(self.low, np.float64), np.asarray(self.high, np.float64)
        span = np.where(high > low, high - low, 2**self.bit_depth - 1)
        return (1.0 / span).astype(np.float32), (-low / span).astype(np.float32)

    def to_json(self) -> dict:
        return {"bit_depth": self.bit_depth,
                "low": None if self.low is None else list(self.low),
                "high": None if self.high is None else list(self.high)}

    @classmethod
    def from_json(cls, record: dict) -> Radiometry:
        low, high = record.get("low"), record.get("high")
        return cls(int(record["bit_depth"]), None if low is None else tuple(map(float, low)),
                   None if high is None else tuple(map(float, high)))


def normalize_image(image, scale, offset):
    """``clip(x * scale + offset, 0, 1)`` as float32; numpy in, numpy out; tensor in, tensor out.

    Args:
        image: ``(..., C)`` integer or float digital numbers.
        scale, offset: scalars or per-band ``(C,)`` (from :meth:`Radiometry.scale_offset`).
    """
    tf = sys.modules.get("tensorflow")
    if tf is not None and tf.is_tensor(image):
        x = tf.cast(image, tf.float32) * tf.cast(scale, tf.float32) + tf.cast(offset, tf.float32)
        return tf.clip_by_value(x, 0.0, 1.0)
    image = np.asarray(image)
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise TypeError(f"image must hold numbers, got dtype {image.dtype!r}")
    x = image.astype(np.float32) * np.float32(scale) + np.float32(offset) \
        if np.ndim(scale) == 0 else image.astype(np.float32) * scale + offset
    return np.clip(x, 0.0, 1.0).astype(np.float32, copy=False)


def model_input(image, radiometry: Radiometry, normalization: str = "fixed") -> np.ndarray:
    """What the network sees for raw digital numbers ``(H, W, C)``: float32 in [0, 1]."""
    scale, offset = radiometry.scale_offset(normalization)
    return normalize_image(image, scale, offset)


class BandHistogram:
    """Exact per-band histogram of valid pixels, accumulated one tile at a time.

    Memory is ``C * 2**bits`` counts whatever the number of tiles; the percentiles equal
    ``np.percentile(values, q, method="inverted_cdf")`` of all valid pixels of every tile added.
    """

    def __init__(self, bands: int, bit_depth: int):
        self.bands, self.bit_depth = bands, bit_depth
        self.counts = np.zeros((bands, 2**bit_depth), dtype=np.int64)

    def add(self, image: np.ndarray, valid: np.ndarray) -> None:
        """Count the pixels of one ``(H, W, C)`` tile where ``valid`` ``(H, W)`` is True."""
        pixels = np.asarray(image)[valid]
        for band in range(self.bands):
            self.counts[band] += np.bincount(pixels[:, band], minlength=self.counts.shape[1])

    def percentiles(self, q: float) -> tuple[float, ...] | None:
        """Per-band ``q``-th percentile (inverted CDF), or ``None`` if no valid pixel was seen."""
        totals = self.counts.sum(axis=1)
        if not totals.all():
            return None
        values = []
        for band in range(self.bands):
            cdf = np.cumsum(self.counts[band])
            rank = max(int(np.ceil(q / 100.0 * totals[band])), 1)
            values.append(float(np.searchsorted(cdf, rank)))
        return tuple(values)

    def radiometry(self) -> Radiometry:
        """The AOI's :class:`Radiometry` with its 2nd and 98th percentiles."""
        return Radiometry(self.bit_depth, self.percentiles(LOW_PERCENTILE),
                          self.percentiles(HIGH_PERCENTILE))


def save_radiometry(path, radiometry: dict[str, Radiometry], normalization: str) -> Path:
    """Write ``{"normalization": ..., "aois": {aoi: {...}}}`` atomically (kept beside a run)."""
    return write_json_atomic(path, {"normalization": normalization,
                                    "aois": {a: r.to_json() for a, r in radiometry.items()}})


def load_radiometry(path) -> tuple[dict[str, Radiometry], str]:
    """Read :func:`save_radiometry`'s file: ``(per-AOI radiometry, normalization)``."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        aois = {a: Radiometry.from_json(r) for a, r in record["aois"].items()}
        normalization = record["normalization"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: unreadable radiometry file ({type(exc).__name__}: {exc})") \
            from None
    if normalization not in NORMALIZATION_CHOICES:
        raise DataError(f"{path}: unknown normalization {normalization!r}")
    return aois, normalization
