"""``python -m assignment2.predict``: georeferenced outputs, GeoJSON and CSV that agree, bad input."""

import csv
import json

import keras
import numpy as np
import pytest
import shapely
import tifffile

from assignment2.data import list_raw_tiles, read_buildings, read_source_tile
from assignment2.geotiff import read_geotiff
from assignment2.instances import building_instances
from assignment2.masks import building_masks
from assignment2.model import build_unet
from assignment2.polygons import to_pixels
from assignment2.predict import main, predict_tile
from assignment2.radiometry import Radiometry, model_input
from assignment2.score import main as score_main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny U-Net whose final bias favours the interior class, so tiles have buildings."""
    keras.utils.set_random_seed(0)
    model = build_unet(depth=2, base_filters=4, context=False)
    classifier = [layer for layer in model.layers if layer.get_weights()][-1]  # the 1x1 conv
    kernel, _ = classifier.get_weights()
    classifier.set_weights([kernel, np.array([0.0, 0.3, 0.0], np.float32)])
    path = tmp_path_factory.mktemp("model") / "best.keras"
    model.save(path)
    return path


def _run(capsys, *args):
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _geo_tags(path) -> dict:
    """The GeoTIFF tags (pixel scale, tie point, GeoKey directory and parameters) of a file."""
    names = ("ModelPixelScaleTag", "ModelTiepointTag", "ModelTransformationTag",
             "GeoKeyDirectoryTag", "GeoDoubleParamsTag", "GeoAsciiParamsTag")
    with tifffile.TiffFile(path) as tiff:
        tags = {t.name: t.value for t in tiff.pages[0].tags.values() if t.name in names}
    assert {"ModelPixelScaleTag", "ModelTiepointTag", "GeoKeyDirectoryTag"} <= set(tags), path
    return {k: v if isinstance(v, str) else tuple(v) for k, v in tags.items()}


def test_outputs_are_georeferenced_and_consistent(spacenet_area, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    status, stdout, err = _run(capsys, checkpoint, spacenet_area, out, "--tta", "flips")
    assert status == 0 and "predicted 6 tiles" in stdout, err
    model = keras.saving.load_model(checkpoint, compile=False)
    raw_tiles, _ = list_raw_tiles(spacenet_area, labelled=False)
    rows = list(csv.DictReader(open(out / "solution.csv", newline="")))
    assert {r["ImageId"] for r in rows} == {t.id for t in raw_tiles}
    for raw in raw_tiles:
        tile = read_source_tile(raw)
        expected = predict_tile(model, model_input(tile.image, Radiometry(tile.bit_depth)),
                                tta="flips", multiple=4)
        probs, transform = read_geotiff(out / f"{tile.id}_probs.tif")
        assert probs.dtype == np.float16 and transform == tile.transform
        assert tifffile.imread(out / f"{tile.id}_probs.tif").shape == tile.image.shape[:2] + (3,)
        np.testing.assert_allclose(probs, expected, atol=1e-3)
        mask, mask_transform = read_geotiff(out / f"{tile.id}_mask.tif")
        assert mask.dtype == np.uint8 and mask_transform == tile.transform
        for kind in ("probs", "mask"):  # the source's GeoTIFF tags, byte for byte
            assert _geo_tags(out / f"{tile.id}_{kind}.tif") == _geo_tags(raw.image)
        np.testing.assert_array_equal(mask, np.where(tile.valid, expected.argmax(-1), 0))
        # the GeoJSON buildings, rasterised back, are the instances of the mask
        buildings = read_buildings(out / f"{tile.id}.geojson")
        polygons = [[[np.asarray(p.exterior.coords)] + [np.asarray(r.coords) for r in p.interiors]
                     for p in getattr(g, "geoms", [g])]
                    for g in (to_pixels(shapely.MultiPolygon([shapely.Polygon(r[0], r[1:])
                                                              for r in b]), tile.transform)
                              for b in buildings)]
        _, back = building_masks(polygons, mask.shape)
        np.testing.assert_array_equal(back, building_instances(mask, min_area=21))
        tile_rows = [r for r in rows if r["ImageId"] == tile.id]
        assert len(tile_rows) == max(len(buildings), 1)
    assert sum(1 for r in rows if r["PolygonWKT_Pix"] != "POLYGON EMPTY") > 0
    config = json.loads((out / "predict_config.json").read_text())
    assert config["tta"] == "flips" and config["tiles"] == 6 and config["network_stride"] == 4
    # the scorer reads the CSV back: against itself it is perfect
    assert score_main([str(out / "solution.csv"), str(out / "solution.csv")]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == 1.0


def test_images_only_test_area(checkpoint, tmp_path, capsys):
    from data_stubs.spacenet import generate_area

    area = generate_area(tmp_path / "raw", n_tiles=2, tile_size=48, labels=False)
    assert area.name.endswith("_Test_public")
    status, stdout, err = _run(capsys, checkpoint, area, tmp_path / "out", "--tta", "none")
    assert status == 0, err
    assert len(list((tmp_path / "out").glob("*.geojson"))) == 2


def test_bad_input_exit_2_one_line_nothing_written(spacenet_area, checkpoint, tmp_path, capsys):
    text = tmp_path / "model.keras"
    text.write_text("not a model")
    csv_file = tmp_path / "solution.csv"
    csv_file.write_text("ImageId\n")
    (tmp_path / "empty").mkdir()
    no_images = tmp_path / "no_images" / "AOI_2_Vegas_Train" / "geojson"
    no_images.mkdir(parents=True)
    cases = [(text, spacenet_area, "not a .keras model"), (csv_file, spacenet_area, ".keras"),
             (tmp_path / "none.keras", spacenet_area, "not found"),
             (checkpoint, tmp_path / "empty", "empty"),
             (checkpoint, no_images.parent.parent, "no SpaceNet area")]
    for model, src, message in cases:
        out = tmp_path / "out"
        status, stdout, err = _run(capsys, model, src, out)
        assert status == 2 and stdout == "" and err.count("\n") == 1, err
        assert message in err, err
        assert not out.exists()
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("x")
    status, _, err = _run(capsys, checkpoint, spacenet_area, occupied)
    assert status == 2 and "--overwrite" in err and sorted(p.name for p in occupied.iterdir()) \
        == ["keep.txt"]
    status, _, err = _run(capsys, checkpoint, spacenet_area, tmp_path / "o", "--bands", "mul")
    assert status == 2 and "MUL-PanSharpen" in err
