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
from visualization._model import as_image_batch, feature_model


def deep_dream(model, images, layer_names, *, steps: int = 10, learning_rate: float = 0.01,
               octaves: int = 3, octave_scale: float = 1.4, jitter: int = 2, value_range=None,
               seed: int | None = None):
    """Dream ``images`` at the layers ``layer_names`` over ``octaves`` scales.

    Octave ``k`` (``k = octaves - 1`` first) works on the image resized by ``1 / octave_scale^k``;
    a model with a fixed input size sees each octave resized back to that size inside the
    objective (the gradient flows through the resize). Steps are normalised (``learning_rate`` =
    mean absolute pixel change per step).

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
    features = ascent.cached_objective(model, ("features", tuple(names)),
                                       lambda: feature_model(model, names))
    objective = ascent.cached_objective(model, ("dream", tuple(names)),
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
    """``sum_l 1/2 mean(a_l^2)``; octaves resized to a fixed model input size when it has one."""
    input_shape = getattr(model, "input_shape", None)
    fixed = (tuple(input_shape[1:3]) if isinstance(input_shape, tuple) and len(input_shape) == 4
             and None not in input_shape[1:3] else None)

    def objective(images):
        if fixed is not None and tuple(images.shape[1:3]) != fixed:
            images = tf.image.resize(images, fixed)
        activations, _ = features(images)
        energies = [0.5 * tf.reduce_mean(tf.reshape(tf.square(a), [tf.shape(a)[0], -1]), axis=1)
                    for a in activations]
        return tf.add_n(energies)

    return objective
