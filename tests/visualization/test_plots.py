"""Every plotting helper returns a drawable Figure with its title and colour bar; bad input fails."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from visualization import plots
from visualization.patches import ReceptiveField, TopPatches
from visualization.representation import NeighbourComparison, Neighbours
from visualization.units import SpaceVsUnits

RNG = np.random.default_rng(0)
GREY = RNG.random((3, 8, 8, 1)).astype(np.float32)
RGB = RNG.random((2, 8, 8, 3)).astype(np.float32)


def _drawn(fig) -> Figure:
    assert isinstance(fig, Figure)
    FigureCanvasAgg(fig).draw()  # renders headless; fails on broken artists
    return fig


def _texts(fig) -> str:
    texts = [fig._suptitle.get_text() if fig._suptitle else ""]
    for ax in fig.get_axes():
        texts += [ax.get_title(), ax.get_ylabel(), ax.get_xlabel()]
    return " | ".join(texts)


def _colorbars(fig) -> list:
    return [ax for ax in fig.get_axes() if ax.get_label() == "<colorbar>"]


def test_heatmaps_share_one_colour_scale_with_a_bar():
    maps = np.stack([np.zeros((8, 8)), np.full((8, 8), 4.0), np.eye(8)])
    fig = _drawn(plots.plot_saliency(GREY, maps, titles=["a", "b", "c"]))
    assert "Saliency" in _texts(fig) and "a" in _texts(fig)
    (bar,) = _colorbars(fig)
    assert bar.get_ylim() == (0.0, 4.0)
    heat_images = [ax.images[0] for ax in fig.get_axes()[3:6]]
    assert all(im.get_clim() == (0.0, 4.0) for im in heat_images)


def test_gradcam_overlay_stretches_a_coarse_map_over_the_image():
    fig = _drawn(plots.plot_gradcam(RGB, RNG.random((2, 2, 2))))
    first = fig.get_axes()[0]
    assert len(first.images) == 2  # image then heatmap, on the same axes
    assert first.images[1].get_extent() == [-0.5, 7.5, 7.5, -0.5]
    assert len(_colorbars(fig)) == 1


def test_gradient_images_are_standardised_around_grey():
    gradients = np.zeros((3, 8, 8, 1))
    gradients[:, 0, 0] = 1.0
    fig = _drawn(plots.plot_gradient_images(GREY, gradients, title="Deconvnet"))
    assert "Deconvnet" in _texts(fig)
    shown = fig.get_axes()[3].images[0].get_array()
    assert shown[1, 1] == pytest.approx(0.5, abs=0.01) and shown[0, 0] == 1.0
    assert len(_colorbars(fig)) == 1


def test_occlusion_map_is_drawn_in_image_coordinates():
    fig = _drawn(plots.plot_occlusion(GREY, RNG.random((3, 3, 3)), patch_size=4, stride=2))
    heat = fig.get_axes()[3].images[0]
    # square i covers [2i, 2i + 4): centres 1.5, 3.5, 5.5, cells 2 wide
    assert heat.get_extent() == [0.5, 6.5, 6.5, 0.5]
    assert _colorbars(fig)[0].get_ylim() == (0.0, 1.0)


def test_image_grids_maximisation_and_style_triplet():
    fig = _drawn(plots.plot_maximization(RNG.normal(size=(5, 8, 8, 3)),
                                         titles=list("01234"), ncols=3))
    axes = fig.get_axes()
    assert len(axes) == 6 and [ax.axison for ax in axes] == [True] * 5 + [False]
    assert [ax.get_title() for ax in axes[:5]] == list("01234")
    assert "maximising" in _texts(fig)
    fig = _drawn(plots.plot_style_transfer(RGB[0], RGB[1], RGB[:1]))
    assert "content" in _texts(fig) and "style" in _texts(fig) and "result" in _texts(fig)


def test_filters_activations_and_patches():
    _drawn(plots.plot_filters(RNG.random((6, 3, 3, 3)), title="conv1"))
    fig = _drawn(plots.plot_filters(RNG.random((4, 3, 3, 5)), max_channels=2))
    assert "4 of 4 filters x 2 of 5 input channels" in _texts(fig)
    assert len(fig.get_axes()) == 4 * 2 + 1  # panels and the grey-scale bar
    fig = _drawn(plots.plot_activation_maps(RNG.random((1, 4, 4, 6)), image=GREY[0]))
    assert "6 of 6 channels" in _texts(fig) and len(_colorbars(fig)) == 1
    top = TopPatches(RNG.random((4, 5, 5, 1)), np.arange(4.0)[::-1],
                     np.array([[0, 0, 0], [1, 1, 1], [2, 0, 1], [0, 2, 2]]),
                     np.array([[0, 0, 3, 3], [1, 1, 6, 6], [0, 1, 3, 6], [2, 2, 7, 7]]),
                     ReceptiveField((5, 5), (1, 1), (-2, -2)))
    fig = _drawn(plots.plot_top_patches(top))
    assert "receptive field 5x5" in _texts(fig) and "3.00" in _texts(fig)
    fig = _drawn(plots.plot_patch_boxes(GREY, top))
    assert len(fig.get_axes()[0].patches) == 1


def test_tsne_scatter_and_thumbnails():
    embedding, labels = RNG.normal(size=(12, 2)), np.repeat([0, 1, 2], 4)
    fig = _drawn(plots.plot_tsne(embedding, labels, class_names=["a", "b", "c"]))
    legend = fig.get_axes()[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b", "c"]
    images = RNG.random((12, 8, 8, 1))
    fig = _drawn(plots.plot_tsne(embedding, labels, images=images, max_thumbnails=6))
    assert len(fig.get_axes()[0].artists) == 6


def test_neighbours_rows_and_comparison():
    database = RNG.random((5, 8, 8, 1))
    indices = np.array([[1, 2], [4, 0]])
    fig = _drawn(plots.plot_neighbours(GREY[:2], database, indices, np.ones((2, 2))))
    assert len(fig.get_axes()) == 6 and "d=1.00" in _texts(fig)
    result = Neighbours(indices, np.ones((2, 2), np.float32))
    fig = _drawn(plots.plot_neighbour_comparison(GREY[:2], database,
                                                 NeighbourComparison(result, result, "fc")))
    assert len(fig.get_axes()) == 12


def test_space_vs_units_rows():
    result = SpaceVsUnits(np.array([0, 2]), np.array([3.0, 1.0]), np.array([1, 0]),
                          np.array([0.5, 0.2]), np.ones(4) / 2, 7, "fc")
    fig = _drawn(plots.plot_space_vs_units(GREY, result, labels=[5, 6, 7]))
    assert "unit e_7" in _texts(fig) and "random direction v" in _texts(fig)
    assert "3.00 [5]" in _texts(fig)


@pytest.mark.parametrize("call, pattern", [
    (lambda: plots.plot_saliency(GREY, np.zeros((2, 8, 8))), "images and maps.*3 and 2"),
    (lambda: plots.plot_saliency(GREY[0, ..., 0], np.zeros((1, 8, 8))), "images must have shape"),
    (lambda: plots.plot_occlusion(GREY, np.zeros((3, 2, 2)), patch_size=0, stride=1),
     "patch_size.*0"),
    (lambda: plots.plot_tsne(np.zeros((4, 3))), r"embedding must have shape \(n, 2\)"),
    (lambda: plots.plot_tsne(np.zeros((4, 2)), [0, 1]), "embedding and labels"),
    (lambda: plots.plot_neighbours(GREY[:1], GREY, np.array([[5]])), r"indices must be in \[0, 3\)"),
    (lambda: plots.plot_image_grid(GREY, titles=["x"]), "titles must have one entry"),
    (lambda: plots.plot_style_transfer(RGB, RGB[0], RGB[0]), r"content must be one image"),
    (lambda: plots.plot_image_grid(RNG.random((1, 4, 4, 2))), "1 or 3 channels"),
])
def test_bad_input(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
