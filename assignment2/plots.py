"""Figures of a training run: validation overlays and learning curves.

Every ``*_figure`` function returns a ``matplotlib.figure.Figure`` (nothing is shown or saved);
:func:`save_figure` writes one atomically. Figures are built with ``matplotlib.figure.Figure``
directly (no pyplot state), so they work headless and do not accumulate.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from assignment2 import CLASS_NAMES, IGNORE_INDEX
from assignment2.radiometry import valid_mask
from data_stubs.files import write_atomic

#: Overlay colours (RGBA) of background (transparent), building, boundary.
CLASS_COLOURS = ((0.0, 0.0, 0.0, 0.0), (1.0, 0.55, 0.0, 0.55), (0.1, 0.4, 1.0, 0.85))

__all__ = [
    "display_image",
    "tiles_figure",
    "learning_curves_figure",
    "overlay_figure",
    "read_history",
    "save_figure",
]


def display_image(image) -> np.ndarray:
    """A tile stretched for display: per-channel 2nd-98th percentile to ``[0, 1]``.

    Args:
        image: ``(H, W, C)`` array of any numeric dtype (e.g. uint16 11-bit SpaceNet).

    Returns:
        float32 ``(H, W, 3)`` in ``[0, 1]`` (first 3 channels; a single channel is repeated).
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    image = image[..., :3] if image.shape[-1] >= 3 else np.repeat(image[..., :1], 3, axis=-1)
    low, high = np.percentile(image, [2, 98], axis=(0, 1))
    return np.clip((image - low) / np.maximum(high - low, 1e-6), 0, 1)


def _mask_rgba(mask) -> np.ndarray:
    """``(H, W)`` classes -> ``(H, W, 4)`` overlay colours; ignored pixels transparent."""
    mask = np.asarray(mask)
    colours = np.zeros(mask.shape + (4,), dtype=np.float32)
    for value, colour in enumerate(CLASS_COLOURS):
        colours[mask == value] = colour
    colours[mask == IGNORE_INDEX] = 0.0
    return colours


#: Mask colours (RGB) of background, building interior, boundary for :func:`tiles_figure`.
MASK_COLOURS = ((0.0, 0.0, 0.0), (1.0, 0.85, 0.0), (0.85, 0.1, 0.1))


def tiles_figure(images, masks, ids=None) -> Figure:
    """Tiles (top row, contrast-stretched by :func:`display_image`) above their 3-class masks
    (background black, interior yellow, boundary red; grey where the loss and the metrics ignore
    the pixel: no-data, every band 0, or ``IGNORE_INDEX``).

    Args:
        images: sequence of ``(H, W, C)`` tiles, any numeric dtype.
        masks: sequence of ``(H, W)`` class masks (0, 1, 2 or ``IGNORE_INDEX``), same length.
        ids: optional tile ids, used as column titles.
    """
    if len(images) != len(masks) or not len(images):
        raise ValueError(f"images and masks must be non-empty and of the same length, got "
                         f"{len(images)} and {len(masks)}")
    figure = Figure(figsize=(2.6 * len(images), 5.4), layout="constrained")
    axes = figure.subplots(2, len(images), squeeze=False)
    for column, (image, mask) in enumerate(zip(images, masks)):
        mask = np.asarray(mask)
        colours = np.full(mask.shape + (3,), 0.5, dtype=np.float32)
        for value, colour in enumerate(MASK_COLOURS):
            colours[mask == value] = colour
        colours[~valid_mask(np.asarray(image))] = 0.5
        axes[0, column].imshow(display_image(image))
        axes[1, column].imshow(colours, interpolation="nearest")
        if ids is not None:
            axes[0, column].set_title(str(ids[column]), fontsize=9)
        for ax in axes[:, column]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("RGB (2-98 % stretch)")
    axes[1, 0].set_ylabel("mask: 0 / 1 / 2, grey: no data")
    return figure


def overlay_figure(images, true_masks, pred_masks, ids=None, *, max_tiles: int = 4) -> Figure:
    """One row per tile: the image, ground truth over it, prediction over it.

    Args:
        images: sequence of ``(H, W, C)`` tiles (any numeric dtype).
        true_masks, pred_masks: sequences of ``(H, W)`` masks, values in ``{0, 1, 2}``.
        ids: optional tile names for the row titles.
        max_tiles: at most this many rows (the first tiles).

    Returns:
        The figure (3 columns, ``min(len(images), max_tiles)`` rows).
    """
    count = min(len(images), max_tiles)
    if count == 0 or len(true_masks) < count or len(pred_masks) < count:
        raise ValueError(f"images, true_masks and pred_masks must be non-empty sequences of one "
                         f"length, got {len(images)}, {len(true_masks)}, {len(pred_masks)}")
    figure = Figure(figsize=(7.5, 2.5 * count), dpi=80, layout="constrained")
    axes = np.asarray(figure.subplots(count, 3, squeeze=False))
    for row in range(count):
        shown = display_image(images[row])
        name = ids[row] if ids is not None else f"tile {row}"
        for col, (title, mask) in enumerate(
            (("image", None), ("ground truth", true_masks[row]), ("prediction", pred_masks[row]))
        ):
            ax = axes[row, col]
            ax.imshow(shown)
            if mask is not None:
                ax.imshow(_mask_rgba(mask))
            ax.set_title(f"{name}: {title}" if col == 0 else title, fontsize=8)
            ax.set_axis_off()
    _legend(figure)
    return figure


def _legend(figure: Figure) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=colour, label=name)
               for colour, name in zip(CLASS_COLOURS[1:], CLASS_NAMES[1:])]
    figure.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)


def read_history(path) -> dict[str, list[float]]:
    """Read a Keras ``CSVLogger`` file into ``{column: [values per epoch]}``."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = rows[0].keys() if rows else []
    return {name: [float(row[name]) for row in rows] for name in columns}


def learning_curves_figure(history: Mapping[str, Sequence[float]]) -> Figure:
    """Training and validation loss per epoch.

    Args:
        history: ``{"epoch": [...], "loss": [...], "val_loss": [...]}`` (e.g. :func:`read_history`
            or ``keras.callbacks.History.history``); other columns are ignored.

    Returns:
        The figure with one axis, log-scaled loss.
    """
    losses = {name: values for name, values in history.items() if name.endswith("loss")}
    if not losses:
        raise ValueError(f"history has no loss column, got columns {sorted(history)}")
    figure = Figure(figsize=(5, 3.2), dpi=80, layout="constrained")
    ax = figure.subplots()
    for name, values in sorted(losses.items()):
        epochs = history.get("epoch", range(len(values)))
        ax.plot(np.asarray(epochs, dtype=float) + 1, values, marker=".", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross entropy")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return figure


def save_figure(figure: Figure, path) -> Path:
    """Save ``figure`` as PNG, atomically."""
    return write_atomic(path, lambda tmp: figure.savefig(tmp, format="png"))
