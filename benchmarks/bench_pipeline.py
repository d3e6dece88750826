"""Is the input pipeline hidden behind training? ``python benchmarks/bench_pipeline.py``

Measures, side by side in one process on the default configuration of ``assignment2.train``
(``TrainConfig()``: embedded stub area, U-Net depth 4 / 16 filters, transpose upsampling, context
module, crops of 128, batch 8):

1. input pipeline alone: augmented batches per second drawn from ``pipeline.train_dataset``;
2. training step alone: ``train_on_batch`` steps per second on one batch already in memory;
3. one epoch of ``model.fit`` fed by the real pipeline against one epoch fed by the same batches
   materialised as tensors beforehand (``Dataset.from_tensor_slices``, nothing to compute).

Goal: ratio (3) <= 1.05, i.e. the augmentation runs in parallel with the training steps (the
pipeline's ``prefetch`` and parallel ``map``) and costs at most 5% of an epoch. Each epoch is
timed ``--repeats`` times alternately after a warm-up; the table reports the fastest of each
(other processes on the machine only ever add time) and the medians. Timing depends
on the machine load: run it on an otherwise idle machine and quote ``uptime`` beside the result.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from assignment2.train import TrainConfig


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16, help="batches per timed epoch")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per variant")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--crop-size", type=int, default=TrainConfig.crop_size)
    return parser.parse_args(argv)


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main(argv=None) -> int:
    args = _parse(argv)
    import keras
    import tensorflow as tf

    from assignment2.augment import AugmentConfig
    from assignment2.data import default_data_dir, load_tiles
    from assignment2.model import build_unet, segmentation_loss
    from assignment2.pipeline import stack_tiles, train_dataset

    tiles = load_tiles(default_data_dir())
    images, masks = stack_tiles(tiles.images, tiles.masks)
    dataset = train_dataset(images, masks, batch_size=args.batch_size, seed=0,
                            augment_config=AugmentConfig(crop_size=args.crop_size))
    keras.utils.set_random_seed(0)
    config = TrainConfig()
    model = build_unet(depth=config.depth, base_filters=config.base_filters,
                       upsampling=config.upsampling, context=config.context)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=segmentation_loss())

    batches = list(dataset.take(args.steps))
    x = tf.concat([b[0] for b in batches], 0)
    y = tf.concat([b[1] for b in batches], 0)
    in_memory = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size).repeat()

    pipeline_s = _timed(lambda: [None for _ in dataset.take(args.steps)]) / args.steps
    model.train_on_batch(*batches[0])  # trace the step
    step_s = _timed(lambda: [model.train_on_batch(*b) for b in batches[:4]]) / 4

    def epoch(data):
        return _timed(lambda: model.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=0,
                                               shuffle=False))

    epoch(dataset)
    epoch(in_memory)  # warm-up: trace fit's function for both inputs
    real, memory = [], []
    for _ in range(args.repeats):
        real.append(epoch(dataset))
        memory.append(epoch(in_memory))
    # best of N: interference from other processes only ever adds time
    real_s, memory_s = min(real), min(memory)
    rows = [
        ("input pipeline alone [batches/s]", f"{1 / pipeline_s:.2f}"),
        ("training step alone [steps/s]", f"{1 / step_s:.2f}"),
        ("pipeline / training throughput", f"{step_s / pipeline_s:.2f}  (> 1: pipeline faster)"),
        (f"epoch of {args.steps} steps, real pipeline [s]", f"{real_s:.2f}"),
        (f"epoch of {args.steps} steps, tensors in memory [s]", f"{memory_s:.2f}"),
        ("ratio real / in memory (goal <= 1.05)", f"{real_s / memory_s:.3f}"),
        ("same ratio of the medians", f"{statistics.median(real) / statistics.median(memory):.3f}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
