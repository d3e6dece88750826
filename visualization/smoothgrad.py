"""SmoothGrad for any gradient method (Smilkov et al. 2017, "SmoothGrad: removing noise by adding
noise"), with SmoothGrad-Squared and VarGrad (Adebayo et al. 2018; Hooker et al. 2019)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from visualization._model import as_image_batch
from visualization.ascent import check_int, check_real, check_value_range
from visualization.attribution import noisy_copies, resolve_classes, sample_gradients

AGGREGATES = ("mean", "square", "variance")
# methods evaluated inside the compiled core: name -> reduction of the gradient
COMPILED_METHODS = {"gradient": "gradient", "saliency": "saliency"}
# the package's other methods, called on chunks of noisy copies: name -> module
PACKAGE_METHODS = {
    "guided_backprop": "guided",
    "deconvnet": "guided",
    "grad_cam": "gradcam",
    "grad_cam_plus_plus": "gradcam",
    "integrated_gradients": "integrated_gradients",
}


def smoothgrad(model, images, class_index=None, *, method="gradient", num_samples: int = 50,
               noise_level: float = 0.15, value_range=None, aggregate: str = "mean",
               batch_size: int = 64, seed: int = 0, preprocess=None,
               **method_kwargs) -> np.ndarray:
    """``M_hat(x) = 1/m sum_k M(x + eps_k)``, ``eps_k ~ N(0, sigma^2)``, for any map ``M``.

    ``sigma = noise_level * (x_max - x_min)``: the span of ``value_range`` when given, else of
    each image (Smilkov et al. recommend a noise level of 10-20%). With ``aggregate="square"``
    the result is ``1/m sum_k M(x + eps_k)^2`` (SmoothGrad-Squared, Hooker et al. 2019) and with
    ``"variance"`` it is ``1/m sum_k M^2 - M_hat^2`` (VarGrad, Adebayo et al. 2018).

    The ``N * num_samples`` noisy copies are made ``batch_size`` at a time. For ``"gradient"``
    (``dS_c/dx``) and ``"saliency"`` (``max_c |dS_c/dx|``) they are made and differentiated
    inside one compiled loop; any other method is called on one chunk of ``batch_size`` noisy
    copies at a time. The class is fixed on the clean image; noise ``k`` of image ``n`` depends
    on ``(seed, n, k)`` only, so the result does not depend on ``batch_size``.

    Args:
        model: Keras model or callable to scores (a final softmax is skipped).
        images: ``(N, H, W, C)`` in the model's raw input range.
        class_index: ``None`` (the predicted class of each clean image), an int, or one per
            example.
        method: ``"gradient"``, ``"saliency"``, ``"guided_backprop"``, ``"deconvnet"``,
            ``"grad_cam"``, ``"grad_cam_plus_plus"``, ``"integrated_gradients"``, or a callable
            ``method(model, images, class_index=..., **method_kwargs) -> (B, ...)`` array (it
            receives ``preprocess=`` too when that is not ``None``).
        num_samples: ``m >= 1`` noisy copies per image.
        noise_level: ``sigma / (x_max - x_min) >= 0``.
        value_range: ``(low, high)`` input range defining ``x_max - x_min``; ``None`` = each
            image's own span (then a constant image is refused).
        aggregate: ``"mean"``, ``"square"`` or ``"variance"``.
        batch_size: noisy copies per model call, ``>= 1``.
        seed: noise seed, an int ``>= 0``.
        preprocess: applied inside the gradient (see ``visualization._model.resolve_preprocess``).
        **method_kwargs: passed to a package method or a callable (e.g. ``layer_name`` for
            Grad-CAM, ``steps`` for Integrated Gradients).

    Returns:
        float32 array shaped like one call of ``method`` on ``images``: ``(N, H, W, C)`` for
        gradients, ``(N, H, W)`` for saliency and Grad-CAM maps.
    """
    x = as_image_batch(images, model)
    _check_options(num_samples, noise_level, aggregate, batch_size, seed)
    sigma = tf.constant(noise_level * _spans(x, value_range), tf.float32)
    classes = resolve_classes(model, x, class_index, preprocess=preprocess)
    if isinstance(method, str) and method in COMPILED_METHODS:
        if method_kwargs:
            raise TypeError(f"method {method!r} takes no extra arguments, got "
                            f"{sorted(method_kwargs)}")
        weights = np.full((num_samples,), 1.0 / num_samples, np.float32)
        mean, mean_sq = sample_gradients(model, x, classes, kind="noise", weights=weights,
                                         sigma=sigma, seed=seed, batch_size=batch_size,
                                         reduce=COMPILED_METHODS[method], preprocess=preprocess)
    else:
        function = _method_function(method)
        mean, mean_sq = _chunked_average(function, model, x, classes, sigma, num_samples, seed,
                                         batch_size, preprocess, method_kwargs)
    return _aggregate(mean, mean_sq, aggregate)


def _check_options(num_samples, noise_level, aggregate, batch_size, seed) -> None:
    check_int("num_samples", num_samples, minimum=1)
    check_real("noise_level", noise_level, minimum=0.0)
    check_int("batch_size", batch_size, minimum=1)
    check_int("seed", seed, minimum=0)
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")


def _spans(x: tf.Tensor, value_range) -> np.ndarray:
    """``x_max - x_min`` per image: of ``value_range``, or of each image."""
    n = int(x.shape[0])
    if value_range is not None:
        check_value_range(value_range)
        return np.full((n,), float(value_range[1]) - float(value_range[0]), np.float32)
    flat = tf.reshape(x, (n, -1))
    spans = (tf.reduce_max(flat, axis=1) - tf.reduce_min(flat, axis=1)).numpy()
    if np.any(spans == 0):
        raise ValueError(f"images: image {int(np.argmin(spans))} is constant, so its span "
                         "x_max - x_min is 0 and the noise would vanish; pass value_range="
                         "(low, high) to set the noise scale")
    return spans


def _method_function(method) -> Callable:
    """The function behind a method name, or the user's callable."""
    if isinstance(method, str):
        if method not in PACKAGE_METHODS:
            raise ValueError(f"method must be one of {[*COMPILED_METHODS, *PACKAGE_METHODS]} "
                             f"or a callable, got {method!r}")
        module = importlib.import_module(f"visualization.{PACKAGE_METHODS[method]}")
        return getattr(module, method)
    if not callable(method):
        raise TypeError(f"method must be a name or a callable, got {method!r}")
    return method


def _chunked_average(function, model, x, classes, sigma, num_samples, seed, batch_size,
                     preprocess, method_kwargs):
    """Running ``(mean M, mean M^2)`` over noisy copies, one chunk of ``batch_size`` per call."""
    n = int(x.shape[0])
    total, mean, mean_sq = n * num_samples, None, None
    extra = dict(method_kwargs, **({} if preprocess is None else {"preprocess": preprocess}))
    for start in range(0, total, batch_size):
        idx = np.arange(start, min(start + batch_size, total), dtype=np.int32)
        image_idx, sample_idx = idx // num_samples, idx % num_samples
        noisy = noisy_copies(x, image_idx, sample_idx, sigma, tf.constant(seed, tf.int32))
        out = np.asarray(function(model, noisy, class_index=classes.numpy()[image_idx], **extra),
                         dtype=np.float32)
        if out.ndim == 0 or out.shape[0] != len(idx):
            raise ValueError(f"method must return one map per image, shape ({len(idx)}, ...), "
                             f"got shape {out.shape}")
        if mean is None:
            mean = np.zeros((n, *out.shape[1:]), np.float32)
            mean_sq = np.zeros_like(mean)
        np.add.at(mean, image_idx, out / num_samples)
        np.add.at(mean_sq, image_idx, np.square(out) / num_samples)
    return mean, mean_sq


def _aggregate(mean: np.ndarray, mean_sq: np.ndarray, aggregate: str) -> np.ndarray:
    if aggregate == "mean":
        return mean
    if aggregate == "square":
        return mean_sq
    return np.maximum(mean_sq - np.square(mean), 0.0)


def noise_sigma(images, noise_level: float, value_range=None) -> np.ndarray:
    """The ``sigma`` :func:`smoothgrad` uses per image, ``noise_level * (x_max - x_min)``."""
    check_real("noise_level", noise_level, minimum=0.0)
    return noise_level * _spans(as_image_batch(images), value_range)
