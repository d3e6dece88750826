"""Deletion and insertion curves (Petsiuk, Das & Saenko 2018, "RISE: Randomized Input Sampling
for Explanation of Black-box Models"): does the map rank the pixels the model relies on first?"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from visualization._model import as_image_batch, class_scores, compiled_for, logits_model
from visualization.ascent import check_int
from visualization.attribution import resolve_classes
from visualization.integrated_gradients import baseline_batch

SCORES = ("probability", "logit")


@dataclasses.dataclass(frozen=True)
class FaithfulnessCurves:
    """Class score as pixels are removed (deletion) or added (insertion) in the map's order.

    Attributes:
        fractions: ``(T + 1,)`` fraction of pixels changed, from 0 to 1.
        deletion: ``(N, T + 1)`` score with the top ``fractions[t]`` pixels set to the deletion
            baseline (lower area = more faithful).
        insertion: ``(N, T + 1)`` score of the insertion baseline with the top pixels of the
            image put back (higher area = more faithful).
        deletion_auc: ``(N,)`` area under the deletion curve (trapezoid rule on [0, 1]).
        insertion_auc: ``(N,)`` area under the insertion curve.
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: np.ndarray
    insertion_auc: np.ndarray


def pixel_ranks(maps, seed: int = 0) -> np.ndarray:
    """Rank of each pixel, 0 for the largest map value; ties broken by a seeded random order.

    Args:
        maps: ``(N, H, W)`` real values.
        seed: seed of the tie-breaking order (a constant map gives a random order).

    Returns:
        int32 ``(N, H, W)``, each image a permutation of ``0 .. H*W - 1``.
    """
    n = maps.shape[0]
    flat = maps.reshape(n, -1)
    ties = np.random.default_rng(seed).random(flat.shape)
    order = np.lexsort((ties, -flat), axis=-1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None].repeat(n, 0), axis=-1)
    return ranks.reshape(maps.shape).astype(np.int32)


def _check_maps(maps, x: tf.Tensor) -> np.ndarray:
    values = np.asarray(maps, dtype=np.float32)
    if values.ndim == 4 and values.shape[-1] == 1:
        values = values[..., 0]
    if values.shape != tuple(x.shape[:3]):
        raise ValueError(f"maps must be one (H, W) map per image, shape {tuple(x.shape[:3])}, got "
                         f"shape {np.shape(maps)}; reduce colour maps first, e.g. "
                         "maps.sum(-1) (signed) or np.abs(maps).max(-1)")
    if not np.all(np.isfinite(values)):
        raise ValueError("maps must be finite, got NaN or infinite values")
    return values


def deletion_insertion(model, images, maps, class_index=None, *, steps: int = 32,
                       deletion_baseline=0.0, insertion_baseline=0.0,
                       score: str = "probability", batch_size: int = 256, seed: int = 0,
                       preprocess=None) -> FaithfulnessCurves:
    """Deletion and insertion curves of saliency maps.

    Pixels are ordered by decreasing map value. At step ``t = 0..T`` the first
    ``k_t = round(t H W / T)`` pixels (all channels) are replaced by the deletion baseline
    (deletion) or copied from the image into the insertion baseline (insertion), and the class
    score is recorded: ``softmax(S)_c`` (``score="probability"``, as in the paper) or the logit
    ``S_c``. The ``2 N (T + 1)`` perturbed copies are built inside a compiled function,
    ``batch_size`` copies per model call. The paper deletes to black and inserts into a blurred
    copy: ``insertion_baseline=visualization.ascent.gaussian_blur(images, 5.0)``.

    Args:
        model: Keras model or callable to scores (a final softmax is skipped).
        images: ``(N, H, W, C)`` in the model's raw input range.
        maps: ``(N, H, W)`` (or ``(N, H, W, 1)``) attribution maps, larger = more important.
        class_index: ``None`` (predicted on the image), an int, or one per example.
        steps: ``T >= 1``.
        deletion_baseline, insertion_baseline: a number, an ``(H, W, C)`` image, or one per
            example.
        score: ``"probability"`` or ``"logit"``.
        batch_size: copies per model call, ``>= 1``.
        seed: order of pixels with equal map values.
        preprocess: applied before the model (``visualization._model.resolve_preprocess``).

    Returns:
        :class:`FaithfulnessCurves`.
    """
    x = as_image_batch(images, model)
    check_int("steps", steps, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    check_int("seed", seed, minimum=0)
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    ranks = tf.constant(pixel_ranks(_check_maps(maps, x), seed))
    removed = np.round(np.arange(steps + 1) * (ranks.shape[1] * ranks.shape[2]) / steps)
    bases = (baseline_batch(deletion_baseline, x, "deletion_baseline"),
             baseline_batch(insertion_baseline, x, "insertion_baseline"))
    classes = resolve_classes(model, x, class_index, preprocess=preprocess)
    curves = _curves(model, x, bases, ranks, classes, removed.astype(np.int32), score,
                     batch_size, preprocess)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    deletion, insertion = (c.reshape(len(x), steps + 1) for c in curves)
    return FaithfulnessCurves(fractions, deletion, insertion,
                              np.trapezoid(deletion, fractions, axis=1),
                              np.trapezoid(insertion, fractions, axis=1))


def _curves(model, x, bases, ranks, classes, removed, score, batch_size, preprocess):
    """Scores of every ``(image, step)`` copy, ``batch_size`` copies per compiled call."""
    n, t = int(x.shape[0]), len(removed)
    image_idx, step_idx = (a.ravel().astype(np.int32) for a in
                           np.meshgrid(np.arange(n), np.arange(t), indexing="ij"))
    compiled = compiled_for(model, _perturbed_scores_body, score, preprocess)
    counts = removed[step_idx]
    out = [compiled(x, *bases, ranks, classes, image_idx[s:s + batch_size],
                    counts[s:s + batch_size]) for s in range(0, image_idx.size, batch_size)]
    return (np.concatenate([o[0].numpy() for o in out]),
            np.concatenate([o[1].numpy() for o in out]))


def _perturbed_scores_body(model, score: str, preprocess) -> Callable:
    """Compiled ``(x, del_base, ins_base, ranks, classes, image_idx, counts) -> (B,), (B,)``."""
    logits_fn = logits_model(model, preprocess=preprocess)

    def class_score(batch, classes):
        logits = logits_fn(batch)
        values = tf.nn.softmax(logits, axis=-1) if score == "probability" else logits
        return class_scores(values, classes)

    def body(images, deletion_base, insertion_base, ranks, classes, image_idx, counts):
        top = (tf.gather(ranks, image_idx) < counts[:, None, None])[..., None]
        originals = tf.gather(images, image_idx)
        deleted = tf.where(top, tf.gather(deletion_base, image_idx), originals)
        inserted = tf.where(top, originals, tf.gather(insertion_base, image_idx))
        chosen = tf.gather(classes, image_idx)
        return class_score(deleted, chosen), class_score(inserted, chosen)

    return body
