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
    """Median wall and CPU time of each function, ``{name: (wall_s, cpu_s)}``.

    The functions run round-robin so that load changes hit all of them; each is called once
    first as a warm-up (tracing, allocation). CPU time (all threads of the process) is much
    less sensitive than wall time to other jobs on a shared machine.
    """
    for fn in functions.values():
        fn()
    times = {name: ([], []) for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times[name][0].append(time.perf_counter() - wall)
            times[name][1].append(time.process_time() - cpu)
    return {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in times.items()}


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
        rows.append({"name": f"{name}-{steps}", "attack": t[name], "loop": t["loop"],
                     "calls": t["calls"]})
    return rows


def tf_constant(array):
    import tensorflow as tf

    return tf.constant(array)


def _ms(pair) -> str:
    return f"{1e3 * pair[0]:.0f} / {1e3 * pair[1]:.0f}"


def _ratio(numerator, denominator) -> str:
    return f"{numerator[0] / denominator[0]:.2f} / {numerator[1] / denominator[1]:.2f}"


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
    print("| attack | attack wall / CPU (ms) | 20 fwd+bwd in one compiled loop, wall / CPU (ms) "
          "| ratio wall / CPU | 20 compiled fwd+bwd calls, wall / CPU (ms) | ratio wall / CPU |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [r["name"], _ms(r["attack"]), _ms(r["loop"]), _ratio(r["attack"], r["loop"]),
                 _ms(r["calls"]), _ratio(r["attack"], r["calls"])]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
