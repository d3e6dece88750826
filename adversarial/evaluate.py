"""``python -m adversarial.evaluate``: robustness of the models that ``adversarial.train`` saved.

Loads ``standard.keras`` and ``pgd_trained.keras`` from ``--output-dir``, attacks the test digits
of the dataset they were trained on (from ``train_config.json``; MNIST: 1,000 real digits of
:func:`data_stubs.mnist.load_mnist`) with :func:`adversarial.robustness.evaluate_robustness` (an
AutoAttack-style ensemble: APGD-CE, APGD-T with the DLR loss, Square, PGD with the margin loss;
per-example worst case) at every ``--epsilons`` and writes there:

- ``robustness.json``: ``{model: {epsilon: {"clean_accuracy", "robust_accuracy",
  "robust_accuracy_ci95": [low, high], "num_examples", "per_attack": {attack: accuracy},
  "warnings": [...]}}}`` (epsilon keys are strings like ``"0.1"``); the warnings (failed sanity
  checks such as gradient masking) are also printed;
- ``szegedy.json`` with ``--szegedy 1``: average minimal distortion per model, the cross-model
  transfer matrix with Gaussian-noise baselines and the targeted PGD success rate (the paper's
  own MNIST table comes from ``python -m adversarial.szegedy``);
- the figures ``adversarial_accuracy_vs_epsilon.png``, ``adversarial_examples.png`` and
  ``adversarial_loss_surface_<model>.png``;
- ``evaluate_config.json``: the options used.

This module imports TensorFlow only once the options are valid.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass

from adversarial.train import DATASETS, MODEL_NAMES, CliError, load_data, run_cli
from data_stubs.files import write_atomic, write_json_atomic

ATTACKS = ("apgd-ce", "apgd-t", "square", "pgd-margin")  # evaluate_robustness's ensemble


@dataclass
class EvaluateConfig:
    """Options of ``python -m adversarial.evaluate`` (saved as ``evaluate_config.json``)."""

    output_dir: str = "runs/adversarial"  # folder with standard.keras and pgd_trained.keras
    dataset: str = "auto"  # "auto" (from train_config.json), "mnist" or "digits"
    epsilons: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3)  # L-inf budgets
    attacks: tuple[str, ...] = ATTACKS  # any of apgd-ce,apgd-t,square,pgd-margin
    num_steps: int = 50  # iterations of APGD and PGD
    num_queries: int = 500  # queries of the Square attack
    restarts: int = 1  # random restarts of every white-box attack
    test_size: int = 500  # evaluate on the first N test images; 0: all
    batch_size: int = 256  # images per attack call
    figure_epsilon: float = 0.2  # budget of the example figure and of the Szegedy tables
    szegedy: int = 0  # 1: also write szegedy.json (distortion, transfer, targeted); 0: skip
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
        for name in ("num_steps", "num_queries", "restarts", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, "
                                 f"got {getattr(self, name)!r}")
        for name in ("figure_epsilon", "distortion_step"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ValueError(f"--{name.replace('_', '-')} must be > 0, "
                                 f"got {getattr(self, name)!r}")
        if self.test_size < 0:
            raise ValueError(f"--test-size must be >= 0, got {self.test_size!r}")
        if self.szegedy not in (0, 1):
            raise ValueError(f"--szegedy must be 0 or 1, got {self.szegedy!r}")
        if self.dataset not in ("auto", *DATASETS):
            raise ValueError(f"--dataset must be 'auto', 'mnist' or 'digits', "
                             f"got {self.dataset!r}")
        if not self.output_dir or not os.path.isdir(self.output_dir):
            raise ValueError(f"--output-dir must be an existing folder, got {self.output_dir!r}")
        for name in MODEL_NAMES:
            path = os.path.join(self.output_dir, f"{name}.keras")
            if not os.path.isfile(path):
                raise ValueError(f"--output-dir must contain {name}.keras (run "
                                 f"python -m adversarial.train first), missing {path!r}")


def dataset_of(config: EvaluateConfig) -> str:
    """The dataset to test on: ``--dataset``, or the one in ``train_config.json``."""
    if config.dataset != "auto":
        return config.dataset
    path = os.path.join(config.output_dir, "train_config.json")
    try:
        with open(path) as handle:
            dataset = json.load(handle).get("dataset")
    except (OSError, ValueError, AttributeError) as err:
        raise CliError(f"--dataset auto needs a readable {path!r} (written by "
                       f"python -m adversarial.train); pass --dataset mnist or digits "
                       f"({type(err).__name__})") from err
    if dataset not in DATASETS:
        raise CliError(f"--dataset auto: {path!r} names dataset {dataset!r}; pass --dataset "
                       f"mnist or digits")
    return dataset


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
    """``{model: {epsilon key: evaluate_robustness result}}`` (the ``robustness.json`` schema).

    Epsilon 0 gives the clean accuracy (no attack is run); the per-example ``robust`` flags
    are dropped and the interval is a list, so that the table is JSON.
    """
    from adversarial.robustness import clean_evaluation, evaluate_robustness

    table = {}
    for name, model in models.items():
        table[name] = {}
        for epsilon in config.epsilons:
            if float(epsilon) == 0.0:
                result = clean_evaluation(model, x, y, batch_size=config.batch_size)
                table[name][epsilon_key(epsilon)] = _json_ready(result)
                continue
            result = evaluate_robustness(
                model, x, y, float(epsilon), seed=config.seed, batch_size=config.batch_size,
                attacks=config.attacks, num_steps=config.num_steps,
                num_queries=config.num_queries, restarts=config.restarts)
            table[name][epsilon_key(epsilon)] = _json_ready(result)
    return table


def _json_ready(result: dict) -> dict:
    keys = ("clean_accuracy", "robust_accuracy", "robust_accuracy_ci95", "num_examples",
            "per_attack", "warnings")
    ready = {key: result[key] for key in keys}
    ready["robust_accuracy_ci95"] = [float(v) for v in result["robust_accuracy_ci95"]]
    ready["per_attack"] = {k: float(v) for k, v in result["per_attack"].items()}
    ready["warnings"] = [str(w) for w in result["warnings"]]
    return ready


def accuracy_curves(table: dict) -> tuple[dict, dict]:
    """``({model: {curve: {eps: acc}}}, {model: {eps: (low, high)}})`` for the figure: one curve
    per attack plus the per-example worst case, with its 95% interval."""
    curves, intervals = {}, {}
    for name, per_epsilon in table.items():
        curves[name] = {"worst case": {e: r["robust_accuracy"] for e, r in per_epsilon.items()}}
        intervals[name] = {e: tuple(r["robust_accuracy_ci95"]) for e, r in per_epsilon.items()}
        for e, r in per_epsilon.items():
            for attack, acc in r["per_attack"].items():
                curves[name].setdefault(attack, {})[e] = acc
    return curves, intervals


def distortion_grid(config: EvaluateConfig, largest: float = 0.5) -> list[float]:
    """Budgets ``step, 2 step, ..., <= largest`` of the minimal-distortion search."""
    count = max(1, int(round(largest / config.distortion_step, 6)))
    return [round(k * config.distortion_step, 6) for k in range(1, count + 1)]


def szegedy_tables(models: dict, x, y, config: EvaluateConfig) -> dict:
    """Average minimal distortion, transfer matrix and targeted success (JSON-ready)."""
    from adversarial import evaluation as ev

    kwargs = {"num_steps": config.num_steps, "step_size_factor": 2.5,
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
    curves, intervals = accuracy_curves(table)
    _save_figure_atomic(plots.plot_accuracy_vs_epsilon(
        curves, title="Robust accuracy (worst case over the attacks, 95% interval)",
        intervals=intervals), paths[-1])
    picks = list(range(min(3, len(x))))
    eps = config.figure_epsilon
    adv = ev.adversarial_examples(models["standard"], x[picks], y[picks], "pgd", eps,
                                  num_steps=config.num_steps, seed=config.seed,
                                  step_size=2.5 * eps / config.num_steps)
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

    keras.utils.set_random_seed(config.seed)
    dataset = dataset_of(config)
    write_json_atomic(os.path.join(config.output_dir, "evaluate_config.json"),
                      dict(dataclasses.asdict(config), dataset=dataset))
    data = load_data(dataset)
    size = config.test_size or len(data.x_test)
    x, y = data.x_test[:size], data.y_test[:size]
    models = load_models(config.output_dir)
    table = robustness_table(models, x, y, config)
    write_json_atomic(os.path.join(config.output_dir, "robustness.json"), table)
    if config.szegedy:
        write_json_atomic(os.path.join(config.output_dir, "szegedy.json"),
                          szegedy_tables(models, x, y, config))
    write_figures(models, table, x, y, config)
    for line in summary_lines(table):
        print(line, flush=True)
    return table


def summary_lines(table: dict) -> list[str]:
    """One line per model and epsilon (robust accuracy, its interval, the attacks), then the
    warnings of the sanity checks."""
    lines = []
    for name, per_epsilon in table.items():
        for e, r in per_epsilon.items():
            low, high = r["robust_accuracy_ci95"]
            attacks = " ".join(f"{a} {acc:.3f}" for a, acc in r["per_attack"].items())
            lines.append(f"[adversarial.evaluate] {name} eps {e}: robust {r['robust_accuracy']:.3f}"
                         f" [{low:.3f}, {high:.3f}] (clean {r['clean_accuracy']:.3f}, "
                         f"n={r['num_examples']}){'; ' + attacks if attacks else ''}")
            lines += [f"[adversarial.evaluate] WARNING {name} eps {e}: {w}" for w in r["warnings"]]
    return lines


def main(argv=None) -> int:
    """Entry point: ``python -m adversarial.evaluate [--output-dir DIR] [options]``."""
    return run_cli(run, EvaluateConfig, argv, "python -m adversarial.evaluate",
                   __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
