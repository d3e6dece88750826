"""Streaming evaluation of a segmentation model on prepared tiles, plain and with TTA, per AOI.

The validation tiles are read one batch at a time from :func:`assignment2.pipeline.tile_dataset`
(whole tiles, as the model sees them: per-AOI radiometry, no-data pixels marked
``IGNORE_INDEX``). For each tile the model's probabilities are computed

- plainly: :func:`assignment2.tta.predict_probs` (reflect-padded to the stride, cropped back);
- with test-time augmentation: :func:`assignment2.tta.predict_tta`, the average of the 8 flips
  and 90-degree rotations mapped back exactly,

and folded into one :class:`assignment2.metrics.MetricAccumulator` per variant, which keeps only
counts (confusion matrices and building TP/FP/FN per AOI). Results are pooled over all tiles,
per AOI, and averaged over AOIs (the SpaceNet 2 challenge scored each city, then averaged).
Each tile's probabilities go to ``on_tile`` (e.g. written to disk) and are then dropped, so
memory holds one batch of tiles whatever the number of tiles.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from assignment2.data import PreparedData
from assignment2.pipeline import tile_dataset
from assignment2.tta import predict_probs, predict_tta

__all__ = ["evaluate"]


def _check_positive(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def evaluate(model, data: PreparedData, *, tiles=None, multiple: int,
             normalization: str = "fixed", tta: bool = True, transforms="d4",
             batch_size: int = 8, on_tile: Callable | None = None, **metric_options) -> dict:
    """Metrics of ``model`` on prepared tiles, streamed; per AOI, averaged over AOIs and pooled.

    Args:
        model: ``keras.Model`` (or callable) mapping ``(B, H', W', C)`` float32 to probabilities.
        data: the prepared data set.
        tiles: ids or :class:`~assignment2.data.Tile` to evaluate (default: all).
        multiple: the network stride ``2 ** depth``; tiles of any size are padded to it.
        normalization: ``"fixed"`` or ``"percentile"``, as in training.
        tta: also evaluate the TTA-averaged probabilities.
        transforms: the TTA views (see :func:`assignment2.tta.predict_tta`).
        batch_size: tiles per plain forward pass (and per read-ahead batch).
        on_tile: called as ``on_tile(tile, probs, element)`` for every tile, in order, with the
            stored probabilities float32 ``(H, W, K)`` (TTA if ``tta`` else plain) and the
            element dict of :func:`~assignment2.pipeline.tile_dataset` (numpy).
        **metric_options: passed to :class:`~assignment2.metrics.MetricAccumulator`
            (``polygons``, ``min_area``, ``iou_threshold``...; ``boundary_width`` defaults to
            the data set's).

    Returns:
        ``{"no_tta": summary, "tta": summary}`` (``"tta"`` only with ``tta``); each summary is
        :meth:`MetricAccumulator.summarise`'s: pooled keys (``mean_iou``, ``building_f1``...),
        ``"per_aoi"`` and ``"aoi_mean"``.
    """
    from assignment2.metrics import MetricAccumulator

    batch_size = _check_positive(batch_size, "batch_size")
    tiles = data.tiles if tiles is None else data.by_id(tiles) if tiles and \
        isinstance(tiles[0], str) else list(tiles)
    variants = ("no_tta", "tta") if tta else ("no_tta",)
    metric_options.setdefault("boundary_width", data.boundary_width)
    accumulators = {v: MetricAccumulator(**metric_options) for v in variants}
    stream = tile_dataset(data, tiles=tiles, normalization=normalization).batch(batch_size)
    for batch in stream.as_numpy_iterator():
        plain = predict_probs(model, batch["image"], multiple=multiple, batch_size=batch_size)
        for j, index in enumerate(batch["index"]):
            element = {key: value[j] for key, value in batch.items()}
            probs = {"no_tta": plain[j]}
            if tta:
                probs["tta"] = predict_tta(model, element["image"], transforms=transforms,
                                           multiple=multiple)
            tile = tiles[int(index)]
            for variant, accumulator in accumulators.items():
                accumulator.update(element["mask"], probs[variant], tile_id=tile.id, aoi=tile.aoi,
                                   true_instances=element["instances"], valid=element["valid"])
            if on_tile is not None:
                on_tile(tile, probs[variants[-1]], element)
    return {variant: accumulator.summarise() for variant, accumulator in accumulators.items()}
