"""Training CLI of assignment 2: ``python -m assignment2.train`` (reference solution).

With no arguments it trains the U-Net with the dilated context module on the embedded miniature
SpaceNet 2 area (generated on first use), validates with test-time augmentation and writes into
``runs/assignment2``::

    config.json            the run's TrainConfig (below)
    split.json             train / validation tile ids (reused by --resume)
    checkpoints/best.keras lowest validation loss so far      (written atomically)
    checkpoints/last.keras end of the last epoch, with the optimiser state (atomic)
    checkpoints/state.json {"epoch": completed epochs, "best_val_loss": ...}
    history.csv            per-epoch loss / val_loss (keras CSVLogger, appended on resume)
    logs/                  TensorBoard
    metrics.json           {"no_tta": {...}, "tta": {...}} of the best checkpoint on validation
    predictions/<id>_probs.tif  float16 (H, W, 3) TTA-averaged probabilities
    predictions/<id>_mask.tif   uint8 (H, W) argmax of them
    figures/*.png          overlays of validation tiles, learning curves

Usage errors (bad option, missing data, corrupt file, crop larger than the tiles) print one line
on stderr and exit with status 2. TensorFlow is imported only after the arguments are parsed, so
``--help`` is fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from data_stubs.files import write_atomic, write_json_atomic

PROG = "python -m assignment2.train"
UPSAMPLING_CHOICES = ("bilinear", "nearest", "transpose")
STRATEGY_CHOICES = ("default", "mirrored")
CLASS_WEIGHT_CHOICES = ("none", "median")


class UsageError(Exception):
    """Bad input found after parsing (data, sizes, checkpoints): one line, exit status 2."""


@dataclass
class TrainConfig:
    """Everything a run depends on; saved as ``config.json`` beside its outputs."""

    # Folder of a raw SpaceNet 2 area or a prepared folder; None = the embedded stub area.
    data_dir: str | None = None
    # Where all outputs go.
    output_dir: str = "runs/assignment2"
    # Training epochs (the total, also when resuming).
    epochs: int = 30
    # Crops per batch (global batch: split across replicas with --strategy mirrored).
    batch_size: int = 8
    # Side of the random training crops; a multiple of 2**depth, at most the tile size.
    crop_size: int = 128
    # Random crops drawn from each training tile per epoch.
    crops_per_tile: int = 4
    # Fraction of tiles held out for validation (random split, seeded).
    val_fraction: float = 0.2
    # Seed of the split, the weights, the augmentation and the batch order.
    seed: int = 0
    # Yu & Koltun context module at the U-Net bottleneck.
    context: bool = True
    # Rotation, crop, flip and scaling of training tiles (off: whole tiles as they are).
    augment: bool = True
    # Validate with test-time augmentation (8 flips / 90-degree rotations) besides plain.
    tta: bool = True
    # Continue from checkpoints/last.keras with the saved split and optimiser state.
    resume: bool = False
    # "default" (one device) or "mirrored" (tf.distribute.MirroredStrategy).
    strategy: str = "default"
    # Decoder upsampling: resize ("bilinear", "nearest") + 3x3 conv, or "transpose" (4x4, /2).
    # "transpose" measured better on the stub area (TTA IoU building 0.820 vs 0.760 bilinear,
    # same split and seed; README) and its 4x4 kernel avoids the checkerboard effect.
    upsampling: str = "transpose"
    # How the context module convolves: "atrous" (tf.nn.atrous_conv2d, the lecture's op) or
    # "conv2d" (tf.nn.conv2d with dilations: the same function, faster on a CPU).
    context_implementation: str = "atrous"
    # Channels of the first U-Net level (doubles per level).
    base_filters: int = 16
    # U-Net levels; the network stride is 2**depth.
    depth: int = 4
    # Peak Adam learning rate (cosine decay to 5% of it over the run).
    learning_rate: float = 3e-3
    # Momentum of the batch-norm moving averages. Keras' 0.99 averages over ~100 steps, which
    # lags far behind the weights in a run of a few hundred steps (inference then sees stale
    # statistics); 0.9 follows them within ~10 steps.
    bn_momentum: float = 0.9
    # Loss class weights: "none" or "median" frequency balancing (boosts the rare boundary).
    class_weights: str = "none"
    # Width in pixels of the boundary class when masks are made from polygons.
    boundary_width: int = 3
    # Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch.
    verbose: int = 1

    @property
    def stride(self) -> int:
        return 2**self.depth


# --------------------------------------------------------------------------- argument parsing


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (no usage block) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _bounded(kind, name, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: parse with ``kind`` and check ``low <= value <= high`` (``<`` where
    the bound is open)."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {kind.__name__}, got {text!r}")
        too_low = low is not None and (value < low or (low_open and value == low))
        too_high = high is not None and (value > high or (high_open and value == high))
        if too_low or too_high or (isinstance(value, float) and math.isnan(value)):
            interval = (f"{'(' if low_open else '['}{low}, "
                        f"{'inf' if high is None else high}{')' if high_open else ']'}")
            raise argparse.ArgumentTypeError(f"{name} must be in {interval}, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The CLI's parser; defaults come from :class:`TrainConfig`."""
    d = TrainConfig()
    p = _Parser(prog=PROG, description="Train the assignment 2 U-Net on SpaceNet 2 style tiles.",
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default=None, help="raw SpaceNet area or prepared folder "
                   "(default: the embedded stub area)")
    p.add_argument("--output-dir", default=d.output_dir, help="where outputs are written")
    p.add_argument("--epochs", type=_bounded(int, "--epochs", 1), default=None,
                   help=f"total epochs (default {d.epochs})")
    p.add_argument("--batch-size", type=_bounded(int, "--batch-size", 1), default=d.batch_size)
    p.add_argument("--crop-size", type=_bounded(int, "--crop-size", 1), default=d.crop_size,
                   help="training crop side, a multiple of 2**depth")
    p.add_argument("--crops-per-tile", type=_bounded(int, "--crops-per-tile", 1),
                   default=d.crops_per_tile, help="random crops per training tile and epoch")
    p.add_argument("--val-fraction", type=_bounded(float, "--val-fraction", 0.0, 1.0, True, True),
                   default=d.val_fraction)
    p.add_argument("--seed", type=_bounded(int, "--seed", 0), default=d.seed)
    p.add_argument("--no-context", dest="context", action="store_false",
                   help="U-Net without the dilated context module")
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="train on whole tiles without augmentation")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=d.tta,
                   help="also validate with test-time augmentation")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --output-dir from its last checkpoint")
    p.add_argument("--strategy", choices=STRATEGY_CHOICES, default=d.strategy)
    p.add_argument("--upsampling", choices=UPSAMPLING_CHOICES, default=d.upsampling)
    p.add_argument("--context-implementation", choices=("atrous", "conv2d"),
                   default=d.context_implementation)
    p.add_argument("--base-filters", type=_bounded(int, "--base-filters", 1),
                   default=d.base_filters)
    p.add_argument("--depth", type=_bounded(int, "--depth", 1, 6), default=d.depth)
    p.add_argument("--learning-rate", type=_bounded(float, "--learning-rate", 0.0, 1.0, True),
                   default=d.learning_rate)
    p.add_argument("--bn-momentum", type=_bounded(float, "--bn-momentum", 0.0, 1.0),
                   default=d.bn_momentum, help="momentum of the batch-norm moving statistics")
    p.add_argument("--class-weights", choices=CLASS_WEIGHT_CHOICES, default=d.class_weights)
    p.add_argument("--boundary-width", type=_bounded(int, "--boundary-width", 1),
                   default=d.boundary_width)
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=d.verbose)
    return p


def parse_config(argv=None) -> TrainConfig:
    """Parse ``argv`` (default ``sys.argv[1:]``) into a :class:`TrainConfig`."""
    args = vars(build_parser().parse_args(argv))
    if args["epochs"] is None:
        args["epochs"] = TrainConfig.epochs
    return TrainConfig(**args)


# --------------------------------------------------------------------------- files


def _write_tiff(path: Path, array) -> None:
    """``array`` as a TIFF, atomically; MINISBLACK with contiguous samples, so that
    ``tifffile.imread`` returns the same ``(H, W)`` or ``(H, W, K)`` array."""
    import tifffile

    write_atomic(path, lambda tmp: tifffile.imwrite(tmp, array, photometric="minisblack",
                                                    planarconfig="contig"))


def _config_for_resume(config: TrainConfig, out: Path) -> TrainConfig:
    """The saved config of the run in ``out``, with this command's epochs / tta / verbose."""
    path = out / "config.json"
    if not (out / "checkpoints" / "last.keras").is_file() or not path.is_file():
        raise UsageError(f"--resume: no checkpoint to resume in {out} (checkpoints/last.keras)")
    try:
        saved = json.loads(path.read_text())
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        saved = TrainConfig(**{k: v for k, v in saved.items() if k in names})
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--resume: unreadable {path}: {exc}") from None
    return dataclasses.replace(saved, epochs=config.epochs, tta=config.tta,
                               verbose=config.verbose, resume=True, output_dir=str(out))


# --------------------------------------------------------------------------- data


def _load_data(config: TrainConfig):
    """Tiles and the (saved or new) split -> (tiles, train indices, val indices)."""
    from assignment2 import data

    data_dir = Path(config.data_dir) if config.data_dir else data.default_data_dir()
    if not data_dir.is_dir():
        raise UsageError(f"--data-dir: no such folder: {data_dir}")
    tiles = data.load_tiles(data_dir, boundary_width=config.boundary_width)
    split_path = Path(config.output_dir) / "split.json"
    if config.resume:
        train_ids, val_ids = data.load_split(split_path)
    else:
        train_ids, val_ids = data.split_ids(tiles.ids, config.val_fraction, config.seed)
        data.save_split(split_path, train_ids, val_ids)
    position = {tile_id: i for i, tile_id in enumerate(tiles.ids)}
    missing = [i for i in list(train_ids) + list(val_ids) if i not in position]
    if missing:
        raise UsageError(f"{split_path}: tile ids not in {data_dir}: {missing[:3]}")
    if not train_ids or not val_ids:
        raise UsageError(f"--val-fraction {config.val_fraction} leaves {len(train_ids)} training "
                         f"and {len(val_ids)} validation tiles; both must be >= 1")
    return tiles, [position[i] for i in train_ids], [position[i] for i in val_ids]


def _check_crop(config: TrainConfig, tiles) -> None:
    sizes = {image.shape[:2] for image in tiles.images}
    if len(sizes) > 1:  # the in-memory pipeline stacks the tiles into one array
        raise UsageError(f"--data-dir: tiles of different sizes {sorted(sizes)[:3]}; "
                         f"the training pipeline needs one tile size")
    smallest = min(min(image.shape[:2]) for image in tiles.images)
    if config.augment and config.crop_size > smallest:
        raise UsageError(f"--crop-size {config.crop_size} is larger than the tiles "
                         f"(smallest side {smallest} px)")
    if config.augment and config.crop_size % config.stride:
        raise UsageError(f"--crop-size {config.crop_size} must be a multiple of 2**depth = "
                         f"{config.stride}")


# --------------------------------------------------------------------------- model


def make_strategy(name: str):
    """``"default"``: the current (single-device) strategy. ``"mirrored"``: MirroredStrategy over
    all GPUs, or over all logical CPU devices when there is no GPU (as in the tests)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices)


def _new_model(config: TrainConfig, train_masks, total_steps: int):
    import keras

    from assignment2.model import build_unet, pixel_class_weights, segmentation_loss

    keras.utils.set_random_seed(config.seed)
    model = build_unet(depth=config.depth, base_filters=config.base_filters,
                       upsampling=config.upsampling, context=config.context,
                       context_implementation=config.context_implementation)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = config.bn_momentum  # read at call time and saved in get_config
    weights = pixel_class_weights(train_masks) if config.class_weights == "median" else None
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=max(1, total_steps), alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=segmentation_loss(class_weights=weights))
    return model


def _load_checkpoint(path: Path, compile: bool = True):
    import keras

    import assignment2.model  # noqa: F401  (registers ContextModule and the loss for loading)

    try:
        return keras.saving.load_model(path, compile=compile)
    except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as exc:
        raise UsageError(f"cannot load checkpoint {path}: {type(exc).__name__}: {exc}") from None


def _read_state(out: Path) -> dict:
    path = out / "checkpoints" / "state.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--resume: unreadable {path}: {exc}") from None


# --------------------------------------------------------------------------- callbacks


def _checkpoint_callback(out: Path, best_val_loss: float):
    """Keras callback: after each epoch save last.keras (+ state.json), and best.keras on a new
    lowest ``val_loss``; every file atomically, so an interruption never loses a checkpoint."""
    import keras

    class AtomicCheckpoint(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = best_val_loss

        def on_epoch_end(self, epoch, logs=None):
            folder = out / "checkpoints"
            val_loss = float((logs or {}).get("val_loss", float("inf")))
            if val_loss < self.best:
                self.best = val_loss
                write_atomic(folder / "best.keras", self.model.save)
            write_atomic(folder / "last.keras", self.model.save)
            write_json_atomic(folder / "state.json", {
                "epoch": epoch + 1, "best_val_loss": self.best,
                "optimizer_iterations": int(self.model.optimizer.iterations.numpy())})

    return AtomicCheckpoint()


def _tensorboard_callback(log_dir: Path):
    """Per-epoch loss scalars for TensorBoard in ``log_dir/{train,validation}`` (tag
    ``epoch_loss``, as ``keras.callbacks.TensorBoard`` names them).

    Written with ``tf.summary.write`` and the "scalars" plugin metadata, which is all
    ``tf.summary.scalar`` does, because TensorFlow >= 2.21 no longer installs the ``tensorboard``
    package that ``tf.summary.scalar`` and Keras' callback need; viewing needs it, logging not.
    """
    import keras
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"

    class ScalarLogger(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.writers = {}

        def _write(self, split, tag, value, step):
            if split not in self.writers:
                self.writers[split] = tf.summary.create_file_writer(str(log_dir / split))
            with self.writers[split].as_default():
                tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step,
                                 metadata=metadata)
            self.writers[split].flush()

        def on_epoch_end(self, epoch, logs=None):
            for name, value in (logs or {}).items():
                split = "validation" if name.startswith("val_") else "train"
                self._write(split, "epoch_" + name.removeprefix("val_"), value, epoch)

        def on_train_end(self, logs=None):
            for writer in self.writers.values():
                writer.close()

    return ScalarLogger()


def _callbacks(config: TrainConfig, out: Path, best_val_loss: float):
    import keras

    return [
        _checkpoint_callback(out, best_val_loss),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=config.resume),
        _tensorboard_callback(out / "logs"),
    ]


# --------------------------------------------------------------------------- training


def _fit(config: TrainConfig, tiles, train_idx, val_idx):
    """Build or restore the model and train it; returns the number of completed epochs."""
    from assignment2.augment import AugmentConfig
    from assignment2.pipeline import stack_tiles, steps_per_epoch, train_dataset, validation_dataset

    out = Path(config.output_dir)
    images, masks = stack_tiles([tiles.images[i] for i in train_idx],
                                [tiles.masks[i] for i in train_idx])
    per_epoch = len(train_idx) * (config.crops_per_tile if config.augment else 1)
    steps = steps_per_epoch(per_epoch, config.batch_size)
    strategy = make_strategy(config.strategy)
    state = _read_state(out) if config.resume else {"epoch": 0, "best_val_loss": float("inf")}
    with strategy.scope():
        if config.resume:
            model = _load_checkpoint(out / "checkpoints" / "last.keras")
        else:
            model = _new_model(config, masks, steps * config.epochs)
    augment_config = (AugmentConfig(crop_size=config.crop_size) if config.augment
                      else AugmentConfig.none())
    train = train_dataset(images, masks, batch_size=config.batch_size,
                          augment_config=augment_config, seed=config.seed,
                          start_element=state["epoch"] * steps * config.batch_size)
    val = validation_dataset(*stack_tiles([tiles.images[i] for i in val_idx],
                                          [tiles.masks[i] for i in val_idx]),
                             batch_size=config.batch_size, multiple=config.stride)
    if state["epoch"] < config.epochs:
        model.fit(train, epochs=config.epochs, initial_epoch=state["epoch"],
                  steps_per_epoch=steps, validation_data=val, verbose=config.verbose, shuffle=False,
                  callbacks=_callbacks(config, out, state["best_val_loss"]))
    return max(state["epoch"], config.epochs)


# --------------------------------------------------------------------------- validation


def _predict_validation(config: TrainConfig, model, images):
    """Plain and (optionally) TTA probabilities ``(H, W, K)`` for every validation tile."""
    import numpy as np

    from assignment2.data import normalize
    from assignment2.tta import predict_probs, predict_tta

    inputs = [normalize(image) for image in images]
    plain = list(predict_probs(model, np.stack(inputs), multiple=config.stride,
                               batch_size=config.batch_size))
    if not config.tta:
        return plain, None
    averaged = [predict_tta(model, image, transforms="d4", multiple=config.stride)
                for image in inputs]
    return plain, averaged


def _metrics(true_masks, probs, instances):
    import numpy as np

    from assignment2.metrics import segmentation_metrics

    predicted = [np.argmax(p, axis=-1).astype(np.uint8) for p in probs]
    return dict(segmentation_metrics(true_masks, predicted, true_instances=instances))


def _save_predictions(out: Path, ids, probs) -> None:
    import numpy as np

    folder = out / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    for tile_id, p in zip(ids, probs):
        _write_tiff(folder / f"{tile_id}_probs.tif", p.astype(np.float16))
        _write_tiff(folder / f"{tile_id}_mask.tif", np.argmax(p, -1).astype(np.uint8))


def _save_figures(out: Path, ids, images, true_masks, probs) -> None:
    import numpy as np

    from assignment2 import plots

    predicted = [np.argmax(p, axis=-1) for p in probs]
    figure = plots.overlay_figure(images, true_masks, predicted, ids)
    plots.save_figure(figure, out / "figures" / "validation_overlays.png")
    curves = plots.learning_curves_figure(plots.read_history(out / "history.csv"))
    plots.save_figure(curves, out / "figures" / "learning_curves.png")


def _evaluate(config: TrainConfig, tiles, val_idx) -> dict:
    """Metrics of the best checkpoint on the validation tiles; predictions and figures saved."""
    out = Path(config.output_dir)
    best = out / "checkpoints" / "best.keras"
    model = _load_checkpoint(best if best.is_file() else out / "checkpoints" / "last.keras",
                             compile=False)
    ids = [tiles.ids[i] for i in val_idx]
    images = [tiles.images[i] for i in val_idx]
    true_masks = [tiles.masks[i] for i in val_idx]
    instances = None if tiles.instances is None else [tiles.instances[i] for i in val_idx]
    plain, averaged = _predict_validation(config, model, images)
    metrics = {"no_tta": _metrics(true_masks, plain, instances)}
    if averaged is not None:
        metrics["tta"] = _metrics(true_masks, averaged, instances)
    stored = averaged if averaged is not None else plain
    _save_predictions(out, ids, stored)
    write_json_atomic(out / "metrics.json", metrics)
    _save_figures(out, ids, images, true_masks, stored)
    return metrics


def run(config: TrainConfig) -> dict:
    """Train (or resume), validate and write every output; returns the metrics dict.

    Raises:
        UsageError: bad data folder, split, crop size or checkpoint (one-line message).
        assignment2.data.DataError: a corrupt or inconsistent data file.
    """
    out = Path(config.output_dir)
    if config.resume:
        config = _config_for_resume(config, out)
    tiles, train_idx, val_idx = _load_data(config)
    _check_crop(config, tiles)
    if not config.resume:
        write_json_atomic(out / "config.json", dataclasses.asdict(config))
    _fit(config, tiles, train_idx, val_idx)
    metrics = _evaluate(config, tiles, val_idx)
    _print_summary(metrics)
    return metrics


def _print_summary(metrics: dict) -> None:
    keys = ["pixel_accuracy", "mean_iou", "iou_building", "building_f1"]
    for variant, values in metrics.items():
        print(f"{variant:>6}: " + "  ".join(f"{k} {values[k]:.3f}" for k in keys if k in values))


def main(argv=None) -> int:
    """Entry point: parse, run, and turn bad input into one line on stderr and exit status 2."""
    config = parse_config(argv)
    try:
        from assignment2.data import DataError
    except ImportError as exc:  # pragma: no cover - broken installation
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        run(config)
    except (UsageError, DataError, OSError) as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; continue with --resume --output-dir {config.output_dir}",
              file=sys.stderr)
        return 130
    return 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
