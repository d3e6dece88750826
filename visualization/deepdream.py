"""DeepDream (Mordvintsev, Olah & Tyka, "Inceptionism: Going Deeper into Neural Networks", Google
Research blog, 2015).

DeepDream "boosts" whatever a layer already sees: it sets the gradient at the layer to the
activation itself (lecture 003: "set dx = x"), i.e. it ascends

    A(I) = sum_l 1/2 * mean(a_l(I)^2)        (d A / d a_l = a_l / |a_l|)

with a random jitter of the image before each step and over several octaves: the image is dreamt
at the coarsest scale first, upscaled, and the detail it gained is added back to the next finer
version of the original. Runs on the shared compiled loop of :mod:`visualization.ascent`.
"""

from __future__ import annotations

import tensorflow as tf

from visualization import ascent
from visualization._model import as_image_batch, feature_model, resolve_preprocess


def deep_dream(model, images, layer_names, *, steps: int = 10, learning_rate: float = 0.01,
               octaves: int = 3, octave_scale: float = 1.4, jitter: int = 2, value_range=None,
               preprocess=None, seed: int | None = None):
    """Dream ``images`` at the layers ``layer_names`` over ``octaves`` scales.

    Octave ``k`` (``k = octaves - 1`` first) works on the image resized by ``1 / octave_scale^k``,
    and the network sees it at that scale: a model with a fixed input size gets the smaller
    octave mirrored around itself (symmetric padding) up to its input size, never resized back,
    so its units respond to the patterns of every scale (the gradient of the mirrored copies
    flows back to the octave image). Steps are normalised (``learning_rate`` = mean absolute
    pixel change per step).

    Args:
        model: Keras model; the layers may sit inside a nested base model.
        images: ``(N, H, W, C)`` start images in the model's input range.
        layer_names: one layer name or a list; their ``1/2 mean(a^2)`` are summed.
        steps: ascent steps per octave > 0.
        learning_rate: > 0.
        octaves: number of scales >= 1.
        octave_scale: size ratio between octaves > 1 (used when ``octaves > 1``).
        jitter: random roll in pixels before each step (0 = off).
        value_range: ``(low, high)`` pixel range kept, or ``None``.
        preprocess: applied inside the objective (see
            :func:`visualization._model.resolve_preprocess`); images stay raw.
        seed: seed of the jitter (octave ``k`` uses ``seed + k``).

    Returns:
        The dreamt ``(N, H, W, C)`` float32 numpy images.
    """
    base = as_image_batch(images, model, name="images")
    names = [layer_names] if isinstance(layer_names, str) else list(layer_names)
    if not names:
        raise ValueError(f"`layer_names` must name at least one layer, got {layer_names!r}")
    ascent.check_int("octaves", octaves, minimum=1)
    ascent.check_real("octave_scale", octave_scale, minimum=1.0, strict=octaves > 1)
    sizes = _octave_sizes(tuple(base.shape[1:3]), octaves, octave_scale)
    prep = resolve_preprocess(preprocess)
    features = ascent.cached_objective(model, ("features", tuple(names), prep),
                                       lambda: feature_model(model, names, prep))
    objective = ascent.cached_objective(model, ("dream", tuple(names), prep),
                                        lambda: _dream_objective(model, features))
    regularizers = ascent.Regularizers(jitter=jitter, value_range=value_range)
    seed = ascent.resolve_seed(seed)
    detail = tf.zeros((base.shape[0], *sizes[-1], base.shape[-1]))
    for k, size in reversed(list(enumerate(sizes))):
        level = tf.image.resize(base, size) if k else base
        start = level + tf.image.resize(detail, size)
        dreamt, _ = ascent.gradient_ascent(objective, start, steps=steps,
                                           learning_rate=learning_rate,
                                           regularizers=regularizers, seed=seed + k)
        detail = dreamt - level
    return dreamt


def _octave_sizes(size, octaves, scale):
    """``[(H, W), (H/s, W/s), ...]``, finest first; ValueError if an octave is under 2 pixels."""
    sizes = [tuple(max(round(d / scale**k), 1) for d in size) for k in range(octaves)]
    if min(sizes[-1]) < 2:
        raise ValueError(f"`octaves` = {octaves} with `octave_scale` = {scale} shrinks the "
                         f"{size} images below 2 pixels ({sizes[-1]})")
    return sizes


def _dream_objective(model, features):
    """``sum_l 1/2 mean(a_l^2)``; an octave smaller than a fixed model input is mirrored out to
    that size (:func:`_mirror_to_size`) so the network sees it at its own scale."""
    input_shape = getattr(model, "input_shape", None)
    fixed = (tuple(input_shape[1:3]) if isinstance(input_shape, tuple) and len(input_shape) == 4
             and None not in input_shape[1:3] else None)

    def objective(images):
        if fixed is not None and tuple(images.shape[1:3]) != fixed:
            images = _mirror_to_size(images, fixed)
        activations, _ = features(images)
        energies = [0.5 * tf.reduce_mean(tf.reshape(tf.square(a), [tf.shape(a)[0], -1]), axis=1)
                    for a in activations]
        return tf.add_n(energies)

    return objective


def _mirror_to_size(images, size):
    """``(N, h, w, C)`` images with ``h <= H``, ``w <= W`` mirrored (symmetric padding, repeated
    as needed) out to ``(N, H, W, C)``, the original at the centre, nothing resized.

    Raises:
        ValueError: an image larger than ``size``.
    """
    height, width = int(images.shape[1]), int(images.shape[2])
    target_h, target_w = size
    if height > target_h or width > target_w:
        raise ValueError(f"images of size {(height, width)} do not fit in {size}")
    top, left = (target_h - height) // 2, (target_w - width) // 2
    padded, offset_h, offset_w = images, 0, 0
    while int(padded.shape[1]) < target_h or int(padded.shape[2]) < target_w:
        pad_h = min(int(padded.shape[1]), max(target_h - int(padded.shape[1]), 0))
        pad_w = min(int(padded.shape[2]), max(target_w - int(padded.shape[2]), 0))
        padded = tf.pad(padded, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]], "SYMMETRIC")
        offset_h, offset_w = offset_h + pad_h, offset_w + pad_w
    return padded[:, offset_h - top:offset_h - top + target_h,
                  offset_w - left:offset_w - left + target_w]
