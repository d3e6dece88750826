"""evaluate_robustness: schema, worst case, batch-size independence, masked models, warnings."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from adversarial import clean_evaluation, evaluate_robustness, pgd_attack

KW = {"num_steps": 10, "num_queries": 50, "num_targets": 3, "seed": 0}


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(np.asarray(model(x)), 1) == y))


def test_schema_worst_case_and_interval(digits_mlp, digits):
    x, y = digits.x_test[:64], digits.y_test[:64]
    r = evaluate_robustness(digits_mlp, x, y[:, None], 0.1, **KW)  # Keras-style (N, 1) labels
    assert {"clean_accuracy", "robust_accuracy", "robust_accuracy_ci95", "per_attack",
            "warnings"} <= set(r)
    assert r["clean_accuracy"] == _accuracy(digits_mlp, x, y)
    assert list(r["per_attack"]) == ["apgd-ce", "apgd-t", "pgd-margin", "square"]
    assert r["robust_accuracy"] == min(r["per_attack"].values())
    assert r["robust_accuracy"] == float(np.mean(r["robust"]))
    low, high = r["robust_accuracy_ci95"]
    assert low <= r["robust_accuracy"] <= high
    single = pgd_attack(digits_mlp, x, y, epsilon=0.1, num_steps=10, step_size=0.025, seed=0)
    assert r["robust_accuracy"] <= _accuracy(digits_mlp, single, y)
    assert r["warnings"] == [], r["warnings"]
    clean = clean_evaluation(digits_mlp, x, y)
    assert clean["robust_accuracy"] == clean["clean_accuracy"] == r["clean_accuracy"]
    with pytest.raises(ValueError, match="epsilon must be > 0 .*clean_evaluation"):
        evaluate_robustness(digits_mlp, x, y, 0.0)


def test_result_does_not_depend_on_batch_size(digits_mlp, digits):
    x, y = digits.x_test[:48], digits.y_test[:48]
    runs = [evaluate_robustness(digits_mlp, x, y, 0.08, batch_size=b, **KW) for b in (7, 48)]
    np.testing.assert_array_equal(runs[0]["robust"], runs[1]["robust"])
    assert runs[0]["per_attack"] == runs[1]["per_attack"]


def test_softmax_twin_gets_the_logits_result_and_a_note(digits_mlp, digits):
    x, y = digits.x_test[:32], digits.y_test[:32]

    def probabilities(images):  # opaque: only its outputs tell it is a softmax
        return tf.nn.softmax(digits_mlp(images))

    a = evaluate_robustness(digits_mlp, x, y, 0.1, **KW)
    b = evaluate_robustness(probabilities, x, y, 0.1, **KW)
    assert abs(a["robust_accuracy"] - b["robust_accuracy"]) <= 1 / 32
    assert any("probabilities" in w for w in b["warnings"])


def test_saturated_logits_are_broken_anyway(digits_mlp, digits):
    """Logits x20: CE gradients vanish, but DLR/margin/Square still break the model."""
    x, y = digits.x_test[:48], digits.y_test[:48]

    def scaled(images):
        return 20.0 * digits_mlp(images)

    plain = evaluate_robustness(digits_mlp, x, y, 0.15, **KW)
    masked = evaluate_robustness(scaled, x, y, 0.15, **KW)
    assert masked["robust_accuracy"] <= plain["robust_accuracy"] + 3 / 48, (plain, masked)


def test_input_rounding_is_flagged(digits_mlp, digits):
    x, y = digits.x_test[:48], digits.y_test[:48]

    def rounding(images):
        return digits_mlp(tf.round(images * 4) / 4)

    r = evaluate_robustness(rounding, x, y, 0.2, **KW)
    assert "apgd-ce" in r["skipped"] and "square" in r["per_attack"]
    assert any("no input gradient" in w for w in r["warnings"]), r["warnings"]


def test_bad_input_names_the_argument(digits_mlp, digits):
    x, y = digits.x_test[:8], digits.y_test[:8]
    with pytest.raises(ValueError, match=r"images must lie in .*\[0, 1\].*got values in \[0, 255\]"):
        evaluate_robustness(digits_mlp, (x * 255).astype(np.uint8), y, 0.1)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 10\), got \[12\]"):
        evaluate_robustness(digits_mlp, x, np.where(np.arange(8) == 2, 12, y), 0.1)
    with pytest.raises(ValueError, match="attacks must be one of"):
        evaluate_robustness(digits_mlp, x, y, 0.1, attacks=("cw",))


def _gradient_reversed(model):
    """Same outputs as ``model``, but the input gradient points the wrong way (finite, non-zero):
    every gradient attack walks towards a more confident correct prediction."""

    @tf.custom_gradient
    def reverse(images):
        return tf.identity(images), lambda upstream: -upstream

    return lambda images: model(reverse(images))


def test_randomised_outputs_are_flagged(digits_mlp, digits):
    x, y = digits.x_test[:32], digits.y_test[:32]

    def noisy(images):  # a randomised defence: fresh noise on every call
        logits = digits_mlp(images)
        return logits + tf.random.normal(tf.shape(logits), stddev=0.1)

    kw = dict(KW, attacks=("pgd-margin",), check_large_epsilon=False)
    flagged = evaluate_robustness(noisy, x, y, 0.1, **kw)["warnings"]
    assert any("change between two calls" in w for w in flagged), flagged
    plain = evaluate_robustness(digits_mlp, x, y, 0.1, **kw)["warnings"]
    assert not any("change between two calls" in w for w in plain), plain


def test_black_box_stronger_than_white_box_is_flagged(digits_mlp, digits):
    x, y = digits.x_test[:48], digits.y_test[:48]
    kw = dict(KW, attacks=("apgd-ce", "square"), check_large_epsilon=False)
    masked = evaluate_robustness(_gradient_reversed(digits_mlp), x, y, 0.15, **kw)
    assert masked["broken_by"]["square"] > masked["broken_by"]["apgd-ce"], masked["broken_by"]
    assert any("Square Attack broke" in w for w in masked["warnings"]), masked["warnings"]
    plain = evaluate_robustness(digits_mlp, x, y, 0.15, **kw)
    assert not any("Square Attack broke" in w for w in plain["warnings"]), plain
    # Square run FIRST breaks what it can before any white-box attack: nothing to compare.
    first = evaluate_robustness(_gradient_reversed(digits_mlp), x, y, 0.15,
                                **dict(kw, attacks=("square", "apgd-ce")))
    assert first["broken_by"]["square"] > 1
    assert not any("Square Attack broke" in w for w in first["warnings"]), first["warnings"]


def test_accuracy_left_at_a_large_epsilon_is_flagged(digits_mlp, digits):
    x, y = digits.x_test[:32], digits.y_test[:32]
    kw = dict(KW, attacks=("apgd-ce",))
    masked = evaluate_robustness(_gradient_reversed(digits_mlp), x, y, 0.1, **kw)
    assert any("at the large epsilon 0.5" in w and "not trustworthy" in w
               for w in masked["warnings"]), masked["warnings"]
    plain = evaluate_robustness(digits_mlp, x, y, 0.1, **kw)
    assert not any("large epsilon" in w for w in plain["warnings"]), plain["warnings"]
    quiet = evaluate_robustness(_gradient_reversed(digits_mlp), x, y, 0.1,
                                **dict(kw, check_large_epsilon=False))
    assert not any("large epsilon" in w for w in quiet["warnings"]), quiet["warnings"]
