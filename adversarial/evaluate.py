"""``python -m adversarial.evaluate``: robustness of the models that ``adversarial.train`` saved.

Loads ``standard.keras`` and ``pgd_trained.keras`` from ``--output-dir`` and writes there:

- ``robustness.json``: ``{model name: {attack: {epsilon: accuracy}}}`` for the attacks ``fgsm``,
  ``pgd`` and ``mim`` over the digits' test set (accuracy over ALL test images; epsilon keys are
  strings like ``"0.05"``; ``"0.0"`` is the clean accuracy);
- ``szegedy.json``: average minimal distortion per model, the cross-model transfer matrix with
  Gaussian-noise baselines, and the targeted PGD success rate;
- the figures ``adversarial_accuracy_vs_epsilon.png``, ``adversarial_examples.png`` and
  ``adversarial_loss_surface_<model>.png``;
- ``evaluate_config.json``: the options used.

Iterative attacks use ``step_size = step_size_factor * epsilon / num_steps``.
This module imports TensorFlow only once the options are valid (``adversarial/__init__.py``,
which ``python -m`` runs first, currently imports it eagerly, so ``--help`` waits for it).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass

from adversarial.train import MODEL_NAMES, CliError, run_cli
from data_stubs.files import write_atomic, write_json_atomic

ATTACKS = ("fgsm", "pgd", "mim")


@dataclass
class EvaluateConfig:
    """Options of ``python -m adversarial.evaluate`` (saved as ``evaluate_config.json``)."""

    output_dir: str = "runs/adversarial"  # folder with standard.keras and pgd_trained.keras
    epsilons: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)  # L-inf budgets
    attacks: tuple[str, ...] = ATTACKS  # any of fgsm,pgd,mim
    num_steps: int = 20  # steps of PGD and MIM (PGD-20)
    step_size_factor: float = 2.5  # iterative step size = factor * epsilon / num_steps
    test_size: int = 0  # evaluate on the first N test images; 0: all 450
    batch_size: int = 512  # images per attack call
    figure_epsilon: float = 0.2  # budget of the example figure and of the Szegedy tables
    szegedy: int = 1  # 1: also write szegedy.json (distortion, transfer, targeted); 0: skip
    distortion_step: float = 0.01  # grid of the minimal-distortion search: step, 2 step, .., 0.5
    seed: int = 0  # seed of the attacks' random starts and of the noise baselines

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad option."""
        if not self.epsilons or any(not 0 <= e < float("inf") for e in self.epsilons):
            raise ValueError(f"--epsilons must be numbers >= 0, got {self.epsilons!r}")
        unknown = [a for a in self.attacks if a not in ATTACKS]
        if not self.attacks or unknown:
            raise ValueError(f"--attacks must be a subset of {','.join(ATTACKS)}, "
                             f"got {','.join(self.attacks)!r}")
        for name in ("num_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, "
                                 f"got {getattr(self, name)!r}")
        for name in ("step_size_factor", "figure_epsilon", "distortion_step"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ValueError(f"--{name.replace('_', '-')} must be > 0, "
                                 f"got {getattr(self, name)!r}")
        if self.test_size < 0:
            raise ValueError(f"--test-size must be >= 0, got {self.test_size!r}")
        if self.szegedy not in (0, 1):
            raise ValueError(f"--szegedy must be 0 or 1, got {self.szegedy!r}")
        if not self.output_dir or not os.path.isdir(self.output_dir):
            raise ValueError(f"--output-dir must be an existing folder, got {self.output_dir!r}")
        for name in MODEL_NAMES:
            path = os.path.join(self.output_dir, f"{name}.keras")
            if not os.path.isfile(path):
                raise ValueError(f"--output-dir must contain {name}.keras (run "
                                 f"python -m adversarial.train first), missing {path!r}")


def epsilon_key(epsilon: float) -> str:
    """The JSON key of an epsilon: ``0 -> "0.0"``, ``0.05 -> "0.05"``."""
    return str(round(float(epsilon), 6))


def _save_figure_atomic(fig, path: str) -> None:
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def load_models(output_dir: str) -> dict:
    """``{name: keras model}`` for the models written by ``adversarial.train``."""
    import keras

    import adversarial.models  # noqa: F401  (registers Residual and ResnetBlock)

    models = {}
    for name in MODEL_NAMES:
        path = os.path.join(output_dir, f"{name}.keras")
        try:
            models[name] = keras.models.load_model(path, compile=False)
        except Exception as err:  # a truncated or foreign file: a bad input, not a crash
            raise CliError(f"--output-dir: cannot load {path!r} as a Keras model "
                           f"({type(err).__name__})") from err
    return models


def robustness_table(models: dict, x, y, config: EvaluateConfig) -> dict:
    """``{model: {attack: {epsilon key: accuracy}}}`` (the ``robustness.json`` schema)."""
    from adversarial.evaluation import robust_accuracy

    table = {}
    for name, model in models.items():
        result = robust_accuracy(model, x, y, config.epsilons, config.attacks,
                                 num_steps=config.num_steps,
                                 step_size_factor=config.step_size_factor,
                                 batch_size=config.batch_size, seed=config.seed)
        table[name] = {attack: {epsilon_key(e): acc for e, acc in curve.items()}
                       for attack, curve in result.items()}
    return table


def distortion_grid(config: EvaluateConfig, largest: float = 0.5) -> list[float]:
    """Budgets ``step, 2 step, ..., <= largest`` of the minimal-distortion search."""
    count = max(1, int(round(largest / config.distortion_step, 6)))
    return [round(k * config.distortion_step, 6) for k in range(1, count + 1)]


def szegedy_tables(models: dict, x, y, config: EvaluateConfig) -> dict:
    """Average minimal distortion, transfer matrix and targeted success (JSON-ready)."""
    from adversarial import evaluation as ev

    kwargs = {"num_steps": config.num_steps, "step_size_factor": config.step_size_factor,
              "batch_size": config.batch_size, "seed": config.seed}
    distortion = {}
    for name, model in models.items():
        found = ev.minimal_distortion(model, x, y, "pgd", distortion_grid(config), **kwargs)
        distortion[name] = {k: found[k] for k in ("mean_epsilon", "mean_rms", "flipped_rate")}
    eps = config.figure_epsilon
    transfer = ev.transfer_matrix(models, x, y, "pgd", eps, **kwargs)
    targets = ev.random_target_labels(y, 10, seed=config.seed)
    targeted = {name: ev.targeted_success_rate(model, x, targets, "pgd", eps, true_labels=y,
                                               **kwargs)
                for name, model in models.items()}
    return {
        "minimal_distortion_pgd": {"grid_step": config.distortion_step, **distortion},
        "transfer_pgd": {"epsilon": eps, "rows_crafted_on_columns_evaluated_on": transfer["names"],
                         **{k: transfer[k].tolist()
                            for k in ("clean_error", "error", "noise_error", "rms")}},
        "targeted_pgd_success_rate": {"epsilon": eps, **targeted},
    }


def write_figures(models: dict, table: dict, x, y, config: EvaluateConfig) -> list[str]:
    """The PNG figures into ``output_dir``; returns their paths."""
    from adversarial import evaluation as ev
    from adversarial import plots

    out = config.output_dir
    paths = [os.path.join(out, "adversarial_accuracy_vs_epsilon.png")]
    _save_figure_atomic(plots.plot_accuracy_vs_epsilon(table), paths[-1])
    picks = list(range(min(3, len(x))))
    eps = config.figure_epsilon
    adv = ev.adversarial_examples(models["standard"], x[picks], y[picks], "pgd", eps,
                                  num_steps=config.num_steps, seed=config.seed,
                                  step_size=config.step_size_factor * eps / config.num_steps)
    paths.append(os.path.join(out, "adversarial_examples.png"))
    _save_figure_atomic(plots.plot_adversarial_examples(models["standard"], x[picks], adv,
                                                        y[picks], epsilon=eps), paths[-1])
    for name, model in models.items():
        surface = ev.loss_surface(model, x[0], y[0], radius=0.3, resolution=31, seed=config.seed)
        paths.append(os.path.join(out, f"adversarial_loss_surface_{name}.png"))
        _save_figure_atomic(plots.plot_loss_surface(surface, f"Loss around a test digit "
                                                              f"({name} model)"), paths[-1])
    return paths


def run(config: EvaluateConfig) -> dict:
    """Evaluate both models, write the JSON files and figures; returns the robustness table."""
    import keras

    from data_stubs.digits import load_digits

    keras.utils.set_random_seed(config.seed)
    write_json_atomic(os.path.join(config.output_dir, "evaluate_config.json"),
                      dataclasses.asdict(config))
    data = load_digits(seed=0)
    size = config.test_size or len(data.x_test)
    x, y = data.x_test[:size], data.y_test[:size]
    models = load_models(config.output_dir)
    table = robustness_table(models, x, y, config)
    write_json_atomic(os.path.join(config.output_dir, "robustness.json"), table)
    if config.szegedy:
        write_json_atomic(os.path.join(config.output_dir, "szegedy.json"),
                          szegedy_tables(models, x, y, config))
    write_figures(models, table, x, y, config)
    for name, per_attack in table.items():
        print(f"[adversarial.evaluate] {name}: " + "; ".join(
            f"{attack} " + " ".join(f"{e}:{acc:.3f}" for e, acc in curve.items())
            for attack, curve in per_attack.items()), flush=True)
    return table


def main(argv=None) -> int:
    """Entry point: ``python -m adversarial.evaluate [--output-dir DIR] [options]``."""
    return run_cli(run, EvaluateConfig, argv, "python -m adversarial.evaluate",
                   __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
