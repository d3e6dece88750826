"""Joint augmentation: image and mask move together, labels survive, sizes and seeds behave."""

import math

import numpy as np
import pytest
import tensorflow as tf

from assignment2 import IGNORE_INDEX
from assignment2.augment import AugmentConfig, augment, flip, random_crop, rotate, scale


def _coordinate_tile(height, width):
    """Image channels (row, col, 1) and an int32 mask holding the flat pixel index.

    Bilinear interpolation reproduces the linear row/col channels exactly (away from the edge,
    where the mirrored fill bends them), and the mask index names the source pixel that
    nearest-neighbour picked: comparing them checks that image and mask moved together.
    """
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([rows, cols, np.ones_like(rows)], axis=-1)
    mask = np.arange(height * width, dtype=np.int32).reshape(height, width)
    return image, mask


def _assert_moved_together(image, mask, height, width, tolerance, margin=1):
    """Pixels whose source lies ``margin`` or more pixels inside the tile agree within
    ``tolerance`` pixels per axis (nearer the edge bilinear also reads the mirrored fill)."""
    image, mask = np.asarray(image), np.asarray(mask)
    rows, cols = np.divmod(np.where(mask == IGNORE_INDEX, 0, mask), width)
    clean = (mask != IGNORE_INDEX) & (rows >= margin) & (rows < height - margin) \
        & (cols >= margin) & (cols < width - margin)
    assert clean.sum() > 0.3 * mask.size  # the check below covers most pixels
    source_row, source_col = rows[clean], cols[clean]
    np.testing.assert_array_less(np.abs(image[..., 0][clean] - source_row), tolerance)
    np.testing.assert_array_less(np.abs(image[..., 1][clean] - source_col), tolerance)


@pytest.mark.parametrize("quarter_turns", [1, 2, 3, -1])
def test_rotation_by_quarter_turns_equals_np_rot90(quarter_turns):
    image = np.arange(5 * 5 * 2, dtype=np.float32).reshape(5, 5, 2)
    mask = np.array([[0, 1, 2, 0, 0],
                     [1, 1, 2, 0, 0],
                     [0, 0, 0, 2, 2],
                     [0, 1, 1, 2, 1],
                     [2, 2, 0, 0, 1]], dtype=np.uint8)
    out_image, out_mask = rotate(image, mask, quarter_turns * math.pi / 2)
    np.testing.assert_allclose(out_image, np.rot90(image, quarter_turns), atol=1e-4)
    np.testing.assert_array_equal(out_mask, np.rot90(mask, quarter_turns))
    assert out_mask.dtype == tf.uint8


def test_rotation_by_45_degrees_fills_the_corners_with_ignore_and_a_mirror_image():
    image = np.ones((9, 9, 1), np.float32)
    mask = np.ones((9, 9), np.uint8)
    out_image, out_mask = rotate(image, mask, math.pi / 4)
    out_image, out_mask = out_image.numpy(), out_mask.numpy()
    for corner in [(0, 0), (0, 8), (8, 0), (8, 8)]:
        assert out_mask[corner] == IGNORE_INDEX
        assert out_image[corner + (0,)] == pytest.approx(1.0)  # mirrored, not black
    # the inscribed disc of the tile stays inside the rotated tile: labelled, untouched
    rows, cols = np.mgrid[0:9, 0:9]
    disc = (rows - 4) ** 2 + (cols - 4) ** 2 <= 16
    assert (out_mask[disc] == 1).all()
    np.testing.assert_allclose(out_image[disc, 0], 1.0, atol=1e-5)


@pytest.mark.parametrize("degrees", [17.0, -33.0, 60.0, 135.0])
def test_rotation_by_any_angle_moves_image_and_mask_together(degrees):
    image, mask = _coordinate_tile(21, 21)
    out_image, out_mask = rotate(image, mask, math.radians(degrees))
    # nearest-neighbour picks the source pixel within half a pixel per axis of the exact point
    _assert_moved_together(out_image, out_mask, 21, 21, tolerance=0.5 + 1e-3)


def test_rotation_ignore_region_is_exactly_the_outside_of_the_tile():
    size, angle = 15, math.radians(30)
    _, mask = _coordinate_tile(size, size)
    _, out_mask = rotate(np.zeros((size, size, 1), np.float32), mask, angle)
    centre = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size] - centre
    source_x = centre + math.cos(angle) * x - math.sin(angle) * y
    source_y = centre + math.sin(angle) * x + math.cos(angle) * y
    inside = (np.round(source_x) >= 0) & (np.round(source_x) <= size - 1) \
        & (np.round(source_y) >= 0) & (np.round(source_y) <= size - 1)
    margin = np.minimum.reduce([np.abs(source_x - np.round(source_x) - 0.5),
                                np.abs(source_y - np.round(source_y) - 0.5)]) > 1e-3
    np.testing.assert_array_equal((out_mask.numpy() != IGNORE_INDEX)[margin], inside[margin])


def test_scale_by_two_repeats_mask_pixels_and_keeps_coordinates():
    mask = np.array([[0, 1, 2],
                     [2, 0, 1],
                     [1, 2, 0]], dtype=np.uint8)
    _, out_mask = scale(np.zeros((3, 3, 1), np.float32), mask, 2.0)
    np.testing.assert_array_equal(out_mask, np.kron(mask, np.ones((2, 2), np.uint8)))

    image, index = _coordinate_tile(12, 12)
    out_image, out_index = scale(image, index, 1.5)
    assert out_image.shape == (18, 18, 3) and out_index.shape == (18, 18)
    # bilinear with half-pixel centres: output pixel p samples source point (p + 0.5) / s - 0.5
    # (clamped at the border); nearest picks the source pixel that contains (p + 0.5) / s
    expected = np.clip((np.arange(18) + 0.5) / 1.5 - 0.5, 0, 11)
    np.testing.assert_allclose(out_image[0, :, 1], expected, atol=1e-4)
    np.testing.assert_array_equal(out_index[0], np.floor((np.arange(18) + 0.5) / 1.5))


def test_random_crop_cuts_the_same_window_of_the_right_size():
    image, mask = _coordinate_tile(6, 8)
    for s in range(5):
        out_image, out_mask = random_crop(image, mask, 4, tf.constant([s, 7]))
        out_image, out_mask = out_image.numpy(), out_mask.numpy()
        assert out_image.shape == (4, 4, 3) and out_mask.shape == (4, 4)
        top, left = divmod(int(out_mask[0, 0]), 8)
        np.testing.assert_array_equal(out_mask, mask[top:top + 4, left:left + 4])
        np.testing.assert_array_equal(out_image, image[top:top + 4, left:left + 4])


def test_random_crop_covers_every_offset_and_pads_small_tiles_with_ignore():
    image, mask = _coordinate_tile(5, 5)
    corners = {int(random_crop(image, mask, 3, tf.constant([s, 1]))[1][0, 0]) for s in range(60)}
    assert corners == {r * 5 + c for r in range(3) for c in range(3)}

    out_image, out_mask = random_crop(image, mask, 7, tf.constant([0, 0]))
    expected = np.full((7, 7), IGNORE_INDEX, np.int32)
    expected[:5, :5] = mask                      # the one pad helper: bottom and right
    np.testing.assert_array_equal(out_mask, expected)
    out_image = np.asarray(out_image)
    np.testing.assert_array_equal(out_image[:5, :5], image)
    np.testing.assert_array_equal(out_image[5:7, :5], np.asarray(image)[[3, 2], :])  # reflected
    np.testing.assert_array_equal(out_image[:5, 5:7], np.asarray(image)[:, [3, 2]])


def test_flip_moves_image_and_mask_together_and_draws_all_four_outcomes():
    image, mask = _coordinate_tile(4, 5)
    candidates = {
        "none": mask, "lr": mask[:, ::-1], "ud": mask[::-1], "both": mask[::-1, ::-1]}
    seen = set()
    for s in range(40):
        out_image, out_mask = flip(image, mask, tf.constant([s, 3]))
        name = next(k for k, v in candidates.items() if np.array_equal(out_mask, v))
        seen.add(name)
        _assert_moved_together(out_image, out_mask, 4, 5, tolerance=1e-6, margin=0)
    assert seen == set(candidates)


def test_augment_is_seeded_and_keeps_labels_and_size():
    rng = np.random.default_rng(0)
    image = rng.random((48, 48, 3)).astype(np.float32)
    mask = rng.integers(0, 3, (48, 48)).astype(np.uint8)
    config = AugmentConfig(crop_size=32)
    a = augment(image, mask, tf.constant([1, 2]), config)
    b = augment(image, mask, tf.constant([1, 2]), config)
    c = augment(image, mask, tf.constant([1, 3]), config)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    for out_image, out_mask in (a, c):
        assert out_image.shape == (32, 32, 3) and out_mask.shape == (32, 32)
        assert out_mask.dtype == tf.uint8
        assert set(np.unique(out_mask)) <= {0, 1, 2, IGNORE_INDEX}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_augment_with_every_step_moves_image_and_mask_together(seed):
    image, mask = _coordinate_tile(40, 40)
    out_image, out_mask = augment(image, mask, tf.constant([seed, 5]), AugmentConfig(crop_size=24))
    # two resamplings (scale by s in [0.8, 1.25], rotate): each nearest pick is within half a
    # pixel per axis of its own sampling grid, i.e. at most 0.5 + 0.5 / 0.8 source pixels
    _assert_moved_together(out_image, out_mask, 40, 40, tolerance=1.13, margin=2)


def test_augment_without_crop_keeps_the_tile_size_and_switched_off_is_identity():
    image, mask = _coordinate_tile(20, 20)
    out_image, out_mask = augment(image, mask, tf.constant([4, 4]), AugmentConfig(crop_size=None))
    assert out_image.shape == (20, 20, 3) and out_mask.shape == (20, 20)
    same_image, same_mask = augment(image, mask, tf.constant([4, 4]), AugmentConfig.none())
    np.testing.assert_array_equal(same_image, image)
    np.testing.assert_array_equal(same_mask, mask)


def test_augment_works_inside_dataset_map():
    images = np.zeros((3, 16, 16, 3), np.float32)
    masks = np.ones((3, 16, 16), np.uint8)
    dataset = tf.data.Dataset.from_tensor_slices((images, masks)).enumerate().map(
        lambda k, pair: augment(pair[0], pair[1], tf.stack([k, k]), AugmentConfig(crop_size=8)))
    shapes = [(i.shape, m.shape) for i, m in dataset]
    assert shapes == [((8, 8, 3), (8, 8))] * 3


@pytest.mark.parametrize("kwargs, word", [
    ({"max_angle": 200}, "max_angle"), ({"scale_range": (2.0, 1.0)}, "scale_range"),
    ({"crop_size": 0}, "crop_size"), ({"crop_size": 12.5}, "crop_size"),
])
def test_config_rejects_bad_values(kwargs, word):
    with pytest.raises(ValueError, match=word):
        AugmentConfig(**kwargs)
