"""The default model of the visualisation lectures: a small CNN on 28x28 handwritten digits.

Every visualisation runs offline on this network. It is trained on first use on
:func:`data_stubs.digits.load_digits` (scikit-learn's digits, upsampled to 28x28; 3-15 s on 2 CPU
cores depending on their load, test accuracy 97.8%), saved atomically as a ``.keras`` file in the cache folder
(``$CNN_COURSE_CACHE``, default ``~/.cache/cnn-course``) and loaded from there afterwards.

Architecture (layer names are part of the interface; the CLI and the README use them)::

    input    (28, 28, 1)
    conv1    Conv2D(8, 3x3, same, relu)      -> (28, 28, 8)    receptive field 3
    pool1    MaxPooling2D(2)                 -> (14, 14, 8)    receptive field 4
    conv2    Conv2D(16, 3x3, same)           -> (14, 14, 16)   receptive field 8
    relu2    ReLU()                          -> (14, 14, 16)
    pool2    MaxPooling2D(2)                 -> (7, 7, 16)     receptive field 10
    conv3    Conv2D(32, 3x3, same, relu)     -> (7, 7, 32)     receptive field 18
    flatten  Flatten()                       -> (1568,)
    fc       Dense(64, relu)                 -> (64,)          the "code" before the classifier
    predictions Dense(10, softmax)           -> (10,)

The final softmax is fused into the Dense layer on purpose: the visualisations take scores before
it (see :func:`visualization._model.logits_model`), and this model exercises that path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np

from data_stubs.files import write_atomic, write_bytes_atomic

CACHE_ENV = "CNN_COURSE_CACHE"
MODEL_FILENAME = "digits_cnn.keras"
INFO_FILENAME = "digits_cnn.json"
FORMAT_VERSION = 2  # 2: numpy shuffling, independent of TensorFlow's global seed
DEFAULT_EPOCHS = 12
IMAGE_SIZE = 28
NUM_CLASSES = 10
CONV_LAYERS = ("conv1", "conv2", "conv3")
CODE_LAYER = "fc"


def default_cache_dir() -> Path:
    """``$CNN_COURSE_CACHE`` if set, else ``~/.cache/cnn-course``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cnn-course")


def build_digits_cnn(seed: int = 0) -> keras.Model:
    """The untrained digits CNN (see the module docstring for the layer table).

    Args:
        seed: seed of the (Glorot uniform) kernel initialisers, so two builds are identical.

    Returns:
        A functional Keras model mapping ``(N, 28, 28, 1)`` images in [0, 1] to class
        probabilities ``(N, 10)``, uncompiled.
    """
    init = keras.initializers.GlorotUniform

    def conv(filters, name, activation, k):
        return keras.layers.Conv2D(filters, 3, padding="same", activation=activation, name=name,
                                   kernel_initializer=init(seed + k))

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="image")
    x = conv(8, "conv1", "relu", 1)(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = conv(16, "conv2", None, 2)(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = conv(32, "conv3", "relu", 3)(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(64, activation="relu", name="fc", kernel_initializer=init(seed + 4))(x)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="predictions",
                                 kernel_initializer=init(seed + 5))(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def train_digits_cnn(*, epochs: int = DEFAULT_EPOCHS, train_size: int | None = None,
                     seed: int = 0, verbose: int = 0) -> tuple[keras.Model, float]:
    """Build and train the digits CNN with Adam (lr 3e-3, batch 64, cross-entropy).

    Args:
        epochs: passes over the training images (>= 1).
        train_size: use only the first ``train_size`` training images (reduced runs in tests);
            ``None`` uses all 1347.
        seed: seed of the initialisers and of the shuffling; the same seed gives the same model
            up to floating-point summation order.
        verbose: Keras ``fit`` verbosity.

    Returns:
        ``(model, test_accuracy)``, the accuracy on the 450 held-out digits, in [0, 1].
    """
    _check_positive_int(epochs, "epochs")
    if train_size is not None:
        _check_positive_int(train_size, "train_size")
    from data_stubs.digits import load_digits

    data = load_digits(image_size=IMAGE_SIZE)
    x_train, y_train = data.x_train[:train_size], data.y_train[:train_size]
    model = build_digits_cnn(seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # Shuffled by numpy, not by TensorFlow: TF's op seeds also depend on the global seed, so
    # the same `seed` would give another model in a process that called set_random_seed.
    order = np.random.default_rng(seed)
    for _ in range(int(epochs)):
        perm = order.permutation(len(x_train))
        model.fit(x_train[perm], y_train[perm], batch_size=64, epochs=1, shuffle=False,
                  verbose=verbose)
    probabilities = model.predict(data.x_test, batch_size=256, verbose=0)
    accuracy = float(np.mean(np.argmax(probabilities, axis=1) == data.y_test))
    return model, accuracy


def load_digits_cnn(cache_dir: str | os.PathLike | None = None, *, retrain: bool = False,
                    epochs: int = DEFAULT_EPOCHS, train_size: int | None = None,
                    seed: int = 0, verbose: int = 0) -> keras.Model:
    """The trained digits CNN: loaded from the cache, or trained and cached on first use.

    The cache holds ``digits_cnn.keras`` and ``digits_cnn.json`` (training config and test
    accuracy). The model is retrained when ``retrain`` is true, when the file is missing or
    unreadable, or when the cached config differs from the requested one. Both files are written
    atomically (temporary file in the same folder, then ``os.replace``), so concurrent first uses
    never see a half-written model.

    Args:
        cache_dir: folder of the cache; default ``$CNN_COURSE_CACHE`` or ``~/.cache/cnn-course``.
        retrain: train again even if a cached model exists.
        epochs, train_size, seed, verbose: see :func:`train_digits_cnn`.

    Returns:
        The Keras model, ``(N, 28, 28, 1)`` in [0, 1] -> probabilities ``(N, 10)``.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    config = {"version": FORMAT_VERSION, "epochs": epochs, "train_size": train_size, "seed": seed}
    model_path, info_path = folder / MODEL_FILENAME, folder / INFO_FILENAME
    if not retrain:
        model = _load_cached(model_path, info_path, config)
        if model is not None:
            return model
    model, accuracy = train_digits_cnn(epochs=epochs, train_size=train_size, seed=seed,
                                       verbose=verbose)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(model_path, model.save)
    info = json.dumps({**config, "test_accuracy": accuracy}, indent=2)
    write_bytes_atomic(info_path, info.encode())
    return model


def cached_test_accuracy(cache_dir: str | os.PathLike | None = None) -> float | None:
    """Test accuracy recorded when the cached model was trained, ``None`` if there is none."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        return float(json.loads((folder / INFO_FILENAME).read_text())["test_accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _load_cached(model_path: Path, info_path: Path, config: dict) -> keras.Model | None:
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or any(info.get(key) != value for key, value in config.items()):
        return None
    try:
        return keras.saving.load_model(model_path)
    except Exception:  # noqa: BLE001 -- a missing or corrupt cache file means "train again"
        return None


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
