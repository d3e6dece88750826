"""``tf.data`` input pipelines that stream tiles from disk: training (augmented), validation, tiles.

The lecture's "batch prepared on CPU, training on GPU": every element is read, decoded, normalised
and augmented inside ``tf.data`` in parallel (``num_parallel_calls=tf.data.AUTOTUNE``), batched and
``prefetch``ed, so the next batches are ready while the model trains on the current one.

**Streaming.** A prepared data set (:func:`assignment2.data.open_prepared`) is read one tile file
at a time (``tf.io.read_file`` -> ``tf.io.decode_compressed`` -> ``tf.io.decode_raw``); the graph
holds only the list of file names and per-tile scalars, never pixels, and the buffers (parallel
map, batch, prefetch) hold a bounded number of tiles. Memory is therefore independent of the
number of tiles. The same functions accept ``(images, masks)`` arrays held in memory (small data,
tests); both sources give identical elements for the same tiles.

**Radiometry.** Element images are ``clip(x * scale + offset, 0, 1)`` with the per-AOI
``(scale, offset)`` of :class:`assignment2.radiometry.Radiometry` (``normalization="fixed"``:
``x / (2**bits - 1)``; ``"percentile"``: the AOI's 2-98 % stretch). No-data pixels (every band 0)
get mask value ``IGNORE_INDEX``, so neither the loss nor a metric counts them.

**Determinism.** Element ``k`` of the (infinite) training stream is tile ``perm_e[k mod n]`` with
``e = k // n`` and ``perm_e = argsort(stateless_uniform([n], (seed, e)))``, computed once per
epoch (so the work per element does not grow with n); its augmentation uses the stateless seed
``(seed, k)``. The stream depends only on the seed, not on thread timing (``deterministic=True``),
and a resumed run restarts it at element ``start_element`` exactly where the interrupted run
stopped.

**Tile sizes.** Whole tiles (validation, ``--no-augment``) are padded to a multiple of the network
stride by :mod:`assignment2.padding` (reflected image, ``IGNORE_INDEX`` mask).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from assignment2 import IGNORE_INDEX
from assignment2.augment import AugmentConfig, augment
from assignment2.data import MAX_VALUE, PreparedData
from assignment2.padding import pad_image, pad_mask
from assignment2.radiometry import normalize_image

__all__ = [
    "stack_tiles",
    "steps_per_epoch",
    "tile_dataset",
    "train_dataset",
    "validation_dataset",
]


def stack_tiles(images, masks):
    """Stack equally sized tiles into ``(N, H, W, C)`` and ``(N, H, W)`` arrays (in-memory source).

    Raises:
        ValueError: no tiles, or tiles / masks of different sizes (the message shows them).
    """
    if len(images) == 0 or len(images) != len(masks):
        raise ValueError(
            f"images and masks must be non-empty and of equal length, got {len(images)} images "
            f"and {len(masks)} masks"
        )
    sizes = {tuple(np.shape(image)[:2]) for image in images}
    sizes |= {tuple(np.shape(mask)[:2]) for mask in masks}
    if len(sizes) != 1:
        raise ValueError(f"all tiles and masks must have one size to be batched, got sizes {sizes}")
    return np.stack(images), np.stack(masks).astype(np.uint8)


def steps_per_epoch(num_tiles: int, batch_size: int) -> int:
    """Batches per epoch so that every tile is seen about once: ``max(1, ceil(N / B))``."""
    return max(1, math.ceil(num_tiles / batch_size))


@dataclass
class _Source:
    """Where elements come from: ``read(index) -> (image uint16, mask, instances, scale, offset)``."""

    count: int
    shape: tuple[int, int, int]
    read: object


def _prepared_source(data: PreparedData, tiles, normalization: str) -> _Source:
    tiles = data.tiles if tiles is None else data.by_id(tiles) if isinstance(tiles[0], str) \
        else list(tiles)
    if not tiles:
        raise ValueError("tiles must not be empty")
    h, w, c = tiles[0].height, tiles[0].width, tiles[0].bands
    paths = tf.constant([str(t.file) for t in tiles])
    scales, offsets = zip(*(_scale_offset(data.radiometry[t.aoi], normalization, c)
                            for t in tiles))
    scales, offsets = tf.constant(np.stack(scales)), tf.constant(np.stack(offsets))
    sizes = (h * w * c * 2, h * w, h * w * 4)

    def read(index):
        raw = tf.io.decode_compressed(tf.io.read_file(paths[index]), "ZLIB")
        image = tf.io.decode_raw(tf.strings.substr(raw, 0, sizes[0]), tf.uint16)
        mask = tf.io.decode_raw(tf.strings.substr(raw, sizes[0], sizes[1]), tf.uint8)
        instances = tf.io.decode_raw(tf.strings.substr(raw, sizes[0] + sizes[1], sizes[2]),
                                     tf.int32)
        return (tf.reshape(image, [h, w, c]), tf.reshape(mask, [h, w]),
                tf.reshape(instances, [h, w]), scales[index], offsets[index])

    return _Source(len(tiles), (h, w, c), read)


def _scale_offset(radiometry, normalization, bands):
    scale, offset = radiometry.scale_offset(normalization)
    return (np.broadcast_to(scale, (bands,)).astype(np.float32),
            np.broadcast_to(offset, (bands,)).astype(np.float32))


def _memory_source(images, masks) -> _Source:
    """Arrays held in memory (11-bit digital numbers, fixed scaling); for small data and tests."""
    images, masks = stack_tiles(images, masks) if isinstance(images, list) else \
        (np.asarray(images), np.asarray(masks, np.uint8))
    n, h, w, c = images.shape
    images, masks = tf.constant(images), tf.constant(masks, tf.uint8)
    scale = tf.fill([c], np.float32(1.0 / MAX_VALUE))

    def read(index):
        mask = tf.gather(masks, index)
        return (tf.gather(images, index), mask, tf.zeros_like(mask, tf.int32), scale,
                tf.zeros_like(scale))

    return _Source(n, (h, w, c), read)


def _source(data, tiles, normalization) -> _Source:
    if isinstance(data, PreparedData):
        return _prepared_source(data, tiles, normalization)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        if tiles is not None or normalization != "fixed":
            raise ValueError("tiles and normalization apply to a prepared data set only")
        return _memory_source(*data)
    raise TypeError(f"data must be a PreparedData or an (images, masks) pair, got "
                    f"{type(data).__name__}")


def _prepare_fn(scale, offset):
    """Window -> (float32 image in [0, 1], mask with IGNORE_INDEX on no-data pixels)."""
    def prepare(image, mask):
        valid = tf.reduce_any(tf.not_equal(image, 0), axis=-1)
        mask = tf.where(valid, mask, tf.cast(IGNORE_INDEX, mask.dtype))
        return normalize_image(image, scale, offset), mask
    return prepare


def _element_indices(n: int, seed, start_element: int) -> tf.data.Dataset:
    """``(k, tile index)`` from element ``start_element`` on; one permutation per epoch."""
    start_epoch, offset = divmod(int(start_element), n)

    def epoch(e):
        order = tf.argsort(tf.random.stateless_uniform([n], tf.stack([seed, e])))
        first = e * n
        return tf.data.Dataset.from_tensor_slices(
            (tf.range(first, first + n, dtype=tf.int64), tf.cast(order, tf.int64)))

    return tf.data.Dataset.counter(start=start_epoch, dtype=tf.int64).flat_map(epoch).skip(offset)


def _check_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def train_dataset(data, *, tiles=None, batch_size: int, augment_config: AugmentConfig | None = None,
                  seed: int = 0, start_element: int = 0, normalization: str = "fixed",
                  multiple: int | None = None) -> tf.data.Dataset:
    """Infinite stream of augmented training batches (use ``steps_per_epoch`` in ``fit``).

    Args:
        data: a :class:`~assignment2.data.PreparedData` (streamed from disk), or an
            ``(images (N, H, W, C) uint16, masks (N, H, W) uint8)`` pair held in memory.
        tiles: the training tiles (ids or :class:`~assignment2.data.Tile`; default all).
        batch_size: elements per batch (the stream is infinite, so every batch is full).
        augment_config: the augmentation of every element (default ``AugmentConfig()``;
            ``AugmentConfig.none()`` for whole tiles).
        seed: run seed; with ``start_element`` it fixes the whole stream.
        start_element: index of the first element (``initial_epoch * steps * batch_size``
            when resuming).
        normalization: ``"fixed"`` or ``"percentile"`` (prepared data sets only).
        multiple: the network stride; elements are padded to it (reflected image,
            ``IGNORE_INDEX`` mask), so whole tiles of any size (650 px) can be trained on.

    Returns:
        Dataset of ``(image float32 (B, h, w, C) in [0, 1], mask uint8 (B, h, w))`` with
        ``h = w = crop_size`` (or the tile size without crop), padded up to ``multiple``.
    """
    augment_config = AugmentConfig() if augment_config is None else augment_config
    batch_size = _check_int(batch_size, "batch_size", 1)
    start_element = _check_int(start_element, "start_element", 0)
    source = _source(data, tiles, normalization)
    seed = tf.constant(_check_int(seed, "seed", 0), tf.int64)

    def load(k, index):
        image, mask, _, scale, offset = source.read(index)
        image, mask = augment(image, mask, tf.stack([seed, k]), augment_config,
                              prepare=_prepare_fn(scale, offset))
        if multiple is not None:
            image, mask = pad_image(image, multiple), pad_mask(mask, multiple)
        return image, mask

    return (
        _element_indices(source.count, seed, start_element)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def tile_dataset(data, *, tiles=None, normalization: str = "fixed",
                 multiple: int | None = None) -> tf.data.Dataset:
    """Whole tiles in order, one element per tile, as the model sees them (for evaluation).

    Args:
        data, tiles, normalization: as :func:`train_dataset`.
        multiple: pad image (reflect) and mask (``IGNORE_INDEX``) to this network stride, or
            ``None`` to keep the tile size.

    Returns:
        Finite dataset of dicts: ``index`` int64 (position in ``tiles``), ``image`` float32
        ``(H, W, C)`` in [0, 1], ``mask`` uint8 ``(H, W)`` (``IGNORE_INDEX`` on no-data),
        ``instances`` int32 ``(H, W)``, ``valid`` bool ``(H, W)``.
    """
    source = _source(data, tiles, normalization)

    def load(index):
        image, mask, instances, scale, offset = source.read(index)
        valid = tf.reduce_any(tf.not_equal(image, 0), axis=-1)
        image, mask = _prepare_fn(scale, offset)(image, mask)
        if multiple is not None:
            image, mask = pad_image(image, multiple), pad_mask(mask, multiple)
        return {"index": index, "image": image, "mask": mask, "instances": instances,
                "valid": valid}

    return (tf.data.Dataset.range(source.count)
            .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(2))


def validation_dataset(data, *, tiles=None, batch_size: int, multiple: int,
                       normalization: str = "fixed") -> tf.data.Dataset:
    """Whole validation tiles (no augmentation), padded to ``multiple``, batched, prefetched.

    Returns:
        Finite dataset of ``(image float32 (B, H', W', C), mask uint8 (B, H', W'))``; the padding
        is reflected image and ``IGNORE_INDEX`` mask, so the loss skips it.
    """
    batch_size = _check_int(batch_size, "batch_size", 1)
    return (tile_dataset(data, tiles=tiles, normalization=normalization, multiple=multiple)
            .map(lambda e: (e["image"], e["mask"]))
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE))
