"""The segmentation network: an own U-Net with a dilated context module at the bottleneck.

U-Net (Ronneberger, Fischer and Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015): an encoder of ``depth`` levels (two 3x3 convolutions, then 2x2 max
pooling), a bottleneck, and a decoder that upsamples by 2, concatenates the encoder features of the
same resolution (skip connection) and applies two 3x3 convolutions. The output is a softmax over
the classes, so the network returns probabilities and is trained with cross entropy on them.

Upsampling follows the lecture's checkerboard warning (Odena, Dumoulin and Olah, "Deconvolution and
Checkerboard Artifacts", Distill 2016): a transpose convolution is used only with a kernel size
divisible by its stride (4x4, stride 2, so every output pixel receives the same number of inputs);
the slides' alternative is nearest or bilinear upsampling followed by a regular 3x3 convolution.
The default is the transpose convolution because it measured better on the assignment's data
(IoU building 0.816 against 0.760 for bilinear, with TTA; see the README).

The context module is the basic one of Yu and Koltun, "Multi-Scale Context Aggregation by Dilated
Convolutions", ICLR 2016: 3x3 convolutions with dilations 1, 1, 2, 4, 8, 16, 1, each followed by a
ReLU, then a 1x1 convolution, all with C channels in and out, initialised to the identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from assignment2 import IGNORE_INDEX, NUM_CLASSES
from assignment2.metrics import as_mask_list

#: Dilations of the basic context module (Yu & Koltun 2016, Table 1, layers 1 to 7).
CONTEXT_DILATIONS = (1, 1, 2, 4, 8, 16, 1)
#: How the dilated convolutions are computed (same function): the lecture's atrous_conv2d or a
#: dilated tf.nn.conv2d.
CONTEXT_IMPLEMENTATIONS = ("atrous", "conv2d")
#: Upsampling choices of the decoder; "bilinear" is the default (the slides' recommendation).
UPSAMPLING_MODES = ("transpose", "nearest", "bilinear")


def receptive_field(dilations: Sequence[int], kernel_size: int = 3) -> int:
    """Receptive field (in pixels, per side) of a stack of stride-1 dilated convolutions.

    Each ``kernel_size`` convolution with dilation ``d`` widens the field by ``(kernel_size - 1) * d``:
    ``rf = 1 + (kernel_size - 1) * sum(dilations)``. For the basic context module
    (dilations 1, 1, 2, 4, 8, 16, 1, then a 1x1 that adds nothing) this is 67 (Yu & Koltun 2016,
    Table 1).

    Args:
        dilations: positive integer dilation rates, one per convolution.
        kernel_size: odd or even positive kernel size shared by the convolutions.

    Returns:
        The side length of the square receptive field of one output pixel.
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)):
        raise TypeError(f"kernel_size must be an int, got {kernel_size!r}")
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size!r}")
    dilations = _check_dilations(dilations)
    return 1 + (int(kernel_size) - 1) * sum(dilations)


def _check_dilations(dilations) -> tuple[int, ...]:
    try:
        values = tuple(dilations)
    except TypeError:
        raise TypeError(f"dilations must be a sequence of ints, got {dilations!r}") from None
    if not values or any(
        isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in values
    ):
        raise ValueError(f"dilations must be a non-empty sequence of ints >= 1, got {dilations!r}")
    return tuple(int(d) for d in values)


def _identity_kernel(size: int, channels: int) -> np.ndarray:
    """A ``(size, size, C, C)`` kernel that copies channel c to channel c at its centre."""
    kernel = np.zeros((size, size, channels, channels), dtype="float32")
    kernel[size // 2, size // 2] = np.eye(channels, dtype="float32")
    return kernel


@keras.saving.register_keras_serializable(package="assignment2")
class ContextModule(keras.layers.Layer):
    """Basic context module of Yu & Koltun (ICLR 2016) as one Keras layer.

    ``x_{i+1} = relu(atrous_conv2d(x_i, W_i, rate=d_i) + b_i)`` for each dilation ``d_i``, then
    ``y = conv2d_1x1(x_n, W_out) + b_out``. Every convolution keeps the C channels of the input and
    uses "SAME" zero padding, so the spatial size is kept too. By default all dilated convolutions,
    the ones with rate 1 included, call ``tf.nn.atrous_conv2d`` (the lecture's ``atrous_conv2d``); the
    final 1x1 calls ``tf.nn.conv2d``.

    Identity initialisation (the paper's Eq. 4): every 3x3 kernel is ``W[1, 1, c, c] = 1``, zero
    elsewhere, and the biases are 0, so at initialisation the module maps a non-negative input to
    itself exactly (the ReLUs pass it unchanged) and training starts from "no context".

    Receptive field: ``receptive_field(dilations)``, 67 x 67 pixels for the default.

    ``implementation="conv2d"`` computes the same function with ``tf.nn.conv2d(...,
    dilations=rate)`` instead: ``atrous_conv2d`` rearranges the map with space-to-batch, which is
    slow on the CPU when the rate approaches the size of the (bottleneck) feature map.

    Input and output: float tensors ``(N, H, W, C)``, any H, W.
    """

    def __init__(self, dilations: Sequence[int] = CONTEXT_DILATIONS, *,
                 implementation: str = "atrous", **kwargs):
        super().__init__(**kwargs)
        self.dilations = _check_dilations(dilations)
        if implementation not in CONTEXT_IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {CONTEXT_IMPLEMENTATIONS}, got "
                             f"{implementation!r}")
        self.implementation = implementation

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"ContextModule needs a known channel count, got {input_shape!r}")
        identity3 = _identity_kernel(3, channels)
        self.dilated_kernels, self.dilated_biases = [], []
        for i, _ in enumerate(self.dilations):
            self.dilated_kernels.append(self.add_weight(
                shape=identity3.shape, initializer=keras.initializers.Constant(identity3),
                name=f"dilated_kernel_{i}"))
            self.dilated_biases.append(self.add_weight(
                shape=(channels,), initializer="zeros", name=f"dilated_bias_{i}"))
        identity1 = _identity_kernel(1, channels)
        self.output_kernel = self.add_weight(
            shape=identity1.shape, initializer=keras.initializers.Constant(identity1),
            name="output_kernel")
        self.output_bias = self.add_weight(shape=(channels,), initializer="zeros",
                                           name="output_bias")

    def call(self, inputs):
        x = inputs
        for rate, kernel, bias in zip(self.dilations, self.dilated_kernels, self.dilated_biases):
            x = self._dilated_conv(x, tf.cast(kernel, x.dtype), rate)
            x = tf.nn.relu(tf.nn.bias_add(x, tf.cast(bias, x.dtype)))
        x = tf.nn.conv2d(x, tf.cast(self.output_kernel, x.dtype), strides=1, padding="SAME")
        return tf.nn.bias_add(x, tf.cast(self.output_bias, x.dtype))

    def _dilated_conv(self, x, kernel, rate: int):
        if self.implementation == "atrous":
            return tf.nn.atrous_conv2d(x, kernel, rate=rate, padding="SAME")
        return tf.nn.conv2d(x, kernel, strides=1, padding="SAME", dilations=rate)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "dilations": list(self.dilations),
                "implementation": self.implementation}


@keras.saving.register_keras_serializable(package="assignment2")
class Resize2D(keras.layers.Layer):
    """Upsampling of ``(N, H, W, C)`` to ``(N, size*H, size*W, C)`` by ``tf.image.resize``.

    Same result as ``keras.layers.UpSampling2D`` (half-pixel centres), but works when H and W are
    unknown inside a ``tf.function``: Keras 3.15's UpSampling2D with "bilinear" fails there, and
    ``predict_on_batch`` generalises to unknown sizes once it sees tiles of different sizes.
    """

    def __init__(self, size: int = 2, interpolation: str = "bilinear", **kwargs):
        super().__init__(**kwargs)
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"interpolation must be 'nearest' or 'bilinear', got "
                             f"{interpolation!r}")
        self.size = _check_positive_int(size, "size")
        self.interpolation = interpolation

    def call(self, inputs):
        new_size = tf.shape(inputs)[1:3] * self.size
        out = tf.image.resize(inputs, new_size, method=self.interpolation)
        return tf.cast(out, inputs.dtype)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.size, None if w is None else w * self.size, c)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "interpolation": self.interpolation}


def _check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _conv_block(x, filters: int, name: str, batch_norm: bool):
    """Two 3x3 convolutions, each followed by (batch norm and) ReLU."""
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm,
                                kernel_initializer="he_normal", name=f"{name}_conv{i}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def _upsample(x, filters: int, mode: str, name: str):
    """Double H and W without the checkerboard effect (see the module docstring)."""
    if mode == "transpose":
        # kernel 4 divisible by stride 2: even overlap, no checkerboard pattern
        x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same",
                                         kernel_initializer="he_normal", name=f"{name}_tconv")(x)
    else:
        x = Resize2D(2, interpolation=mode, name=f"{name}_resize")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer="he_normal",
                                name=f"{name}_conv")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _context(x, dilations, implementation: str, channels: int | None):
    """The context module, after an optional 1x1 projection to ``channels`` (ReLU keeps x >= 0)."""
    if channels is not None:
        x = keras.layers.Conv2D(channels, 1, activation="relu", kernel_initializer="he_normal",
                                name="context_projection")(x)
    return ContextModule(dilations, implementation=implementation, name="context")(x)


def _check_unet_args(num_classes, input_channels, depth, base_filters, upsampling, dropout,
                     context_implementation, context_channels):
    _check_positive_int(num_classes, "num_classes", 2)
    _check_positive_int(input_channels, "input_channels")
    _check_positive_int(depth, "depth", 0)
    _check_positive_int(base_filters, "base_filters")
    if upsampling not in UPSAMPLING_MODES:
        raise ValueError(f"upsampling must be one of {UPSAMPLING_MODES}, got {upsampling!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
    if context_implementation not in CONTEXT_IMPLEMENTATIONS:
        raise ValueError(f"context_implementation must be one of {CONTEXT_IMPLEMENTATIONS}, "
                         f"got {context_implementation!r}")
    if context_channels is not None:
        _check_positive_int(context_channels, "context_channels")


def build_unet(*, num_classes: int = NUM_CLASSES, input_channels: int = 3, depth: int = 4,
               base_filters: int = 16, upsampling: str = "transpose", context: bool = True,
               dropout: float = 0.0, name: str = "unet", batch_norm: bool = True,
               context_dilations: Sequence[int] = CONTEXT_DILATIONS,
               context_implementation: str = "atrous",
               context_channels: int | None = None,
               context_level: int | None = None) -> keras.Model:
    """An own U-Net returning per-pixel class probabilities.

    Level i of the encoder has ``base_filters * 2**i`` channels, the bottleneck
    ``base_filters * 2**depth``; the decoder mirrors the encoder. Optionally dropout follows the
    bottleneck convolutions, and the Yu & Koltun context module (:class:`ContextModule`) is applied
    at resolution level ``context_level``: to the bottleneck (level ``depth``, after the dropout)
    or to the output of the decoder block of that level (``1/2**context_level`` of the input
    resolution, before it is upsampled further). The head is a 1x1 convolution and a softmax over
    the classes, computed in float32 (also under a ``mixed_float16`` policy).

    Where the module sits decides whether it works: on an ``s x s`` map the off-centre taps of a
    dilation ``d >= s`` read only zero padding, receive no gradient and stay at their identity
    initialisation (:func:`dead_dilations`). Yu & Koltun apply the module to 64 x 64 maps; with
    128-pixel crops the 1/4-resolution level (32 x 32) keeps every default dilation alive, the
    1/16-resolution bottleneck of a depth-4 U-Net (8 x 8) does not.

    Args:
        num_classes: K, number of output classes (3: background, building, boundary).
        input_channels: C, channels of the input image.
        depth: number of 2x2 poolings; the network stride is ``2**depth``, so H and W of the input
            must be multiples of it (pad with :func:`assignment2.padding.pad_image` otherwise).
        base_filters: channels of the first level.
        upsampling: "transpose" (default: 4x4 transpose convolution, stride 2), or "bilinear" or
            "nearest" (resize, then a 3x3 convolution).
        context: add the context module at the bottleneck.
        dropout: dropout rate after the bottleneck convolutions (0 disables it).
        name: the model's name.
        batch_norm: batch normalisation after every 3x3 convolution of the conv blocks.
        context_dilations: dilations of the context module.
        context_implementation: "atrous" (``tf.nn.atrous_conv2d``) or "conv2d" (dilated
            ``tf.nn.conv2d``, the same function, faster on the CPU; see :class:`ContextModule`).
        context_channels: None runs the context module on the channels of its level; an int
            first projects them to that many (1x1 convolution and ReLU), which makes the module
            cheaper (its cost grows with channels squared).
        context_level: resolution level of the context module, an int in ``[0, depth]``; None
            (default) is ``depth``, the bottleneck.

    Returns:
        An uncompiled ``keras.Model`` mapping float32 ``(N, H, W, C)`` to probabilities
        ``(N, H, W, K)`` in [0, 1] summing to 1 over the last axis.
    """
    _check_unet_args(num_classes, input_channels, depth, base_filters, upsampling, dropout,
                     context_implementation, context_channels)
    context_level = depth if context_level is None else _check_positive_int(
        context_level, "context_level", 0)
    if context_level > depth:
        raise ValueError(f"context_level must be in [0, depth={depth}], got {context_level!r}")
    inputs = keras.Input((None, None, input_channels), name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = _conv_block(x, base_filters * 2**level, f"enc{level}", batch_norm)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = _conv_block(x, base_filters * 2**depth, "bottleneck", batch_norm)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="bottleneck_dropout")(x)
    if context and context_level == depth:
        x = _context(x, context_dilations, context_implementation, context_channels)
    for level in reversed(range(depth)):
        x = _upsample(x, base_filters * 2**level, upsampling, f"up{level}")
        x = keras.layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, base_filters * 2**level, f"dec{level}", batch_norm)
        if context and context_level == level:
            x = _context(x, context_dilations, context_implementation, context_channels)
    x = keras.layers.Conv2D(num_classes, 1, name="logits")(x)
    outputs = keras.layers.Softmax(axis=-1, dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def dead_dilations(map_size: int, dilations: Sequence[int] = CONTEXT_DILATIONS) -> tuple[int, ...]:
    """Dilations whose off-centre taps can never read inside a ``map_size`` x ``map_size`` map.

    A 3x3 convolution with dilation ``d`` and "SAME" zero padding reads, for output pixel ``i``,
    the inputs ``i - d``, ``i`` and ``i + d``; both off-centre reads fall outside a map of side
    ``s`` for every ``i`` exactly when ``d >= s``. Those taps then multiply zeros only: their
    gradient is 0 and they keep their (identity) initialisation, so the layer acts as a 1x1
    convolution and the module's receptive field shrinks (19 instead of 67 on an 8 x 8 map).

    Args:
        map_size: side in pixels of the feature map the module sees (crop size / 2**level).
        dilations: the module's dilations.

    Returns:
        The distinct dead dilations, ascending (empty when every dilation is alive).
    """
    map_size = _check_positive_int(map_size, "map_size")
    return tuple(sorted({d for d in _check_dilations(dilations) if d >= map_size}))


def network_stride(model_or_depth) -> int:
    """The factor by which H and W of the input must be divisible: ``2**depth``.

    Args:
        model_or_depth: a U-Net depth (int >= 0) or a model from :func:`build_unet`, whose
            stride is the product of the pool sizes of its ``MaxPooling2D`` layers.
    """
    if isinstance(model_or_depth, keras.Model):
        stride = 1
        for layer in model_or_depth.layers:
            if isinstance(layer, keras.layers.MaxPooling2D):
                stride *= int(layer.pool_size[0])
        return stride
    depth = _check_positive_int(model_or_depth, "model_or_depth", 0)
    return 2**depth


@keras.saving.register_keras_serializable(package="assignment2")
class SegmentationCrossEntropy(keras.losses.Loss):
    """Cross entropy on per-pixel probabilities, averaged over the labelled pixels.

    ``loss = sum_p w[y_p] * s_p * -log(P_p[y_p]) / |{p : y_p != ignore_index}|`` where the sum
    runs over labelled pixels p of the batch, ``w`` are the optional class weights (1 when not
    given), ``s_p`` the optional per-pixel ``sample_weight`` passed through Keras' usual mechanism
    (``model.fit(x, y, sample_weight)`` or a third element of the dataset), and ``P_p`` is clipped
    to ``[1e-7, 1]`` so a zero probability gives a large finite loss. Pixels with
    ``y_p == ignore_index`` contribute nothing to either sum or count; a batch without labelled
    pixels has loss 0. Note that the divisor is the count of labelled pixels, not the sum of the
    weights, so weights scale the loss.

    ``y_true``: integer labels ``(N, H, W)`` or ``(N, H, W, 1)``; ``y_pred``: probabilities
    ``(N, H, W, K)``.
    """

    def __init__(self, class_weights=None, ignore_index: int = IGNORE_INDEX,
                 name: str = "segmentation_cross_entropy", **kwargs):
        kwargs.pop("reduction", None)  # the mean over labelled pixels is built into call()
        super().__init__(name=name, reduction="sum_over_batch_size", **kwargs)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.ignore_index = int(ignore_index)

    def call(self, y_true, y_pred):
        num_classes = y_pred.shape[-1]
        labels = keras.ops.cast(y_true, "int32")
        if len(labels.shape) == len(y_pred.shape):
            labels = keras.ops.squeeze(labels, axis=-1)
        valid = keras.ops.not_equal(labels, self.ignore_index)
        safe = keras.ops.where(valid, labels, keras.ops.zeros_like(labels))
        probs = keras.ops.sum(y_pred * keras.ops.one_hot(safe, num_classes, dtype=y_pred.dtype),
                              axis=-1)
        nll = -keras.ops.log(keras.ops.clip(probs, 1e-7, 1.0))
        weights = keras.ops.cast(valid, nll.dtype)
        if self.class_weights is not None:
            table = keras.ops.convert_to_tensor(self.class_weights, dtype=nll.dtype)
            weights = weights * keras.ops.take(table, safe)
        # Keras divides the sum by the pixel count; rescale so it divides by the labelled count.
        total = keras.ops.cast(keras.ops.size(weights), nll.dtype)
        labelled = keras.ops.sum(keras.ops.cast(valid, nll.dtype))
        scale = keras.ops.where(labelled > 0, total / keras.ops.maximum(labelled, 1.0), 0.0)
        return nll * weights * scale

    def get_config(self):
        return {"name": self.name, "class_weights": self.class_weights,
                "ignore_index": self.ignore_index}


def segmentation_loss(*, class_weights=None, ignore_index: int = IGNORE_INDEX):
    """The training loss: :class:`SegmentationCrossEntropy` (see its formula).

    Args:
        class_weights: None or K non-negative floats, e.g. from :func:`pixel_class_weights`.
        ignore_index: label of pixels without a label (255).

    Returns:
        A serialisable ``keras.losses.Loss`` for ``model.compile(loss=...)``.
    """
    if class_weights is not None:
        weights = np.asarray(class_weights, dtype="float64")
        if weights.ndim != 1 or weights.size < 2 or not np.all(np.isfinite(weights)) \
                or np.any(weights < 0):
            raise ValueError("class_weights must be a 1-D sequence of >= 2 finite non-negative "
                             f"floats, got {class_weights!r}")
        class_weights = weights.tolist()
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
    return SegmentationCrossEntropy(class_weights=class_weights, ignore_index=ignore_index)


def pixel_class_weights(masks, *, num_classes: int = NUM_CLASSES,
                        ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Median frequency balancing weights (Eigen & Fergus, ICCV 2015).

    ``freq(c) = n_c / N_c`` where ``n_c`` counts the pixels of class c and ``N_c`` the labelled
    pixels of the masks in which c occurs; ``w_c = median_c freq(c) / freq(c)`` (median over the
    classes that occur). Rare classes (the boundary) get weights above 1. A class that never
    occurs gets weight 1; ignored pixels (``ignore_index``) are not counted.

    Args:
        masks: an iterable of integer masks ``(H, W)`` (sizes may differ; read one at a time,
            so a generator over tiles on disk needs memory for one mask only) or an array
            ``(N, H, W)``; values in ``[0, num_classes)`` or ``ignore_index``.
        num_classes: K.
        ignore_index: label of pixels without a label.

    Returns:
        float32 array ``(K,)``.
    """
    num_classes = _check_positive_int(num_classes, "num_classes", 2)
    class_pixels = np.zeros(num_classes, dtype="float64")
    present_pixels = np.zeros(num_classes, dtype="float64")
    if isinstance(masks, np.ndarray) and masks.ndim == 2:
        masks = [masks]
    try:
        masks = iter(masks)
    except TypeError:
        raise TypeError(f"masks must be an iterable of 2-D masks, got "
                        f"{type(masks).__name__}") from None
    seen = 0
    for i, mask in enumerate(masks):
        mask = as_mask_list([mask], f"masks[{i}]")[0]
        seen += 1
        labels = mask[mask != ignore_index].astype("int64")
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"masks[{i}] has values outside [0, {num_classes}) and "
                             f"{ignore_index}: {np.unique(labels).tolist()}")
        counts = np.bincount(labels, minlength=num_classes)
        class_pixels += counts
        present_pixels += np.where(counts > 0, labels.size, 0)
    if not seen:
        raise ValueError("masks is empty")
    present = class_pixels > 0
    if not present.any():
        raise ValueError("masks contain no labelled pixel")
    freq = class_pixels[present] / present_pixels[present]
    weights = np.ones(num_classes, dtype="float64")
    weights[present] = np.median(freq) / freq
    return weights.astype("float32")
