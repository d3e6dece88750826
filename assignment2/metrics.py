"""Segmentation metrics: pixel IoU per class, and building F1 counted the way SpaceNet counts it.

**Pixel metrics** come from one confusion matrix accumulated over the scored pixels of all tiles:
``IoU_c = TP_c / (TP_c + FP_c + FN_c)``, ``pixel_accuracy = trace(C) / sum(C)``. ``iou_building``
is the *interior* class (class 1); ``iou_footprint`` is the IoU of the whole building footprint
(interior and boundary together against background), the number comparable with the building IoU
of other work.

**Building F1** follows the SpaceNet 2 challenge (Van Etten, Lindenbaum and Bacastow, "SpaceNet:
A Remote Sensing Dataset and Challenge Series", arXiv:1807.01232; the official scorer is
``solaris.eval.challenges.spacenet_buildings_2``), computed two ways:

- ``building_*`` (raster): predicted instances are :func:`assignment2.instances.building_instances`
  of the predicted mask (interior seeds grown into the boundary, so touching buildings stay
  apart); ground-truth instances are the rasterised polygons (``true_instances``) or the same
  function of the true mask. Pixel counts stand in for polygon areas: truth instances need
  ``>= min_area`` pixels, predictions ``> min_area`` (the scorer's asymmetry), and a pair matches
  when its pixel IoU is **> 0.5**, one to one.
- ``polygon_*`` (``polygons=True``): the official rules on polygons (:mod:`assignment2.polygons`):
  the predicted instances traced into polygons and matched against the ground-truth polygons with
  shapely areas, proposals by decreasing confidence.

``F1 = 2 TP / (2 TP + FP + FN)``. TP, FP and FN are summed per AOI (area of interest, e.g.
``AOI_2_Vegas``, the tile id without its ``_img<k>`` suffix); ``per_aoi`` holds each AOI's metrics
and ``aoi_mean`` their average over AOIs, which for ``polygon_f1`` is the challenge score. The
pooled numbers sum over all tiles.

Scored pixels: a pixel counts when its true label is not ``ignore_index`` and ``valid`` (no-data
mask) is True there; elsewhere predictions are treated as background before instances are formed.

Empty cases: a ratio whose denominator is 0 (a class absent from truth and prediction, no building
on either side) is 1.0, "nothing to find and nothing found", so every value is a finite Python
float and the dictionary is valid JSON. (The official scorer gives F1 0 to an AOI without any
building or proposal; real AOIs always have buildings.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from assignment2 import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from assignment2.instances import building_instances, check_min_area, class_mask, drop_small
from assignment2.masks import DEFAULT_BOUNDARY_WIDTH, check_boundary_width
from assignment2.polygons import IOU_THRESHOLD, MIN_AREA, instance_polygons, match_polygons

#: Mask values that belong to a building footprint (interior and boundary).
BUILDING_CLASSES = (1, 2)


def as_mask_list(masks, name: str) -> list[np.ndarray]:
    """Masks as a list of 2-D integer arrays.

    Accepts one mask ``(H, W)`` (an array of rank 2), a stack ``(N, H, W)`` or ``(N, H, W, 1)``,
    or a sequence of ``(H_i, W_i)`` or ``(H_i, W_i, 1)`` arrays. Raises ``ValueError`` or
    ``TypeError`` naming ``name``.
    """
    if isinstance(masks, np.ndarray) and masks.ndim == 2:
        masks = [masks]
    try:
        result = [np.asarray(m) for m in masks]
    except TypeError:
        raise TypeError(f"{name} must be a sequence of 2-D masks, got "
                        f"{type(masks).__name__}") from None
    if not result:
        raise ValueError(f"{name} is empty")
    for i, mask in enumerate(result):
        if mask.ndim == 3 and mask.shape[-1] == 1:
            result[i] = mask = mask[..., 0]
        if mask.ndim != 2:
            raise ValueError(f"{name}[{i}] must be 2-D (H, W), got shape {mask.shape}")
        if not (np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.bool_)):
            raise TypeError(f"{name}[{i}] must hold integers, got dtype {mask.dtype}")
    return result


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, and 1.0 for the empty case ``0 / 0``."""
    return float(numerator / denominator) if denominator else 1.0


def confusion_matrix(true_mask, pred_mask, *, num_classes: int = NUM_CLASSES,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Pixel confusion matrix ``C[t, p]`` = number of pixels of true class t predicted as p.

    Args:
        true_mask: integer array of any shape, values in ``[0, K)`` or ``ignore_index``.
        pred_mask: integer array of the same shape, values in ``[0, K)``.
        num_classes: K.
        ignore_index: true label of pixels that are not counted.

    Returns:
        int64 array ``(K, K)``; rows are true classes, columns predicted ones.
    """
    true_mask, pred_mask = np.asarray(true_mask), np.asarray(pred_mask)
    if true_mask.shape != pred_mask.shape:
        raise ValueError(f"true_mask and pred_mask must have the same shape, got "
                         f"{true_mask.shape} and {pred_mask.shape}")
    keep = true_mask != ignore_index
    truth, pred = true_mask[keep].astype("int64"), pred_mask[keep].astype("int64")
    _check_range(truth, num_classes, "true_mask")
    _check_range(pred, num_classes, "pred_mask")
    counts = np.bincount(truth * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype("int64")


def _check_range(values: np.ndarray, num_classes: int, name: str) -> None:
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        bad = np.unique(values[(values < 0) | (values >= num_classes)])[:5].tolist()
        raise ValueError(f"{name} has values outside [0, {num_classes}): {bad}")


def pixel_metrics(confusion: np.ndarray) -> dict:
    """Pixel accuracy, ``iou_<class name>`` for each class and their mean, from ``C[t, p]``."""
    confusion = np.asarray(confusion, dtype="int64")
    tp = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - tp
    ious = [_ratio(tp[c], union[c]) for c in range(len(tp))]
    names = CLASS_NAMES if len(tp) == len(CLASS_NAMES) else [str(c) for c in range(len(tp))]
    result = {"pixel_accuracy": _ratio(tp.sum(), confusion.sum())}
    result.update({f"iou_{name}": iou for name, iou in zip(names, ious)})
    result["mean_iou"] = float(np.mean(ious))
    if len(tp) == len(CLASS_NAMES):  # footprint = interior + boundary against background
        result["iou_footprint"] = _ratio(confusion[1:, 1:].sum(),
                                         confusion.sum() - confusion[0, 0])
    return result




def aoi_of(tile_id: str) -> str:
    """The AOI of a SpaceNet tile id, as the scorer takes it: ``AOI_2_Vegas_img1`` -> ``AOI_2_Vegas``.

    (``solaris.eval.challenges.get_chip_id``: the id without its last ``_`` part.)
    """
    if not isinstance(tile_id, str) or "_" not in tile_id:
        raise ValueError(f"tile_id must look like 'AOI_2_Vegas_img1', got {tile_id!r}")
    return tile_id.rsplit("_", 1)[0]


def match_instances(true_labels: np.ndarray, pred_labels: np.ndarray, *,
                    iou_threshold: float = IOU_THRESHOLD) -> tuple[int, int, int]:
    """One-to-one greedy matching of two instance label maps; returns ``(TP, FP, FN)``.

    All pairs with ``IoU > iou_threshold`` (strictly, as the SpaceNet scorer) are visited in order
    of decreasing IoU (ties: lower prediction id, then lower truth id); a pair matches when neither
    side is matched yet. For ``iou_threshold >= 0.5`` every instance has at most one such partner,
    so the order does not matter.

    Args:
        true_labels, pred_labels: int label maps ``(H, W)`` numbered 1..n (0 = none).
    """
    n_true, n_pred = int(true_labels.max(initial=0)), int(pred_labels.max(initial=0))
    pairs = pred_labels.astype("int64").ravel() * (n_true + 1) + true_labels.ravel()
    inter = np.bincount(pairs, minlength=(n_pred + 1) * (n_true + 1)).reshape(n_pred + 1, -1)
    pred_area, true_area = inter.sum(axis=1)[1:], inter.sum(axis=0)[1:]
    inter = inter[1:, 1:]
    iou = inter / np.maximum(pred_area[:, None] + true_area[None, :] - inter, 1)
    candidates = np.argwhere(iou > iou_threshold)
    order = np.argsort(-iou[candidates[:, 0], candidates[:, 1]], kind="stable")
    matched_pred, matched_true, tp = set(), set(), 0
    for p, t in candidates[order]:
        if p not in matched_pred and t not in matched_true:
            matched_pred.add(p)
            matched_true.add(t)
            tp += 1
    return tp, n_pred - tp, n_true - tp


@dataclass
class TileCounts:
    """Everything the metrics need from some tiles; counts add up across tiles.

    Attributes:
        confusion: int64 ``(K, K)`` pixel confusion matrix ``C[true, predicted]``.
        building: raster ``(TP, FP, FN)``.
        polygon: polygon ``(TP, FP, FN)`` (zeros when polygon metrics are off).
        tiles: number of tiles counted.
    """

    confusion: np.ndarray
    building: np.ndarray = field(default_factory=lambda: np.zeros(3, np.int64))
    polygon: np.ndarray = field(default_factory=lambda: np.zeros(3, np.int64))
    tiles: int = 0

    def __add__(self, other: "TileCounts") -> "TileCounts":
        return TileCounts(self.confusion + other.confusion, self.building + other.building,
                          self.polygon + other.polygon, self.tiles + other.tiles)


def tile_counts(true_mask, pred, *, true_instances=None, valid=None, true_polygons=None,
                polygons: bool = False, boundary_width: int = DEFAULT_BOUNDARY_WIDTH,
                min_area: int = MIN_AREA, iou_threshold: float = IOU_THRESHOLD,
                num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX) -> TileCounts:
    """Counts of one tile (see the module docstring for the rules).

    Args:
        true_mask: integer ``(H, W)``, values in ``[0, K)`` or ``ignore_index``.
        pred: predicted class mask ``(H, W)`` or probabilities ``(H, W, K)`` (their argmax; the
            probabilities also give the polygons' confidences).
        true_instances: optional int ``(H, W)`` polygon ids (0 = none); default: the instances
            of ``true_mask``.
        valid: optional bool ``(H, W)``, False where the image has no data (not scored).
        true_polygons: optional shapely polygons (pixel coordinates) of the ground truth for the
            polygon metric; default: the traced ``true_instances``.
        polygons: also compute the polygon counts.
        boundary_width: boundary thickness of the masks (for :func:`building_instances`).
        min_area: the 20-pixel rule (truth ``>=``, predictions ``>``).
        iou_threshold: a match needs IoU strictly above it.
    """
    true_mask = as_mask_list(true_mask, "true_mask")[0]
    pred = np.asarray(pred)
    probs = pred if pred.ndim == 3 and pred.shape[-1] > 1 else None
    pred_mask = class_mask(pred, "pred")
    if pred_mask.shape != true_mask.shape:
        raise ValueError(f"true_mask and pred must have the same height and width, got "
                         f"{true_mask.shape} and {pred_mask.shape}")
    scored = true_mask != ignore_index
    if valid is not None:
        scored &= _check_valid(valid, true_mask.shape)
    confusion = confusion_matrix(np.where(scored, true_mask, ignore_index), pred_mask,
                                 num_classes=num_classes, ignore_index=ignore_index)
    pred_instances = building_instances(np.where(scored, pred_mask, 0),
                                        boundary_width=boundary_width)
    truth = _true_instance_map(np.where(scored, true_mask, 0), true_instances, boundary_width)
    counts = TileCounts(confusion, tiles=1)
    counts.building[:] = match_instances(drop_small(truth, min_area),
                                         drop_small(pred_instances, min_area + 1),
                                         iou_threshold=iou_threshold)
    if polygons:
        proposals = instance_polygons(pred_instances, probs)
        if true_polygons is None:
            true_polygons = [b.polygon for b in instance_polygons(truth)]
        counts.polygon[:] = match_polygons(true_polygons, [b.polygon for b in proposals],
                                           [b.confidence for b in proposals],
                                           iou_threshold=iou_threshold, min_area=min_area)
    return counts


def _check_valid(valid, shape) -> np.ndarray:
    valid = np.asarray(valid)
    if valid.dtype != bool or valid.shape != shape:
        raise ValueError(f"valid must be a bool array of shape {shape}, got {valid.dtype} "
                         f"{valid.shape}")
    return valid


def _true_instance_map(true_mask, instances, boundary_width: int) -> np.ndarray:
    """Ground-truth instances: given polygon ids, or the instances of the true mask."""
    if instances is None:
        return building_instances(true_mask, boundary_width=boundary_width)
    instances = np.asarray(instances)
    if instances.shape != true_mask.shape:
        raise ValueError(f"true_instances must match the true mask's shape {true_mask.shape}, "
                         f"got {instances.shape}")
    if instances.min(initial=0) < 0:
        raise ValueError(f"true_instances must hold ids >= 0, got {instances.min()}")
    instances = np.where(np.isin(true_mask, BUILDING_CLASSES), instances, 0)
    # A leading 0 makes id 0 (no building) the first unique value, so it maps to label 0.
    _, dense = np.unique(np.concatenate([[0], instances.ravel()]), return_inverse=True)
    return dense[1:].reshape(instances.shape).astype("int32")


def counts_metrics(counts: TileCounts, *, polygons: bool = False) -> dict:
    """Metrics of summed counts: pixel metrics, ``building_*`` and optionally ``polygon_*``."""
    result = pixel_metrics(counts.confusion)
    prefixes = ("building", "polygon") if polygons else ("building",)
    for prefix, (tp, fp, fn) in zip(prefixes, (counts.building, counts.polygon)):
        result.update({f"{prefix}_{k}": v for k, v in detection_scores(tp, fp, fn).items()})
    result["tiles"] = int(counts.tiles)
    return result


def detection_scores(tp, fp, fn) -> dict:
    """``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``, ``f1 = 2TP / (2TP + FP + FN)``
    (0/0 = 1.0) and the counts, as Python numbers."""
    return {"precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn), "tp": int(tp), "fp": int(fp), "fn": int(fn)}


class MetricAccumulator:
    """Metrics accumulated one tile at a time, per AOI; memory holds counts only.

    Example::

        acc = MetricAccumulator(polygons=True)
        for tile_id, true_mask, probs in stream:
            acc.update(true_mask, probs, tile_id=tile_id)
        summary = acc.summarise()   # pooled keys, "per_aoi": {...}, "aoi_mean": {...}

    Args:
        polygons: also count the polygon (official) metric; costs polygon tracing per tile.
        boundary_width, min_area, iou_threshold, num_classes, ignore_index: see
            :func:`tile_counts`.
    """

    def __init__(self, *, polygons: bool = False,
                 boundary_width: int = DEFAULT_BOUNDARY_WIDTH, min_area: int = MIN_AREA,
                 iou_threshold: float = IOU_THRESHOLD, num_classes: int = NUM_CLASSES,
                 ignore_index: int = IGNORE_INDEX):
        self.options = dict(polygons=bool(polygons),
                            boundary_width=check_boundary_width(boundary_width),
                            min_area=check_min_area(min_area),
                            iou_threshold=_check_threshold(iou_threshold),
                            num_classes=int(num_classes), ignore_index=int(ignore_index))
        self.per_aoi: dict[str, TileCounts] = {}

    def update(self, true_mask, pred, *, tile_id: str | None = None, aoi: str | None = None,
               true_instances=None, valid=None, true_polygons=None) -> TileCounts:
        """Add one tile. ``aoi`` defaults to :func:`aoi_of` of ``tile_id``, else ``"all"``.

        Returns the tile's own counts.
        """
        if aoi is None:
            aoi = aoi_of(tile_id) if tile_id is not None else "all"
        counts = tile_counts(true_mask, pred, true_instances=true_instances, valid=valid,
                             true_polygons=true_polygons, **self.options)
        self.add(aoi, counts)
        return counts

    def add(self, aoi: str, counts: TileCounts) -> None:
        """Add counts computed elsewhere (e.g. by :func:`tile_counts` in another process)."""
        self.per_aoi[aoi] = self.per_aoi[aoi] + counts if aoi in self.per_aoi else counts

    def merge(self, other: "MetricAccumulator") -> None:
        """Add every AOI's counts of another accumulator."""
        for aoi, counts in other.per_aoi.items():
            self.add(aoi, counts)

    def summarise(self) -> dict:
        """``{pooled metrics..., "per_aoi": {aoi: metrics}, "aoi_mean": metrics}``.

        ``aoi_mean`` averages every ratio over the AOIs (counts are summed); with polygon metrics
        on, ``aoi_mean["polygon_f1"]`` is the SpaceNet challenge score.
        """
        if not self.per_aoi:
            raise ValueError("no tile was added to the MetricAccumulator")
        polygons = self.options["polygons"]
        per_aoi = {aoi: counts_metrics(c, polygons=polygons)
                   for aoi, c in sorted(self.per_aoi.items())}
        pooled = counts_metrics(sum(self.per_aoi.values(), _zero(self.options["num_classes"])),
                                polygons=polygons)
        aoi_mean = {key: (float(np.mean([m[key] for m in per_aoi.values()]))
                          if isinstance(value, float)
                          else int(sum(m[key] for m in per_aoi.values())))
                    for key, value in pooled.items()}
        return {**pooled, "per_aoi": per_aoi, "aoi_mean": aoi_mean}


def _zero(num_classes: int) -> TileCounts:
    return TileCounts(np.zeros((num_classes, num_classes), np.int64))


def _check_threshold(iou_threshold) -> float:
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)) \
            or not 0 <= iou_threshold < 1:
        raise ValueError(f"iou_threshold must be a float in [0, 1), got {iou_threshold!r}")
    return float(iou_threshold)


def segmentation_metrics(true_masks, pred_masks, *, true_instances=None, tile_ids=None,
                         valid=None, polygons: bool = False,
                         boundary_width: int = DEFAULT_BOUNDARY_WIDTH,
                         min_area: int = MIN_AREA, iou_threshold: float = IOU_THRESHOLD,
                         num_classes: int = NUM_CLASSES,
                         ignore_index: int = IGNORE_INDEX) -> dict:
    """All metrics of the assignment over a list of tiles held in memory.

    For a stream of tiles use :class:`MetricAccumulator`, which this wraps.

    Args:
        true_masks: ground-truth masks, one ``(H_i, W_i)`` integer array per tile (sizes may differ),
            values in {0, 1, 2} or ``ignore_index``; or one mask or a stack ``(N, H, W)``.
        pred_masks: predicted masks of the same shapes, values in {0, 1, 2}.
        true_instances: None, or one int label map per tile (0 = no building, other values =
            polygon ids) giving the ground-truth buildings; None takes
            :func:`building_instances` of the true masks.
        tile_ids: optional tile ids (e.g. ``AOI_2_Vegas_img1``) giving each tile's AOI; then
            ``per_aoi`` and ``aoi_mean`` are returned as well.
        valid: None, or one bool ``(H_i, W_i)`` per tile (False = no data, not scored).
        polygons: also compute the ``polygon_*`` metrics (official rules on traced polygons).
        boundary_width: boundary thickness of the masks.
        min_area: the 20-pixel rule (truth ``>= min_area``, predictions ``> min_area``).
        iou_threshold: a match needs IoU strictly above it.
        num_classes: K.
        ignore_index: true label of unlabelled pixels, excluded everywhere.

    Returns:
        Dictionary of Python floats: ``pixel_accuracy``, ``iou_background``, ``iou_building``
        (interior class), ``iou_boundary``, ``mean_iou``, ``iou_footprint``,
        ``building_precision``, ``building_recall``, ``building_f1``; ints ``building_tp``,
        ``building_fp``, ``building_fn``, ``tiles``; the ``polygon_*`` ones with ``polygons``.
    """
    truths, preds = as_mask_list(true_masks, "true_masks"), as_mask_list(pred_masks, "pred_masks")
    instances = _per_tile(true_instances, truths, preds, "true_instances")
    valids = _per_tile(valid, truths, preds, "valid", masks=False)
    if tile_ids is not None and len(list(tile_ids)) != len(truths):
        raise ValueError(f"tile_ids must have one id per tile ({len(truths)}), got "
                         f"{len(list(tile_ids))}")
    accumulator = MetricAccumulator(polygons=polygons, boundary_width=boundary_width,
                                    min_area=min_area, iou_threshold=iou_threshold,
                                    num_classes=num_classes, ignore_index=ignore_index)
    ids = list(tile_ids) if tile_ids is not None else [None] * len(truths)
    for truth, pred, inst, ok, tile_id in zip(truths, preds, instances, valids, ids):
        accumulator.update(truth, pred, tile_id=tile_id, true_instances=inst, valid=ok)
    summary = accumulator.summarise()
    if tile_ids is None:
        del summary["per_aoi"], summary["aoi_mean"]
    return summary


def _per_tile(values, truths, preds, name: str, masks: bool = True) -> list:
    if len(truths) != len(preds):
        raise ValueError(f"true_masks and pred_masks must have the same length, got "
                         f"{len(truths)} and {len(preds)}")
    for i, (truth, pred) in enumerate(zip(truths, preds)):
        if truth.shape != pred.shape:
            raise ValueError(f"true_masks[{i}] and pred_masks[{i}] differ in shape: "
                             f"{truth.shape} and {pred.shape}")
    if values is None:
        return [None] * len(truths)
    if masks:
        values = as_mask_list(values, name)
    else:
        values = [values] if isinstance(values, np.ndarray) and values.ndim == 2 else list(values)
    if len(values) != len(truths):
        raise ValueError(f"{name} must have one map per tile ({len(truths)}), got {len(values)}")
    return values


__all__ = ["BUILDING_CLASSES", "MetricAccumulator", "TileCounts", "aoi_of", "as_mask_list",
           "building_instances", "confusion_matrix", "counts_metrics", "detection_scores",
           "match_instances",
           "pixel_metrics", "segmentation_metrics", "tile_counts"]
