"""The one compiled gradient-ascent loop under every optimisation-to-the-image method.

Class model visualisation, neuron maximisation, DeepDream, feature inversion and style transfer
all ask for ``I* = argmax_I A(I)`` and climb it with ``I_{t+1} = I_t + eta * grad_I A(I_t)``
(lecture 004; the 5-step recipe of lecture 000: forward, set the gradient of the score, back-prop to
the image, update, repeat). Minimising a loss is ascending its negative.

Between steps the regularisers of Yosinski et al., "Understanding Neural Networks Through Deep
Visualization" (ICML DL workshop 2015) can be switched on, each independently: L2 decay, a
Gaussian blur every ``k`` steps, a random jitter (roll) of the image before each gradient, and
zeroing the pixels of small norm or of small contribution.

All ``steps`` run inside ONE ``tf.function`` (a ``tf.range`` loop, so the whole ascent is one graph
call). Every number that may change between calls (steps, learning rate, regulariser strengths,
seed, the objective's extra arguments) enters as a tensor, so repeated calls with the same objective
and the same image shape reuse the compiled graph.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import weakref

import numpy as np
import tensorflow as tf

_EPS = 1e-8


@dataclasses.dataclass(frozen=True)
class Regularizers:
    """Image regularisers applied between ascent steps (Yosinski et al. 2015); all off by default.

    Each step, in this order: ``x <- x + eta * g``; L2 decay ``x <- (1 - 2 * eta * l2_decay) * x``
    (the exact gradient step of ``-l2_decay * ||x||^2``, kept out of the gradient normalisation so
    that ``l2_decay`` means the same for every objective scale); every ``blur_every`` steps a
    Gaussian blur of standard deviation ``blur_sigma`` pixels; pixels whose norm over channels
    ``||x_ij||`` lies below the ``norm_percentile``-th percentile of their image are set to zero;
    pixels whose contribution ``|sum_c x_ijc * g_ijc|`` (the first-order change of the objective
    when the pixel is zeroed) lies below the ``contribution_percentile``-th percentile are set to
    zero; finally pixels are clipped to ``value_range``. The jitter rolls the image by a random
    shift in ``[-jitter, jitter]`` pixels (both axes) before the gradient is taken; the gradient is
    rolled back with it.

    Attributes:
        l2_decay: ``lambda >= 0`` of ``-lambda * ||I||^2``; 0 = off.
        blur_every: blur every this many steps (>= 0); 0 = off.
        blur_sigma: standard deviation of the blur in pixels (>= 0); 0 = off.
        jitter: maximum roll in pixels (>= 0); 0 = off.
        norm_percentile: percentile in ``[0, 100)`` for the small-norm clipping; 0 = off.
        contribution_percentile: percentile in ``[0, 100)`` for the small-contribution clipping.
        value_range: ``(low, high)`` pixel range enforced after each step, or ``None``.
    """

    l2_decay: float = 0.0
    blur_every: int = 0
    blur_sigma: float = 0.0
    jitter: int = 0
    norm_percentile: float = 0.0
    contribution_percentile: float = 0.0
    value_range: tuple[float, float] | None = None

    def __post_init__(self):
        for name in ("l2_decay", "blur_sigma"):
            check_real(name, getattr(self, name), minimum=0.0)
        for name in ("blur_every", "jitter"):
            check_int(name, getattr(self, name), minimum=0)
        for name in ("norm_percentile", "contribution_percentile"):
            value = getattr(self, name)
            check_real(name, value, minimum=0.0)
            if value >= 100:
                raise ValueError(f"`{name}` must be in [0, 100), got {value!r}")
        if self.value_range is not None:
            check_value_range(self.value_range)

    def as_tensors(self) -> dict[str, tf.Tensor]:
        """The strengths as tensors, so that changing them never retraces the loop."""
        low, high = self.value_range if self.value_range is not None else (-np.inf, np.inf)
        floats = {"l2_decay": self.l2_decay, "blur_sigma": self.blur_sigma, "low": low,
                  "high": high, "norm_percentile": self.norm_percentile,
                  "contribution_percentile": self.contribution_percentile}
        tensors = {k: tf.constant(v, tf.float32) for k, v in floats.items()}
        tensors["blur_every"] = tf.constant(self.blur_every, tf.int32)
        tensors["jitter"] = tf.constant(self.jitter, tf.int32)
        return tensors


def gradient_ascent(objective, initial_images, *, steps: int, learning_rate: float,
                    objective_args=(), regularizers: Regularizers | None = None,
                    normalize_gradients: bool = True, adam: bool = False,
                    final_learning_rate: float | None = None, seed: int | None = None,
                    run_eagerly: bool = False):
    """Gradient ascent on the image: ``I_{t+1} = I_t + eta * g_t`` with optional regularisers.

    With ``normalize_gradients`` (default) the step is ``g_t = grad / (mean|grad| + 1e-8)``, the
    mean taken per image, so ``learning_rate`` is the mean absolute pixel change per step whatever
    the scale of the objective; otherwise ``g_t = grad``.

    Args:
        objective: callable ``objective(images, *objective_args) -> (N,)`` tensor, one value per
            image, to be maximised; differentiable in ``images``.
        initial_images: ``(N, H, W, C)`` start images (numpy or tensor), any real range.
        steps: number of ascent steps, > 0.
        learning_rate: ``eta`` > 0.
        objective_args: tuple of tensors handed to ``objective``; put here what changes between
            calls (class indices, targets) so that repeated calls reuse the compiled loop (the
            loop is retraced for a new ``objective`` object or a new image shape only).
        regularizers: :class:`Regularizers`; ``None`` = none.
        normalize_gradients: whether to normalise each step as above.
        adam: take Adam steps instead (Kingma & Ba 2015, ``beta1 = 0.9``, ``beta2 = 0.999``,
            ``eps = 1e-8``): ``g_t = m_hat / (sqrt(v_hat) + eps)``, every parameter moving by about
            ``learning_rate`` whatever its gradient's scale. This is the optimiser of Lucid's
            feature visualisation, whose parameters (a Fourier spectrum) have gradients of very
            different scales; ``normalize_gradients`` is then ignored.
        final_learning_rate: if given (> 0), the learning rate decays geometrically from
            ``learning_rate`` at the first step to this value at the last, ``eta_t = eta *
            (eta_final / eta)^(t / (steps - 1))``; normalised steps of constant size only hover
            around a minimum, so descents (inversion, style) use it to settle.
        seed: seed of the jitter; ``None`` draws one from numpy's global generator.
        run_eagerly: run the same loop without compiling (for debugging and benchmarks).

    Returns:
        ``(images, history)``: the final ``(N, H, W, C)`` float32 images and the ``(steps, N)``
        float32 objective values, ``history[t]`` being the objective at step ``t`` (on the
        jittered image the gradient was taken at), both numpy.
    """
    if not callable(objective):
        raise TypeError(f"`objective` must be callable, got {type(objective).__name__}")
    images = as_batch(initial_images)
    check_int("steps", steps, minimum=1)
    check_real("learning_rate", learning_rate, minimum=0.0, strict=True)
    regularizers = regularizers if regularizers is not None else Regularizers()
    if not isinstance(regularizers, Regularizers):
        raise TypeError(f"`regularizers` must be a Regularizers, got {type(regularizers).__name__}")
    decay = _decay_per_step(learning_rate, final_learning_rate, steps)
    largest_rate = max(learning_rate, final_learning_rate or 0.0)
    if 2.0 * largest_rate * regularizers.l2_decay >= 1.0:
        raise ValueError(f"`l2_decay` * `learning_rate` must be < 0.5 (the decay would flip the "
                         f"image), got {regularizers.l2_decay!r} * {largest_rate!r}")
    seed = resolve_seed(seed)
    loop = _ascent_loop.python_function if run_eagerly else _ascent_loop
    rates = tf.constant([learning_rate, decay], tf.float32)
    final, history = loop(objective, images, tuple(objective_args), tf.constant(steps, tf.int32),
                          rates, regularizers.as_tensors(), tf.constant(seed, tf.int32),
                          "adam" if adam else ("normalized" if normalize_gradients else "plain"))
    return final.numpy(), history.numpy()


_OBJECTIVES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cached_objective(owner, key, build):
    """The objective ``build()`` made once per ``(owner, key)`` and reused afterwards.

    The compiled loop is traced once per objective object, so the public functions build their
    objective once per model (``owner``, held weakly) and configuration (``key``, hashable) and
    feed what varies between calls through ``objective_args``. The objective refers to the
    model, so, like a ``tf.function``'s traces, the cache keeps a model alive once it was used.
    """
    try:
        per_owner = _OBJECTIVES.setdefault(owner, {})
    except TypeError:  # owner cannot be weakly referenced: no caching
        return build()
    if key not in per_owner:
        per_owner[key] = build()
    return per_owner[key]


def tracing_count() -> int:
    """How many times the compiled loop has been traced (for tests of retracing)."""
    return _ascent_loop.experimental_get_tracing_count()


@tf.function(autograph=False)  # an explicit while_loop: autograph would convert the model's code
def _ascent_loop(objective, images, args, steps, rates, params, seed, update):
    def body(step, images, moments, history):
        learning_rate = rates[0] * tf.pow(rates[1], tf.cast(step, tf.float32))
        shift = _random_shift(seed, step, params["jitter"])
        value, grad = _value_and_gradient(objective, images, args, shift)
        if update == "adam":
            direction, moments = _adam_direction(grad, moments, step)
        else:
            direction = _normalized(grad) if update == "normalized" else grad
        images = images + learning_rate * direction
        images = _regularize(images, grad, step, learning_rate, params)
        return step + 1, images, moments, history.write(step, value)

    history = tf.TensorArray(tf.float32, size=steps)
    # Adam's first and second moments (carried, unused, by the other updates)
    moments = (tf.zeros_like(images), tf.zeros_like(images))
    _, images, _, history = tf.while_loop(lambda step, *_: step < steps, body,
                                          (tf.constant(0), images, moments, history))
    return images, history.stack()


_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


def _adam_direction(grad, moments, step):
    """Adam's bias-corrected ``m_hat / (sqrt(v_hat) + eps)`` and the updated moments."""
    beta1, beta2 = _ADAM_BETAS
    first = beta1 * moments[0] + (1.0 - beta1) * grad
    second = beta2 * moments[1] + (1.0 - beta2) * tf.square(grad)
    t = tf.cast(step + 1, tf.float32)
    m_hat = first / (1.0 - tf.pow(beta1, t))
    v_hat = second / (1.0 - tf.pow(beta2, t))
    return m_hat / (tf.sqrt(v_hat) + _ADAM_EPS), (first, second)


def _settling_rate(learning_rate, final_learning_rate, fraction: float = 0.1) -> float:
    """``final_learning_rate``, defaulting to ``fraction`` of the (validated) ``learning_rate``.

    Normalised steps of constant size only hover around an optimum; the methods that must
    settle on it (class model, neuron, inversion, style) decay the rate to this value.
    """
    if final_learning_rate is not None:
        return final_learning_rate
    check_real("learning_rate", learning_rate, minimum=0.0, strict=True)
    return learning_rate * fraction


def _decay_per_step(learning_rate, final_learning_rate, steps) -> float:
    """``(eta_final / eta)^(1 / (steps - 1))``, 1 for a constant rate."""
    if final_learning_rate is None:
        return 1.0
    check_real("final_learning_rate", final_learning_rate, minimum=0.0, strict=True)
    return (final_learning_rate / learning_rate) ** (1.0 / max(steps - 1, 1))


def _value_and_gradient(objective, images, args, shift):
    """Objective of the rolled image and its gradient with respect to the unrolled image."""
    with tf.GradientTape() as tape:
        tape.watch(images)
        value = objective(tf.roll(images, shift, axis=[1, 2]), *args)
        value = tf.cast(value, tf.float32)
    if value.shape.rank != 1:
        raise ValueError(f"`objective` must return one value per image, shape (N,), got shape "
                         f"{value.shape}")
    grad = tape.gradient(value, images)
    if grad is None:
        raise ValueError("`objective` does not depend on its images argument (gradient is None)")
    return value, grad


def _normalized(grad):
    """``grad / (mean|grad| + 1e-8)`` per image."""
    scale = tf.reduce_mean(tf.abs(grad), axis=[1, 2, 3], keepdims=True)
    return grad / (scale + _EPS)


def _random_shift(seed, step, jitter):
    """A shift ``(dy, dx)`` uniform in ``[-jitter, jitter]^2``, a function of ``(seed, step)``."""
    return tf.random.stateless_uniform([2], seed=tf.stack([seed, step]), minval=-jitter,
                                       maxval=jitter + 1, dtype=tf.int32)


def _regularize(images, grad, step, learning_rate, params):
    """The Yosinski et al. regularisers in order; each is the identity when switched off."""
    images = images * (1.0 - 2.0 * learning_rate * params["l2_decay"])
    do_blur = ((params["blur_every"] > 0) & (params["blur_sigma"] > 0)
               & (tf.math.floormod(step + 1, tf.maximum(params["blur_every"], 1)) == 0))
    images = tf.cond(do_blur, lambda: gaussian_blur(images, params["blur_sigma"]),
                     lambda: images)
    pixel_norm = tf.norm(images, axis=-1)
    images = _zero_below_percentile(images, pixel_norm, params["norm_percentile"])
    contribution = tf.abs(tf.reduce_sum(images * grad, axis=-1))
    images = _zero_below_percentile(images, contribution, params["contribution_percentile"])
    return tf.clip_by_value(images, params["low"], params["high"])


def _zero_below_percentile(images, score, percentile):
    """Zero the pixels whose ``score`` (N, H, W) lies strictly below its image's percentile."""

    def clip():
        flat = tf.sort(tf.reshape(score, [tf.shape(score)[0], -1]), axis=1)
        last = tf.cast(tf.shape(flat)[1] - 1, tf.float32)
        index = tf.cast(tf.floor(percentile / 100.0 * last), tf.int32)
        threshold = flat[:, index]
        keep = score >= threshold[:, None, None]
        return images * tf.cast(keep, images.dtype)[..., None]

    return tf.cond(percentile > 0, clip, lambda: images)


def gaussian_blur(images, sigma):
    """Separable Gaussian blur of ``(N, H, W, C)`` images (reflect padding, radius ``ceil(3s)``).

    Args:
        images: float32 ``(N, H, W, C)`` tensor, static channel count.
        sigma: standard deviation in pixels, > 0 (a scalar tensor or float).

    Returns:
        The blurred images, same shape; a constant image stays constant.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    sigma = tf.cast(sigma, tf.float32)
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    radius = tf.cast(tf.math.ceil(3.0 * sigma), tf.int32)
    radius = tf.clip_by_value(radius, 1, tf.maximum(tf.minimum(height, width) - 1, 1))
    offsets = tf.cast(tf.range(-radius, radius + 1), tf.float32)
    kernel = tf.exp(-0.5 * tf.square(offsets / sigma))
    kernel = kernel / tf.reduce_sum(kernel)
    channels = images.shape[-1]
    kernel = tf.tile(kernel[:, None, None, None], [1, 1, channels, 1])
    padded = tf.pad(images, [[0, 0], [radius, radius], [0, 0], [0, 0]], mode="REFLECT")
    blurred = tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")
    padded = tf.pad(blurred, [[0, 0], [0, 0], [radius, radius], [0, 0]], mode="REFLECT")
    blurred = tf.nn.depthwise_conv2d(padded, tf.transpose(kernel, [1, 0, 2, 3]), [1, 1, 1, 1],
                                     "VALID")
    return tf.ensure_shape(blurred, images.shape)


def as_batch(images, name: str = "initial_images") -> tf.Tensor:
    """A float32 ``(N, H, W, C)`` tensor, or ValueError naming ``name``."""
    try:
        images = tf.convert_to_tensor(images, tf.float32)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be a numeric array, got {type(images).__name__}") from err
    if images.shape.rank != 4 or 0 in images.shape:
        raise ValueError(f"`{name}` must be a non-empty batch (N, H, W, C), got shape "
                         f"{tuple(images.shape)}")
    return images


def resolve_seed(seed) -> int:
    """``seed`` checked (an int >= 0), or a fresh one from numpy's global generator."""
    if seed is None:
        return int(np.random.randint(0, 2**31 - 1))
    check_int("seed", seed, minimum=0)
    return int(seed) % (2**31 - 1)


def check_int(name: str, value, *, minimum: int) -> None:
    """TypeError unless ``value`` is an int (not a bool); ValueError if below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value!r}")


def check_real(name: str, value, *, minimum: float, strict: bool = False) -> None:
    """TypeError unless a real number; ValueError unless finite and >= (or >) ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number, got {value!r}")
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = ">" if strict else ">="
        raise ValueError(f"`{name}` must be finite and {bound} {minimum}, got {value!r}")


def check_value_range(value_range) -> None:
    """ValueError unless ``value_range`` is a pair ``(low, high)`` with ``low < high``."""
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`value_range` must be a pair (low, high), got {value_range!r}") from err
    if not low < high:
        raise ValueError(f"`value_range` must have low < high, got {value_range!r}")
