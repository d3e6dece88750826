"""Target models: the slides' Residual / ResnetBlock in Keras 3, the small CNN and the ResNet."""

import keras
import numpy as np
import pytest

from adversarial.models import Residual, ResnetBlock, resnet, small_cnn


def test_residual_keeps_shape_as_on_the_slides():
    x = np.random.rand(4, 6, 6, 3).astype("float32")
    assert tuple(Residual(3)(x).shape) == (4, 6, 6, 3)


def test_residual_with_1x1conv_and_stride_2_as_on_the_slides():
    x = np.random.rand(4, 6, 6, 3).astype("float32")
    assert tuple(Residual(6, use_1x1conv=True, strides=2)(x).shape) == (4, 3, 3, 6)


def test_residual_adds_the_input_before_the_last_relu():
    """With both convolutions zeroed, ``relu(bn(0) + x) = relu(x)``: the identity shortcut."""
    block = Residual(2)
    x = np.random.randn(3, 5, 5, 2).astype("float32")
    block(x)
    for conv in (block.conv1, block.conv2):
        conv.kernel.assign(np.zeros(conv.kernel.shape, "float32"))
        conv.bias.assign(np.zeros(conv.bias.shape, "float32"))
    np.testing.assert_allclose(block(x, training=False), np.maximum(x, 0), atol=1e-6)


def test_residual_without_1x1conv_rejects_a_channel_change():
    with pytest.raises(ValueError, match="use_1x1conv"):
        Residual(6)(np.zeros((1, 6, 6, 3), "float32"))
    with pytest.raises(ValueError, match="num_channels"):
        Residual(0)


def test_resnet_block_downsamples_unless_first():
    x = np.random.rand(2, 8, 8, 4).astype("float32")
    assert tuple(ResnetBlock(4, 2, first_block=True)(x).shape) == (2, 8, 8, 4)
    block = ResnetBlock(8, 3)
    assert tuple(block(x).shape) == (2, 4, 4, 8)
    assert [r.strides for r in block.residual_layers] == [2, 1, 1]
    assert [r.use_1x1conv for r in block.residual_layers] == [True, False, False]


@pytest.mark.parametrize("builder", [small_cnn, resnet])
def test_models_return_logits_and_survive_save_and_load(builder, tmp_path):
    model = builder(input_shape=(8, 8, 1), num_classes=10)
    x = np.random.rand(5, 8, 8, 1).astype("float32")
    logits = model(x, training=False)
    assert tuple(logits.shape) == (5, 10)
    # logits, not probabilities: rows do not sum to one and take negative values
    assert not np.allclose(np.sum(logits, axis=1), 1.0, atol=1e-3)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(x, training=False), logits, atol=1e-6)


def test_resnet_layout_and_bad_arguments():
    model = resnet(input_shape=(8, 8, 1), num_classes=3, channels=(4, 8, 16), num_residuals=1)
    blocks = [layer for layer in model.layers if isinstance(layer, ResnetBlock)]
    assert [b.num_channels for b in blocks] == [4, 8, 16]
    assert blocks[0].first_block and not blocks[1].first_block
    assert tuple(model.output.shape) == (None, 3)
    with pytest.raises(ValueError, match="input_shape"):
        small_cnn(input_shape=(8, 8))
    with pytest.raises(ValueError, match="num_classes"):
        small_cnn(num_classes=0)
    with pytest.raises(ValueError, match="channels"):
        resnet(channels=())
