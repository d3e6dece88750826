"""Shared machinery of the attacks: scores, loss gradient, step/projection, loop, chunks, cache.

The rules for calling a user's model and reading its inputs live in :mod:`adversarial.contract`
(re-exported here for older imports). This module holds, once for all attacks: the scores the
attacks ascend (:func:`attack_logits_fn`: the logits, or the log-probabilities of a softmax
model, which give the same cross entropy and margin), the loss-gradient helper
(:func:`objective_and_gradient`, which refuses a missing input gradient), the step/projection
pair (:func:`ascent_step`, :func:`project`) with the per-example random start, the multi-step
loop (:func:`iterative_attack`, pure TensorFlow, also traced into adversarial training), the
chunked driver (:func:`run_in_chunks`: bounded memory, results independent of the batch size)
and the per-model cache of compiled ``tf.function``s (:func:`compiled`, :func:`clear_cache`).
"""

from __future__ import annotations

import functools
import types
import weakref
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from adversarial.contract import (  # noqa: F401 - re-exported for the attacks and training
    accepts_training_flag,
    as_image_tensor,
    call_model,
    check_choice,
    check_clip_range,
    check_input_range,
    check_int,
    check_norm,
    check_real,
    clear_scores_cache,
    model_fingerprint,
    parse_labels,
    require_input_gradient,
    scores_fn,
)

LOSSES = ("ce", "margin")
DEFAULT_BATCH_SIZE = 256


def check_loss(loss, choices=LOSSES) -> str:
    """``loss`` after checking it is one of ``choices`` (``"ce"``, ``"margin"`` by default)."""
    return check_choice(loss, "loss", choices)


def check_batch_size(batch_size) -> int:
    """Examples per compiled call, an integer ``>= 1``."""
    return check_int(batch_size, "batch_size", minimum=1)


# ----------------------------------------------------------------------------------------------
# Per-model cache of compiled functions, without keeping the model alive.

_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


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


def compiled(model, key: tuple, build: Callable[[], Callable]) -> Callable:
    """``build()`` cached per model under ``key`` and the model's fingerprint.

    The fingerprint (:func:`adversarial.contract.model_fingerprint`) changes when the user edits
    the model's head or layers, so a stale trace is never reused; the stale entries are dropped.
    """
    cache = model_cache(model)
    full_key = (key, model_fingerprint(model))
    if full_key not in cache:
        for stale in [k for k in cache if isinstance(k, tuple) and len(k) == 2
                      and k[0] == key and k[1] != full_key[1]]:
            del cache[stale]
        cache[full_key] = build()
    return cache[full_key]


def clear_cache(model=None) -> None:
    """Forget the compiled attacks (and score analyses) of ``model``, or of every model.

    Needed only after edits the fingerprint cannot see (e.g. replacing a layer's ``call``);
    editing activations, layers or weights count is noticed automatically.
    """
    if model is None:
        _CACHES.clear()
    else:
        try:
            _CACHES.pop(_cache_owner(model), None)
        except TypeError:
            pass
    clear_scores_cache(model)


# ----------------------------------------------------------------------------------------------
# The scores the attacks ascend.


def attack_logits_fn(model, training_flag: bool | None = None) -> Callable:
    """``x -> (N, K)`` logits for the attacks, ``K >= 2``.

    A softmax model (in any form, or an opaque model returning probability rows) gives its
    pre-softmax scores or log-probabilities (:func:`adversarial.contract.scores_fn` with
    ``probabilities="log"``); cross entropy and margin on them equal those on the logits. A
    single binary score ``z`` ``(N, 1)`` (sigmoid head or logit) becomes the two-class logits
    ``[0, z]``, whose softmax is ``[1 - sigma(z), sigma(z)]``.
    """
    del training_flag  # the contract looks it up once per model
    scores = scores_fn(model, probabilities="log")

    def logits(images):
        z = scores(images)
        if z.shape.rank == 2 and z.shape[1] == 1:
            return tf.concat([tf.zeros_like(z), z], axis=1)
        return z

    return logits


def num_classes_of(model, images: tf.Tensor, training_flag: bool | None = None) -> int:
    """``K`` of the attack logits, probed eagerly on a few examples (once per model and shape).

    The probe also lets the contract decide once whether an opaque model returns probabilities.

    Raises:
        ValueError: the model rejects the input or does not return ``(N, K)`` scores.
    """
    del training_flag
    return compiled(model, ("num_classes", tuple(images.shape[1:])),
                    lambda: _probe_num_classes(model, images))


def _probe_num_classes(model, images: tf.Tensor) -> int:
    probe = images[:32]
    try:
        logits = attack_logits_fn(model)(probe)
    except ValueError as err:
        if "probabilities" in str(err) or "gradient" in str(err):
            raise
        raise _rejected(images, err) from err
    except Exception as err:  # whatever user code raises, the caller gets a ValueError
        raise _rejected(images, err) from err
    shape = tuple(logits.shape)
    if len(shape) != 2 or shape[0] != probe.shape[0] or not shape[1]:
        raise ValueError(
            f"model must map input_image of shape {tuple(images.shape)} to logits (N, K), "
            f"got output shape {tuple(shape)} for {probe.shape[0]} examples")
    return int(shape[1])


def _rejected(images, err) -> ValueError:
    first = str(err).splitlines()[0] if str(err) else ""
    return ValueError(f"input_image of shape {tuple(images.shape)} is rejected by the model: "
                      f"{type(err).__name__}: {first}")


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


def value_and_input_gradient(objective_fn: Callable, images):
    """``(J(x), dJ/dx)`` for a per-example objective ``J: (N, ...) -> (N,)``.

    Per-example gradients come from the gradient of ``sum_i J(x_i)`` (the examples are
    independent), so they do not shrink with the batch size.

    Raises:
        ValueError: the objective has no gradient with respect to the input (never zeros).
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(images)
        objective = objective_fn(images)
        total = tf.reduce_sum(objective)
    return objective, require_input_gradient(tape.gradient(total, images))


def objective_and_gradient(model_fn, images, labels, loss: str, targeted: bool):
    """``(J(x), dJ/dx)`` for the per-example objective of :func:`attack_objective`."""
    return value_and_input_gradient(
        lambda x: attack_objective(model_fn(x), labels, loss, targeted), images)


def attack_success(logits, labels, targeted: bool):
    """``(N,)`` bool: misclassified (untargeted) or classified as the target (targeted)."""
    predicted = tf.argmax(logits, axis=1, output_type=tf.int32)
    labels = tf.cast(labels, tf.int32)
    return tf.equal(predicted, labels) if targeted else tf.not_equal(predicted, labels)


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


# ----------------------------------------------------------------------------------------------
# Per-example random numbers: a counter-based hash of (seed, example index, stream, element),
# so an example's random start never depends on how the data set is cut into batches.

_MASK32 = 0xFFFFFFFF


def _mix(x):
    """A 32-bit integer hash (two multiply-xorshift rounds) on int64 values in ``[0, 2^32)``.

    Products stay below ``2^59``, so int64 arithmetic never overflows.
    """
    for _ in range(2):
        x = tf.bitwise.bitwise_xor(tf.bitwise.right_shift(x, 16), x)
        x = tf.bitwise.bitwise_and(x * 0x45D9F3B, _MASK32)
    return tf.bitwise.bitwise_xor(tf.bitwise.right_shift(x, 16), x)


def _xor(a, b):
    return tf.bitwise.bitwise_xor(a, b)


def example_uniform(seed, indices, stream, count):
    """``(n, count)`` float32 uniforms in ``(0, 1)``, a function of (seed, index, stream) only.

    Args:
        seed: int64 ``(2,)`` (as from :func:`seed_tensor`).
        indices: int64 ``(n,)`` indices of the examples in the whole data set.
        stream: int (or int64 scalar tensor) telling independent draws apart (restart, step).
        count: numbers per example.
    """
    seed = tf.bitwise.bitwise_and(tf.cast(seed, tf.int64), _MASK32)
    stream = tf.bitwise.bitwise_and(tf.cast(stream, tf.int64), _MASK32)
    base = _mix(_xor(_mix(_xor(_mix(seed[0]), seed[1])), stream))
    keys = _mix(_xor(base, tf.bitwise.bitwise_and(tf.cast(indices, tf.int64), _MASK32)))
    elements = _mix(tf.range(1, tf.cast(count, tf.int64) + 1, dtype=tf.int64))
    bits = _mix(_xor(keys[:, None], elements[None, :]))
    return (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) / 2.0**24


def example_random(seed, indices, stream, like, distribution: str = "uniform"):
    """Per-example ``U(0, 1)`` or ``N(0, 1)`` numbers shaped like ``like`` (see above)."""
    shape = tf.shape(like)
    dims = tf.reduce_prod(shape[1:])
    if distribution == "uniform":
        return tf.reshape(example_uniform(seed, indices, stream, dims), shape)
    uniform = example_uniform(seed, indices, stream, 2 * dims)  # Box-Muller
    radius = tf.sqrt(-2.0 * tf.math.log(uniform[:, :dims]))
    return tf.reshape(radius * tf.cos(2.0 * np.pi * uniform[:, dims:]), shape)


def _default_indices(clean):
    return tf.range(tf.cast(tf.shape(clean)[0], tf.int64), dtype=tf.int64)


def random_start(clean, epsilon, norm: float, seed, indices=None, stream=0):
    """A uniform random point of the epsilon ball around ``clean``, per example reproducible.

    L-inf: ``x + U(-eps, eps)`` per coordinate (the slides). L2: ``x + eps * u^(1/d) * n/||n||_2``
    with ``n ~ N(0, I)`` and ``u ~ U(0, 1)``, which is uniform in the d-dimensional ball. The
    numbers of example ``i`` depend only on ``(seed, indices[i], stream)``.

    Args:
        seed: int64 ``(2,)``. indices: int64 ``(N,)`` example indices (default ``0..N-1``).
        stream: which draw (the restart number).
    """
    indices = _default_indices(clean) if indices is None else indices
    if norm != 2:
        uniform = example_random(seed, indices, stream, clean)
        return clean + epsilon * (2.0 * uniform - 1.0)
    gaussian = example_random(seed, indices, stream, clean, "normal")
    dims = tf.cast(tf.reduce_prod(tf.shape(clean)[1:]), tf.float32)
    radius = example_uniform(seed, indices, tf.cast(stream, tf.int64) + 2**20, 1)
    radius = tf.reshape(radius, tf.concat([tf.shape(clean)[:1], tf.ones_like(tf.shape(clean)[1:])],
                                          0))
    return clean + epsilon * radius ** (1.0 / dims) * gaussian / _per_example_norm(gaussian, 2)


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


def keep_better(best, candidate, better):
    """``where(better, candidate, best)`` with ``better`` ``(N,)`` broadcast over the image."""
    shape = tf.concat([[-1], tf.ones([tf.rank(best) - 1], tf.int32)], 0)
    return tf.where(tf.reshape(better, shape), candidate, best)


def iterative_attack(model_fn, clean, labels, epsilon, step_size, num_steps, decay, seed,
                     clip_min, clip_max, *, norm: float, loss: str, targeted: bool,
                     random_init: bool, momentum: bool, restarts: int = 1, indices=None):
    """FGSM / BIM / PGD / MIM in one loop; returns ``x_adv`` with gradients stopped.

    Each restart starts at a random point of the ball (or at ``x``), clipped to the valid
    range, and runs :func:`_ascend`. With several restarts each example keeps a SUCCESSFUL
    restart (misclassified, or classified as the target) if there is one, and among restarts of
    equal success the one of highest final objective: with the cross entropy the highest loss
    need not be a misclassification.

    Args:
        model_fn: ``x -> logits`` already in inference mode.
        clean: ``(N, ...)`` float32; labels: ``(N,)`` int32; the numbers are scalar tensors,
            ``num_steps`` int32, ``seed`` int64 ``(2,)``.
        norm, loss, targeted, random_init, momentum, restarts: static Python values.
        indices: int64 ``(N,)`` indices of the examples in the data set (their random starts
            depend on them, not on the batch); default ``0..N-1``.
    """
    best = best_objective = best_success = None
    for restart in range(restarts):
        start = clean
        if random_init:
            start = random_start(clean, epsilon, norm, seed, indices, restart)
        start = project(start, clean, epsilon, norm, clip_min, clip_max)
        adversarial = _ascend(model_fn, clean, start, labels, epsilon, step_size, num_steps, decay,
                              clip_min, clip_max, norm=norm, loss=loss, targeted=targeted,
                              momentum=momentum)
        if restarts == 1:
            return tf.stop_gradient(adversarial)
        logits = model_fn(adversarial)
        objective = attack_objective(logits, labels, loss, targeted)
        success = attack_success(logits, labels, targeted)
        if best is None:
            best, best_objective, best_success = adversarial, objective, success
            continue
        better = (success & ~best_success) | ((success == best_success)
                                              & (objective > best_objective))
        best = keep_better(best, adversarial, better)
        best_objective = tf.where(better, objective, best_objective)
        best_success = best_success | success
    return tf.stop_gradient(best)


def compiled_attack(model, *, training_flag: bool, soft_label: bool, **static):
    """The attack as a ``tf.function`` cached per (model, fingerprint, static config).

    Repeated calls with the same shapes reuse the trace; ``reduce_retracing`` makes a new batch
    size retrace at most once. The function holds the model only weakly.
    """
    key = ("attack", training_flag, soft_label, tuple(sorted(static.items())))

    def build():
        get_model = weak_model(model)

        @tf.function(reduce_retracing=True)
        def attack(clean, labels, indices, epsilon, step_size, num_steps, decay, seed, clip_min,
                   clip_max):
            model_fn = attack_logits_fn(get_model())
            if soft_label:  # the labels the model predicts on the clean input, computed once
                labels = tf.argmax(model_fn(clean), axis=1, output_type=tf.int32)
            return iterative_attack(model_fn, clean, labels, epsilon, step_size, num_steps,
                                    decay, seed, clip_min, clip_max, indices=indices, **static)

        return attack

    return compiled(model, key, build)


def seed_tensor(seed) -> tf.Tensor:
    """``(2,)`` int64 seed of the random numbers; ``None`` draws one from TF's global RNG."""
    if seed is None:
        return tf.random.uniform([2], 0, 2**31 - 1, dtype=tf.int64)
    return tf.constant([check_int(seed, "seed", minimum=0), 0], tf.int64)


# ----------------------------------------------------------------------------------------------
# Validated batches and the chunked driver.


def prepare_batch(model, input_image, input_label, *, clip_min: float, clip_max: float,
                  soft_label: bool = False, label_name: str = "input_label",
                  image_name: str = "input_image"):
    """``(images float32, labels int32 (N,), num_classes)`` after the contract's checks.

    Images must lie in ``[clip_min, clip_max]`` (:func:`adversarial.contract.check_input_range`),
    labels are parsed by :func:`adversarial.contract.parse_labels` against the model's ``K``.
    """
    if not callable(model):
        raise TypeError(f"model must be callable (batch -> logits), got {type(model)!r}")
    images = check_input_range(input_image, clip_min, clip_max, image_name)
    num = int(images.shape[0])
    if num == 0:
        return images, tf.zeros([0], tf.int32), 0
    num_classes = num_classes_of(model, images)
    if soft_label and input_label is None:  # the labels are predicted inside the attack
        return images, tf.zeros([num], tf.int32), num_classes
    labels = parse_labels(input_label, num, num_classes, label_name)
    return images, tf.constant(labels), num_classes


# Elementwise kernels (exp, log, tanh, pow, cos) are vectorised over the flattened tensor with a
# scalar loop for the last ``size mod packet`` elements, and the scalar and vector code of a
# transcendental function differ in the last bit. A batch padded to a multiple of 16 examples
# (the float32 packet of AVX-512, a multiple of AVX2's 8) runs every element through the vector
# code, so an example's numbers do not depend on how many others share its chunk.
ALIGN = 16


def aligned_call(fn: Callable, num_batched: int, *args):
    """``fn(*args)`` with the first ``num_batched`` args padded along axis 0 to a multiple of 16.

    The padding repeats the last example and is cut from every output (a tensor or a tuple of
    tensors with the batch on axis 0), so the results are those of ``fn`` on the ``n`` examples,
    bit for bit the same whatever ``n`` and whatever else is in the batch (see ``ALIGN``).
    """
    batched = [tf.convert_to_tensor(a) for a in args[:num_batched]]
    num = int(batched[0].shape[0])
    pad = -num % ALIGN
    if pad and num:
        batched = [tf.concat([a, tf.repeat(a[-1:], pad, axis=0)], 0) for a in batched]
    out = fn(*batched, *args[num_batched:])
    if not pad or not num:
        return out
    if isinstance(out, (tuple, list)):
        return type(out)(o[:num] for o in out)
    return out[:num]


def aligned_logits(model) -> Callable:
    """``x -> logits`` of :func:`attack_logits_fn`, batch-padded as in :func:`aligned_call`."""
    logits_fn = attack_logits_fn(model)
    return lambda images: aligned_call(logits_fn, 1, images)


def run_in_chunks(fn: Callable, batch_size: int, images, labels, *args):
    """``fn(images[s:e], labels[s:e], indices[s:e], *args)`` chunk by chunk, concatenated.

    ``indices`` are the int64 positions of the examples in ``images``, so per-example random
    numbers (and hence the results) do not depend on ``batch_size``; each chunk is padded to a
    multiple of 16 examples (:func:`aligned_call`) so that float rounding does not depend on it
    either. Memory is that of one chunk.
    """
    num = int(images.shape[0])
    parts = []
    for start in range(0, num, batch_size):
        stop = min(start + batch_size, num)
        indices = tf.range(start, stop, dtype=tf.int64)
        parts.append(aligned_call(fn, 3, images[start:stop], labels[start:stop], indices, *args))
    if len(parts) == 1:
        return parts[0]
    return tf.concat(parts, axis=0)


def run_attack(model, input_image, input_label, *, epsilon, clip_value_min, clip_value_max,
               soft_label, targeted, loss, seed, num_steps=1, step_size=None, decay=None,
               random_init=False, norm=np.inf, restarts=1, batch_size=DEFAULT_BATCH_SIZE):
    """Validate the arguments of a public attack, then run the compiled loop chunk by chunk.

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
    batch_size = check_batch_size(batch_size)
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
    images, labels, _ = prepare_batch(model, input_image, input_label, clip_min=clip_min,
                                      clip_max=clip_max, soft_label=soft_label)
    if epsilon == 0.0 or images.shape[0] == 0:
        return images
    attack = compiled_attack(model, training_flag=accepts_training_flag(model),
                             soft_label=bool(soft_label), **static)
    return run_in_chunks(attack, batch_size, images, labels, *numbers)


def _attack_in_graph(model, input_image, input_label, soft_label, epsilon, numbers, static):
    """The attack traced inline when called inside the caller's ``tf.function``.

    The data checks that need concrete values (NaN, pixel and label range, the model's shape
    probe) are skipped there; labels may be indices ``(N,)``/``(N, 1)`` or one-hot ``(N, K)``.
    """
    images = tf.cast(input_image, tf.float32)
    model_fn = attack_logits_fn(model)
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
