"""Neural style transfer (Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural
Networks", CVPR 2016; "A Neural Algorithm of Artistic Style", 2015).

The image ``x`` is optimised so that its features match the content image's features at a deep
layer and the Gram matrices of its features match the style image's at several layers:

    L(x) = content_weight * L_content + sum_l w_l * E_l + tv_weight * TV(x)

with ``G^l = F^T F`` (raw sum over spatial positions), ``E_l = 1/(4 N_l^2 M_l^2) sum (G^l -
Ghat^l)^2`` (``N_l`` channels, ``M_l = H*W`` positions), ``L_content = 1/2 sum (F - P)^2``
(lecture 002). The descent runs on the shared compiled loop of :mod:`visualization.ascent`, as the
ascent of ``-L``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from visualization import ascent
from visualization._model import feature_model


def gram_matrix(features):
    """Gram matrices ``G_ij = sum_k F_ik F_jk`` of feature maps, summed over spatial positions.

    Raw sum, as the formula (no division by ``H*W``); ``style_loss`` carries the normalisation.

    Args:
        features: ``(N, H, W, C)`` activations (numpy or tensor).

    Returns:
        float32 tensor ``(N, C, C)``, symmetric positive semi-definite.
    """
    features = _as_features(features, "features")
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], shape[1] * shape[2], shape[3]])
    return tf.matmul(flat, flat, transpose_a=True)


def style_layer_loss(features, target_gram):
    """One layer's style loss ``E_l = 1/(4 N^2 M^2) * sum_ij (G_ij - Ghat_ij)^2`` per image.

    Args:
        features: ``(N, H, W, C)`` activations of the generated images at layer ``l``.
        target_gram: the style image's Gram matrix ``(C, C)`` or one per image ``(N, C, C)``.

    Returns:
        float32 tensor ``(N,)``; ``N_l = C`` channels and ``M_l = H*W`` positions.
    """
    features = _as_features(features, "features")
    gram = gram_matrix(features)
    target = tf.convert_to_tensor(target_gram, tf.float32)
    if target.shape.rank not in (2, 3) or target.shape[-2:] != gram.shape[-2:]:
        raise ValueError(f"`target_gram` must have shape (C, C) or (N, C, C) with C = "
                         f"{gram.shape[-1]}, got {tuple(target.shape)}")
    shape = tf.cast(tf.shape(features), tf.float32)
    channels, positions = shape[3], shape[1] * shape[2]
    squared = tf.reduce_sum(tf.square(gram - target), axis=[1, 2])
    return squared / (4.0 * channels**2 * positions**2)


def style_loss(features, target_grams, weights=None):
    """Weighted style loss over layers ``L_style = sum_l w_l E_l`` per image.

    Args:
        features: list of ``(N, H_l, W_l, C_l)`` activations of the generated images (a single
            array counts as a one-layer list).
        target_grams: list of the style image's Gram matrices, ``(C_l, C_l)`` or ``(N, C_l, C_l)``.
        weights: list of ``w_l``, one per layer; ``None`` = ``1 / L`` each ("weighted average
            across layers").

    Returns:
        float32 tensor ``(N,)``.
    """
    features, target_grams = _as_list(features), _as_list(target_grams)
    if len(features) != len(target_grams) or not features:
        raise ValueError(f"`target_grams` must have one entry per layer of `features` "
                         f"({len(features)}), got {len(target_grams)}")
    weights = _layer_weights(weights, len(features), "weights")
    losses = [w * style_layer_loss(f, g) for w, f, g in zip(weights, features, target_grams)]
    return tf.add_n(losses)


def content_loss(features, content_features):
    """Content loss ``1/2 * sum_ij (F_ij - P_ij)^2`` per image.

    Args:
        features: ``(N, ...)`` activations of the generated images.
        content_features: the content image's activations, same shape or ``(1, ...)``.

    Returns:
        float32 tensor ``(N,)``.
    """
    features = tf.convert_to_tensor(features, tf.float32)
    target = tf.convert_to_tensor(content_features, tf.float32)
    if features.shape.rank < 2 or target.shape[1:] != features.shape[1:]:
        raise ValueError(f"`content_features` must match `features` {tuple(features.shape)} "
                         f"per image, got {tuple(target.shape)}")
    squared = tf.square(features - target)
    return 0.5 * tf.reduce_sum(tf.reshape(squared, [tf.shape(features)[0], -1]), axis=1)


def total_variation(images, beta: float = 2.0):
    """Total variation ``TV(x) = sum_ijk ((x_i,j+1,k - x_ijk)^2 + (x_i+1,j,k - x_ijk)^2)^(beta/2)``.

    Mahendran & Vedaldi's ``V^beta`` prior (beta = 2: sum of squared neighbour differences;
    beta = 1: isotropic TV, with 1e-8 inside the root so the gradient exists at flat patches).

    Args:
        images: ``(N, H, W, C)`` images, H and W >= 2.
        beta: exponent > 0.

    Returns:
        float32 tensor ``(N,)``.
    """
    images = _as_features(images, "images")
    ascent.check_real("beta", beta, minimum=0.0, strict=True)
    down = images[:, 1:, :-1, :] - images[:, :-1, :-1, :]
    right = images[:, :-1, 1:, :] - images[:, :-1, :-1, :]
    squared = tf.square(down) + tf.square(right)
    if beta != 2.0:
        squared = tf.pow(squared + 1e-8, beta / 2.0)
    return tf.reduce_sum(squared, axis=[1, 2, 3])


def style_transfer(model, content_image, style_image, *, content_layers, style_layers,
                   content_weight: float = 1.0, style_weights=None, tv_weight: float = 0.0,
                   steps: int = 200, learning_rate: float = 0.01,
                   final_learning_rate: float | None = None, init: str = "content",
                   value_range=None, seed: int | None = None, return_history: bool = False):
    """Neural style transfer (Gatys et al. 2016) by descent on the shared ascent loop.

    Minimises ``content_weight * sum_c L_content(c) + sum_l w_l E_l + tv_weight * TV(x)`` over
    ``x``. Gram matrices of a style image of another size are rescaled by ``M_x / M_style`` so
    that they compare per position.

    Args:
        model: a Keras model whose layers ``content_layers`` and ``style_layers`` are read (also
            inside a nested base model), or a callable ``images -> {layer name: activations}``.
        content_image: ``(1, H, W, C)`` content image in the model's input range.
        style_image: ``(1, H', W', C)`` style image, same range.
        content_layers: one layer name or a list of names (Gatys: ``conv4_2``).
        style_layers: list of layer names (Gatys: ``conv1_1 ... conv5_1``).
        content_weight: ``alpha`` >= 0.
        style_weights: ``w_l`` >= 0 per style layer; ``None`` = ``1e3 / L`` each (``alpha/beta =
            1e-3``, Gatys et al.).
        tv_weight: weight of the total variation (beta = 2) >= 0.
        steps: descent steps > 0.
        learning_rate: mean absolute pixel change per step (normalised gradient) > 0.
        final_learning_rate: rate at the last step, reached by geometric decay; ``None`` =
            ``learning_rate / 10``.
        init: ``"content"`` (start from the content image) or ``"noise"`` (white noise of the
            content image's mean and standard deviation, Gatys et al.).
        value_range: ``(low, high)`` pixel range kept during the descent, or ``None``.
        seed: seed of the initial noise.
        return_history: also return the total loss per step.

    Returns:
        The ``(1, H, W, C)`` stylised image (numpy); with ``return_history`` also the ``(steps,)``
        total loss.
    """
    content_layers = [content_layers] if isinstance(content_layers, str) else list(content_layers)
    style_layers = _as_names(style_layers, "style_layers")
    content_layers = _as_names(content_layers, "content_layers")
    for name, value in (("content_weight", content_weight), ("tv_weight", tv_weight)):
        ascent.check_real(name, value, minimum=0.0)
    weights = _layer_weights(style_weights, len(style_layers), "style_weights", default=1e3)
    content = _single_image(content_image, "content_image")
    style = _single_image(style_image, "style_image")
    if style.shape[-1] != content.shape[-1]:
        raise ValueError(f"`style_image` must have {content.shape[-1]} channels like "
                         f"`content_image`, got shape {tuple(style.shape)}")
    extract, objective = _cached_extractor_and_objective(model, content_layers, style_layers)
    targets = _targets(extract, content, style, content_layers, style_layers)
    scalars = tf.constant([content_weight, tv_weight, *weights], tf.float32)
    start = _initial_image(content, init, seed)
    regularizers = ascent.Regularizers(value_range=value_range)
    image, history = ascent.gradient_ascent(
        objective, start, steps=steps, learning_rate=learning_rate,
        final_learning_rate=ascent._settling_rate(learning_rate, final_learning_rate),
        objective_args=(targets, scalars), regularizers=regularizers, seed=seed)
    return (image, -history[:, 0]) if return_history else image


def style_transfer_loss(model, images, content_image, style_image, *, content_layers,
                        style_layers, content_weight=1.0, style_weights=None, tv_weight=0.0):
    """The total loss that :func:`style_transfer` minimises, for ``(N, H, W, C)`` images -> (N,)."""
    content_layers = _as_names([content_layers] if isinstance(content_layers, str)
                               else content_layers, "content_layers")
    style_layers = _as_names(style_layers, "style_layers")
    weights = _layer_weights(style_weights, len(style_layers), "style_weights", default=1e3)
    extract, objective = _cached_extractor_and_objective(model, content_layers, style_layers)
    targets = _targets(extract, _single_image(content_image, "content_image"),
                       _single_image(style_image, "style_image"), content_layers, style_layers)
    scalars = tf.constant([content_weight, tv_weight, *weights], tf.float32)
    return -objective(_as_features(images, "images"), targets, scalars).numpy()


def _cached_extractor_and_objective(model, content_layers, style_layers):
    """The feature extractor and objective, built once per model and layer choice."""
    key = (tuple(content_layers), tuple(style_layers))
    extract = ascent.cached_objective(model, ("style_features", *key),
                                      lambda: _extractor(model, content_layers + style_layers))
    objective = ascent.cached_objective(
        model, ("style_objective", *key),
        lambda: _style_objective(extract, content_layers, style_layers))
    return extract, objective


def _style_objective(extract, content_layers, style_layers):
    """``-L(x)`` as an objective of the ascent loop; weights and targets come in as tensors."""
    n_content = len(content_layers)

    def objective(images, targets, scalars):
        features = extract(images)
        loss = scalars[1] * total_variation(images)
        for i, name in enumerate(content_layers):
            loss += scalars[0] * content_loss(features[name], targets[i])
        for j, name in enumerate(style_layers):
            loss += scalars[2 + j] * style_layer_loss(features[name], targets[n_content + j])
        return -loss

    return objective


def _targets(extract, content, style, content_layers, style_layers):
    """Content activations and (size-rescaled) style Gram matrices, as a tuple of tensors."""
    content_features = extract(content)
    style_features = extract(style)
    targets = [tf.convert_to_tensor(content_features[name], tf.float32)
               for name in content_layers]
    for name in style_layers:
        gram = gram_matrix(style_features[name])[0]
        ratio = _positions(content_features[name]) / _positions(style_features[name])
        targets.append(gram * ratio)
    return tuple(targets)


def _positions(features) -> float:
    shape = tf.shape(features)
    return float(shape[1] * shape[2])


def _extractor(model, layer_names):
    """A function ``images -> {name: activations}`` for the requested layers."""
    if isinstance(model, keras.Model):
        features = feature_model(model, layer_names)

        def extract(images):
            activations, _ = features(images)
            return dict(zip(layer_names, activations))

        return extract
    if not callable(model):
        raise TypeError(f"`model` must be a Keras model or a callable returning a dict of "
                        f"activations, got {type(model).__name__}")

    def extract_from_callable(images):
        out = model(images)
        if not isinstance(out, Mapping):
            raise TypeError(f"`model` must return a dict {{layer name: activations}}, got "
                            f"{type(out).__name__}")
        missing = [name for name in layer_names if name not in out]
        if missing:
            raise ValueError(f"`model` returned no activations for layers {missing}; available: "
                             f"{sorted(out)}")
        return out

    return extract_from_callable


def _initial_image(content, init, seed):
    if init == "content":
        return content
    if init == "noise":
        rng = np.random.default_rng(seed)
        mean, std = float(tf.reduce_mean(content)), float(tf.math.reduce_std(content))
        return (mean + std * rng.standard_normal(content.shape)).astype(np.float32)
    raise ValueError(f"`init` must be 'content' or 'noise', got {init!r}")


def _single_image(image, name):
    image = _as_features(image, name)
    if image.shape[0] != 1:
        raise ValueError(f"`{name}` must be one image (1, H, W, C), got shape "
                         f"{tuple(image.shape)}")
    return image


def _as_features(features, name):
    features = tf.convert_to_tensor(features, tf.float32)
    if features.shape.rank != 4 or min(features.shape[1:3]) < 1:
        raise ValueError(f"`{name}` must have shape (N, H, W, C), got {tuple(features.shape)}")
    return features


def _as_list(value):
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _as_names(names, argument):
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise ValueError(f"`{argument}` must be a non-empty list of layer names, got {names!r}")
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"`{argument}` must contain layer names (str), got {names!r}")
    return list(names)


def _layer_weights(weights, count, argument, default=1.0):
    if weights is None:
        return [default / count] * count
    weights = [weights] if np.isscalar(weights) else list(weights)
    if len(weights) != count:
        raise ValueError(f"`{argument}` must have one weight per layer ({count}), got {weights!r}")
    for w in weights:
        ascent.check_real(argument, w, minimum=0.0)
    return [float(w) for w in weights]
