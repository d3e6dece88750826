"""Rasterisation of hand-made polygons (exact pixels) and the 3-class masks built from them."""

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from assignment2.masks import (
    DEFAULT_BOUNDARY_WIDTH,
    building_masks,
    inner_boundary,
    rasterize_polygon,
)


def _grid(text):
    return np.array([[int(ch) for ch in row] for row in text.split()], dtype=np.uint8)


def test_axis_aligned_rectangle_covers_exactly_the_pixel_centres_inside():
    # x from 2 to 5 covers centres 2.5, 3.5, 4.5; y from 1 to 4 covers rows 1, 2, 3.
    inside = rasterize_polygon([(2, 1), (5, 1), (5, 4), (2, 4)], (6, 7))
    np.testing.assert_array_equal(inside, _grid("""
        0000000
        0011100
        0011100
        0011100
        0000000
        0000000""").astype(bool))


def test_fractional_rectangle_takes_pixels_whose_centres_it_contains():
    # x in [1.4, 3.6) holds centres 1.5, 2.5, 3.5; y in [0.6, 2.4) holds only centre 1.5.
    inside = rasterize_polygon([(1.4, 0.6), (3.6, 0.6), (3.6, 2.4), (1.4, 2.4)], (4, 5))
    np.testing.assert_array_equal(inside, _grid("00000 01110 00000 00000").astype(bool))


def test_triangle_centres_on_the_hypotenuse_are_outside():
    # x + y < 4 strictly inside; centres with x + y == 4 lie on the right/bottom edge: outside.
    inside = rasterize_polygon([(0, 0), (4, 0), (0, 4)], (5, 5))
    np.testing.assert_array_equal(inside, _grid("11100 11000 10000 00000 00000").astype(bool))


def test_edges_through_pixel_centres_use_the_half_open_rule():
    # Square [0.5, 2.5]^2: centres 0.5 and 1.5 (pixels 0, 1) lie on its left/top edges or
    # inside and count; centre 2.5 (pixel 2) lies on its right/bottom edges and does not.
    inside = rasterize_polygon([(0.5, 0.5), (2.5, 0.5), (2.5, 2.5), (0.5, 2.5)], (4, 4))
    np.testing.assert_array_equal(inside, _grid("1100 1100 0000 0000").astype(bool))


def test_hole_is_respected():
    outer = [(0, 0), (6, 0), (6, 6), (0, 6)]
    hole = [(2, 2), (4, 2), (4, 4), (2, 4)]
    inside = rasterize_polygon([outer, hole], (7, 7))
    np.testing.assert_array_equal(inside, _grid("""
        1111110
        1111110
        1100110
        1100110
        1111110
        1111110
        0000000""").astype(bool))


def test_multipolygon_is_the_union_of_its_parts_and_z_is_ignored():
    left = [[(0, 0, 0), (2, 0, 0), (2, 2, 0), (0, 2, 0), (0, 0, 0)]]  # closed ring with Z
    right = [[(3, 1), (5, 1), (5, 3), (3, 3)]]
    inside = rasterize_polygon([left, right], (3, 6))
    np.testing.assert_array_equal(inside, _grid("110000 110110 000110").astype(bool))


def test_parts_outside_the_tile_are_cut_off():
    inside = rasterize_polygon([(-3, -3), (2, -3), (2, 2), (-3, 2)], (4, 4))
    np.testing.assert_array_equal(inside, _grid("1100 1100 0000 0000").astype(bool))
    assert not rasterize_polygon([(10, 10), (12, 10), (12, 12)], (4, 4)).any()


def test_shared_edges_split_pixels_without_gap_or_overlap():
    rng = np.random.default_rng(0)
    for _ in range(20):
        quad = np.array([[1, 1], [18, 2], [19, 17], [2, 18]]) + rng.uniform(-1, 1, (4, 2))
        first = rasterize_polygon(quad[[0, 1, 2]], (20, 20))
        second = rasterize_polygon(quad[[0, 2, 3]], (20, 20))
        assert not (first & second).any()
        np.testing.assert_array_equal(first | second, rasterize_polygon(quad, (20, 20)))


def test_agrees_with_matplotlib_on_random_polygons():
    rng = np.random.default_rng(1)
    rows, cols = np.mgrid[0:30, 0:40]
    centres = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)
    for _ in range(10):  # random star-shaped polygons, vertices never on a centre line
        angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
        radii = rng.uniform(4, 14, 9)
        ring = np.stack([20 + radii * np.cos(angles), 15 + radii * np.sin(angles)], axis=1)
        expected = MplPath(ring).contains_points(centres).reshape(30, 40)
        np.testing.assert_array_equal(rasterize_polygon(ring, (30, 40)), expected)


def test_building_mask_boundary_one_pixel():
    mask, instances = building_masks([[(1, 1), (6, 1), (6, 5), (1, 5)]], (6, 8), boundary_width=1)
    np.testing.assert_array_equal(mask, _grid("""
        00000000
        02222200
        02111200
        02111200
        02222200
        00000000"""))
    np.testing.assert_array_equal(instances, (mask > 0).astype(np.int32))


def test_default_boundary_is_two_pixels():
    assert DEFAULT_BOUNDARY_WIDTH == 2
    mask, _ = building_masks([[(1, 1), (10, 1), (10, 10), (1, 10)]], (12, 12))
    # footprint rows/cols 1..9 (9 pixels); erosion by 2 leaves rows/cols 3..7
    expected = np.zeros((12, 12), np.uint8)
    expected[1:10, 1:10] = 2
    expected[3:8, 3:8] = 1
    np.testing.assert_array_equal(mask, expected)
    three, _ = building_masks([[(1, 1), (10, 1), (10, 10), (1, 10)]], (12, 12), boundary_width=3)
    np.testing.assert_array_equal(three[1:10, 1:10] == 1, np.pad(np.ones((3, 3), bool), 3))


def test_touching_neighbours_keep_their_own_boundaries():
    left = [(0, 0), (4, 0), (4, 3), (0, 3)]
    right = [(4, 0), (7, 0), (7, 3), (4, 3)]
    mask, instances = building_masks([left, right], (5, 9), boundary_width=1)
    # top and left tile edges: the building continues outside, so no boundary there
    np.testing.assert_array_equal(mask, _grid("""
        111221200
        111221200
        222222200
        000000000
        000000000"""))
    np.testing.assert_array_equal(instances[0], [1, 1, 1, 1, 2, 2, 2, 0, 0])


def test_hole_rim_is_boundary_and_numbering_follows_the_features():
    outside = [(20, 20), (22, 20), (22, 22)]  # covers no pixel: its number 1 is absent
    courtyard = [[(0.0, 0.0), (9, 0), (9, 9), (0, 9)], [(3, 3), (6, 3), (6, 6), (3, 6)]]
    mask, instances = building_masks([outside, courtyard], (9, 9), boundary_width=1)
    assert set(np.unique(instances)) == {0, 2}
    assert (mask[3:6, 3:6] == 0).all()
    assert (mask[2, 2:7] == 2).all() and (mask[6, 2:7] == 2).all()  # rim around the hole
    assert (mask[1, 1:8] == 1).all()


def test_boundary_width_zero_and_thick_boundaries():
    square = [(0, 0), (4, 0), (4, 4), (0, 4)]
    mask0, _ = building_masks([square], (6, 6), boundary_width=0)
    assert set(np.unique(mask0[:4, :4])) == {1}
    mask9, _ = building_masks([square], (6, 6), boundary_width=9)
    assert set(np.unique(mask9[:4, :4])) == {2}


def test_inner_boundary_is_footprint_minus_erosion():
    rng = np.random.default_rng(2)
    footprint = np.zeros((20, 20), bool)
    footprint[3:15, 4:17] = True
    footprint[8:, 10:] = rng.random((12, 10)) < 0.9
    from scipy import ndimage
    eroded = ndimage.binary_erosion(footprint, np.ones((5, 5)), border_value=1)
    np.testing.assert_array_equal(inner_boundary(footprint, 2), footprint & ~eroded)


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"boundary_width": -1}, ValueError, "boundary_width.*-1"),
    ({"boundary_width": 1.5}, TypeError, "boundary_width.*1.5"),
    ({"shape": (0, 4)}, ValueError, r"shape.*\(0, 4\)"),
    ({"shape": (4,)}, ValueError, r"shape.*\(4,\)"),
])
def test_arguments_are_validated(kwargs, error, pattern):
    args = {"polygons_px": [[(0, 0), (1, 0), (1, 1)]], "shape": (4, 4), **kwargs}
    with pytest.raises(error, match=pattern):
        building_masks(args.pop("polygons_px"), args.pop("shape"), **args)


def test_bad_polygons_are_rejected():
    with pytest.raises(ValueError, match="polygon"):
        rasterize_polygon("abc", (3, 3))
    with pytest.raises(ValueError, match="ring"):
        rasterize_polygon([(0, 0), (1, np.nan), (1, 1)], (3, 3))
