"""PGD-20 (and MIM-20) against 20 compiled forward+backward passes of the same model and batch.

Goal (issue 3, section 6): ``time(PGD-20) / time(20 forward+backward passes) <= 1.1``, i.e. the
attack's projection, clipping and bookkeeping cost at most 10% on top of the gradients it needs.

The reference is one ``tf.function`` running a ``tf.while_loop`` of 20 steps
``x <- x + 1e-3 * grad_x CE(f(x), y)`` (each step depends on the previous one, so nothing can be
hoisted out of the loop) -- the bare forward+backward passes. A second reference calls a compiled
single forward+backward pass 20 times from Python. Medians over ``--repeats`` runs after a warm-up
that traces everything; the load average of the machine is printed next to the numbers.

    python benchmarks/bench_attacks.py [--batch-size 450] [--architecture cnn] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def median_seconds(functions: dict, repeats: int) -> dict:
    """Median wall time of each function; they run round-robin so that load changes hit all.

    Each function is called once first as a warm-up (tracing, allocation).
    """
    for fn in functions.values():
        fn()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _references(model, steps: int):
    import tensorflow as tf

    def loss_gradient(x, y):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            logits = model(x, training=False)
            loss = tf.reduce_sum(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        return tape.gradient(loss, x)

    @tf.function(reduce_retracing=True)
    def looped(x, y):
        def body(i, z):
            return i + 1, z + 1e-3 * loss_gradient(z, y)

        return tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), x))[1]

    single = tf.function(loss_gradient, reduce_retracing=True)
    return looped, single


def run(batch_size: int, architecture: str, repeats: int, steps: int = 20) -> list[dict]:
    """Times in seconds and ratios for PGD and MIM against both references."""
    import numpy as np

    from adversarial import mim_attack, pgd_attack
    from adversarial.models import resnet, small_cnn
    from data_stubs.digits import load_digits

    data = load_digits()
    x = np.resize(data.x_test, (batch_size, 8, 8, 1)).astype(np.float32)
    y = np.resize(data.y_test, (batch_size,)).astype(np.int32)
    model = (small_cnn if architecture == "cnn" else resnet)()
    looped, single = _references(model, steps)
    xt, yt = tf_constant(x), tf_constant(y)

    def attack_fn(attack):
        return lambda: attack(model, xt, yt, epsilon=0.2, num_steps=steps, step_size=0.025,
                              seed=0).numpy()

    t = median_seconds({"loop": lambda: looped(xt, yt).numpy(),
                        "calls": lambda: [single(xt, yt) for _ in range(steps)][-1].numpy(),
                        "pgd": attack_fn(pgd_attack), "mim": attack_fn(mim_attack)}, repeats)
    rows = []
    for name in ("pgd", "mim"):
        rows.append({"attack": f"{name}-{steps}", "attack_s": t[name], "loop_s": t["loop"],
                     "calls_s": t["calls"], "ratio_loop": t[name] / t["loop"],
                     "ratio_calls": t[name] / t["calls"]})
    return rows


def tf_constant(array):
    import tensorflow as tf

    return tf.constant(array)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=450)
    parser.add_argument("--architecture", choices=("cnn", "resnet"), default="cnn")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.repeats < 1:
        print("bench_attacks: error: --batch-size and --repeats must be >= 1", file=sys.stderr)
        return 2
    rows = run(args.batch_size, args.architecture, args.repeats)
    print(f"model {args.architecture}, batch {args.batch_size}, median of {args.repeats} round-robin runs, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print("| attack | attack (ms) | 20 fwd+bwd, one tf.function loop (ms) | ratio | "
          "20 compiled fwd+bwd calls (ms) | ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['attack']} | {1e3 * r['attack_s']:.1f} | {1e3 * r['loop_s']:.1f} | "
              f"{r['ratio_loop']:.2f} | {1e3 * r['calls_s']:.1f} | {r['ratio_calls']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
