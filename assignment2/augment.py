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

import dataclasses
import math
from dataclasses import dataclass

import tensorflow as tf

from assignment2 import IGNORE_INDEX
from assignment2.padding import pad_to_at_least

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


def _random_window(image, mask, size, seed):
    """The same random ``size = (h, w)`` window of image and mask, padding first if needed."""
    image, mask = pad_to_at_least(image, mask, size)
    shape = tf.shape(image)[:2]
    room = tf.cast(shape - size + 1, tf.float32)
    offset = tf.cast(tf.floor(tf.random.stateless_uniform([2], seed) * room), tf.int32)
    top, left = tf.unstack(tf.minimum(offset, shape - size))
    return image[top:top + size[0], left:left + size[1]], mask[top:top + size[0], left:left + size[1]]


def random_crop(image, mask, size, seed):
    """Cut the same random ``size x size`` window from image and mask.

    A side shorter than ``size`` is first padded at the bottom and right by
    :func:`assignment2.padding.pad_to_at_least` (image reflected, mask ``IGNORE_INDEX``). The top-left
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


def _draw(seed, config: AugmentConfig):
    """The random parameters of one element: scale factor, angle (radians), flips, position."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
    factor = _random_factor(seeds[0], config.scale_range) if config.scale else tf.constant(1.0)
    angle = _random_angle(seeds[1], float(config.max_angle)) if config.rotate \
        else tf.constant(0.0)
    position = tf.random.stateless_uniform([2], seeds[2])
    flips = tf.random.stateless_uniform([2], seeds[3]) < 0.5 if config.flip \
        else tf.constant([False, False])
    return factor, angle, flips, position


def _output_to_input(factor, angle, flips, position, tile_hw, out_hw):
    """The affine map ``p_in = centre + M (p_out - c_out)`` of the fused transform.

    ``M = R(angle) F / factor`` with ``R`` the rotation of :func:`rotate` and ``F`` the flips
    (``diag(+-1, +-1)``). The crop covers ``side = out / factor`` input pixels per axis; its
    top-left corner is uniform over the positions that keep it inside the tile (integer when the
    factor is 1, so an unscaled, unrotated crop copies pixels exactly), centred when it is
    larger than the tile. Coordinates are pixel indices (pixel centres at integers).

    Returns:
        ``(M (2, 2), centre (2,), c_out (2,))`` as float32, ``(x, y)`` order.
    """
    tile = tf.cast(tf.reverse(tile_hw, [0]), tf.float32)  # (W, H)
    out = tf.cast(tf.reverse(out_hw, [0]), tf.float32)
    side = out / factor
    room = tile - side + 1.0
    corner = tf.where(room >= 1.0, tf.floor(position * room), (tile - side) / 2.0)
    centre = corner + (side - 1.0) / 2.0
    c, s = tf.cos(angle), tf.sin(angle)
    signs = tf.where(flips, -1.0, 1.0)
    m = tf.reshape(tf.stack([c * signs[0], -s * signs[1], s * signs[0], c * signs[1]]), [2, 2])
    return m / factor, centre, (out - 1.0) / 2.0


def _needed_range(lo, hi, size):
    """Input index range ``[start, stop)`` a transform can read on one axis, reflections included.

    Samples span ``[lo, hi]`` (may leave the tile ``[0, size - 1]``). Bilinear sampling reads one
    pixel further; a sample outside the tile is reflected at the tile edge (REFLECT mode), so the
    window must then reach that edge and the reflected span. A window edge inside the tile is
    never reached, so resampling the window equals resampling the whole tile.
    """
    last = tf.cast(size - 1, tf.float32)
    start = tf.maximum(tf.floor(lo) - 1.0, 0.0)
    stop = tf.minimum(tf.math.ceil(hi) + 1.0, last)
    start = tf.where(hi > last, tf.minimum(start, tf.maximum(tf.floor(2 * last - hi) - 1.0,
                                                             0.0)), start)
    stop = tf.where(lo < 0, tf.maximum(stop, tf.minimum(tf.math.ceil(-lo) + 1.0, last)), stop)
    start = tf.where(lo < 0, 0.0, start)
    stop = tf.where(hi > last, last, stop)
    start = tf.minimum(start, last)
    return tf.cast(start, tf.int32), tf.cast(tf.maximum(stop, start), tf.int32) + 1


def _fused(image, mask, m, centre, c_out, out_hw):
    """Resample image (bilinear, mirrored outside) and mask (nearest, IGNORE outside) at once."""
    offset = centre - tf.linalg.matvec(m, c_out)
    coefficients = tf.stack([m[0, 0], m[0, 1], offset[0], m[1, 0], m[1, 1], offset[1],
                             0.0, 0.0])[tf.newaxis]
    common = dict(transforms=coefficients, output_shape=out_hw)
    image = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis], fill_value=0.0, interpolation="BILINEAR",
        fill_mode="REFLECT", **common)[0]
    mask = tf.raw_ops.ImageProjectiveTransformV3(
        images=_mask_3d(mask)[tf.newaxis], fill_value=float(IGNORE_INDEX),
        interpolation="NEAREST", fill_mode="CONSTANT", **common)[0, ..., 0]
    return image, mask


def _window(m, centre, c_out, tile_hw):
    """``(top, left, bottom, right)`` of the input window the output crop reads."""
    corners = tf.stack([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]]) * c_out - c_out
    points = centre + tf.linalg.matvec(m, corners)  # (4, 2) as (x, y)
    lo, hi = tf.reduce_min(points, 0), tf.reduce_max(points, 0)
    left, right = _needed_range(lo[0], hi[0], tile_hw[1])
    top, bottom = _needed_range(lo[1], hi[1], tile_hw[0])
    return top, left, bottom, right


def augment(image, mask, seed, config: AugmentConfig | None = None, *, prepare=None):
    """Scale, rotate, crop and flip image and mask with shared random parameters, in ONE resampling.

    The four steps compose into one affine map from output to input pixels
    (:func:`_output_to_input`). Only the input window that map reads is cut from the tile
    and converted by ``prepare`` (e.g. normalised to float32), so the work per element grows
    with the crop, not with the tile (a 128 px crop of a 650 px tile touches ~4 % of it). The
    image is resampled bilinearly and mirrored at the tile edge; the mask with nearest
    neighbour and ``IGNORE_INDEX`` outside the tile. Each step draws from its own sub-seed of
    ``seed``; a switched-off step draws nothing and changes nothing, and with every step off the
    tile is returned as it is.

    Args:
        image: ``(H, W, C)`` image (float, or any dtype ``prepare`` converts to float32).
        mask: ``(H, W)`` integer mask with values in ``{0, 1, 2}`` (or ``IGNORE_INDEX``).
        seed: int tensor of shape ``[2]`` (one per dataset element, see ``pipeline``).
        config: which steps to apply (default ``AugmentConfig()``).
        prepare: ``(image_window, mask_window) -> (float32 image, mask)`` applied to the window
            before resampling (default: cast the image to float32).

    Returns:
        ``(image, mask)`` of size ``crop_size`` (or the input size if ``crop_size`` is None), mask
        values in ``{0, 1, 2, IGNORE_INDEX}``.
    """
    config = AugmentConfig() if config is None else config
    prepare = prepare or (lambda x, m: (tf.cast(x, tf.float32), m))
    static_shape = image.shape
    if config == dataclasses.replace(AugmentConfig.none(), max_angle=config.max_angle,
                                     scale_range=config.scale_range):
        image, mask = prepare(image, mask)
        return _with_static_shape(image, mask, static_shape, None)
    tile_hw = tf.shape(image)[:2]
    out_hw = tile_hw if config.crop_size is None else tf.constant([config.crop_size] * 2)
    m, centre, c_out = _output_to_input(*_draw(seed, config), tile_hw, out_hw)
    top, left, bottom, right = _window(m, centre, c_out, tile_hw)
    image, mask = prepare(image[top:bottom, left:right], mask[top:bottom, left:right])
    shift = tf.cast(tf.stack([left, top]), tf.float32)
    image, mask = _fused(image, mask, m, centre - shift, c_out, out_hw)
    return _with_static_shape(image, mask, static_shape, config.crop_size)


def _with_static_shape(image, mask, input_shape, crop_size):
    """Restore the static shape the dynamic ops lost, so batches have a known ``(h, w, C)``."""
    height, width = (crop_size, crop_size) if crop_size is not None else input_shape[:2]
    image = tf.ensure_shape(image, [height, width, input_shape[-1]])
    return image, tf.ensure_shape(mask, [height, width])
