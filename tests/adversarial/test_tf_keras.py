"""A tf-keras (Keras 2) model is attacked and visualised exactly like its Keras 3 twin."""

import keras
import numpy as np
import tf_keras

from adversarial import fgsm_attack, mim_attack, pgd_attack
from visualization import saliency_map


def _twins():
    """The same CNN with the same weights, once in tf-keras and once in Keras 3."""
    old = tf_keras.Sequential([
        tf_keras.layers.Input((8, 8, 1)),
        tf_keras.layers.Conv2D(4, 3, activation="relu"),
        tf_keras.layers.Flatten(),
        tf_keras.layers.Dropout(0.5),  # must be off: attacks call the model in inference mode
        tf_keras.layers.Dense(10),
    ])
    new = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10),
    ])
    new.set_weights(old.get_weights())
    return old, new


def test_tf_keras_model_gives_the_same_attacks_as_its_keras3_twin():
    old, new = _twins()
    x = np.random.default_rng(0).random((6, 8, 8, 1)).astype(np.float32)
    y = np.arange(6)
    weights = [w.copy() for w in old.get_weights()]
    for attack, kwargs in [(fgsm_attack, {"epsilon": 0.1}),
                           (pgd_attack, {"epsilon": 0.1, "num_steps": 5, "step_size": 0.03,
                                         "seed": 0}),
                           (mim_attack, {"epsilon": 0.1, "num_steps": 5, "step_size": 0.03,
                                         "random_init": False})]:
        adv_old = np.asarray(attack(old, x, y, **kwargs))
        np.testing.assert_allclose(adv_old, np.asarray(attack(new, x, y, **kwargs)), atol=1e-6)
        assert np.abs(adv_old - x).max() <= 0.1 + 1e-6
    for before, after in zip(weights, old.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_tf_keras_model_saliency_matches_its_keras3_twin():
    old, new = _twins()
    x = np.random.default_rng(1).random((3, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(saliency_map(old, x), saliency_map(new, x), rtol=1e-5, atol=1e-7)
