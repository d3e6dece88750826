"""Figures of the adversarial lectures; every function returns a ``matplotlib.figure.Figure``.

The numbers come from :mod:`adversarial.evaluation`; here they are only drawn. Figures are built
with ``matplotlib.figure.Figure`` directly (no pyplot state), so they work headless and are
garbage-collected like any object; save them with ``fig.savefig(path)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from adversarial._common import call_model

_LINESTYLES = {"fgsm": ":", "pgd": "-", "mim": "--", "worst case": "-"}


def _sorted_curve(curve: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """``{epsilon: accuracy}`` (epsilon keys as floats or strings like ``"0.05"``) sorted."""
    points = sorted((float(eps), float(acc)) for eps, acc in curve.items())
    eps, acc = zip(*points)
    return np.asarray(eps), np.asarray(acc)


def _sorted_band(band: Mapping) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``{epsilon: (low, high)}`` sorted by epsilon; intervals must be within [0, 1]."""
    points = sorted((float(eps), float(low), float(high)) for eps, (low, high) in band.items())
    eps, low, high = (np.asarray(column) for column in zip(*points))
    if np.any(low > high) or low.min() < 0 or high.max() > 1:
        raise ValueError(f"intervals must be (low, high) pairs within [0, 1], got {band!r}")
    return eps, low, high


def plot_accuracy_vs_epsilon(results: Mapping, title: str = "Robust accuracy",
                             intervals: Mapping | None = None) -> Figure:
    """Accuracy against the L-inf budget epsilon, one line per model and attack.

    Args:
        results: ``{model name: {attack: {epsilon: accuracy}}}`` (epsilon keys may be strings
            like ``"0.05"``); a single model's ``{attack: {epsilon: accuracy}}`` from
            :func:`adversarial.evaluation.robust_accuracy` is accepted as well.
        title: the axes title.
        intervals: optional ``{model name: {epsilon: (low, high)}}`` confidence intervals of
            the model's ``"worst case"`` curve (accuracies in [0, 1]), drawn as a band.

    Returns:
        A figure with one axes: x epsilon, y accuracy in [0, 1] (in %).
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError(f"results must be a non-empty mapping, got {results!r}")
    first = next(iter(results.values()))
    if isinstance(first, Mapping) and not isinstance(next(iter(first.values())), Mapping):
        results = {"model": results}
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    colours = {}
    for model_name, per_attack in results.items():
        colour = colours.setdefault(model_name, f"C{len(colours)}")
        for attack, curve in per_attack.items():
            eps, acc = _sorted_curve(curve)
            ax.plot(eps, 100 * acc, _LINESTYLES.get(attack, "-."), color=colour, marker="o",
                    markersize=3, label=f"{model_name}, {attack}")
        if intervals and model_name in intervals:
            eps, low, high = _sorted_band(intervals[model_name])
            ax.fill_between(eps, 100 * low, 100 * high, color=colour, alpha=0.2,
                            label=f"{model_name}, 95% interval")
    ax.set(xlabel="epsilon (L-inf, pixels in [0, 1])", ylabel="accuracy (%)", ylim=(-2, 102),
           title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _show(ax, image, title, **kwargs):
    image = np.asarray(image)
    cmap = "gray" if image.shape[-1] == 1 else None
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap=cmap, **kwargs)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_adversarial_examples(model, images, adversarial_images, labels=None,
                              class_names: Sequence[str] | None = None,
                              epsilon: float | None = None) -> Figure:
    """The panda-gibbon layout: clean image + perturbation = adversarial image, one row each.

    Goodfellow et al., "Explaining and harnessing adversarial examples", ICLR 2015, figure 1:
    each panel is titled with the model's predicted class and its softmax confidence; the
    perturbation ``x_adv - x`` is shown on a symmetric colour scale ``[-epsilon, epsilon]``.

    Args:
        model: callable mapping ``(N, H, W, C)`` to logits, called in inference mode.
        images: clean images ``(N, H, W, C)`` (or one ``(H, W, C)``), C in {1, 3}, in [0, 1].
        adversarial_images: same shape.
        labels: optional true classes ``(N,)``, shown above the clean image.
        class_names: optional names of the classes.
        epsilon: colour range of the perturbation; ``max |x_adv - x|`` when ``None``.

    Returns:
        A figure with ``N`` rows and 3 axes per row (clean, perturbation, adversarial).
    """
    x = np.asarray(images, dtype=np.float32)
    x_adv = np.asarray(adversarial_images, dtype=np.float32)
    if x.ndim == 3:
        x, x_adv = x[None], x_adv[None]
    if x.shape != x_adv.shape or x.ndim != 4:
        raise ValueError(f"images and adversarial_images must have the same shape (N, H, W, C), "
                         f"got {x.shape!r} and {x_adv.shape!r}")
    probs = _softmax(np.asarray(call_model(model, np.concatenate([x, x_adv]))))
    clean_p, adv_p = probs[: len(x)], probs[len(x):]
    name = (lambda k: class_names[k]) if class_names is not None else str
    delta = x_adv - x
    scale = float(epsilon) if epsilon else float(np.abs(delta).max()) or 1.0
    fig = Figure(figsize=(6.5, 2.3 * len(x)), layout="constrained")
    axes = fig.subplots(len(x), 3, squeeze=False)
    for row in range(len(x)):
        k, k_adv = int(clean_p[row].argmax()), int(adv_p[row].argmax())
        truth = f"true {name(int(labels[row]))}, " if labels is not None else ""
        _show(axes[row, 0], x[row], f"x: {truth}pred {name(k)} ({100 * clean_p[row, k]:.1f}%)",
              vmin=0, vmax=1)
        _show(axes[row, 1], delta[row].mean(axis=-1, keepdims=True),
              f"x_adv - x (|.|max {np.abs(delta[row]).max():.3f})", vmin=-scale, vmax=scale)
        axes[row, 1].images[0].set_cmap("coolwarm")
        _show(axes[row, 2], x_adv[row],
              f"x_adv: pred {name(k_adv)} ({100 * adv_p[row, k_adv]:.1f}%)", vmin=0, vmax=1)
    return fig


def plot_loss_surface(surface: Mapping, title: str = "Loss around x") -> Figure:
    """The loss surface ``l(f(x + a g + b g_perp), y)`` and the decision regions on that plane.

    Args:
        surface: the dict of :func:`adversarial.evaluation.loss_surface` (``alphas``, ``betas``,
            ``loss`` and ``predicted`` indexed ``[beta, alpha]``).
        title: the figure title.

    Returns:
        A figure with two axes: a 3-D surface of the loss (left) and a map of the predicted
        class with the loss as contour lines (right); ``x`` itself is at ``(0, 0)``.
    """
    alphas, betas = np.asarray(surface["alphas"]), np.asarray(surface["betas"])
    loss, predicted = np.asarray(surface["loss"]), np.asarray(surface["predicted"])
    if loss.shape != (len(betas), len(alphas)) or predicted.shape != loss.shape:
        raise ValueError(f"surface['loss'] and surface['predicted'] must have shape "
                         f"{(len(betas), len(alphas))}, got {loss.shape} and {predicted.shape}")
    a_grid, b_grid = np.meshgrid(alphas, betas)
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    fig.suptitle(title)
    ax3d = fig.add_subplot(1, 2, 1, projection="3d")
    ax3d.plot_surface(a_grid, b_grid, loss, cmap="viridis", linewidth=0, antialiased=True)
    ax3d.set(xlabel="a (along g = sign grad)", ylabel="b (along g_perp)", zlabel="loss")
    ax = fig.add_subplot(1, 2, 2)
    regions = ax.pcolormesh(alphas, betas, predicted, cmap="tab10", vmin=-0.5, vmax=9.5,
                            shading="nearest")
    lines = ax.contour(alphas, betas, loss, colors="k", linewidths=0.7, levels=8)
    ax.clabel(lines, fontsize=7, fmt="%.2g")
    ax.plot([0], [0], "w*", markersize=12, markeredgecolor="k")
    ax.set(xlabel="a (along g = sign grad)", ylabel="b (along g_perp)",
           title="predicted class (colour), loss (contours)")
    fig.colorbar(regions, ax=ax, ticks=range(10), label="class")
    return fig
