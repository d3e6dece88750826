"""``python -m assignment2.prepare SRC OUT``: output layout and content, usage errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tifffile

from assignment2.data import (
    DataError,
    list_raw_tiles,
    load_tiles,
    open_prepared,
    read_source_tile,
    read_tile,
)
from assignment2.geotiff import GeoTransform, read_geotiff, write_geotiff
from assignment2.masks import DEFAULT_BOUNDARY_WIDTH
from assignment2.prepare import PrepareConfig, main, prepare, prepared_data
from data_stubs.spacenet import generate_area, generate_spacenet, render_tile


def _stderr_line(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_prepare_writes_the_layout_masks_and_georeference(spacenet_area, spacenet_tiles,
                                                          tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(spacenet_area), str(out)]) == 0
    assert capsys.readouterr().out.startswith("prepared 6 tiles (AOI_2_Vegas: 11-bit; 0 skipped)")
    data = open_prepared(out)
    assert [t.id for t in data.tiles] == spacenet_tiles.ids
    assert sorted(p.name for p in (out / "tiles").iterdir()) == sorted(
        [f"{i}.tile" for i in spacenet_tiles.ids] + [f"{i}.json" for i in spacenet_tiles.ids])
    for k, tile in enumerate(data.tiles):
        arrays = read_tile(tile)
        assert (arrays.image.dtype, arrays.mask.dtype, arrays.instances.dtype) == \
            (np.uint16, np.uint8, np.int32)
        np.testing.assert_array_equal(arrays.image, spacenet_tiles.images[k])
        np.testing.assert_array_equal(arrays.mask, spacenet_tiles.masks[k])
        np.testing.assert_array_equal(arrays.instances, spacenet_tiles.instances[k])
        assert tile.transform == spacenet_tiles.transforms[k] and tile.epsg == 4326
        assert (tile.aoi, tile.bit_depth, tile.bands) == ("AOI_2_Vegas", 11, 3)
    config = json.loads((out / "prepare_config.json").read_text())
    assert config == {"src": str(spacenet_area), "out": str(out),
                      "boundary_width": DEFAULT_BOUNDARY_WIDTH, "bands": "rgb",
                      "bit_depth": "auto", "skip_bad_tiles": False}


def test_percentiles_are_those_of_the_valid_pixels_of_each_aoi(tmp_path):
    root = generate_spacenet(tmp_path / "raw", cities=("Vegas", "Paris"), n_tiles=4,
                             tile_size=48, test_public=False)
    data = prepare(PrepareConfig(root, tmp_path / "out"), log=lambda line: None)
    assert sorted(data.radiometry) == ["AOI_2_Vegas", "AOI_3_Paris"]
    for aoi, radiometry in data.radiometry.items():
        pixels = np.concatenate([t.image[t.valid] for t in load_aoi(root, aoi)])
        assert not (pixels == 0).all(axis=1).any()  # no-data pixels left out
        expected_low = np.percentile(pixels, 2, axis=0, method="inverted_cdf")
        expected_high = np.percentile(pixels, 98, axis=0, method="inverted_cdf")
        np.testing.assert_array_equal(radiometry.low, expected_low)
        np.testing.assert_array_equal(radiometry.high, expected_high)
    assert data.radiometry["AOI_3_Paris"].high[0] < data.radiometry["AOI_2_Vegas"].high[0]


def load_aoi(root, aoi):
    """Every raw tile of one AOI, read by the reference reader (tests only: all in memory)."""
    tiles, _ = list_raw_tiles(root)
    return [read_source_tile(t) for t in tiles if t.aoi == aoi]


def test_several_aois_images_only_test_area_skipped_with_a_note(tmp_path):
    root = generate_spacenet(tmp_path / "raw", cities=("Vegas", "Paris"), n_tiles=3,
                             tile_size=40)
    lines = []
    data = prepare(PrepareConfig(root, tmp_path / "out"), log=lines.append)
    assert lines == ["note: AOI_2_Vegas_Test_public has no geojson/buildings/ (images only): "
                     "not used for training"]
    assert {t.aoi for t in data.tiles} == {"AOI_2_Vegas", "AOI_3_Paris"}
    assert len(data.tiles) == 6 and data.notes == lines


def test_8_bit_imagery_is_detected_and_scaled_by_255(tmp_path):
    area = generate_area(tmp_path / "raw", n_tiles=2, tile_size=40, bit_depth=8)
    data = prepare(PrepareConfig(area, tmp_path / "out"))
    assert {t.bit_depth for t in data.tiles} == {8}
    scale, offset = data.radiometry["AOI_2_Vegas"].scale_offset("fixed")
    assert scale == np.float32(1 / 255) and offset == 0
    image = read_tile(data.tiles[0]).image
    assert image.max() > 150  # an 8-bit tile uses its range: scaled by 2047 it would stay dark
    assert float(image.max()) * scale > 0.5


def test_values_above_11_bit_give_one_line_naming_the_file(spacenet_area, copy_area, tmp_path,
                                                            capsys):
    area = copy_area(spacenet_area)
    path = area / "RGB-PanSharpen" / "RGB-PanSharpen_AOI_2_Vegas_img3.tif"
    image, transform = read_geotiff(path)
    write_geotiff(path, image.astype(np.uint16) * 20, transform)
    assert main([str(area), str(tmp_path / "o")]) == 2
    line = _stderr_line(capsys)
    assert "RGB-PanSharpen_AOI_2_Vegas_img3.tif: value" in line
    assert "exceeds the 11-bit range 0..2047" in line and "--bit-depth 16" in line
    assert main([str(area), str(tmp_path / "o16"), "--bit-depth", "16"]) == 0
    assert "AOI_2_Vegas: 16-bit" in capsys.readouterr().out


def test_projected_crs_is_an_error_naming_the_file(spacenet_area, copy_area, tmp_path, capsys):
    area = copy_area(spacenet_area)
    path = area / "RGB-PanSharpen" / "RGB-PanSharpen_AOI_2_Vegas_img2.tif"
    image, _ = read_geotiff(path)
    utm = GeoTransform(640000.0, 4008000.0, 0.3, 0.3)
    write_geotiff(path, image, utm, projected=True, epsg=32611)
    assert main([str(area), str(tmp_path / "o")]) == 2
    line = _stderr_line(capsys)
    assert "RGB-PanSharpen_AOI_2_Vegas_img2.tif: GeoTIFF is in a projected CRS " \
           "(projected EPSG:32611)" in line and "lon/lat" in line


def _break(area, how):
    """Damage tile 4 of a copied stub area in one of the ways a download can be damaged."""
    path = area / "RGB-PanSharpen" / "RGB-PanSharpen_AOI_2_Vegas_img4.tif"
    image, transform = read_geotiff(path)
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:2000])
    elif how == "size":
        write_geotiff(path, image[:60], transform)
    elif how == "bands":
        write_geotiff(path, np.concatenate([image, image[..., :1]], axis=-1), transform)
    elif how == "geojson":
        (area / "geojson" / "buildings" / "buildings_AOI_2_Vegas_img4.geojson").write_text("{")
    return path


@pytest.mark.parametrize("how, message", [
    ("truncated", "RGB-PanSharpen_AOI_2_Vegas_img4.tif: corrupt or truncated TIFF"),
    ("size", "RGB-PanSharpen_AOI_2_Vegas_img4.tif: tile is 60x64x3, the data set's tiles are "
             "64x64x3"),
    ("bands", "RGB-PanSharpen_AOI_2_Vegas_img4.tif: expected a 3-band image (rgb), got shape "
              "(64, 64, 4)"),
    ("geojson", "buildings_AOI_2_Vegas_img4.geojson: unreadable GeoJSON"),
])
def test_bad_tiles_fail_with_one_line_or_are_skipped_and_listed(
        spacenet_area, copy_area, tmp_path, capsys, how, message):
    area = copy_area(spacenet_area)
    _break(area, how)
    out = tmp_path / "o"
    assert main([str(area), str(out)]) == 2
    assert message in _stderr_line(capsys)
    written = sorted(p.name for p in (out / "tiles").glob("*.tile"))
    assert written == [f"AOI_2_Vegas_img{k}.tile" for k in (1, 2, 3)]  # kept, nothing lost
    assert main([str(area), str(out), "--skip-bad-tiles"]) == 0
    captured = capsys.readouterr()
    assert "6 tiles" not in captured.out and "1 skipped" in captured.out
    assert captured.err.startswith("skipped: ") and message in captured.err
    data = open_prepared(out)
    assert [s["id"] for s in data.skipped] == ["AOI_2_Vegas_img4"]
    assert "AOI_2_Vegas_img4" not in [t.id for t in data.tiles] and len(data.tiles) == 5


def test_an_interrupted_prepare_resumes_reusing_written_tiles(spacenet_area, copy_area, tmp_path):
    area = copy_area(spacenet_area)
    out = tmp_path / "o"
    prepare(PrepareConfig(area, out))
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "tiles").iterdir()}
    (out / "index.json").unlink()  # as if interrupted before the index was written
    (out / "tiles" / "AOI_2_Vegas_img5.tile").unlink()
    geojson = area / "geojson" / "buildings" / "buildings_AOI_2_Vegas_img1.geojson"
    geojson.write_text(geojson.read_text())  # a changed source file is prepared again
    os.utime(geojson, ns=(1, 1))
    data = prepare(PrepareConfig(area, out))
    assert len(data.tiles) == 6
    again = {p.name: p.stat().st_mtime_ns for p in (out / "tiles").iterdir()}
    changed = sorted(name for name in stamps if again[name] != stamps[name])
    assert changed == ["AOI_2_Vegas_img1.json", "AOI_2_Vegas_img1.tile",
                       "AOI_2_Vegas_img5.json", "AOI_2_Vegas_img5.tile"]
    wider = prepare(PrepareConfig(area, tmp_path / "o", boundary_width=4))
    assert wider.boundary_width == 4  # other options: every tile prepared again


def test_prepared_data_caches_a_raw_folder(spacenet_area, tmp_path):
    first = prepared_data(spacenet_area, cache=tmp_path / "cache")
    assert first.root.parent == tmp_path / "cache" / "prepared"
    assert first.root.name.startswith("AOI_2_Vegas_Train-")
    again = prepared_data(spacenet_area, cache=tmp_path / "cache")
    assert again.root == first.root and again.tiles == first.tiles
    assert prepared_data(first.root).tiles == first.tiles  # a prepared folder is opened
    other = prepared_data(spacenet_area, cache=tmp_path / "cache", boundary_width=1)
    assert other.root != first.root


def test_prepared_data_refuses_skipped_tiles_unless_asked(spacenet_area, copy_area, tmp_path):
    area = copy_area(spacenet_area)
    _break(area, "truncated")
    with pytest.raises(DataError, match="img4.tif: corrupt or truncated TIFF.*1 bad tiles; "
                                        "--skip-bad-tiles skips them"):
        prepared_data(area, cache=tmp_path / "cache", log=lambda line: None)
    data = prepared_data(area, cache=tmp_path / "cache", skip_bad_tiles=True,
                         log=lambda line: None)
    assert len(data.tiles) == 5


def test_mul_pansharpen_has_8_bands(tmp_path):
    area = generate_area(tmp_path / "raw", n_tiles=2, tile_size=40, mul=True)
    data = prepare(PrepareConfig(area, tmp_path / "out", bands="mul"))
    assert {t.bands for t in data.tiles} == {8}
    assert len(data.radiometry["AOI_2_Vegas"].low) == 8
    assert "MUL-PanSharpen_AOI_2_Vegas_img1.tif" in data.tiles[0].source


def test_real_spacenet_layout_650_px_gdal_lzw_tiled(tmp_path):
    area = generate_area(tmp_path / "raw", n_tiles=2, tile_size=650, layout="gdal")
    path = area / "RGB-PanSharpen" / "RGB-PanSharpen_AOI_2_Vegas_img2.tif"
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.photometric == tifffile.PHOTOMETRIC.MINISBLACK
        assert len(page.extrasamples) == 2 and page.is_tiled
        assert page.compression == tifffile.COMPRESSION.LZW
        assert page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
    data = prepare(PrepareConfig(area, tmp_path / "out"))
    assert [(t.height, t.width, t.bands) for t in data.tiles] == [(650, 650, 3)] * 2
    rendered, _ = render_tile(np.random.default_rng([0, 2]), 650, 2)
    np.testing.assert_array_equal(read_tile(data.tiles[1]).image, rendered)


@pytest.mark.parametrize("argv, pattern", [
    ([], "the following arguments are required: src, out"),
    (["SRC", "OUT", "--boundary-width", "x"], "--boundary-width: invalid int value: 'x'"),
    (["SRC", "OUT", "--boundary-width", "-1"], "--boundary-width must be in [0, 64], got -1"),
    (["SRC", "OUT", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_usage_errors_exit_2_with_one_line(spacenet_area, tmp_path, capsys, argv, pattern):
    argv = [str(spacenet_area) if a == "SRC" else str(tmp_path / "o") if a == "OUT" else a
            for a in argv]
    assert main(argv) == 2
    assert pattern in _stderr_line(capsys)


def test_missing_source_and_out_equal_to_src(tmp_path, spacenet_area, capsys):
    assert main([str(tmp_path / "nope"), str(tmp_path / "o")]) == 2
    assert "nope: data folder does not exist" in _stderr_line(capsys)
    assert main([str(spacenet_area), str(spacenet_area)]) == 2
    assert "OUT must differ from SRC" in _stderr_line(capsys)


def test_corrupt_source_file_is_named(spacenet_area, copy_area, tmp_path, capsys):
    area = copy_area(spacenet_area)
    geojson = area / "geojson" / "buildings" / "buildings_AOI_2_Vegas_img1.geojson"
    geojson.write_text("{")
    assert main([str(area), str(tmp_path / "o")]) == 2
    assert "buildings_AOI_2_Vegas_img1.geojson: unreadable GeoJSON" in _stderr_line(capsys)


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "--boundary-width" in capsys.readouterr().out


def test_config_validates_directly(tmp_path):
    with pytest.raises(TypeError, match="boundary_width.*'3'"):
        PrepareConfig(tmp_path, tmp_path / "o", boundary_width="3")


def test_module_entry_point_without_traceback(tmp_path):
    argv = [sys.executable, "-m", "assignment2.prepare", str(tmp_path / "x"), str(tmp_path / "y")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("x: data folder does not exist")
    assert result.stderr.count("\n") == 1
