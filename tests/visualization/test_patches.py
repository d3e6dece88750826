"""Receptive fields of known stacks (hand-computed and checked against gradients) and top patches."""

import keras
import numpy as np
import pytest

from visualization.patches import ReceptiveField, receptive_field, top_patches


def _conv(name, k=3, s=1, d=1, padding="same", filters=1):
    return keras.layers.Conv2D(filters, k, strides=s, dilation_rate=d, padding=padding,
                               name=name, kernel_initializer="ones", use_bias=False)


def _chain(size, *layers):
    return keras.Sequential([keras.Input((size, size, 1)), *layers])


def test_dilations_1_2_4_give_fields_of_3_7_15():
    model = _chain(32, _conv("d1", d=1), _conv("d2", d=2), _conv("d4", d=4))
    sizes = [receptive_field(model, name).size for name in ("d1", "d2", "d4")]
    assert sizes == [(3, 3), (7, 7), (15, 15)]
    assert receptive_field(model, "d4") == ReceptiveField((15, 15), (1, 1), (-7, -7))


def test_valid_conv_pool_conv_by_hand_and_from_a_list_of_layers():
    layers = [_conv("c1", padding="valid"), keras.layers.MaxPooling2D(2, name="p1"),
              keras.layers.ReLU(name="r"), _conv("c2", k=5, padding="valid")]
    model = _chain(20, *layers)
    # c1: 3, jump 1; p1: 3 + 1*1 = 4, jump 2; c2: 4 + 4*2 = 12, jump 2; no padding: start 0.
    assert receptive_field(model, "c1") == ReceptiveField((3, 3), (1, 1), (0, 0))
    assert receptive_field(model, "p1") == ReceptiveField((4, 4), (2, 2), (0, 0))
    assert receptive_field(model, "c2") == ReceptiveField((12, 12), (2, 2), (0, 0))
    assert receptive_field(layers, "c2") == receptive_field(model, "c2")


def test_same_padding_with_stride_depends_on_the_input_size():
    # TF "same", k=3, s=2: n=7 pads 1 pixel before (total 2), n=8 pads 0 before (total 1).
    assert receptive_field(_chain(7, _conv("c", s=2)), "c").start == (-1, -1)
    assert receptive_field(_chain(8, _conv("c", s=2)), "c").start == (0, 0)
    unknown = keras.Sequential([keras.Input((None, None, 1)), _conv("c", s=2)])
    with pytest.raises(ValueError, match="input_size"):
        receptive_field(unknown, "c")
    assert receptive_field(unknown, "c", input_size=(7, 7)).start == (-1, -1)


def test_non_square_kernels_and_zero_padding_are_per_axis():
    model = _chain(12, keras.layers.ZeroPadding2D(((2, 0), (1, 1)), name="zp"),
                   keras.layers.Conv2D(1, (3, 5), strides=(1, 2), name="c"))
    assert receptive_field(model, "c") == ReceptiveField((3, 5), (1, 2), (-2, -1))


@pytest.mark.parametrize("size, residual", [(15, False), (16, False), (9, True), (10, True)])
def test_field_equals_the_pixels_that_move_the_unit(size, residual):
    """With positive weights and no max, raising one pixel raises a unit exactly when the pixel
    lies in its field; all single-pixel changes go through the model as one batch."""
    if residual:  # positive inputs keep the ReLU of the residual net linear
        model, name = _residual_net(size), "top"
    else:
        model, name = _chain(size, _conv("a", s=2), keras.layers.AveragePooling2D(2, 1, name="p"),
                             _conv("b", d=2, padding="valid"), _conv("c", s=2)), "c"
    field = receptive_field(model, name)
    probes = np.ones((size * size, size, size, 1), np.float32)
    probes[np.arange(size * size), np.arange(size * size) // size, np.arange(size * size) % size] = 2
    base = np.asarray(model(np.ones((1, size, size, 1), np.float32)))[0]
    moved = np.asarray(model(probes)) != base  # (size * size, h, w, 1)
    for row, col in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        support = moved[:, row, col, 0].reshape(size, size)
        top, left, bottom, right = field.box(row, col)
        expected = np.zeros_like(support)
        expected[max(top, 0):bottom, max(left, 0):right] = True
        np.testing.assert_array_equal(support, expected)


def test_receptive_field_errors_name_the_layer():
    model = _chain(8, _conv("c"), keras.layers.Flatten(name="flat"), keras.layers.Dense(2, name="fc"))
    with pytest.raises(ValueError, match=r"'nope'.*available.*'c'.*'fc'"):
        receptive_field(model, "nope")
    with pytest.raises(ValueError, match="'fc'.*no spatial dimensions"):
        receptive_field(model, "fc")
    inputs = keras.Input((8, 8, 1))
    merged = keras.layers.Add(name="add")([_conv("x", k=5, padding="valid")(inputs),
                                           _conv("y", s=2)(inputs)])  # both 4x4
    with pytest.raises(ValueError, match="'add' merges branches with different strides"):
        receptive_field(keras.Model(inputs, merged), "add")
    layers = [_conv("x"), keras.layers.Add(name="add")]
    with pytest.raises(ValueError, match="pass the model"):
        receptive_field(layers, "add")


def _residual_net(size):
    """conv -> [conv s2 -> conv] + [1x1 conv s2] -> conv, the base nested in a Sequential."""
    inputs = keras.Input((size, size, 1))
    stem = _conv("stem")(inputs)
    main = _conv("m2")(_conv("m1", s=2)(stem))
    shortcut = _conv("short", k=1, s=2)(stem)
    merged = keras.layers.Add(name="add")([main, shortcut])
    base = keras.Model(inputs, keras.layers.ReLU(name="relu")(merged), name="base")
    return keras.Sequential([keras.Input((size, size, 1)), base,
                             keras.layers.AveragePooling2D(2, 1, name="pool"), _conv("top")])


def test_residual_branches_give_the_union_of_their_fields_inside_a_nested_base():
    model = _residual_net(8)
    # stem 3 (start -1); main: m1 s2 -> 5, jump 2, start -1 (n=8: pads 0 first), m2 -> 9,
    # start -3; shortcut 1x1 s2 -> 3, start -1; union: start -3, size 9
    assert receptive_field(model, "add") == ReceptiveField((9, 9), (2, 2), (-3, -3))
    assert receptive_field(model, "pool") == ReceptiveField((11, 11), (2, 2), (-3, -3))
    assert receptive_field(model, "top") == ReceptiveField((15, 15), (2, 2), (-5, -5))


def _box_images():
    """Three 8x8 images, each with a bright 3x3 square of a different intensity and place."""
    images = np.zeros((3, 8, 8, 1), np.float32)
    images[0, 1:4, 2:5] = 0.5   # centre (2, 3)
    images[1, 4:7, 4:7] = 1.0   # centre (5, 5)
    images[2, 0:3, 0:3] = 0.6   # centre (1, 1)
    return images


def _sum_model(padding="valid"):
    """Unit 0 sums a 3x3 window, unit 1 is its negative."""
    conv = keras.layers.Conv2D(2, 3, padding=padding, name="conv", use_bias=False)
    model = _chain(8, conv, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2))
    conv.set_weights([np.stack([np.ones((3, 3, 1)), -np.ones((3, 3, 1))], axis=-1)])
    return model


def test_top_patches_find_the_squares_strongest_first():
    images = _box_images()
    top = top_patches(_sum_model(), images, "conv", 0, k=3)
    np.testing.assert_array_equal(top.locations, [[1, 4, 4], [2, 0, 0], [0, 1, 2]])
    np.testing.assert_allclose(top.activations, [9.0, 5.4, 4.5], rtol=1e-6)
    assert top.patches.shape == (3, 3, 3, 1)
    for patch, (n, r, c) in zip(top.patches, top.locations):
        np.testing.assert_array_equal(patch, images[n, r:r + 3, c:c + 3])
    np.testing.assert_array_equal(top.boxes[0], [4, 4, 7, 7])


def test_top_patches_without_one_per_image_can_repeat_an_image():
    top = top_patches(_sum_model(), _box_images(), "conv", 0, k=2, one_per_image=False)
    assert top.locations[0, 0] == top.locations[1, 0] == 1
    assert top.activations[0] == 9.0 and top.activations[1] == 6.0


def test_top_patches_at_the_border_are_padded_to_the_full_field():
    images = _box_images()
    top = top_patches(_sum_model("same"), images, "conv", 0, k=3, pad_value=-1.0)
    n, r, c = top.locations[1]
    assert (n, r, c) == (2, 1, 1)  # the "same" unit centred on the corner square
    corner = top_patches(_sum_model("same"), images[2:], "conv", 1, k=1, pad_value=-1.0)
    # unit 1 (negative sum) is largest where the window holds least of the square: a corner
    # position of the empty image area, far from the square
    assert corner.activations[0] == 0.0
    edge = top_patches(_sum_model("same"), np.ones((1, 8, 8, 1), np.float32), "conv", 1, k=1,
                       pad_value=-1.0)
    # on a constant image the negative sum is largest at a corner (4 pixels inside, 5 padded)
    np.testing.assert_array_equal(edge.locations[0], [0, 0, 0])
    np.testing.assert_array_equal(edge.patches[0, ..., 0],
                                  [[-1, -1, -1], [-1, 1, 1], [-1, 1, 1]])
    np.testing.assert_array_equal(edge.boxes[0], [0, 0, 2, 2])


@pytest.mark.parametrize("kwargs, pattern", [
    ({"unit_index": 2}, r"unit_index must be in \[0, 2\), got 2"),
    ({"unit_index": -1}, "unit_index"),
    ({"k": 4}, r"k must be in \[1, 3\].*got 4"),
    ({"k": 0}, "k must be"),
    ({"layer_name": "dense"}, "'dense' has no spatial dimensions"),
    ({"layer_name": "missing"}, "available"),
])
def test_top_patches_bad_input(kwargs, pattern):
    model = _chain(8, _conv("conv", filters=2), keras.layers.Flatten(),
                   keras.layers.Dense(2, name="dense"))
    args = {"layer_name": "conv", "unit_index": 0, "k": 1, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        top_patches(model, _box_images(), args["layer_name"], args["unit_index"], k=args["k"])


def test_vgg16_pool5_field_is_212_pixels_as_published():
    """Araujo et al. 2019 ("Computing receptive fields of CNNs", Distill): VGG-16 pool5 sees
    212 pixels with a jump of 32; no weights are downloaded (weights=None)."""
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    field = receptive_field(vgg, "block5_pool")
    assert field.size == (212, 212) and field.jump == (32, 32)
