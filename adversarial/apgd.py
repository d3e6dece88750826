"""Auto-PGD (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020): PGD without a step size to tune.

Per example, starting at a random point of the ball with step ``eta = 2 eps``:

    z_{k+1} = P(x_k + eta * sign(grad f(x_k)))                       (L2: eta * g / ||g||_2)
    x_{k+1} = P(x_k + alpha (z_{k+1} - x_k) + (1 - alpha)(x_k - x_{k-1}))   alpha = 0.75 (1 at k=0)

where ``P`` projects onto the ball and the valid range. At the checkpoints ``w_j = ceil(p_j N)``,
``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``, the step size is
halved and the iterate restarts from the best point found when

1. the loss increased in at most ``rho = 0.75`` of the steps since the last checkpoint
   (the authors' released code compares with ``<=``), or
2. the step size was not halved at the last checkpoint and the best loss did not improve since.

Losses: the cross entropy (``"ce"``) or the Difference of Logits Ratio (``"dlr"``),
``DLR(z, y) = -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3)``, invariant to shifting and scaling
the logits (so it sees through a saturated softmax); targeted (APGD-T) ``-(z_y - z_t) /
(z_pi1 - (z_pi3 + z_pi4) / 2)`` over the ``num_targets`` classes ranked highest after ``y``
on the clean input. ``pi`` sorts the logits in decreasing order.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from adversarial._common import (
    DEFAULT_BATCH_SIZE,
    accepts_training_flag,
    aligned_call,
    aligned_logits,
    ascent_step,
    attack_logits_fn,
    attack_success,
    check_batch_size,
    check_choice,
    check_clip_range,
    check_int,
    check_norm,
    check_real,
    compiled,
    keep_better,
    parse_labels,
    prepare_batch,
    project,
    random_start,
    seed_tensor,
    value_and_input_gradient,
    weak_model,
)

APGD_LOSSES = ("ce", "dlr")
RHO = 0.75
MOMENTUM = 0.75
_STREAM_APGD = 1 << 20  # random-start streams of APGD, apart from PGD's


# ----------------------------------------------------------------------------------------------
# Losses


def dlr_loss(logits, labels, targets=None):
    """Difference of Logits Ratio per example ``(N,)``, ascended by the attack.

    Untargeted: ``-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3 + 1e-12)``; targeted (``targets``
    given): ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)``. Needs ``K >= 3``
    (targeted ``K >= 4``).
    """
    logits = tf.cast(logits, tf.float32)
    top = tf.math.top_k(logits, k=4 if targets is not None else 3).values
    own = tf.gather(logits, labels, axis=1, batch_dims=1)
    if targets is not None:
        target = tf.gather(logits, targets, axis=1, batch_dims=1)
        return -(own - target) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)
    is_label = tf.one_hot(labels, tf.shape(logits)[1], on_value=True, off_value=False)
    best_other = tf.reduce_max(tf.where(is_label, -np.inf, logits), axis=1)
    return -(own - best_other) / (top[:, 0] - top[:, 2] + 1e-12)


def apgd_objective(logits, labels, targets, loss: str):
    """The per-example loss APGD ascends: CE / DLR, targeted when ``targets`` is not None."""
    if loss == "dlr":
        return dlr_loss(logits, labels, targets)
    if targets is not None:
        return -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def checkpoints(num_steps: int) -> list[int]:
    """The iterations after which APGD checks its step size (the paper's ``w_j``).

    The authors' code: the first check after ``max(int(0.22 N), 1)`` steps, then every
    ``max(previous - max(int(0.03 N), 1), max(int(0.06 N), 1))`` steps.
    """
    first, minimum = max(int(0.22 * num_steps), 1), max(int(0.06 * num_steps), 1)
    decrease = max(int(0.03 * num_steps), 1)
    marks, step, length = [], 0, first
    while step + length <= num_steps:
        step += length
        marks.append(step)
        length = max(length - decrease, minimum)
    return marks


# ----------------------------------------------------------------------------------------------
# One run (pure TensorFlow)


def _broadcast(vector, like):
    """``(N,)`` reshaped to ``(N, 1, ..., 1)`` for an image batch ``like``."""
    return tf.reshape(vector, tf.concat([[-1], tf.ones([tf.rank(like) - 1], tf.int32)], 0))


def apgd_run(model_fn, clean, labels, targets, start, epsilon, num_steps, clip_min, clip_max, *,
             norm: float, loss: str, target_success: bool):
    """One APGD run from ``start``; returns ``(x_best, loss_best, x_success, success)``.

    ``x_best`` has the highest loss seen, ``x_success`` is the last iterate that succeeded
    (misclassified, or classified as ``targets`` when ``target_success``) where ``success``.
    ``num_steps`` is an int32 tensor; ``N`` steps cost ``N + 1`` forward/backward passes.
    """
    def evaluate(x):
        holder = {}

        def objective(images):
            holder["logits"] = model_fn(images)
            return apgd_objective(holder["logits"], labels, targets, loss)

        value, gradient = value_and_input_gradient(objective, x)
        goal = targets if target_success else labels
        return value, gradient, attack_success(holder["logits"], goal, target_success)

    steps_f = tf.cast(num_steps, tf.float32)
    first = tf.maximum(tf.cast(tf.floor(0.22 * steps_f), tf.int32), 1)
    minimum = tf.maximum(tf.cast(tf.floor(0.06 * steps_f), tf.int32), 1)
    decrease = tf.maximum(tf.cast(tf.floor(0.03 * steps_f), tf.int32), 1)
    project_ = functools.partial(project, clean=clean, epsilon=epsilon, norm=norm,
                                 clip_min=clip_min, clip_max=clip_max)

    x0 = project_(start)
    loss0, grad0, success0 = evaluate(x0)
    num = tf.shape(clean)[0]
    state = {
        "x": x0, "x_old": x0, "grad": grad0, "eta": tf.fill([num], 2.0 * epsilon),
        "x_best": x0, "grad_best": grad0, "loss_best": loss0, "x_success": x0,
        "success": success0, "prev_loss": loss0, "increases": tf.zeros([num], tf.int32),
        "since": tf.constant(0, tf.int32), "length": first,
        "best_at_check": loss0, "reduced_at_check": tf.ones([num], tf.bool),
    }

    def body(step, s):
        s = dict(s)
        alpha = tf.where(step > 0, MOMENTUM, 1.0)
        eta = _broadcast(s["eta"], clean)
        z = project_(ascent_step(s["x"], s["grad"], eta, norm))
        x_new = project_(s["x"] + alpha * (z - s["x"]) + (1.0 - alpha) * (s["x"] - s["x_old"]))
        value, grad, success = evaluate(x_new)
        s["x_old"] = s["x"]
        s["x_success"] = keep_better(s["x_success"], x_new, success)
        s["success"] = s["success"] | success
        improved = value > s["loss_best"]
        s["x_best"] = keep_better(s["x_best"], x_new, improved)
        s["grad_best"] = keep_better(s["grad_best"], grad, improved)
        s["loss_best"] = tf.where(improved, value, s["loss_best"])
        s["increases"] += tf.cast(value > s["prev_loss"], tf.int32)
        s["prev_loss"] = value
        s["since"] += 1
        check = tf.equal(s["since"], s["length"])
        oscillating = tf.cast(s["increases"], tf.float32) <= RHO * tf.cast(s["length"], tf.float32)
        stalled = ~s["reduced_at_check"] & (s["best_at_check"] >= s["loss_best"])
        halve = check & (oscillating | stalled)
        s["eta"] = tf.where(halve, s["eta"] / 2.0, s["eta"])
        s["x"] = keep_better(x_new, s["x_best"], halve)
        s["grad"] = keep_better(grad, s["grad_best"], halve)
        s["reduced_at_check"] = tf.where(check, oscillating | stalled, s["reduced_at_check"])
        s["best_at_check"] = tf.where(check, s["loss_best"], s["best_at_check"])
        s["increases"] = tf.where(check, 0, s["increases"])
        s["length"] = tf.where(check, tf.maximum(s["length"] - decrease, minimum), s["length"])
        s["since"] = tf.where(check, 0, s["since"])
        return step + 1, s

    _, state = tf.while_loop(lambda step, _: step < num_steps, body,
                             (tf.constant(0, tf.int32), state))
    return state["x_best"], state["loss_best"], state["x_success"], state["success"]


def _compiled_run(model, image_shape: tuple, *, norm: float, loss: str, targeted: bool,
                  target_success: bool):
    """``(clean, labels, targets, indices, eps, steps, seed, stream, lo, hi) -> run`` compiled.

    One trace per model, configuration and image shape: the batch axis is left free, since the
    later runs attack only the examples still unbroken.
    """
    key = ("apgd", image_shape, norm, loss, targeted, target_success,
           accepts_training_flag(model))
    vector = functools.partial(tf.TensorSpec, [None])
    scalar = functools.partial(tf.TensorSpec, [])
    signature = [tf.TensorSpec([None, *image_shape], tf.float32), vector(tf.int32),
                 vector(tf.int32), vector(tf.int64), scalar(tf.float32), scalar(tf.int32),
                 tf.TensorSpec([2], tf.int64), scalar(tf.int64), scalar(tf.float32),
                 scalar(tf.float32)]

    def build():
        get_model = weak_model(model)

        @tf.function(input_signature=signature)
        def run(clean, labels, targets, indices, epsilon, num_steps, seed, stream, clip_min,
                clip_max):
            start = random_start(clean, epsilon, norm, seed, indices, stream)
            return apgd_run(attack_logits_fn(get_model()), clean, labels,
                            targets if targeted else None, start, epsilon, num_steps, clip_min,
                            clip_max, norm=norm, loss=loss, target_success=target_success)

        return run

    return compiled(model, key, build)


# ----------------------------------------------------------------------------------------------
# Restarts and targets over chunks (also used by evaluate_robustness on subsets)


def target_ranks(model, images, labels, num_targets: int, batch_size: int) -> np.ndarray:
    """``(N, num_targets)`` classes ranked 2nd, 3rd, ... by the clean scores, excluding ``y``."""
    logits_fn = aligned_logits(model)
    parts = []
    for begin in range(0, len(images), batch_size):
        scores = np.array(logits_fn(images[begin:begin + batch_size]), np.float32)
        scores[np.arange(len(scores)), labels[begin:begin + batch_size]] = -np.inf
        parts.append(np.argsort(-scores, axis=1, kind="stable")[:, :num_targets])
    return np.concatenate(parts).astype(np.int32)


def apgd_examples(model, images, labels, indices, *, epsilon: float, num_steps: int, loss: str,
                  targeted: bool, norm: float, restarts: int, seed, clip_min: float,
                  clip_max: float, batch_size: int, num_targets: int = 9, target_labels=None):
    """APGD on validated numpy arrays; returns ``(adversarial (N, ...), success (N,) bool)``.

    Each (target, restart) run attacks only the examples not yet successful, chunk by chunk;
    example ``i`` draws its random start from ``(seed, indices[i], run)``, so its result does not
    depend on the chunking or on which other examples are attacked.
    """
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels, np.int32)
    indices = np.asarray(indices, np.int64)
    explicit = target_labels is not None
    if targeted and not explicit:
        num_classes = int(attack_logits_fn(model)(images[:1]).shape[1])
        target_table = target_ranks(model, images, labels, min(num_targets, num_classes - 1),
                                    batch_size)
    else:
        target_table = np.asarray(labels if target_labels is None else target_labels,
                                  np.int32)[:, None]
    run = _compiled_run(model, images.shape[1:], norm=norm, loss=loss, targeted=targeted,
                        target_success=explicit)
    adversarial, success = images.copy(), np.zeros(len(images), bool)
    best_loss = np.full(len(images), -np.inf, np.float32)
    numbers = (tf.constant(epsilon, tf.float32), tf.constant(num_steps, tf.int32),
               seed_tensor(seed) if not isinstance(seed, tf.Tensor) else seed)
    bounds = (tf.constant(clip_min, tf.float32), tf.constant(clip_max, tf.float32))
    for rank in range(target_table.shape[1]):
        for restart in range(restarts):
            todo = np.flatnonzero(~success)
            stream = tf.constant(_STREAM_APGD + 256 * rank + restart, tf.int64)
            for begin in range(0, len(todo), batch_size):
                part = todo[begin:begin + batch_size]
                x_best, loss_best, x_success, ok = aligned_call(
                    run, 4, tf.constant(images[part]), tf.constant(labels[part]),
                    tf.constant(target_table[part, rank]), tf.constant(indices[part]),
                    numbers[0], numbers[1], numbers[2], stream, *bounds)
                ok, loss_best = ok.numpy(), loss_best.numpy()
                higher = ~ok & (loss_best > best_loss[part])
                adversarial[part[ok]] = x_success.numpy()[ok]
                adversarial[part[higher]] = x_best.numpy()[higher]
                best_loss[part[higher]] = loss_best[higher]
                success[part[ok]] = True
    return adversarial, success


def check_apgd_loss(loss, targeted: bool, num_classes: int) -> str:
    """``loss`` after checking it is known and the model has enough classes for it."""
    check_choice(loss, "loss", APGD_LOSSES)
    needed = 4 if (loss == "dlr" and targeted) else 3 if loss == "dlr" else 2
    if num_classes < needed:
        raise ValueError(f"loss={loss!r}{' targeted' if targeted else ''} needs a model with at "
                         f"least {needed} classes (DLR divides by z_pi1 - z_pi3), got "
                         f"{num_classes} classes; use loss='ce'")
    return loss


def apgd_attack(model, input_image, input_label, epsilon, num_steps=100, loss="ce",
                targeted=False, norm=np.inf, restarts=1, seed=None, *, clip_value_min=0.,
                clip_value_max=1.0, num_targets=9, target_label=None,
                batch_size=DEFAULT_BATCH_SIZE):
    """Auto-PGD (module docstring): PGD with momentum and a self-adapting step size.

    Args:
        model: any callable mapping a batch to logits ``(N, K)`` (a softmax head is attacked
            through its log-probabilities, with the logits' results); never modified.
        input_image: ``(N, ...)`` clean images in ``[clip_value_min, clip_value_max]``.
        input_label: the TRUE classes, in any form of :func:`adversarial.contract.parse_labels`.
        epsilon: radius of the ball, ``>= 0`` (``0`` returns the input).
        num_steps: iterations ``N >= 1`` (``N + 1`` forward/backward passes per run).
        loss: ``"ce"`` or ``"dlr"`` (needs ``K >= 3``; targeted ``K >= 4``).
        targeted: APGD-T: for each of the ``num_targets`` classes ranked highest after ``y`` on
            the clean input, a run on the targeted loss (``-CE(z, t)`` or targeted DLR); the
            examples misclassified by an earlier run are not attacked again.
        norm: ``np.inf`` or ``2``.
        restarts: random starts per target; later restarts attack only unbroken examples.
        seed: int; the start of example ``i`` depends only on ``(seed, i, run)``, so the result
            does not depend on ``batch_size``. ``None`` draws a seed.
        clip_value_min, clip_value_max: valid input range.
        num_targets: target classes of APGD-T (at most ``K - 1`` are used).
        target_label: explicit targets (with ``targeted=True``): success means ``argmax = t``.
        batch_size: examples per compiled call (bounds the memory).

    Returns:
        ``tf.Tensor`` float32 shaped like ``input_image``: per example, an iterate that
        succeeded if one did, else the highest-loss point found.

    Raises:
        ValueError, TypeError: bad arguments, naming the argument and showing the value.
    """
    if not callable(model):
        raise TypeError(f"model must be callable (batch -> logits), got {type(model)!r}")
    epsilon = check_real(epsilon, "epsilon", minimum=0.0)
    num_steps, restarts = check_int(num_steps, "num_steps"), check_int(restarts, "restarts")
    num_targets, batch_size = check_int(num_targets, "num_targets"), check_batch_size(batch_size)
    clip_min, clip_max = check_clip_range(clip_value_min, clip_value_max)
    norm = check_norm(norm)
    check_choice(loss, "loss", APGD_LOSSES)
    if target_label is not None and not targeted:
        raise ValueError(f"target_label needs targeted=True, got targeted={targeted!r}")
    seed_value = seed_tensor(seed)
    images, labels, num_classes = prepare_batch(model, input_image, input_label,
                                                clip_min=clip_min, clip_max=clip_max)
    if epsilon == 0.0 or images.shape[0] == 0:
        return images
    check_apgd_loss(loss, targeted and target_label is None, num_classes)
    targets = None if target_label is None else parse_labels(
        target_label, int(images.shape[0]), num_classes, "target_label")
    adversarial, _ = apgd_examples(
        model, images.numpy(), labels.numpy(), np.arange(images.shape[0]), epsilon=epsilon,
        num_steps=num_steps, loss=loss, targeted=bool(targeted), norm=norm, restarts=restarts,
        seed=seed_value, clip_min=clip_min, clip_max=clip_max, batch_size=batch_size,
        num_targets=num_targets, target_labels=targets)
    return tf.constant(adversarial)
