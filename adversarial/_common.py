"""Shared machinery of the attacks (and of the visualisations): calling a user's model.

Every public attack and visualisation accepts "any callable that maps a batch to logits": a Keras 3
model, a tf-keras model or a plain function. They are always called in inference mode, so that
dropout is off and batch-norm statistics are neither used from the batch nor updated.

For the attacks (issue 3) this module also holds, once for all of them: the argument checks
(errors name the argument and show the value), the loss-gradient helper
(:func:`objective_and_gradient`), the step/projection pair (:func:`ascent_step`,
:func:`project`) with the random start, the multi-step loop (:func:`iterative_attack`, pure
TensorFlow, also traced into adversarial training) and its per-model cache of compiled
``tf.function``s (:func:`compiled_attack`).
"""

from __future__ import annotations

import functools
import inspect
import math
import types
import weakref

import keras
import numpy as np
import tensorflow as tf


def accepts_training_flag(model) -> bool:
    """Whether ``model(x, training=False)`` is a valid call.

    Keras layers and models (Keras 3 and tf-keras) take ``training``; a plain function takes it
    only if it names it or accepts ``**kwargs``.
    """
    if isinstance(model, keras.Layer):
        return True
    try:
        params = inspect.signature(model).parameters.values()
    except (TypeError, ValueError):  # builtins and C callables have no signature
        return False
    return any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in params)


def call_model(model, images, training_flag: bool | None = None):
    """``model(images)`` in inference mode.

    Args:
        model: a callable mapping a batch ``(N, ...)`` to logits ``(N, K)``.
        images: the batch, a tensor.
        training_flag: result of :func:`accepts_training_flag`, precomputed by callers that run
            the model in a loop; looked up when ``None``.
    """
    if training_flag is None:
        training_flag = accepts_training_flag(model)
    return model(images, training=False) if training_flag else model(images)


# ----------------------------------------------------------------------------------------------
# Argument checks (section 7 of issue 3): every message names the argument and shows the value.

NORMS = (np.inf, 2)
LOSSES = ("ce", "margin")


def check_real(value, name: str, *, minimum: float | None = None, strict: bool = False,
               allow_inf: bool = False) -> float:
    """``float(value)`` after checking it is a real number ``>= minimum`` (``>`` if strict).

    NaN is always rejected, infinities unless ``allow_inf``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be {relation} {minimum}, got {value!r}")
    return value


def check_int(value, name: str, *, minimum: int = 1) -> int:
    """``int(value)`` after checking it is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_clip_range(clip_value_min, clip_value_max) -> tuple[float, float]:
    """The valid input range; infinite bounds are allowed (no clipping on that side)."""
    low = check_real(clip_value_min, "clip_value_min", allow_inf=True)
    high = check_real(clip_value_max, "clip_value_max", allow_inf=True)
    if low > high:
        raise ValueError(
            f"clip_value_min must be <= clip_value_max, got clip_value_min={clip_value_min!r} "
            f"> clip_value_max={clip_value_max!r}")
    return low, high


def check_norm(norm) -> float:
    """``np.inf`` or ``2`` (also given as ``"inf"``/``"2"``)."""
    try:
        value = float(norm)
    except (TypeError, ValueError):
        raise ValueError(f"norm must be np.inf or 2, got {norm!r}") from None
    if value not in NORMS:
        raise ValueError(f"norm must be np.inf or 2, got {norm!r}")
    return value


def check_loss(loss) -> str:
    """``"ce"`` or ``"margin"``."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return loss


def as_image_tensor(images, name: str = "input_image") -> tf.Tensor:
    """A batch ``(N, ...)`` (numpy, list or tensor, any float dtype) as a float32 tensor.

    Raises:
        ValueError: rank < 1 or NaN values, naming ``name``.
    """
    try:
        tensor = tf.cast(tf.convert_to_tensor(images), tf.float32)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric array or tensor, got {type(images)!r}") from err
    if tensor.shape.rank is None or tensor.shape.rank < 1:
        raise ValueError(f"{name} must be a batch (N, ...), got shape {tuple(tensor.shape)}")
    num_nan = int(tf.math.count_nonzero(tf.math.is_nan(tensor)))
    if num_nan:
        raise ValueError(f"{name} must not contain NaN, got {num_nan} NaN values "
                         f"in a batch of shape {tuple(tensor.shape)}")
    return tensor


def as_label_indices(labels, num_images: int, num_classes: int,
                     name: str = "input_label") -> tf.Tensor:
    """Class indices ``(N,)`` int32 from ``(N,)``/``(N, 1)`` indices, one-hot rows or a scalar.

    A scalar is used for every image (handy for a single target class).

    Raises:
        ValueError: wrong length, non-integer indices, or indices outside ``[0, num_classes)``.
    """
    array = np.asarray(labels.numpy() if isinstance(labels, tf.Tensor) else labels)
    if array.ndim == 0:
        array = np.full((num_images,), array)
    if array.ndim == 2 and array.shape[1] == num_classes and array.shape[0] == num_images:
        array = np.argmax(array, axis=1)
    elif array.ndim == 2 and array.shape[1] == 1:  # Keras-style (N, 1) column of indices
        array = array[:, 0]
    if array.ndim != 1 or array.shape[0] != num_images:
        raise ValueError(
            f"{name} must hold {num_images} class indices or one-hot rows of width {num_classes}, "
            f"got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.equal(np.mod(array, 1), 0)):
        raise ValueError(f"{name} must be integer class indices, got {array[:8]!r}")
    bad = (array < 0) | (array >= num_classes)
    if bad.any() and np.ndim(labels) == 0:
        raise ValueError(f"{name} must be in [0, {num_classes}), got {labels!r}")
    if bad.any():
        raise ValueError(
            f"{name} must be in [0, {num_classes}), got {array[bad][:8].tolist()} "
            f"at positions {np.flatnonzero(bad)[:8].tolist()}")
    return tf.constant(array.astype(np.int32))


def num_classes_of(model, images: tf.Tensor, training_flag: bool) -> int:
    """``K`` of the model's logits ``(N, K)`` on this batch; re-raises a rejection as ValueError.

    The probe is one eager forward pass, cached per model and batch shape.
    """
    key = ("num_classes", tuple(images.shape))
    cached = model_cache(model).get(key)
    if cached is not None:
        return cached
    try:
        logits = call_model(model, images, training_flag)
    except Exception as err:  # whatever user code raises, the caller gets a ValueError
        raise ValueError(
            f"input_image of shape {tuple(images.shape)} is rejected by the model: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err
    shape = tuple(logits.shape)
    if len(shape) != 2 or shape[0] != images.shape[0] or not shape[1]:
        raise ValueError(
            f"model must map input_image of shape {tuple(images.shape)} to logits (N, K), "
            f"got output shape {shape}")
    model_cache(model)[key] = int(shape[1])
    return int(shape[1])


# ----------------------------------------------------------------------------------------------
# Per-model cache of compiled functions, without keeping the model alive.

_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_UNCACHEABLE: dict = {}


def _cache_owner(model):
    """The object the cache hangs on: the instance for a bound method, else the callable."""
    return model.__self__ if isinstance(model, types.MethodType) else model


def model_cache(model) -> dict:
    """A dict living as long as ``model`` (keyed by the instance for bound methods).

    Callables that can be neither weakly referenced nor hashed get a fresh dict each call, so
    they work but are re-traced.
    """
    owner = _cache_owner(model)
    func_key = getattr(model, "__func__", None)
    try:
        caches = _CACHES.setdefault(owner, {})
    except TypeError:
        return {}
    return caches.setdefault(func_key, {})


def weak_model(model):
    """A zero-argument getter of ``model`` that holds it only weakly when possible."""
    try:
        if isinstance(model, types.MethodType):
            return weakref.WeakMethod(model)
        return weakref.ref(model)
    except TypeError:
        return lambda: model


# ----------------------------------------------------------------------------------------------
# The loss-gradient helper under every attack.


def attack_objective(logits, labels, loss: str, targeted: bool):
    """Per-example quantity the attack ASCENDS, shape ``(N,)``.

    * ``"ce"``: ``CE(z, y)`` (untargeted) or ``-CE(z, t)`` (targeted: go down the target's loss).
    * ``"margin"`` (Carlini & Wagner, 2017): ``max_{j != y} z_j - z_y`` (untargeted) or
      ``z_t - max_{j != t} z_j`` (targeted); unlike CE it does not saturate on confident models.

    Args:
        logits: ``(N, K)`` logits.
        labels: ``(N,)`` int class indices (true, predicted or target classes).
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.int32)
    if loss == "ce":
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        return -ce if targeted else ce
    is_label = tf.one_hot(labels, tf.shape(logits)[1], on_value=True, off_value=False)
    label_logit = tf.reduce_sum(tf.where(is_label, logits, 0.0), axis=1)
    best_other = tf.reduce_max(tf.where(is_label, -np.inf, logits), axis=1)
    return label_logit - best_other if targeted else best_other - label_logit


def objective_and_gradient(model_fn, images, labels, loss: str, targeted: bool):
    """``(J(x), dJ/dx)`` for the per-example objective of :func:`attack_objective`.

    Per-example gradients come from the gradient of ``sum_i J(x_i)`` (the examples are
    independent), so they do not shrink with the batch size.
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(images)
        objective = attack_objective(model_fn(images), labels, loss, targeted)
        total = tf.reduce_sum(objective)
    gradient = tape.gradient(total, images)
    if gradient is None:  # a model that ignores its input
        gradient = tf.zeros_like(images)
    return objective, gradient


# ----------------------------------------------------------------------------------------------
# The step/projection pair under PGD and MIM (and FGSM, a single step of size epsilon).

_TINY = 1e-12


def _per_example_norm(tensor, order):
    axes = tf.range(1, tf.rank(tensor))
    if order == 1:
        norm = tf.reduce_sum(tf.abs(tensor), axis=axes, keepdims=True)
    else:
        norm = tf.sqrt(tf.reduce_sum(tf.square(tensor), axis=axes, keepdims=True))
    return tf.maximum(norm, _TINY)


def l1_normalize(gradient):
    """``g / ||g||_1`` per example (L1 norm over all non-batch axes, floored at 1e-12): MIM."""
    return gradient / _per_example_norm(gradient, 1)


def ascent_step(images, direction, step_size, norm: float):
    """One steepest-ascent step: ``x + a*sign(d)`` (L-inf) or ``x + a*d/||d||_2`` (L2)."""
    if norm == 2:
        return images + step_size * direction / _per_example_norm(direction, 2)
    return images + step_size * tf.sign(direction)


def project(adversarial, clean, epsilon, norm: float, clip_min, clip_max):
    """``Proj_{B_eps(x)}`` then clip to ``[clip_min, clip_max]``.

    L-inf: ``clip(x', x - eps, x + eps)``; L2: ``x + delta * min(1, eps / ||delta||_2)``.
    """
    delta = adversarial - clean
    if norm == 2:
        delta = delta * tf.minimum(1.0, epsilon / _per_example_norm(delta, 2))
    else:
        delta = tf.clip_by_value(delta, -epsilon, epsilon)
    return tf.clip_by_value(clean + delta, clip_min, clip_max)


def random_start(clean, epsilon, norm: float, seed):
    """A uniform random point of the epsilon ball around ``clean``.

    L-inf: ``x + U(-eps, eps)`` per coordinate (the slides). L2: ``x + eps * u^(1/d) * n/||n||_2``
    with ``n ~ N(0, I)`` and ``u ~ U(0, 1)``, which is uniform in the d-dimensional ball.

    Args:
        seed: int32 tensor ``(2,)`` for the stateless random ops, so a seed reproduces the start.
    """
    shape = tf.shape(clean)
    if norm != 2:
        return clean + tf.random.stateless_uniform(shape, seed, -epsilon, epsilon)
    gaussian = tf.random.stateless_normal(shape, seed)
    dims = tf.cast(tf.reduce_prod(shape[1:]), tf.float32)
    radius_shape = tf.concat([shape[:1], tf.ones_like(shape[1:])], axis=0)
    uniform = tf.random.stateless_uniform(radius_shape, seed + 1)
    return clean + epsilon * uniform ** (1.0 / dims) * gaussian / _per_example_norm(gaussian, 2)


# ----------------------------------------------------------------------------------------------
# The multi-step loop (pure TensorFlow: traced into the attacks' tf.function and into
# AdversarialTraining.train_step).


def _ascend(model_fn, clean, start, labels, epsilon, step_size, num_steps, decay, clip_min,
            clip_max, *, norm, loss, targeted, momentum):
    """``num_steps`` of ``x <- Proj(x + step(d))`` with ``d = g`` (PGD) or momentum ``v`` (MIM)."""

    def body(step, adversarial, velocity):
        _, direction = objective_and_gradient(model_fn, adversarial, labels, loss, targeted)
        if momentum:
            velocity = decay * velocity + l1_normalize(direction)
            direction = velocity
        adversarial = project(ascent_step(adversarial, direction, step_size, norm), clean,
                              epsilon, norm, clip_min, clip_max)
        return step + 1, adversarial, velocity

    _, adversarial, _ = tf.while_loop(
        lambda step, *_: step < num_steps, body,
        (tf.constant(0, num_steps.dtype), start, tf.zeros_like(start)))
    return adversarial


def iterative_attack(model_fn, clean, labels, epsilon, step_size, num_steps, decay, seed,
                     clip_min, clip_max, *, norm: float, loss: str, targeted: bool,
                     random_init: bool, momentum: bool, restarts: int = 1):
    """FGSM / BIM / PGD / MIM in one loop; returns ``x_adv`` with gradients stopped.

    Each restart starts at a random point of the ball (or at ``x``), clipped to the valid
    range, and runs :func:`_ascend`; with several restarts each example keeps the restart whose
    final objective is highest.

    Args:
        model_fn: ``x -> logits`` already in inference mode.
        clean: ``(N, ...)`` float32; labels: ``(N,)`` int32; the numbers are scalar tensors,
            ``num_steps`` int32, ``seed`` int64 ``(2,)``.
        norm, loss, targeted, random_init, momentum, restarts: static Python values.
    """
    best, best_objective = None, None
    for restart in range(restarts):
        start = clean
        if random_init:
            start = random_start(clean, epsilon, norm, seed + tf.constant([0, restart], seed.dtype))
        start = project(start, clean, epsilon, norm, clip_min, clip_max)
        adversarial = _ascend(model_fn, clean, start, labels, epsilon, step_size, num_steps, decay,
                              clip_min, clip_max, norm=norm, loss=loss, targeted=targeted,
                              momentum=momentum)
        if restarts == 1:
            return tf.stop_gradient(adversarial)
        objective = attack_objective(model_fn(adversarial), labels, loss, targeted)
        if best is None:
            best, best_objective = adversarial, objective
            continue
        better = tf.reshape(objective > best_objective,
                            tf.concat([[-1], tf.ones([tf.rank(clean) - 1], tf.int32)], 0))
        best = tf.where(better, adversarial, best)
        best_objective = tf.maximum(objective, best_objective)
    return tf.stop_gradient(best)


def compiled_attack(model, *, training_flag: bool, soft_label: bool, **static):
    """The attack as a ``tf.function`` cached per (model, static config).

    Repeated calls with the same shapes reuse the trace; ``reduce_retracing`` makes a new batch
    size retrace at most once. The function holds the model only weakly.
    """
    key = ("attack", training_flag, soft_label, tuple(sorted(static.items())))
    cache = model_cache(model)
    if key not in cache:
        get_model = weak_model(model)

        def model_fn(images):
            return call_model(get_model(), images, training_flag)

        @tf.function(reduce_retracing=True)
        def attack(clean, labels, epsilon, step_size, num_steps, decay, seed, clip_min, clip_max):
            if soft_label:  # the labels the model predicts on the clean input, computed once
                labels = tf.argmax(model_fn(clean), axis=1, output_type=tf.int32)
            return iterative_attack(model_fn, clean, labels, epsilon, step_size, num_steps,
                                    decay, seed, clip_min, clip_max, **static)

        cache[key] = attack
    return cache[key]


def seed_tensor(seed) -> tf.Tensor:
    """``(2,)`` int64 seed of the stateless random ops; ``None`` draws one from TF's global RNG."""
    if seed is None:
        return tf.random.uniform([2], 0, 2**31 - 1, dtype=tf.int64)
    return tf.constant([check_int(seed, "seed", minimum=0), 0], tf.int64)


def _prepare_batch(model, input_image, input_label, soft_label):
    """``(images float32, labels int32 (N,), training_flag)`` after the data checks."""
    images = as_image_tensor(input_image)
    training_flag = accepts_training_flag(model)
    if images.shape[0] == 0:
        return images, tf.zeros([0], tf.int32), training_flag
    num_classes = num_classes_of(model, images, training_flag)
    if soft_label and input_label is None:  # the labels are predicted inside the attack
        return images, tf.zeros([images.shape[0]], tf.int32), training_flag
    return images, as_label_indices(input_label, images.shape[0], num_classes), training_flag


def run_attack(model, input_image, input_label, *, epsilon, clip_value_min, clip_value_max,
               soft_label, targeted, loss, seed, num_steps=1, step_size=None, decay=None,
               random_init=False, norm=np.inf, restarts=1):
    """Validate the arguments of a public attack, then run the compiled loop.

    ``step_size=None`` means one step of size ``epsilon`` (FGSM); ``decay=None`` means no
    momentum (FGSM, PGD). Returns a float32 tensor shaped like ``input_image``.
    """
    if not callable(model):
        raise TypeError(f"model must be callable (batch -> logits), got {type(model)!r}")
    epsilon = check_real(epsilon, "epsilon", minimum=0.0)
    num_steps, restarts = check_int(num_steps, "num_steps"), check_int(restarts, "restarts")
    if step_size is not None:
        step_size = check_real(step_size, "step_size", minimum=0.0, strict=True)
    if decay is not None:
        decay = check_real(decay, "decay", minimum=0.0)
    clip_min, clip_max = check_clip_range(clip_value_min, clip_value_max)
    norm, loss = check_norm(norm), check_loss(loss)
    if targeted and soft_label:
        raise ValueError(f"soft_label must be False when targeted=True (the label is the target), "
                         f"got soft_label={soft_label!r}")
    static = {"norm": norm, "loss": loss, "targeted": bool(targeted),
              "random_init": bool(random_init), "momentum": decay is not None,
              "restarts": restarts}
    scalar = functools.partial(tf.constant, dtype=tf.float32)
    numbers = (scalar(epsilon), scalar(step_size or epsilon), tf.constant(num_steps, tf.int32),
               scalar(decay or 0.0), seed_tensor(seed), scalar(clip_min), scalar(clip_max))
    if not tf.executing_eagerly():
        return _attack_in_graph(model, input_image, input_label, soft_label, epsilon, numbers,
                                static)
    images, labels, training_flag = _prepare_batch(model, input_image, input_label, soft_label)
    if epsilon == 0.0 or images.shape[0] == 0:
        return images
    attack = compiled_attack(model, training_flag=training_flag, soft_label=bool(soft_label),
                             **static)
    return attack(images, labels, *numbers)


def _attack_in_graph(model, input_image, input_label, soft_label, epsilon, numbers, static):
    """The attack traced inline when called inside the caller's ``tf.function``.

    The data checks that need concrete values (NaN, label range, the model's shape probe) are
    skipped there; labels may be indices ``(N,)``/``(N, 1)`` or one-hot ``(N, K)``.
    """
    images = tf.cast(input_image, tf.float32)
    training_flag = accepts_training_flag(model)

    def model_fn(batch):
        return call_model(model, batch, training_flag)

    if soft_label:
        labels = tf.argmax(model_fn(images), axis=1, output_type=tf.int32)
    else:
        labels = tf.convert_to_tensor(input_label)
        if labels.shape.rank == 2 and labels.shape[1] != 1:
            labels = tf.argmax(labels, axis=1)
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    if epsilon == 0.0:
        return images
    return iterative_attack(model_fn, images, labels, *numbers, **static)
