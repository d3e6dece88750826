"""``tf.data`` input pipelines over tiles held in memory: training (augmented) and validation.

The lecture's "batch prepared on CPU, training on GPU": :func:`train_dataset` decodes, normalises
and augments elements in parallel (``num_parallel_calls=tf.data.AUTOTUNE``), batches them and
``prefetch``es, so the next batches are ready while the model trains on the current one.

Normalisation: the uint16 tiles stay in memory as they are and each element is converted by
:func:`assignment2.data.normalize` inside the pipeline: SpaceNet 2 pan-sharpened RGB has 11-bit
values, so ``x / 2047`` clipped to ``[0, 1]`` (float32).

Determinism: element ``k`` of the (infinite) training stream is tile ``perm_e[k mod n]`` with
``e = k // n`` and ``perm_e`` a permutation drawn from the stateless seed ``(seed, e)``; its
augmentation uses the stateless seed ``(seed, k)``. The stream therefore depends only on the seed,
not on thread timing (``deterministic=True``), and a resumed run restarts it at element
``start_element`` exactly where the interrupted run stopped.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from assignment2 import IGNORE_INDEX
from assignment2.augment import AugmentConfig, augment
from assignment2.data import normalize

__all__ = [
    "pad_to_multiple",
    "stack_tiles",
    "steps_per_epoch",
    "train_dataset",
    "validation_dataset",
]


def stack_tiles(images, masks):
    """Stack equally sized tiles into ``(N, H, W, C)`` and ``(N, H, W)`` arrays.

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


def _epoch_permutation(seed, epoch, n):
    """A seeded permutation of ``range(n)`` that depends only on ``(seed, epoch)``."""
    keys = tf.random.stateless_uniform([n], tf.stack([seed, epoch]))
    return tf.argsort(keys)


def train_dataset(
    images,
    masks,
    *,
    batch_size: int,
    augment_config: AugmentConfig | None = None,
    seed: int = 0,
    start_element: int = 0,
) -> tf.data.Dataset:
    """Infinite stream of augmented training batches (use ``steps_per_epoch`` in ``fit``).

    Args:
        images: ``(N, H, W, C)`` uint16 tiles (see :func:`stack_tiles`).
        masks: ``(N, H, W)`` uint8 masks, values in ``{0, 1, 2}``.
        batch_size: elements per batch (the last incomplete batch of an epoch is never formed:
            the stream is infinite, so every batch is full).
        augment_config: the augmentation applied to every element (default
            ``AugmentConfig()``; ``AugmentConfig.none()`` for none).
        seed: run seed; with ``start_element`` it fixes the whole stream.
        start_element: index of the first element (``initial_epoch * steps * batch_size``
            when resuming).

    Returns:
        Dataset of ``(image float32 (B, h, w, C) in [0, 1], mask uint8 (B, h, w))`` with
        ``h = w = crop_size`` (or the tile size without crop).
    """
    augment_config = AugmentConfig() if augment_config is None else augment_config
    images = tf.convert_to_tensor(images)
    masks = tf.convert_to_tensor(masks, tf.uint8)
    n = int(images.shape[0])
    seed = tf.constant(seed, tf.int64)

    def load(k):
        index = _epoch_permutation(seed, k // n, n)[k % n]
        image = tf.cast(normalize(tf.gather(images, index)), tf.float32)
        return augment(image, tf.gather(masks, index), tf.stack([seed, k]), augment_config)

    return (
        tf.data.Dataset.counter(start=start_element, dtype=tf.int64)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def pad_to_multiple(images, masks, multiple: int):
    """Pad tiles at the bottom/right to a multiple of the network stride.

    Image padding is 0 and mask padding ``IGNORE_INDEX``, so the loss skips the added pixels.

    Args:
        images: ``(N, H, W, C)`` array; masks: ``(N, H, W)`` array.
        multiple: the network stride ``2 ** depth``.

    Returns:
        ``(images (N, H', W', C), masks (N, H', W'))`` with ``H' = ceil(H / multiple) * multiple``.
    """
    height, width = images.shape[1:3]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    images = np.pad(images, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
    masks = np.pad(masks, ((0, 0), (0, pad_h), (0, pad_w)), constant_values=IGNORE_INDEX)
    return images, masks


def validation_dataset(images, masks, *, batch_size: int, multiple: int) -> tf.data.Dataset:
    """Whole validation tiles (no augmentation), padded to ``multiple``, batched, prefetched.

    Returns:
        Finite dataset of ``(image float32 (B, H', W', C), mask uint8 (B, H', W'))``.
    """
    images, masks = pad_to_multiple(np.asarray(images), np.asarray(masks, np.uint8), multiple)
    dataset = tf.data.Dataset.from_tensor_slices((images, masks))
    return (
        dataset.map(lambda image, mask: (tf.cast(normalize(image), tf.float32), mask),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
