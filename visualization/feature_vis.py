"""Feature visualisation that works on real networks (Olah, Mordvintsev & Schubert 2017,
"Feature Visualization", Distill; the Lucid library).

Plain pixel-space ascent on an ImageNet network gives high-frequency noise. Three changes make
the images readable:

1. **Fourier parameterisation**: the optimised parameters are the 2-D spectrum of the image,
   scaled by ``1 / max(f, 1/max(H, W))^decay_power`` (``f`` the frequency in cycles per pixel)
   and by ``sqrt(H W)``; the image is its inverse real FFT divided by 4 (Lucid's constants).
   Gradient steps then move low frequencies more than high ones (a whitening preconditioner).
2. **Colour decorrelation**: the three channels are mixed by the square root of ImageNet's
   colour correlation matrix (:data:`COLOR_CORRELATION_SVD_SQRT`, the values Lucid uses,
   normalised so its largest column has norm 1), then squashed by a sigmoid into [0, 1].
3. **Transformation robustness**: at every step each image is seen through a random similarity
   transform (jitter, scale, rotation, grey fill), so only features that survive small
   transformations are reinforced.

The objectives: a channel, a neuron ``(row, col, channel)``, a class logit, a direction in a
layer's channel space; one image per objective, optimised together as one batch on the shared
loop :func:`visualization.ascent.gradient_ascent` (the parameters are what it ascends; the map
parameters -> image -> transform -> model runs inside the objective), with Adam steps as in
Lucid. Adam moves every spectrum coefficient by about ``learning_rate`` per step, so the
``1 / f`` scale alone sets how much each frequency moves the image; a step normalised by the
mean ``|gradient|`` would apply that scale a second time (the low frequencies' gradients are
already ``1 / f`` larger) and overshoot: on a MobileNetV2 its very first step lowered a
class logit that Adam raises.

On a network with random weights only the shallow objectives survive transformation
robustness: the deep layers of an untrained MobileNetV2 change erratically under a 1-pixel
shift, so a class logit or a direction at ``out_relu`` averaged over random transforms hardly
moves (it rises steadily without transforms, ``transforms=NO_TRANSFORMS``). Trained networks
are smooth enough for the default transforms.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from visualization._model import feature_model, find_layer, logits_model
from visualization.ascent import (
    cached_objective,
    check_int,
    check_real,
    check_value_range,
    gradient_ascent,
    resolve_seed,
)

# sqrt of the ImageNet colour correlation matrix (rows: R, G, B), from Lucid
# (lucid/optvis/param/color.py, ``color_correlation_svd_sqrt``)
COLOR_CORRELATION_SVD_SQRT = np.array([[0.26, 0.09, 0.02],
                                       [0.27, 0.00, -0.05],
                                       [0.27, -0.09, 0.03]], dtype=np.float32)
COLOR_DECORRELATION = (COLOR_CORRELATION_SVD_SQRT
                       / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0)))
SPECTRUM_INIT_STD = 0.01  # Lucid's initial standard deviation of the parameters


# ---------------------------------------------------------------------------------------------
# Parameterisation: parameters -> image
# ---------------------------------------------------------------------------------------------
def spectrum_scale(height: int, width: int, decay_power: float = 1.0) -> np.ndarray:
    """``sqrt(H W) / max(f, 1 / max(H, W))^decay_power`` for the ``(H, W // 2 + 1)`` frequencies
    of a real 2-D FFT, ``f = sqrt(fy^2 + fx^2)`` in cycles per pixel."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freqs = np.sqrt(fx ** 2 + fy ** 2)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(height, width)) ** decay_power
    return (scale * np.sqrt(height * width)).astype(np.float32)


def fourier_image(params, size: tuple[int, int], decay_power: float = 1.0) -> tf.Tensor:
    """The image ``irfft2(scale * (re + i im)) / 4`` of spectrum parameters.

    Args:
        params: ``(N, H, W // 2 + 1, 2 C)`` real tensor: real parts in the first ``C`` channels,
            imaginary parts in the last ``C``.
        size: ``(H, W)``.
        decay_power: exponent of the ``1 / f`` scaling (1 in Lucid; 0 = no preconditioning).

    Returns:
        ``(N, H, W, C)`` float32, unbounded (pass it through :func:`to_rgb`).
    """
    height, width = size
    channels = params.shape[-1] // 2
    scale = tf.constant(spectrum_scale(height, width, decay_power))
    spectrum = tf.complex(params[..., :channels], params[..., channels:])
    spectrum = tf.transpose(spectrum, [0, 3, 1, 2]) * tf.cast(scale, tf.complex64)
    image = tf.signal.irfft2d(spectrum, fft_length=[height, width])
    return tf.transpose(image, [0, 2, 3, 1]) / 4.0


def image_to_fourier(images, decay_power: float = 1.0) -> np.ndarray:
    """Parameters whose :func:`fourier_image` is ``images``: the inverse map (a right inverse).

    Args:
        images: ``(N, H, W, C)`` real.

    Returns:
        ``(N, H, W // 2 + 1, 2 C)`` float32.
    """
    x = tf.convert_to_tensor(images, tf.float32)
    height, width = int(x.shape[1]), int(x.shape[2])
    spectrum = tf.signal.rfft2d(tf.transpose(4.0 * x, [0, 3, 1, 2]))
    spectrum = spectrum / tf.cast(spectrum_scale(height, width, decay_power), tf.complex64)
    spectrum = tf.transpose(spectrum, [0, 2, 3, 1])
    return tf.concat([tf.math.real(spectrum), tf.math.imag(spectrum)], axis=-1).numpy()


def decorrelate_colors(t) -> tf.Tensor:
    """Map decorrelated colours to RGB: every pixel ``t_ij <- M t_ij`` with
    ``M`` = :data:`COLOR_DECORRELATION`; ``t`` is ``(..., 3)``."""
    return tf.tensordot(tf.convert_to_tensor(t, tf.float32), COLOR_DECORRELATION.T, axes=1)


def to_rgb(t, decorrelate: bool = True) -> tf.Tensor:
    """``sigmoid(M t)`` (colour images, ``decorrelate``) or ``sigmoid(t)``: values in (0, 1)."""
    if decorrelate and t.shape[-1] == 3:
        t = decorrelate_colors(t)
    return tf.sigmoid(t)


def parameterized_image(params, size, *, fourier: bool = True, decorrelate: bool = True,
                        decay_power: float = 1.0) -> tf.Tensor:
    """Parameters -> image in (0, 1): :func:`fourier_image` (or the pixels themselves) then
    :func:`to_rgb`."""
    raw = fourier_image(params, size, decay_power) if fourier else params
    return to_rgb(raw, decorrelate)


def initial_parameters(num_images: int, size, channels: int, *, fourier: bool = True,
                       seed: int = 0) -> np.ndarray:
    """Lucid's start: normal draws of standard deviation 0.01 (a grey image, ~0.5 everywhere)."""
    height, width = size
    shape = ((num_images, height, width // 2 + 1, 2 * channels) if fourier
             else (num_images, height, width, channels))
    return (SPECTRUM_INIT_STD * np.random.default_rng(seed).standard_normal(shape)).astype(
        np.float32)


# ---------------------------------------------------------------------------------------------
# Transformation robustness
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Transforms:
    """Random similarity transform applied to each image at each step (Olah et al. 2017).

    The output keeps the image size (models with a fixed input size stay usable): each output
    pixel ``p`` samples the image at ``c + R(angle) (p - c) / scale + shift`` (bilinear, ``c``
    the centre), outside the image the value is ``fill`` (Lucid pads with 0.5 grey). Lucid's
    chain pad(12) -> jitter(8) -> scale 0.9..1.1 -> rotate -10..10 degrees -> jitter(4) on
    224-pixel images is this with ``jitter`` about 5% of the side.

    Attributes:
        jitter: largest shift in pixels, uniform in ``[-jitter, jitter]`` on each axis.
        scale: ``(low, high)`` zoom factor, uniform.
        rotation: largest rotation in degrees, uniform in ``[-rotation, rotation]``.
        fill: value outside the image, in the (0, 1) image range before ``value_range``.
    """

    jitter: float = 4.0
    scale: tuple[float, float] = (0.9, 1.1)
    rotation: float = 10.0
    fill: float = 0.5

    def __post_init__(self):
        check_real("jitter", self.jitter, minimum=0.0)
        check_real("rotation", self.rotation, minimum=0.0)
        check_real("fill", self.fill, minimum=0.0)
        try:
            low, high = (float(v) for v in self.scale)
        except (TypeError, ValueError) as err:
            raise ValueError(f"scale must be a pair (low, high), got {self.scale!r}") from err
        if not 0 < low <= high:
            raise ValueError(f"scale must satisfy 0 < low <= high, got {self.scale!r}")


NO_TRANSFORMS = Transforms(jitter=0.0, scale=(1.0, 1.0), rotation=0.0)


def similarity_matrices(shift, scale, angle, size) -> tf.Tensor:
    """``(N, 8)`` projective transforms (``tf.raw_ops.ImageProjectiveTransformV3`` layout) of
    ``input = c + R(angle) (output - c) / scale + shift``.

    Args:
        shift: ``(N, 2)`` ``(dx, dy)`` in pixels; scale: ``(N,)``; angle: ``(N,)`` radians;
        size: ``(H, W)``.
    """
    cy, cx = (size[0] - 1) / 2.0, (size[1] - 1) / 2.0
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    a2 = cx - cos * cx + sin * cy + shift[:, 0]
    b2 = cy - sin * cx - cos * cy + shift[:, 1]
    zeros = tf.zeros_like(cos)
    return tf.stack([cos, -sin, a2, sin, cos, b2, zeros, zeros], axis=1)


def random_transform(images, transforms: Transforms, generator: tf.random.Generator):
    """``images`` ``(N, H, W, C)`` each through its own random transform drawn by ``generator``."""
    n = tf.shape(images)[0]
    size = (int(images.shape[1]), int(images.shape[2]))
    shift = generator.uniform([n, 2], -transforms.jitter, transforms.jitter)
    scale = generator.uniform([n], transforms.scale[0], transforms.scale[1])
    angle = generator.uniform([n], -transforms.rotation, transforms.rotation)
    return transform_images(images, similarity_matrices(shift, scale, angle * math.pi / 180,
                                                        size), transforms.fill)


def transform_images(images, matrices, fill: float = 0.5) -> tf.Tensor:
    """Bilinear resampling of ``images`` by ``(N, 8)`` projective ``matrices``, same size."""
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=matrices, output_shape=tf.shape(images)[1:3],
        fill_value=fill, interpolation="BILINEAR", fill_mode="CONSTANT")


# ---------------------------------------------------------------------------------------------
# Objectives
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Objective:
    """What one image maximises. Build with :func:`channel`, :func:`neuron`,
    :func:`class_logit` or :func:`direction`.

    Attributes:
        kind: ``"channel"``, ``"neuron"``, ``"class"`` or ``"direction"``.
        layer_name: the layer (``None`` for a class).
        index: channel, ``(row, col, channel)`` or class index.
        vector: the direction (a tuple of floats), else ``None``.
    """

    kind: str
    layer_name: str | None
    index: int | tuple | None = None
    vector: tuple | None = None

    def describe(self) -> str:
        """A short caption, e.g. ``"conv3:5"`` or ``"class 7"``."""
        if self.kind == "class":
            return f"class {self.index}"
        if self.kind == "direction":
            return f"{self.layer_name}: direction"
        return f"{self.layer_name}:{self.index}"


def _index(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


def channel(layer_name: str, index: int) -> Objective:
    """Mean over positions of feature map ``index`` of ``layer_name`` (Lucid ``channel``)."""
    return Objective("channel", _layer(layer_name), _index(index, "channel index"))


def neuron(layer_name: str, position) -> Objective:
    """One unit ``(row, col, channel)`` of a spatial layer (Lucid ``neuron``)."""
    if not isinstance(position, (tuple, list)) or len(position) != 3:
        raise ValueError(f"neuron position must be (row, col, channel), got {position!r}")
    return Objective("neuron", _layer(layer_name),
                     tuple(_index(v, "neuron position") for v in position))


def class_logit(index: int) -> Objective:
    """The class score ``S_c`` before the softmax (Lucid ``class_logit``)."""
    return Objective("class", None, _index(index, "class index"))


def direction(layer_name: str, vector) -> Objective:
    """Mean over positions of ``<a_ij, v>``, ``a_ij`` the channel vector at ``(i, j)`` (Lucid
    ``direction``; a random or learned direction of Szegedy et al.'s "space vs units")."""
    v = np.asarray(vector, dtype=np.float64)
    if v.ndim != 1 or not np.all(np.isfinite(v)) or not np.any(v):
        raise ValueError(f"direction vector must be a finite, non-zero 1-D array, got {vector!r}")
    return Objective("direction", _layer(layer_name), None, tuple(float(a) for a in v))


def _layer(layer_name) -> str:
    if not isinstance(layer_name, str):
        raise TypeError(f"layer_name must be a string, got {layer_name!r}")
    return layer_name


def _check_objective(model, objective: Objective, size, channels: int) -> None:
    """ValueError naming the index or vector when it does not fit the layer or the classes."""
    probe = tf.zeros((1, *size, channels))
    if objective.kind == "class":
        classes = int(logits_model(model)(probe).shape[-1])
        if objective.index >= classes:
            raise ValueError(f"class index {objective.index} is out of range [0, {classes})")
        return
    find_layer(model, objective.layer_name)
    shape = tuple(feature_model(model, [objective.layer_name])(probe)[0][0].shape[1:])
    if objective.kind == "neuron":
        if len(shape) != 3 or any(i >= s for i, s in zip(objective.index, shape)):
            raise ValueError(f"neuron position {objective.index} is out of range for layer "
                             f"{objective.layer_name!r} with output shape {shape}")
    elif objective.kind == "channel":
        if objective.index >= shape[-1]:
            raise ValueError(f"channel index {objective.index} is out of range for layer "
                             f"{objective.layer_name!r} with {shape[-1]} channels")
    elif len(objective.vector) != shape[-1]:
        raise ValueError(f"direction vector has length {len(objective.vector)}, layer "
                         f"{objective.layer_name!r} has {shape[-1]} channels")


def _objective_value(objective: Objective, acts, logits) -> tf.Tensor:
    """``(N,)`` value of ``objective`` for every image of the batch."""
    if objective.kind == "class":
        return logits[:, objective.index]
    if objective.kind == "neuron":
        row, col, k = objective.index
        return acts[:, row, col, k]
    if objective.kind == "channel":
        flat = acts[..., objective.index]
    else:
        flat = tf.tensordot(acts, tf.constant(objective.vector, tf.float32), axes=1)
    return tf.reduce_mean(tf.reshape(flat, (tf.shape(flat)[0], -1)), axis=1)


# ---------------------------------------------------------------------------------------------
# The optimisation
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FeatureVisualization:
    """Result of :func:`feature_visualization`.

    Attributes:
        images: ``(N, H, W, C)`` float32 in ``value_range``, one per objective.
        history: ``(steps, N)`` objective value at each step (on the transformed image).
        objectives: the objectives, in order.
    """

    images: np.ndarray
    history: np.ndarray
    objectives: list


def feature_visualization(model, objectives, *, size=None, channels=None, steps: int = 256,
                          learning_rate: float = 0.05, fourier: bool = True,
                          decorrelate: bool = True, decay_power: float = 1.0,
                          transforms: Transforms | None = None, value_range=(0.0, 1.0),
                          preprocess=None, seed: int = 0) -> FeatureVisualization:
    """Maximise each objective over an image, Lucid-style (Olah et al. 2017).

    ``image = low + (high - low) * to_rgb(F(p))`` with ``F`` the Fourier parameterisation
    (:func:`fourier_image`) and ``to_rgb`` the colour decorrelation and sigmoid; each step is
    an Adam step (Kingma & Ba 2015, Lucid's optimiser) of
    :func:`visualization.ascent.gradient_ascent` on ``p`` for the objective of
    ``model(preprocess(T(image)))``, ``T`` a fresh random transform.

    Args:
        model: Keras model (Sequential, Functional, ``keras.applications``, nested).
        objectives: one :class:`Objective` or a list (one image each).
        size: ``(H, W)``; default the model's input size.
        channels: image channels; default the model's.
        steps: ascent steps, ``>= 1``.
        learning_rate: Adam's step size ``> 0`` (about the change of every parameter per step;
            0.05 as in Lucid).
        fourier: Fourier parameterisation (else the pixels before the sigmoid).
        decorrelate: colour decorrelation (3-channel images only).
        decay_power: exponent of the spectrum's ``1 / f`` scaling.
        transforms: :class:`Transforms`; default ``Transforms()``; :data:`NO_TRANSFORMS` = off.
        value_range: ``(low, high)`` range of the images given to ``preprocess`` / the model,
            e.g. ``(0, 255)`` with ``preprocess="mobilenet_v2"``.
        preprocess: see ``visualization._model.resolve_preprocess``.
        seed: seed of the start and of the transforms.

    Returns:
        :class:`FeatureVisualization`.
    """
    items = [objectives] if isinstance(objectives, Objective) else list(objectives)
    if not items or not all(isinstance(o, Objective) for o in items):
        raise TypeError(f"objectives must be an Objective or a non-empty list of them, got "
                        f"{objectives!r}")
    size, channels = _image_geometry(model, size, channels)
    transforms = Transforms() if transforms is None else transforms
    if not isinstance(transforms, Transforms):
        raise TypeError(f"transforms must be a Transforms, got {transforms!r}")
    check_value_range(value_range)
    seed = resolve_seed(seed)
    for objective in items:
        _check_objective(model, objective, size, channels)
    key = (tuple(items), size, channels, fourier, decorrelate, float(decay_power), transforms,
           tuple(float(v) for v in value_range), preprocess)
    objective_fn, generator = cached_objective(model, ("feature_vis", key),
                                               lambda: _build_objective(model, *key))
    generator.reset_from_seed(seed)
    params = initial_parameters(len(items), size, channels, fourier=fourier, seed=seed)
    final, history = gradient_ascent(objective_fn, params, steps=steps,
                                     learning_rate=learning_rate, adam=True, seed=seed)
    images = _to_range(parameterized_image(final, size, fourier=fourier, decorrelate=decorrelate,
                                           decay_power=decay_power), value_range)
    return FeatureVisualization(images.numpy(), history, items)


def _image_geometry(model, size, channels) -> tuple[tuple[int, int], int]:
    shape = getattr(model, "input_shape", None)
    shape = shape if isinstance(shape, tuple) and len(shape) == 4 else (None,) * 4
    if size is None:
        if None in shape[1:3]:
            raise ValueError(f"size: the model's input size is not fixed ({shape}); pass "
                             "size=(H, W)")
        size = shape[1:3]
    if (not isinstance(size, Sequence) or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and s >= 2 for s in size)):
        raise ValueError(f"size must be (H, W) with integers >= 2, got {size!r}")
    channels = shape[3] if channels is None else channels
    if channels is None:
        raise ValueError("channels: the model's channel count is unknown; pass channels=")
    check_int("channels", channels, minimum=1)
    return (int(size[0]), int(size[1])), int(channels)


def _to_range(rgb, value_range) -> tf.Tensor:
    low, high = (float(v) for v in value_range)
    return low + (high - low) * rgb


def _build_objective(model, items, size, channels, fourier, decorrelate, decay_power,
                     transforms, value_range, preprocess) -> tuple[Callable, tf.random.Generator]:
    """``params (N, ...) -> (N,)`` values, image ``n`` scored by objective ``n``."""
    layer_names = sorted({o.layer_name for o in items if o.layer_name is not None})
    features = feature_model(model, layer_names, preprocess=preprocess)
    generator = tf.random.Generator.from_seed(0)

    def objective(params):
        rgb = parameterized_image(params, size, fourier=fourier, decorrelate=decorrelate,
                                  decay_power=decay_power)
        seen = random_transform(rgb, transforms, generator)
        acts, logits = features(_to_range(seen, value_range))
        by_layer = dict(zip(layer_names, acts))
        values = [_objective_value(o, by_layer.get(o.layer_name), logits)[n]
                  for n, o in enumerate(items)]
        return tf.stack(values)

    return objective, generator
