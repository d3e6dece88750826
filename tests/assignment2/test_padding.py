"""The one pad/crop helper: reflection like np.pad, IGNORE_INDEX masks, numpy and tf alike."""

import numpy as np
import pytest
import tensorflow as tf

from assignment2 import IGNORE_INDEX
from assignment2.padding import crop_mask_to, crop_to, pad_image, pad_mask, padded_size

LITERAL = np.array([[1, 2, 3], [4, 5, 6]])[None, :, :, None]


def test_pad_image_reflects_bottom_and_right_on_a_literal():
    padded = pad_image(LITERAL, 4)
    np.testing.assert_array_equal(padded[0, :, :, 0], [[1, 2, 3, 2], [4, 5, 6, 5],
                                                       [1, 2, 3, 2], [4, 5, 6, 5]])
    np.testing.assert_array_equal(pad_image(LITERAL, 1), LITERAL)
    square = pad_image(LITERAL, 2, size=(4, 4))
    assert square.shape == (1, 4, 4, 1)
    np.testing.assert_array_equal(square[0, :2, :3, 0], LITERAL[0, :, :, 0])
    np.testing.assert_array_equal(pad_image(np.ones((1, 1, 3, 2)), 4), np.ones((1, 4, 4, 2)))


@pytest.mark.parametrize("height, width, multiple", [(650, 650, 16), (650, 650, 64), (5, 3, 16),
                                                     (30, 27, 16), (2, 2, 8), (64, 64, 16)])
def test_pad_image_equals_np_pad_reflect_even_for_pads_longer_than_the_tile(height, width,
                                                                             multiple):
    image = np.random.default_rng(0).random((height, width, 2)).astype(np.float32)
    target = padded_size(height, width, multiple)
    expected = np.pad(image, ((0, target[0] - height), (0, target[1] - width), (0, 0)),
                      mode="reflect")
    np.testing.assert_array_equal(pad_image(image, multiple), expected)
    tensor = pad_image(tf.constant(image), multiple)
    assert tf.is_tensor(tensor) and tensor.shape.as_list() == [*target, 2]  # static shape
    np.testing.assert_array_equal(tensor.numpy(), expected)
    graph = tf.function(lambda x: pad_image(x, multiple),
                        input_signature=[tf.TensorSpec([None, None, 2])])
    np.testing.assert_array_equal(graph(image).numpy(), expected)


def test_pad_mask_fills_ignore_index_and_crops_back():
    mask = np.array([[0, 1, 2, 1, 0]] * 3, np.uint8)
    padded = pad_mask(mask, 4)
    expected = np.full((4, 8), IGNORE_INDEX, np.uint8)
    expected[:3, :5] = mask
    np.testing.assert_array_equal(padded, expected)
    np.testing.assert_array_equal(pad_mask(tf.constant(mask), 4).numpy(), expected)
    np.testing.assert_array_equal(crop_mask_to(padded, 3, 5), mask)
    batch = pad_mask(np.stack([mask, mask]), 4, fill=7)
    assert batch.shape == (2, 4, 8) and (batch[:, 3] == 7).all()
    image = np.arange(30.0).reshape(3, 5, 2)
    np.testing.assert_array_equal(crop_to(pad_image(image, 8), 3, 5), image)


@pytest.mark.parametrize("call, match", [
    (lambda: pad_image(np.ones((4, 4)), 4), "image"),
    (lambda: pad_image(LITERAL, 0), "multiple"),
    (lambda: pad_image(LITERAL, 2.0), "multiple"),
    (lambda: pad_image(LITERAL, 4, size=(4, 6)), "size"),
    (lambda: pad_image(LITERAL, 4, size=(0, 4)), "size"),
    (lambda: pad_mask(np.ones(4), 4), "mask"),
    (lambda: padded_size(3, 3, True), "multiple"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
