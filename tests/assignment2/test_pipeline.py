"""tf.data pipelines: normalisation, shapes, seeded order and augmentation, resumable stream."""

import numpy as np
import pytest
import tensorflow as tf

from assignment2 import IGNORE_INDEX
from assignment2.augment import AugmentConfig
from assignment2.data import open_prepared, read_tile
from assignment2.pipeline import (
    stack_tiles,
    steps_per_epoch,
    tile_dataset,
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
    dataset = train_dataset((images, masks), batch_size=2, augment_config=AugmentConfig.none(),
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
    x, _ = _take(train_dataset((images, masks), batch_size=2, augment_config=AugmentConfig.none(),
                               seed=0), 1)[0]
    assert x.dtype == np.float32
    pixels = {tuple(np.round(v, 6)) for v in x[:, 0, 0]}
    assert (0.0, 1.0, 1.0) in pixels
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_same_seed_same_stream_other_seed_other_stream():
    images, masks = _tiles(n=5, size=24)
    config = AugmentConfig(crop_size=16)
    first = _take(train_dataset((images, masks), batch_size=2, augment_config=config, seed=7), 3)
    again = _take(train_dataset((images, masks), batch_size=2, augment_config=config, seed=7), 3)
    other = _take(train_dataset((images, masks), batch_size=2, augment_config=config, seed=8), 3)
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert any(not np.array_equal(y1, y3) for (_, y1), (_, y3) in zip(first, other))


def test_start_element_resumes_the_stream_exactly():
    images, masks = _tiles(n=3, size=24)
    config = AugmentConfig(crop_size=16)
    full = _take(train_dataset((images, masks), batch_size=2, augment_config=config, seed=1), 4)
    resumed = _take(train_dataset((images, masks), batch_size=2, augment_config=config, seed=1,
                                  start_element=4), 2)
    for (x1, y1), (x2, y2) in zip(full[2:], resumed):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_augmented_batches_have_crop_shape_and_valid_labels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 2048, (3, 40, 40, 3)).astype(np.uint16)
    masks = rng.integers(0, 3, (3, 40, 40)).astype(np.uint8)
    dataset = train_dataset((images, masks), batch_size=4, augment_config=AugmentConfig(crop_size=32),
                            seed=0)
    assert dataset.element_spec[0].shape.as_list() == [4, 32, 32, 3]
    assert dataset.element_spec[1].shape.as_list() == [4, 32, 32]
    for x, y in _take(dataset, 3):
        assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
        assert y.dtype == np.uint8 and set(np.unique(y)) <= {0, 1, 2, IGNORE_INDEX}


def test_validation_dataset_keeps_whole_tiles_in_order():
    images, masks = _tiles(n=3, size=20)
    batches = list(validation_dataset((images, masks), batch_size=2, multiple=8))
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
    dataset = train_dataset((images, masks), batch_size=1, seed=0,
                            augment_config=AugmentConfig(crop_size=8))
    serialized = dataset._as_serialized_graph().numpy()
    ops = {node.op for node in tf.compat.v1.GraphDef.FromString(serialized).node}
    assert {"ParallelMapDatasetV2", "BatchDatasetV2", "PrefetchDataset"} <= ops


# --------------------------------------------------------------------------- streaming


def _memory(spacenet_tiles):
    return (np.stack(spacenet_tiles.images), np.stack(spacenet_tiles.masks))


@pytest.mark.parametrize("config", [AugmentConfig(crop_size=32), AugmentConfig.none(),
                                    AugmentConfig(crop_size=None, rotate=False)])
def test_streaming_equals_the_in_memory_pipeline_element_for_element(
        prepared_area, spacenet_tiles, config):
    data = open_prepared(prepared_area)
    streamed = _take(train_dataset(data, batch_size=4, augment_config=config, seed=5), 4)
    in_memory = _take(train_dataset(_memory(spacenet_tiles), batch_size=4,
                                    augment_config=config, seed=5), 4)
    for (x1, y1), (x2, y2) in zip(streamed, in_memory):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    resumed = _take(train_dataset(data, batch_size=4, augment_config=config, seed=5,
                                  start_element=9), 1)[0]
    flat_x = np.concatenate([x for x, _ in streamed])
    np.testing.assert_array_equal(resumed[0], flat_x[9:13])


def test_no_data_pixels_get_ignore_index_in_training_and_validation(prepared_area,
                                                                    spacenet_tiles):
    data = open_prepared(prepared_area)
    k = spacenet_tiles.ids.index("AOI_2_Vegas_img3")
    wedge = (spacenet_tiles.images[k] == 0).all(-1)
    assert wedge.any()
    _, masks = next(iter(validation_dataset(data, tiles=["AOI_2_Vegas_img3"], batch_size=1,
                                            multiple=16)))
    np.testing.assert_array_equal(masks[0].numpy() == IGNORE_INDEX, wedge)
    for x, y in _take(train_dataset(data, tiles=["AOI_2_Vegas_img3"], batch_size=1, seed=0,
                                    augment_config=AugmentConfig.none()), 1):
        np.testing.assert_array_equal(y[0] == IGNORE_INDEX, wedge)
        assert (x[0][wedge] == 0).all()


def test_percentile_normalization_uses_each_aoi_statistics(tmp_path):
    from assignment2.prepare import PrepareConfig, prepare
    from data_stubs.spacenet import generate_spacenet

    root = generate_spacenet(tmp_path / "raw", cities=("Vegas", "Paris"), n_tiles=2,
                             tile_size=40, test_public=False)
    data = prepare(PrepareConfig(root, tmp_path / "out"), log=lambda line: None)
    for tile in data.tiles:
        element = next(iter(tile_dataset(data, tiles=[tile.id], normalization="percentile")))
        raw = read_tile(tile).image.astype(np.float64)
        radiometry = data.radiometry[tile.aoi]
        expected = np.clip((raw - np.array(radiometry.low)) /
                           (np.array(radiometry.high) - np.array(radiometry.low)), 0, 1)
        np.testing.assert_allclose(element["image"].numpy(), expected, atol=1e-6)


def test_whole_650_px_tiles_are_padded_for_training_without_augmentation(tmp_path):
    from assignment2.prepare import PrepareConfig, prepare
    from data_stubs.spacenet import generate_area

    area = generate_area(tmp_path / "raw", n_tiles=1, tile_size=650, layout="gdal")
    data = prepare(PrepareConfig(area, tmp_path / "out"))
    dataset = train_dataset(data, batch_size=1, augment_config=AugmentConfig.none(), seed=0,
                            multiple=16)
    assert dataset.element_spec[0].shape.as_list() == [1, 656, 656, 3]
    x, y = _take(dataset, 1)[0]
    assert (y[0, 650:] == IGNORE_INDEX).all() and (y[0, :, 650:] == IGNORE_INDEX).all()
    np.testing.assert_array_equal(x[0, 650:656], x[0, 648:642:-1])  # reflected rows
    crops = train_dataset(data, batch_size=2, augment_config=AugmentConfig(crop_size=128), seed=0)
    assert crops.element_spec[0].shape.as_list() == [2, 128, 128, 3]


def test_the_graph_holds_file_names_not_pixels(prepared_area, spacenet_tiles):
    data = open_prepared(prepared_area)
    dataset = train_dataset(data, batch_size=2, seed=0)
    graph_bytes = len(dataset._as_serialized_graph().numpy())
    pixel_bytes = sum(t.height * t.width * t.bands * 2 for t in data.tiles)
    in_memory = train_dataset(_memory(spacenet_tiles), batch_size=2, seed=0)
    assert len(in_memory._as_serialized_graph().numpy()) > pixel_bytes  # embeds the tiles
    assert graph_bytes < pixel_bytes / 2
    ops = {node.op for node in tf.compat.v1.GraphDef.FromString(
        dataset._as_serialized_graph().numpy()).node}
    assert {"ParallelMapDatasetV2", "PrefetchDataset", "FlatMapDataset"} <= ops
