"""Figures of every visualisation method; each function returns a ``matplotlib.figure.Figure``.

The numbers come from the method modules (saliency, guided backprop, Grad-CAM, occlusion,
maximisation, filters, activations, patches, t-SNE, neighbours, space vs units, style transfer);
here they are only drawn, with titles and colour bars a student can put in a report. Figures are
built with ``matplotlib.figure.Figure`` directly (no pyplot state), so they work headless (Agg),
are garbage-collected like any object, and display in notebooks; save them with
``fig.savefig(path)``. Nothing is saved here.

Conventions: images are ``(N, H, W, C)`` (or one ``(H, W, C)``/``(H, W)`` where a single image is
expected); grey images use ``"gray"``; heatmaps ``"inferno"`` (overlays ``"jet"`` at
``alpha=0.45``); signed values ``"RdBu_r"`` centred on 0. Image values are shown as they are
when they lie in [0, 1] (or [0, 255]); other ranges are min-max rescaled per image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

HEATMAP_CMAP = "inferno"
OVERLAY_CMAP = "jet"
OVERLAY_ALPHA = 0.45
SIGNED_CMAP = "RdBu_r"
PANEL_INCHES = 1.6


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------
def _as_batch(values, name: str, rank: int = 4) -> np.ndarray:
    """A numpy batch of rank ``rank``; a single item (rank - 1) gets a batch axis."""
    x = np.asarray(values, dtype=np.float32)
    if x.ndim == rank - 1:
        x = x[None]
    if x.ndim != rank or len(x) == 0:
        want = "(N, H, W, C)" if rank == 4 else "(N, H, W)"
        raise ValueError(f"{name} must have shape {want}, got shape {np.shape(values)}")
    return x


def _same_length(name_a: str, a, name_b: str, b) -> None:
    if len(a) != len(b):
        raise ValueError(f"{name_a} and {name_b} must have the same length, got {len(a)} and "
                         f"{len(b)}")


def _displayable(image: np.ndarray, value_range=None) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3)`` in [0, 1] for ``imshow``."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[-1] != 3:
        raise ValueError(f"an image must have 1 or 3 channels, got shape {image.shape}")
    if value_range is not None:
        low, high = value_range
    elif image.min() >= 0 and image.max() <= 1:
        return image
    elif image.min() >= 0 and image.max() <= 255:
        low, high = 0.0, 255.0
    else:
        low, high = float(image.min()), float(image.max())
    span = high - low if high > low else 1.0
    return np.clip((image - low) / span, 0.0, 1.0)


def _show_image(ax, image, title: str | None = None, value_range=None) -> None:
    picture = _displayable(image, value_range)
    ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1,
              interpolation="nearest")
    _clean(ax, title)


def _clean(ax, title: str | None = None) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def _grid_figure(rows: int, cols: int, title: str | None, extra_width: float = 0.0,
                 panel: float = PANEL_INCHES):
    fig = Figure(figsize=(panel * cols + extra_width, panel * rows + 0.4),
                 layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    if title:
        fig.suptitle(title)
    return fig, axes


def _titles(titles, n: int, name: str = "titles") -> list:
    if titles is None:
        return [None] * n
    titles = list(titles)
    if len(titles) != n:
        raise ValueError(f"{name} must have one entry per image ({n}), got {len(titles)}")
    return [str(t) for t in titles]


def _grid_shape(n: int, ncols: int | None) -> tuple[int, int]:
    cols = ncols or min(n, max(1, math.ceil(math.sqrt(n))))
    if isinstance(cols, bool) or not isinstance(cols, (int, np.integer)) or cols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    return math.ceil(n / cols), int(cols)


# ---------------------------------------------------------------------------------------------
# Gradients to the image: saliency, Grad-CAM, guided backprop, deconvnet
# ---------------------------------------------------------------------------------------------
def plot_heatmaps(images, maps, *, title: str = "Saliency", overlay: bool = False,
                  titles: Sequence[str] | None = None, cmap: str | None = None,
                  colorbar_label: str = "value", value_range=None) -> Figure:
    """Images (top row) and their heatmaps (bottom row), or heatmaps over the images.

    Serves saliency maps ``(N, H, W)`` (Simonyan et al.), Grad-CAM maps ``(N, h, w)`` (any
    resolution: a map is stretched over the whole image) and any other per-pixel score.
    All maps share one colour scale and one colour bar.

    Args:
        images: ``(N, H, W, C)``.
        maps: ``(N, h, w)`` heatmaps (a trailing channel axis of 1 is dropped).
        title: figure title.
        overlay: draw each map over its image (``"jet"``, alpha 0.45) in one row.
        titles: one caption per image (e.g. the class).
        cmap: colour map, default ``"inferno"`` (``"jet"`` for overlays).
        colorbar_label: label of the colour bar.
        value_range: ``(vmin, vmax)`` of the colour scale; default min and max of the maps.

    Returns:
        The figure.
    """
    x, m = _as_batch(images, "images"), np.asarray(maps, dtype=np.float32)
    if m.ndim == 4 and m.shape[-1] == 1:
        m = m[..., 0]
    m = _as_batch(m, "maps", rank=3)
    _same_length("images", x, "maps", m)
    captions = _titles(titles, len(x))
    vmin, vmax = value_range if value_range is not None else (float(m.min()), float(m.max()))
    fig, axes = _grid_figure(1 if overlay else 2, len(x), title, extra_width=0.8)
    for i, (image, heat) in enumerate(zip(x, m)):
        h, w = image.shape[:2]
        top = axes[0, i]
        _show_image(top, image, captions[i])
        ax = top if overlay else axes[1, i]
        mappable = ax.imshow(heat, cmap=cmap or (OVERLAY_CMAP if overlay else HEATMAP_CMAP),
                             vmin=vmin, vmax=vmax, extent=(-0.5, w - 0.5, h - 0.5, -0.5),
                             alpha=OVERLAY_ALPHA if overlay else 1.0, interpolation="bilinear")
        _clean(ax)
    bar = fig.colorbar(mappable, ax=axes.ravel().tolist(), label=colorbar_label, shrink=0.8)
    bar.solids.set_alpha(1.0)  # the bar shows the colour scale, not the overlay's transparency
    return fig


def plot_saliency(images, maps, *, titles=None, title: str = "Saliency maps (Simonyan et al.)"
                  ) -> Figure:
    """Images and their saliency maps ``M_ij = max_c |dS/dx_ijc|`` (see :func:`plot_heatmaps`)."""
    return plot_heatmaps(images, maps, title=title, titles=titles,
                         colorbar_label="max_c |dS/dx|")


def plot_gradcam(images, cams, *, titles=None, title: str = "Grad-CAM (Selvaraju et al.)"
                 ) -> Figure:
    """Grad-CAM maps ``(N, h, w)`` over their images, one shared colour bar."""
    return plot_heatmaps(images, cams, title=title, titles=titles, overlay=True,
                         colorbar_label="class activation")


def plot_gradient_images(images, gradients, *, titles=None,
                         title: str = "Guided backpropagation") -> Figure:
    """Images (top) and image-shaped gradients (bottom), for guided backprop, deconvnet and
    guided Grad-CAM.

    A gradient ``g`` ``(H, W, C)`` is shown as ``clip(0.5 + 0.15 * g / std(g), 0, 1)`` per
    image (grey 0.5 = zero gradient, bright = positive, dark = negative), in colour for RGB
    inputs; a colour bar shows that mapping in standard deviations.

    Args:
        images: ``(N, H, W, C)``.
        gradients: ``(N, H, W, C)`` (or ``(N, H, W)``).
        titles: one caption per image.
        title: figure title, e.g. ``"Deconvnet"``.
    """
    x, g = _as_batch(images, "images"), np.asarray(gradients, dtype=np.float32)
    if g.ndim == 3:
        g = g[..., None]
    g = _as_batch(g, "gradients")
    _same_length("images", x, "gradients", g)
    captions = _titles(titles, len(x))
    fig, axes = _grid_figure(2, len(x), title, extra_width=0.8)
    for i in range(len(x)):
        _show_image(axes[0, i], x[i], captions[i])
        _show_image(axes[1, i], _standardised(g[i]), value_range=(0.0, 1.0))
    bar = _grey_bar(fig, axes[1], "gradient (grey = 0)")
    bar.set_ticks([0.05, 0.5, 0.95], labels=["-3 std", "0", "+3 std"])
    return fig


def _standardised(gradient: np.ndarray) -> np.ndarray:
    std = float(gradient.std())
    return np.clip(0.5 + 0.15 * gradient / (std if std > 0 else 1.0), 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Occlusion
# ---------------------------------------------------------------------------------------------
def plot_occlusion(images, maps, *, patch_size: int, stride: int, titles=None,
                   title: str = "Occlusion sensitivity (Zeiler & Fergus)") -> Figure:
    """Images (top) and the class probability with a grey square at each position (bottom).

    ``maps[n, i, j]`` is the probability with the square ``[i*stride : i*stride+patch_size,
    j*stride : j*stride+patch_size]`` occluded; it is drawn at the square's centre, in image
    coordinates, so image and map align. Low values (dark) mark the evidence the class needs.

    Args:
        images: ``(N, H, W, C)``.
        maps: ``(N, H', W')`` probabilities in [0, 1].
        patch_size: side of the occluding square, >= 1.
        stride: step between positions, >= 1.
    """
    for name, value in (("patch_size", patch_size), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    x, m = _as_batch(images, "images"), _as_batch(maps, "maps", rank=3)
    _same_length("images", x, "maps", m)
    captions = _titles(titles, len(x))
    fig, axes = _grid_figure(2, len(x), title, extra_width=0.8)
    for i in range(len(x)):
        _show_image(axes[0, i], x[i], captions[i])
        rows, cols = m[i].shape
        first = patch_size / 2 - 0.5 - stride / 2
        extent = (first, first + cols * stride, first + rows * stride, first)
        mappable = axes[1, i].imshow(m[i], cmap=HEATMAP_CMAP, vmin=0.0, vmax=1.0, extent=extent,
                                     interpolation="nearest")
        axes[1, i].set_xlim(-0.5, x.shape[2] - 0.5)
        axes[1, i].set_ylim(x.shape[1] - 0.5, -0.5)
        _clean(axes[1, i])
    fig.colorbar(mappable, ax=axes[1].tolist(), shrink=0.8, label="p(class | occluded)")
    return fig


# ---------------------------------------------------------------------------------------------
# Images from optimisation, filters, activations, patches
# ---------------------------------------------------------------------------------------------
def plot_image_grid(images, *, titles=None, title: str | None = None, ncols: int | None = None,
                    value_range=None) -> Figure:
    """A grid of images: class model visualisations, filter maximisations, DeepDream, inversions.

    Each image is rescaled on its own (min-max) unless it lies in [0, 1] or ``value_range`` is
    given, since optimised images have arbitrary ranges.
    """
    x = _as_batch(images, "images")
    captions = _titles(titles, len(x))
    rows, cols = _grid_shape(len(x), ncols)
    fig, axes = _grid_figure(rows, cols, title)
    for i, ax in enumerate(axes.ravel()):
        if i < len(x):
            _show_image(ax, x[i], captions[i], value_range)
        else:
            ax.set_axis_off()
    return fig


def plot_maximization(images, *, titles=None,
                      title: str = "Images maximising the score (gradient ascent)",
                      ncols: int | None = None) -> Figure:
    """Class or unit maximisation images, one panel each (see :func:`plot_image_grid`)."""
    return plot_image_grid(images, titles=titles, title=title, ncols=ncols)


def plot_filters(filters, *, title: str = "Filters", max_filters: int = 64,
                 max_channels: int = 8) -> Figure:
    """Filters from :func:`visualization.filters.filter_grid`, ``(F, kh, kw, C)`` in [0, 1].

    With ``C`` = 3 (a first colour layer) each filter is one colour image; with ``C`` = 1 one
    grey image; otherwise row ``f`` shows the first ``max_channels`` input channels of filter
    ``f`` as grey images. At most ``max_filters`` filters are drawn. A colour bar gives the grey
    scale (normalised weight).
    """
    w = _as_batch(filters, "filters")
    total, channels = len(w), w.shape[-1]
    w = w[:max(1, int(max_filters))] if channels in (1, 3) else w[:max(1, int(max_filters) // 4)]
    count = len(w)
    if channels in (1, 3):
        rows, cols = _grid_shape(count, None)
        fig, axes = _grid_figure(rows, cols, f"{title} ({count} of {total} filters, "
                                 f"{w.shape[1]}x{w.shape[2]})", extra_width=0.8, panel=0.9)
        for i, ax in enumerate(axes.ravel()):
            if i < count:
                _show_image(ax, w[i], f"{i}", (0.0, 1.0))
            else:
                ax.set_axis_off()
    else:
        shown = min(channels, max_channels)
        fig, axes = _grid_figure(count, shown, f"{title} ({count} of {total} filters x "
                                 f"{shown} of {channels} input channels)", extra_width=0.8,
                                 panel=0.6)
        for f in range(count):
            for c in range(shown):
                _show_image(axes[f, c], w[f, ..., c], None if f else f"in {c}", (0.0, 1.0))
            axes[f, 0].set_ylabel(f"filter {f}", fontsize=7)
    _grey_bar(fig, axes, "normalised weight")
    return fig


def _grey_bar(fig, axes, label: str):
    """A colour bar of the grey scale [0, 1] beside ``axes`` (panels drawn with ``"gray"``)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    scale = ScalarMappable(Normalize(0.0, 1.0), "gray")
    return fig.colorbar(scale, ax=np.ravel(axes).tolist(), shrink=0.6, label=label)


def plot_activation_maps(maps, *, image=None, title: str = "Activation maps",
                         max_maps: int = 32, ncols: int | None = None) -> Figure:
    """The ``K`` feature maps of one image at a layer, one shared colour scale.

    Args:
        maps: ``(H', W', K)`` or ``(1, H', W', K)`` from
            :func:`visualization.activations.activation_maps`.
        image: optional ``(H, W, C)`` input shown first.
        title: figure title (add the layer name).
        max_maps: show at most this many channels.
        ncols: panels per row.
    """
    m = np.asarray(maps, dtype=np.float32)
    if m.ndim == 4 and len(m) == 1:
        m = m[0]
    if m.ndim != 3:
        raise ValueError(f"maps must have shape (H', W', K) or (1, H', W', K), got shape "
                         f"{np.shape(maps)}")
    shown = min(m.shape[-1], max_maps)
    panels = shown + (image is not None)
    rows, cols = _grid_shape(panels, ncols)
    fig, axes = _grid_figure(rows, cols, f"{title} ({shown} of {m.shape[-1]} channels)",
                             extra_width=0.8)
    flat = axes.ravel()
    if image is not None:
        _show_image(flat[0], np.asarray(image), "input")
    vmin, vmax = float(m[..., :shown].min()), float(m[..., :shown].max())
    for k in range(shown):
        mappable = flat[k + (image is not None)].imshow(m[..., k], cmap=HEATMAP_CMAP, vmin=vmin,
                                                        vmax=vmax, interpolation="nearest")
        _clean(flat[k + (image is not None)], f"ch {k}")
    for ax in flat[panels:]:
        ax.set_axis_off()
    fig.colorbar(mappable, ax=flat.tolist(), shrink=0.6, label="activation")
    return fig


def plot_top_patches(patches, activations=None, *, title: str = "Top patches",
                     ncols: int | None = None) -> Figure:
    """Maximally activating patches, strongest first, captioned with their activation.

    Args:
        patches: a :class:`visualization.patches.TopPatches` or an array ``(k, h, w, C)``.
        activations: ``(k,)``, taken from the ``TopPatches`` when given one.
        title: figure title (add the layer and unit).
        ncols: panels per row.
    """
    if hasattr(patches, "patches"):
        activations = patches.activations if activations is None else activations
        size = patches.receptive_field.size
        title = f"{title} (receptive field {size[0]}x{size[1]})"
        patches = patches.patches
    x = _as_batch(patches, "patches")
    captions = None if activations is None else [f"{a:.2f}" for a in np.asarray(activations)]
    return plot_image_grid(x, titles=captions, title=title, ncols=ncols)


def plot_patch_boxes(images, top, *, title: str = "Receptive fields of the top units",
                     ncols: int | None = None) -> Figure:
    """The source images of :func:`visualization.patches.top_patches` with the unit's
    receptive field drawn as a box (clipped to the image), activation as caption."""
    from matplotlib.patches import Rectangle

    x = _as_batch(images, "images")
    rows, cols = _grid_shape(len(top.locations), ncols)
    fig, axes = _grid_figure(rows, cols, title)
    for i, ax in enumerate(axes.ravel()):
        if i >= len(top.locations):
            ax.set_axis_off()
            continue
        index = int(top.locations[i, 0])
        if not 0 <= index < len(x):
            raise ValueError(f"images must be the dataset given to top_patches: image index "
                             f"{index} is out of range for {len(x)} images")
        _show_image(ax, x[index], f"#{index}: {top.activations[i]:.2f}")
        t, left, b, r = (int(v) for v in top.boxes[i])
        ax.add_patch(Rectangle((left - 0.5, t - 0.5), r - left, b - t, fill=False,
                               edgecolor="red", linewidth=1.5))
    return fig


# ---------------------------------------------------------------------------------------------
# Representation: t-SNE, neighbours, space vs units
# ---------------------------------------------------------------------------------------------
def plot_tsne(embedding, labels=None, *, images=None, class_names: Sequence[str] | None = None,
              title: str = "t-SNE of the layer codes", thumbnail_zoom: float = 0.6,
              max_thumbnails: int = 400) -> Figure:
    """A 2-D embedding as a scatter coloured by class, or as image thumbnails.

    Args:
        embedding: ``(n, 2)`` from :func:`visualization.representation.tsne_embedding`.
        labels: ``(n,)`` integer classes for the colours (tab10 legend); optional.
        images: ``(n, H, W, C)``; when given, thumbnails are drawn at the points (up to
            ``max_thumbnails``, evenly subsampled), framed in the class colour if ``labels``.
        class_names: legend names per class index.
        title: axes title.
        thumbnail_zoom: size of the thumbnails.
        max_thumbnails: cap on drawn thumbnails.
    """
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    y = np.asarray(embedding, dtype=np.float32)
    if y.ndim != 2 or y.shape[1] != 2:
        raise ValueError(f"embedding must have shape (n, 2), got shape {np.shape(embedding)}")
    classes = None if labels is None else np.asarray(labels).astype(int).reshape(-1)
    if classes is not None:
        _same_length("embedding", y, "labels", classes)
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    colours = [f"C{c % 10}" for c in classes] if classes is not None else ["C0"] * len(y)
    if images is None:
        _scatter_classes(ax, y, classes, class_names)
    else:
        x = _as_batch(images, "images")
        _same_length("embedding", y, "images", x)
        ax.scatter(y[:, 0], y[:, 1], s=2, c=colours, alpha=0.3)
        step = max(1, math.ceil(len(y) / max_thumbnails))
        for i in range(0, len(y), step):
            picture = _displayable(x[i])
            box = OffsetImage(picture, zoom=thumbnail_zoom, cmap="gray" if picture.ndim == 2
                              else None)
            ax.add_artist(AnnotationBbox(box, y[i], frameon=classes is not None, pad=0.05,
                                         bboxprops={"edgecolor": colours[i], "linewidth": 1}))
        if classes is not None:
            _class_legend(ax, np.unique(classes), class_names)
    ax.set(xlabel="t-SNE 1", ylabel="t-SNE 2")
    return fig


def _scatter_classes(ax, y, classes, class_names) -> None:
    if classes is None:
        ax.scatter(y[:, 0], y[:, 1], s=8)
        return
    for c in np.unique(classes):
        chosen = classes == c
        ax.scatter(y[chosen, 0], y[chosen, 1], s=8, color=f"C{c % 10}",
                   label=_class_name(c, class_names))
    ax.legend(title="class", fontsize=7, markerscale=2, loc="center left",
              bbox_to_anchor=(1.0, 0.5))


def _class_legend(ax, classes, class_names) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="s", linestyle="", color=f"C{c % 10}",
                      label=_class_name(c, class_names)) for c in classes]
    ax.legend(handles=handles, title="class", fontsize=7, loc="center left",
              bbox_to_anchor=(1.0, 0.5))


def _class_name(c: int, class_names) -> str:
    if class_names is None:
        return str(c)
    if not 0 <= c < len(class_names):
        raise ValueError(f"class_names has {len(class_names)} names, no name for class {c}")
    return str(class_names[c])


def plot_neighbours(queries, database, indices, distances=None, *,
                    title: str = "Nearest neighbours", row_label: str = "") -> Figure:
    """One row per query: the query (first column) then its neighbours, nearest first.

    Args:
        queries: ``(Q, H, W, C)``.
        database: ``(N, H, W, C)``.
        indices: ``(Q, k)`` into ``database`` (from
            :func:`visualization.representation.nearest_neighbours`).
        distances: ``(Q, k)`` shown as captions; optional.
        title: figure title, e.g. ``"Nearest neighbours in feature space (fc)"``.
        row_label: prefix of the row labels.
    """
    q, db = _as_batch(queries, "queries"), _as_batch(database, "database")
    idx = np.asarray(indices)
    if idx.ndim != 2 or len(idx) != len(q):
        raise ValueError(f"indices must have shape (Q={len(q)}, k), got shape {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= len(db)):
        raise ValueError(f"indices must be in [0, {len(db)}) (the database), got values "
                         f"{idx.min()}..{idx.max()}")
    fig, axes = _grid_figure(len(q), idx.shape[1] + 1, title)
    for r in range(len(q)):
        _draw_neighbour_row(axes[r], q[r], db, idx[r], None if distances is None
                            else np.asarray(distances)[r], r == 0)
        axes[r, 0].set_ylabel(f"{row_label}{r}", fontsize=8)
    return fig


def _draw_neighbour_row(axes, query, database, indices, distances, first_row: bool) -> None:
    _show_image(axes[0], query, "query" if first_row else None)
    for j, index in enumerate(indices):
        caption = f"d={distances[j]:.2f}" if distances is not None else f"#{index}"
        _show_image(axes[j + 1], database[index], caption)


def plot_neighbour_comparison(queries, database, comparison, *,
                              title: str = "Nearest neighbours: pixel space vs feature space"
                              ) -> Figure:
    """Pixel-space neighbours (left block) beside feature-space neighbours (right block).

    Args:
        queries: ``(Q, H, W, C)``.
        database: ``(N, H, W, C)``.
        comparison: :class:`visualization.representation.NeighbourComparison`.
    """
    q, db = _as_batch(queries, "queries"), _as_batch(database, "database")
    k = comparison.pixel.indices.shape[1]
    if len(comparison.pixel.indices) != len(q):
        raise ValueError(f"comparison has {len(comparison.pixel.indices)} queries, queries has "
                         f"{len(q)}")
    fig = Figure(figsize=(PANEL_INCHES * 0.8 * (2 * k + 2), PANEL_INCHES * 0.8 * len(q) + 0.6),
                 layout="constrained")
    fig.suptitle(title)
    left, right = fig.subfigures(1, 2)
    for sub, result, name in ((left, comparison.pixel, "pixel space (L2)"),
                              (right, comparison.feature,
                               f"feature space ({comparison.layer_name}, L2)")):
        sub.suptitle(name, fontsize=10)
        axes = np.atleast_2d(sub.subplots(len(q), k + 1, squeeze=False))
        for r in range(len(q)):
            _draw_neighbour_row(axes[r], q[r], db, result.indices[r], result.distances[r], r == 0)
    return fig


def plot_space_vs_units(images, result, *, labels=None,
                        title: str = "Space vs units (Szegedy et al.)") -> Figure:
    """Top row: images maximising unit ``e_i``; bottom row: images maximising a random ``v``.

    Args:
        images: the dataset given to :func:`visualization.units.space_vs_units`.
        result: its :class:`visualization.units.SpaceVsUnits`.
        labels: optional ``(N,)`` classes, added to the captions.
    """
    x = _as_batch(images, "images")
    k = len(result.unit_indices)
    fig, axes = _grid_figure(2, k, f"{title}: layer {result.layer_name}")
    rows = ((result.unit_indices, result.unit_scores, f"unit e_{result.unit_index}"),
            (result.direction_indices, result.direction_scores, "random direction v"))
    for r, (indices, scores, name) in enumerate(rows):
        for j, (index, score) in enumerate(zip(indices, scores)):
            label = "" if labels is None else f" [{np.asarray(labels)[index]}]"
            _show_image(axes[r, j], x[index], f"{score:.2f}{label}")
        axes[r, 0].set_ylabel(name, fontsize=8)
    return fig


def plot_style_transfer(content, style, result, *,
                        title: str = "Neural style transfer (Gatys et al.)") -> Figure:
    """The triplet content | style | result, each ``(H, W, C)`` (or with a batch axis of 1)."""
    panels = []
    for name, image in (("content", content), ("style", style), ("result", result)):
        x = np.asarray(image, dtype=np.float32)
        x = x[0] if x.ndim == 4 and len(x) == 1 else x
        if x.ndim != 3:
            raise ValueError(f"{name} must be one image (H, W, C), got shape {np.shape(image)}")
        panels.append((name, x))
    fig, axes = _grid_figure(1, 3, title)
    for ax, (name, x) in zip(axes[0], panels):
        _show_image(ax, x, name)
    return fig
