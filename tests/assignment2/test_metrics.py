"""Pixel metrics, the SpaceNet building F1 (raster and polygon) and its per-AOI accumulation,
on hand-made masks with exact values."""

import json

import numpy as np
import pytest

from assignment2.metrics import (
    MetricAccumulator,
    aoi_of,
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
    assert m["iou_footprint"] == pytest.approx(4 / 5)  # interior + boundary: 4 true, 5 predicted
    # one true building of 4 px and one predicted of 5 px, IoU 4/5
    assert (m["building_tp"], m["building_fp"], m["building_fn"]) == (1, 0, 0)
    assert m["building_f1"] == 1.0


def test_metrics_accumulate_pixels_over_tiles_of_different_sizes():
    second_true, second_pred = np.array([[1, 1, 1]]), np.array([[1, 0, 0]])
    m = segmentation_metrics([TRUE, second_true], [PRED, second_pred], min_area=0)
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


@pytest.mark.parametrize("truth_area, pred_area, counts", [
    (19, 21, (0, 1, 0)),  # truth under 20 px is not scored; a 21 px proposal is
    (20, 21, (1, 0, 0)),  # truth of exactly 20 px is scored (area >= 20)
    (20, 20, (0, 0, 1)),  # a proposal of exactly 20 px is not (area > 20)
    (21, 19, (0, 0, 1)),
])
def test_the_20_pixel_rule_is_asymmetric_like_the_scorer(truth_area, pred_area, counts):
    # a 1-pixel-high strip of interior, so area = number of pixels = IoU's ingredients
    truth, pred = np.zeros((3, 30), np.uint8), np.zeros((3, 30), np.uint8)
    truth[1, :truth_area], pred[1, :pred_area] = 1, 1
    m = segmentation_metrics([truth], [pred], boundary_width=0)
    assert (m["building_tp"], m["building_fp"], m["building_fn"]) == counts


def test_iou_must_exceed_one_half():
    # truth 20 px; proposals of 41 (IoU 20/41 < 0.5), 40 (IoU = 0.5) and 39 px (20/39 > 0.5)
    for pred_area, tp in ((41, 0), (40, 0), (39, 1)):
        truth, pred = np.zeros((3, 45), np.uint8), np.zeros((3, 45), np.uint8)
        truth[1, :20], pred[1, :pred_area] = 1, 1
        m = segmentation_metrics([truth], [pred], boundary_width=0, polygons=True)
        assert (m["building_tp"], m["polygon_tp"]) == (tp, tp), pred_area


def test_one_prediction_cannot_match_two_buildings():
    # two touching 20 px polygons (ids 7 and 9) and one 40 px prediction: IoU exactly 0.5 with
    # each, which is not above 0.5
    truth = _box((6, 12), [(0, 4, 0, 10)])
    instances = np.zeros((6, 12), np.int32)
    instances[0:4, 0:5], instances[0:4, 5:10] = 7, 9
    pred = truth.copy()
    m = segmentation_metrics([truth], [pred], true_instances=[instances])
    assert (m["building_tp"], m["building_fp"], m["building_fn"]) == (0, 1, 2)
    # with a lower threshold the prediction takes one of them, never both
    low = segmentation_metrics([truth], [pred], true_instances=[instances], iou_threshold=0.4)
    assert (low["building_tp"], low["building_fp"], low["building_fn"]) == (1, 0, 1)


def test_touching_row_houses_predicted_perfectly_score_one():
    # two row houses sharing a wall, rasterised with their 2 px boundaries: the prediction equals
    # the truth; connected components would merge them (F1 2/3 before the instances grew seeds)
    from assignment2.masks import building_masks

    mask, instances = building_masks([[(2, 2), (14, 2), (14, 12), (2, 12)],
                                      [(14, 2), (26, 2), (26, 12), (14, 12)]], (16, 30))
    m = segmentation_metrics([mask], [mask], true_instances=[instances], polygons=True)
    assert (m["building_tp"], m["building_fp"], m["building_fn"]) == (2, 0, 0)
    assert (m["polygon_tp"], m["polygon_fp"], m["polygon_fn"]) == (2, 0, 0)
    one_hot = np.eye(3, dtype=np.float32)[mask]  # probabilities give the same instances
    assert segmentation_metrics([mask], [one_hot.argmax(-1)])["building_f1"] == 1.0


def test_match_instances_is_greedy_by_iou_and_one_to_one():
    truth = np.array([[1, 1, 2, 2, 0, 3]])
    pred = np.array([[1, 1, 1, 1, 0, 2]])  # P1 vs T1 and T2: IoU 0.5 each (no match); P2 = T3
    assert match_instances(truth, pred) == (1, 1, 2)
    # at a lower threshold P1 could take T2 (IoU 2/7) but takes T1 (IoU 3/5) first, leaving T2
    # to P2 (IoU 2/4): greedy in order of decreasing IoU
    truth = np.array([[1, 1, 1, 2, 2, 2, 2]])
    pred = np.array([[1, 1, 1, 1, 1, 2, 2]])
    assert match_instances(truth, pred, iou_threshold=0.25) == (2, 0, 0)
    assert match_instances(truth, np.zeros_like(pred)) == (0, 0, 2)
    assert match_instances(np.zeros_like(truth), pred) == (0, 2, 0)
    assert match_instances(truth, pred, iou_threshold=0.55) == (1, 1, 1)  # only P1-T1 is left


def test_accumulator_sums_per_aoi_and_averages_over_aois():
    # AOI_2_Vegas: two tiles, one hit and one miss; AOI_3_Paris: one tile, one hit + one false
    house, empty = _box((8, 8), [(1, 6, 1, 7)]), np.zeros((8, 8), np.uint8)  # 30 px
    acc = MetricAccumulator(boundary_width=0, polygons=True)
    acc.update(house, house, tile_id="AOI_2_Vegas_img1")
    acc.update(house, empty, tile_id="AOI_2_Vegas_img7")
    paris_pred = _box((8, 16), [(1, 6, 1, 7), (1, 6, 9, 15)])
    acc.update(np.pad(house, ((0, 0), (0, 8))), paris_pred, tile_id="AOI_3_Paris_img2")
    s = acc.summarise()
    vegas, paris = s["per_aoi"]["AOI_2_Vegas"], s["per_aoi"]["AOI_3_Paris"]
    assert (vegas["polygon_tp"], vegas["polygon_fp"], vegas["polygon_fn"]) == (1, 0, 1)
    assert (paris["polygon_tp"], paris["polygon_fp"], paris["polygon_fn"]) == (1, 1, 0)
    assert vegas["polygon_f1"] == pytest.approx(2 / 3) and paris["polygon_f1"] == pytest.approx(2 / 3)
    assert vegas["tiles"] == 2 and s["tiles"] == 3
    assert s["aoi_mean"]["polygon_f1"] == pytest.approx(2 / 3)
    assert s["polygon_f1"] == pytest.approx(4 / 6)  # pooled: TP 2, FP 1, FN 1
    assert s["aoi_mean"]["iou_building"] == pytest.approx((30 / 60 + 30 / 60) / 2)
    assert json.loads(json.dumps(s)) == s
    assert aoi_of("AOI_4_Shanghai_img1234") == "AOI_4_Shanghai"


def test_no_data_pixels_are_not_scored():
    house = _box((8, 16), [(1, 6, 1, 7)])  # 30 px
    pred = house.copy()
    pred[:, 7:] = 1  # a wrong prediction of 72 px in the no-data columns 7.., touching the house
    valid = np.ones((8, 16), bool)
    valid[:, 7:] = False
    m = segmentation_metrics([house], [pred], valid=[valid], boundary_width=0)
    assert m["pixel_accuracy"] == 1.0 and m["building_f1"] == 1.0
    assert segmentation_metrics([house], [pred], boundary_width=0)["building_f1"] == 0.0


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
    (lambda: segmentation_metrics([TRUE], [PRED], iou_threshold=1), "iou_threshold"),
    (lambda: segmentation_metrics([TRUE], [PRED], valid=[TRUE > 0][:1] * 2), "valid"),
    (lambda: segmentation_metrics([TRUE], [PRED], tile_ids=["AOI_2_Vegas_img1"] * 2), "tile_ids"),
    (lambda: MetricAccumulator().summarise(), "no tile"),
    (lambda: aoi_of("vegas"), "tile_id"),
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
    with pytest.raises(ValueError, match="pred"):  # probabilities need 3 classes
        MetricAccumulator().update(TRUE, np.zeros(TRUE.shape + (2,), np.float32))
