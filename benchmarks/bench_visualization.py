"""Speed bars of the visualisations measured side by side in one run.

1. Occlusion: :func:`visualization.occlusion_sensitivity` (all occluded copies built by a mask
   inside one compiled function, ``batch_size`` per model call) against a per-position Python
   loop (numpy copy with the square set, one compiled model call per copy). Goal: >= 10x faster,
   same numbers (``np.allclose`` is asserted).
2. Throughput of saliency, guided backprop and Grad-CAM for one batch of test digits (images/s).
3. Maximisation steps per second: the shared ascent loop compiled (one ``tf.function`` with a
   ``tf.while_loop``) against the same loop run eagerly (``run_eagerly=True``, the same Python
   step body without compilation). Goal: >= 2x.
4. Integrated Gradients and SmoothGrad (``method="gradient"``) as the package batches them
   (:func:`visualization.integrated_gradients`, :func:`visualization.smoothgrad`, default
   ``batch_size``) against a per-sample loop: one compiled ``GradientTape`` gradient call of one
   image per path point (summed with the package's quadrature weights) or per noisy copy (the
   package's own noise, :func:`visualization.attribution.noisy_copies`). Maps are asserted equal
   first (``max |loop - batched| <= 1e-4 * max |batched|``). On the digits CNN and on
   ``keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), alpha=0.35)``
   (random ``[-1, 1]`` images). Goal: >= 10x.

Model of 1-3: the digits CNN (:func:`visualization.load_digits_cnn`, trained on first use and
cached). Times are medians over ``--repeats`` runs after a warm-up that traces everything; the
load average of the machine is printed with the table (2 shared cores: compare ratios, not
seconds). ``--only attribution`` runs section 4 alone; ``--small`` shrinks it (2 images,
16 steps, 16 noisy copies) to check that it runs: its ratios are dominated by the fixed cost of
one call and say nothing about the goal.

    python benchmarks/bench_visualization.py [--images 8] [--batch 256] [--steps 50] [--repeats 5]
    python benchmarks/bench_visualization.py --only attribution [--small]
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


# Section 4 relative tolerance of the loop against the batched maps (float32 sums in another order)
MAP_RTOL = 1e-4


def _one_image_gradient(model, shape):
    """Compiled ``dS_c/dx`` of ONE image ``(1, H, W, C)`` for class ``c``: the per-sample step."""
    import tensorflow as tf

    from visualization._model import logits_model

    scores = logits_model(model)

    @tf.function(input_signature=[tf.TensorSpec((1, *shape), tf.float32),
                                  tf.TensorSpec((), tf.int32)])
    def gradient(image, cls):
        with tf.GradientTape() as tape:
            tape.watch(image)
            score = scores(image)[0, cls]
        return tape.gradient(score, image)

    return gradient


def ig_loop(model, images, classes, steps: int, baseline: float = 0.0, gradient=None):
    """Integrated Gradients with one gradient call per (image, path point), Python loops.

    The same quadrature as :func:`visualization.integrated_gradients` (trapezoid,
    :func:`visualization.integrated_gradients.path_quadrature`). Returns ``(N, H, W, C)``.
    """
    import numpy as np
    import tensorflow as tf

    from visualization.integrated_gradients import path_quadrature

    gradient = gradient or _one_image_gradient(model, images.shape[1:])
    alphas, weights = path_quadrature(steps, "trapezoid")
    out = np.zeros(images.shape, np.float32)
    for k in range(len(images)):
        x, reference = images[k:k + 1], np.full_like(images[k:k + 1], baseline)
        total = np.zeros_like(x)
        for alpha, weight in zip(alphas, weights):
            point = tf.constant(reference + alpha * (x - reference))
            total += weight * gradient(point, tf.constant(int(classes[k]), tf.int32)).numpy()
        out[k] = ((x - reference) * total)[0]
    return out


def smoothgrad_loop(model, images, classes, num_samples: int, noise_level: float = 0.15,
                    seed: int = 0, gradient=None):
    """SmoothGrad of the gradient with one gradient call per noisy copy, Python loops.

    Noise ``k`` of image ``n`` is the package's (:func:`visualization.attribution.noisy_copies`),
    so the map equals :func:`visualization.smoothgrad` ``(method="gradient")``.
    Returns ``(N, H, W, C)``.
    """
    import numpy as np
    import tensorflow as tf

    from visualization.attribution import noisy_copies
    from visualization.smoothgrad import noise_sigma

    gradient = gradient or _one_image_gradient(model, images.shape[1:])
    x = tf.constant(images)
    sigma = tf.constant(noise_sigma(images, noise_level), tf.float32)
    seed_t = tf.constant(seed, tf.int32)
    out = np.zeros(images.shape, np.float32)
    for n in range(len(images)):
        cls = tf.constant(int(classes[n]), tf.int32)
        for k in range(num_samples):
            noisy = noisy_copies(x, tf.constant([n], tf.int32), tf.constant([k], tf.int32),
                                 sigma, seed_t)
            out[n] += gradient(noisy, cls).numpy()[0] / num_samples
    return out


def _max_relative_diff(loop, batched) -> float:
    import numpy as np

    return float(np.abs(loop - batched).max() / max(np.abs(batched).max(), 1e-30))


def bench_attribution(model, images, repeats: int, steps: int = 64,
                      num_samples: int = 50) -> dict:
    """Section 4 on one model: ``{"ig": {...}, "smoothgrad": {...}}`` with times, ratio, diff."""
    import numpy as np

    from visualization._model import logits_model
    from visualization import integrated_gradients, smoothgrad

    images = np.asarray(images, np.float32)
    classes = np.argmax(logits_model(model)(images).numpy(), axis=1).astype(np.int32)
    gradient = _one_image_gradient(model, images.shape[1:])
    cases = {
        "ig": (lambda: integrated_gradients(model, images, classes, steps=steps),
               lambda: ig_loop(model, images, classes, steps, gradient=gradient)),
        "smoothgrad": (lambda: smoothgrad(model, images, classes, num_samples=num_samples),
                       lambda: smoothgrad_loop(model, images, classes, num_samples,
                                               gradient=gradient)),
    }
    result = {}
    for name, (batched_fn, loop_fn) in cases.items():
        batched, loop = batched_fn(), loop_fn()
        assert np.abs(batched).max() > 0, f"{name}: the batched map is all zero"
        diff = _max_relative_diff(loop, batched)
        assert diff <= MAP_RTOL, f"{name}: loop and batched maps differ by {diff:.1e} (relative)"
        t_batched = _median_seconds(batched_fn, repeats)
        t_loop = _median_seconds(loop_fn, repeats)
        result[name] = {"batched_s": t_batched, "loop_s": t_loop, "ratio": t_loop / t_batched,
                        "max_rel_diff": diff}
    return result


def _attribution_models(small: bool):
    """``[(name, model, images)]``: digits CNN on test digits, MobileNetV2 on random images."""
    import keras
    import numpy as np

    from data_stubs.digits import load_digits
    from visualization import load_digits_cnn

    count = 2 if small else 4
    digits = load_digits(image_size=28).x_test[:count]
    mobilenet = keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), alpha=0.35)
    rgb = np.random.default_rng(0).uniform(-1, 1, (count, 64, 64, 3)).astype("float32")
    return [("digits CNN", load_digits_cnn(), digits), ("MobileNetV2 64 px", mobilenet, rgb)]


def _print_attribution(rows, steps: int, num_samples: int) -> None:
    for name, images, result in rows:
        for method, label in (("ig", f"IG, {steps} steps"),
                              ("smoothgrad", f"SmoothGrad, {num_samples} copies")):
            r = result[method]
            print(f"| {label}, {name}, {images} images: batched / per-sample loop | "
                  f"{r['batched_s'] * 1e3:.0f} / {r['loop_s'] * 1e3:.0f} ms | |")
            print(f"| {label}, {name} speed-up (max rel diff {r['max_rel_diff']:.1e}) | "
                  f"**{r['ratio']:.1f}x** | >= 10x |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8, help="digits for the occlusion bar")
    parser.add_argument("--batch", type=int, default=256, help="batch of the throughput bars")
    parser.add_argument("--steps", type=int, default=50, help="ascent steps per run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median)")
    parser.add_argument("--only", choices=("all", "attribution"), default="all",
                        help="run every section, or section 4 (IG, SmoothGrad) alone")
    parser.add_argument("--small", action="store_true",
                        help="section 4 on 2 images, 16 steps, 16 noisy copies, 3 repeats")
    args = parser.parse_args(argv)
    if min(args.images, args.batch, args.steps, args.repeats) < 1:
        print("bench_visualization: error: every option must be >= 1", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from data_stubs.digits import load_digits
    from visualization import load_digits_cnn

    ig_steps, num_samples = (16, 16) if args.small else (64, 50)
    repeats = 3 if args.small else args.repeats
    load_before = os.getloadavg()[0]
    attribution = [(name, len(images), bench_attribution(net, images, repeats, ig_steps,
                                                         num_samples))
                   for name, net, images in _attribution_models(args.small)]
    if args.only == "attribution":
        load_after = os.getloadavg()[0]
        print(f"\nload average (1 min) {load_before:.1f} before, {load_after:.1f} after; "
              f"{os.cpu_count()} cores\n")
        print("| measurement | value | goal |")
        print("|---|---|---|")
        _print_attribution(attribution, ig_steps, num_samples)
        return 0
    model = load_digits_cnn()
    x_test = load_digits(image_size=28).x_test
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
    _print_attribution(attribution, ig_steps, num_samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
