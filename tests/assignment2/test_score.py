"""``python -m assignment2.score``: hand-made CSVs, per-AOI F1 and its mean, the stub area, bad input."""

import csv
import json

import numpy as np
import pytest

from assignment2.instances import building_instances
from assignment2.polygons import SOLUTION_COLUMNS, instance_polygons, solution_rows
from assignment2.score import main


def _write_csv(path, rows, columns=SOLUTION_COLUMNS):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def _box(x0, y0, x1, y1):
    return f"POLYGON (({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"


def _run(capsys, *args):
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_per_aoi_f1_and_their_mean_hand_computed(tmp_path, capsys):
    truth = _write_csv(tmp_path / "truth.csv", [
        ["AOI_2_Vegas_img1", 1, _box(0, 0, 10, 10), ""],
        ["AOI_2_Vegas_img1", 2, _box(20, 0, 30, 10), ""],
        ["AOI_2_Vegas_img2", -1, "POLYGON EMPTY", ""],
        ["AOI_3_Paris_img1", 1, _box(0, 0, 8, 8), ""],
        ["AOI_3_Paris_img9", 1, _box(0, 0, 8, 8), ""],  # no proposal for this tile: FN
    ])
    proposals = _write_csv(tmp_path / "proposals.csv", [
        ["AOI_2_Vegas_img1", 1, _box(0, 0, 10, 11), 0.9],  # IoU 10/11: TP
        ["AOI_2_Vegas_img1", 2, _box(20, 0, 30, 20), 0.8],  # IoU exactly 0.5: FP, truth FN
        ["AOI_2_Vegas_img2", 1, _box(40, 40, 44, 45), 0.7],  # 20 px: ignored by the area rule
        ["AOI_3_Paris_img1", 1, _box(0, 0, 8, 8), 0.5],  # TP
    ])
    status, out, err = _run(capsys, proposals, truth, "--output", tmp_path / "score.json")
    assert status == 0 and err == ""
    result = json.loads(out)
    vegas, paris = result["per_aoi"]["AOI_2_Vegas"], result["per_aoi"]["AOI_3_Paris"]
    assert (vegas["tp"], vegas["fp"], vegas["fn"], vegas["tiles"]) == (1, 1, 1, 2)
    assert (paris["tp"], paris["fp"], paris["fn"], paris["tiles"]) == (1, 0, 1, 2)
    assert vegas["f1"] == pytest.approx(0.5) and paris["f1"] == pytest.approx(2 / 3)
    assert result["score"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert result["pooled"]["f1"] == pytest.approx(4 / 7)  # TP 2, FP 1, FN 2
    assert json.loads((tmp_path / "score.json").read_text()) == result


def test_instances_of_the_stub_area_scored_against_its_geojson(spacenet_area, spacenet_tiles,
                                                               tmp_path, capsys):
    rows = []
    for tile_id, mask in zip(spacenet_tiles.ids, spacenet_tiles.masks):
        buildings = instance_polygons(building_instances(mask, min_area=21))
        rows += solution_rows(tile_id, buildings)
    solution = _write_csv(tmp_path / "solution.csv", rows)
    status, out, _ = _run(capsys, solution, solution)  # read back as its own truth
    assert status == 0
    result = json.loads(out)
    assert result["score"] == 1.0 and result["pooled"]["tp"] == len(
        [r for r in rows if r[1] != -1])
    status, out, _ = _run(capsys, solution, spacenet_area)  # against the GeoJSON polygons
    assert status == 0
    result = json.loads(out)
    assert result["per_aoi"]["AOI_2_Vegas"]["tiles"] == len(spacenet_tiles.ids)
    assert result["score"] >= 0.9  # pixel staircases vs smooth polygons; 20 px-ish buildings


@pytest.mark.parametrize("content, message", [
    ("ImageId,PolygonWKT_Pix\nAOI_2_Vegas_img1,POLYGON EMPTY\n", "missing column"),
    ("ImageId,BuildingId,PolygonWKT_Pix,Confidence\nAOI_2_Vegas_img1,1,\"POLYGON ((0 0, 1\",1\n",
     "line 2: malformed WKT"),
    ("ImageId,BuildingId,PolygonWKT_Pix,Confidence\nAOI_2_Vegas_img1,1,POINT (1 2),1\n",
     "must be a POLYGON"),
    ("ImageId,BuildingId,PolygonWKT_Pix,Confidence\nAOI_2_Vegas_img1,1,"
     "\"POLYGON ((0 0, 5 0, 5 5, 0 0))\",high\n", "Confidence must be a number"),
    ("ImageId,BuildingId,PolygonWKT_Pix,Confidence\nAOI_9_Nowhere_img1,-1,POLYGON EMPTY,1\n",
     "match no truth tile"),
])
def test_bad_proposals_exit_2_with_one_line(tmp_path, capsys, content, message):
    truth = _write_csv(tmp_path / "truth.csv", [["AOI_2_Vegas_img1", 1, _box(0, 0, 9, 9), ""]])
    proposals = tmp_path / "proposals.csv"
    proposals.write_text(content)
    status, out, err = _run(capsys, proposals, truth, "--output", tmp_path / "score.json")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err and str(proposals) in err
    assert not (tmp_path / "score.json").exists()


def test_bad_truth_exit_2_with_one_line(tmp_path, capsys):
    from data_stubs.spacenet import generate_area

    proposals = _write_csv(tmp_path / "p.csv", [])
    (tmp_path / "empty").mkdir()
    images_only = generate_area(tmp_path / "test", n_tiles=1, tile_size=32, labels=False)
    no_images = tmp_path / "no_images" / "AOI_2_Vegas_Train"
    (no_images / "geojson" / "buildings").mkdir(parents=True)
    for truth in (tmp_path / "empty", images_only, no_images.parent, tmp_path / "missing"):
        status, out, err = _run(capsys, proposals, truth)
        assert status == 2 and out == "" and err.count("\n") == 1, (truth, err)
        assert err.startswith("python -m assignment2.score: error: ")
    status, _, err = _run(capsys, proposals, tmp_path / "p.csv", "--iou-threshold", "x")
    assert status == 2 and "--iou-threshold" in err
