"""Training CLI: a short run lowers the loss, writes every output, resumes, runs mirrored, and
turns bad input into one line on stderr with exit status 2."""

import itertools
import json
import os
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

TINY = ["--depth", "2", "--base-filters", "4", "--crop-size", "32", "--batch-size", "2",
        "--crops-per-tile", "1", "--val-fraction", "0.34", "--verbose", "0"]
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
    batch = next(iter(train_dataset(images, masks, batch_size=4, seed=0,
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
    split = json.loads((out / "split.json").read_text())
    assert len(split["train"]) == 4 and len(split["val"]) == 2
    for name in ("best.keras", "last.keras", "state.json"):
        assert (out / "checkpoints" / name).is_file()
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    best = keras.saving.load_model(out / "checkpoints" / "best.keras", compile=False)
    norms = [layer for layer in best.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.9 for layer in norms)  # TrainConfig.bn_momentum
    history = (out / "history.csv").read_text().splitlines()
    assert history[0].split(",") == ["epoch", "loss", "val_loss"] and len(history) == 3
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
    assert json.loads((out / "config.json").read_text())["depth"] == 2


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

