"""The stub area, reading raw and prepared folders, bad data, normalisation, split, the cache."""

import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tifffile

from assignment2.data import (
    DataError,
    default_data_dir,
    load_split,
    load_tiles,
    normalize,
    open_prepared,
    read_buildings,
    read_tile,
    save_split,
    split_ids,
    split_tiles,
)
from assignment2.geotiff import write_geotiff
from assignment2.masks import building_masks
from data_stubs.spacenet import generate_area, render_tile

IDS = [f"AOI_2_Vegas_img{k}" for k in (1, 2, 3, 4, 5, 6)]


def _image(area, k):
    return area / "RGB-PanSharpen" / f"RGB-PanSharpen_AOI_2_Vegas_img{k}.tif"


def _geojson(area, k):
    return area / "geojson" / "buildings" / f"buildings_AOI_2_Vegas_img{k}.geojson"


# --------------------------------------------------------------------------- the stub area


def test_stub_area_has_the_spacenet_layout_and_special_tiles(spacenet_area, spacenet_tiles):
    assert spacenet_area.name == "AOI_2_Vegas_Train"
    assert _geojson(spacenet_area, 2).stat().st_size == 0  # empty file as in the real data
    assert json.loads(_geojson(spacenet_area, 5).read_text())["features"] == []
    feature = json.loads(_geojson(spacenet_area, 1).read_text())["features"][0]
    ring = feature["geometry"]["coordinates"][0]
    assert len(ring[0]) == 3 and ring[0] == ring[-1]  # [lon, lat, z], closed
    assert -115.31 < ring[0][0] < -115.29 and 36.19 < ring[0][1] < 36.21
    for k in (1, 2):
        with tifffile.TiffFile(_image(spacenet_area, k)) as tif:
            assert tif.pages[0].planarconfig == (tifffile.PLANARCONFIG.SEPARATE if k % 2 == 0
                                                 else tifffile.PLANARCONFIG.CONTIG)
    assert spacenet_tiles.ids == sorted(IDS)
    assert not spacenet_tiles.masks[IDS.index("AOI_2_Vegas_img2")].any()
    assert not spacenet_tiles.masks[IDS.index("AOI_2_Vegas_img5")].any()


def test_stub_images_are_11_bit_with_a_no_data_wedge(spacenet_tiles):
    for image in spacenet_tiles.images:
        assert image.dtype == np.uint16 and image.shape == (64, 64, 3) and image.max() <= 2047
    wedge = (spacenet_tiles.images[2] == 0).all(axis=-1)  # img3
    assert 0.04 < wedge.mean() < 0.2
    assert not spacenet_tiles.masks[2][wedge].any()
    assert not (spacenet_tiles.images[0] == 0).any()  # img1: no zeros outside wedge tiles


def test_tiles_read_back_exactly_as_rendered(spacenet_tiles):
    """Planar and contiguous files decode to the same pixels, and the polygons survive the
    pixel -> lon/lat -> GeoJSON -> pixel round trip to the very same masks."""
    for k in (1, 4, 6):  # contiguous, planar, planar
        image, polygons = render_tile(np.random.default_rng([0, k]), 64, k)
        index = spacenet_tiles.ids.index(f"AOI_2_Vegas_img{k}")
        np.testing.assert_array_equal(spacenet_tiles.images[index], image)
        mask, instances = building_masks(polygons, (64, 64))
        np.testing.assert_array_equal(spacenet_tiles.masks[index], mask)
        np.testing.assert_array_equal(spacenet_tiles.instances[index], instances)
        assert mask.max() == 2 and instances.max() >= 2


def test_generation_is_byte_identical_and_seeded(tmp_path):
    args = {"n_tiles": 2, "tile_size": 48}
    first, second = generate_area(tmp_path / "a", **args), generate_area(tmp_path / "b", **args)
    other = generate_area(tmp_path / "c", seed=1, **args)
    for k in (1, 2):
        assert _image(first, k).read_bytes() == _image(second, k).read_bytes()
        assert _geojson(first, k).read_bytes() == _geojson(second, k).read_bytes()
    assert _image(first, 1).read_bytes() != _image(other, 1).read_bytes()


def test_buildings_are_a_learnable_share_of_the_stub(spacenet_tiles):
    counts = np.bincount(np.concatenate([m.ravel() for m in spacenet_tiles.masks]), minlength=3)
    share = counts / counts.sum()
    assert 0.03 < share[1] < 0.4 and 0.03 < share[2] < 0.4
    image = spacenet_tiles.images[0].astype(float)
    roof, ground = image[spacenet_tiles.masks[0] == 1], image[spacenet_tiles.masks[0] == 0]
    assert np.abs(roof.mean(0) - ground.mean(0)).max() > 40  # roofs differ from the ground


@pytest.mark.parametrize("kwargs, error", [({"n_tiles": 0}, ValueError),
                                           ({"tile_size": 8}, ValueError),
                                           ({"seed": 1.5}, TypeError),
                                           ({"city": "Las Vegas"}, ValueError)])
def test_generate_area_validates(tmp_path, kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        generate_area(tmp_path, **kwargs)


# --------------------------------------------------------------------------- reading


def test_folder_of_areas_and_prepared_folder_read_the_same(spacenet_area, spacenet_tiles,
                                                           prepared_area):
    parent = load_tiles(spacenet_area.parent)
    prepared = load_tiles(prepared_area)
    for other in (parent, prepared):
        assert other.ids == spacenet_tiles.ids
        for name in ("images", "masks", "instances"):
            for a, b in zip(getattr(other, name), getattr(spacenet_tiles, name)):
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)
    assert prepared.transforms == spacenet_tiles.transforms


def test_boundary_width_reaches_the_masks(spacenet_area, spacenet_tiles):
    thin = load_tiles(spacenet_area, boundary_width=1)
    for wide, narrow in zip(spacenet_tiles.masks, thin.masks):
        np.testing.assert_array_equal(wide > 0, narrow > 0)
        assert (narrow == 2).sum() <= (wide == 2).sum()
    assert sum((m == 2).sum() for m in thin.masks) < sum((m == 2).sum()
                                                          for m in spacenet_tiles.masks)


def test_read_buildings_multipolygon_null_geometry_and_empty_file(tmp_path):
    path = tmp_path / "b.geojson"
    square = [[[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 0]]]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": None},
        {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [square, square]}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": square}}]}))
    buildings = read_buildings(path)
    assert [len(b) for b in buildings] == [2, 1]
    assert buildings[1][0][0].shape == (4, 2)
    path.write_text("  \n")
    assert read_buildings(path) == []


# --------------------------------------------------------------------------- bad data


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"data_dir": None}, TypeError, "data_dir.*None"),
    ({"boundary_width": -2}, ValueError, "boundary_width.*-2"),
    ({"boundary_width": "3"}, ValueError, "boundary_width.*'3'"),
])
def test_load_tiles_validates_its_arguments(spacenet_area, kwargs, error, pattern):
    args = {"data_dir": spacenet_area, **kwargs}
    with pytest.raises(error, match=pattern):
        load_tiles(args.pop("data_dir"), **args)


def test_missing_empty_and_unknown_folders(tmp_path):
    with pytest.raises(DataError, match="nowhere.*does not exist"):
        load_tiles(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty.*is empty"):
        load_tiles(tmp_path / "empty")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="file.txt.*not a folder"):
        load_tiles(tmp_path / "file.txt")
    (tmp_path / "other" / "stuff").mkdir(parents=True)
    with pytest.raises(DataError, match="other: neither a prepared folder"):
        load_tiles(tmp_path / "other")


@pytest.mark.parametrize("remove, named", [("geojson", "RGB-PanSharpen_AOI_2_Vegas_img4.tif"),
                                           ("image", "buildings_AOI_2_Vegas_img4.geojson")])
def test_raw_image_without_geojson_and_the_reverse(spacenet_area, copy_area, remove, named):
    area = copy_area(spacenet_area)
    (_geojson(area, 4) if remove == "geojson" else _image(area, 4)).unlink()
    with pytest.raises(DataError, match=f"{named}: has no matching"):
        load_tiles(area)


@pytest.mark.parametrize("text", ["{not json", '{"type": "FeatureCollection"}',
                                  ('{"features": [{"geometry": {"type": "Polygon", '
                                  '"coordinates": [[["a", "b"]]]}}]}')])
def test_unreadable_geojson_is_named(spacenet_area, copy_area, text):
    area = copy_area(spacenet_area)
    _geojson(area, 3).write_text(text)
    with pytest.raises(DataError, match="buildings_AOI_2_Vegas_img3.geojson: unreadable"):
        load_tiles(area)


def test_truncated_raw_tiff_is_named(spacenet_area, copy_area):
    area = copy_area(spacenet_area)
    data = _image(area, 6).read_bytes()
    _image(area, 6).write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match="RGB-PanSharpen_AOI_2_Vegas_img6.tif: corrupt"):
        load_tiles(area)


def test_raw_tiff_without_georeference_or_with_one_band(spacenet_area, copy_area):
    area = copy_area(spacenet_area)
    write_geotiff(_image(area, 1), np.ones((64, 64, 3), np.uint16))
    with pytest.raises(DataError, match="img1.tif: no GeoTIFF georeferencing"):
        load_tiles(area)
    write_geotiff(_image(area, 1), np.ones((64, 64), np.uint16))
    with pytest.raises(DataError, match=r"img1.tif: expected a 3-band image \(rgb\), got shape "
                                        r"\(64, 64\)"):
        load_tiles(area)


def test_prepared_tile_truncated_or_missing_is_named(prepared_area, copy_area):
    folder = copy_area(prepared_area)
    tile = folder / "tiles" / "AOI_2_Vegas_img3.tile"
    tile.write_bytes(tile.read_bytes()[:100])
    with pytest.raises(DataError, match=r"tiles/AOI_2_Vegas_img3.tile: prepared tile has 100 "
                                        r"bytes, the index says \d+ \(truncated"):
        load_tiles(folder)
    tile.unlink()
    with pytest.raises(DataError, match="AOI_2_Vegas_img3.tile: prepared tile is missing"):
        open_prepared(folder)


def test_prepared_tile_corrupt_with_the_right_size_is_named(prepared_area, copy_area):
    folder = copy_area(prepared_area)
    tile = folder / "tiles" / "AOI_2_Vegas_img6.tile"
    tile.write_bytes(bytes(len(tile.read_bytes())))
    data = open_prepared(folder)
    with pytest.raises(DataError, match="AOI_2_Vegas_img6.tile: corrupt prepared tile"):
        read_tile(data.by_id(["AOI_2_Vegas_img6"])[0])


def test_old_or_damaged_prepared_index_is_refused(prepared_area, copy_area, tmp_path):
    old = tmp_path / "old"
    (old / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="older version"):
        load_tiles(old)
    folder = copy_area(prepared_area)
    index = json.loads((folder / "index.json").read_text())
    (folder / "index.json").write_text(json.dumps({**index, "version": 1}))
    with pytest.raises(DataError, match="index.json: unreadable index.*version 1"):
        open_prepared(folder)


# --------------------------------------------------------------------------- normalisation


def test_normalize_numpy_is_11_bit_scaling():
    out = normalize(np.array([0, 1023, 2047, 4095], np.uint16))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 1023 / 2047, 1.0, 1.0], rtol=1e-7)


def test_normalize_tensor_in_tensor_out_also_in_tf_function():
    image = np.array([[[0, 2047, 100]]], np.uint16)
    eager = normalize(tf.constant(image))
    graph = tf.function(normalize)(tf.constant(image))
    assert tf.is_tensor(eager) and eager.dtype == tf.float32
    np.testing.assert_allclose(eager.numpy(), normalize(image), rtol=1e-7)
    np.testing.assert_allclose(graph.numpy(), normalize(image), rtol=1e-7)


@pytest.mark.parametrize("bad", [[1, 2, 3], np.array(["a"]), tf.constant(["a"])])
def test_normalize_rejects_non_numbers(bad):
    with pytest.raises(TypeError, match="image"):
        normalize(bad)


# --------------------------------------------------------------------------- split


def test_split_is_random_reproducible_and_complete():
    ids = [f"AOI_2_Vegas_img{k}" for k in range(1, 41)]
    train, val = split_ids(ids, 0.2, seed=0)
    assert (train, val) == split_ids(list(reversed(ids)), 0.2, seed=0)
    assert len(val) == 8 and len(train) == 32
    assert sorted(train + val) == sorted(ids) and train == sorted(train) and val == sorted(val)
    assert split_ids(ids, 0.2, seed=1)[1] != val
    assert val != sorted(ids)[:8] and val != sorted(ids)[-8:]


def test_split_by_aoi_keeps_the_fraction_in_every_aoi():
    from assignment2.data import RawTile

    tiles = [RawTile(f"AOI_{n}_{city}_img{k}", f"AOI_{n}_{city}", Path("x.tif"), None)
             for n, city, count in [(2, "Vegas", 30), (3, "Paris", 10), (5, "Khartoum", 1)]
             for k in range(1, count + 1)]
    train, val = split_tiles(tiles, 0.2, seed=0, by="aoi")
    counts = {aoi: sum(i.startswith(aoi + "_") for i in val) for aoi in
              ("AOI_2_Vegas", "AOI_3_Paris", "AOI_5_Khartoum")}
    assert counts == {"AOI_2_Vegas": 6, "AOI_3_Paris": 2, "AOI_5_Khartoum": 0}
    assert sorted(train + val) == sorted(t.id for t in tiles) and not set(train) & set(val)
    assert "AOI_5_Khartoum_img1" in train  # a one-tile AOI trains
    vegas = [t.id for t in tiles if t.aoi == "AOI_2_Vegas"]
    assert [i for i in val if i in vegas] == split_ids(vegas, 0.2, seed=0)[1]
    assert split_tiles(tiles, 0.2, seed=0) == split_ids([t.id for t in tiles], 0.2, seed=0)
    with pytest.raises(ValueError, match="by.*'city'"):
        split_tiles(tiles, 0.2, seed=0, by="city")


@pytest.mark.parametrize("fraction, sizes", [(0.01, (2, 1)), (0.99, (1, 2)), (0.5, (1, 2))])
def test_split_keeps_at_least_one_tile_per_side(fraction, sizes):
    train, val = split_ids(["a", "b", "c"], fraction, seed=3)
    assert (len(train), len(val)) == sizes


@pytest.mark.parametrize("args, error, pattern", [
    ((["a", "b"], 0.0, 0), ValueError, "val_fraction.*0.0"),
    ((["a", "b"], 1.0, 0), ValueError, "val_fraction.*1.0"),
    ((["a", "b"], "0.2", 0), ValueError, "val_fraction.*'0.2'"),
    ((["a"], 0.5, 0), ValueError, "ids"),
    ((["a", "a", "b"], 0.5, 0), ValueError, "ids"),
    (("ab", 0.5, 0), TypeError, "ids"),
    ((["a", "b"], 0.5, 0.5), TypeError, "seed.*0.5"),
])
def test_split_validates(args, error, pattern):
    with pytest.raises(error, match=pattern):
        split_ids(*args)


def test_split_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "run" / "split.json"
    save_split(path, ["b", "a"], ["c"])
    assert load_split(path) == (["b", "a"], ["c"])
    assert [p.name for p in path.parent.iterdir()] == ["split.json"]
    with pytest.raises(ValueError, match="overlap.*'a'"):
        save_split(path, ["a"], ["a"])
    path.write_text('{"train": ["a"]}')
    with pytest.raises(DataError, match="split.json: unreadable"):
        load_split(path)
    with pytest.raises(DataError, match="missing.json"):
        load_split(tmp_path / "missing.json")


# --------------------------------------------------------------------------- cache


def test_default_data_dir_generates_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_COURSE_CACHE", str(tmp_path / "cache"))
    small = {"n_tiles": 3, "tile_size": 48}
    area = default_data_dir(**small)
    assert area.name == "AOI_2_Vegas_Train" and str(area).startswith(str(tmp_path / "cache"))
    assert len(list((area / "RGB-PanSharpen").glob("*.tif"))) == 3
    stamp = os.stat(_image(area, 1)).st_mtime_ns
    assert default_data_dir(**small) == area
    assert os.stat(_image(area, 1)).st_mtime_ns == stamp  # not regenerated
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [area.parent.name]


def test_default_data_dir_regenerates_an_incomplete_area(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_COURSE_CACHE", str(tmp_path))
    small = {"n_tiles": 2, "tile_size": 48}
    area = default_data_dir(**small)
    (area.parent / "COMPLETE").unlink()
    _image(area, 2).unlink()
    assert default_data_dir(**small) == area
    assert _image(area, 2).is_file() and (area.parent / "COMPLETE").is_file()
    assert len(load_tiles(area)) == 2


def test_default_data_dir_is_safe_under_concurrent_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_COURSE_CACHE", str(tmp_path))
    results, errors = [], []

    def use():
        try:
            results.append(default_data_dir(n_tiles=2, tile_size=40))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(results)) == 1
    assert len(load_tiles(results[0])) == 2
    assert [p.name for p in tmp_path.iterdir()] == [results[0].parent.name]
