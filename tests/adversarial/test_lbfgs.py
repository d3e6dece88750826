"""L-BFGS attack of Szegedy et al.: the exact minimal distortion of a linear model, a targeted
attack on the digits MLP, result types."""

import numpy as np

from adversarial import LBFGSResult, l2_distance, lbfgs_attack
from tests.adversarial.conftest import two_class_linear


def test_linear_model_distortion_approaches_distance_to_the_hyperplane():
    w = np.array([1.0, -2, 0.5, 3, -1, 2])
    x = np.array([[0.1, 0.9, 0.2, -0.5, 0.3, -0.4]])
    minimal = -(w @ x[0]) / np.linalg.norm(w)  # the closest point of class 1 (score > 0)
    result = lbfgs_attack(two_class_linear(w), x, 1, clip_value_min=-np.inf,
                          clip_value_max=np.inf, return_info=True)
    assert isinstance(result, LBFGSResult) and result.success.tolist() == [True]
    assert minimal <= result.distortion[0] <= 1.01 * minimal, (result.distortion, minimal)
    direction = (result.adversarial[0] - x[0]) / result.distortion[0]
    np.testing.assert_allclose(direction, w / np.linalg.norm(w), atol=1e-3)  # along w


def test_box_constraint_is_respected():
    w = np.array([1.0, -2, 0.5, 3, -1, 2])
    x = np.array([[0.1, 0.9, 0.2, 0.0, 0.3, 0.0]])
    result = lbfgs_attack(two_class_linear(w), x, 1, return_info=True)
    assert result.success[0]
    assert result.adversarial.min() >= 0.0 and result.adversarial.max() <= 1.0
    unconstrained = -(w @ x[0]) / np.linalg.norm(w)
    assert result.distortion[0] > unconstrained  # the box makes the shortest path longer


def test_targeted_on_digits_with_small_distortion(digits_mlp, test_batch):
    x, y = test_batch
    x, target = x[:2], (y[:2] + 1) % 10
    result = lbfgs_attack(digits_mlp, x, target, search_steps=4, max_iterations=40,
                          return_info=True)
    assert result.success.all()
    np.testing.assert_array_equal(np.argmax(digits_mlp(result.adversarial), 1), target)
    np.testing.assert_allclose(result.distortion, l2_distance(x, result.adversarial), rtol=1e-5)
    rms = result.distortion / np.sqrt(64)
    assert rms.max() < 0.2, rms  # Szegedy et al. report 0.06-0.14 on MNIST
    assert result.adversarial.min() >= 0.0 and result.adversarial.max() <= 1.0


def test_default_returns_images_and_already_reached_target_needs_no_change(digits_mlp,
                                                                           test_batch):
    x, _ = test_batch
    predicted = np.argmax(digits_mlp(x[:1]), 1)
    adversarial = lbfgs_attack(digits_mlp, x[:1], predicted, search_steps=2)
    assert isinstance(adversarial, np.ndarray) and adversarial.shape == (1, 8, 8, 1)
    assert np.abs(adversarial - x[:1]).max() < 0.05
