"""The fixed small models whose outputs the grading references store.

Architectures are code; weights are stored in ``data_stubs/references/models/<name>.npz`` (one
array per weight, in ``model.get_weights()`` order) and are the source of truth: regenerating the
references never retrains, so it is deterministic. ``--new-weights NAME`` makes fresh ones.

- ``digits_cnn``: 8x8 grey digits -> 10 logits (conv-conv-pool-dense-dense), trained.
- ``rgb_cnn``: 16x16 coloured digits -> 10 logits with batch normalisation and dropout, trained:
  an implementation that calls it with ``training=True`` (batch statistics, random dropout) or
  that mixes up its channels gives other numbers; its Grad-CAM layer is half the image's size.
- ``tta_net``: a fully convolutional 3-class softmax segmenter (random weights: TTA averaging
  needs a model that is not rotation invariant, not a good one).
- ``small_unet``: assignment 2's U-Net at toy size with perturbed weights (the freshly built
  context module is the identity and batch normalisation a no-op; graded weights must make wrong
  dilations or a misplaced normalisation visible).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from data_stubs.files import write_atomic
from data_stubs.grading.reference_files import REFERENCE_DIR

MODEL_DIR = REFERENCE_DIR / "models"
RGB_SIZE = 16


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


def build_rgb_cnn():
    """Coloured-digits CNN returning logits, 16x16x3: conv-BN-ReLU-pool-conv(ReLU)-dropout-dense."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((RGB_SIZE, RGB_SIZE, 3)),
        layers.Conv2D(8, 3, padding="same", name="conv1"),
        layers.BatchNormalization(name="bn1"),
        layers.ReLU(name="relu1"),
        layers.MaxPooling2D(2, name="pool1"),
        layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
        layers.MaxPooling2D(2, name="pool2"),
        layers.Flatten(name="flatten"),
        layers.Dropout(0.3, name="dropout"),
        layers.Dense(10, name="logits"),
    ], name="reference_rgb_cnn")


def build_tta_net():
    """Fully convolutional 3-class segmenter returning softmax probabilities, any H x W x 3."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((None, None, 3)),
        layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
        layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2"),
        layers.Conv2D(3, 1, activation="softmax", name="probabilities"),
    ], name="reference_tta_net")


#: The U-Net's graded configuration (``build_unet`` keyword arguments).
SMALL_UNET_CONFIG = {"depth": 2, "base_filters": 4, "upsampling": "bilinear", "context": True}


def build_small_unet():
    """Assignment 2's U-Net at toy size (:data:`SMALL_UNET_CONFIG`)."""
    from assignment2.model import build_unet

    return build_unet(**SMALL_UNET_CONFIG, name="reference_unet")


BUILDERS = {"digits_cnn": build_digits_cnn, "rgb_cnn": build_rgb_cnn,
            "tta_net": build_tta_net, "small_unet": build_small_unet}
#: Models the grader builds itself in the sandbox (plain Keras layers; no package code needed).
KERAS_ONLY = ("digits_cnn", "rgb_cnn", "tta_net")


def colour_digits(images: np.ndarray, seed: int) -> np.ndarray:
    """Grey digits -> RGB: a random ink and paper colour per image, so every channel matters.

    ``x_rgb = d * ink + (1 - d) * paper`` with ``ink ~ U(0.5, 1)^3``, ``paper ~ U(0, 0.3)^3``.
    """
    rng = np.random.default_rng(seed)
    n = len(images)
    ink = rng.uniform(0.5, 1.0, size=(n, 1, 1, 3))
    paper = rng.uniform(0.0, 0.3, size=(n, 1, 1, 3))
    return (images * ink + (1.0 - images) * paper).astype(np.float32)


def _train_classifier(model, x, y, epochs: int) -> None:
    import keras

    keras.utils.set_random_seed(0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)


def _perturb(model, scale: float = 0.3) -> None:
    """Seeded noise on every weight; moving variances stay positive."""
    rng = np.random.default_rng(0)
    for weight in model.weights:
        value = np.asarray(weight.numpy(), np.float64)
        noise = rng.normal(size=value.shape) * scale * max(float(value.std()), 0.1)
        if "moving_variance" in weight.path:
            value = np.abs(value + noise) + 0.1
        else:
            value = value + noise
        weight.assign(value.astype(np.float32))


def create_weights(name: str, model_dir: Path = MODEL_DIR) -> Path:
    """Builds model ``name`` afresh (classifiers trained briefly, the U-Net perturbed), stores it."""
    import keras

    from data_stubs.digits import load_digits

    keras.utils.set_random_seed(0)
    model = BUILDERS[name]()
    if name == "digits_cnn":
        data = load_digits()
        _train_classifier(model, data.x_train, data.y_train, epochs=15)
    elif name == "rgb_cnn":
        data = load_digits(image_size=RGB_SIZE)
        _train_classifier(model, colour_digits(data.x_train, seed=1), data.y_train, epochs=10)
    elif name == "small_unet":
        _perturb(model)
    weights = [np.asarray(w, np.float32) for w in model.get_weights()]
    return write_atomic(model_dir / f"{name}.npz", lambda tmp: np.savez_compressed(tmp, *weights))


def stored_weights(name: str, model_dir: Path = MODEL_DIR) -> list[np.ndarray]:
    """The stored weights of model ``name``, in ``model.get_weights()`` order."""
    path = Path(model_dir) / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"reference model weights {path} are missing: this installation "
                                "is incomplete (reinstall the package)")
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


class ModelSource:
    """Fresh copies of the fixed models: every graded call gets its own, so nothing a function
    does to its model (new weights, a patched layer) reaches another case.

    Args:
        names: models to serve; their weights are read once, here (the sandbox reads them before
            it closes the reference folder).
        model_dir: where the weights are.
    """

    def __init__(self, names=KERAS_ONLY, model_dir: Path = MODEL_DIR):
        self._weights = {name: stored_weights(name, model_dir) for name in names}

    def weights(self, name: str) -> list[np.ndarray]:
        """Copies of model ``name``'s stored weights."""
        return [w.copy() for w in self._weights[name]]

    def fresh(self, name: str):
        """A newly built model ``name`` with its stored weights."""
        model = BUILDERS[name]()
        model.set_weights(self.weights(name))
        return model


@functools.cache
def load_reference_model(name: str, model_dir: Path = MODEL_DIR):
    """Model ``name`` with its stored weights (cached: for interactive use; graders use
    :class:`ModelSource`, which builds a fresh copy per call)."""
    model = BUILDERS[name]()
    model.set_weights(stored_weights(name, model_dir))
    return model
