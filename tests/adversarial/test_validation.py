"""Bad input raises ValueError/TypeError naming the argument and showing the value."""

import keras
import numpy as np
import pytest

from adversarial import fgsm_attack, lbfgs_attack, mim_attack, pgd_attack

ALL = [fgsm_attack, pgd_attack, mim_attack]
ITERATIVE = [pgd_attack, mim_attack]


@pytest.fixture()
def small():
    model = keras.Sequential([keras.Input((3, 3, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(4)])
    x = np.random.default_rng(0).uniform(size=(5, 3, 3, 1)).astype(np.float32)
    return model, x, np.array([0, 1, 2, 3, 0])


CASES = [
    (ALL, {"epsilon": -0.1}, ValueError, r"epsilon must be >= 0.0, got -0.1"),
    (ALL, {"epsilon": "big"}, TypeError, r"epsilon must be a real number, got 'big'"),
    (ALL, {"epsilon": np.inf}, ValueError, r"epsilon must be a finite number, got inf"),
    (ALL, {"clip_value_min": 1.0, "clip_value_max": 0.0}, ValueError,
     r"clip_value_min must be <= clip_value_max, got clip_value_min=1.0 > clip_value_max=0.0"),
    (ALL, {"loss": "hinge"}, ValueError, r"loss must be one of .*, got 'hinge'"),
    (ALL, {"targeted": True, "soft_label": True}, ValueError,
     r"soft_label must be False when targeted=True.*got soft_label=True"),
    (ALL, {"seed": -3}, ValueError, r"seed must be >= 0, got -3"),
    ([fgsm_attack, pgd_attack], {"norm": 1}, ValueError, r"norm must be np.inf or 2, got 1"),
    ([fgsm_attack, pgd_attack], {"norm": "l2"}, ValueError, r"norm must be np.inf or 2, got 'l2'"),
    (ITERATIVE, {"step_size": 0.0}, ValueError, r"step_size must be > 0.0, got 0.0"),
    (ITERATIVE, {"num_steps": 0}, ValueError, r"num_steps must be >= 1, got 0"),
    (ITERATIVE, {"num_steps": 2.5}, TypeError, r"num_steps must be an integer, got 2.5"),
    ([pgd_attack], {"restarts": 0}, ValueError, r"restarts must be >= 1, got 0"),
    ([mim_attack], {"decay": -1.0}, ValueError, r"decay must be >= 0.0, got -1.0"),
]


@pytest.mark.parametrize("attacks, kwargs, error, message", CASES)
def test_bad_arguments(small, attacks, kwargs, error, message):
    model, x, y = small
    for attack in attacks:
        with pytest.raises(error, match=message):
            attack(model, x, y, **kwargs)


@pytest.mark.parametrize("attack", ALL)
def test_bad_images_and_labels(small, attack):
    model, x, y = small
    with pytest.raises(ValueError, match=r"input_image of shape \(5, 4, 4, 1\) is rejected"):
        attack(model, np.zeros((5, 4, 4, 1)), y)
    nan = x.copy()
    nan[1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="input_image must not contain NaN, got 1 NaN"):
        attack(model, nan, y)
    with pytest.raises(ValueError, match=r"input_label must be in \[0, 4\), got \[7\] at "
                                         r"positions \[2\]"):
        attack(model, x, [0, 1, 7, 3, 0])
    with pytest.raises(ValueError, match=r"input_label must have shape \(5,\), \(5, 1\) or one-hot "
                                         r"rows \(5, 4\), got shape \(3,\)"):
        attack(model, x, y[:3])
    with pytest.raises(ValueError, match="input_label must be integer class indices"):
        attack(model, x, y + 0.5)
    with pytest.raises(TypeError, match="model must be callable"):
        attack("model.keras", x, y)


def test_epsilon_zero_validates_then_returns_the_input(small):
    model, x, y = small
    for attack in ALL:
        np.testing.assert_array_equal(attack(model, x, y, epsilon=0).numpy(), x)
        with pytest.raises(ValueError, match="input_label must be in"):
            attack(model, x, y + 10, epsilon=0)


def test_model_output_must_be_logits(small):
    _, x, y = small
    with pytest.raises(ValueError, match=r"model must map input_image .* to logits \(N, K\)"):
        pgd_attack(lambda images: images[:, 0, 0, 0], x, y)


def test_lbfgs_bad_arguments(small):
    model, x, y = small
    with pytest.raises(ValueError, match="c_init must be > 0.0, got 0.0"):
        lbfgs_attack(model, x, y, c_init=0.0)
    with pytest.raises(ValueError, match="search_steps must be >= 1, got 0"):
        lbfgs_attack(model, x, y, search_steps=0)
    with pytest.raises(ValueError, match=r"target_label must be in \[0, 4\), got 9"):
        lbfgs_attack(model, x, 9)
    with pytest.raises(ValueError, match="clip_value_min must be <= clip_value_max"):
        lbfgs_attack(model, x, y, clip_value_min=2.0)
