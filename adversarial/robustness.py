"""Robust accuracy that is hard to fool: an AutoAttack-style ensemble with sanity checks.

A single attack gives an upper bound on robust accuracy, and a model can push that bound up
without being robust: a saturated softmax (logits multiplied by 20) gives zero cross-entropy
gradients, a model that rounds its input has no gradient at all. Following Croce & Hein
("Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks", ICML 2020), :func:`evaluate_robustness` runs diverse attacks one after the other, each
on the examples still unbroken, and counts an example robust only if EVERY attack failed on it
(the per-example worst case):

* ``"apgd-ce"``: APGD on the cross entropy;
* ``"apgd-t"``: APGD-T on the targeted DLR loss (scale-invariant, so it sees through a
  saturated softmax), over the classes ranked highest after the label;
* ``"pgd-margin"``: PGD on the margin loss (Carlini & Wagner) with random restarts;
* ``"square"``: the black-box Square Attack (no gradients: immune to gradient masking).

It also runs the checks of Carlini et al. ("On evaluating adversarial robustness", 2019) and
reports each failed one as a readable warning: input gradients missing, zero or not finite;
probability outputs; outputs that change between calls; a black-box attack that breaks
examples the white-box attacks could not; accuracy that stays high at a large epsilon.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from adversarial._common import (
    DEFAULT_BATCH_SIZE,
    accepts_training_flag,
    aligned_call,
    aligned_logits,
    attack_logits_fn,
    attack_objective,
    check_batch_size,
    check_choice,
    check_clip_range,
    check_int,
    check_norm,
    check_real,
    compiled_attack,
    prepare_batch,
    scores_fn,
    seed_tensor,
    value_and_input_gradient,
)
from adversarial.apgd import apgd_examples
from adversarial.square import square_examples

ATTACKS = ("apgd-ce", "apgd-t", "pgd-margin", "square")
WHITE_BOX = ("apgd-ce", "apgd-t", "pgd-margin")
LARGE_EPSILON_ACCURACY = 0.1  # robust accuracy above this at the large epsilon is suspicious
BLACK_BOX_MARGIN = 0.01  # Square breaking more than this share after white-box is suspicious


def wilson_interval(successes: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (Wilson, JASA 1927).

    ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``p = successes / n``;
    unlike the normal approximation it stays in ``[0, 1]`` and is sensible at 0% and 100%.
    """
    if total == 0:
        return (0.0, 1.0)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


# ----------------------------------------------------------------------------------------------
# sanity checks


def _probe_gradients(model, images, labels) -> tuple[str | None, np.ndarray | None]:
    """``(problem, per-example gradient L1 norms)`` of the CE at the clean points."""
    logits_fn = attack_logits_fn(model)
    try:
        _, gradient = value_and_input_gradient(
            lambda x: attack_objective(logits_fn(x), labels, "ce", False), tf.constant(images))
    except ValueError as err:
        if "no gradient" not in str(err):
            raise
        return ("the model has no input gradient (None): gradient attacks were skipped and "
                "only the black-box attack ran; consider BPDA for a differentiable surrogate"), None
    gradient = gradient.numpy().reshape(len(images), -1)
    if not np.all(np.isfinite(gradient)):
        bad = int(np.sum(~np.isfinite(gradient).all(1)))
        return f"non-finite input gradients on {bad} of {len(images)} probed examples", None
    return None, np.abs(gradient).sum(1)


def _sanity_before(model, images, labels, batch_size) -> tuple[list[str], bool]:
    """Warnings from the clean inputs, and whether gradient attacks can run."""
    warnings = []
    probe = images[:min(len(images), batch_size, 128)]
    scores = scores_fn(model, probabilities="log")
    if scores.kind == "log-probabilities":
        warnings.append("the model returns probabilities, not logits: it was attacked through "
                        "its log-probabilities (same cross entropy and margin as the logits); "
                        "pass a logits model to avoid the 1e-30 floor of log p")
    first, second = (np.asarray(attack_logits_fn(model)(tf.constant(probe))) for _ in range(2))
    if not np.allclose(first, second, rtol=1e-5, atol=1e-5):
        warnings.append(f"the model's outputs change between two calls on the same input (max "
                        f"difference {np.max(np.abs(first - second)):.3g}): a randomised model; "
                        f"attack it with Expectation over Transformation and report the "
                        f"accuracy over several runs")
    problem, norms = _probe_gradients(model, probe, labels[:len(probe)])
    if problem:
        warnings.append(problem)
        return warnings, "no input gradient" not in problem
    zero = int(np.sum(norms == 0))
    if zero:
        warnings.append(f"zero input gradients of the cross entropy on {zero} of {len(probe)} "
                        f"probed examples ({zero / len(probe):.0%}): a saturated softmax or a "
                        f"masked gradient; the margin/DLR attacks and Square are the ones to "
                        f"trust")
    return warnings, True


# ----------------------------------------------------------------------------------------------
# the attacks, each on the examples still robust


def _run_attack(name, model, images, labels, indices, *, epsilon, norm, seed, clip, batch_size,
                num_steps, num_queries, restarts, num_targets, num_classes):
    """``(adversarial, success)`` of one attack of the ensemble on a subset."""
    common = {"epsilon": epsilon, "num_steps": num_steps, "norm": norm, "seed": seed,
              "clip_min": clip[0], "clip_max": clip[1], "batch_size": batch_size}
    if name == "apgd-ce":
        return apgd_examples(model, images, labels, indices, loss="ce", targeted=False,
                             restarts=restarts, **common)
    if name == "apgd-t":
        loss = "dlr" if num_classes >= 4 else "ce"
        return apgd_examples(model, images, labels, indices, loss=loss, targeted=True,
                             restarts=restarts, num_targets=num_targets, **common)
    if name == "pgd-margin":
        return _pgd_margin(model, images, labels, indices, restarts=max(restarts, 2), **common)
    return square_examples(model, images, labels, indices, epsilon=epsilon,
                           num_queries=num_queries, p_init=0.8, seed=seed, clip_min=clip[0],
                           clip_max=clip[1], batch_size=batch_size)


def _pgd_margin(model, images, labels, indices, *, epsilon, num_steps, norm, seed, clip_min,
                clip_max, batch_size, restarts):
    """PGD on the margin loss, step ``2.5 eps / num_steps`` (Madry et al.), with restarts."""
    attack = compiled_attack(model, training_flag=accepts_training_flag(model),
                             soft_label=False, norm=norm,
                             loss="margin", targeted=False, random_init=True, momentum=False,
                             restarts=restarts)
    numbers = (tf.constant(epsilon, tf.float32), tf.constant(2.5 * epsilon / num_steps),
               tf.constant(num_steps, tf.int32), tf.constant(0.0), seed,
               tf.constant(clip_min, tf.float32), tf.constant(clip_max, tf.float32))
    logits_fn = aligned_logits(model)
    adversarial, success = np.empty_like(images), np.zeros(len(images), bool)
    for begin in range(0, len(images), batch_size):
        part = slice(begin, begin + batch_size)
        adv = aligned_call(attack, 3, tf.constant(images[part]), tf.constant(labels[part]),
                           tf.constant(indices[part], tf.int64), *numbers)
        adversarial[part] = adv.numpy()
        success[part] = np.argmax(np.asarray(logits_fn(adv)), 1) != labels[part]
    return adversarial, success


def _predictions(model, images, batch_size) -> np.ndarray:
    logits_fn = aligned_logits(model)
    return np.concatenate([np.argmax(np.asarray(logits_fn(tf.constant(images[i:i + batch_size]))),
                                     1) for i in range(0, len(images), batch_size)])


def _large_epsilon(norm: float, clip, image_size: int) -> float:
    """A budget that reaches a uniform gray image from any input: accuracy must drop to ~0."""
    width = clip[1] - clip[0] if math.isfinite(clip[1] - clip[0]) else 2.0
    return 0.5 * width if norm != 2 else 0.5 * width * math.sqrt(image_size)


def _sanity_large_epsilon(model, images, labels, robust, *, norm, seed, clip, batch_size,
                          num_classes, gradients) -> str | None:
    """Warning when a strong attack at a huge epsilon leaves many examples correct."""
    keep = np.flatnonzero(robust)[:64]
    if len(keep) == 0:
        return None
    epsilon = _large_epsilon(norm, clip, int(np.prod(images.shape[1:])))
    name = "pgd-margin" if gradients else "square"  # the margin does not saturate
    _, success = _run_attack(name, model, images[keep], labels[keep], keep, epsilon=epsilon,
                             norm=norm, seed=seed, clip=clip, batch_size=batch_size,
                             num_steps=20, num_queries=200, restarts=1, num_targets=3,
                             num_classes=num_classes)
    left = 1.0 - success.mean()
    if left <= LARGE_EPSILON_ACCURACY:
        return None
    return (f"at the large epsilon {epsilon:g} (enough to reach a uniform gray image) {name} "
            f"leaves {left:.0%} of {len(keep)} robust examples correct: the attacks are not "
            f"working (gradient masking or a bug), so robust_accuracy is not trustworthy")


def _check_attacks(attacks) -> tuple:
    if isinstance(attacks, str) or not attacks:
        raise ValueError(f"attacks must be a non-empty sequence of names from {ATTACKS}, "
                         f"got {attacks!r}")
    for name in attacks:
        check_choice(name, "attacks", ATTACKS)
    return tuple(attacks)


def evaluate_robustness(model, images, labels, epsilon, *, norm=np.inf, clip_value_min=0.,
                        clip_value_max=1., seed=0, batch_size=DEFAULT_BATCH_SIZE,
                        attacks=ATTACKS, num_steps=100, num_queries=1000, restarts=1,
                        num_targets=9, check_large_epsilon=True) -> dict:
    """Robust accuracy under an ensemble of attacks, per-example worst case, with warnings.

    ``robust_i = [f(x_i) = y_i] * prod_a [f(A_a(x_i)) = y_i]`` over the attacks ``a`` run in the
    order given (each only on the examples still robust); ``robust_accuracy = mean_i robust_i``
    over ALL examples (misclassified clean examples count as broken), with a 95% Wilson interval.

    Args:
        model: any callable mapping a batch to scores (logits, or a softmax model in any form:
            attacked through its log-probabilities, which gives the logits' results).
        images: ``(N, ...)`` in ``[clip_value_min, clip_value_max]`` (uint8 with ``0, 255``).
        labels: true classes in any form of :func:`adversarial.contract.parse_labels`.
        epsilon: the budget ``> 0`` in the units of the images.
        norm: ``np.inf`` or ``2`` (Square is L-inf only and is skipped for L2).
        clip_value_min, clip_value_max: valid input range.
        seed: int; every example's random numbers depend only on ``(seed, its index)``, so the
            result does not depend on ``batch_size``.
        batch_size: examples per compiled call (bounds the memory).
        attacks: a subset of ``ATTACKS`` in the order to run.
        num_steps: APGD/PGD iterations (100 in AutoAttack). num_queries: Square's queries
            (5,000 in AutoAttack). restarts: random starts of APGD (PGD-margin uses at least
            2). num_targets: target classes of APGD-T (9 in AutoAttack).
        check_large_epsilon: also attack at an epsilon that reaches a gray image and warn if
            accuracy stays above 10% there.

    Returns:
        dict with ``clean_accuracy``, ``robust_accuracy``, ``robust_accuracy_ci95`` (low, high),
        ``num_examples``, ``epsilon``, ``norm``, ``per_attack`` (robust accuracy after each
        attack, cumulative in the order run), ``broken_by`` (examples each attack broke first),
        ``robust`` (``(N,)`` bool), ``skipped`` ({attack: reason}) and ``warnings`` (one
        readable string per failed sanity check; empty when all pass).

    Raises:
        ValueError, TypeError: bad arguments, naming the argument and showing the value.
    """
    if check_real(epsilon, "epsilon") == 0.0:
        raise ValueError(f"epsilon must be > 0 (the clean accuracy, epsilon 0, comes from "
                         f"adversarial.robustness.clean_evaluation), got {epsilon!r}")
    epsilon = check_real(epsilon, "epsilon", minimum=0.0, strict=True)
    norm = check_norm(norm)
    clip = check_clip_range(clip_value_min, clip_value_max)
    batch_size = check_batch_size(batch_size)
    attacks = _check_attacks(attacks)
    num_steps, num_queries = check_int(num_steps, "num_steps"), check_int(num_queries,
                                                                          "num_queries")
    restarts, num_targets = check_int(restarts, "restarts"), check_int(num_targets,
                                                                       "num_targets")
    seed = seed_tensor(check_int(seed, "seed", minimum=0))
    tensor, label_tensor, num_classes = prepare_batch(
        model, images, labels, clip_min=clip[0], clip_max=clip[1], label_name="labels",
        image_name="images")
    x, y = tensor.numpy(), label_tensor.numpy()
    if len(x) == 0:
        raise ValueError(f"images must hold at least one example, got shape {x.shape}")
    warnings, gradients = _sanity_before(model, x, y, batch_size)
    correct = _predictions(model, x, batch_size) == y
    robust = correct.copy()
    clean_accuracy = float(correct.mean())
    per_attack, broken_by, skipped = {}, {}, {}
    settings = {"epsilon": epsilon, "norm": norm, "seed": seed, "clip": clip,
                "batch_size": batch_size, "num_steps": num_steps, "num_queries": num_queries,
                "restarts": restarts, "num_targets": num_targets, "num_classes": num_classes}
    for name in attacks:
        reason = _skip_reason(name, gradients, norm, x.shape)
        if reason:
            skipped[name] = reason
            continue
        todo = np.flatnonzero(robust)
        if len(todo):
            _, success = _run_attack(name, model, x[todo], y[todo], todo, **settings)
            robust[todo[success]] = False
            broken_by[name] = int(success.sum())
        else:
            broken_by[name] = 0
        per_attack[name] = float(robust.mean())
    warnings += _sanity_after(model, x, y, correct, broken_by, settings, gradients,
                              check_large_epsilon)
    return {"clean_accuracy": clean_accuracy, "robust_accuracy": float(robust.mean()),
            "robust_accuracy_ci95": wilson_interval(int(robust.sum()), len(robust)),
            "num_examples": len(robust), "epsilon": epsilon, "norm": norm,
            "per_attack": per_attack, "broken_by": broken_by, "robust": robust,
            "skipped": skipped, "warnings": warnings}


def clean_evaluation(model, images, labels, *, clip_value_min=0., clip_value_max=1.,
                     batch_size=DEFAULT_BATCH_SIZE) -> dict:
    """The epsilon-0 row of a robustness table, in the schema of :func:`evaluate_robustness`.

    No attack runs: ``robust_accuracy = clean_accuracy = mean_i [f(x_i) = y_i]``, with its 95%
    Wilson interval, ``per_attack = {}`` and ``warnings = []``. The images and labels pass the
    same checks as in :func:`evaluate_robustness`.
    """
    clip = check_clip_range(clip_value_min, clip_value_max)
    batch_size = check_batch_size(batch_size)
    tensor, label_tensor, _ = prepare_batch(model, images, labels, clip_min=clip[0],
                                            clip_max=clip[1], label_name="labels",
                                            image_name="images")
    x, y = tensor.numpy(), label_tensor.numpy()
    if len(x) == 0:
        raise ValueError(f"images must hold at least one example, got shape {x.shape}")
    correct = _predictions(model, x, batch_size) == y
    accuracy = float(correct.mean())
    return {"clean_accuracy": accuracy, "robust_accuracy": accuracy,
            "robust_accuracy_ci95": wilson_interval(int(correct.sum()), len(correct)),
            "num_examples": len(correct), "epsilon": 0.0, "norm": np.inf, "per_attack": {},
            "broken_by": {}, "robust": correct, "skipped": {}, "warnings": []}


def _skip_reason(name, gradients, norm, shape) -> str | None:
    if name in WHITE_BOX and not gradients:
        return "the model has no input gradient"
    if name == "square" and norm == 2:
        return "the Square Attack here is L-inf only"
    if name == "square" and (len(shape) != 4 or shape[1] < 2 or shape[2] < 2):
        return f"the Square Attack needs images (N, H, W, C), got shape {shape}"
    return None


def _sanity_after(model, x, y, correct, broken_by, settings, gradients, check_large) -> list[str]:
    warnings = []
    order = list(broken_by)  # the attacks run, in order
    white_before = "square" in order and any(name in WHITE_BOX
                                             for name in order[:order.index("square")])
    black = broken_by.get("square", 0)
    if gradients and white_before and black > max(BLACK_BOX_MARGIN * len(x), 1):
        warnings.append(f"the black-box Square Attack broke {black} examples that every "
                        f"white-box attack missed: the gradients mislead the attacks "
                        f"(gradient masking); trust the ensemble, not a single gradient attack")
    if check_large:
        warning = _sanity_large_epsilon(
            model, x, y, correct, norm=settings["norm"], seed=settings["seed"], clip=settings["clip"],
            batch_size=settings["batch_size"], num_classes=settings["num_classes"],
            gradients=gradients)
        if warning:
            warnings.append(warning)
    return warnings
