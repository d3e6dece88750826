"""The shared compiled gradient-ascent loop: exact steps on hand-solvable objectives, each
regulariser on literal images, seeding, compiled == eager, no retracing, bad input."""

import numpy as np
import pytest
import tensorflow as tf

from visualization import ascent
from visualization.ascent import Regularizers, gaussian_blur, gradient_ascent


def _flat_objective(images):
    """Zero objective with a zero gradient: only the regularisers move the image."""
    return 0.0 * tf.reduce_sum(images, axis=[1, 2, 3])


def _linear_objective(images, weights):
    return tf.reduce_sum(images * weights, axis=[1, 2, 3])


def _quadratic_objective(images, target):
    return -tf.reduce_sum(tf.square(images - target), axis=[1, 2, 3])


def test_plain_steps_follow_the_closed_form_of_a_quadratic():
    # A = -||x - t||^2, grad = -2 (x - t): x_k - t = (1 - 2 eta)^k (x_0 - t) = 0.8^k (x_0 - t).
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(2, 3, 4, 1)).astype(np.float32)
    target = rng.normal(size=(2, 3, 4, 1)).astype(np.float32)
    images, history = gradient_ascent(_quadratic_objective, x0, steps=5, learning_rate=0.1,
                                      objective_args=(tf.constant(target),),
                                      normalize_gradients=False, seed=0)
    np.testing.assert_allclose(images - target, 0.8**5 * (x0 - target), rtol=1e-5, atol=1e-6)
    expected = [-(0.8**k) ** 2 * np.sum((x0 - target) ** 2, axis=(1, 2, 3)) for k in range(5)]
    np.testing.assert_allclose(history, np.stack(expected), rtol=1e-5)


def test_normalised_steps_move_each_image_by_learning_rate_on_average():
    # grad = w per image, step = eta * w / mean|w|: after k steps x = x_0 + k eta w / mean|w|.
    weights = np.stack([np.arange(1, 13.0).reshape(3, 4, 1), -np.ones((3, 4, 1)) * 100])
    weights = weights.astype(np.float32)
    x0 = np.zeros((2, 3, 4, 1), np.float32)
    images, _ = gradient_ascent(_linear_objective, x0, steps=3, learning_rate=0.5,
                                objective_args=(tf.constant(weights),), seed=0)
    scale = np.abs(weights).mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(images, 3 * 0.5 * weights / scale, rtol=1e-5)
    np.testing.assert_allclose(np.abs(images).mean(axis=(1, 2, 3)), [1.5, 1.5], rtol=1e-5)


def test_adam_steps_equal_keras_adam_on_a_quadratic():
    # an independent Adam: keras.optimizers.Adam minimising ||x - t||^2 (the same ascent)
    import keras

    rng = np.random.default_rng(1)
    x0 = rng.normal(size=(2, 3, 4, 1)).astype(np.float32)
    target = (10 * rng.normal(size=(2, 3, 4, 1))).astype(np.float32)  # gradients of many scales
    images, history = gradient_ascent(_quadratic_objective, x0, steps=20, learning_rate=0.3,
                                      objective_args=(tf.constant(target),), adam=True, seed=0)
    variable = tf.Variable(x0)
    optimizer = keras.optimizers.Adam(0.3, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    values = []
    for _ in range(20):
        with tf.GradientTape() as tape:
            value = _quadratic_objective(variable, target)
            loss = -tf.reduce_sum(value)
        values.append(value.numpy())
        optimizer.apply_gradients([(tape.gradient(loss, variable), variable)])
    np.testing.assert_allclose(images, variable.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(history, np.stack(values), rtol=1e-5)
    # the first Adam step moves every pixel by the learning rate, whatever its gradient
    first, _ = gradient_ascent(_quadratic_objective, x0, steps=1, learning_rate=0.3,
                               objective_args=(tf.constant(target),), adam=True, seed=0)
    np.testing.assert_allclose(np.abs(first - x0), 0.3, rtol=1e-5)


def test_final_learning_rate_decays_the_steps_geometrically():
    # eta_t = 1, 0.5, 0.25 (from 1 to 0.25 in 3 steps); grad = w: x_3 = (1 + 0.5 + 0.25) w
    weights = np.arange(1, 5, dtype=np.float32).reshape(1, 2, 2, 1)
    images, _ = gradient_ascent(_linear_objective, np.zeros((1, 2, 2, 1)), steps=3,
                                learning_rate=1.0, final_learning_rate=0.25,
                                objective_args=(tf.constant(weights),), normalize_gradients=False,
                                seed=0)
    np.testing.assert_allclose(images, 1.75 * weights, rtol=1e-6)


def test_l2_decay_shrinks_by_one_minus_two_eta_lambda_per_step():
    x0 = np.random.default_rng(1).normal(size=(1, 8, 8, 1)).astype(np.float32)
    images, _ = gradient_ascent(_flat_objective, x0, steps=4, learning_rate=0.1,
                                regularizers=Regularizers(l2_decay=0.5), seed=0)
    np.testing.assert_allclose(images, 0.9**4 * x0, rtol=1e-5)


def test_value_range_clips_pixels():
    weights = tf.constant(np.linspace(-1, 1, 24).reshape(2, 3, 4, 1), tf.float32)
    images, _ = gradient_ascent(_linear_objective, np.zeros((2, 3, 4, 1)), steps=10,
                                learning_rate=1.0, objective_args=(weights,),
                                regularizers=Regularizers(value_range=(-0.25, 0.5)), seed=0)
    assert images.min() == pytest.approx(-0.25) and images.max() == pytest.approx(0.5)


def test_gaussian_blur_of_a_delta_is_the_outer_product_of_the_1d_kernel():
    delta = np.zeros((1, 9, 9, 1), np.float32)
    delta[0, 4, 4, 0] = 1.0
    offsets = np.arange(-3, 4)  # radius ceil(3 * sigma) = 3
    kernel = np.exp(-0.5 * offsets**2)
    kernel /= kernel.sum()
    expected = np.zeros((9, 9))
    expected[1:8, 1:8] = np.outer(kernel, kernel)
    np.testing.assert_allclose(gaussian_blur(delta, 1.0)[0, :, :, 0], expected, atol=1e-6)
    constant = np.full((2, 5, 6, 3), 0.7, np.float32)
    np.testing.assert_allclose(gaussian_blur(constant, 2.0), constant, rtol=1e-5)


def test_blur_runs_every_k_steps_only():
    x0 = np.random.default_rng(2).normal(size=(1, 8, 8, 1)).astype(np.float32)
    reg = Regularizers(blur_every=2, blur_sigma=0.7)
    once, _ = gradient_ascent(_flat_objective, x0, steps=3, learning_rate=0.1, regularizers=reg,
                              seed=0)
    twice, _ = gradient_ascent(_flat_objective, x0, steps=4, learning_rate=0.1,
                               regularizers=reg, seed=0)
    np.testing.assert_allclose(once, gaussian_blur(x0, 0.7), atol=1e-6)
    np.testing.assert_allclose(twice, gaussian_blur(gaussian_blur(x0, 0.7), 0.7), atol=1e-6)


def test_small_norm_pixels_are_zeroed_below_the_percentile():
    # pixel norms over the 2 channels: 1, 2, 3, 4 (a 3-4-5 triangle gives 5 for the last)
    x0 = np.array([[[[1, 0], [0, 2]], [[3, 0], [3, 4]]]], np.float32)
    images, _ = gradient_ascent(_flat_objective, x0, steps=1, learning_rate=0.1,
                                regularizers=Regularizers(norm_percentile=50), seed=0)
    # sorted norms [1, 2, 3, 5], index floor(0.5 * 3) = 1 -> threshold 2: only the first goes
    expected = x0.copy()
    expected[0, 0, 0] = 0
    np.testing.assert_array_equal(images, expected)


def test_small_contribution_pixels_are_zeroed_below_the_percentile():
    # x1 = x0 + w = [2, 3, 4, 5]; contributions |x1 * w| = [2, 6, 12, 20]; threshold 6
    weights = tf.constant([[[[1.0], [2.0]], [[3.0], [4.0]]]])
    images, _ = gradient_ascent(_linear_objective, np.ones((1, 2, 2, 1)), steps=1,
                                learning_rate=1.0, objective_args=(weights,),
                                normalize_gradients=False,
                                regularizers=Regularizers(contribution_percentile=50), seed=0)
    np.testing.assert_array_equal(images[0, :, :, 0], [[0, 3], [4, 5]])


def test_zero_image_survives_the_percentile_clipping():
    reg = Regularizers(norm_percentile=90, contribution_percentile=90)
    images, _ = gradient_ascent(_flat_objective, np.zeros((1, 2, 2, 2)), steps=2,
                                learning_rate=0.1, regularizers=reg, seed=0)
    np.testing.assert_array_equal(images, 0.0)


def test_jitter_rolls_the_gradient_by_a_seeded_shift_within_range():
    weights = np.random.default_rng(3).normal(size=(1, 6, 6, 1)).astype(np.float32)
    x0 = np.zeros((1, 6, 6, 1), np.float32)
    kwargs = {"steps": 1, "learning_rate": 1.0, "objective_args": (tf.constant(weights),),
              "normalize_gradients": False, "regularizers": Regularizers(jitter=2)}
    seen = set()
    for seed in range(6):
        step, _ = gradient_ascent(_linear_objective, x0, seed=seed, **kwargs)
        again, _ = gradient_ascent(_linear_objective, x0, seed=seed, **kwargs)
        np.testing.assert_array_equal(step, again)
        shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                  if np.allclose(step, np.roll(weights, (dy, dx), axis=(1, 2)))]
        assert shifts, "the update must be the gradient rolled by a shift in [-2, 2]^2"
        seen.add(shifts[0])
    assert len(seen) > 1


def test_compiled_loop_equals_eager_loop():
    x0 = np.random.default_rng(4).normal(size=(2, 8, 8, 1)).astype(np.float32)
    target = tf.constant(np.random.default_rng(5).normal(size=(2, 8, 8, 1)), tf.float32)
    reg = Regularizers(l2_decay=0.1, blur_every=2, blur_sigma=0.5, jitter=1, norm_percentile=10,
                       contribution_percentile=10, value_range=(-1, 1))
    kwargs = {"steps": 4, "learning_rate": 0.1, "objective_args": (target,),
              "regularizers": reg, "seed": 7}
    compiled = gradient_ascent(_quadratic_objective, x0, **kwargs)
    eager = gradient_ascent(_quadratic_objective, x0, run_eagerly=True, **kwargs)
    np.testing.assert_allclose(compiled[0], eager[0], atol=1e-5)
    np.testing.assert_allclose(compiled[1], eager[1], rtol=1e-5)


def test_repeated_shapes_do_not_retrace():
    def objective(images, weights):  # a fresh objective object: traced once below
        return tf.reduce_sum(images * weights, axis=[1, 2, 3])

    x0 = np.zeros((2, 5, 5, 1), np.float32)
    gradient_ascent(objective, x0, steps=2, learning_rate=0.1,
                    objective_args=(tf.ones((2, 5, 5, 1)),), seed=0)
    count = ascent.tracing_count()
    for steps, lr, reg, seed in [(3, 0.2, Regularizers(jitter=1, blur_every=1, blur_sigma=1.0), 1),
                                 (5, 0.01, Regularizers(l2_decay=0.3, norm_percentile=20), None)]:
        gradient_ascent(objective, x0 + 1, steps=steps, learning_rate=lr, regularizers=reg,
                        objective_args=(tf.fill((2, 5, 5, 1), 2.0),), seed=seed)
    assert ascent.tracing_count() == count


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, "steps"), ({"steps": -3}, "steps"), ({"learning_rate": 0.0}, "learning_rate"),
    ({"learning_rate": -1.0}, "learning_rate"), ({"learning_rate": float("nan")}, "learning_rate"),
    ({"initial_images": np.zeros((4, 4, 1))}, "initial_images"),
    ({"regularizers": Regularizers(l2_decay=10.0)}, "l2_decay"),
    ({"final_learning_rate": 0.0}, r"final_learning_rate.*0"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, match):
    args = {"steps": 2, "learning_rate": 0.1, "initial_images": np.zeros((1, 4, 4, 1))}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        gradient_ascent(_flat_objective, args.pop("initial_images"), **args)


@pytest.mark.parametrize("kwargs, match", [
    ({"l2_decay": -1.0}, "l2_decay"), ({"blur_every": -1}, "blur_every"),
    ({"jitter": -2}, "jitter"), ({"norm_percentile": 100}, "norm_percentile"),
    ({"contribution_percentile": -5}, "contribution_percentile"),
    ({"value_range": (1, 0)}, "value_range"),
])
def test_bad_regularizers_raise_value_error_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Regularizers(**kwargs)


def test_bad_types_and_objective_shapes_are_reported():
    with pytest.raises(TypeError, match="steps"):
        gradient_ascent(_flat_objective, np.zeros((1, 4, 4, 1)), steps=2.5, learning_rate=0.1)
    with pytest.raises(TypeError, match="objective"):
        gradient_ascent("not callable", np.zeros((1, 4, 4, 1)), steps=2, learning_rate=0.1)
    with pytest.raises(ValueError, match="one value per image"):
        gradient_ascent(lambda x: tf.reduce_sum(x), np.zeros((1, 4, 4, 1)), steps=2,
                        learning_rate=0.1)
