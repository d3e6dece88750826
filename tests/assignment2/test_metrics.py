"""Pixel metrics and the SpaceNet building F1 on hand-made masks with exact values."""

import json

import numpy as np
import pytest

from assignment2.metrics import (
    building_instances,
    confusion_matrix,
    match_instances,
    segmentation_metrics,
)

# 2 x 4 tile; the last pixel of the second row is unlabelled (255).
TRUE = np.array([[0, 0, 1, 1], [0, 2, 1, 255]])
PRED = np.array([[0, 1, 1, 1], [0, 2, 2, 0]])


def _box(shape, boxes, value=1):
    """A mask with ``value`` in each ``(row0, row1, col0, col1)`` box (end exclusive)."""
    mask = np.zeros(shape, np.uint8)
    for r0, r1, c0, c1 in boxes:
        mask[r0:r1, c0:c1] = value
    return mask


def test_confusion_matrix_counts_labelled_pixels():
    expected = [[2, 1, 0], [0, 2, 1], [0, 0, 1]]
    result = confusion_matrix(TRUE, PRED)
    np.testing.assert_array_equal(result, expected)
    assert result.dtype == np.int64


def test_pixel_metrics_exact():
    m = segmentation_metrics([TRUE], [PRED], min_area=1)
    assert m["pixel_accuracy"] == pytest.approx(5 / 7)
    assert m["iou_background"] == pytest.approx(2 / 3)  # TP 2, FN 1, FP 0
    assert m["iou_building"] == pytest.approx(2 / 4)  # TP 2, FN 1, FP 1
    assert m["iou_boundary"] == pytest.approx(1 / 2)  # TP 1, FP 1
    assert m["mean_iou"] == pytest.approx((2 / 3 + 1 / 2 + 1 / 2) / 3)
    # one true building of 4 px and one predicted of 5 px, IoU 4/5
    assert (m["building_tp"], m["building_fp"], m["building_fn"]) == (1, 0, 0)
    assert m["building_f1"] == 1.0


def test_metrics_accumulate_pixels_over_tiles_of_different_sizes():
    second_true, second_pred = np.array([[1, 1, 1]]), np.array([[1, 0, 0]])
    m = segmentation_metrics([TRUE, second_true], [PRED, second_pred], min_area=1)
    assert m["pixel_accuracy"] == pytest.approx(6 / 10)
    assert m["iou_building"] == pytest.approx(3 / 7)  # TP 3, FN 3, FP 1
    assert m["iou_background"] == pytest.approx(2 / 5)  # TP 2, FN 1, FP 2
    # tile 2: prediction 1 px vs truth 3 px, IoU 1/3 -> one FP and one FN
    assert (m["building_tp"], m["building_fp"], m["building_fn"]) == (1, 1, 1)
    assert m["building_f1"] == pytest.approx(2 / 4)
    assert m["building_precision"] == pytest.approx(0.5)
    assert m["building_recall"] == pytest.approx(0.5)


def test_values_are_json_floats_and_accept_stacks():
    m = segmentation_metrics(np.stack([TRUE, TRUE]), np.stack([PRED, PRED])[..., None])
    assert json.loads(json.dumps(m)) == m
    for key in ("pixel_accuracy", "iou_background", "iou_building", "iou_boundary", "mean_iou",
                "building_f1"):
        assert type(m[key]) is float
    assert m["pixel_accuracy"] == pytest.approx(5 / 7)


def test_building_instances_are_4_connected_and_small_ones_dropped():
    mask = np.array([[1, 0, 0, 2],
                     [0, 1, 0, 2],
                     [0, 1, 255, 0],
                     [2, 0, 0, 1]])
    # (0,0) touches (1,1) only at a corner: separate instances; 255 is not a building
    expected = [[1, 0, 0, 2],
                [0, 3, 0, 2],
                [0, 3, 0, 0],
                [4, 0, 0, 5]]
    labels = building_instances(mask, min_area=1)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, expected)
    expected_big = [[0, 0, 0, 1], [0, 2, 0, 1], [0, 2, 0, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(building_instances(mask, min_area=2), expected_big)


def test_two_predicted_buildings_that_merge_match_nothing():
    # two 4x5 = 20 px buildings one column apart; the prediction bridges the gap (44 px)
    truth = _box((10, 16), [(0, 4, 0, 5), (0, 4, 6, 11)])
    pred = _box((10, 16), [(0, 4, 0, 11)])
    m = segmentation_metrics([truth], [pred])  # IoU 20/44 with each
    assert (m["building_tp"], m["building_fp"], m["building_fn"]) == (0, 1, 2)
    assert m["building_f1"] == 0.0
    assert m["iou_building"] == pytest.approx(40 / 44)


def test_merge_with_a_dominant_building_still_matches_it():
    # A: 8x10 = 80 px, B: 4x5 = 20 px; the merged prediction has 80 + 4 + 20 = 104 px
    truth = _box((10, 16), [(0, 8, 0, 10), (0, 4, 11, 16)])
    pred = _box((10, 16), [(0, 8, 0, 10), (0, 4, 10, 16)])
    m = segmentation_metrics([truth], [pred])  # IoU with A 80/104 >= 0.5, with B 20/104
    assert (m["building_tp"], m["building_fp"], m["building_fn"]) == (1, 0, 1)
    assert m["building_f1"] == pytest.approx(2 / 3)


def test_instances_under_min_area_are_ignored_on_both_sides():
    # truth: A 4x5 = 20 px and B (6x3 - 1 + 2 = 19 px); prediction: A and a 19 px blob C
    truth = _box((12, 12), [(0, 4, 0, 5), (6, 12, 0, 3), (5, 6, 0, 2)])
    truth[11, 2] = 0
    pred = _box((12, 12), [(0, 4, 0, 5)])
    pred[8:12, 7:12] = 2
    pred[11, 11] = 0  # C: 4x5 - 1 = 19 px, disjoint from B
    assert (truth[5:, :3] > 0).sum() == 19 and (pred[:, 6:] > 0).sum() == 19
    m = segmentation_metrics([truth], [pred])
    assert (m["building_tp"], m["building_fp"], m["building_fn"]) == (1, 0, 0)
    assert m["building_f1"] == 1.0
    m = segmentation_metrics([truth], [pred], min_area=1)
    assert (m["building_tp"], m["building_fp"], m["building_fn"]) == (1, 1, 1)
    assert m["building_f1"] == pytest.approx(0.5)


def test_one_prediction_cannot_match_two_buildings():
    # two touching 20 px polygons (ids 7 and 9) and one 40 px prediction: IoU 0.5 with each
    truth = _box((6, 12), [(0, 4, 0, 10)])
    instances = np.zeros((6, 12), np.int32)
    instances[0:4, 0:5], instances[0:4, 5:10] = 7, 9
    pred = truth.copy()
    m = segmentation_metrics([truth], [pred], true_instances=[instances])
    assert (m["building_tp"], m["building_fp"], m["building_fn"]) == (1, 0, 1)
    assert m["building_f1"] == pytest.approx(2 / 3)
    strict = segmentation_metrics([truth], [pred], true_instances=[instances], iou_threshold=0.51)
    assert strict["building_f1"] == 0.0
    # without polygon ids the touching pair is one component and matches the prediction
    assert segmentation_metrics([truth], [pred])["building_f1"] == 1.0


def test_match_instances_is_greedy_by_iou_and_one_to_one():
    truth = np.array([[1, 1, 2, 2, 0, 3]])
    pred = np.array([[1, 1, 1, 1, 0, 2]])  # P1 vs T1 and T2: IoU 0.5 each; P2 = T3
    assert match_instances(truth, pred) == (2, 0, 1)
    # at a lower threshold P1 could take T2 (IoU 2/7) but takes T1 (IoU 3/5) first, leaving T2
    # to P2 (IoU 2/4): greedy in order of decreasing IoU
    truth = np.array([[1, 1, 1, 2, 2, 2, 2]])
    pred = np.array([[1, 1, 1, 1, 1, 2, 2]])
    assert match_instances(truth, pred, iou_threshold=0.25) == (2, 0, 0)
    assert match_instances(truth, np.zeros_like(pred)) == (0, 0, 2)
    assert match_instances(np.zeros_like(truth), pred) == (0, 2, 0)
    assert match_instances(truth, pred, iou_threshold=0.55) == (1, 1, 1)  # only P1-T1 is left


def test_empty_cases():
    empty = np.zeros((5, 5), np.uint8)
    m = segmentation_metrics([empty], [empty])
    assert m["building_f1"] == 1.0 and m["iou_building"] == 1.0 and m["iou_boundary"] == 1.0
    assert m["mean_iou"] == 1.0 and m["pixel_accuracy"] == 1.0
    house = _box((5, 5), [(0, 5, 0, 5)])
    missed = segmentation_metrics([house], [empty])
    assert missed["building_f1"] == 0.0 and missed["iou_building"] == 0.0
    assert missed["building_recall"] == 0.0 and missed["building_precision"] == 1.0
    unlabelled = np.full((5, 5), 255, np.uint8)
    m = segmentation_metrics([unlabelled], [house])  # predictions on unlabelled pixels ignored
    assert m["building_f1"] == 1.0 and m["pixel_accuracy"] == 1.0


@pytest.mark.parametrize("call, match", [
    (lambda: confusion_matrix(TRUE, PRED[:, :3]), "same shape"),
    (lambda: confusion_matrix(TRUE, PRED + 1), "pred_mask"),
    (lambda: confusion_matrix(TRUE * 2, PRED), "true_mask"),
    (lambda: segmentation_metrics([TRUE], [PRED, PRED]), "same length"),
    (lambda: segmentation_metrics([TRUE], [PRED.T]), r"pred_masks\[0\]"),
    (lambda: segmentation_metrics([TRUE], [PRED], min_area=-1), "min_area"),
    (lambda: segmentation_metrics([TRUE], [PRED], iou_threshold=0), "iou_threshold"),
    (lambda: segmentation_metrics([TRUE], [PRED], true_instances=[TRUE[:1]]), "true_instances"),
    (lambda: segmentation_metrics([], []), "true_masks"),
    (lambda: segmentation_metrics([np.ones(3)], [np.ones(3)]), "true_masks"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_float_masks_are_rejected():
    with pytest.raises(TypeError, match="pred_masks"):
        segmentation_metrics([TRUE], [PRED.astype(float)])
