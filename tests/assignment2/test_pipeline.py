"""tf.data pipelines: normalisation, shapes, seeded order and augmentation, resumable stream."""

import numpy as np
import pytest
import tensorflow as tf

from assignment2 import IGNORE_INDEX
from assignment2.augment import AugmentConfig
from assignment2.pipeline import (
    pad_to_multiple,
    stack_tiles,
    steps_per_epoch,
    train_dataset,
    validation_dataset,
)


def _tiles(n=4, size=16):
    """Tile i is constant 100 * (i + 1) in every band; its mask is constant i % 3."""
    images = np.stack([np.full((size, size, 3), 100 * (i + 1), np.uint16) for i in range(n)])
    masks = np.stack([np.full((size, size), i % 3, np.uint8) for i in range(n)])
    return images, masks


def _take(dataset, batches):
    return [(x.numpy(), y.numpy()) for x, y in dataset.take(batches)]


def _tile_index(image):
    """Which tile of :func:`_tiles` an (un-augmented) element came from."""
    return round(float(image[0, 0, 0]) * 2047 / 100) - 1


def test_every_epoch_is_a_seeded_permutation_of_the_tiles():
    images, masks = _tiles(n=4)
    dataset = train_dataset(images, masks, batch_size=2, augment_config=AugmentConfig.none(),
                            seed=3)
    batches = _take(dataset, 6)  # 3 epochs of 4 tiles
    order = [_tile_index(x) for batch, _ in batches for x in batch]
    epochs = [order[0:4], order[4:8], order[8:12]]
    assert all(sorted(e) == [0, 1, 2, 3] for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1  # reshuffled between epochs
    for (x, y), index in zip([(x, y) for b in batches for x, y in zip(*b)], order):
        assert y[0, 0] == index % 3  # the mask travels with its image


def test_normalisation_is_11_bit_scaling_to_unit_interval():
    images, masks = _tiles(n=2)
    images[0, 0, 0] = [0, 2047, 4095]  # 4095: out of the 11-bit range, clipped
    x, _ = _take(train_dataset(images, masks, batch_size=2, augment_config=AugmentConfig.none(),
                               seed=0), 1)[0]
    assert x.dtype == np.float32
    pixels = {tuple(np.round(v, 6)) for v in x[:, 0, 0]}
    assert (0.0, 1.0, 1.0) in pixels
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_same_seed_same_stream_other_seed_other_stream():
    images, masks = _tiles(n=5, size=24)
    config = AugmentConfig(crop_size=16)
    first = _take(train_dataset(images, masks, batch_size=2, augment_config=config, seed=7), 3)
    again = _take(train_dataset(images, masks, batch_size=2, augment_config=config, seed=7), 3)
    other = _take(train_dataset(images, masks, batch_size=2, augment_config=config, seed=8), 3)
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert any(not np.array_equal(y1, y3) for (_, y1), (_, y3) in zip(first, other))


def test_start_element_resumes_the_stream_exactly():
    images, masks = _tiles(n=3, size=24)
    config = AugmentConfig(crop_size=16)
    full = _take(train_dataset(images, masks, batch_size=2, augment_config=config, seed=1), 4)
    resumed = _take(train_dataset(images, masks, batch_size=2, augment_config=config, seed=1,
                                  start_element=4), 2)
    for (x1, y1), (x2, y2) in zip(full[2:], resumed):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_augmented_batches_have_crop_shape_and_valid_labels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 2048, (3, 40, 40, 3)).astype(np.uint16)
    masks = rng.integers(0, 3, (3, 40, 40)).astype(np.uint8)
    dataset = train_dataset(images, masks, batch_size=4, augment_config=AugmentConfig(crop_size=32),
                            seed=0)
    assert dataset.element_spec[0].shape.as_list() == [4, 32, 32, 3]
    assert dataset.element_spec[1].shape.as_list() == [4, 32, 32]
    for x, y in _take(dataset, 3):
        assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
        assert y.dtype == np.uint8 and set(np.unique(y)) <= {0, 1, 2, IGNORE_INDEX}


def test_pad_to_multiple_pads_images_with_zero_and_masks_with_ignore():
    images = np.ones((1, 3, 5, 1), np.uint16)
    masks = np.array([[[0, 1, 2, 1, 0]] * 3], np.uint8)
    padded_images, padded_masks = pad_to_multiple(images, masks, 4)
    assert padded_images.shape == (1, 4, 8, 1) and padded_masks.shape == (1, 4, 8)
    expected = np.full((4, 8), IGNORE_INDEX, np.uint8)
    expected[:3, :5] = masks[0]
    np.testing.assert_array_equal(padded_masks[0], expected)
    assert padded_images.sum() == 15 and padded_images[0, :3, :5].sum() == 15


def test_validation_dataset_keeps_whole_tiles_in_order():
    images, masks = _tiles(n=3, size=20)
    batches = list(validation_dataset(images, masks, batch_size=2, multiple=8))
    assert [tuple(x.shape) for x, _ in batches] == [(2, 24, 24, 3), (1, 24, 24, 3)]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    assert [_tile_index(tile) for tile in x] == [0, 1, 2]
    np.testing.assert_array_equal(y[:, :20, :20], masks)
    assert (y[:, 20:] == IGNORE_INDEX).all() and (y[:, :, 20:] == IGNORE_INDEX).all()


def test_stack_tiles_rejects_mixed_sizes_and_steps_per_epoch():
    with pytest.raises(ValueError, match="size"):
        stack_tiles([np.zeros((8, 8, 3)), np.zeros((9, 8, 3))], [np.zeros((8, 8))] * 2)
    with pytest.raises(ValueError, match="0 images"):
        stack_tiles([], [])
    assert steps_per_epoch(10, 4) == 3 and steps_per_epoch(8, 4) == 2 and steps_per_epoch(1, 4) == 1


def test_the_pipeline_runs_map_in_parallel_and_prefetches():
    images, masks = _tiles(n=2)
    dataset = train_dataset(images, masks, batch_size=1, seed=0,
                            augment_config=AugmentConfig(crop_size=8))
    serialized = dataset._as_serialized_graph().numpy()
    ops = {node.op for node in tf.compat.v1.GraphDef.FromString(serialized).node}
    assert {"ParallelMapDatasetV2", "BatchDatasetV2", "PrefetchDataset"} <= ops
