"""Figures of assignment2.plots: what each panel shows, on literal tiles and masks."""

import numpy as np
import pytest

from assignment2.plots import MASK_COLOURS, display_image, overlay_figure, tiles_figure


def _tile():
    image = np.full((6, 6, 3), 300, np.uint16)
    image[:, :3] = 900
    image[0, 0] = 0  # a no-data pixel: every band 0
    mask = np.zeros((6, 6), np.uint8)
    mask[2:5, 2:5] = 2
    mask[3, 3] = 1
    return image, mask


def test_tiles_figure_shows_tiles_above_their_class_colours():
    image, mask = _tile()
    figure = tiles_figure([image, image], [mask, mask], ids=["img1", "img2"])
    axes = figure.axes
    assert len(axes) == 4 and [axes[0].get_title(), axes[1].get_title()] == ["img1", "img2"]
    np.testing.assert_allclose(axes[0].images[0].get_array(), display_image(image))
    colours = np.asarray(axes[2].images[0].get_array())
    np.testing.assert_allclose(colours[3, 3], MASK_COLOURS[1])   # interior yellow
    np.testing.assert_allclose(colours[2, 2], MASK_COLOURS[2])   # boundary red
    np.testing.assert_allclose(colours[5, 5], MASK_COLOURS[0])   # background black
    np.testing.assert_allclose(colours[0, 0], 0.5)               # no data: grey, ignored
    assert "no data" in axes[2].get_ylabel()


def test_tiles_figure_refuses_mismatched_lists():
    image, mask = _tile()
    with pytest.raises(ValueError, match="same length"):
        tiles_figure([image], [mask, mask])


def test_overlay_figure_has_three_panels_per_tile():
    image, mask = _tile()
    figure = overlay_figure([image] * 2, [mask] * 2, [mask] * 2, ids=["a", "b"])
    assert len([ax for ax in figure.axes if ax.images]) == 6
