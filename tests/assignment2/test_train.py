"""Training CLI: a short run lowers the loss, writes every output, resumes, runs mirrored, and
turns bad input into one line on stderr with exit status 2."""

import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tifffile

from assignment2 import train
from assignment2.augment import AugmentConfig
from assignment2.model import build_unet, segmentation_loss
from assignment2.pipeline import stack_tiles, train_dataset
from data_stubs.spacenet import generate_area

# the context module at full resolution: on 32-pixel crops a coarser level would leave its
# dilation-16 taps reading only zero padding, which the CLI refuses
TINY = ["--depth", "2", "--base-filters", "4", "--crop-size", "32", "--batch-size", "2",
        "--crops-per-tile", "1", "--val-fraction", "0.34", "--verbose", "0",
        "--context-level", "0"]
METRIC_KEYS = {"pixel_accuracy", "iou_background", "iou_building", "iou_boundary", "mean_iou",
               "building_f1"}


@pytest.fixture(scope="module")
def area(tmp_path_factory):
    """A tiny stub area: 6 tiles of 64 x 64 pixels."""
    return generate_area(tmp_path_factory.mktemp("area"), n_tiles=6, tile_size=64)


@pytest.fixture(scope="module")
def finished_run(area, tmp_path_factory):
    """Output folder of a 2-epoch tiny run made through ``main`` in-process."""
    out = tmp_path_factory.mktemp("run")
    keras.utils.set_random_seed(0)
    code = train.main(["--data-dir", str(area), "--output-dir", str(out), "--epochs", "2", *TINY])
    assert code == 0
    return out


def test_short_training_on_a_fixed_batch_lowers_the_loss(area):
    from assignment2.data import load_tiles

    tiles = load_tiles(area)
    images, masks = stack_tiles(tiles.images, tiles.masks)
    batch = next(iter(train_dataset((images, masks), batch_size=4, seed=0,
                                    augment_config=AugmentConfig(crop_size=32))))
    model = build_unet(depth=2, base_filters=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=segmentation_loss())
    losses = [float(model.train_on_batch(*batch)) for _ in range(12)]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.75 * losses[0], losses
    assert sum(b < a for a, b in itertools.pairwise(losses)) >= 9, losses  # mostly monotone


def test_run_writes_every_output(finished_run):
    out = finished_run
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 2 and config["depth"] == 2 and config["output_dir"] == str(out)
    assert [session["mode"] for session in config["sessions"]] == ["fresh"]
    split = json.loads((out / "split.json").read_text())
    assert len(split["train"]) == 4 and len(split["val"]) == 2
    for name in ("best.keras", "last.keras", "state.json"):
        assert (out / "checkpoints" / name).is_file()
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    best = keras.saving.load_model(out / "checkpoints" / "best.keras", compile=False)
    norms = [layer for layer in best.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.9 for layer in norms)  # TrainConfig.bn_momentum
    history = (out / "history.csv").read_text().splitlines()
    assert set(history[0].split(",")) == {"epoch", "loss", "val_loss", "val_mean_iou",
                                          "val_iou_building", "val_building_f1"}
    assert len(history) == 3
    assert {p.name for p in (out / "logs").iterdir()} == {"train", "validation"}
    assert {p.name for p in (out / "figures").iterdir()} == {
        "validation_overlays.png", "learning_curves.png"}


def test_metrics_and_stored_predictions(finished_run):
    out = finished_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"no_tta", "tta"}
    for values in metrics.values():
        assert METRIC_KEYS <= set(values)
        assert all(0.0 <= values[key] <= 1.0 for key in METRIC_KEYS)
    for tile_id in json.loads((out / "split.json").read_text())["val"]:
        probs = tifffile.imread(out / "predictions" / f"{tile_id}_probs.tif")
        mask = tifffile.imread(out / "predictions" / f"{tile_id}_mask.tif")
        assert probs.dtype == np.float16 and probs.shape == (64, 64, 3)
        assert mask.dtype == np.uint8 and mask.shape == (64, 64)
        np.testing.assert_allclose(probs.astype(np.float32).sum(-1), 1.0, atol=5e-3)
        # the mask is the argmax of the float32 average; float16 storage may tie close pixels
        top_two = np.sort(probs.astype(np.float32), axis=-1)[..., -2:]
        clear = top_two[..., 1] - top_two[..., 0] > 2e-3
        assert clear.mean() > 0.95
        np.testing.assert_array_equal(mask[clear], np.argmax(probs, axis=-1)[clear])
        assert set(np.unique(mask)) <= {0, 1, 2}


def test_resume_continues_epochs_split_and_optimizer_state(finished_run, area):
    out = finished_run
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    steps = 2  # 4 training tiles, 1 crop each, batch 2
    assert state["epoch"] == 2 and state["optimizer_iterations"] == 2 * steps
    split_before = (out / "split.json").read_text()
    code = train.main(["--data-dir", str(area), "--output-dir", str(out), "--epochs", "3",
                       "--resume", "--verbose", "0", "--no-tta"])
    assert code == 0
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 3
    # a fresh optimiser would count only this run's steps
    assert state["optimizer_iterations"] == 3 * steps
    model = keras.saving.load_model(out / "checkpoints" / "last.keras")
    assert int(model.optimizer.iterations.numpy()) == 3 * steps
    rows = (out / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]
    assert (out / "split.json").read_text() == split_before
    config = json.loads((out / "config.json").read_text())
    assert config["depth"] == 2 and config["epochs"] == 3 and config["tta"] is False
    fresh, resumed = config["sessions"]
    assert resumed["mode"] == "resume" and resumed["initial_epoch"] == 2
    assert resumed["changed"] == {"epochs": [2, 3], "tta": [True, False]}


def _cli(*args, cwd=None):
    """Run the CLI in a subprocess (exit status and stderr exactly as a student sees them)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "assignment2.train", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def test_help_lists_every_option_without_importing_tensorflow():
    result = _cli("--help")
    assert result.returncode == 0
    for option in ("--data-dir", "--output-dir", "--epochs", "--batch-size", "--crop-size",
                   "--val-fraction", "--seed", "--no-context", "--no-augment", "--tta",
                   "--no-tta", "--resume", "--strategy", "--upsampling", "--base-filters",
                   "--depth", "--learning-rate"):
        assert option in result.stdout
    code = ("import sys; from assignment2 import train; "
            "train.parse_config(['--epochs', '3']); print('tensorflow' in sys.modules)")
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60, check=False)
    assert probe.stdout.strip() == "False"


@pytest.mark.parametrize("args, named", [
    (["--epochs", "ten"], "--epochs"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "-2"], "--batch-size"),
    (["--val-fraction", "1.5"], "--val-fraction"),
    (["--val-fraction", "1"], "--val-fraction"),
    (["--learning-rate", "nan"], "--learning-rate"),
    (["--learning-rate", "abc"], "--learning-rate"),
    (["--depth", "9"], "--depth"),
    (["--strategy", "tpu"], "--strategy"),
    (["--upsampling", "cubic"], "--upsampling"),
    (["--bogus"], "--bogus"),
])
def test_bad_options_exit_2_with_one_line(args, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and named in err


def _main_error(args, capsys):
    code = train.main(args)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    return err


def test_missing_data_dir_and_crop_larger_than_tiles(area, tmp_path, capsys):
    err = _main_error(["--data-dir", str(tmp_path / "nowhere"), "--output-dir",
                       str(tmp_path / "o1"), *TINY], capsys)
    assert "nowhere" in err
    err = _main_error(["--data-dir", str(area), "--output-dir", str(tmp_path / "o2"), *TINY,
                       "--crop-size", "128"], capsys)
    assert "--crop-size 128" in err and "64" in err
    err = _main_error(["--data-dir", str(area), "--output-dir", str(tmp_path / "o3"), *TINY,
                       "--crop-size", "30"], capsys)
    assert "--crop-size 30" in err and "multiple" in err


def test_corrupt_tiff_is_named_on_one_line(area, tmp_path, capsys):
    import shutil

    copy = tmp_path / "area"
    shutil.copytree(area, copy)
    victim = sorted((copy / "RGB-PanSharpen").glob("*.tif"))[1]
    victim.write_bytes(victim.read_bytes()[:300])  # truncated
    err = _main_error(["--data-dir", str(copy), "--output-dir", str(tmp_path / "o"), *TINY],
                      capsys)
    assert victim.name in err


def test_resume_without_a_run_and_a_corrupt_checkpoint_keep_what_exists(finished_run, area,
                                                                        tmp_path, capsys):
    err = _main_error(["--output-dir", str(tmp_path / "empty"), "--resume"], capsys)
    assert "--resume" in err
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    best = (out / "checkpoints" / "best.keras").read_bytes()
    (out / "checkpoints" / "last.keras").write_bytes(b"not a zip file")
    err = _main_error(["--data-dir", str(area), "--output-dir", str(out), "--resume",
                       "--epochs", "4", "--verbose", "0"], capsys)
    assert "last.keras" in err
    assert (out / "checkpoints" / "best.keras").read_bytes() == best


def test_mirrored_strategy_on_two_logical_cpus(area, tmp_path):
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from assignment2 import train
        print("replicas", train.make_strategy("mirrored").num_replicas_in_sync)
        code = train.main(["--data-dir", {str(area)!r}, "--output-dir", {str(tmp_path)!r},
                           "--epochs", "1", "--strategy", "mirrored", "--no-tta",
                           *{TINY!r}])
        print("exit", code)
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=300, check=False)
    assert "replicas 2" in result.stdout and "exit 0" in result.stdout, result.stderr[-2000:]
    metrics = json.loads((Path(tmp_path) / "metrics.json").read_text())
    assert set(metrics) == {"no_tta"} and METRIC_KEYS <= set(metrics["no_tta"])



# --------------------------------------------------------------------------- run-folder safety


def _snapshot(folder: Path) -> dict:
    """Every file below ``folder`` with its bytes (to show that nothing was touched)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A private copy of the finished tiny run (tests may change it)."""
    import shutil

    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def test_fresh_run_into_a_run_folder_is_refused_and_changes_nothing(run_copy, area, capsys):
    before = _snapshot(run_copy)
    err = _main_error(["--data-dir", str(area), "--output-dir", str(run_copy), *TINY,
                       "--epochs", "1"], capsys)
    assert "holds a run" in err and "--overwrite" in err and "--resume" in err
    assert _snapshot(run_copy) == before


def _without_options(base: list[str], overrides: list[str]) -> list[str]:
    """``base`` (``--flag value`` pairs) without the flags that ``overrides`` sets."""
    given = {a for a in overrides if a.startswith("--")}
    pairs = zip(base[::2], base[1::2])
    return [item for flag, value in pairs if flag not in given for item in (flag, value)]


def test_without_options_drops_flag_and_value_pairs():
    assert _without_options(["--a", "32", "--b", "32", "--c", "1"], ["--b", "7"]) == [
        "--a", "32", "--c", "1"]


@pytest.mark.parametrize("args, named", [
    (["--overwrite", "--crop-size", "999"], "--crop-size 999"),
    (["--overwrite", "--crop-size", "30"], "--crop-size 30"),
    (["--overwrite", "--context-level", "3"], "--context-level 3"),
    (["--overwrite", "--context-level", "1"], "zero padding"),  # 16 x 16 maps, dilation 16
    (["--resume", "--crop-size", "999"], "--crop-size 999"),
    (["--resume", "--depth", "3"], "--depth 3 (run has depth=2)"),
    (["--resume", "--seed", "7", "--no-context"], "--seed 7 (run has seed=0); --no-context (run has context=True)"),
    (["--resume", "--epochs", "1"], "--epochs 1 is below"),
])
def test_failing_checks_write_nothing(run_copy, area, args, named, capsys):
    """Options, data and run folder are checked before anything is written: no split.json,
    config.json or checkpoint of the run changes when a check fails."""
    before = _snapshot(run_copy)
    fixed = _without_options(TINY, args) if "--overwrite" in args else []
    err = _main_error(["--data-dir", str(area), "--output-dir", str(run_copy), *fixed, *args],
                      capsys)
    assert named in err, err
    assert _snapshot(run_copy) == before


def test_resume_and_overwrite_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--output-dir", str(tmp_path), "--resume", "--overwrite"])
    assert exit_info.value.code == 2
    assert "--overwrite" in capsys.readouterr().err


def test_plain_resume_keeps_the_saved_epochs_and_records_the_session(run_copy, capsys):
    """A 2-epoch run resumed without --epochs stays a 2-epoch run (not the default 25): it
    trains nothing, re-evaluates and records the session."""
    state = json.loads((run_copy / "checkpoints" / "state.json").read_text())
    saved = json.loads((run_copy / "config.json").read_text())
    last = (run_copy / "checkpoints" / "last.keras").read_bytes()
    stale = run_copy / "predictions" / "AOI_9_Elsewhere_img1_probs.tif"
    stale.write_bytes(b"a prediction of another run")
    assert train.main(["--output-dir", str(run_copy), "--resume", "--no-tta"]) == 0
    assert json.loads((run_copy / "checkpoints" / "state.json").read_text()) == state
    assert (run_copy / "checkpoints" / "last.keras").read_bytes() == last
    config = json.loads((run_copy / "config.json").read_text())
    assert config["epochs"] == saved["epochs"] == state["epoch"]
    assert config["sessions"][:-1] == saved["sessions"]
    assert config["sessions"][-1]["changed"] == ({} if saved["tta"] is False
                                                 else {"tta": [True, False]})
    # predictions/ belongs to this evaluation only: the stray file is gone
    val_ids = json.loads((run_copy / "split.json").read_text())["val"]
    assert sorted(p.name for p in (run_copy / "predictions").iterdir()) == sorted(
        f"{tile_id}_{kind}.tif" for tile_id in val_ids for kind in ("mask", "probs"))
    assert set(json.loads((run_copy / "metrics.json").read_text())) == {"no_tta"}


def test_overwrite_replaces_every_output_of_the_old_run(run_copy, area):
    (run_copy / "notes.txt").write_text("not a run output")
    old_split = json.loads((run_copy / "split.json").read_text())
    (run_copy / "predictions" / "AOI_9_Elsewhere_img1_probs.tif").write_bytes(b"old")
    assert train.main(["--data-dir", str(area), "--output-dir", str(run_copy), *TINY,
                       "--epochs", "1", "--seed", "3", "--no-tta", "--overwrite"]) == 0
    config = json.loads((run_copy / "config.json").read_text())
    assert config["seed"] == 3 and [s["mode"] for s in config["sessions"]] == ["overwrite"]
    assert json.loads((run_copy / "checkpoints" / "state.json").read_text())["epoch"] == 1
    assert len((run_copy / "history.csv").read_text().splitlines()) == 2
    split = json.loads((run_copy / "split.json").read_text())
    assert split != old_split
    assert sorted(p.name for p in (run_copy / "predictions").iterdir()) == sorted(
        f"{tile_id}_{kind}.tif" for tile_id in split["val"] for kind in ("mask", "probs"))
    assert (run_copy / "notes.txt").read_text() == "not a run output"


def test_nan_loss_stops_the_run_and_writes_no_checkpoint(area, tmp_path, monkeypatch, capsys):
    """TerminateOnNaN: the NaN epoch saves nothing, so no stale or NaN best.keras exists and
    nothing is evaluated; one line, exit status 1."""
    build = train.build_model

    def poisoned(*args, **kwargs):
        model = build(*args, **kwargs)
        logits = model.get_layer("logits")
        logits.set_weights([np.full_like(w, np.nan) for w in logits.get_weights()])
        return model

    monkeypatch.setattr(train, "build_model", poisoned)
    out = tmp_path / "run"
    code = train.main(["--data-dir", str(area), "--output-dir", str(out), *TINY,
                       "--epochs", "3", "--no-tta"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and "NaN in epoch 1" in err
    assert not (out / "checkpoints").exists() or not list((out / "checkpoints").iterdir())
    assert not (out / "metrics.json").exists()


def test_monitor_selects_the_best_epoch_and_metrics_are_logged(area, tmp_path):
    out = tmp_path / "run"
    assert train.main(["--data-dir", str(area), "--output-dir", str(out), *TINY,
                       "--epochs", "3", "--no-tta", "--monitor", "val_building_f1",
                       "--learning-rate", "0.01"]) == 0
    rows = (out / "history.csv").read_text().splitlines()
    header, values = rows[0].split(","), [list(map(float, r.split(","))) for r in rows[1:]]
    f1 = [row[header.index("val_building_f1")] for row in values]
    iou = [row[header.index("val_mean_iou")] for row in values]
    assert all(0 <= v <= 1 for v in f1 + iou) and len(set(iou)) > 1
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["monitor"] == "val_building_f1" and state["best"] == max(f1)
    # TensorBoard: the validation scalars include the per-epoch metrics
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    tags = set()
    for path in (out / "logs" / "validation").iterdir():
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            tags |= {value.tag for value in event.summary.value}
    assert {"epoch_loss", "epoch_mean_iou", "epoch_building_f1", "epoch_iou_building"} <= tags


def test_help_shows_each_default_once_and_correctly():
    help_text = train.build_parser().format_help()
    blocks = re.split(r"\n  (?=-)", help_text.split("options:", 1)[1])[1:]
    for block in blocks:
        flat = " ".join(block.split())
        expected = 0 if flat.startswith("-h") else 1
        assert flat.count("(default:") == expected, flat
        assert "(default: None)" not in flat and "default: True" not in flat, flat
        assert "default: False" not in flat, flat
    flat = " ".join(help_text.split())
    defaults = train.TrainConfig()
    for text in (f"(default: {defaults.epochs})", "(default: the embedded stub area)",
                 "(default: with the module)", f"(default: {defaults.monitor})",
                 f"--context-level N resolution level of the context module"):
        assert text in flat, text


def test_mixed_precision_run_trains_in_float16_with_float32_outputs(area, tmp_path):
    out = tmp_path / "run"
    assert train.main(["--data-dir", str(area), "--output-dir", str(out), *TINY,
                       "--epochs", "1", "--no-tta", "--mixed-precision"]) == 0
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    model = train._load_checkpoint(out / "checkpoints" / "last.keras", mixed_precision=True)
    assert keras.config.dtype_policy().name == "float32"
    assert model.get_layer("context").compute_dtype == "float16"
    assert model.get_layer("probabilities").compute_dtype == "float32"
    # Keras wraps Adam in a LossScaleOptimizer under mixed_float16; the saved one comes back
    # with its state (iterations) and scales the loss by its dynamic scale (2**15 at start).
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert int(model.optimizer.iterations.numpy()) == state["optimizer_iterations"] > 0
    scale = float(model.optimizer.dynamic_scale.numpy())
    assert scale > 1
    assert float(model.optimizer.scale_loss(np.float32(0.5))) == pytest.approx(0.5 * scale)
    probs = model(np.zeros((1, 32, 32, 3), "float32"))
    assert probs.dtype == "float32"
    metrics = json.loads((out / "metrics.json").read_text())["no_tta"]
    assert all(np.isfinite(metrics[key]) for key in METRIC_KEYS)


def test_distributed_datasets_set_the_auto_shard_policy():
    import tensorflow as tf

    dataset = train._distribute(tf.distribute.get_strategy(), tf.data.Dataset.range(4))
    assert dataset.options().experimental_distribute.auto_shard_policy == \
        tf.data.experimental.AutoShardPolicy.DATA


def test_650_px_gdal_tiles_train_without_augmentation_and_validate_with_tta(tmp_path):
    """The real tile size in the real layout (GDAL-style LZW, tiled): whole 650 px tiles are
    padded to the stride for training, validation and TTA, and the outputs cropped back."""
    area = generate_area(tmp_path / "raw", n_tiles=2, tile_size=650, layout="gdal")
    out = tmp_path / "run"
    assert train.main(["--data-dir", str(area), "--output-dir", str(out), *TINY, "--epochs",
                       "1", "--no-augment", "--tta", "--batch-size", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"no_tta", "tta"}
    assert all(np.isfinite(metrics[mode][key]) for mode in metrics for key in METRIC_KEYS)
    val_ids = json.loads((out / "split.json").read_text())["val"]
    probs = tifffile.imread(out / "predictions" / f"{val_ids[0]}_probs.tif")
    assert probs.shape == (650, 650, 3)
    np.testing.assert_allclose(probs.astype("float32").sum(-1), 1.0, atol=2e-2)


def test_mul_bands_with_a_bad_tile_train_list_it_and_predict_end_to_end(tmp_path, capsys):
    """8-band MUL-PanSharpen input, a truncated tile skipped and listed, then the checkpoint
    predicts the area's MUL tiles through the prediction CLI."""
    from assignment2.predict import main as predict_main

    area = generate_area(tmp_path / "raw", n_tiles=5, tile_size=64, mul=True)
    bad = area / "MUL-PanSharpen" / "MUL-PanSharpen_AOI_2_Vegas_img3.tif"
    bad.write_bytes(bad.read_bytes()[:2000])
    out = tmp_path / "run"
    keras.utils.set_random_seed(0)
    code = train.main(["--data-dir", str(area), "--output-dir", str(out), "--epochs", "1",
                       "--bands", "mul", "--skip-bad-tiles", "--no-tta", *TINY])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "skipped: " in err and "MUL-PanSharpen_AOI_2_Vegas_img3.tif" in err
    skipped = json.loads((out / "skipped_tiles.json").read_text())
    assert [s["id"] for s in skipped] == ["AOI_2_Vegas_img3"]
    split = json.loads((out / "split.json").read_text())
    assert "AOI_2_Vegas_img3" not in [i for ids in split.values() if isinstance(ids, list) for i in ids]
    assert sum(len(ids) for ids in split.values() if isinstance(ids, list)) == 4
    model = keras.models.load_model(out / "checkpoints" / "best.keras", compile=False)
    assert model.input_shape[-1] == 8
    bad.unlink()  # prediction reads every tile of the folder: leave the readable ones
    status = predict_main([str(out / "checkpoints" / "best.keras"), str(area),
                           str(tmp_path / "pred"), "--bands", "mul", "--tta", "none",
                           "--radiometry", str(out / "radiometry.json")])
    assert status == 0, capsys.readouterr().err
    masks = sorted(p.name for p in (tmp_path / "pred").rglob("*_mask.tif"))
    assert len(masks) == 4 and all("img3" not in name for name in masks)
