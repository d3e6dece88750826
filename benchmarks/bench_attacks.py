"""PGD-20 (and MIM-20) against 20 compiled forward+backward passes of the same model and batch.

Goals: ``time(PGD-20) / time(20 forward+backward passes) <= 1.1`` and ``time(APGD-100) /
time(100 compiled forward+backward passes) <= 1.1`` (``--apgd``), i.e. the attack's projection,
clipping and bookkeeping cost at most 10% on top of the gradients it needs; and (``--memory``)
the peak memory of ``pgd_attack`` on 4,096 images with ``batch_size=256`` within 1.2x of its peak
on 256 images (each size measured in a fresh subprocess: peak resident set size growth).

The reference is one ``tf.function`` running a ``tf.while_loop`` of 20 steps
``x <- x + 1e-3 * grad_x CE(f(x), y)`` (each step depends on the previous one, so nothing can be
hoisted out of the loop) -- the bare forward+backward passes. A second reference calls a compiled
single forward+backward pass 20 times from Python. Medians over ``--repeats`` runs after a warm-up
that traces everything; the load average of the machine is printed next to the numbers.

    python benchmarks/bench_attacks.py [--batch-size 450] [--architecture cnn] [--repeats 7]
    python benchmarks/bench_attacks.py --apgd [--batch-size 450] [--repeats 3]
    python benchmarks/bench_attacks.py --memory
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


def run_apgd(batch_size: int, architecture: str, repeats: int, steps: int = 100) -> dict:
    """APGD-100 (one run: ``steps + 1`` forward/backward passes) against the compiled loop."""
    import numpy as np

    from adversarial import apgd_attack
    from adversarial.models import resnet, small_cnn
    from data_stubs.digits import load_digits

    data = load_digits()
    x = np.resize(data.x_test, (batch_size, 8, 8, 1)).astype(np.float32)
    y = np.resize(data.y_test, (batch_size,)).astype(np.int32)
    model = (small_cnn if architecture == "cnn" else resnet)()
    looped, _ = _references(model, steps + 1)
    xt, yt = tf_constant(x), tf_constant(y)
    t = median_seconds({"loop": lambda: looped(xt, yt).numpy(),
                        "apgd": lambda: apgd_attack(model, xt, yt, 0.2, num_steps=steps, seed=0,
                                                    batch_size=batch_size).numpy()}, repeats)
    return {"name": f"apgd-{steps}", "attack": t["apgd"], "loop": t["loop"]}


_MEMORY_SCRIPT = """
import resource, sys
import numpy as np
from adversarial import pgd_attack
from adversarial.models import small_cnn
model = small_cnn(input_shape=(32, 32, 3))
x = np.random.default_rng(0).uniform(size=(256, 32, 32, 3)).astype(np.float32)
pgd_attack(model, x[:16], np.zeros(16, np.int32), epsilon=0.03, num_steps=2, step_size=0.01)
n = int(sys.argv[1])
images = np.resize(x, (n, 32, 32, 3))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
pgd_attack(model, images, np.zeros(n, np.int32), epsilon=0.03, num_steps=5, step_size=0.01,
           batch_size=256, seed=0)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after, images.nbytes // 1024)
"""


def run_memory() -> dict:
    """Peak RSS growth (KiB) of ``pgd_attack`` on 256 and 4,096 images, ``batch_size=256``.

    The growth includes the 4,096 images themselves and the result (2 x 48 MiB at 32x32x3), which
    any attack must hold; ``attack_kib`` subtracts them (input + output arrays).
    """
    import subprocess

    rows = {}
    for n in (256, 4096):
        done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(n)], check=True,
                              capture_output=True, text=True)
        before, after, data_kib = (int(v) for v in done.stdout.split()[-3:])
        rows[n] = {"growth_kib": after - before, "data_kib": data_kib,
                   "attack_kib": after - before - 2 * data_kib}
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
    parser.add_argument("--apgd", action="store_true", help="APGD-100 against 101 passes")
    parser.add_argument("--memory", action="store_true", help="peak memory, 4096 vs 256 images")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.repeats < 1:
        print("bench_attacks: error: --batch-size and --repeats must be >= 1", file=sys.stderr)
        return 2
    if args.memory:
        rows = run_memory()
        print("| images | peak RSS growth (MiB) | of which input arrays (MiB) |")
        print("|---|---|---|")
        for n, r in rows.items():
            print(f"| {n} | {r['growth_kib'] / 1024:.0f} | {r['data_kib'] / 1024:.0f} |")
        ratio = max(rows[4096]["growth_kib"] - 2 * rows[4096]["data_kib"], 1) / max(
            rows[256]["growth_kib"] - 2 * rows[256]["data_kib"], 1)
        print(f"ratio of the attack's own peak (growth minus input and output arrays), "
              f"4096 / 256: {ratio:.2f}")
        return 0
    if args.apgd:
        r = run_apgd(args.batch_size, args.architecture, args.repeats)
        print(f"model {args.architecture}, batch {args.batch_size}, median of {args.repeats}, "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        print(f"| {r['name']} | {_ms(r['attack'])} ms | 101 fwd+bwd loop {_ms(r['loop'])} ms | "
              f"ratio wall / CPU {_ratio(r['attack'], r['loop'])} |")
        return 0
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
