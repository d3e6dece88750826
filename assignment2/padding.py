"""The one pad/crop helper: tiles of any size through a network whose stride divides H and W.

A U-Net of depth d halves the feature map d times, so its input side must be a multiple of
``2 ** d`` (the *stride*). A SpaceNet 2 tile has 650 px, not a multiple of 16; every mode
(training on whole tiles, validation, test-time augmentation, prediction) therefore pads the
tile at the bottom and the right to ``H' = ceil(H / m) * m`` and crops the output back to ``H``:

- images are padded by **reflection** (``np.pad`` mode ``"reflect"``, repeated when the pad is
  longer than the image): the border keeps the statistics of the tile instead of adding a black
  frame the network never saw;
- masks are padded with :data:`assignment2.IGNORE_INDEX`, so the added pixels are neither trained
  nor scored.

Repeated reflection is index arithmetic: padded index ``i`` reads source index
``r(i) = j if j < n else 2 (n - 1) - j`` with ``j = i mod 2 (n - 1)`` (``r(i) = 0`` when ``n = 1``).
The same formula runs on numpy arrays (``np.take``) and inside ``tf.data`` / ``tf.function``
(``tf.gather``), so one definition serves every caller.
"""

from __future__ import annotations

import numpy as np

from assignment2 import IGNORE_INDEX

__all__ = ["crop_mask_to", "crop_to", "pad_image", "pad_mask", "pad_to_at_least", "padded_size"]


def _check_multiple(multiple) -> int:
    if isinstance(multiple, bool) or not isinstance(multiple, (int, np.integer)) or multiple < 1:
        raise ValueError(f"multiple must be an int >= 1, got {multiple!r}")
    return int(multiple)


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """``(ceil(H / m) * m, ceil(W / m) * m)``: the smallest size the network accepts."""
    multiple = _check_multiple(multiple)
    return -(-int(height) // multiple) * multiple, -(-int(width) // multiple) * multiple


def _is_tensor(x) -> bool:
    import sys

    tf = sys.modules.get("tensorflow")
    return tf is not None and tf.is_tensor(x)


def _reflect_indices(n, total, xp):
    """Source indices ``r(0..total-1)`` of a repeated reflection of a length-``n`` axis."""
    i = xp.range(total) if xp is not np else np.arange(total)
    period = xp.maximum(2 * (n - 1), 1)
    j = i % period
    return xp.where(j < n, j, period - j)


def _target(shape_hw, multiple, size, name):
    height, width = shape_hw
    if size is None:
        return padded_size(height, width, multiple)
    target = (int(size[0]), int(size[1]))
    multiple = _check_multiple(multiple)
    if target[0] < height or target[1] < width or target[0] % multiple or target[1] % multiple:
        raise ValueError(f"size must be >= ({height}, {width}) and a multiple of {multiple} for "
                         f"the {name}, got {size!r}")
    return target


def pad_image(image, multiple: int, *, size: tuple[int, int] | None = None):
    """Reflect-pad the bottom and right of ``(..., H, W, C)`` to a multiple of ``multiple``.

    Args:
        image: numpy array or tensor ``(H, W, C)`` or ``(N, H, W, C)`` (any dtype).
        multiple: the network stride ``2 ** depth``.
        size: pad to this ``(H', W')`` instead (each >= H, W and a multiple of ``multiple``),
            e.g. a square for the 90-degree rotations of test-time augmentation.

    Returns:
        The padded array (numpy in, numpy out; tensor in, tensor out); crop back with
        :func:`crop_to`. Rows ``H..H'-1`` mirror rows ``H-2, H-3, ...`` (repeatedly).
    """
    if _is_tensor(image):
        return _pad_image_tf(image, multiple, size)
    image = np.asarray(image)
    if image.ndim < 3 or 0 in image.shape[-3:-1]:
        raise ValueError(f"image must be a non-empty (..., H, W, C) array, got shape {image.shape}")
    height, width = image.shape[-3:-1]
    target = _target((height, width), multiple, size, "image")
    if target == (height, width):
        return image
    rows = _reflect_indices(height, target[0], np)
    cols = _reflect_indices(width, target[1], np)
    return np.take(np.take(image, rows, axis=-3), cols, axis=-2)


def _hw(x, channel_axes: int):
    """H and W of a tensor: Python ints when static (padded shapes stay static), else tensors."""
    import tensorflow as tf

    static, dynamic = x.shape[-channel_axes:], tf.shape(x)[-channel_axes:]
    return tuple(static[i] if static[i] is not None else dynamic[i] for i in (0, 1))


def _tf_target(height, width, multiple, size):
    multiple = _check_multiple(multiple)
    if size is not None:
        return int(size[0]), int(size[1])
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def _pad_image_tf(image, multiple, size):
    import tensorflow as tf

    height, width = _hw(image, 3)
    target = _tf_target(height, width, multiple, size)
    rows = _reflect_indices(height, target[0], tf)
    cols = _reflect_indices(width, target[1], tf)
    rank = image.shape.rank
    return tf.gather(tf.gather(image, rows, axis=rank - 3), cols, axis=rank - 2)


def pad_mask(mask, multiple: int, *, size: tuple[int, int] | None = None,
             fill: int = IGNORE_INDEX):
    """Pad the bottom and right of ``(..., H, W)`` masks with ``fill`` (default IGNORE_INDEX).

    Args:
        mask: numpy array or tensor ``(H, W)`` or ``(N, H, W)`` of integers.
        multiple: the network stride.
        size: pad to this ``(H', W')`` instead (as in :func:`pad_image`).
        fill: value of the added pixels; the default makes the loss and the metrics skip them.

    Returns:
        The padded mask (numpy in, numpy out; tensor in, tensor out), same dtype.
    """
    if _is_tensor(mask):
        import tensorflow as tf

        height, width = _hw(mask, 2)
        target = _tf_target(height, width, multiple, size)
        rank = mask.shape.rank
        paddings = [[0, 0]] * (rank - 2) + [[0, target[0] - height], [0, target[1] - width]]
        return tf.pad(mask, paddings, constant_values=tf.cast(fill, mask.dtype))
    mask = np.asarray(mask)
    if mask.ndim < 2 or 0 in mask.shape[-2:]:
        raise ValueError(f"mask must be a non-empty (..., H, W) array, got shape {mask.shape}")
    height, width = mask.shape[-2:]
    target = _target((height, width), multiple, size, "mask")
    pads = [(0, 0)] * (mask.ndim - 2) + [(0, target[0] - height), (0, target[1] - width)]
    return np.pad(mask, pads, constant_values=fill)


def pad_to_at_least(image, mask, size):
    """Pad a tile and its mask at the bottom and right to at least ``size`` (inside ``tf.data``).

    For a random crop larger than its tile: the same rules as :func:`pad_image` and
    :func:`pad_mask` (image by repeated reflection, mask with ``IGNORE_INDEX``), for shapes and a
    size known only when the graph runs.

    Args:
        image: tensor ``(H, W, C)``; mask: tensor ``(H, W)``.
        size: int32 tensor ``[2]``, the smallest ``(h, w)`` wanted.

    Returns:
        ``(image (max(H, h), max(W, w), C), mask (max(H, h), max(W, w)))``.
    """
    import tensorflow as tf

    shape = tf.shape(image)[:2]
    target = tf.maximum(shape, size)
    rows = _reflect_indices(shape[0], target[0], tf)
    cols = _reflect_indices(shape[1], target[1], tf)
    image = tf.gather(tf.gather(image, rows, axis=0), cols, axis=1)
    missing = target - shape
    mask = tf.pad(mask, [[0, missing[0]], [0, missing[1]]],
                  constant_values=tf.cast(IGNORE_INDEX, mask.dtype))
    return image, mask


def crop_to(x, height: int, width: int):
    """``x[..., :height, :width, :]``: a padded image or probability map back to its tile size."""
    return x[..., :height, :width, :]


def crop_mask_to(mask, height: int, width: int):
    """``mask[..., :height, :width]``: a padded mask back to its tile size."""
    return mask[..., :height, :width]
