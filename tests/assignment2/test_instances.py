"""Building instances: interior seeds grown into the boundary keep touching buildings apart."""

import numpy as np
import pytest

from assignment2.data import default_data_dir, load_tiles
from assignment2.instances import building_instances
from assignment2.masks import building_masks
from assignment2.metrics import segmentation_metrics
from data_stubs.spacenet import row_houses


def _grid(text):
    return np.array([[int(ch) for ch in row] for row in text.split()], dtype=np.uint8)


def _same_partition(a, b) -> bool:
    """Two label maps describe the same instances (ids may differ)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return (a > 0).sum() == (b > 0).sum() and len(set(pairs[0])) == len(set(pairs[1])) == \
        pairs.shape[1]



def test_two_touching_houses_and_a_shed_without_interior():
    # 6x5 house | 6x5 house | 3x5 shed (narrower than 2w + 1 = 5: all boundary), w = 2
    polygons = [[(0, 0), (6, 0), (6, 5), (0, 5)], [(6, 0), (12, 0), (12, 5), (6, 5)],
                [(12, 0), (15, 0), (15, 5), (12, 5)]]
    mask, truth = building_masks(polygons, (7, 16), boundary_width=2)
    np.testing.assert_array_equal(mask, _grid("""
        1111222211222220
        1111222211222220
        1111222211222220
        2222222222222220
        2222222222222220
        0000000000000000
        0000000000000000"""))  # top/left tile edges: the buildings continue outside
    labels = building_instances(mask, boundary_width=2)
    np.testing.assert_array_equal(labels, truth)
    assert labels.dtype == np.int32


def test_a_thin_diagonal_building_is_one_instance():
    # a 45-degree strip whose interior is a chain of corner-touching pixels
    strip = [(2, 0), (6, 0), (20, 14), (20, 18), (16, 18), (2, 4)]
    mask, truth = building_masks([strip], (20, 22), boundary_width=1)
    assert (mask == 1).any()
    labels = building_instances(mask, boundary_width=1)
    assert labels.max() == 1 and _same_partition(labels, truth)


def test_probabilities_give_the_instances_of_their_argmax():
    rng = np.random.default_rng(3)
    mask, _ = building_masks(row_houses(rng, 64), (64, 64))
    probs = rng.dirichlet(np.ones(3), size=mask.shape).astype(np.float32)
    probs[np.arange(64)[:, None], np.arange(64)[None, :], mask] += 1.0
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_array_equal(building_instances(probs), building_instances(mask))


def test_valid_mask_and_ignore_value_count_as_background():
    mask = np.zeros((6, 10), np.uint8)
    mask[1:5, 1:9] = 2
    mask[2:4, 2:8] = 1
    valid = np.ones_like(mask, dtype=bool)
    valid[:, 5:] = False
    labels = building_instances(mask, boundary_width=1, valid=valid)
    assert labels[:, 5:].max() == 0 and (labels == 1).sum() == (mask[:, :5] > 0).sum()
    assert building_instances(np.full((4, 4), 255, np.uint8)).max() == 0


def test_min_area_and_zero_width_components():
    mask = _grid("""
        1100000
        1100011
        0000011
        0000000""")
    assert building_instances(mask, boundary_width=0, min_area=4).max() == 2
    assert building_instances(mask, boundary_width=0, min_area=5).max() == 0


def test_dense_row_houses_against_themselves_reach_f1_099():
    rng = np.random.default_rng(0)
    masks, instances = [], []
    for _ in range(30):
        mask, inst = building_masks(row_houses(rng), (128, 128))
        masks.append(mask)
        instances.append(inst)
    m = segmentation_metrics(masks, masks, true_instances=instances)
    assert m["building_tp"] > 500
    assert m["building_f1"] >= 0.99
    # the plain connected components (boundary width 0) merge whole streets
    assert segmentation_metrics(masks, masks, true_instances=instances,
                                boundary_width=0)["building_f1"] < 0.2


def test_embedded_area_against_itself_reaches_f1_099():
    tiles = load_tiles(default_data_dir())
    m = segmentation_metrics(tiles.masks, tiles.masks, true_instances=tiles.instances)
    assert m["building_tp"] > 450
    assert m["building_f1"] >= 0.99


@pytest.mark.parametrize("kwargs, error, match", [
    ({"mask_or_probs": np.zeros((2, 3, 4))}, ValueError, "3 class"),
    ({"mask_or_probs": np.zeros((2, 3, 3), np.int64)}, TypeError, "float"),
    ({"mask_or_probs": np.zeros(5, np.uint8)}, ValueError, "mask_or_probs"),
    ({"mask_or_probs": np.zeros((2, 3))}, TypeError, "integer"),
    ({"mask_or_probs": np.zeros((2, 3), np.uint8), "boundary_width": -1}, ValueError,
     "boundary_width"),
    ({"mask_or_probs": np.zeros((2, 3), np.uint8), "min_area": 1.5}, ValueError, "min_area"),
    ({"mask_or_probs": np.zeros((2, 3), np.uint8), "valid": np.ones((3, 2), bool)}, ValueError,
     "valid"),
])
def test_bad_input_names_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        building_instances(**kwargs)
