"""Does memory stay flat as the data set grows? ``python benchmarks/bench_memory.py [--small]``

Writes two SpaceNet 2 areas of 650 x 650 px tiles in the real layout (GDAL-style, LZW, 11-bit
uint16; :func:`data_stubs.spacenet.generate_area` with ``layout="gdal"``), one with ``--tiles``
tiles (default 400) and one with a tenth of them, prepares both (``python -m
assignment2.prepare``) and trains one epoch on each in a fresh process
(``python -m assignment2.train --epochs 1 --no-tta``, crops of 128, 1 crop per tile, batch 2,
half the tiles for validation). The peak
resident set size of each training process is read from ``os.wait4`` (``ru_maxrss``).

Goal: ``peak RSS(large) / peak RSS(small) <= 1.3``: the input is streamed from the prepared
files (bounded shuffle buffer, prefetch), so memory does not grow with the number of tiles; an
in-memory pipeline would need ~7 MiB per 650 px tile (the large run ~2.8 GiB more).

It also reports the pipeline's throughput at 650 px (augmented batches per second from
``pipeline.train_dataset`` on the prepared large area) against the training step
(``train_on_batch`` steps per second on one batch already in memory): the pipeline must be
faster than the step to hide behind it.

``--small`` runs 40 vs 4 tiles (a few minutes; the ratio is then dominated by the constant
TensorFlow footprint and says less). Timings depend on the load: quote ``uptime`` beside them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TILE = 650
# Batch 2 and half the tiles for validation: both runs validate in full batches of 2 whole tiles,
# so the only difference between them is the number of tiles (with the CLI's batch 8, a run with
# fewer than 8 validation tiles would predict smaller batches and need less memory for that alone).
TRAIN_ARGS = ["--epochs", "1", "--no-tta", "--crop-size", "128", "--crops-per-tile", "1",
              "--batch-size", "2", "--val-fraction", "0.5", "--verbose", "0"]


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=400, help="tiles of the large area")
    parser.add_argument("--small", action="store_true", help="40 vs 4 tiles (quick check)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the areas and runs go (default: a temporary folder)")
    parser.add_argument("--steps", type=int, default=10, help="timed batches (throughput)")
    args = parser.parse_args(argv)
    if args.small:
        args.tiles = 40
    if args.tiles < 10:
        parser.error(f"--tiles must be >= 10, got {args.tiles}")
    return args


def _run(command: list[str]) -> tuple[float, float]:
    """Run ``command``; -> (peak RSS in MiB, wall seconds). Exits on failure."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench_memory: failed: {' '.join(command)}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start  # Linux: ru_maxrss in KiB


def _area(root: Path, n_tiles: int) -> Path:
    from data_stubs.spacenet import generate_area

    return generate_area(root / f"area{n_tiles}", n_tiles=n_tiles, tile_size=TILE,
                         layout="gdal", seed=1)


def _memory(work: Path, sizes: list[int]) -> dict[int, float]:
    peaks = {}
    for n in sizes:
        area = _area(work, n)
        prepared = work / f"prepared{n}"
        _run([sys.executable, "-m", "assignment2.prepare", str(area), str(prepared)])
        peak, seconds = _run([sys.executable, "-m", "assignment2.train", "--data-dir",
                              str(prepared), "--output-dir", str(work / f"run{n}"),
                              *TRAIN_ARGS])
        peaks[n] = peak
        print(f"{n:5d} tiles of {TILE} px: peak RSS {peak:8.1f} MiB, 1 epoch {seconds:6.1f} s",
              flush=True)
    return peaks


def _throughput(prepared: Path, steps: int) -> tuple[float, float]:
    """-> (pipeline batches/s, training steps/s) at the training CLI defaults on 650 px tiles."""
    import keras

    from assignment2.augment import AugmentConfig
    from assignment2.data import open_prepared
    from assignment2.pipeline import train_dataset
    from assignment2.train import TrainConfig, build_model

    config = TrainConfig()
    data = open_prepared(prepared)
    dataset = train_dataset(data, batch_size=config.batch_size, seed=0,
                            augment_config=AugmentConfig(crop_size=config.crop_size),
                            multiple=config.stride)
    iterator = iter(dataset)
    batch = next(iterator)  # warm-up (tracing, first reads)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    pipeline = steps / (time.perf_counter() - start)
    model = build_model(config, 100)
    image, mask = batch[0], batch[1]
    model.train_on_batch(image, mask)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(image, mask)
    keras.backend.clear_session()
    return pipeline, steps / (time.perf_counter() - start)


def main(argv=None) -> int:
    args = _parse(argv)
    print(f"load: {os.getloadavg()}, cores: {os.cpu_count()}", flush=True)
    with tempfile.TemporaryDirectory() as temp:
        work = args.work_dir or Path(temp)
        work.mkdir(parents=True, exist_ok=True)
        small, large = args.tiles // 10, args.tiles
        peaks = _memory(work, [small, large])
        ratio = peaks[large] / peaks[small]
        verdict = "ok" if ratio <= 1.3 else "ABOVE the 1.3 goal"
        print(f"peak RSS ratio {large} / {small} tiles: {ratio:.3f} ({verdict})")
        pipeline, step = _throughput(work / f"prepared{large}", args.steps)
        print(f"at {TILE} px, crops of 128, batch 8: pipeline {pipeline:.2f} batches/s, "
              f"training step {step:.2f} steps/s (pipeline / step = {pipeline / step:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
