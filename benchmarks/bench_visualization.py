"""Speed bars of the visualisations measured side by side in one run.

1. Occlusion: :func:`visualization.occlusion_sensitivity` (all occluded copies built by a mask
   inside one compiled function, ``batch_size`` per model call) against a per-position Python
   loop (numpy copy with the square set, one compiled model call per copy). Goal: >= 10x faster,
   same numbers (``np.allclose`` is asserted).
2. Throughput of saliency, guided backprop and Grad-CAM for one batch of test digits (images/s).
3. Maximisation steps per second: the shared ascent loop compiled (one ``tf.function`` with a
   ``tf.while_loop``) against the same loop run eagerly (``run_eagerly=True``, the same Python
   step body without compilation). Goal: >= 2x.

Model: the digits CNN (:func:`visualization.load_digits_cnn`, trained on first use and cached).
Times are medians over ``--repeats`` runs after a warm-up that traces everything; the load
average of the machine is printed with the table (2 shared cores: compare ratios, not seconds).

    python benchmarks/bench_visualization.py [--images 8] [--batch 256] [--steps 50] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: traces and allocates
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def occlusion_loop(model, images, classes, patch_size: int, stride: int, fill_value: float = 0.0):
    """The naive reference: one occluded copy per model call, positions in a Python loop.

    Returns ``(N, H', W')`` softmax probabilities of ``classes``, like
    :func:`visualization.occlusion_sensitivity`.
    """
    import numpy as np
    import tensorflow as tf

    from visualization._model import logits_model

    logits = logits_model(model)
    one = tf.function(lambda x: tf.nn.softmax(logits(x), axis=-1),
                      input_signature=[tf.TensorSpec((1, *images.shape[1:]), tf.float32)])
    n, height, width = images.shape[:3]
    rows = range(0, height - patch_size + 1, stride)
    cols = range(0, width - patch_size + 1, stride)
    out = np.zeros((n, len(rows), len(cols)), np.float32)
    for k in range(n):
        for a, i in enumerate(rows):
            for b, j in enumerate(cols):
                copy = images[k:k + 1].copy()
                copy[:, i:i + patch_size, j:j + patch_size, :] = fill_value
                out[k, a, b] = one(copy).numpy()[0, classes[k]]
    return out


def bench_occlusion(model, images, repeats: int, patch_size: int = 8, stride: int = 2) -> dict:
    import numpy as np

    from visualization import occlusion_sensitivity

    classes = np.argmax(model.predict(images, verbose=0), axis=1)
    batched = occlusion_sensitivity(model, images, classes, patch_size=patch_size, stride=stride)
    naive = occlusion_loop(model, images, classes, patch_size, stride)
    assert np.allclose(batched, naive, atol=1e-5), np.abs(batched - naive).max()
    t_batched = _median_seconds(lambda: occlusion_sensitivity(
        model, images, classes, patch_size=patch_size, stride=stride), repeats)
    t_loop = _median_seconds(lambda: occlusion_loop(model, images, classes, patch_size, stride),
                             max(1, repeats // 2))
    return {"copies": batched.size, "batched_s": t_batched, "loop_s": t_loop,
            "ratio": t_loop / t_batched, "max_diff": float(np.abs(batched - naive).max())}


def bench_gradients(model, images, repeats: int) -> list[tuple[str, float]]:
    from visualization import grad_cam, guided_backprop, saliency_map

    rows = []
    for name, fn in (("saliency_map", saliency_map), ("guided_backprop", guided_backprop),
                     ("grad_cam", grad_cam)):
        seconds = _median_seconds(lambda fn=fn: fn(model, images), repeats)
        rows.append((name, len(images) / seconds))
    return rows


def bench_ascent(model, steps: int, repeats: int) -> dict:
    import numpy as np
    import tensorflow as tf

    from visualization._model import logits_model
    from visualization.ascent import Regularizers, gradient_ascent

    scores = logits_model(model)
    classes = tf.range(10)

    def objective(images, classes):  # the class-model objective S_c(I)
        return tf.gather(scores(images), classes, axis=1, batch_dims=1)

    start = (0.01 * np.random.default_rng(0).standard_normal((10, 28, 28, 1))).astype("float32")
    regularizers = Regularizers(l2_decay=0.01, jitter=1)

    def ascend(eager: bool, count: int):
        return gradient_ascent(objective, start, steps=count, learning_rate=0.05,
                               objective_args=(classes,), regularizers=regularizers, seed=0,
                               run_eagerly=eager)

    compiled_images, _ = ascend(False, steps)
    eager_images, _ = ascend(True, steps)
    same = bool(np.allclose(compiled_images, eager_images, atol=1e-3))
    t_compiled = _median_seconds(lambda: ascend(False, steps), repeats)
    t_eager = _median_seconds(lambda: ascend(True, steps), max(1, repeats // 2))
    return {"compiled": steps / t_compiled, "eager": steps / t_eager,
            "ratio": t_eager / t_compiled, "same": same}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8, help="digits for the occlusion bar")
    parser.add_argument("--batch", type=int, default=256, help="batch of the throughput bars")
    parser.add_argument("--steps", type=int, default=50, help="ascent steps per run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median)")
    args = parser.parse_args(argv)
    if min(args.images, args.batch, args.steps, args.repeats) < 1:
        print("bench_visualization: error: every option must be >= 1", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from data_stubs.digits import load_digits
    from visualization import load_digits_cnn

    model = load_digits_cnn()
    x_test = load_digits(image_size=28).x_test
    load_before = os.getloadavg()[0]
    occlusion = bench_occlusion(model, x_test[:args.images], args.repeats)
    gradients = bench_gradients(model, x_test[:args.batch], args.repeats)
    ascent = bench_ascent(model, args.steps, args.repeats)
    load_after = os.getloadavg()[0]
    print(f"\nload average (1 min) {load_before:.1f} before, {load_after:.1f} after; "
          f"{os.cpu_count()} cores\n")
    print("| measurement | value | goal |")
    print("|---|---|---|")
    print(f"| occlusion, {args.images} digits x {occlusion['copies'] // args.images} positions "
          f"(patch 8, stride 2): batched | {occlusion['batched_s'] * 1e3:.0f} ms | |")
    print(f"| occlusion: per-position Python loop | {occlusion['loop_s'] * 1e3:.0f} ms | |")
    print(f"| occlusion speed-up (max abs diff {occlusion['max_diff']:.1e}) | "
          f"**{occlusion['ratio']:.1f}x** | >= 10x |")
    for name, rate in gradients:
        print(f"| `{name}`, batch {args.batch} | {rate:.0f} images/s | |")
    print(f"| ascent, 10 images, compiled | {ascent['compiled']:.0f} steps/s | |")
    print(f"| ascent, 10 images, eager (same step) | {ascent['eager']:.0f} steps/s | |")
    print(f"| ascent speed-up (same images: {ascent['same']}) | **{ascent['ratio']:.1f}x** "
          f"| >= 2x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
