"""Target models of the adversarial lectures: a small CNN and the slides' residual network.

Every model returns LOGITS (no softmax), which is what the attacks expect. The residual layers
are the slides' ``Residual`` and ``ResnetBlock`` (He et al., "Deep Residual Learning for Image
Recognition", CVPR 2016, in the Dive-into-Deep-Learning form), rewritten as Keras 3 layers that
are registered for serialisation, so models built from them survive ``model.save`` /
``keras.models.load_model``.
"""

from __future__ import annotations

import keras

_PACKAGE = "adversarial"


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_input_shape(input_shape) -> tuple:
    try:
        shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be a sequence of 3 ints (H, W, C), got {input_shape!r}")
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be 3 positive ints (H, W, C), got {input_shape!r}")
    return shape


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Residual(keras.layers.Layer):
    """The residual block of the slides: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    ``f(x) = g(x) + x``: two 3x3 convolutions with the same number of output channels, each
    followed by batch normalisation (the first also by a ReLU); the input skips both and is added
    before the final ReLU. A 1x1 convolution on the shortcut changes its channels and stride when
    the output shape differs from the input's.

    Args:
        num_channels: output channels of both 3x3 convolutions (and of the 1x1 shortcut).
        use_1x1conv: put a 1x1 convolution with ``strides`` on the shortcut; required when
            ``strides > 1`` or the input does not have ``num_channels`` channels.
        strides: stride of the first 3x3 convolution (and of the 1x1 shortcut).

    Shapes: ``(N, H, W, C)`` -> ``(N, ceil(H / strides), ceil(W / strides), num_channels)``.
    """

    def __init__(self, num_channels, use_1x1conv=False, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.num_channels = _check_positive_int("num_channels", num_channels)
        self.strides = _check_positive_int("strides", strides)
        self.use_1x1conv = bool(use_1x1conv)
        self.conv1 = keras.layers.Conv2D(num_channels, kernel_size=3, padding="same",
                                         strides=strides)
        self.conv2 = keras.layers.Conv2D(num_channels, kernel_size=3, padding="same")
        self.conv3 = (keras.layers.Conv2D(num_channels, kernel_size=1, strides=strides)
                      if use_1x1conv else None)
        self.bn1 = keras.layers.BatchNormalization()
        self.bn2 = keras.layers.BatchNormalization()

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.conv3 is None and (self.strides != 1 or channels != self.num_channels):
            raise ValueError(
                f"Residual without use_1x1conv needs strides=1 and {self.num_channels} input "
                f"channels to add the shortcut, got strides={self.strides}, "
                f"input_shape={tuple(input_shape)!r}")
        self.conv1.build(input_shape)
        out_shape = self.conv1.compute_output_shape(input_shape)
        self.bn1.build(out_shape)
        self.conv2.build(out_shape)
        self.bn2.build(out_shape)
        if self.conv3 is not None:
            self.conv3.build(input_shape)

    def call(self, inputs, training=None):
        y = keras.ops.relu(self.bn1(self.conv1(inputs), training=training))
        y = self.bn2(self.conv2(y), training=training)
        shortcut = inputs if self.conv3 is None else self.conv3(inputs)
        return keras.ops.relu(y + shortcut)

    def compute_output_shape(self, input_shape):
        return self.conv1.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(num_channels=self.num_channels, use_1x1conv=self.use_1x1conv,
                      strides=self.strides)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ResnetBlock(keras.layers.Layer):
    """A stage of ResNet: ``num_residuals`` :class:`Residual` blocks in a row.

    Unless it is the first block of the network, the first residual halves the spatial size and
    changes the channels (``Residual(num_channels, use_1x1conv=True, strides=2)``); the others keep
    the shape (``Residual(num_channels)``).

    Args:
        num_channels: output channels of every residual in the block.
        num_residuals: how many residuals.
        first_block: the block right after the stem, whose input already has ``num_channels``
            channels, so no downsampling.

    Shapes: ``(N, H, W, C)`` -> ``(N, H', W', num_channels)`` with ``H' = H`` for the first
    block, else ``ceil(H / 2)``.
    """

    def __init__(self, num_channels, num_residuals, first_block=False, **kwargs):
        super().__init__(**kwargs)
        self.num_channels = _check_positive_int("num_channels", num_channels)
        self.num_residuals = _check_positive_int("num_residuals", num_residuals)
        self.first_block = bool(first_block)
        self.residual_layers = [
            Residual(num_channels, use_1x1conv=True, strides=2)
            if i == 0 and not first_block else Residual(num_channels)
            for i in range(num_residuals)]

    def build(self, input_shape):
        shape = input_shape
        for layer in self.residual_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs, training=None):
        x = inputs
        for layer in self.residual_layers:
            x = layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for layer in self.residual_layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update(num_channels=self.num_channels, num_residuals=self.num_residuals,
                      first_block=self.first_block)
        return config


def small_cnn(input_shape=(8, 8, 1), num_classes=10, name="small_cnn") -> keras.Model:
    """A small CNN for the 8x8 digits that returns logits.

    ``conv3x3(32)-relu -> conv3x3(64, stride 2)-relu -> flatten -> dense(128)-relu ->
    dense(num_classes)``. No batch normalisation and no dropout, so inference and training mode
    compute the same function (the attacks always run in inference mode).

    Args:
        input_shape: ``(H, W, C)`` of the images, pixels expected in [0, 1].
        num_classes: number of logits.
        name: the model's name.

    Returns:
        A functional ``keras.Model`` mapping ``(N, H, W, C)`` to logits ``(N, num_classes)``.
    """
    shape = _check_input_shape(input_shape)
    _check_positive_int("num_classes", num_classes)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def resnet(input_shape=(8, 8, 1), num_classes=10, channels=(16, 32), num_residuals=2,
           name="resnet") -> keras.Model:
    """A small ResNet in the slides' layout (ResNet-18 scaled down for 8x8 digits), logits out.

    Stem ``conv3x3(channels[0])-BN-ReLU`` (the 7x7/stride-2 stem and max-pool of ResNet-18 would
    leave nothing of an 8x8 image), then ``ResnetBlock(channels[0], num_residuals,
    first_block=True)`` and ``ResnetBlock(c, num_residuals)`` for every further ``c`` (each halves
    H and W), global average pooling and ``Dense(num_classes)``.

    Args:
        input_shape: ``(H, W, C)``.
        num_classes: number of logits.
        channels: channels of the successive ResNet blocks; ResNet-18 is ``(64, 128, 256, 512)``.
        num_residuals: residual blocks per stage (2 in ResNet-18).
        name: the model's name.

    Returns:
        A functional ``keras.Model`` mapping ``(N, H, W, C)`` to logits ``(N, num_classes)``.
    """
    shape = _check_input_shape(input_shape)
    _check_positive_int("num_classes", num_classes)
    if not channels or isinstance(channels, (str, bytes)):
        raise ValueError(f"channels must be a non-empty sequence of ints, got {channels!r}")
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(channels[0], 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    x = ResnetBlock(channels[0], num_residuals, first_block=True)(x)
    for c in channels[1:]:
        x = ResnetBlock(c, num_residuals)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
