"""GeoTIFF tags, band layout by PlanarConfiguration, the geotransform round trip, corrupt files."""

import numpy as np
import pytest
import tifffile

from assignment2.geotiff import (
    DataError,
    GeoTransform,
    lonlat_to_pixel,
    pixel_to_lonlat,
    read_geotiff,
    write_geotiff,
)

VEGAS = GeoTransform(-115.3, 36.2, 2.7e-6, 2.7e-6)


def _tags(path):
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        return {code: tag.value for code, tag in page.tags.items()}, page.planarconfig


def test_geotags_are_written_as_the_geotiff_spec_says(tmp_path):
    path = write_geotiff(tmp_path / "t.tif", np.zeros((4, 5, 3), np.uint16), VEGAS)
    tags, _ = _tags(path)
    assert tags[33550] == (2.7e-6, 2.7e-6, 0.0)  # ModelPixelScale
    assert tags[33922] == (0.0, 0.0, 0.0, -115.3, 36.2, 0.0)  # ModelTiepoint
    keys = np.asarray(tags[34735]).reshape(-1, 4)
    assert {k: v for k, _, _, v in keys[1:]} == {1024: 2, 1025: 1, 2048: 4326, 2054: 9102}
    assert tuple(keys[0]) == (1, 1, 0, 4)


@pytest.mark.parametrize("planar", [False, True])
@pytest.mark.parametrize("shape", [(3, 5, 3), (4, 3, 3), (3, 3, 3)])
def test_band_layout_follows_the_planar_configuration_not_the_shape(tmp_path, planar, shape):
    image = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape) * 7
    path = write_geotiff(tmp_path / "t.tif", image, VEGAS, planar=planar)
    _, planarconfig = _tags(path)
    assert planarconfig == (tifffile.PLANARCONFIG.SEPARATE if planar
                            else tifffile.PLANARCONFIG.CONTIG)
    read, transform = read_geotiff(path)
    assert read.dtype == np.uint16
    np.testing.assert_array_equal(read, image)
    assert transform == VEGAS


def test_a_planar_file_written_by_another_tool_is_read_as_hwc(tmp_path):
    bands = np.stack([np.full((2, 3), v, np.uint16) for v in (10, 20, 30)])  # (C, H, W)
    tifffile.imwrite(tmp_path / "p.tif", bands, planarconfig="separate", photometric="rgb")
    image, transform = read_geotiff(tmp_path / "p.tif")
    assert image.shape == (2, 3, 3) and transform is None
    np.testing.assert_array_equal(image[1, 2], [10, 20, 30])


def test_one_band_per_page_is_stacked(tmp_path):
    bands = np.stack([np.full((2, 3), v, np.uint16) for v in (10, 20, 30)])
    tifffile.imwrite(tmp_path / "pages.tif", bands, photometric="minisblack")
    image, _ = read_geotiff(tmp_path / "pages.tif")
    np.testing.assert_array_equal(image[0, 0], [10, 20, 30])


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float16])
def test_single_band_round_trip(tmp_path, dtype):
    mask = (np.arange(20).reshape(4, 5) % 3).astype(dtype)
    read, transform = read_geotiff(write_geotiff(tmp_path / "m.tif", mask, VEGAS))
    assert read.dtype == dtype and transform == VEGAS
    np.testing.assert_array_equal(read, mask)


def test_pixel_lonlat_hand_computed():
    lon, lat = pixel_to_lonlat([0.0, 0.5, 650.0], [0.0, 0.5, 650.0], VEGAS)
    np.testing.assert_allclose(lon, [-115.3, -115.3 + 1.35e-6, -115.3 + 650 * 2.7e-6],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(lat, [36.2, 36.2 - 1.35e-6, 36.2 - 650 * 2.7e-6], rtol=0, atol=1e-12)
    x, y = VEGAS.lonlat_to_pixel(-115.3 + 10 * 2.7e-6, 36.2 - 20 * 2.7e-6)
    assert x == pytest.approx(10.0, abs=1e-6) and y == pytest.approx(20.0, abs=1e-6)


def test_geotransform_round_trip_is_exact_to_a_nanopixel():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-10, 700, (2, 1000))
    back_x, back_y = lonlat_to_pixel(*pixel_to_lonlat(x, y, VEGAS), VEGAS)
    np.testing.assert_allclose(back_x, x, rtol=0, atol=1e-6)
    np.testing.assert_allclose(back_y, y, rtol=0, atol=1e-6)


def _write_with_tags(path, extratags):
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8), extratags=extratags, metadata=None)
    return path


def test_tiepoint_away_from_origin_and_pixel_is_point(tmp_path):
    scale = (33550, "d", 3, (0.5, 0.25, 0.0), True)
    tie = (33922, "d", 6, (10.0, 20.0, 0.0, 100.0, 50.0, 0.0), True)
    _, area = read_geotiff(_write_with_tags(tmp_path / "a.tif", [scale, tie]))
    assert area == GeoTransform(100.0 - 10 * 0.5, 50.0 + 20 * 0.25, 0.5, 0.25)
    point_keys = (34735, "H", 8, (1, 1, 0, 1, 1025, 0, 1, 2), True)  # RasterPixelIsPoint
    _, point = read_geotiff(_write_with_tags(tmp_path / "p.tif", [scale, tie, point_keys]))
    assert point == GeoTransform(95.0 - 0.25, 55.0 + 0.125, 0.5, 0.25)


def test_model_transformation_tag(tmp_path):
    matrix = (0.5, 0, 0, 100.0, 0, -0.25, 0, 50.0, 0, 0, 0, 0, 0, 0, 0, 1)
    path = _write_with_tags(tmp_path / "m.tif", [(34264, "d", 16, matrix, True)])
    assert read_geotiff(path)[1] == GeoTransform(100.0, 50.0, 0.5, 0.25)
    rotated = (0.5, 0.1, 0, 100.0, 0.1, -0.25, 0, 50.0, 0, 0, 0, 0, 0, 0, 0, 1)
    path = _write_with_tags(tmp_path / "r.tif", [(34264, "d", 16, rotated, True)])
    with pytest.raises(DataError, match="r.tif.*north-up"):
        read_geotiff(path)


def test_plain_tiff_has_no_transform(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", np.ones((3, 3), np.uint8))
    assert read_geotiff(tmp_path / "plain.tif")[1] is None


@pytest.mark.parametrize("damage", ["truncate", "header", "junk", "empty"])
def test_corrupt_tiff_raises_data_error_naming_the_file(tmp_path, damage):
    path = write_geotiff(tmp_path / "tile7.tif", np.ones((64, 64, 3), np.uint16), VEGAS)
    data = path.read_bytes()
    damaged = {"truncate": data[: len(data) // 2], "header": data[:60],
               "junk": b"not a tiff at all", "empty": b""}[damage]
    path.write_bytes(damaged)
    with pytest.raises(DataError, match="tile7.tif"):
        read_geotiff(path)


def test_codec_without_its_package_is_explained(tmp_path, monkeypatch):
    path = write_geotiff(tmp_path / "lzw.tif", np.ones((8, 8), np.uint16))

    def decode_without_imagecodecs(self, *args, **kwargs):  # what tifffile raises for LZW
        raise ValueError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", decode_without_imagecodecs)
    with pytest.raises(DataError, match="lzw.tif: .*needs the 'imagecodecs' package"):
        read_geotiff(path)


def test_missing_file_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="nothere.tif"):
        read_geotiff(tmp_path / "nothere.tif")


def test_write_is_atomic_and_validates(tmp_path):
    path = tmp_path / "sub" / "x.tif"
    write_geotiff(path, np.ones((2, 2), np.uint8))
    write_geotiff(path, np.zeros((2, 2), np.uint8))  # replacing leaves no temporary files
    assert [p.name for p in path.parent.iterdir()] == ["x.tif"]
    np.testing.assert_array_equal(read_geotiff(path)[0], 0)
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2, 2\)"):
        write_geotiff(path, np.ones((2, 2, 2, 2), np.uint8))
