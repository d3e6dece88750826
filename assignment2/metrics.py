"""Segmentation metrics: pixel accuracy, per-class IoU and the SpaceNet building F1.

Pixel metrics come from one confusion matrix accumulated over all pixels of all tiles:
``IoU_c = TP_c / (TP_c + FP_c + FN_c)``, ``pixel_accuracy = trace(C) / sum(C)``.

The building F1 is the SpaceNet metric (Van Etten, Lindenbaum and Bacastow, "SpaceNet: A Remote
Sensing Dataset and Challenge Series", arXiv:1807.01232): building instances are the connected
components (4-connectivity) of the building mask, interior and boundary together; instances under
``min_area`` pixels are dropped on both sides; a prediction and a ground-truth building match when
their IoU is >= 0.5, one to one, greedily in order of decreasing IoU;
``F1 = 2 TP / (2 TP + FP + FN)`` with TP, FP and FN summed over the tiles.

Empty cases: a ratio whose denominator is 0 (a class absent from truth and prediction, no building
on either side, no labelled pixel) is 1.0, "nothing to find and nothing found", so every value is
a finite Python float and the dictionary is valid JSON.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from assignment2 import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES

#: Mask values that belong to a building footprint (interior and boundary).
BUILDING_CLASSES = (1, 2)
#: 4-connectivity: pixels touching only at a corner are separate instances.
CONNECTIVITY = ndimage.generate_binary_structure(2, 1)


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
    return result


def building_instances(mask, *, min_area: int = 20) -> np.ndarray:
    """Building instances of a 3-class mask: connected components of ``mask in {1, 2}``.

    4-connectivity; components with fewer than ``min_area`` pixels are removed, and the others
    are numbered 1..n in raster order of their first pixel.

    Args:
        mask: integer ``(H, W)``, 0 background, 1 building, 2 boundary (other values count as
            background, e.g. 255).
        min_area: smallest kept instance, in pixels.

    Returns:
        int32 label map ``(H, W)``, 0 outside instances.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    min_area = _check_min_area(min_area)
    labels, _ = ndimage.label(np.isin(mask, BUILDING_CLASSES), structure=CONNECTIVITY)
    return _drop_small(labels, min_area)


def _check_min_area(min_area) -> int:
    if isinstance(min_area, bool) or not isinstance(min_area, (int, np.integer)) or min_area < 0:
        raise ValueError(f"min_area must be an int >= 0, got {min_area!r}")
    return int(min_area)


def _drop_small(labels: np.ndarray, min_area: int) -> np.ndarray:
    """Zero the instances of ``labels`` smaller than ``min_area`` and renumber the rest 1..n."""
    ids, first, areas = np.unique(labels.ravel(), return_index=True, return_counts=True)
    keep = (ids != 0) & (areas >= min_area)
    kept_ids = ids[keep][np.argsort(first[keep], kind="stable")]
    lookup = np.zeros(int(labels.max()) + 1 if labels.size else 1, dtype="int32")
    lookup[kept_ids] = np.arange(1, kept_ids.size + 1, dtype="int32")
    return lookup[labels]


def match_instances(true_labels: np.ndarray, pred_labels: np.ndarray, *,
                    iou_threshold: float = 0.5) -> tuple[int, int, int]:
    """One-to-one greedy matching of two instance label maps; returns ``(TP, FP, FN)``.

    All pairs with ``IoU >= iou_threshold`` are visited in order of decreasing IoU (ties: lower
    prediction id, then lower truth id); a pair matches when neither side is matched yet.

    Args:
        true_labels, pred_labels: int label maps ``(H, W)`` numbered 1..n (0 = none).
    """
    n_true, n_pred = int(true_labels.max(initial=0)), int(pred_labels.max(initial=0))
    pairs = pred_labels.astype("int64").ravel() * (n_true + 1) + true_labels.ravel()
    inter = np.bincount(pairs, minlength=(n_pred + 1) * (n_true + 1)).reshape(n_pred + 1, -1)
    pred_area, true_area = inter.sum(axis=1)[1:], inter.sum(axis=0)[1:]
    inter = inter[1:, 1:]
    iou = inter / np.maximum(pred_area[:, None] + true_area[None, :] - inter, 1)
    candidates = np.argwhere(iou >= iou_threshold)
    order = np.argsort(-iou[candidates[:, 0], candidates[:, 1]], kind="stable")
    matched_pred, matched_true, tp = set(), set(), 0
    for p, t in candidates[order]:
        if p not in matched_pred and t not in matched_true:
            matched_pred.add(p)
            matched_true.add(t)
            tp += 1
    return tp, n_pred - tp, n_true - tp


def _true_instance_map(true_mask, instances, min_area: int) -> np.ndarray:
    """Ground-truth instances: given polygon ids, or the components of the true building mask."""
    if instances is None:
        return building_instances(true_mask, min_area=min_area)
    instances = np.asarray(instances)
    if instances.shape != true_mask.shape:
        raise ValueError(f"true_instances must match the true mask's shape {true_mask.shape}, "
                         f"got {instances.shape}")
    if instances.min(initial=0) < 0:
        raise ValueError(f"true_instances must hold ids >= 0, got {instances.min()}")
    # A leading 0 makes id 0 (no building) the first unique value, so it maps to label 0.
    _, dense = np.unique(np.concatenate([[0], instances.ravel()]), return_inverse=True)
    return _drop_small(dense[1:].reshape(instances.shape).astype("int32"), min_area)


def building_counts(true_mask, pred_mask, *, true_instances=None, min_area: int = 20,
                    iou_threshold: float = 0.5,
                    ignore_index: int = IGNORE_INDEX) -> tuple[int, int, int]:
    """``(TP, FP, FN)`` of the SpaceNet matching on one tile (see the module docstring).

    Predicted building pixels on unlabelled pixels (``true_mask == ignore_index``) are dropped
    before the components are taken.
    """
    pred_mask = np.where(true_mask == ignore_index, 0, pred_mask)
    truth = _true_instance_map(true_mask, true_instances, min_area)
    pred = building_instances(pred_mask, min_area=min_area)
    return match_instances(truth, pred, iou_threshold=iou_threshold)


def segmentation_metrics(true_masks, pred_masks, *, true_instances=None, min_area: int = 20,
                         iou_threshold: float = 0.5, num_classes: int = NUM_CLASSES,
                         ignore_index: int = IGNORE_INDEX) -> dict:
    """All metrics of the assignment over a list of tiles.

    Args:
        true_masks: ground-truth masks, one ``(H_i, W_i)`` integer array per tile (sizes may differ),
            values in {0, 1, 2} or ``ignore_index``; or one mask or a stack ``(N, H, W)``.
        pred_masks: predicted masks of the same shapes, values in {0, 1, 2}.
        true_instances: None, or one int label map per tile (0 = no building, other values =
            polygon ids) giving the ground-truth buildings; None takes the connected components of
            the true building mask (touching buildings then merge).
        min_area: instances with fewer pixels are ignored on both sides.
        iou_threshold: smallest IoU of a matching pair.
        num_classes: K.
        ignore_index: true label of unlabelled pixels, excluded everywhere.

    Returns:
        Dictionary of Python floats: ``pixel_accuracy``, ``iou_background``, ``iou_building``,
        ``iou_boundary``, ``mean_iou``, ``building_precision``, ``building_recall``,
        ``building_f1``; and ints ``building_tp``, ``building_fp``, ``building_fn``.
    """
    truths, preds = as_mask_list(true_masks, "true_masks"), as_mask_list(pred_masks, "pred_masks")
    instances = _check_pairs(truths, preds, true_instances)
    min_area = _check_min_area(min_area)
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)) \
            or not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be a float in (0, 1], got {iou_threshold!r}")
    confusion = np.zeros((num_classes, num_classes), dtype="int64")
    tp = fp = fn = 0
    for truth, pred, inst in zip(truths, preds, instances):
        confusion += confusion_matrix(truth, pred, num_classes=num_classes,
                                      ignore_index=ignore_index)
        t, f, n = building_counts(truth, pred, true_instances=inst, min_area=min_area,
                                  iou_threshold=iou_threshold, ignore_index=ignore_index)
        tp, fp, fn = tp + t, fp + f, fn + n
    result = pixel_metrics(confusion)
    result.update(building_precision=_ratio(tp, tp + fp), building_recall=_ratio(tp, tp + fn),
                  building_f1=_ratio(2 * tp, 2 * tp + fp + fn),
                  building_tp=int(tp), building_fp=int(fp), building_fn=int(fn))
    return result


def _check_pairs(truths, preds, true_instances) -> list:
    if len(truths) != len(preds):
        raise ValueError(f"true_masks and pred_masks must have the same length, got "
                         f"{len(truths)} and {len(preds)}")
    for i, (truth, pred) in enumerate(zip(truths, preds)):
        if truth.shape != pred.shape:
            raise ValueError(f"true_masks[{i}] and pred_masks[{i}] differ in shape: "
                             f"{truth.shape} and {pred.shape}")
    if true_instances is None:
        return [None] * len(truths)
    instances = as_mask_list(true_instances, "true_instances")
    if len(instances) != len(truths):
        raise ValueError(f"true_instances must have one map per tile ({len(truths)}), got "
                         f"{len(instances)}")
    return instances
