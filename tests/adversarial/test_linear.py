"""The slides' logistic-regression examples, with their exact numbers."""

import math

import numpy as np
import pytest

from adversarial import fgsm_attack
from adversarial.linear import LECTURE_10D, fool_logistic_regression, main, slides_examples
from tests.adversarial.conftest import two_class_linear


def test_ten_dimensional_example_of_the_lecture():
    (example,) = slides_examples()["10d"]
    np.testing.assert_allclose(example.x_adv, [1.5, -1.5, 3.5, -2.5, 2.5, 1.5, 1.5, -3.5, 4.5, 1.5])
    assert example.score == -3.0 and example.score_adv == 2.0
    assert round(example.probability, 4) == 0.0474 and round(example.probability_adv, 2) == 0.88


def test_eight_dimensional_example_gives_sigma_minus1_0_1():
    examples = slides_examples()["8d"]
    assert [e.epsilon for e in examples] == [0.1, 0.2, 0.3]
    assert examples[0].score == -2.0 and round(examples[0].probability, 4) == 0.1192
    assert [e.score_adv for e in examples] == pytest.approx([-1.0, 0.0, 1.0], abs=1e-12)
    assert [round(e.probability_adv, 4) for e in examples] == [0.2689, 0.5, 0.7311]


def test_score_rises_by_eps_times_l1_norm_of_w():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=50), rng.normal(size=50)
    example = fool_logistic_regression(x, w, 0.01, b=0.3)
    assert example.score_adv - example.score == pytest.approx(0.01 * np.abs(w).sum())
    assert example.probability == pytest.approx(1 / (1 + math.exp(-(w @ x + 0.3))))


def test_fgsm_attack_reproduces_the_example():
    model = two_class_linear(LECTURE_10D["w"])
    x = np.array([LECTURE_10D["x"]], dtype=np.float32)
    x_adv = fgsm_attack(model, x, [0], epsilon=0.5, clip_value_min=-np.inf, clip_value_max=np.inf)
    np.testing.assert_allclose(x_adv.numpy()[0], slides_examples()["10d"][0].x_adv)


def test_main_prints_the_numbers(capsys):
    main()
    out = capsys.readouterr().out
    assert "score -3.0 -> +2.0, P(y=1) 0.0474 -> 0.8808" in out
    assert "P(y=1) 0.1192 -> 0.7311" in out


def test_bad_input():
    with pytest.raises(ValueError, match="same length"):
        fool_logistic_regression([1, 2], [1, 2, 3], 0.1)
    with pytest.raises(ValueError, match="epsilon must be >= 0, got -0.1"):
        fool_logistic_regression([1, 2], [1, 2], -0.1)
