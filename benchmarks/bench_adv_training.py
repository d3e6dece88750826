"""The epoch cost of every adversarial-training mode against clean training epochs.

Modes: Madry's adversarial loss, Goodfellow's clean + adversarial mix and TRADES, each with
PGD-k, and fast adversarial training (one FGSM step from a random start). Goal for the PGD
modes: ``time(adversarial epoch with k PGD steps) / time(k + 1 clean epochs) <= 1.2``. An adversarial step needs k input-gradient passes for the attack plus one training pass, so
``k + 1`` clean epochs is the work it cannot avoid (2 for the fast mode).

Both models are the same small CNN on the digits' training set (1347 images), same batch size,
``fit(..., verbose=0)`` after a warm-up epoch that traces everything. Each repeat times one
epoch of every mode and one clean epoch back to back (round-robin, so load changes hit all);
medians are reported with the machine's load average; the CPU time of the process (all threads)
is less affected by other jobs than the wall time.

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


#: (name, loss, attack) of every training mode of ``AdversarialTraining``.
MODES = (("adversarial (Madry), PGD", "adversarial", "pgd"),
         ("mix (Goodfellow), PGD", "mix", "pgd"),
         ("TRADES, PGD", "trades", "pgd"),
         ("fast (Wong), FGSM from a random start", "adversarial", "fast"))


def run(num_steps: int, batch_size: int, repeats: int, architecture: str = "cnn",
        modes=MODES) -> dict:
    """Median wall and CPU seconds of one epoch of every mode and of one clean epoch.

    Returns ``{mode name: {"wall": (adv, clean), "cpu": (adv, clean)}}`` and, under
    ``"clean"``, the clean epoch itself.
    """
    import keras

    from adversarial import AdversarialTraining
    from adversarial.models import resnet, small_cnn
    from data_stubs.digits import load_digits

    data = load_digits()
    build = small_cnn if architecture == "cnn" else resnet
    models = {"clean": build()}
    for name, loss, attack in modes:
        models[name] = AdversarialTraining(build(), loss=loss, attack=attack, epsilon=0.25,
                                           num_steps=num_steps, step_size=0.08, seed=0)
    for model in models.values():
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        _fit_seconds(model, data.x_train, data.y_train, 1, batch_size)  # warm-up / tracing
    times = {name: [] for name in models}
    for _ in range(repeats):  # round-robin: a load change hits every mode
        for name, model in models.items():
            times[name].append(_fit_seconds(model, data.x_train, data.y_train, 1, batch_size))
    return {name: {kind: statistics.median(t[i] for t in runs)
                   for i, kind in enumerate(("wall", "cpu"))}
            for name, runs in times.items()}


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
    clean = r.pop("clean")
    k = args.num_steps
    print(f"model {args.architecture}, 1347 digits, batch {args.batch_size}, PGD steps k = {k}, "
          f"median of {args.repeats}, load average {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} CPUs; one clean epoch {clean['wall']:.2f} s wall / "
          f"{clean['cpu']:.2f} s CPU")
    print("| mode | epoch, wall / CPU (s) | / 1 clean epoch, wall / CPU | "
          "/ (k + 1) clean epochs, CPU (goal <= 1.2 for PGD) |")
    print("|---|---|---|---|")
    for name, row in r.items():
        passes = 2 if "fast" in name else k + 1  # FGSM: one attack pass + one training pass
        print(f"| {name} | {row['wall']:.2f} / {row['cpu']:.2f} | "
              f"{row['wall'] / clean['wall']:.2f} / {row['cpu'] / clean['cpu']:.2f} | "
              f"{row['cpu'] / (passes * clean['cpu']):.2f} (k + 1 = {passes}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
