"""The U-Net, the Yu & Koltun context module, the loss and the class weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from assignment2.model import (
    CONTEXT_DILATIONS,
    ContextModule,
    Resize2D,
    build_unet,
    dead_dilations,
    network_stride,
    pixel_class_weights,
    receptive_field,
    segmentation_loss,
)


def test_receptive_field_formula():
    assert receptive_field(CONTEXT_DILATIONS) == 67
    # Yu & Koltun, Figure 1: 1-, 2- and 4-dilated 3x3 convolutions give 3, 7 and 15
    assert [receptive_field((1, 2, 4)[:n]) for n in (1, 2, 3)] == [3, 7, 15]
    assert receptive_field([1, 1], kernel_size=5) == 9
    assert receptive_field([4], kernel_size=1) == 1


@pytest.mark.parametrize("dilations, kernel_size, error", [
    ([], 3, ValueError), ([1, 0], 3, ValueError), ([1.5], 3, ValueError), (3, 3, TypeError),
    ([1], 0, ValueError), ([1], "3", TypeError),
])
def test_receptive_field_rejects_bad_arguments(dilations, kernel_size, error):
    with pytest.raises(error, match="dilations|kernel_size"):
        receptive_field(dilations, kernel_size)


def test_context_module_is_the_identity_at_initialisation():
    x = np.random.default_rng(0).uniform(0, 3, size=(2, 23, 19, 6)).astype("float32")
    layer = ContextModule()
    np.testing.assert_allclose(np.asarray(layer(x)), x, atol=1e-5, rtol=0)
    # the first ReLU truncates: on signed input the module returns relu(x)
    signed = x - 1.5
    np.testing.assert_allclose(np.asarray(layer(signed)), np.maximum(signed, 0), atol=1e-5)
    assert len(layer.trainable_weights) == 2 * len(CONTEXT_DILATIONS) + 2


def test_context_module_calls_atrous_conv2d_once_per_dilation(monkeypatch):
    rates = []
    original = tf.nn.atrous_conv2d

    def spy(value, filters, rate, padding, name=None):
        rates.append(rate)
        return original(value, filters, rate, padding, name)

    monkeypatch.setattr(tf.nn, "atrous_conv2d", spy)
    ContextModule()(np.ones((1, 8, 8, 2), "float32"))
    assert rates == list(CONTEXT_DILATIONS)


def test_context_module_implementations_compute_the_same_function():
    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(size=(2, 12, 10, 3)), tf.float32)
    atrous, dilated = ContextModule(), ContextModule(implementation="conv2d")
    atrous.build(x.shape)
    dilated.build(x.shape)
    weights = [rng.normal(0, 0.3, w.shape).astype("float32") for w in atrous.get_weights()]
    atrous.set_weights(weights)
    dilated.set_weights(weights)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        outputs = [layer(x) for layer in (atrous, dilated)]
        sums = [tf.reduce_sum(o * o) for o in outputs]
    np.testing.assert_allclose(np.asarray(outputs[0]), np.asarray(outputs[1]), atol=1e-5)
    assert np.abs(np.asarray(outputs[0])).max() > 0.1
    np.testing.assert_allclose(np.asarray(tape.gradient(sums[0], x)),
                               np.asarray(tape.gradient(sums[1], x)), atol=1e-4)
    with pytest.raises(ValueError, match="implementation"):
        ContextModule(implementation="fft")


def test_context_module_receptive_field_is_67_empirically():
    """Gradient of the centre output wrt the input: support is exactly a 67 x 67 square.

    With positive weights and a positive input every ReLU is in its linear regime, so the
    support of the gradient is the receptive field.
    """
    layer = ContextModule()
    x = tf.constant(np.random.default_rng(1).uniform(0.5, 1, (1, 99, 99, 1)), tf.float32)
    layer.build(x.shape)
    layer.set_weights([np.full(w.shape, 1 / 9 if w.ndim == 4 else 0.01, "float32")
                       for w in layer.get_weights()])
    with tf.GradientTape() as tape:
        tape.watch(x)
        centre = layer(x)[0, 49, 49, 0]
    support = np.asarray(tape.gradient(centre, x))[0, :, :, 0] != 0
    expected = np.zeros((99, 99), bool)
    expected[49 - 33:49 + 34, 49 - 33:49 + 34] = True
    np.testing.assert_array_equal(support, expected)


@pytest.mark.parametrize("upsampling", ["bilinear", "nearest", "transpose"])
def test_unet_returns_probabilities_of_the_input_size(upsampling):
    net = build_unet(depth=2, base_filters=4, upsampling=upsampling, num_classes=3)
    x = np.random.default_rng(2).normal(size=(2, 16, 24, 3)).astype("float32")
    probs = np.asarray(net(x))
    assert probs.shape == (2, 16, 24, 3) and probs.dtype == np.float32
    assert probs.min() >= 0 and probs.max() <= 1
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
    assert net.get_layer("context").dilations == CONTEXT_DILATIONS


def test_resize_layer_matches_upsampling2d_and_runs_on_unknown_sizes():
    x = np.random.default_rng(5).normal(size=(2, 5, 7, 3)).astype("float32")
    for interpolation in ("nearest", "bilinear"):
        reference = keras.layers.UpSampling2D(2, interpolation=interpolation)(x)
        np.testing.assert_array_equal(np.asarray(Resize2D(2, interpolation)(x)),
                                      np.asarray(reference))
    # Keras' own bilinear UpSampling2D fails once predict_on_batch generalises to unknown sizes
    net = build_unet(depth=2, base_filters=2, upsampling="bilinear", context=False)
    for shape in [(1, 16, 16, 3), (2, 24, 32, 3), (1, 8, 40, 3)]:  # compiled, then generalised
        assert net.predict_on_batch(np.zeros(shape, "float32")).shape == shape


def test_unet_options_change_the_architecture():
    plain = build_unet(depth=2, base_filters=4, context=False, upsampling="nearest")
    assert not any(isinstance(layer, ContextModule) for layer in plain.layers)
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in plain.layers)
    wide = build_unet(depth=2, base_filters=4, num_classes=5, input_channels=4, dropout=0.2)
    assert wide.output_shape == (None, None, None, 5) and wide.input_shape == (None, None, None, 4)
    assert wide.get_layer("bottleneck_conv2").filters == 16
    assert isinstance(wide.get_layer("bottleneck_dropout"), keras.layers.Dropout)
    thin = build_unet(depth=1, base_filters=4, context_channels=6)
    assert thin.get_layer("context").output.shape[-1] == 6
    assert thin.output_shape == (None, None, None, 3)


def test_transpose_upsampling_has_no_checkerboard():
    """Kernel 4 with stride 2: every interior output pixel sums the same number of inputs."""
    net = build_unet(depth=1, base_filters=2, upsampling="transpose", context=False)
    tconv = net.get_layer("up0_tconv")
    assert tconv.kernel_size == (4, 4) and tconv.strides == (2, 2)
    tconv.set_weights([np.ones_like(w) if w.ndim == 4 else np.zeros_like(w)
                       for w in tconv.get_weights()])
    out = np.asarray(tconv(np.ones((1, 6, 6, 4), "float32")))[0, 2:-2, 2:-2, 0]
    np.testing.assert_array_equal(out, np.full_like(out, 4 * 2 * 2))


def test_context_level_places_the_module_at_that_resolution():
    x = np.zeros((1, 32, 48, 3), "float32")
    for level, (height, width, channels) in {2: (8, 12, 16), 1: (16, 24, 8), 0: (32, 48, 4),
                                             None: (4, 6, 32)}.items():
        net = build_unet(depth=3, base_filters=4, context_level=level)
        probe = keras.Model(net.input, net.get_layer("context").output)
        assert probe(x).shape == (1, height, width, channels), level
        assert sum(isinstance(layer, ContextModule) for layer in net.layers) == 1
    # the decoder block of the level feeds the module, the module feeds the next upsampling
    net = build_unet(depth=3, base_filters=4, context_level=1)
    assert net.get_layer("context").input is net.get_layer("dec1_relu2").output
    assert net.get_layer("up0_tconv").input is net.get_layer("context").output
    for bad, error in [(4, ValueError), (-1, ValueError), (1.0, TypeError)]:
        with pytest.raises(error, match="context_level"):
            build_unet(depth=3, base_filters=4, context_level=bad)


def test_dead_dilations_are_those_reaching_past_the_map():
    assert dead_dilations(8) == (8, 16)  # 128-pixel crops at the bottleneck of depth 4
    assert dead_dilations(16) == (16,)
    assert dead_dilations(17) == () and dead_dilations(32) == ()
    assert dead_dilations(3, (1, 2, 3, 4)) == (3, 4)
    with pytest.raises(ValueError, match="map_size"):
        dead_dilations(0)


@pytest.mark.parametrize("map_size", [8, 12])
def test_dead_dilations_get_exactly_zero_gradient_at_off_centre_taps(map_size):
    """The property :func:`dead_dilations` predicts, checked by autodiff on the layer."""
    layer = ContextModule(implementation="conv2d")
    x = tf.constant(np.random.default_rng(6).uniform(0.1, 1, (2, map_size, map_size, 3)),
                    tf.float32)
    layer.build(x.shape)
    weights = [w + np.random.default_rng(7).normal(0, 0.05, w.shape).astype("float32")
               for w in layer.get_weights()]
    layer.set_weights(weights)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x) - 0.5))
    grads = tape.gradient(loss, layer.dilated_kernels)
    for rate, grad in zip(layer.dilations, grads):
        off_centre = np.asarray(grad).copy()
        off_centre[1, 1] = 0
        assert (np.abs(off_centre).max() == 0) == (rate in dead_dilations(map_size)), rate


def test_unet_under_mixed_precision_returns_float32_and_trains_one_step():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        net = build_unet(depth=2, base_filters=4, context_level=1)
        net.compile(optimizer=keras.optimizers.Adam(1e-3), loss=segmentation_loss())
    finally:
        keras.config.set_dtype_policy(previous)
    assert net.get_layer("enc0_conv1").compute_dtype == "float16"
    assert net.get_layer("context").compute_dtype == "float16"
    assert net.get_layer("probabilities").compute_dtype == "float32"
    assert isinstance(net.optimizer, keras.optimizers.LossScaleOptimizer)
    rng = np.random.default_rng(8)
    x = rng.uniform(size=(2, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 3, (2, 16, 16)).astype("uint8")
    probs = net(x)
    assert probs.dtype == "float32"
    np.testing.assert_allclose(np.asarray(probs).sum(-1), 1.0, atol=1e-5)
    before = [np.asarray(w).copy() for w in net.trainable_weights]
    loss = float(net.train_on_batch(x, y))
    assert np.isfinite(loss) and 0.5 < loss < 3.0  # about log(3) at initialisation
    changed = [not np.array_equal(b, np.asarray(w)) for b, w in zip(before, net.trainable_weights)]
    assert all(w.dtype == "float32" for w in net.trainable_weights) and sum(changed) > len(changed) // 2


def test_network_stride():
    assert [network_stride(d) for d in range(5)] == [1, 2, 4, 8, 16]
    assert network_stride(build_unet(depth=3, base_filters=2, context=False)) == 8
    with pytest.raises(ValueError, match="model_or_depth"):
        network_stride(-1)


@pytest.mark.parametrize("kwargs, match", [
    ({"upsampling": "bicubic"}, "upsampling"), ({"depth": -1}, "depth"),
    ({"base_filters": 0}, "base_filters"), ({"num_classes": 1}, "num_classes"),
    ({"dropout": 1.0}, "dropout"), ({"depth": 2.0}, "depth"),
    ({"context_channels": 0}, "context_channels"),
    ({"context_implementation": "fft"}, "implementation"),
])
def test_build_unet_rejects_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build_unet(**kwargs)


def test_save_and_load_round_trip(tmp_path):
    net = build_unet(depth=1, base_filters=2, upsampling="bilinear", context=True,
                     context_implementation="conv2d")
    net.compile(optimizer="adam", loss=segmentation_loss(class_weights=[0.5, 1.0, 3.0]))
    net.optimizer.build(net.trainable_variables)
    x = np.random.default_rng(3).uniform(size=(1, 10, 14, 3)).astype("float32")
    path = tmp_path / "unet.keras"
    net.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(net(x)), atol=1e-6)
    assert loaded.get_layer("context").dilations == CONTEXT_DILATIONS
    assert loaded.get_layer("context").implementation == "conv2d"
    assert loaded.loss.class_weights == [0.5, 1.0, 3.0] and loaded.loss.ignore_index == 255


# Probabilities of 4 pixels (one batch element, 2 x 2) and their labels; the last is unlabelled.
PROBS = np.array([[[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]],
                   [[0.2, 0.2, 0.6], [0.0, 0.0, 1.0]]]], "float32")
LABELS = np.array([[[0, 1], [2, 255]]])
NLL = -np.log([0.5, 0.8, 0.6])


def test_loss_is_the_mean_over_labelled_pixels():
    loss = segmentation_loss()
    assert float(loss(LABELS, PROBS)) == pytest.approx(NLL.mean(), rel=1e-6)
    assert float(loss(LABELS[..., None], PROBS)) == pytest.approx(NLL.mean(), rel=1e-6)


def test_loss_with_class_and_pixel_weights():
    weighted = segmentation_loss(class_weights=[1.0, 2.0, 4.0])
    expected = (NLL * [1, 2, 4]).sum() / 3
    assert float(weighted(LABELS, PROBS)) == pytest.approx(expected, rel=1e-6)
    pixel_weights = np.array([[[2.0, 0.0], [1.0, 9.0]]], "float32")
    expected = (NLL * [2, 0, 1]).sum() / 3
    assert float(segmentation_loss()(LABELS, PROBS, sample_weight=pixel_weights)) == \
        pytest.approx(expected, rel=1e-6)


def test_loss_ignores_unlabelled_pixels_and_zero_probabilities():
    loss = segmentation_loss()
    assert float(loss(np.full((1, 2, 2), 255), PROBS)) == 0.0
    probs = tf.constant(PROBS)
    with tf.GradientTape() as tape:
        tape.watch(probs)
        value = loss(np.array([[[0, 1], [2, 0]]]), probs)  # last pixel: P(true class) = 0
    assert float(value) == pytest.approx((NLL.sum() - np.log(1e-7)) / 4, rel=1e-5)
    assert np.all(np.isfinite(np.asarray(tape.gradient(value, probs))))


@pytest.mark.parametrize("kwargs, match", [
    ({"class_weights": [1.0, -1.0, 1.0]}, "class_weights"),
    ({"class_weights": [[1.0, 2.0]]}, "class_weights"),
    ({"ignore_index": "255"}, "ignore_index"),
])
def test_loss_rejects_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        segmentation_loss(**kwargs)


def test_median_frequency_class_weights():
    masks = [np.array([[0, 0, 0, 1], [0, 0, 1, 2]]), np.array([[0, 0], [0, 255]])]
    # freq: background 8/11 (both masks), building 2/8, boundary 1/8; median 2/8
    np.testing.assert_allclose(pixel_class_weights(masks), [11 / 32, 1.0, 2.0], rtol=1e-6)
    # a class that never occurs gets weight 1
    np.testing.assert_allclose(pixel_class_weights(np.array([[[0, 0, 0, 1]]])), [2 / 3, 2, 1],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="masks"):
        pixel_class_weights([np.array([[0, 3]])])
    with pytest.raises(ValueError, match="no labelled pixel"):
        pixel_class_weights([np.full((2, 2), 255)])


def test_every_dilation_gets_off_centre_gradient_at_the_cli_defaults():
    """The U-Net of ``python -m assignment2.train`` without options, on one batch of default
    crops: every dilated kernel of the context module gets gradient at its 8 off-centre taps
    (with the module at the bottleneck, 8 x 8 maps, the dilation-8 and -16 taps get none)."""
    from assignment2.train import TrainConfig, build_model

    config = TrainConfig()
    model = build_model(config, total_steps=10)
    context = model.get_layer("context")
    side = config.crop_size // 2**config.context_level
    assert dead_dilations(side, context.dilations) == ()
    rng = np.random.default_rng(11)
    x = tf.constant(rng.uniform(size=(2, config.crop_size, config.crop_size, 3)), tf.float32)
    y = tf.constant(rng.integers(0, 3, (2, config.crop_size, config.crop_size)), tf.int32)
    with tf.GradientTape() as tape:
        loss = model.loss(y, model(x, training=True))
    grads = tape.gradient(loss, context.dilated_kernels)
    assert len(grads) == len(context.dilations) == len(CONTEXT_DILATIONS)
    for rate, grad in zip(context.dilations, grads):
        taps = np.abs(np.asarray(grad)).max(axis=(2, 3))  # (3, 3): largest |gradient| per tap
        taps[1, 1] = np.inf
        assert taps.min() > 0, (rate, taps)
