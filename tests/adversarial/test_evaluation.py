"""Robustness evaluation on a linear two-class model where every number is known by hand.

The model is ``logits = [0, s(x)]`` with ``s(x) = w . x``, ``w = (1, -1, 1, -1)`` on 2x2 images.
Cross entropy's input gradient is ``(p_1 - [y = 1]) w``, so FGSM moves ``s`` by
``eps * ||w||_1 = 4 eps`` against the true class, which is also the worst case over the L-inf
ball (PGD and MIM reach that corner). The images are ``x = 0.5 + d * w`` with
``s(x) = 4 d``: an example with label ``[d > 0]`` survives an attack of budget ``eps`` iff
``|d| > eps``. Images stay inside (0, 1) for every budget used, so clipping never interferes.
"""

import keras
import numpy as np
import pytest

from adversarial import evaluation as ev

W = np.array([1.0, -1.0, 1.0, -1.0], dtype=np.float32)
DELTAS = np.array([0.025, 0.075, 0.125, 0.175, -0.025, -0.075, -0.125, -0.175, 0.1, -0.1],
                  dtype=np.float32)
# the last two examples carry the wrong label: misclassified before any attack
LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 1], dtype=np.int32)


def linear_model(w=W, scale=1.0):
    model = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    kernel = np.stack([np.zeros(4, np.float32), scale * w], axis=1)
    model.layers[-1].set_weights([kernel, np.zeros(2, np.float32)])
    return model


def images():
    return (0.5 + DELTAS[:, None] * W[None, :]).reshape(-1, 2, 2, 1).astype(np.float32)


def expected_accuracy(eps):
    correct = np.arange(len(DELTAS)) < 8
    return float(np.mean(correct & (np.abs(DELTAS) > eps)))


def test_robust_accuracy_matches_the_hand_computed_margins():
    epsilons = (0.0, 0.05, 0.1, 0.15, 0.2)
    result = ev.robust_accuracy(linear_model(), images(), LABELS, epsilons, batch_size=6)
    assert set(result) == {"fgsm", "pgd", "mim"}
    for attack, curve in result.items():
        assert list(curve) == list(epsilons)
        for eps in epsilons:
            assert curve[eps] == pytest.approx(expected_accuracy(eps)), (attack, eps)
    # 0.8, 0.6, 0.4, 0.2, 0.0: misclassified examples count as failures at epsilon 0 too
    assert result["pgd"][0.0] == pytest.approx(0.8)


def test_epsilon_zero_is_the_clean_accuracy_of_a_cnn():
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(3, 3),
                              keras.layers.Flatten(), keras.layers.Dense(3)])
    x = np.random.rand(12, 4, 4, 1).astype(np.float32)
    y = np.random.randint(0, 3, size=12)
    clean = float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))
    result = ev.robust_accuracy(model, x, y, (0.0, 0.1), ("fgsm", "pgd"), num_steps=3)
    assert result["fgsm"][0.0] == result["pgd"][0.0] == pytest.approx(clean)
    assert result["pgd"][0.1] <= clean


def test_one_hot_labels_and_a_custom_attack_callable():
    calls = []

    def push_towards_class_one(model, x, y, epsilon, **kwargs):
        calls.append(kwargs)
        return np.clip(np.asarray(x) + epsilon * W.reshape(1, 2, 2, 1), 0, 1)

    one_hot = np.eye(2, dtype=np.float32)[LABELS]
    result = ev.robust_accuracy(linear_model(), images(), one_hot, (0.0, 0.1),
                                [push_towards_class_one])
    # all class-1 examples stay right; class-0 ones with |d| <= 0.1 flip, the wrong ones stay wrong
    assert result["push_towards_class_one"][0.1] == pytest.approx(0.6)
    assert calls == [{}]  # a callable only gets epsilon, no step sizes or seeds


def test_targeted_success_rate_on_the_linear_model():
    targets = ev.random_target_labels(LABELS, 2, seed=3)
    np.testing.assert_array_equal(targets, 1 - LABELS)
    rate = ev.targeted_success_rate(linear_model(), images(), targets, "pgd", 0.1,
                                    true_labels=LABELS)
    assert rate == pytest.approx(1.0 - expected_accuracy(0.1))


def test_random_target_labels_never_hit_the_label():
    labels = np.random.randint(0, 10, size=500)
    targets = ev.random_target_labels(labels, 10, seed=0)
    assert np.all(targets != labels) and targets.min() >= 0 and targets.max() <= 9
    assert len(np.unique(targets)) == 10


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_minimal_distortion_is_the_first_grid_epsilon_beyond_the_margin(attack):
    found = ev.minimal_distortion(linear_model(), images(), LABELS, attack,
                                  epsilons=np.round(np.arange(1, 21) * 0.01, 2))
    expected = np.ceil(np.abs(DELTAS[:8]) * 100 + 1e-6) / 100  # 0.025 -> 0.03
    np.testing.assert_allclose(found["epsilon"][:8], expected, atol=1e-6)
    assert np.all(np.isnan(found["epsilon"][8:]))  # misclassified: not searched
    # the adversarial sits at the ball's corner: every pixel moved by epsilon, RMS = epsilon
    np.testing.assert_allclose(found["rms"][:8], expected, atol=1e-5)
    assert found["mean_epsilon"] == pytest.approx(expected.mean())
    assert found["flipped_rate"] == 1.0


def test_minimal_distortion_marks_unflipped_examples_inf():
    found = ev.minimal_distortion(linear_model(), images(), LABELS, "fgsm", epsilons=[0.05, 0.1])
    assert np.sum(np.isinf(found["epsilon"])) == 4  # |d| in {0.125, 0.175}
    assert found["flipped_rate"] == pytest.approx(0.5)


def test_transfer_matrix_shape_diagonal_and_noise_baseline():
    other = np.array([1.0, 1.0, -1.0, -1.0], np.float32)
    models = {"a": linear_model(), "a_scaled": linear_model(scale=3.0),
              "other": linear_model(other)}
    out = ev.transfer_matrix(models, images(), LABELS, "fgsm", 0.1, seed=0)
    assert out["names"] == ["a", "a_scaled", "other"]
    assert out["error"].shape == out["noise_error"].shape == (3, 3)
    assert out["error"][0, 0] == pytest.approx(1 - expected_accuracy(0.1))
    # a and 3a share the sign of the gradient: identical adversarials, full transfer
    assert out["error"][0, 1] == out["error"][1, 0] == out["error"][1, 1] == out["error"][0, 0]
    np.testing.assert_allclose(out["clean_error"], [0.2, 0.2, np.mean(
        np.argmax(models["other"].predict(images(), verbose=0), 1) != LABELS)])
    np.testing.assert_allclose(out["rms"], 0.1, atol=1e-6)  # FGSM moves every pixel by eps
    # for a linear model the L-inf corner is also the worst case in the L2 ball of its norm
    assert np.all(np.diag(out["noise_error"]) <= np.diag(out["error"]) + 1e-12)
    assert np.all((0 <= out["noise_error"]) & (out["noise_error"] <= 1))


def test_gaussian_noise_has_the_perturbations_l2_norm():
    r = np.random.randn(5, 3, 3, 1).astype(np.float32) * np.arange(1, 6)[:, None, None, None]
    noise = ev.gaussian_noise_like(np.zeros_like(r), r, seed=1)
    np.testing.assert_allclose(np.linalg.norm(noise.reshape(5, -1), axis=1),
                               np.linalg.norm(r.reshape(5, -1), axis=1), rtol=1e-5)


def test_loss_surface_of_the_linear_model():
    """For label 0 the loss is softplus(s); along g = sign(w) s grows by 4a, along g_perp not."""
    x = images()[4]  # d = -0.025, label 0, s = -0.1
    surface = ev.loss_surface(linear_model(), x, 0, radius=0.2, resolution=5, seed=2)
    np.testing.assert_array_equal(surface["g"].ravel(), W)
    assert abs(np.sum(surface["g"] * surface["g_perp"])) < 1e-5
    assert np.linalg.norm(surface["g_perp"]) == pytest.approx(2.0, rel=1e-5)
    s = -0.1 + 4 * surface["alphas"]
    expected = np.log1p(np.exp(s))
    np.testing.assert_allclose(surface["loss"], np.broadcast_to(expected, (5, 5)), rtol=1e-4)
    np.testing.assert_array_equal(surface["predicted"][:, :], np.broadcast_to(s > 0, (5, 5)))


@pytest.mark.parametrize("call, match", [
    (lambda m: ev.robust_accuracy(m, images(), LABELS, [-0.1]), "epsilons"),
    (lambda m: ev.robust_accuracy(m, images(), LABELS, [0.1], ["cw"]), "attack"),
    (lambda m: ev.robust_accuracy(m, images(), LABELS[:3]), "labels"),
    (lambda m: ev.robust_accuracy(m, images() * np.nan, LABELS), "images"),
    (lambda m: ev.accuracy(m, images(), LABELS, batch_size=0), "batch_size"),
    (lambda m: ev.minimal_distortion(m, images(), LABELS, epsilons=[0.2, 0.1]), "epsilons"),
    (lambda m: ev.transfer_matrix([m], images(), LABELS), "models"),
    (lambda m: ev.loss_surface(m, images()[0], 0, radius=0.0), "radius"),
])
def test_bad_arguments_name_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(linear_model())
