"""The attacks on the inputs people bring: pixel ranges, label forms, softmax heads, edited models."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from adversarial import apgd_attack, clear_cache, fgsm_attack, mim_attack, pgd_attack
from adversarial._common import compiled_attack

ALL = [fgsm_attack, pgd_attack, mim_attack]


@pytest.fixture(scope="module")
def cnn():
    """A small logits CNN on 8x8x3 inputs, and its softmax twin (same weights)."""
    keras.utils.set_random_seed(2)
    logits = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
                               keras.layers.Flatten(), keras.layers.Dense(5)])
    twin = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
                             keras.layers.Flatten(), keras.layers.Dense(5, activation="softmax")])
    twin.set_weights(logits.get_weights())
    return logits, twin


def _images(n=12, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, 8, 8, 3)).astype(np.float32)


@pytest.mark.parametrize("attack", ALL)
def test_uint8_images_are_refused_with_the_fix_then_work_in_their_range(cnn, attack):
    model, _ = cnn
    pixels = np.random.default_rng(0).integers(0, 256, size=(4, 8, 8, 3)).astype(np.uint8)
    with pytest.raises(ValueError, match=r"input_image must lie in .*\[0, 1\].*uint8 pixels in "
                                         r"\[0, 255\]: pass clip_value_min=0, clip_value_max=255"):
        attack(model, pixels, [0, 1, 2, 3], epsilon=8.0)
    adv = attack(model, pixels, [0, 1, 2, 3], epsilon=8.0, clip_value_min=0,
                 clip_value_max=255).numpy()
    assert adv.dtype == np.float32 and adv.min() >= 0 and adv.max() <= 255
    assert np.abs(adv - pixels).max() <= 8.0 + 1e-4
    assert np.mean(np.abs(adv - pixels)) > 1.0  # moved by pixels, not crushed into [0, 1]


def test_minus_one_to_one_images(cnn):
    model, _ = cnn
    x = 2 * _images() - 1
    with pytest.raises(ValueError, match=r"preprocessed images in \[-1, 1\]: pass "
                                         r"clip_value_min=-1, clip_value_max=1"):
        pgd_attack(model, x, np.arange(12) % 5, epsilon=0.03)
    adv = pgd_attack(model, x, np.arange(12) % 5, epsilon=0.03, clip_value_min=-1.0,
                     clip_value_max=1.0, seed=0).numpy()
    assert adv.min() < -0.9 and np.abs(adv - x).max() <= 0.03 + 1e-6


def test_label_forms_give_the_same_attack(cnn):
    model, _ = cnn
    x, y = _images(), np.arange(12) % 5
    reference = pgd_attack(model, x, y, epsilon=0.1, seed=0, num_steps=3).numpy()
    for labels in (y[:, None], np.eye(5)[y], tf.constant(y), y.astype(np.float32)):
        np.testing.assert_array_equal(
            pgd_attack(model, x, labels, epsilon=0.1, seed=0, num_steps=3).numpy(), reference)
    with pytest.raises(ValueError, match=r"input_label must be in \[0, 5\), got \[5\] at "
                                         r"positions \[3\]"):
        pgd_attack(model, x, np.where(np.arange(12) == 3, 5, y), epsilon=0.1)


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_softmax_twin_gives_the_logits_models_examples(cnn, loss):
    logits, twin = cnn
    x, y = _images(), np.arange(12) % 5
    kwargs = {"epsilon": 0.1, "num_steps": 5, "step_size": 0.03, "loss": loss, "seed": 1}
    np.testing.assert_allclose(pgd_attack(twin, x, y, **kwargs).numpy(),
                               pgd_attack(logits, x, y, **kwargs).numpy(), atol=1e-6)


def test_opaque_probability_function_equals_logits(cnn):
    logits, _ = cnn

    def probabilities(images):  # a plain function: only its outputs tell it is a softmax
        return tf.nn.softmax(logits(images, training=False))

    x, y = _images(), np.arange(12) % 5
    kwargs = {"epsilon": 0.1, "num_steps": 5, "step_size": 0.03, "loss": "margin", "seed": 1}
    np.testing.assert_allclose(pgd_attack(probabilities, x, y, **kwargs).numpy(),
                               pgd_attack(logits, x, y, **kwargs).numpy(), atol=1e-5)


@pytest.mark.parametrize("attack", [pgd_attack, apgd_attack])
def test_results_do_not_depend_on_batch_size(cnn, attack):
    model, _ = cnn
    x, y = _images(40, seed=4), np.arange(40) % 5
    kwargs = {"epsilon": 0.05, "num_steps": 4, "restarts": 2, "seed": 7}
    runs = [attack(model, x, y, batch_size=b, **kwargs).numpy() for b in (6, 16, 40)]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])


def test_l2_start_does_not_depend_on_batch_size(cnn):
    model, _ = cnn
    x, y = _images(20, seed=5), np.arange(20) % 5
    kwargs = {"epsilon": 0.5, "num_steps": 2, "step_size": 0.1, "norm": 2, "seed": 3}
    np.testing.assert_array_equal(pgd_attack(model, x, y, batch_size=3, **kwargs).numpy(),
                                  pgd_attack(model, x, y, batch_size=20, **kwargs).numpy())


def test_restarts_prefer_a_success_over_a_higher_loss():
    """Two classes, the CE loss is highest at a correctly classified corner for one start."""
    w = np.array([1.0, -1.0], np.float32)

    def logits(x):
        s = tf.reduce_sum(x * w, axis=1)
        # class 1 wins for s > 0; an extra "trap" raises CE far from the boundary on class 0
        return tf.stack([s * s * 0.0 + 1.0 - 2.0 * s, tf.zeros_like(s)], axis=1)

    x = np.full((8, 2), 0.5, np.float32)
    y = np.zeros(8, np.int32)
    adv = pgd_attack(logits, x, y, epsilon=0.4, num_steps=1, step_size=0.05, restarts=4, seed=0)
    predicted = np.argmax(logits(adv).numpy(), 1)
    single = [pgd_attack(logits, x, y, epsilon=0.4, num_steps=1, step_size=0.05, seed=0)]
    assert np.mean(predicted != y) >= np.mean(np.argmax(logits(single[0]).numpy(), 1) != y)


def test_missing_input_gradient_is_an_error(cnn):
    model, _ = cnn

    def rounding(images):
        return model(tf.round(images * 8) / 8)

    with pytest.raises(ValueError, match="model has no gradient with respect to its input"):
        pgd_attack(rounding, _images(), np.arange(12) % 5, epsilon=0.1)


def test_editing_the_last_activation_is_noticed(cnn):
    _, twin = cnn
    model = keras.models.clone_model(twin)
    model.set_weights(twin.get_weights())
    x, y = _images(), np.arange(12) % 5
    kwargs = {"epsilon": 0.1, "num_steps": 3, "step_size": 0.03, "loss": "margin", "seed": 1}
    before = pgd_attack(model, x, y, **kwargs).numpy()
    first = compiled_attack(model, training_flag=True, soft_label=False, norm=np.inf,
                            loss="margin", targeted=False, random_init=True, momentum=False,
                            restarts=1)
    model.layers[-1].activation = keras.activations.linear  # now a logits model
    again = compiled_attack(model, training_flag=True, soft_label=False, norm=np.inf,
                            loss="margin", targeted=False, random_init=True, momentum=False,
                            restarts=1)
    assert again is not first
    np.testing.assert_allclose(pgd_attack(model, x, y, **kwargs).numpy(), before, atol=1e-6)
    model.layers[-1].activation = keras.activations.relu  # a different model now
    after = pgd_attack(model, x, y, **kwargs).numpy()
    assert not np.allclose(after, before)
    clear_cache(model)
    np.testing.assert_array_equal(pgd_attack(model, x, y, **kwargs).numpy(), after)
