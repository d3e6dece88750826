"""Robustness evaluation: robust accuracy, targeted success, minimal distortion, transferability.

All functions take any model that maps a batch to scores (see :mod:`adversarial.contract`: a
softmax head is read through its log-probabilities), images as NHWC arrays in
``[clip_value_min, clip_value_max]`` (``[0, 1]`` by default) and labels in every form of
:func:`adversarial.contract.parse_labels` (``(N,)``, Keras-style ``(N, 1)``, one-hot rows);
they run the attacks in chunks of ``batch_size`` (the package's attacks chunk the data
themselves, so their random starts, and the results, do not depend on ``batch_size``) and
return plain floats, dicts and numpy arrays. Plotting lives in :mod:`adversarial.plots`.

Attacks are given by name (``"fgsm"``, ``"pgd"``, ``"mim"``, resolved to
:func:`adversarial.fgsm_attack` etc.) or as any callable
``attack(model, images, labels, epsilon=..., **kwargs) -> adversarial images``.
For the iterative attacks the step size follows the epsilon: ``step_size = step_size_factor *
epsilon / num_steps`` (Madry et al., ICLR 2018, use 2.5), so that every epsilon gets an attack of
the same relative strength.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from adversarial._common import attack_logits_fn, num_classes_of
from adversarial.contract import as_image_tensor, check_int, parse_labels
from adversarial.distances import rms_distance

ATTACK_NAMES = ("fgsm", "pgd", "mim")
ITERATIVE_ATTACKS = ("pgd", "mim")
DEFAULT_EPSILONS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)


# ----------------------------------------------------------------------------------------------
# argument checks and conversions


def _check_positive_int(name: str, value) -> int:
    return check_int(value, name, minimum=1)


def _check_epsilon(name: str, value) -> float:
    try:
        eps = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return eps


def _as_images(images) -> np.ndarray:
    array = as_image_tensor(images, "images").numpy()
    if array.ndim < 2 or len(array) == 0:
        raise ValueError(f"images must be a non-empty batch (N, ...), got shape {array.shape!r}")
    return array


def _as_class_indices(labels, num_images: int, name: str = "labels",
                      num_classes: int | None = None) -> np.ndarray:
    """Class indices ``(N,)`` int32 by THE label parser (:func:`adversarial.contract.parse_labels`)."""
    return parse_labels(labels, num_images, num_classes, name)


def _model_labels(model, images: np.ndarray, labels, name: str = "labels") -> np.ndarray:
    """Labels parsed against the model's number of classes (out of range -> ValueError)."""
    num_classes = num_classes_of(model, as_image_tensor(images[:32], "images"))
    return parse_labels(labels, len(images), num_classes, name)


def resolve_attack(attack) -> tuple[str, Callable]:
    """``(name, function)`` of an attack given by name or as a callable."""
    if callable(attack):
        return getattr(attack, "__name__", type(attack).__name__), attack
    if attack not in ATTACK_NAMES:
        raise ValueError(f"attack must be one of {ATTACK_NAMES} or a callable, got {attack!r}")
    import adversarial

    return attack, getattr(adversarial, f"{attack}_attack")


def _attack_kwargs(name: str, epsilon: float, num_steps: int, step_size_factor: float,
                   seed, extra: Mapping | None) -> dict:
    kwargs = {"epsilon": epsilon}
    if name in ITERATIVE_ATTACKS:
        kwargs.update(num_steps=num_steps, step_size=step_size_factor * epsilon / num_steps)
    if name in ATTACK_NAMES and seed is not None:
        kwargs["seed"] = seed
    kwargs.update(extra or {})
    return kwargs


# ----------------------------------------------------------------------------------------------
# batched predictions and attacks


def predict_logits(model, images, batch_size: int = 256) -> np.ndarray:
    """Scores ``(N, K)`` the attacks use, in inference mode, batch by batch.

    Logits for a logits model; for a softmax model (any form) the scores before the softmax or
    the log-probabilities (same argmax, same cross entropy); ``[0, z]`` for one binary score.
    """
    images = _as_images(images)
    batch_size = _check_positive_int("batch_size", batch_size)
    logits_fn = attack_logits_fn(model)
    parts = [np.asarray(logits_fn(images[i:i + batch_size]))
             for i in range(0, len(images), batch_size)]
    return np.concatenate(parts).astype(np.float32)


def predict_labels(model, images, batch_size: int = 256) -> np.ndarray:
    """Predicted classes ``argmax_k f_k(x)``, shape ``(N,)`` int."""
    return np.argmax(predict_logits(model, images, batch_size), axis=1)


def accuracy(model, images, labels, batch_size: int = 256) -> float:
    """Share of ``images`` whose predicted class equals ``labels``, in [0, 1]."""
    images = _as_images(images)
    logits = predict_logits(model, images, batch_size)
    labels = _as_class_indices(labels, len(images), num_classes=logits.shape[1])
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def adversarial_examples(model, images, labels, attack="pgd", epsilon: float = 0.3, *,
                         batch_size: int = 256, **attack_kwargs) -> np.ndarray:
    """Run ``attack`` on ``images`` batch by batch; returns the adversarial images as numpy.

    Args:
        model: callable mapping ``(N, ...)`` to logits ``(N, K)``.
        images: ``(N, ...)`` float images.
        labels: ``(N,)``/``(N, 1)`` class indices or ``(N, K)`` one-hot (the targets if
            ``targeted=True`` is passed on to the attack).
        attack: ``"fgsm"``, ``"pgd"``, ``"mim"`` or a callable.
        epsilon: the attack's budget, >= 0; 0 returns the images unchanged.
        batch_size: examples per compiled call (memory); the package's attacks give the same
            result for every batch size.
        **attack_kwargs: passed on to the attack (``num_steps``, ``step_size``, ``seed``, ...).

    Returns:
        ``(N, ...)`` float32 array.
    """
    images = _as_images(images)
    labels = _model_labels(model, images, labels)
    epsilon = _check_epsilon("epsilon", epsilon)
    batch_size = _check_positive_int("batch_size", batch_size)
    name, attack_fn = resolve_attack(attack)
    if epsilon == 0:
        return images.copy()
    if name in ATTACK_NAMES:  # the attack chunks itself, with per-example random streams
        return np.asarray(attack_fn(model, images, labels, epsilon=epsilon,
                                    batch_size=batch_size, **attack_kwargs), np.float32)
    parts = [np.asarray(attack_fn(model, images[i:i + batch_size], labels[i:i + batch_size],
                                  epsilon=epsilon, **attack_kwargs))
             for i in range(0, len(images), batch_size)]
    return np.concatenate(parts).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# robust accuracy and targeted success


def robust_accuracy(model, images, labels, epsilons: Sequence[float] = DEFAULT_EPSILONS,
                    attacks: Sequence = ATTACK_NAMES, *, num_steps: int = 20,
                    step_size_factor: float = 2.5, batch_size: int = 256, seed: int | None = 0,
                    attack_kwargs: Mapping | None = None) -> dict:
    """Accuracy under attack, ``mean_i [argmax f(x_adv_i) == y_i]`` over ALL examples.

    Examples that are already misclassified count as failures at every epsilon (no filtering to
    the correctly classified ones), so ``epsilon = 0`` gives the clean accuracy, and the numbers
    are comparable across models.

    Args:
        model: callable mapping ``(N, ...)`` to logits.
        images: ``(N, ...)`` images in the attack's clip range.
        labels: ``(N,)`` class indices or ``(N, K)`` one-hot.
        epsilons: L-inf budgets, each >= 0.
        attacks: names in ``("fgsm", "pgd", "mim")`` or callables.
        num_steps: steps of the iterative attacks (PGD-20 by default).
        step_size_factor: iterative step size is ``step_size_factor * epsilon / num_steps``.
        batch_size: examples per attack call.
        seed: seed of the attacks' random start (``None``: unseeded).
        attack_kwargs: further keyword arguments for every attack.

    Returns:
        ``{attack name: {epsilon (float): accuracy in [0, 1]}}``.
    """
    images = _as_images(images)
    labels = _model_labels(model, images, labels)
    epsilons = [_check_epsilon("epsilons", e) for e in epsilons]
    num_steps = _check_positive_int("num_steps", num_steps)
    if not float(step_size_factor) > 0:
        raise ValueError(f"step_size_factor must be > 0, got {step_size_factor!r}")
    if not attacks:
        raise ValueError(f"attacks must name at least one attack, got {attacks!r}")
    clean = accuracy(model, images, labels, batch_size)
    results = {}
    for attack in attacks:
        name, _ = resolve_attack(attack)
        results[name] = {}
        for eps in epsilons:
            if eps == 0:
                results[name][eps] = clean
                continue
            kwargs = _attack_kwargs(name, eps, num_steps, step_size_factor, seed, attack_kwargs)
            adv = adversarial_examples(model, images, labels, attack, batch_size=batch_size,
                                       **kwargs)
            results[name][eps] = accuracy(model, adv, labels, batch_size)
    return results


def random_target_labels(labels, num_classes: int, seed: int = 0) -> np.ndarray:
    """Target classes drawn uniformly among the ``num_classes - 1`` classes other than ``labels``."""
    num_classes = _check_positive_int("num_classes", num_classes)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 for a target != label, got {num_classes!r}")
    array = np.asarray(labels)
    labels = parse_labels(array, len(array) if array.ndim else 1, num_classes).astype(np.int64)
    shift = np.random.default_rng(seed).integers(1, num_classes, size=labels.shape)
    return ((labels + shift) % num_classes).astype(np.int32)


def targeted_success_rate(model, images, target_labels, attack="pgd", epsilon: float = 0.3, *,
                          true_labels=None, num_steps: int = 20, step_size_factor: float = 2.5,
                          batch_size: int = 256, seed: int | None = 0, **attack_kwargs) -> float:
    """Share of examples that a targeted attack moves into their target class.

    ``x_adv = argmin_{x' in B_eps(x)} l(f(x'), y_target)`` (the slides' targeted attacks), success
    when ``argmax f(x_adv) == y_target``. Examples whose target equals their true label (if
    ``true_labels`` is given) are left out, since nothing has to move for them.

    Args:
        model: callable mapping ``(N, ...)`` to logits.
        images: ``(N, ...)`` images.
        target_labels: ``(N,)`` target classes (see :func:`random_target_labels`).
        attack: ``"fgsm"``, ``"pgd"``, ``"mim"`` or a callable accepting ``targeted=True``.
        epsilon: L-inf budget, >= 0.
        true_labels: optional ``(N,)`` true classes.
        num_steps, step_size_factor, batch_size, seed: as in :func:`robust_accuracy`.
        **attack_kwargs: passed on to the attack.

    Returns:
        The success rate in [0, 1].
    """
    images = _as_images(images)
    targets = _model_labels(model, images, target_labels, "target_labels")
    keep = np.ones(len(images), bool)
    if true_labels is not None:
        keep = _model_labels(model, images, true_labels, "true_labels") != targets
        if not keep.any():
            raise ValueError("true_labels equal target_labels everywhere; nothing to attack")
    name, _ = resolve_attack(attack)
    kwargs = _attack_kwargs(name, _check_epsilon("epsilon", epsilon),
                            _check_positive_int("num_steps", num_steps), step_size_factor, seed,
                            attack_kwargs)
    adv = adversarial_examples(model, images[keep], targets[keep], attack, targeted=True,
                               batch_size=batch_size, **kwargs)
    return float(np.mean(predict_labels(model, adv, batch_size) == targets[keep]))


# ----------------------------------------------------------------------------------------------
# minimal distortion


def minimal_distortion(model, images, labels, attack="pgd",
                       epsilons: Sequence[float] = tuple(np.round(np.arange(1, 51) * 0.01, 2)),
                       *, num_steps: int = 20, step_size_factor: float = 2.5,
                       batch_size: int = 256, seed: int | None = 0) -> dict:
    """Smallest L-inf budget on a grid at which ``attack`` flips each example's prediction.

    Szegedy et al. (ICLR 2014) measure the minimal distortion found by box-constrained L-BFGS;
    here the search is over the attack's L-inf budget: for each example the first ``epsilon`` of
    the increasing grid whose adversarial is misclassified (the search stops once every example
    has flipped). For the adversarial found there it also records Szegedy's
    distortion measure ``sqrt(sum_i r_i^2 / n)`` (the RMS of the perturbation ``r``, pixels in
    [0, 1]). Only the examples classified correctly without attack are searched.

    Args:
        model: callable mapping ``(N, ...)`` to logits.
        images: ``(N, ...)`` images.
        labels: ``(N,)`` class indices or one-hot.
        attack: ``"fgsm"``, ``"pgd"``, ``"mim"`` or a callable.
        epsilons: increasing grid of budgets > 0; its spacing is the resolution.
        num_steps, step_size_factor, batch_size, seed: as in :func:`robust_accuracy`.

    Returns:
        dict with ``epsilon`` ``(N,)`` (``nan`` for examples misclassified without attack,
        ``inf`` where no grid epsilon flips), ``rms`` ``(N,)`` (same convention),
        ``mean_epsilon`` and ``mean_rms`` (over flipped examples) and ``flipped_rate`` (share
        of the correctly classified examples flipped within the grid).
    """
    images = _as_images(images)
    labels = _model_labels(model, images, labels)
    grid = [_check_epsilon("epsilons", e) for e in epsilons]
    if not grid or min(grid) <= 0 or any(b <= a for a, b in itertools.pairwise(grid)):
        raise ValueError(f"epsilons must be increasing and > 0, got {epsilons!r}")
    name, _ = resolve_attack(attack)
    correct = predict_labels(model, images, batch_size) == labels
    eps_found = np.where(correct, np.inf, np.nan)
    rms = eps_found.copy()
    searched = np.flatnonzero(correct)
    for eps in grid:
        if not np.isinf(eps_found).any():
            break
        # all searched examples at every budget: constant shapes, so the attack traces once
        kwargs = _attack_kwargs(name, eps, num_steps, step_size_factor, seed, None)
        adv = adversarial_examples(model, images[searched], labels[searched], attack,
                                   batch_size=batch_size, **kwargs)
        new = np.isinf(eps_found[searched]) & (
            predict_labels(model, adv, batch_size) != labels[searched])
        if new.any():
            eps_found[searched[new]] = eps
            rms[searched[new]] = rms_distance(images[searched[new]], adv[new])
    done = np.isfinite(eps_found)
    return {"epsilon": eps_found, "rms": rms,
            "mean_epsilon": float(eps_found[done].mean()) if done.any() else math.nan,
            "mean_rms": float(rms[done].mean()) if done.any() else math.nan,
            "flipped_rate": float(done.sum() / max(correct.sum(), 1))}


# ----------------------------------------------------------------------------------------------
# cross-model transfer (Szegedy et al.'s tables)


def gaussian_noise_like(images, perturbations, seed: int = 0) -> np.ndarray:
    """Gaussian noise with, per example, the same L2 norm as ``perturbations``.

    ``n_i = z_i * ||r_i||_2 / ||z_i||_2`` with ``z_i ~ N(0, I)``: the baseline of Szegedy et al.
    that tells transfer of adversarial directions from mere distortion.
    """
    perturbations = np.asarray(perturbations, dtype=np.float32)
    z = np.random.default_rng(seed).standard_normal(perturbations.shape).astype(np.float32)
    axes = tuple(range(1, z.ndim))
    r_norm = np.sqrt(np.sum(perturbations ** 2, axis=axes, keepdims=True))
    z_norm = np.sqrt(np.sum(z ** 2, axis=axes, keepdims=True))
    return z * r_norm / np.maximum(z_norm, 1e-12)


def transfer_matrix(models: Mapping, images, labels, attack="fgsm", epsilon: float = 0.1, *,
                    num_steps: int = 20, step_size_factor: float = 2.5, batch_size: int = 256,
                    seed: int = 0, clip_value_min: float = 0.0,
                    clip_value_max: float = 1.0) -> dict:
    """Cross-model generalisation of adversarial examples with Gaussian-noise baselines.

    ``error[i, j]`` is the error rate of model ``j`` (over ALL examples) on the adversarial
    examples crafted on model ``i``; the diagonal is each model's error under its own attack (the
    100% diagonal of Szegedy et al.'s tables). ``noise_error[i, j]`` is model ``j``'s error on
    ``clip(x + n)`` where ``n`` is Gaussian noise with, per example, the L2 norm of model ``i``'s
    adversarial perturbation. Szegedy et al., "Intriguing properties of neural networks",
    ICLR 2014, tables 2 and 3.

    Args:
        models: ``{name: model}``, each mapping ``(N, ...)`` to logits.
        images: ``(N, ...)`` images.
        labels: ``(N,)`` class indices or one-hot.
        attack: ``"fgsm"``, ``"pgd"``, ``"mim"`` or a callable.
        epsilon: L-inf budget, > 0.
        num_steps, step_size_factor, batch_size, seed: as in :func:`robust_accuracy`.
        clip_value_min, clip_value_max: valid pixel range, for the attack and the noise.

    Returns:
        dict with ``names`` (list of M names, the row and column order), ``clean_error`` ``(M,)``,
        ``error`` ``(M, M)``, ``noise_error`` ``(M, M)`` and ``rms`` ``(M,)`` the mean
        ``sqrt(sum r^2 / n)`` distortion of each model's adversarials.
    """
    if not isinstance(models, Mapping) or not models:
        raise TypeError(f"models must be a non-empty mapping name -> model, got {models!r}")
    images = _as_images(images)
    labels = _model_labels(next(iter(models.values())), images, labels)
    epsilon = _check_epsilon("epsilon", epsilon)
    name, _ = resolve_attack(attack)
    kwargs = _attack_kwargs(name, epsilon, _check_positive_int("num_steps", num_steps),
                            step_size_factor, seed, None)
    if name in ATTACK_NAMES:
        kwargs.update(clip_value_min=clip_value_min, clip_value_max=clip_value_max)
    names = list(models)
    size = len(names)
    error, noise_error, rms = np.zeros((size, size)), np.zeros((size, size)), np.zeros(size)

    def error_rate(model, x):
        return 1.0 - accuracy(model, x, labels, batch_size)

    for i, source in enumerate(names):
        adv = adversarial_examples(models[source], images, labels, attack,
                                   batch_size=batch_size, **kwargs)
        r = adv - images
        noisy = np.clip(images + gaussian_noise_like(images, r, seed + i), clip_value_min,
                        clip_value_max)
        rms[i] = np.mean(rms_distance(images, adv))
        for j, target in enumerate(names):
            error[i, j] = error_rate(models[target], adv)
            noise_error[i, j] = error_rate(models[target], noisy)
    clean_error = np.array([error_rate(models[n], images) for n in names])
    return {"names": names, "clean_error": clean_error, "error": error,
            "noise_error": noise_error, "rms": rms}


# ----------------------------------------------------------------------------------------------
# loss surface around one example


def gradient_sign_direction(model, image, label, clip_value_min: float = 0.0,
                            clip_value_max: float = 1.0) -> np.ndarray:
    """``g = sign(grad_x l(f(x), y))`` for one image ``(H, W, C)``: FGSM's direction.

    Taken from :func:`adversarial.fgsm_attack` at ``epsilon = 1`` so that the package has a single
    loss-gradient implementation: ``x_adv - x = sign(g)`` where no clipping interferes. The image
    must lie in ``[clip_value_min, clip_value_max]``; the clip range is widened by 1 on each side.
    """
    _, fgsm = resolve_attack("fgsm")
    x = _as_images(np.asarray(image)[None])
    y = np.asarray([int(label)], dtype=np.int32)
    adv = np.asarray(fgsm(model, x, y, epsilon=1.0, clip_value_min=clip_value_min - 1.0,
                          clip_value_max=clip_value_max + 1.0))
    return np.sign(np.round(adv - x, 3))[0].astype(np.float32)


def loss_surface(model, image, label, *, radius: float = 0.3, resolution: int = 21,
                 seed: int = 0, clip: bool = False, clip_value_min: float = 0.0,
                 clip_value_max: float = 1.0, batch_size: int = 512) -> dict:
    """Loss and predicted class on the plane ``x' = x + a * g + b * g_perp`` around one image.

    ``g = sign(grad_x l(f(x), y))`` is the gradient sign direction (``a = epsilon`` is FGSM at
    ``epsilon``); ``g_perp`` is a Gaussian direction made orthogonal to ``g`` and scaled to the same
    L2 norm, so both axes measure distance alike. ``a, b`` run over ``[-radius, radius]``.
    The lecture's picture: the loss climbs steeply along ``g`` and is flat along ``g_perp`` for a
    standard model; adversarial training flattens it along ``g`` as well.

    Args:
        model: callable mapping ``(N, H, W, C)`` to logits.
        image: one image ``(H, W, C)`` in ``[clip_value_min, clip_value_max]``.
        label: its class.
        radius: half-width of the plotted square, > 0.
        resolution: grid points per axis, >= 2.
        seed: seed of ``g_perp``.
        clip: clip ``x'`` to the valid range (off: the surface of the function itself).
        clip_value_min, clip_value_max: the valid pixel range.
        batch_size: grid points per model call.

    Returns:
        dict with ``alphas`` ``(R,)`` (along ``g``), ``betas`` ``(R,)`` (along ``g_perp``),
        ``loss`` ``(R, R)`` indexed ``[beta, alpha]``, ``predicted`` ``(R, R)`` classes, and the
        directions ``g``, ``g_perp`` ``(H, W, C)``.
    """
    radius = _check_epsilon("radius", radius)
    if radius == 0:
        raise ValueError(f"radius must be > 0, got {radius!r}")
    resolution = _check_positive_int("resolution", resolution)
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution!r}")
    x = _as_images(np.asarray(image)[None])[0]
    g = gradient_sign_direction(model, x, label, clip_value_min, clip_value_max)
    g_perp = _orthogonal_direction(g, seed)
    coords = np.linspace(-radius, radius, resolution, dtype=np.float32)
    b_grid, a_grid = np.meshgrid(coords, coords, indexing="ij")
    points = x + a_grid.reshape(-1, 1, 1, 1) * g + b_grid.reshape(-1, 1, 1, 1) * g_perp
    if clip:
        points = np.clip(points, clip_value_min, clip_value_max)
    logits = predict_logits(model, points, batch_size).astype(np.float64)
    log_probs = logits - _logsumexp(logits)
    loss = -log_probs[:, int(label)]
    shape = (resolution, resolution)
    return {"alphas": coords, "betas": coords, "loss": loss.reshape(shape),
            "predicted": np.argmax(logits, axis=1).reshape(shape), "g": g, "g_perp": g_perp}


def _logsumexp(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=1, keepdims=True)
    return top + np.log(np.sum(np.exp(logits - top), axis=1, keepdims=True))


def _orthogonal_direction(g: np.ndarray, seed: int) -> np.ndarray:
    """A random direction orthogonal to ``g`` with ``||g_perp||_2 = ||g||_2``."""
    z = np.random.default_rng(seed).standard_normal(g.shape).astype(np.float64)
    flat_g = g.astype(np.float64).ravel()
    g_norm = np.linalg.norm(flat_g)
    if g_norm > 0:
        z = z - (z.ravel() @ flat_g) / g_norm ** 2 * g
    scale = (g_norm if g_norm > 0 else math.sqrt(g.size)) / np.linalg.norm(z)
    return (z * scale).astype(np.float32)
