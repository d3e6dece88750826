"""Test-time augmentation: predictions on full tiles of any size, averaged over augmented views.

For an image x, views ``T_v(x)`` (the 8 symmetries of the square: 4 rotations by 90 degrees, each
with or without a horizontal flip, optionally at several scales) go through the network ``f`` and
each output is mapped back by the exact inverse of its transform:

    ``P(x) = 1/V * sum_v T_v^{-1}( f(T_v(x)) )``

The lecture's Assignment 2: "When calculating predictions for the validation set, average a few
augmented versions of an image, store the averaged predictions." Rotations by 90 degrees and flips
permute pixels, so their inverses are exact; the average of softmax outputs is again a probability
map.

The U-Net needs H and W divisible by its stride, so tiles are reflect-padded at the bottom and the
right, predicted, and the prediction cropped back, by the one pad/crop helper of every mode
(:mod:`assignment2.padding`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from assignment2.padding import crop_to, pad_image


# tf.image.rot90, not keras.ops.rot90: in Keras 3.15 (TensorFlow backend) the latter returns a
# wrong array for k=2 on non-square images ([[1, 2, 3], [4, 5, 6]] -> [[2, 4, 6], [1, 3, 5]]).
def _dihedral(x, rotations: int, flip: bool):
    """Flip along W (optionally), then rotate by ``rotations`` * 90 degrees in the (H, W) plane."""
    if flip:
        x = tf.reverse(x, axis=[2])
    return tf.image.rot90(x, k=rotations % 4)


def _dihedral_inverse(x, rotations: int, flip: bool):
    x = tf.image.rot90(x, k=-rotations % 4)
    return tf.reverse(x, axis=[2]) if flip else x


def dihedral_transforms() -> list[tuple]:
    """The 8 symmetries of the square (the dihedral group D4) as ``(forward, inverse)`` pairs.

    ``forward(x) = rot90^k(flip^f(x))`` for k in 0..3 and f in {no, yes}, where ``flip`` reverses
    the W axis and ``rot90`` rotates counter-clockwise in the (H, W) plane (as ``np.rot90``);
    ``inverse(y) = flip^f(rot90^{-k}(y))`` so ``inverse(forward(x)) == x`` exactly. The first pair
    is the identity.

    Both functions take and return NHWC arrays or tensors ``(N, H, W, C)`` (any dtype); rotations
    by 90 or 270 degrees swap H and W. They return ``tf.Tensor`` (use ``np.asarray``).
    """
    return [
        (functools.partial(_dihedral, rotations=k, flip=f),
         functools.partial(_dihedral_inverse, rotations=k, flip=f))
        for f in (False, True) for k in range(4)
    ]


def _check_multiple(multiple) -> int:
    if isinstance(multiple, bool) or not isinstance(multiple, (int, np.integer)) or multiple < 1:
        raise ValueError(f"multiple must be an int >= 1, got {multiple!r}")
    return int(multiple)


def _images_nhwc(images, name: str = "images") -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or 0 in images.shape:
        raise ValueError(f"{name} must be a non-empty (N, H, W, C) array, got shape {images.shape}")
    return images.astype("float32", copy=False)


def _round_up(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def _predict_batch(model, batch: np.ndarray) -> np.ndarray:
    """Probabilities of one batch as float32 numpy; Keras models run compiled in inference mode.

    ``predict_on_batch`` uses the model's own cached ``tf.function`` (``reduce_retracing``), so
    repeated shapes do not retrace; any other callable is called as ``model(batch)``.
    """
    if isinstance(model, keras.Model):
        out = model.predict_on_batch(batch)
    else:
        out = model(tf.convert_to_tensor(batch))
    return np.asarray(out, dtype="float32")


def predict_probs(model, images, *, multiple: int = 16, batch_size: int = 8) -> np.ndarray:
    """Plain prediction of full tiles of any size: pad, predict in batches, crop.

    Args:
        model: a ``keras.Model`` or callable mapping ``(B, H', W', C)`` float32 to probabilities
            ``(B, H', W', K)``.
        images: float32 ``(N, H, W, C)``, any H and W.
        multiple: the network stride (``network_stride(model)``).
        batch_size: tiles per forward pass.

    Returns:
        float32 ``(N, H, W, K)`` probabilities.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    images = _images_nhwc(images)
    height, width = images.shape[1:3]
    padded = pad_image(images, _check_multiple(multiple))
    outputs = [_predict_batch(model, padded[i:i + batch_size])
               for i in range(0, len(padded), batch_size)]
    return crop_to(np.concatenate(outputs), height, width)


def _resolve_transforms(transforms) -> list[tuple]:
    if isinstance(transforms, str):
        if transforms == "d4":
            return dihedral_transforms()
        if transforms == "flips":  # identity and the horizontal flip: no change of shape
            pairs = dihedral_transforms()
            return [pairs[0], pairs[4]]
        raise ValueError(f"transforms must be 'd4', 'flips', 'none' or a list of "
                         f"(forward, inverse) pairs, got {transforms!r}")
    pairs = list(transforms)
    if not pairs or not all(len(p) == 2 and callable(p[0]) and callable(p[1]) for p in pairs):
        raise ValueError(f"transforms must be a non-empty list of (forward, inverse) pairs, "
                         f"got {transforms!r}")
    return pairs


def _check_scales(scales) -> tuple[float, ...]:
    try:
        values = tuple(float(s) for s in scales)
    except (TypeError, ValueError):
        raise ValueError(f"scales must be a sequence of positive floats, got {scales!r}") from None
    if not values or not all(np.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"scales must be a non-empty sequence of positive floats, got {scales!r}")
    return values


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``(N, H, W, C)`` (identity when the size is unchanged)."""
    if tuple(array.shape[1:3]) == tuple(size):
        return array
    return np.asarray(tf.image.resize(array, size, method="bilinear"), dtype="float32")


def _predict_views(model, image: np.ndarray, pairs: Sequence[tuple], multiple: int):
    """Sum over the views of ``inverse(f(forward(x)))`` for one ``(1, h, w, C)`` image.

    The image is padded to a square side (a multiple of ``multiple``) so that all views, rotated
    or not, have one shape and go through the model as one batch.
    """
    height, width = image.shape[1:3]
    side = _round_up(max(height, width), multiple)
    padded = pad_image(image, multiple, size=(side, side))
    views = np.concatenate([np.asarray(forward(padded)) for forward, _ in pairs])
    probs = _predict_batch(model, views)
    restored = [np.asarray(inverse(probs[i:i + 1])) for i, (_, inverse) in enumerate(pairs)]
    return crop_to(np.sum(restored, axis=0), height, width)


def predict_tta(model, image, *, transforms="d4", scales: Sequence[float] = (1.0,),
                multiple: int = 16) -> np.ndarray:
    """Probabilities of one tile averaged over augmented views, each mapped back exactly.

    ``P(x) = 1/(|S| |T|) sum_{s in S} sum_{t in T} R_{H,W}( t^{-1}( f( t( R_s(x) ) ) ) )`` where
    ``R_s`` resizes bilinearly by the scale s (``round(s*H), round(s*W)``) and ``R_{H,W}``
    resizes the probabilities back (bilinear interpolation keeps them summing to 1). For each
    scale, all views of the tile go through the model as ONE batch; the tile is reflect-padded
    to a square whose side is a multiple of ``multiple`` and the outputs are cropped back.

    Args:
        model: a ``keras.Model`` or callable mapping ``(B, H', W', C)`` to probabilities.
        image: float32 ``(H, W, C)``, any H and W.
        transforms: "d4" (the 8 flips and rotations of :func:`dihedral_transforms`), "flips"
            (identity and horizontal flip), "none" (plain :func:`predict_probs`, no other view),
            or a list of ``(forward, inverse)`` pairs on NHWC arrays.
        scales: positive resize factors, 1.0 is the tile itself.
        multiple: the network stride.

    Returns:
        float32 ``(H, W, K)`` probabilities.
    """
    image = np.asarray(image)
    if image.ndim != 3 or 0 in image.shape:
        raise ValueError(f"image must be a non-empty (H, W, C) array, got shape {image.shape}")
    multiple = _check_multiple(multiple)
    scales = _check_scales(scales)
    batch = image[None].astype("float32", copy=False)
    if isinstance(transforms, str) and transforms == "none" and scales == (1.0,):
        return predict_probs(model, batch, multiple=multiple, batch_size=1)[0]
    pairs = [_resolve_transforms("d4")[0]] if transforms == "none" \
        else _resolve_transforms(transforms)
    height, width = image.shape[:2]
    total = 0.0
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        summed = _predict_views(model, _resize(batch, size), pairs, multiple)
        total = total + _resize(summed, (height, width))
    return (total / (len(scales) * len(pairs)))[0].astype("float32")
