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


def _reference_counts(truth_boxes, proposal_boxes):
    """An independent SpaceNet matcher for axis-aligned boxes ``(x0, y0, x1, y1, conf)``: areas and
    IoU by rectangle arithmetic (no shapely), proposals by decreasing confidence, each taking the
    unused truth box of highest IoU, TP when it is > 0.5; truth < 20 px and proposals <= 20 px out."""
    def area(b):
        return (b[2] - b[0]) * (b[3] - b[1])

    def iou(a, b):
        w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        return w * h / (area(a) + area(b) - w * h)

    unused = [t for t in truth_boxes if area(t) >= 20]
    tp = fp = 0
    for p in sorted((p for p in proposal_boxes if area(p) > 20), key=lambda b: -b[4]):
        scores = [iou(p, t) for t in unused]
        best = int(np.argmax(scores)) if scores else -1
        if best >= 0 and scores[best] > 0.5:
            tp += 1
            unused.pop(best)
        else:
            fp += 1
    return tp, fp, len(unused)


def test_random_boxes_agree_with_an_independent_brute_force_matcher(tmp_path, capsys):
    """Per-AOI counts on random tiles (touching and overlapping boxes, areas near 20 px, IoU near
    0.5) equal those of a matcher written differently."""
    rng = np.random.default_rng(0)
    truth_rows, proposal_rows, expected = [], [], {}
    for aoi in ("AOI_2_Vegas", "AOI_4_Shanghai"):
        counts = np.zeros(3, int)
        for k in range(12):
            image_id = f"{aoi}_img{k}"
            # truth: a row of boxes sharing walls (widths 3..9, heights 4..9) -> areas 12..81 px
            x, truth = 0, []
            for _ in range(rng.integers(0, 6)):
                w, h = int(rng.integers(3, 10)), int(rng.integers(4, 10))
                truth.append((x, 0, x + w, h, 0.0))
                x += w
            # proposals: truth boxes shifted / resized by 0..3 px, plus random boxes
            proposals = [(t[0] + int(rng.integers(-2, 3)), t[1] + int(rng.integers(-1, 2)),
                          t[2] + int(rng.integers(-2, 4)), t[3] + int(rng.integers(-2, 3)),
                          float(rng.random())) for t in truth if rng.random() < 0.8]
            for _ in range(rng.integers(0, 3)):
                x0, y0 = int(rng.integers(0, 40)), int(rng.integers(0, 8))
                proposals.append((x0, y0, x0 + int(rng.integers(2, 12)),
                                  y0 + int(rng.integers(2, 10)), float(rng.random())))
            proposals = [p for p in proposals if p[2] > p[0] and p[3] > p[1]]
            counts += _reference_counts(truth, proposals)
            truth_rows += [[image_id, i + 1, _box(*t[:4]), ""] for i, t in enumerate(truth)] \
                or [[image_id, -1, "POLYGON EMPTY", ""]]
            proposal_rows += [[image_id, i + 1, _box(*p[:4]), p[4]]
                              for i, p in enumerate(proposals)]
        expected[aoi] = tuple(int(c) for c in counts)
    truth_csv = _write_csv(tmp_path / "truth.csv", truth_rows)
    proposals_csv = _write_csv(tmp_path / "proposals.csv", proposal_rows)
    status, out, err = _run(capsys, proposals_csv, truth_csv)
    assert status == 0, err
    result = json.loads(out)
    got = {aoi: (m["tp"], m["fp"], m["fn"]) for aoi, m in result["per_aoi"].items()}
    assert got == expected
    assert all(sum(c) > 10 and c[0] > 0 and c[1] > 0 and c[2] > 0 for c in expected.values())
    f1 = [2 * c[0] / (2 * c[0] + c[1] + c[2]) for c in expected.values()]
    assert result["score"] == pytest.approx(np.mean(f1))


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
