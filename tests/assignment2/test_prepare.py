"""``python -m assignment2.prepare SRC OUT``: output layout and content, usage errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from assignment2.data import load_tiles
from assignment2.geotiff import read_geotiff
from assignment2.prepare import PrepareConfig, main


def _stderr_line(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_prepare_writes_the_layout_masks_and_georeference(spacenet_area, spacenet_tiles,
                                                          tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(spacenet_area), str(out)]) == 0
    assert capsys.readouterr().out.startswith("prepared 6 tiles with ")
    for sub in ("images", "masks", "instances"):
        assert sorted(p.stem for p in (out / sub).iterdir()) == spacenet_tiles.ids
    image, transform = read_geotiff(out / "images" / "AOI_2_Vegas_img4.tif")
    mask, mask_transform = read_geotiff(out / "masks" / "AOI_2_Vegas_img4.tif")
    instances, _ = read_geotiff(out / "instances" / "AOI_2_Vegas_img4.tif")
    index = spacenet_tiles.ids.index("AOI_2_Vegas_img4")
    assert (image.dtype, mask.dtype, instances.dtype) == (np.uint16, np.uint8, np.int32)
    np.testing.assert_array_equal(image, spacenet_tiles.images[index])
    np.testing.assert_array_equal(mask, spacenet_tiles.masks[index])
    np.testing.assert_array_equal(instances, spacenet_tiles.instances[index])
    assert transform == mask_transform == spacenet_tiles.transforms[index]
    config = json.loads((out / "prepare_config.json").read_text())
    assert config == {"src": str(spacenet_area), "out": str(out), "boundary_width": 3}


def test_boundary_width_option(spacenet_area, tmp_path):
    assert main([str(spacenet_area), str(tmp_path / "w1"), "--boundary-width", "1"]) == 0
    prepared = load_tiles(tmp_path / "w1")
    expected = load_tiles(spacenet_area, boundary_width=1)
    for got, want in zip(prepared.masks, expected.masks):
        np.testing.assert_array_equal(got, want)


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
