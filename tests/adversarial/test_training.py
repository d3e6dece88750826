"""PGD adversarial training: it raises robust accuracy; Keras fit machinery; the batch loss."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from adversarial import AdversarialTraining, pgd_attack


def _mlp():
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])


def _robust_accuracy(model, x, y, eps=0.1):
    x_adv = pgd_attack(model, x, y, epsilon=eps, num_steps=10, step_size=eps / 4, seed=0)
    return float(np.mean(np.argmax(model(x_adv), 1) == y))


def test_adversarial_training_raises_robust_accuracy(digits, digits_mlp):
    x, y = digits.x_test[:300], digits.y_test[:300]
    keras.utils.set_random_seed(0)
    trained = _mlp()
    trainer = AdversarialTraining(trained, epsilon=0.1, num_steps=5, step_size=0.03, seed=0)
    trainer.compile(optimizer=keras.optimizers.Adam(0.01), metrics=["accuracy"])
    history = trainer.fit(digits.x_train, digits.y_train, epochs=6, batch_size=64, verbose=0,
                          validation_data=(x, y))
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history.history)
    clean = float(np.mean(np.argmax(trained(x), 1) == y))
    standard, robust = _robust_accuracy(digits_mlp, x, y), _robust_accuracy(trained, x, y)
    assert clean >= 0.9, clean
    assert robust >= standard + 0.2, (standard, robust)  # measured: about 0.40 -> 0.75


def test_fgsm_training_on_predicted_labels_trains_and_saves(digits, tmp_path):
    x, y = digits.x_train[:192], digits.y_train[:192]
    model = _mlp()
    trainer = AdversarialTraining(model, attack="fgsm", labels="predicted", epsilon=0.1)
    trainer.compile(optimizer=keras.optimizers.Adam(0.01), metrics=["accuracy"])
    history = trainer.fit(x, y, epochs=2, batch_size=64, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(trainer.predict(x[:5], verbose=0), model(x[:5]), atol=1e-5)
    path = tmp_path / "pgd_trained.keras"
    trainer.model.save(path)  # the wrapped model is an ordinary Keras model
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(restored(x[:4]), model(x[:4]), atol=1e-6)


def test_train_step_loss_is_clean_plus_adversarial_mean_ce(digits):
    x, y = digits.x_train[:32], digits.y_train[:32]
    model = _mlp()
    trainer = AdversarialTraining(model, epsilon=0.1, num_steps=3, step_size=0.05, seed=2)
    trainer.compile(optimizer=keras.optimizers.SGD(0.0))  # learning rate 0: weights stay
    x_adv = trainer.adversarial_examples(tf.constant(x), tf.constant(y))
    assert np.abs(x_adv.numpy() - x).max() <= 0.1 + 1e-6
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    logs = trainer.train_on_batch(x, y, return_dict=True)
    clean_loss = float(ce(y, model(x)))
    # the batch loss adds a mean CE on adversarial points: more than the clean mean, at most
    # the clean mean plus the mean CE of the strongest point of the ball PGD could find
    assert clean_loss + float(ce(y, model(x_adv))) * 0.5 < logs["loss"]
    strongest = pgd_attack(model, x, y, epsilon=0.1, num_steps=20, step_size=0.02, restarts=3,
                           seed=0)
    assert logs["loss"] <= clean_loss + float(ce(y, model(strongest))) + 1e-3


@pytest.mark.parametrize("labels", ["true", "predicted"])
def test_attack_of_train_step_is_pgd_on_true_or_predicted_labels(digits_mlp, test_batch, labels):
    x, y = test_batch
    wrong = (y + 1) % 10
    trainer = AdversarialTraining(digits_mlp, epsilon=0.1, num_steps=4, step_size=0.03,
                                  random_init=False, labels=labels)
    x_adv = trainer.adversarial_examples(tf.constant(x), tf.constant(y if labels == "true"
                                                                     else wrong))
    kwargs = {"epsilon": 0.1, "num_steps": 4, "step_size": 0.03, "random_init": False}
    expected = (pgd_attack(digits_mlp, x, y, **kwargs) if labels == "true"
                else pgd_attack(digits_mlp, x, None, soft_label=True, **kwargs))
    np.testing.assert_allclose(x_adv.numpy(), expected.numpy(), atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"attack": "cw"}, "attack must be one of .*got 'cw'"),
    ({"labels": "soft"}, "labels must be one of .*got 'soft'"),
    ({"epsilon": -1}, "epsilon must be >= 0.0, got -1"),
    ({"step_size": 0}, "step_size must be > 0.0, got 0"),
    ({"num_steps": 0}, "num_steps must be >= 1, got 0"),
    ({"clip_value_min": 2.0}, "clip_value_min must be <= clip_value_max"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdversarialTraining(_mlp(), **kwargs)
    with pytest.raises(TypeError, match="model must be a keras.Model"):
        AdversarialTraining(lambda x: x)
