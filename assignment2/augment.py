"""Joint augmentation of an image and its mask in TensorFlow ops (usable inside ``Dataset.map``).

Assignment 2 asks for "data augmentation (rotation, cropping, flipping, scaling)". Every transform
here moves the image and the mask with the *same* random parameters: the image is resampled
bilinearly, the mask with nearest neighbour so it keeps its class values. Pixels that a transform
brings in from outside the tile (the corners of a rotation, the padding of a crop larger than the
image) get mask value :data:`assignment2.IGNORE_INDEX` (255), so the loss and the metrics skip
them instead of learning "background" there. The image there is the tile mirrored at its edge
(rotation) or 0 (crop padding): a mirror keeps the batch-norm statistics of training crops close
to those of real tiles, where black corners would not, and its content carries no label.

Randomness is stateless: every random draw is a function of a ``seed`` tensor of shape ``[2]``
(``tf.random.stateless_*``), so the pipeline gives the same crops, angles and flips for the same
element seed on every run and after a resume.

Shapes: ``image`` is ``(H, W, C)`` float, ``mask`` is ``(H, W)`` integer (``uint8`` in training,
any integer dtype the resampling op supports, e.g. ``int32``, in tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf

from assignment2 import IGNORE_INDEX

__all__ = [
    "AugmentConfig",
    "augment",
    "flip",
    "random_crop",
    "rotate",
    "scale",
]


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations :func:`augment` applies, each switchable on its own.

    Attributes:
        rotate: rotate by an angle drawn uniformly from ``[-max_angle, max_angle]`` degrees.
        max_angle: largest rotation in degrees (180 covers every orientation).
        flip: flip left-right and up-down, each with probability 1/2.
        scale: resize by a factor drawn log-uniformly from ``scale_range``.
        scale_range: ``(smallest, largest)`` scale factor, both > 0.
        crop_size: side of the random square crop; ``None`` keeps the tile size (after scaling
            the image is cropped or padded back to it so batches keep one shape).
    """

    rotate: bool = True
    max_angle: float = 180.0
    flip: bool = True
    scale: bool = True
    scale_range: tuple[float, float] = (0.8, 1.25)
    crop_size: int | None = 128

    def __post_init__(self):
        if not isinstance(self.max_angle, (int, float)) or not 0 <= self.max_angle <= 180:
            raise ValueError(f"max_angle must be in [0, 180] degrees, got {self.max_angle!r}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range!r}")
        if self.crop_size is not None and (
            isinstance(self.crop_size, bool) or not isinstance(self.crop_size, int)
            or self.crop_size < 1
        ):
            raise ValueError(f"crop_size must be a positive int or None, got {self.crop_size!r}")

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation at all: whole tiles, as they are."""
        return cls(rotate=False, flip=False, scale=False, crop_size=None)


def _mask_3d(mask):
    """``(H, W)`` -> ``(H, W, 1)``: the image ops want a channel axis."""
    return tf.expand_dims(mask, -1)


def _rotation_transform(angle, height, width):
    """The 8 projective coefficients that map an OUTPUT pixel to the INPUT pixel it samples.

    Rotation by ``angle`` (radians, counter-clockwise on screen like ``np.rot90``) about the tile
    centre ``(cx, cy) = ((W - 1) / 2, (H - 1) / 2)``::

        x_in = cx + cos(a) (x - cx) - sin(a) (y - cy)
        y_in = cy + sin(a) (x - cx) + cos(a) (y - cy)
    """
    cx = (tf.cast(width, tf.float32) - 1.0) / 2.0
    cy = (tf.cast(height, tf.float32) - 1.0) / 2.0
    c, s = tf.cos(angle), tf.sin(angle)
    zero = tf.zeros_like(c)
    return tf.stack(
        [c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy, zero, zero]
    )[tf.newaxis]


def _transform(tensor, coefficients, interpolation, fill_value, fill_mode="CONSTANT"):
    """Resample one ``(H, W, C)`` tensor with ``ImageProjectiveTransformV3``, same output size."""
    size = tf.shape(tensor)[:2]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tensor[tf.newaxis],
        transforms=coefficients,
        output_shape=size,
        fill_value=tf.constant(fill_value, tf.float32),
        interpolation=interpolation,
        fill_mode=fill_mode,
    )[0]


def rotate(image, mask, angle):
    """Rotate image and mask together about the tile centre; the size stays ``(H, W)``.

    Args:
        image: ``(H, W, C)`` float image.
        mask: ``(H, W)`` integer mask.
        angle: rotation in radians (scalar), counter-clockwise; ``pi / 2`` equals ``np.rot90``
            on a square tile.

    Returns:
        ``(image, mask)``: the image resampled bilinearly (mirrored at the tile edge where the
        source lies outside the tile), the mask with nearest neighbour (``IGNORE_INDEX`` there).
    """
    angle = tf.cast(angle, tf.float32)
    shape = tf.shape(image)
    coefficients = _rotation_transform(angle, shape[0], shape[1])
    image = _transform(image, coefficients, "BILINEAR", 0.0, fill_mode="REFLECT")
    mask = _transform(_mask_3d(mask), coefficients, "NEAREST", float(IGNORE_INDEX))[..., 0]
    return image, mask


def scale(image, mask, factor):
    """Resize image (bilinear) and mask (nearest) by ``factor``: ``(H, W)`` -> ``round(f H, f W)``.

    Both use half-pixel centres, so a pixel's image value and mask label come from the same spot.
    """
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    size = tf.maximum(tf.cast(tf.round(shape * tf.cast(factor, tf.float32)), tf.int32), 1)
    resized = tf.image.resize(image, size, method="bilinear")
    mask = tf.image.resize(_mask_3d(mask), size, method="nearest")[..., 0]
    return tf.cast(resized, image.dtype), mask


def _pad_to_at_least(image, mask, size):
    """Pad both (centred) to at least ``size = (h, w)``: image with 0, mask with ``IGNORE_INDEX``."""
    missing = tf.maximum(size - tf.shape(image)[:2], 0)
    before = missing // 2
    paddings = tf.stack([before, missing - before], axis=1)
    image = tf.pad(image, tf.concat([paddings, [[0, 0]]], 0))
    mask = tf.pad(mask, paddings, constant_values=tf.cast(IGNORE_INDEX, mask.dtype))
    return image, mask


def _random_window(image, mask, size, seed):
    """The same random ``size = (h, w)`` window of image and mask, padding first if needed."""
    image, mask = _pad_to_at_least(image, mask, size)
    shape = tf.shape(image)[:2]
    room = tf.cast(shape - size + 1, tf.float32)
    offset = tf.cast(tf.floor(tf.random.stateless_uniform([2], seed) * room), tf.int32)
    top, left = tf.unstack(tf.minimum(offset, shape - size))
    return image[top:top + size[0], left:left + size[1]], mask[top:top + size[0], left:left + size[1]]


def random_crop(image, mask, size, seed):
    """Cut the same random ``size x size`` window from image and mask.

    A side shorter than ``size`` is first padded (image 0, mask ``IGNORE_INDEX``). The top-left
    corner is uniform over all valid positions, drawn from ``seed`` (shape ``[2]``).

    Returns:
        ``(image (size, size, C), mask (size, size))``.
    """
    size = tf.cast(size, tf.int32)
    return _random_window(image, mask, tf.stack([size, size]), seed)


def _maybe_reverse(image, mask, condition, axis):
    return tf.cond(
        condition,
        lambda: (tf.reverse(image, [axis]), tf.reverse(mask, [axis])),
        lambda: (image, mask),
    )


def flip(image, mask, seed):
    """Flip left-right and up-down, each independently with probability 1/2 (seeded)."""
    coins = tf.random.stateless_uniform([2], seed) < 0.5
    image, mask = _maybe_reverse(image, mask, coins[0], 1)
    return _maybe_reverse(image, mask, coins[1], 0)


def _random_angle(seed, max_angle_degrees):
    limit = max_angle_degrees * math.pi / 180.0
    return tf.random.stateless_uniform([], seed, minval=-limit, maxval=limit)


def _random_factor(seed, scale_range):
    lo, hi = (math.log(value) for value in scale_range)
    return tf.exp(tf.random.stateless_uniform([], seed, minval=lo, maxval=hi))


def augment(image, mask, seed, config: AugmentConfig | None = None):
    """Scale, rotate, crop and flip image and mask with shared random parameters.

    The order (scale, rotate, crop, flip) resamples each pixel at most twice and ends with a
    fixed output size, so augmented elements can be batched. Each step draws from its own
    sub-seed of ``seed``; a switched-off step draws nothing and changes nothing.

    Args:
        image: ``(H, W, C)`` float image (already normalised).
        mask: ``(H, W)`` integer mask with values in ``{0, 1, 2}`` (or ``IGNORE_INDEX``).
        seed: int tensor of shape ``[2]`` (one per dataset element, see ``pipeline``).
        config: which steps to apply (default ``AugmentConfig()``).

    Returns:
        ``(image, mask)`` of size ``crop_size`` (or the input size if ``crop_size`` is None), mask
        values in ``{0, 1, 2, IGNORE_INDEX}``.
    """
    config = AugmentConfig() if config is None else config
    static_shape = image.shape
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
    out_size = tf.shape(image)[:2]
    if config.scale:
        image, mask = scale(image, mask, _random_factor(seeds[0], config.scale_range))
    if config.rotate:
        image, mask = rotate(image, mask, _random_angle(seeds[1], float(config.max_angle)))
    if config.crop_size is not None:
        image, mask = random_crop(image, mask, config.crop_size, seeds[2])
    elif config.scale:
        image, mask = _random_window(image, mask, out_size, seeds[2])
    if config.flip:
        image, mask = flip(image, mask, seeds[3])
    return _with_static_shape(image, mask, static_shape, config.crop_size)


def _with_static_shape(image, mask, input_shape, crop_size):
    """Restore the static shape the dynamic ops lost, so batches have a known ``(h, w, C)``."""
    height, width = (crop_size, crop_size) if crop_size is not None else input_shape[:2]
    image = tf.ensure_shape(image, [height, width, input_shape[-1]])
    return image, tf.ensure_shape(mask, [height, width])
