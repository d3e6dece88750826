"""Sanity checks for saliency maps (Adebayo et al., NeurIPS 2018, "Sanity Checks for Saliency
Maps"): does a map change when what the model learned is destroyed?

* Model randomisation: re-initialise the weights layer by layer from the output down
  (``"cascading"``, cumulative) or one layer at a time (``"independent"``), and compare each map
  with the trained model's map by the Spearman rank correlation. A map that explains the model
  must decorrelate; one that stays similar (guided backpropagation, known failure) mostly shows
  the image.
* Data randomisation: compare the maps of the model with those of the same architecture trained
  on permuted labels (:func:`load_random_label_cnn`), which can only have memorised.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
import scipy.stats
import tensorflow as tf

from data_stubs.files import write_atomic, write_bytes_atomic
from visualization._model import all_layers, as_image_batch
from visualization.ascent import check_int
from visualization.attribution import resolve_classes, sample_gradients
from visualization.digits_model import build_digits_cnn, default_cache_dir

MODES = ("cascading", "independent")
RANDOM_LABEL_MODEL = "digits_cnn_random_labels.keras"
RANDOM_LABEL_INFO = "digits_cnn_random_labels.json"
RANDOM_LABEL_VERSION = 1


# ---------------------------------------------------------------------------------------------
# The methods under test
# ---------------------------------------------------------------------------------------------
def _saliency(model, x, classes, preprocess):
    from visualization.saliency import saliency_map
    return saliency_map(model, x, classes, **_extra(preprocess))


def _guided(model, x, classes, preprocess):
    from visualization.guided import guided_backprop
    return guided_backprop(model, x, classes, **_extra(preprocess))


def _gradient_x_input(model, x, classes, preprocess):
    gradient, _ = sample_gradients(model, x, tf.constant(classes, tf.int32), kind="path",
                                   weights=[1.0], alphas=[1.0], references=x, batch_size=256,
                                   preprocess=preprocess)
    return x.numpy() * gradient


def _integrated(model, x, classes, preprocess):
    from visualization.integrated_gradients import integrated_gradients
    return integrated_gradients(model, x, classes, steps=32, preprocess=preprocess)


def _smooth(model, x, classes, preprocess):
    from visualization.smoothgrad import smoothgrad
    return smoothgrad(model, x, classes, method="saliency", num_samples=16, noise_level=0.15,
                      preprocess=preprocess)


def _cam(model, x, classes, preprocess):
    from visualization.gradcam import grad_cam
    return grad_cam(model, x, classes, **_extra(preprocess))


def _cam_pp(model, x, classes, preprocess):
    from visualization.gradcam import grad_cam_plus_plus
    return grad_cam_plus_plus(model, x, classes, preprocess=preprocess)


def _extra(preprocess) -> dict:
    """``preprocess`` as a keyword only when given (every method accepts it then)."""
    return {} if preprocess is None else {"preprocess": preprocess}


# name -> function(model, images, classes, preprocess) -> maps
METHODS: dict[str, Callable] = {
    "saliency": _saliency,
    "guided_backprop": _guided,
    "gradient_x_input": _gradient_x_input,
    "integrated_gradients": _integrated,
    "smoothgrad": _smooth,
    "grad_cam": _cam,
    "grad_cam_plus_plus": _cam_pp,
}


def _resolve_methods(methods) -> dict[str, Callable]:
    """Names of :data:`METHODS` and/or a mapping ``name -> function(model, x, classes,
    preprocess)``."""
    if isinstance(methods, Mapping):
        bad = [name for name, fn in methods.items() if not callable(fn)]
        if bad:
            raise TypeError(f"methods must map names to callables, got non-callables for {bad}")
        return dict(methods)
    if isinstance(methods, str) or not isinstance(methods, Sequence) or not methods:
        raise TypeError(f"methods must be a non-empty list of names or a dict of callables, got "
                        f"{methods!r}")
    unknown = [name for name in methods if name not in METHODS]
    if unknown:
        raise ValueError(f"methods: unknown {unknown}; available: {list(METHODS)}")
    return {name: METHODS[name] for name in methods}


# ---------------------------------------------------------------------------------------------
# Similarity
# ---------------------------------------------------------------------------------------------
def rank_correlation(maps_a, maps_b, *, absolute: bool = True) -> np.ndarray:
    """Spearman rank correlation of each pair of maps (Adebayo et al. Fig. 2 and 4).

    Colour maps ``(N, H, W, C)`` are first summed over channels; ``absolute`` then compares
    ``|map|`` (the paper's "absolute value" panels), otherwise the signed map.

    Args:
        maps_a, maps_b: ``(N, H, W)`` or ``(N, H, W, C)``, the same shape.
        absolute: compare absolute values.

    Returns:
        ``(N,)`` float64 in [-1, 1]; NaN where a map is constant (no ranking to compare).
    """
    a, b = _as_maps(maps_a, "maps_a"), _as_maps(maps_b, "maps_b")
    if a.shape != b.shape:
        raise ValueError(f"maps_a and maps_b must have the same shape, got {np.shape(maps_a)} "
                         f"and {np.shape(maps_b)}")
    if absolute:
        a, b = np.abs(a), np.abs(b)
    ra = scipy.stats.rankdata(a.reshape(len(a), -1), axis=1)
    rb = scipy.stats.rankdata(b.reshape(len(b), -1), axis=1)
    ra, rb = ra - ra.mean(axis=1, keepdims=True), rb - rb.mean(axis=1, keepdims=True)
    norm = np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, (ra * rb).sum(axis=1) / norm, np.nan)


def _as_maps(maps, name: str) -> np.ndarray:
    values = np.asarray(maps, dtype=np.float64)
    if values.ndim == 4:
        values = values.sum(axis=-1)
    if values.ndim != 3:
        raise ValueError(f"{name} must be (N, H, W) or (N, H, W, C) maps, got shape "
                         f"{np.shape(maps)}")
    return values


# ---------------------------------------------------------------------------------------------
# Model randomisation
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SanityResult:
    """Maps and their similarity to the reference (trained model) maps, stage by stage.

    Attributes:
        stages: names; ``stages[0]`` is the reference (``"trained"``), then the randomised
            layers (output first) or ``"random labels"``.
        maps: ``method -> (S, N, ...)`` maps at each stage.
        spearman_abs: ``method -> (S, N)`` rank correlation of ``|map|`` with the reference.
        spearman: ``method -> (S, N)`` rank correlation of the signed maps.
        mode: ``"cascading"``, ``"independent"`` or ``"labels"``.
    """

    stages: list
    maps: dict
    spearman_abs: dict
    spearman: dict
    mode: str

    def curve(self, method: str, absolute: bool = True) -> np.ndarray:
        """Mean rank correlation over the images at each stage, ``(S,)`` (NaNs ignored)."""
        values = (self.spearman_abs if absolute else self.spearman)[method]
        return np.array([np.nanmean(row) if np.any(np.isfinite(row)) else np.nan
                         for row in values])


def randomization_stages(model) -> list[str]:
    """Names of the layers with weights, from the output down (the cascading order)."""
    leaves = [layer for layer in all_layers(model) if not getattr(layer, "layers", None)]
    return [layer.name for layer in reversed(leaves) if layer.weights]


def _clone(model):
    try:
        copy = keras.models.clone_model(model)
    except Exception as err:  # noqa: BLE001 -- any failure means "cannot copy this model"
        raise ValueError(f"model: sanity checks randomise a copy of the model, and "
                         f"{type(model).__name__} cannot be cloned with keras.models.clone_model "
                         f"({err}); pass a Sequential or Functional Keras model") from err
    copy.set_weights(model.get_weights())
    return copy


def _initializer_for(layer, variable):
    """The layer's own initializer of this variable (``kernel_initializer`` for ``kernel``...)."""
    name = variable.path.split("/")[-1] if hasattr(variable, "path") else variable.name
    name = name.split(":")[0]
    candidates = [f"{name}_initializer", f"{name.replace('_kernel', '')}_initializer"]
    for attribute in candidates:
        initializer = getattr(layer, attribute, None)
        if initializer is not None:
            return initializer
    return None


def randomize_layer(layer, seed: int) -> None:
    """Re-initialise every weight of ``layer`` in place with its own initializer, seeded.

    Weights without an initializer attribute are redrawn from a normal with their own mean and
    standard deviation (the truncated-normal re-initialisation of Adebayo et al.).
    """
    rng = np.random.default_rng(seed)
    for i, variable in enumerate(layer.weights):
        initializer = _initializer_for(layer, variable)
        shape, dtype = tuple(variable.shape), variable.dtype
        if initializer is not None:
            config = initializer.get_config()
            if "seed" in config:
                config["seed"] = int(rng.integers(2**31 - 1))
            value = type(initializer).from_config(config)(shape, dtype=dtype)
        else:
            current = np.asarray(variable.numpy())
            value = rng.normal(current.mean(), current.std() or 1.0, shape)
        variable.assign(np.asarray(value, dtype=np.asarray(variable.numpy()).dtype))


def model_randomization(model, images, methods=("saliency", "guided_backprop"),
                        class_index=None, *, mode: str = "cascading", layers=None,
                        seed: int = 0, preprocess=None) -> SanityResult:
    """Model-parameter randomisation test (Adebayo et al. 2018, section 3.1).

    The maps of the trained model are the reference. Then, for each layer with weights from
    the output down, a copy of the model has that layer re-initialised (``"cascading"``: on top
    of the layers above; ``"independent"``: that layer only) and every method is run again on
    the same images and classes (fixed on the trained model). The caller's model is not changed.

    Args:
        model: Sequential or Functional Keras model (it is cloned).
        images: ``(N, H, W, C)``.
        methods: names from :data:`METHODS` or a dict ``name -> f(model, images, classes,
            preprocess) -> maps``.
        class_index: ``None`` (predicted by the trained model), an int, or one per example.
        mode: ``"cascading"`` or ``"independent"``.
        layers: names of the layers to randomise, in order; default
            :func:`randomization_stages`.
        seed: seed of the re-initialisation.
        preprocess: passed to every method.

    Returns:
        :class:`SanityResult` with stages ``["trained", *layers]``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    check_int("seed", seed, minimum=0)
    functions = _resolve_methods(methods)
    x = as_image_batch(images, model)
    classes = resolve_classes(model, x, class_index, preprocess=preprocess).numpy()
    copy = _clone(model)
    names = _check_layers(copy, layers)
    by_name = {layer.name: layer for layer in all_layers(copy)}
    trained = copy.get_weights()
    maps = {name: [np.asarray(fn(copy, x, classes, preprocess))] for name, fn in
            functions.items()}
    for k, layer_name in enumerate(names):
        if mode == "independent":
            copy.set_weights(trained)
        randomize_layer(by_name[layer_name], seed + k)
        for name, fn in functions.items():
            maps[name].append(np.asarray(fn(copy, x, classes, preprocess)))
    return _result(["trained", *names], maps, mode)


def _check_layers(model, layers) -> list[str]:
    available = randomization_stages(model)
    if layers is None:
        return available
    if isinstance(layers, str):
        layers = [layers]
    unknown = [name for name in layers if name not in available]
    if unknown:
        raise ValueError(f"layers: {unknown} are not layers with weights of the model; "
                         f"available: {available}")
    return list(layers)


def _result(stages, maps, mode) -> SanityResult:
    stacked = {name: np.stack(values) for name, values in maps.items()}
    spearman_abs = {name: np.stack([rank_correlation(v[0], s) for s in v])
                    for name, v in stacked.items()}
    spearman = {name: np.stack([rank_correlation(v[0], s, absolute=False) for s in v])
                for name, v in stacked.items()}
    return SanityResult(stages, stacked, spearman_abs, spearman, mode)


def label_randomization(model, random_label_model, images,
                        methods=("saliency", "guided_backprop"), class_index=None, *,
                        preprocess=None) -> SanityResult:
    """Data randomisation test (Adebayo et al. 2018, section 3.2).

    Compares each method's maps on ``model`` with its maps on the same architecture trained on
    permuted labels (e.g. :func:`load_random_label_cnn`), for the same images and classes
    (fixed by ``model``).

    Returns:
        :class:`SanityResult` with stages ``["trained", "random labels"]``.
    """
    functions = _resolve_methods(methods)
    x = as_image_batch(images, model)
    as_image_batch(images, random_label_model, name="images (for random_label_model)")
    classes = resolve_classes(model, x, class_index, preprocess=preprocess).numpy()
    maps = {name: [np.asarray(fn(m, x, classes, preprocess)) for m in (model, random_label_model)]
            for name, fn in functions.items()}
    return _result(["trained", "random labels"], maps, "labels")


# ---------------------------------------------------------------------------------------------
# The digits CNN trained on permuted labels
# ---------------------------------------------------------------------------------------------
def train_random_label_cnn(*, epochs: int = 40, train_size: int = 500, seed: int = 0,
                           verbose: int = 0) -> tuple[keras.Model, float]:
    """The digits CNN architecture trained to memorise permuted labels.

    The first ``train_size`` training digits get their labels shuffled by a seeded
    permutation (so the label distribution is kept and any image-label relation destroyed);
    training is the digits CNN's (Adam 3e-3, batch 64, numpy shuffling).

    Returns:
        ``(model, train_accuracy)`` on the permuted labels (memorisation; test accuracy is at
        chance).
    """
    check_int("epochs", epochs, minimum=1)
    check_int("train_size", train_size, minimum=1)
    from data_stubs.digits import load_digits

    data = load_digits(image_size=28)
    x = data.x_train[:train_size]
    rng = np.random.default_rng(seed)
    y = rng.permutation(data.y_train[:train_size])
    model = build_digits_cnn(seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    for _ in range(epochs):
        perm = rng.permutation(len(x))
        model.fit(x[perm], y[perm], batch_size=64, epochs=1, shuffle=False, verbose=verbose)
    accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))
    return model, accuracy


def load_random_label_cnn(cache_dir: str | os.PathLike | None = None, *, retrain: bool = False,
                          epochs: int = 40, train_size: int = 500, seed: int = 0
                          ) -> keras.Model:
    """:func:`train_random_label_cnn`, cached beside the digits CNN (atomic writes).

    The cache holds ``digits_cnn_random_labels.keras`` and ``.json`` (config and the
    memorisation accuracy) in ``cache_dir`` (default ``$CNN_COURSE_CACHE`` or
    ``~/.cache/cnn-course``); a missing, unreadable or differently configured cache is
    retrained.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    config = {"version": RANDOM_LABEL_VERSION, "epochs": epochs, "train_size": train_size,
              "seed": seed}
    model_path, info_path = folder / RANDOM_LABEL_MODEL, folder / RANDOM_LABEL_INFO
    if not retrain:
        try:
            info = json.loads(info_path.read_text())
            if all(info.get(key) == value for key, value in config.items()):
                return keras.saving.load_model(model_path)
        except Exception:  # noqa: BLE001 -- a missing or corrupt cache means "train again"
            pass
    model, accuracy = train_random_label_cnn(epochs=epochs, train_size=train_size, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(model_path, model.save)
    write_bytes_atomic(info_path, json.dumps({**config, "train_accuracy": accuracy},
                                             indent=2).encode())
    return model
