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

from assignment2.cli import OneLineParser
from assignment2.masks import DEFAULT_BOUNDARY_WIDTH
from assignment2.runs import UsageError
from data_stubs.files import write_atomic, write_json_atomic

PROG = "python -m assignment2.train"
UPSAMPLING_CHOICES = ("bilinear", "nearest", "transpose")
STRATEGY_CHOICES = ("default", "mirrored")
CLASS_WEIGHT_CHOICES = ("none", "median")


MONITOR_CHOICES = ("val_mean_iou", "val_building_f1", "val_loss")
#: Options a resumed run may change: how long it trains and how it reports. Everything else
#: would change the model, the optimiser or the data, and is refused on --resume.
RESUME_CHANGEABLE = ("epochs", "tta", "verbose", "strategy")


@dataclass
class TrainConfig:
    """Everything a run depends on; saved as ``config.json`` beside its outputs."""

    # Folder of a raw SpaceNet 2 area or a prepared folder; None = the embedded stub area.
    data_dir: str | None = None
    # Where all outputs go.
    output_dir: str = "runs/assignment2"
    # Training epochs (the total, also when resuming). 25 keep the default run within 5 minutes
    # on 2 cores with the quality bars met (README).
    epochs: int = 25
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
    # Yu & Koltun context module (at resolution level context_level).
    context: bool = True
    # Rotation, crop, flip and scaling of training tiles (off: whole tiles as they are).
    augment: bool = True
    # Validate with test-time augmentation (8 flips / 90-degree rotations) besides plain.
    tta: bool = True
    # Continue from checkpoints/last.keras with the saved config, split and optimiser state.
    resume: bool = False
    # Replace the run already in output_dir (a fresh run into it is refused otherwise).
    overwrite: bool = False
    # "default" (one device) or "mirrored" (tf.distribute.MirroredStrategy).
    strategy: str = "default"
    # Keras "mixed_float16" policy (float16 compute, float32 weights, softmax and loss in
    # float32, dynamic loss scaling): faster on GPUs with tensor cores, not on a CPU.
    mixed_precision: bool = False
    # What checkpoints/best.keras follows: validation mean IoU, building F1 (both computed on
    # the validation tiles after every epoch, higher is better) or val_loss (lower).
    monitor: str = "val_mean_iou"
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
    # Resolution level of the context module, in [0, depth] (depth = the bottleneck): it runs on
    # maps of crop_size / 2**level pixels, which must be larger than its widest dilation (16):
    # level 2 gives 32 x 32 maps on 128-pixel crops (the bottleneck's 8 x 8 would leave the
    # dilation-8 and -16 taps reading only zero padding).
    context_level: int = 2
    # Peak Adam learning rate (cosine decay to 5% of it over the run).
    learning_rate: float = 3e-3
    # Momentum of the batch-norm moving averages. Keras' 0.99 averages over ~100 steps, which
    # lags far behind the weights in a run of a few hundred steps (inference then sees stale
    # statistics); 0.9 follows them within ~10 steps.
    bn_momentum: float = 0.9
    # Loss class weights: "none" or "median" frequency balancing (boosts the rare boundary).
    class_weights: str = "none"
    # Width in pixels of the boundary class when masks are made from polygons.
    boundary_width: int = DEFAULT_BOUNDARY_WIDTH
    # Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch.
    verbose: int = 1
    # Input bands: "rgb" (RGB-PanSharpen, 3 bands) or "mul" (MUL-PanSharpen, 8 bands).
    bands: str = "rgb"
    # Validation split: "tile" (random over all tiles) or "aoi" (the same fraction in every AOI).
    split_by: str = "tile"
    # Input scaling: "fixed" (x / (2**bits - 1)) or "percentile" (per-AOI 2-98 % stretch).
    normalization: str = "fixed"
    # Skip unreadable or inconsistent tiles (listed in skipped_tiles.json) instead of stopping.
    skip_bad_tiles: bool = False

    @property
    def stride(self) -> int:
        return 2**self.depth


# --------------------------------------------------------------------------- argument parsing


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


def _default(value) -> str:
    return {True: "on", False: "off", None: "none"}.get(value, str(value)) \
        if isinstance(value, (bool, type(None))) else str(value)


def build_parser(*, explicit_only: bool = False) -> argparse.ArgumentParser:
    """The CLI's parser; defaults come from :class:`TrainConfig` and are shown once per option.

    Args:
        explicit_only: every default is ``argparse.SUPPRESS``, so the parsed namespace holds only
            the options given on the command line (what ``--resume`` may apply).
    """
    d = TrainConfig()
    p = OneLineParser(prog=PROG, description="Train the assignment 2 U-Net on SpaceNet 2 style tiles.")

    def add(flag, name, help, shown=None, **kwargs):
        default = getattr(d, name)
        shown = _default(default) if shown is None else shown
        kwargs.setdefault("default", default)
        if explicit_only:
            kwargs["default"] = argparse.SUPPRESS
        p.add_argument(flag, dest=name, help=f"{help} (default: {shown})".replace("%", "%%"),
                       **kwargs)

    def number(flag, name, kind, help, *bounds, **open_bounds):
        add(flag, name, help, type=_bounded(kind, flag, *bounds, **open_bounds),
            metavar="N" if kind is int else "X")

    add("--data-dir", "data_dir", "raw SpaceNet 2 area, folder of AOI_* areas or prepared folder",
        shown="the embedded stub area", metavar="DIR")
    add("--output-dir", "output_dir", "run folder for every output", metavar="DIR")
    number("--epochs", "epochs", int, "total training epochs; with --resume: the saved run's "
           "unless given", 1)
    number("--batch-size", "batch_size", int, "crops per batch (global, split over replicas)", 1)
    number("--crop-size", "crop_size", int, "training crop side, a multiple of 2**depth", 1)
    number("--crops-per-tile", "crops_per_tile", int, "random crops per training tile and epoch",
           1)
    number("--val-fraction", "val_fraction", float, "fraction of tiles held out for validation",
           0.0, 1.0, low_open=True, high_open=True)
    number("--seed", "seed", int, "seed of the split, weights, augmentation and batch order", 0)
    add("--no-context", "context", "train without the dilated context module",
        shown="with the module", action="store_false")
    add("--no-augment", "augment", "train on whole tiles without augmentation",
        shown="augmented crops", action="store_false")
    add("--tta", "tta", "also validate with test-time augmentation (8 flips/rotations)",
        action=argparse.BooleanOptionalAction)
    add("--resume", "resume", "continue the run in --output-dir from its last checkpoint, with "
        "its saved options", action="store_true")
    add("--overwrite", "overwrite", "replace the run already in --output-dir",
        action="store_true")
    add("--strategy", "strategy", "one device, or MirroredStrategy over all GPUs (or logical "
        "CPUs)", choices=STRATEGY_CHOICES)
    add("--mixed-precision", "mixed_precision", "mixed_float16 compute (softmax and loss in "
        "float32)", action="store_true")
    add("--monitor", "monitor", "validation metric that selects checkpoints/best.keras",
        choices=MONITOR_CHOICES)
    add("--upsampling", "upsampling", "decoder upsampling", choices=UPSAMPLING_CHOICES)
    add("--context-implementation", "context_implementation", "dilated convolutions by "
        "tf.nn.atrous_conv2d or dilated tf.nn.conv2d (same function)",
        choices=("atrous", "conv2d"))
    number("--context-level", "context_level", int, "resolution level of the context module "
           "(maps of crop-size / 2**level px; depth = bottleneck)", 0, 6)
    number("--base-filters", "base_filters", int, "channels of the first U-Net level", 1)
    number("--depth", "depth", int, "U-Net levels (network stride 2**depth)", 1, 6)
    number("--learning-rate", "learning_rate", float, "peak Adam learning rate (cosine decay)",
           0.0, 1.0, low_open=True)
    number("--bn-momentum", "bn_momentum", float, "momentum of the batch-norm moving statistics",
           0.0, 1.0)
    add("--class-weights", "class_weights", "loss class weights", choices=CLASS_WEIGHT_CHOICES)
    number("--boundary-width", "boundary_width", int, "boundary class width in px (masks from "
           "polygons)", 1)
    add("--verbose", "verbose", "0 silent, 1 progress bar, 2 one line per epoch", type=int,
        choices=(0, 1, 2))
    add("--bands", "bands", "RGB-PanSharpen (3 bands) or MUL-PanSharpen (8 bands)",
        choices=("rgb", "mul"))
    add("--split-by", "split_by", "validation split over all tiles or stratified by AOI",
        choices=("tile", "aoi"))
    add("--normalization", "normalization", "input scaling: fixed bit-depth range or per-AOI "
        "2-98% percentiles", choices=("fixed", "percentile"))
    add("--skip-bad-tiles", "skip_bad_tiles", "skip unreadable or inconsistent tiles (listed in "
        "skipped_tiles.json)", action="store_true")
    return p


def parse_args(argv=None) -> tuple[TrainConfig, dict]:
    """Parse ``argv`` (default ``sys.argv[1:]``) -> ``(config, {name: value given explicitly})``.

    Exits with status 2 and one line on stderr on a bad option.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    config = TrainConfig(**vars(build_parser().parse_args(argv)))
    explicit = vars(build_parser(explicit_only=True).parse_args(argv))
    if config.resume and config.overwrite:
        build_parser().error("--resume and --overwrite exclude each other")
    return config, explicit


def parse_config(argv=None) -> TrainConfig:
    """Parse ``argv`` (default ``sys.argv[1:]``) into a :class:`TrainConfig`."""
    return parse_args(argv)[0]


# --------------------------------------------------------------------------- run folder


def _start_config(config: TrainConfig, explicit: dict) -> tuple[TrainConfig, dict]:
    """The configuration this session runs with, and its ``config.json`` session record.

    A new run into a folder that holds a run is refused unless ``--overwrite``. ``--resume``
    restores the saved configuration; of the options given explicitly only
    ``RESUME_CHANGEABLE`` ones may differ from it.
    """
    from assignment2 import runs

    out = Path(config.output_dir)
    if not config.resume:
        if runs.holds_run(out) and not config.overwrite:
            raise UsageError(f"--output-dir {out} holds a run (config.json, checkpoints); "
                             f"continue it with --resume, replace it with --overwrite, or "
                             f"choose another --output-dir")
        mode = "overwrite" if runs.holds_run(out) else "fresh"
        return config, {"mode": mode, "initial_epoch": 0, "changed": {}, "sessions": []}
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    saved = runs.read_saved_config(out, names)
    given = {k: v for k, v in explicit.items() if k not in ("resume", "output_dir")}
    flags = {action.dest: action.option_strings[-1] if action.const is False else
             action.option_strings[0] for action in build_parser()._actions}
    merged, changed = runs.resume_config(saved, given, changeable=RESUME_CHANGEABLE,
                                         option_names=flags)
    try:
        config = TrainConfig(**{**merged, "resume": True, "overwrite": False,
                                "output_dir": str(out)})
    except TypeError as exc:
        raise UsageError(f"--resume: unreadable {out / 'config.json'}: {exc}") from None
    state = _read_state(out)
    if config.epochs < state["epoch"]:
        raise UsageError(f"--epochs {config.epochs} is below the {state['epoch']} epochs the "
                         f"run in {out} has completed")
    runs.check_checkpoint(out / "checkpoints" / "last.keras")
    return config, {"mode": "resume", "initial_epoch": state["epoch"], "changed": changed,
                    "sessions": runs.saved_sessions(out)}


def _check_options(config: TrainConfig) -> None:
    """Checks between options that argparse cannot make (before anything is read or written)."""
    from assignment2.model import CONTEXT_DILATIONS, dead_dilations

    if config.context_level > config.depth:
        raise UsageError(f"--context-level {config.context_level} must be <= --depth "
                         f"{config.depth}")
    if config.context and config.augment and config.crop_size % config.stride == 0:
        side = config.crop_size // 2**config.context_level
        dead = dead_dilations(side, CONTEXT_DILATIONS)
        if dead:
            raise UsageError(
                f"--crop-size {config.crop_size} at --context-level {config.context_level} "
                f"gives {side}x{side} maps, where the context module's dilations "
                f"{', '.join(map(str, dead))} read only zero padding and never learn; use a "
                f"lower --context-level or crops of more than {max(dead) * 2**config.context_level}"
                f" px")


# --------------------------------------------------------------------------- data


def _load_data(config: TrainConfig):
    """The prepared data set and the (saved or new) split -> (prepared, train ids, val ids).

    A raw SpaceNet folder (one area or a folder of AOI_* areas) is prepared once into the cache
    (:func:`assignment2.prepare.prepared_data`). Nothing is written into the run folder here:
    :func:`_save_data_files` does that once every check has passed.
    """
    from assignment2 import data
    from assignment2.prepare import prepared_data

    data_dir = Path(config.data_dir) if config.data_dir else data.default_data_dir()
    if not data_dir.is_dir():
        raise UsageError(f"--data-dir: no such folder: {data_dir}")
    # the preparation's own log is dropped: without --skip-bad-tiles a bad tile is the one error
    # line; with it, every skipped tile (fresh or cached preparation) is listed once, below
    prepared = prepared_data(data_dir, bands=config.bands, boundary_width=config.boundary_width,
                             skip_bad_tiles=config.skip_bad_tiles, log=lambda line: None)
    for note in prepared.notes:
        print(note, file=sys.stderr)
    for bad in prepared.skipped:
        print(f"skipped: {bad['error']}", file=sys.stderr)
    out = Path(config.output_dir)
    if config.resume:
        train_ids, val_ids = data.load_split(out / "split.json")
    else:
        train_ids, val_ids = data.split_tiles(prepared.tiles, config.val_fraction, config.seed,
                                              by=config.split_by)
    known = {t.id for t in prepared.tiles}
    missing = [i for i in list(train_ids) + list(val_ids) if i not in known]
    if missing:
        raise UsageError(f"{out / 'split.json'}: tile ids not in {data_dir}: {missing[:3]}")
    if not train_ids or not val_ids:
        raise UsageError(f"--val-fraction {config.val_fraction} leaves {len(train_ids)} training "
                         f"and {len(val_ids)} validation tiles; both must be >= 1")
    return prepared, train_ids, val_ids


def _save_data_files(config: TrainConfig, prepared, train_ids, val_ids) -> None:
    """Into the run folder: ``split.json`` (a new run), ``radiometry.json`` (the scaling, for
    prediction) and ``skipped_tiles.json`` (if any)."""
    from assignment2 import data
    from assignment2.radiometry import save_radiometry

    out = Path(config.output_dir)
    if not config.resume:
        data.save_split(out / "split.json", train_ids, val_ids)
    save_radiometry(out / "radiometry.json", prepared.radiometry, config.normalization)
    if prepared.skipped:
        write_json_atomic(out / "skipped_tiles.json", prepared.skipped)


def _check_crop(config: TrainConfig, prepared) -> None:
    """Crops must fit the tiles and the stride; whole tiles of any size are padded instead."""
    tile = prepared.tiles[0]  # every tile of a prepared data set has one size
    if config.augment and config.crop_size > min(tile.height, tile.width):
        raise UsageError(f"--crop-size {config.crop_size} is larger than the tiles "
                         f"({tile.height}x{tile.width} px)")
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


def _distribute(strategy, dataset):
    """``dataset`` with its auto-shard policy set explicitly, distributed over the replicas.

    The policy is DATA: on several workers (``MultiWorkerMirroredStrategy``) each worker keeps
    every k-th batch of the same deterministic stream, so the shards are disjoint and together
    are the single-machine stream; FILE sharding would need at least as many input files as
    workers and would change the stream with the worker count. On one machine the global batch
    is split over the replicas (``experimental_distribute_dataset``).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    if strategy.num_replicas_in_sync > 1:
        return strategy.experimental_distribute_dataset(dataset)
    return dataset


def build_model(config: TrainConfig, total_steps: int, train_masks=None):
    """The compiled U-Net of ``config`` (call inside ``strategy.scope()``).

    Adam with a cosine-decayed learning rate over ``total_steps`` (to 5% of the peak), the
    segmentation cross entropy (median-frequency class weights from ``train_masks`` with
    ``class_weights="median"``). With ``mixed_precision`` the layers are built under the
    ``mixed_float16`` policy (float16 compute, float32 variables; the softmax is float32, so the
    loss is computed on float32 probabilities) and Keras wraps Adam in a ``LossScaleOptimizer``;
    the global policy is restored afterwards.
    """
    import keras

    from assignment2.data import BAND_COUNTS
    from assignment2.model import build_unet, pixel_class_weights, segmentation_loss

    keras.utils.set_random_seed(config.seed)
    weights = pixel_class_weights(train_masks) if config.class_weights == "median" else None
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if config.mixed_precision else "float32")
    try:
        model = build_unet(depth=config.depth, base_filters=config.base_filters,
                           upsampling=config.upsampling, context=config.context,
                           context_implementation=config.context_implementation,
                           context_level=config.context_level,
                           input_channels=BAND_COUNTS[config.bands])
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = config.bn_momentum  # read at call time, saved in get_config
        schedule = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=max(1, total_steps), alpha=0.05)
        model.compile(optimizer=keras.optimizers.Adam(schedule),
                      loss=segmentation_loss(class_weights=weights))
    finally:
        keras.config.set_dtype_policy(previous)
    return model


def _load_checkpoint(path: Path, compile: bool = True, mixed_precision: bool = False):
    """Load a checkpoint; ``mixed_precision``: under the ``mixed_float16`` global policy, which
    the model of a ``--mixed-precision`` run needs for Keras to rebuild its
    ``LossScaleOptimizer`` (under float32 it would compile a plain Adam and drop the saved
    optimiser state). The global policy is restored afterwards."""
    import keras

    import assignment2.model  # noqa: F401  (registers ContextModule and the loss for loading)

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if mixed_precision else "float32")
    try:
        return keras.saving.load_model(path, compile=compile)
    except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as exc:
        raise UsageError(f"cannot load checkpoint {path}: {type(exc).__name__}: {exc}") from None
    finally:
        keras.config.set_dtype_policy(previous)


def _monitor_mode(monitor: str) -> str:
    return "min" if monitor == "val_loss" else "max"


def _initial_state(config: TrainConfig) -> dict:
    worst = float("inf") if _monitor_mode(config.monitor) == "min" else -float("inf")
    return {"epoch": 0, "monitor": config.monitor, "best": worst}


def _read_state(out: Path) -> dict:
    """``checkpoints/state.json``: completed epochs, the monitored metric and its best value."""
    path = out / "checkpoints" / "state.json"
    try:
        state = json.loads(path.read_text())
        epoch = int(state["epoch"])
        if "best" not in state:  # written before --monitor existed: it followed val_loss
            state = {**state, "monitor": "val_loss", "best": state["best_val_loss"]}
        return {**state, "epoch": epoch, "best": float(state["best"])}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"--resume: unreadable {path}: {type(exc).__name__}: {exc}") from None


class TrainingError(Exception):
    """Training could not go on (the loss became NaN): one line, exit status 1."""


# --------------------------------------------------------------------------- callbacks


def _checkpoint_callback(out: Path, state: dict):
    """Keras callback: after each epoch save last.keras (+ state.json), and best.keras when the
    monitored metric improves (``state["monitor"]``: ``val_loss`` lower, the others higher);
    every file atomically, so an interruption never loses a checkpoint.

    An epoch whose training loss is not finite saves nothing (the weights are NaN): the folder
    keeps the checkpoints of the last good epoch, and ``diverged_epoch`` records the epoch.
    A NaN metric never counts as an improvement.
    """
    import keras

    minimise = _monitor_mode(state["monitor"]) == "min"

    class AtomicCheckpoint(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = state["best"]
            self.diverged_epoch = None

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            if not math.isfinite(float(logs.get("loss", float("nan")))):
                self.diverged_epoch = epoch + 1
                return
            folder = out / "checkpoints"
            value = float(logs.get(state["monitor"], float("nan")))
            if value < self.best if minimise else value > self.best:
                self.best = value
                write_atomic(folder / "best.keras", self.model.save)
            write_atomic(folder / "last.keras", self.model.save)
            write_json_atomic(folder / "state.json", {
                "epoch": epoch + 1, "monitor": state["monitor"], "best": self.best,
                "optimizer_iterations": int(self.model.optimizer.iterations.numpy())})

    return AtomicCheckpoint()


def _validation_metrics_callback(config: TrainConfig, prepared, val_ids):
    """Keras callback: after each epoch, metrics of the model on the whole validation tiles,
    added to the epoch's logs (so history.csv, TensorBoard and the checkpoint see them):
    ``val_mean_iou``, ``val_iou_building`` (pixel IoU) and ``val_building_f1`` (SpaceNet
    instance F1, pooled over the tiles).

    The tiles are streamed (:func:`assignment2.pipeline.tile_dataset`, a batch at a time) and
    scored one by one into a :class:`assignment2.metrics.MetricAccumulator` that keeps counts
    only; true instances are the polygons', no-data pixels are not scored. No test-time
    augmentation (that is for the final evaluation).
    """
    import keras
    import numpy as np

    from assignment2.metrics import MetricAccumulator
    from assignment2.pipeline import tile_dataset

    tiles = prepared.by_id(val_ids)
    dataset = tile_dataset(prepared, tiles=val_ids, normalization=config.normalization,
                           multiple=config.stride).batch(config.batch_size)

    class ValidationMetrics(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            accumulator = MetricAccumulator(boundary_width=config.boundary_width)
            for batch in dataset:
                probs = np.asarray(self.model.predict_on_batch(batch["image"]))
                for i, index in enumerate(batch["index"].numpy()):
                    height, width = batch["instances"].shape[1:3]
                    accumulator.update(np.asarray(batch["mask"][i])[:height, :width],
                                       probs[i, :height, :width], aoi=tiles[index].aoi,
                                       true_instances=np.asarray(batch["instances"][i]),
                                       valid=np.asarray(batch["valid"][i]))
            summary = accumulator.summarise()
            if logs is not None:
                for key in ("mean_iou", "iou_building", "building_f1"):
                    logs["val_" + key] = summary[key]

    return ValidationMetrics()


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


def _callbacks(config: TrainConfig, out: Path, state: dict, prepared, val_ids):
    """In this order: validation metrics (added to the logs the others read), stop on a NaN
    loss, checkpoints, history.csv, TensorBoard."""
    import keras

    return [
        _validation_metrics_callback(config, prepared, val_ids),
        keras.callbacks.TerminateOnNaN(),
        _checkpoint_callback(out, state),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=config.resume),
        _tensorboard_callback(out / "logs"),
    ]


# --------------------------------------------------------------------------- training


def _fit(config: TrainConfig, prepared, train_ids, val_ids):
    """Build or restore the model and train it; returns the number of completed epochs."""
    from assignment2.augment import AugmentConfig
    from assignment2.data import read_tile
    from assignment2.pipeline import steps_per_epoch, train_dataset, validation_dataset

    out = Path(config.output_dir)
    masks = (read_tile(tile).mask for tile in prepared.by_id(train_ids))  # read lazily
    per_epoch = len(train_ids) * (config.crops_per_tile if config.augment else 1)
    steps = steps_per_epoch(per_epoch, config.batch_size)
    strategy = make_strategy(config.strategy)
    state = _read_state(out) if config.resume else _initial_state(config)
    with strategy.scope():
        if config.resume:
            model = _load_checkpoint(out / "checkpoints" / "last.keras",
                                     mixed_precision=config.mixed_precision)
        else:
            model = build_model(config, steps * config.epochs, masks)
    augment_config = (AugmentConfig(crop_size=config.crop_size) if config.augment
                      else AugmentConfig.none())
    train = train_dataset(prepared, tiles=train_ids, batch_size=config.batch_size,
                          augment_config=augment_config, seed=config.seed,
                          start_element=state["epoch"] * steps * config.batch_size,
                          normalization=config.normalization, multiple=config.stride)
    val = validation_dataset(prepared, tiles=val_ids, batch_size=config.batch_size,
                             multiple=config.stride, normalization=config.normalization)
    if state["epoch"] >= config.epochs:
        return state["epoch"]
    callbacks = _callbacks(config, out, state, prepared, val_ids)
    model.fit(_distribute(strategy, train), epochs=config.epochs, initial_epoch=state["epoch"],
              steps_per_epoch=steps, validation_data=_distribute(strategy, val),
              verbose=config.verbose, shuffle=False, callbacks=callbacks)
    diverged = callbacks[2].diverged_epoch
    if diverged is not None:
        raise TrainingError(f"the training loss became NaN in epoch {diverged}; the "
                            f"checkpoints keep epoch {diverged - 1} (try a lower "
                            f"--learning-rate)")
    return config.epochs


# --------------------------------------------------------------------------- validation


def _save_prediction(out: Path, tile, probs) -> None:
    """One validation tile's probabilities (float16) and classes (uint8), georeferenced like
    its source tile, written atomically."""
    import numpy as np

    from assignment2.geotiff import write_geotiff

    folder = out / "predictions"
    write_geotiff(folder / f"{tile.id}_probs.tif", probs.astype(np.float16), tile.transform,
                  photometric="minisblack")
    write_geotiff(folder / f"{tile.id}_mask.tif", np.argmax(probs, -1).astype(np.uint8),
                  tile.transform)


def _save_figures(out: Path, shown: list) -> None:
    """Overlays of the first validation tiles (``shown``: (id, image, mask, probs)) and the
    learning curves."""
    import numpy as np

    from assignment2 import plots

    ids, images, masks, probs = zip(*shown)
    predicted = [np.argmax(p, axis=-1) for p in probs]
    figure = plots.overlay_figure(list(images), list(masks), predicted, list(ids))
    plots.save_figure(figure, out / "figures" / "validation_overlays.png")
    curves = plots.learning_curves_figure(plots.read_history(out / "history.csv"))
    plots.save_figure(curves, out / "figures" / "learning_curves.png")


def _evaluate(config: TrainConfig, prepared, val_ids) -> dict:
    """Metrics of the best checkpoint on the validation tiles, streamed tile by tile (pooled,
    per AOI and averaged over AOIs); predictions and figures saved."""
    from assignment2.evaluation import evaluate

    out = Path(config.output_dir)
    best = out / "checkpoints" / "best.keras"
    model = _load_checkpoint(best if best.is_file() else out / "checkpoints" / "last.keras",
                             compile=False, mixed_precision=config.mixed_precision)
    shown = []

    def on_tile(tile, probs, element):
        _save_prediction(out, tile, probs)
        if len(shown) < 4:  # the overlay figure shows 4 tiles; keep no more in memory
            shown.append((tile.id, element["image"], element["mask"], probs))

    metrics = evaluate(model, prepared, tiles=val_ids, multiple=config.stride,
                       normalization=config.normalization, tta=config.tta,
                       batch_size=config.batch_size, on_tile=on_tile, polygons=True)
    write_json_atomic(out / "metrics.json", metrics)
    _save_figures(out, shown)
    return metrics


def run(config: TrainConfig, explicit: dict | None = None) -> dict:
    """Train (or resume), validate and write every output; returns the metrics dict.

    Every option, the data and (on resume) the run folder are checked before anything is
    written. A new run into a folder holding a run needs ``overwrite`` (the old outputs are
    then removed, so the folder never mixes two runs).

    Args:
        config: the options.
        explicit: ``{name: value}`` of the options given on the command line (``--resume``
            applies these to the saved configuration; None: none, everything as saved).

    Raises:
        UsageError: bad option, data folder, split, crop size, run folder or checkpoint.
        assignment2.data.DataError: a corrupt or inconsistent data file.
        TrainingError: the loss became NaN (the checkpoints keep the last good epoch).
    """
    from assignment2 import runs

    out = Path(config.output_dir)
    config, session = _start_config(config, explicit or {})
    _check_options(config)
    prepared, train_ids, val_ids = _load_data(config)
    _check_crop(config, prepared)
    if session["mode"] == "overwrite":
        runs.clear_run(out)
    out.mkdir(parents=True, exist_ok=True)
    record = runs.config_record(dataclasses.asdict(config), session["sessions"],
                                mode=session["mode"], initial_epoch=session["initial_epoch"],
                                changed=session["changed"])
    write_json_atomic(out / "config.json", record)
    _save_data_files(config, prepared, train_ids, val_ids)
    _fit(config, prepared, train_ids, val_ids)
    runs.clear_evaluation(out)  # predictions/ and metrics.json belong to this evaluation only
    metrics = _evaluate(config, prepared, val_ids)
    _print_summary(metrics)
    return metrics


def _print_summary(metrics: dict) -> None:
    keys = ["pixel_accuracy", "mean_iou", "iou_building", "building_f1"]
    for variant, values in metrics.items():
        print(f"{variant:>6}: " + "  ".join(f"{k} {values[k]:.3f}" for k in keys if k in values))


def main(argv=None) -> int:
    """Entry point: parse, run, and turn bad input into one line on stderr and exit status 2."""
    config, explicit = parse_args(argv)
    try:
        from assignment2.data import DataError
    except ImportError as exc:  # pragma: no cover - broken installation
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        run(config, explicit)
    except (UsageError, DataError, OSError) as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except TrainingError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; continue with --resume --output-dir {config.output_dir}",
              file=sys.stderr)
        return 130
    return 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
