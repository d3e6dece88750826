"""Polygons of instances, the lon/lat GeoJSON round trip and the SpaceNet polygon matching."""

import json

import numpy as np
import pytest
import shapely

from assignment2.data import read_buildings
from assignment2.geotiff import GeoTransform
from assignment2.instances import building_instances
from assignment2.masks import building_masks
from assignment2.polygons import (
    feature_collection,
    instance_polygons,
    match_polygons,
    polygon_iou,
    to_pixels,
)

VEGAS = GeoTransform(-115.3, 36.2, 2.7e-6, 2.7e-6)  # 0.3 m pixels, as SpaceNet 2


def test_polygons_follow_pixel_edges_and_keep_holes():
    labels = np.zeros((7, 8), np.int32)
    labels[1:3, 1:4] = 1
    labels[3, 2] = 1  # a 1-pixel bump below the middle
    labels[0:6, 4:8] = 2
    labels[2:4, 5:7] = 0  # a 2x2 courtyard
    buildings = instance_polygons(labels)
    assert [b.id for b in buildings] == [1, 2]
    first, second = (b.polygon for b in buildings)
    expected = shapely.Polygon([(1, 1), (4, 1), (4, 3), (3, 3), (3, 4), (2, 4), (2, 3), (1, 3)])
    assert first.equals(expected) and len(first.exterior.coords) == 9  # no collinear vertices
    assert second.area == 20 and len(second.interiors) == 1 and second.interiors[0].length == 8
    assert [b.confidence for b in buildings] == [1.0, 1.0]


def test_confidence_is_the_mean_building_probability():
    labels = np.array([[1, 1, 0, 2]])
    probs = np.array([[[0.2, 0.5, 0.3], [0.4, 0.3, 0.3], [0.9, 0.05, 0.05], [0.0, 0.0, 1.0]]])
    buildings = instance_polygons(labels, probs)
    assert [b.confidence for b in buildings] == pytest.approx([0.7, 1.0])


def test_geojson_round_trip_reproduces_mask_and_instances(tmp_path):
    # touching houses, a courtyard and a rotated shed, rasterised; their instances are traced,
    # moved to lon/lat, written as GeoJSON, read back and rasterised again
    rotated = [(30.3, 20.2), (40.7, 26.1), (36.2, 33.9), (25.8, 28.0)]
    polygons = [[(2, 2), (14, 2), (14, 12), (2, 12)], [(14, 2), (27, 2), (27, 12), (14, 12)],
                [[(3, 20), (21, 20), (21, 38), (3, 38)], [(9, 26), (15, 26), (15, 32), (9, 32)]],
                rotated]
    mask, truth = building_masks(polygons, (40, 44))
    instances = building_instances(mask)
    collection = feature_collection(instance_polygons(instances), VEGAS)
    path = tmp_path / "buildings_AOI_2_Vegas_img1.geojson"
    path.write_text(json.dumps(collection))
    back = []
    for building in read_buildings(path):
        lonlat = shapely.MultiPolygon([shapely.Polygon(rings[0], rings[1:]) for rings in building])
        pixels = to_pixels(lonlat, VEGAS)
        back.append([[np.asarray(p.exterior.coords)] + [np.asarray(r.coords) for r in p.interiors]
                     for p in pixels.geoms])
    mask_back, instances_back = building_masks(back, mask.shape)
    np.testing.assert_array_equal(mask_back, mask)
    np.testing.assert_array_equal(instances_back, instances)
    np.testing.assert_array_equal(instances, truth)  # the instances were the polygons
    ring = collection["features"][0]["geometry"]["coordinates"][0]
    assert shapely.LinearRing(ring).is_ccw  # RFC 7946 exterior ring in lon/lat


def _box(x0, y0, x1, y1):
    return shapely.box(x0, y0, x1, y1)


def test_polygon_iou_hand_computed():
    assert polygon_iou(_box(0, 0, 4, 4), _box(2, 0, 6, 4)) == pytest.approx(8 / 24)
    assert polygon_iou(_box(0, 0, 1, 1), _box(5, 5, 6, 6)) == 0.0
    triangle = shapely.Polygon([(0, 0), (4, 0), (0, 4)])
    assert polygon_iou(triangle, _box(0, 0, 4, 4)) == pytest.approx(8 / 16)


@pytest.mark.parametrize("x1, tp", [(19.9, 1), (20.0, 0), (20.1, 0)])
def test_iou_just_above_at_and_below_one_half(x1, tp):
    # truth 10 x 4 = 40 px; proposal x1 x 4: IoU 40 / (4 x1) = 0.5025, 0.5, 0.4975
    assert match_polygons([_box(0, 0, 10, 4)], [_box(0, 0, x1, 4)]) == (tp, 1 - tp, 1 - tp)


@pytest.mark.parametrize("truth_area, proposal_area, counts", [
    (19, 21, (0, 1, 0)), (20, 21, (1, 0, 0)), (21, 21, (1, 0, 0)),
    (21, 20, (0, 0, 1)), (21, 19, (0, 0, 1)),
])
def test_the_20_pixel_rule(truth_area, proposal_area, counts):
    # truth needs area >= 20, proposals area > 20 (solaris Evaluator.eval_iou_spacenet_csv)
    truth, proposal = _box(0, 0, truth_area, 1), _box(0, 0, proposal_area, 1)
    assert match_polygons([truth], [proposal]) == counts


def test_proposals_are_visited_by_decreasing_confidence():
    # overlapping truths T1 (10x10) and T2 (10x6); A has IoU 0.8 with T1 and 0.75 with T2,
    # B has IoU 0.67 with T1 only. A first takes T1 and leaves B nothing; B first lets A take T2.
    t1, t2 = _box(0, 0, 10, 10), _box(0, 0, 10, 6)
    a, b = _box(0, 0, 10, 8), _box(0, 2, 10, 12)
    assert match_polygons([t1, t2], [a, b], [0.9, 0.1]) == (1, 1, 1)
    assert match_polygons([t1, t2], [a, b], [0.1, 0.9]) == (2, 0, 0)
    assert match_polygons([t1, t2], [a, b]) == (1, 1, 1)  # no confidences: file order


def test_invalid_polygons_as_the_scorer_treats_them():
    bowtie = shapely.Polygon([(0, 0), (20, 20), (20, 0), (0, 4)])  # self-intersecting, area 160
    assert not bowtie.is_valid
    # a proposal is repaired (buffer(0) keeps the large lobe here: IoU with it is 1)
    lobe = bowtie.buffer(0)
    assert lobe.area == pytest.approx(500 / 3)
    assert match_polygons([lobe], [bowtie]) == (1, 0, 0)
    # a truth polygon is not: IoU 0, it stays a false negative
    assert match_polygons([bowtie], [lobe]) == (0, 1, 1)
    # the area rule sees the unrepaired area: a symmetric bowtie has area 0 and is dropped
    symmetric = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    assert match_polygons([symmetric.buffer(0)], [symmetric]) == (0, 0, 1)


def test_rejects_confidences_of_the_wrong_length():
    with pytest.raises(ValueError, match="confidences"):
        match_polygons([_box(0, 0, 5, 5)], [_box(0, 0, 5, 5)], [0.5, 0.5])
    with pytest.raises(ValueError, match="instances"):
        instance_polygons(np.zeros((3, 3)))
