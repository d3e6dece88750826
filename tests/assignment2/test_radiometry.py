"""Radiometry: bit-depth detection, fixed and percentile scaling, no-data, exact percentiles."""

import numpy as np
import pytest
import tensorflow as tf

from assignment2.geotiff import DataError
from assignment2.radiometry import (
    BandHistogram,
    Radiometry,
    detect_bit_depth,
    load_radiometry,
    model_input,
    normalize_image,
    save_radiometry,
    valid_mask,
)


def test_bit_depth_is_detected_from_dtype_and_checked_against_the_values():
    assert detect_bit_depth(np.full((2, 2, 3), 255, np.uint8), "a.tif") == 8
    assert detect_bit_depth(np.full((2, 2, 3), 2047, np.uint16), "a.tif") == 11
    too_bright = np.full((2, 2, 3), 2048, np.uint16)
    with pytest.raises(DataError, match=r"^b.tif: value 2048 exceeds the 11-bit range 0..2047 "
                                        r".*pass --bit-depth 16"):
        detect_bit_depth(too_bright, "b.tif")
    assert detect_bit_depth(too_bright, "b.tif", "16") == 16
    with pytest.raises(DataError, match="c.tif: value 300 exceeds the 8-bit range"):
        detect_bit_depth(np.full((1, 1, 3), 300, np.uint16), "c.tif", 8)
    with pytest.raises(DataError, match="d.tif: expected uint8 or uint16 pixels, got float32"):
        detect_bit_depth(np.zeros((1, 1, 3), np.float32), "d.tif")
    with pytest.raises(ValueError, match="bit_depth.*'12'"):
        detect_bit_depth(np.zeros((1, 1, 3), np.uint16), "e.tif", 12)


def test_fixed_scaling_maps_the_range_of_each_bit_depth_to_unit_interval():
    for bits, top in ((8, 255), (11, 2047), (16, 65535)):
        scale, offset = Radiometry(bits).scale_offset("fixed")
        out = normalize_image(np.array([0, top // 2, top]), scale, offset)
        np.testing.assert_allclose(out, [0.0, (top // 2) / top, 1.0], rtol=1e-6)


def test_percentile_scaling_stretches_p2_p98_per_band_and_clips():
    radiometry = Radiometry(11, low=(100.0, 200.0), high=(300.0, 200.0))
    image = np.array([[[100, 200], [200, 500], [400, 0]]], np.uint16)
    out = model_input(image, radiometry, "percentile")
    # band 0: (x - 100) / 200; band 1 is flat (p98 == p2): (x - 200) / 2047
    np.testing.assert_allclose(out[0, :, 0], [0.0, 0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(out[0, :, 1], [0.0, 300 / 2047, 0.0], rtol=1e-6, atol=1e-7)
    scale, offset = radiometry.scale_offset("percentile")
    tensor = normalize_image(tf.constant(image), scale, offset)
    np.testing.assert_allclose(tensor.numpy(), out, rtol=1e-6)
    with pytest.raises(ValueError, match="percentile.*prepare it again"):
        Radiometry(11).scale_offset("percentile")
    with pytest.raises(ValueError, match="normalization.*'minmax'"):
        radiometry.scale_offset("minmax")


def test_valid_mask_is_false_only_where_every_band_is_zero():
    image = np.array([[[0, 0, 0], [0, 0, 1]], [[5, 0, 0], [0, 0, 0]]], np.uint16)
    np.testing.assert_array_equal(valid_mask(image), [[False, True], [True, False]])


def test_histogram_percentiles_equal_numpy_over_all_tiles_without_no_data():
    rng = np.random.default_rng(0)
    histogram, pixels = BandHistogram(3, 11), []
    for _ in range(4):
        tile = rng.integers(0, 2048, (20, 30, 3)).astype(np.uint16)
        tile[:5, :5] = 0  # no-data corner
        valid = valid_mask(tile)
        histogram.add(tile, valid)
        pixels.append(tile[valid])
    pixels = np.concatenate(pixels)
    for q in (2, 50, 98):
        np.testing.assert_array_equal(histogram.percentiles(q),
                                      np.percentile(pixels, q, axis=0, method="inverted_cdf"))
    assert BandHistogram(3, 8).percentiles(2) is None  # nothing seen


def test_radiometry_file_round_trip(tmp_path):
    stats = {"AOI_2_Vegas": Radiometry(11, (1.0, 2.0, 3.0), (4.0, 5.0, 6.0)),
             "AOI_3_Paris": Radiometry(8)}
    path = save_radiometry(tmp_path / "radiometry.json", stats, "percentile")
    assert load_radiometry(path) == (stats, "percentile")
    path.write_text("{")
    with pytest.raises(DataError, match="radiometry.json: unreadable"):
        load_radiometry(path)
