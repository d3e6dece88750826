"""The fixed small models whose outputs the grading references store.

Architectures are code; weights are stored in ``data_stubs/references/models/<name>.npz`` (one
array per weight, in ``model.get_weights()`` order) and are the source of truth: regenerating the
references never retrains, so it is deterministic. ``--new-weights`` makes fresh ones.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from data_stubs.files import write_atomic
from data_stubs.grading import REFERENCE_DIR

MODEL_DIR = REFERENCE_DIR / "models"


def build_digits_cnn():
    """Digits CNN returning logits: conv(8)-conv(16)-maxpool-dense(32)-dense(10) on 8x8x1."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((8, 8, 1)),
        layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
        layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
        layers.MaxPooling2D(2, name="pool"),
        layers.Flatten(name="flatten"),
        layers.Dense(32, activation="relu", name="fc"),
        layers.Dense(10, name="logits"),
    ], name="reference_digits_cnn")


def build_small_unet():
    """The segmentation U-Net of assignment 2 at toy size: depth 2, 4 base filters, bilinear
    upsampling, context on."""
    from assignment2.model import build_unet

    return build_unet(depth=2, base_filters=4, upsampling="bilinear", context=True,
                      name="reference_unet")


BUILDERS = {"digits_cnn": build_digits_cnn, "small_unet": build_small_unet}


def _train_digits_cnn(model) -> None:
    import keras

    from data_stubs.digits import load_digits

    keras.utils.set_random_seed(0)
    data = load_digits()
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=15, batch_size=64, verbose=0)


def create_weights(name: str, model_dir: Path = MODEL_DIR) -> Path:
    """Builds model ``name`` afresh (the digits CNN trained briefly), stores its weights."""
    import keras

    keras.utils.set_random_seed(0)
    model = BUILDERS[name]()
    if name == "digits_cnn":
        _train_digits_cnn(model)
    weights = [np.asarray(w, np.float32) for w in model.get_weights()]
    return write_atomic(model_dir / f"{name}.npz", lambda tmp: np.savez_compressed(tmp, *weights))


def stored_weights(name: str, model_dir: Path = MODEL_DIR) -> list[np.ndarray]:
    """The stored weights of model ``name``, in ``model.get_weights()`` order."""
    path = model_dir / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"reference model weights {path} are missing: create them with "
                                "`python -m data_stubs.references --regenerate --new-weights`")
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


@functools.cache
def load_reference_model(name: str, model_dir: Path = MODEL_DIR):
    """Model ``name`` with its stored weights (cached: the models are never modified)."""
    model = BUILDERS[name]()
    model.set_weights(stored_weights(name, model_dir))
    return model
