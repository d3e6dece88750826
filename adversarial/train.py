"""``python -m adversarial.train``: a standard and a PGD-trained CNN on the digits.

Writes into ``--output-dir``: ``standard.keras`` (plain cross-entropy training) and
``pgd_trained.keras`` (Madry et al., "Towards deep learning models resistant to adversarial
attacks", ICLR 2018: ``mean CE(f(x), y) + mean CE(f(x_adv), y)`` with ``x_adv`` from PGD, through
:class:`adversarial.training.AdversarialTraining`), both logits models, and ``train_config.json``
(the options used). Weights are checkpointed after every epoch into ``checkpoints/``; running the
same command again resumes from there (a finished model is not retrained).

This module imports TensorFlow only once the options are valid, so ``--help`` answers at once.
The small helpers for typed dataclass configs (``build_parser``, ``run_cli``) are shared with
:mod:`adversarial.evaluate`; files are written atomically with :mod:`data_stubs.files`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from dataclasses import dataclass

from data_stubs.files import write_atomic, write_json_atomic

MODEL_NAMES = ("standard", "pgd_trained")


@dataclass
class TrainConfig:
    """Options of ``python -m adversarial.train`` (saved as ``train_config.json``)."""

    output_dir: str = "runs/adversarial"  # where the .keras models and the config go
    architecture: str = "cnn"  # "cnn" (models.small_cnn) or "resnet" (models.resnet)
    epochs: int = 20  # epochs of the standard model
    adv_epochs: int = 30  # epochs of PGD adversarial training
    batch_size: int = 64  # examples per training step
    learning_rate: float = 2e-3  # Adam's learning rate
    epsilon: float = 0.25  # L-inf budget of the training attack (pixels in [0, 1])
    num_steps: int = 7  # PGD steps per training batch
    step_size: float = 0.08  # PGD step size during training
    labels: str = "true"  # "true" (ideal) or "predicted" (the slides' "in practice")
    train_size: int = 0  # use the first N training images; 0: all 1347
    seed: int = 0  # seeds keras, numpy, TensorFlow and the attack

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad option."""
        validate_train_config(self)


# ----------------------------------------------------------------------------------------------
# typed dataclass config <-> command line (shared with adversarial.evaluate)


class CliError(Exception):
    """A bad command-line option; ``main`` prints it on one line and exits with status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit 2, no usage block
        raise CliError(message)


def _comment(source_lines: list[str], name: str) -> str:
    for line in source_lines:
        if line.strip().startswith(f"{name}:") and "#" in line:
            return line.split("#", 1)[1].strip()
    return ""


def _field_parser(kind):
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        return lambda text: tuple(item(part) for part in text.split(",") if part.strip())
    return kind


def build_parser(config_cls, prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with one ``--option`` per dataclass field, help from its comment."""
    import inspect

    source = inspect.getsource(config_cls).splitlines()
    hints = typing.get_type_hints(config_cls)
    parser = _Parser(prog=prog, description=description,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for field in dataclasses.fields(config_cls):
        kind = hints[field.name]
        default = field.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        parser.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name,
                            type=_field_parser(kind), default=default,
                            help=f"{_comment(source, field.name)} (default: {shown})"
                            .replace("%", "%%"))
    return parser


def parse_config(config_cls, argv, prog: str, description: str):
    """The dataclass filled from ``argv``; raises :class:`CliError` on a bad option."""
    namespace = build_parser(config_cls, prog, description).parse_args(argv)
    return config_cls(**vars(namespace))


def run_cli(run, config_cls, argv, prog: str, description: str) -> int:
    """Parse, validate and run; bad options -> one line on stderr and status 2."""
    try:
        config = parse_config(config_cls, argv, prog, description)
        config.validate()
    except (CliError, ValueError, TypeError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    try:
        run(config)
    except CliError as error:  # bad input found only while running (e.g. an unreadable file)
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return 0


# ----------------------------------------------------------------------------------------------
# validation and training


def _require(condition: bool, name: str, value, what: str) -> None:
    if not condition:
        raise ValueError(f"--{name.replace('_', '-')} must be {what}, got {value!r}")


def validate_train_config(config: TrainConfig) -> None:
    """Raise ``ValueError`` naming the first bad option."""
    _require(bool(config.output_dir), "output_dir", config.output_dir, "a folder")
    _require(config.architecture in ("cnn", "resnet"), "architecture", config.architecture,
             "'cnn' or 'resnet'")
    for name in ("epochs", "adv_epochs", "batch_size", "num_steps"):
        _require(getattr(config, name) >= 1, name, getattr(config, name), ">= 1")
    for name in ("learning_rate", "epsilon", "step_size"):
        value = getattr(config, name)
        _require(0 < value < float("inf"), name, value, "> 0")
    _require(config.labels in ("true", "predicted"), "labels", config.labels,
             "'true' or 'predicted'")
    _require(config.train_size >= 0, "train_size", config.train_size, ">= 0")


def _build_model(config: TrainConfig, name: str):
    from adversarial.models import resnet, small_cnn

    builder = small_cnn if config.architecture == "cnn" else resnet
    return builder(input_shape=(8, 8, 1), num_classes=10, name=name)


def _trainer(config: TrainConfig, name: str):
    """``(keras model to fit, logits model to save)`` for ``standard`` or ``pgd_trained``."""
    model = _build_model(config, name)
    if name == "standard":
        return model, model
    from adversarial.training import AdversarialTraining

    trainer = AdversarialTraining(model, attack="pgd", epsilon=config.epsilon,
                                  num_steps=config.num_steps, step_size=config.step_size,
                                  labels=config.labels, seed=config.seed)
    return trainer, model


def _checkpoint_callback(model, folder: str, name: str, config_dict: dict):
    """Keras callback saving weights and optimizer state + finished epoch after each epoch.

    ``model`` is the model being fitted (for PGD training the wrapper, whose weights include
    the wrapped model's); both files are written atomically.
    """
    import keras

    weights_path = os.path.join(folder, f"{name}.weights.h5")

    class _Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            write_atomic(weights_path, lambda tmp: model.save_weights(tmp, overwrite=True))
            write_json_atomic(os.path.join(folder, f"{name}.json"),
                              {"epoch": epoch + 1, "config": config_dict})

    return _Checkpoint()


def _resume_epoch(trainer, folder: str, name: str, config_dict: dict) -> int:
    """Load the checkpoint of an interrupted run with the same config; its finished epochs.

    The model and its optimizer are built first so that the Adam moments are restored too.
    """
    state_path = os.path.join(folder, f"{name}.json")
    if not os.path.exists(state_path):
        return 0
    with open(state_path) as handle:
        state = json.load(handle)
    if state.get("config") != config_dict:
        return 0
    trainer.optimizer.build(trainer.trainable_variables)
    trainer.load_weights(os.path.join(folder, f"{name}.weights.h5"))
    return int(state["epoch"])


def train_one(config: TrainConfig, name: str, x, y) -> str:
    """Train (or resume) one of ``MODEL_NAMES`` and save it as ``output_dir/name.keras``."""
    import keras

    config_dict = dataclasses.asdict(config)
    path = os.path.join(config.output_dir, f"{name}.keras")
    folder = os.path.join(config.output_dir, "checkpoints")
    os.makedirs(folder, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    trainer, model = _trainer(config, name)
    trainer.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    epochs = config.epochs if name == "standard" else config.adv_epochs
    trainer(x[:1], training=False)  # builds the wrapper, so that its weights can be saved
    start = _resume_epoch(trainer, folder, name, config_dict)
    if start < epochs:
        print(f"[adversarial.train] {name}: epochs {start + 1}..{epochs}", flush=True)
        trainer.fit(x, y, batch_size=config.batch_size, epochs=epochs, initial_epoch=start,
                    shuffle=True, verbose=2,
                    callbacks=[_checkpoint_callback(trainer, folder, name, config_dict)])
    write_atomic(path, model.save)
    return path


def run(config: TrainConfig) -> dict:
    """Train both models; returns ``{model name: saved path}``."""
    from data_stubs.digits import load_digits

    os.makedirs(config.output_dir, exist_ok=True)
    write_json_atomic(os.path.join(config.output_dir, "train_config.json"),
                      dataclasses.asdict(config))
    data = load_digits(seed=0)  # the fixed split that adversarial.evaluate tests on
    size = config.train_size or len(data.x_train)
    x, y = data.x_train[:size], data.y_train[:size]
    return {name: train_one(config, name, x, y) for name in MODEL_NAMES}


def main(argv=None) -> int:
    """Entry point: ``python -m adversarial.train [--output-dir DIR] [options]``."""
    return run_cli(run, TrainConfig, argv, "python -m adversarial.train",
                   __doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1])


if __name__ == "__main__":
    sys.exit(main())
