"""One PGD adversarial-training epoch against (steps + 1) clean training epochs.

Goal: ``time(adversarial epoch with k PGD steps) / time(k + 1 clean epochs)
<= 1.2``. An adversarial step needs k input-gradient passes for the attack plus one training pass
on the clean and adversarial halves, so ``k + 1`` clean epochs is the work it cannot avoid.

Both models are the same small CNN on the digits' training set (1347 images), same batch size,
``fit(..., verbose=0)`` after a warm-up epoch that traces everything. Each repeat times one
adversarial epoch and ``k + 1`` clean epochs back to back (round-robin, so load changes hit
both); medians are reported with the machine's load average.

    python benchmarks/bench_adv_training.py [--num-steps 7] [--batch-size 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _fit_seconds(model, x, y, epochs: int, batch_size: int) -> tuple[float, float]:
    """Wall and CPU seconds (all threads) of ``fit`` for ``epochs`` epochs."""
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True)
    return time.perf_counter() - wall, time.process_time() - cpu


def run(num_steps: int, batch_size: int, repeats: int, architecture: str = "cnn") -> dict:
    """Median wall and CPU seconds of one adversarial epoch and ``num_steps + 1`` clean epochs."""
    import keras

    from adversarial import AdversarialTraining
    from adversarial.models import resnet, small_cnn
    from data_stubs.digits import load_digits

    data = load_digits()
    build = small_cnn if architecture == "cnn" else resnet
    clean = build()
    trainer = AdversarialTraining(build(), attack="pgd", epsilon=0.25, num_steps=num_steps,
                                  step_size=0.08, seed=0)
    for model in (clean, trainer):
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        _fit_seconds(model, data.x_train, data.y_train, 1, batch_size)  # warm-up / tracing
    adv, ref = [], []
    for _ in range(repeats):
        adv.append(_fit_seconds(trainer, data.x_train, data.y_train, 1, batch_size))
        ref.append(_fit_seconds(clean, data.x_train, data.y_train, num_steps + 1, batch_size))
    result = {}
    for i, kind in enumerate(("wall", "cpu")):
        a, r = statistics.median(t[i] for t in adv), statistics.median(t[i] for t in ref)
        result[kind] = {"adv_epoch_s": a, "clean_epochs_s": r, "ratio": a / r}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-steps", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--architecture", choices=("cnn", "resnet"), default="cnn")
    args = parser.parse_args(argv)
    if min(args.num_steps, args.batch_size, args.repeats) < 1:
        print("bench_adv_training: error: --num-steps, --batch-size and --repeats must be >= 1",
              file=sys.stderr)
        return 2
    r = run(args.num_steps, args.batch_size, args.repeats, args.architecture)
    print(f"model {args.architecture}, 1347 digits, batch {args.batch_size}, median of "
          f"{args.repeats}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print("| PGD steps k | time | adversarial epoch (s) | k + 1 clean epochs (s) | ratio |")
    print("|---|---|---|---|---|")
    for kind, row in r.items():
        print(f"| {args.num_steps} | {kind} | {row['adv_epoch_s']:.2f} | "
              f"{row['clean_epochs_s']:.2f} | {row['ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
