"""TTA with the 8 views batched vs 8 single predictions: ``python benchmarks/bench_tta.py``

For tiles of the embedded stub area (192 x 192) and the U-Net of ``TrainConfig()`` (depth 4,
16 filters, transpose upsampling, context module), compares per tile:

- batched: ``assignment2.tta.predict_tta(model, image, transforms="d4")``: the 8 flips /
  rotations go through the network as ONE batch of 8;
- single: the same 8 views, each its own ``predict_probs`` call of batch 1, mapped back and
  averaged in a Python loop.

Both give the same averaged probabilities (checked, max abs difference printed). Goal: ratio
batched / single <= 1.0. Medians over ``--repeats`` passes after a warm-up; quote ``uptime``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=4, help="tiles per timed pass")
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args(argv)


def _single_views(model, image, pairs, multiple):
    """The 8 views predicted one by one (batch 1 each), mapped back, averaged."""
    import numpy as np

    from assignment2.tta import predict_probs

    total = 0.0
    for forward, inverse in pairs:
        view = np.asarray(forward(image[None]))
        total = total + np.asarray(inverse(predict_probs(model, view, multiple=multiple,
                                                         batch_size=1)))
    return (total / len(pairs))[0]


def main(argv=None) -> int:
    args = _parse(argv)
    import keras
    import numpy as np

    from assignment2.data import default_data_dir, load_tiles, normalize
    from assignment2.model import build_unet
    from assignment2.tta import dihedral_transforms, predict_tta

    tiles = load_tiles(default_data_dir())
    images = [normalize(image) for image in tiles.images[:args.tiles]]
    keras.utils.set_random_seed(0)
    from assignment2.train import TrainConfig

    config = TrainConfig()
    model = build_unet(depth=config.depth, base_filters=config.base_filters,
                       upsampling=config.upsampling, context=config.context)
    pairs = dihedral_transforms()

    def batched():
        return [predict_tta(model, image, transforms="d4", multiple=16) for image in images]

    def single():
        return [_single_views(model, image, pairs, 16) for image in images]

    difference = max(float(np.abs(a - b).max()) for a, b in zip(batched(), single()))  # warm-up
    times = {"batched": [], "single": []}
    for _ in range(args.repeats):
        for name, function in (("batched", batched), ("single", single)):
            start = time.perf_counter()
            function()
            times[name].append((time.perf_counter() - start) / len(images))
    b, s = statistics.median(times["batched"]), statistics.median(times["single"])
    print(f"{'8 views as one batch [s/tile]':<38}  {b:.3f}")
    print(f"{'8 single predictions [s/tile]':<38}  {s:.3f}")
    print(f"{'ratio batched / single (goal <= 1.0)':<38}  {b / s:.3f}")
    print(f"{'max |difference| of the averages':<38}  {difference:.2e}")
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
