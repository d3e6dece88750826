"""Tiny deterministic models of the attack tests, and numpy references of their gradients."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from data_stubs.digits import load_digits


def two_class_linear(w, b=0.0):
    """Plain function ``x -> [0, w.x + b]``: softmax gives ``P(y=1) = sigma(w.x + b)``."""
    import tensorflow as tf

    w = tf.constant(np.asarray(w, np.float32))

    def logits(x):
        score = tf.reduce_sum(tf.reshape(x, [tf.shape(x)[0], -1]) * w, axis=1) + b
        return tf.stack([tf.zeros_like(score), score], axis=1)

    return logits


class NumpyMLP:
    """``z = tanh(x W1 + b1) W2 + b2`` with its CE input gradient in float64 (the reference)."""

    def __init__(self, rng, d=6, hidden=5, classes=3):
        self.w1, self.b1 = rng.normal(size=(d, hidden)), rng.normal(size=hidden) * 0.1
        self.w2, self.b2 = rng.normal(size=(hidden, classes)), rng.normal(size=classes) * 0.1

    def keras_model(self):
        model = keras.Sequential([keras.Input((self.w1.shape[0],)),
                                  keras.layers.Dense(self.w1.shape[1], activation="tanh"),
                                  keras.layers.Dense(self.w2.shape[1])])
        model.set_weights([self.w1, self.b1, self.w2, self.b2])
        return model

    def logits(self, x):
        return np.tanh(x @ self.w1 + self.b1) @ self.w2 + self.b2

    def ce_gradient(self, x, labels):
        """``d CE(z(x_i), y_i) / d x_i`` per example."""
        hidden = np.tanh(x @ self.w1 + self.b1)
        z = hidden @ self.w2 + self.b2
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        dz = p - np.eye(z.shape[1])[labels]
        return ((dz @ self.w2.T) * (1 - hidden**2)) @ self.w1.T


@pytest.fixture()
def numpy_mlp():
    return NumpyMLP(np.random.default_rng(7))


@pytest.fixture(scope="session")
def digits():
    return load_digits()


@pytest.fixture(scope="session")
def digits_mlp(digits):
    """A small MLP on the 8x8 digits (about 97% test accuracy); tests must not train it."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(digits.x_train, digits.y_train, epochs=10, batch_size=64, verbose=0)
    return model


@pytest.fixture()
def test_batch(digits):
    return digits.x_test[:64], digits.y_test[:64]


@pytest.fixture()
def dropout_bn_model():
    """Dense -> BatchNorm -> Dropout(0.5) -> Dense, with non-trivial moving statistics."""
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(16), keras.layers.BatchNormalization(),
                              keras.layers.Dropout(0.5), keras.layers.Dense(10)])
    bn = model.layers[2]
    bn.moving_mean.assign(np.linspace(-0.5, 0.5, 16).astype(np.float32))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 16).astype(np.float32))
    return model
