"""Test-time augmentation: exact transforms and inverses, padding, batched views."""

import keras
import numpy as np
import pytest

from assignment2.tta import dihedral_transforms, predict_probs, predict_tta

LITERAL = np.array([[1, 2, 3], [4, 5, 6]])[None, :, :, None]


def _per_pixel_model(channels=3, classes=3, seed=0):
    """A 1x1 convolution + softmax, and its numpy reference (equivariant under any permutation)."""
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(channels, classes)).astype("float32")
    bias = rng.normal(size=classes).astype("float32")
    inputs = keras.Input((None, None, channels))
    outputs = keras.layers.Conv2D(classes, 1, activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    model.layers[1].set_weights([kernel[None, None], bias])

    def reference(x):
        logits = x @ kernel + bias
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    return model, reference


def _conv_model(seed=0):
    """A 3x3 convolution + softmax with random weights: not equivariant to rotations."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    hidden = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Conv2D(3, 3, padding="same", activation="softmax")(hidden)
    return keras.Model(inputs, outputs)


def test_dihedral_transforms_on_a_literal_array():
    forwards = [np.asarray(f(LITERAL))[0, :, :, 0] for f, _ in dihedral_transforms()]
    assert len(forwards) == 8
    np.testing.assert_array_equal(forwards[0], [[1, 2, 3], [4, 5, 6]])  # identity
    np.testing.assert_array_equal(forwards[1], [[3, 6], [2, 5], [1, 4]])  # 90 deg ccw
    np.testing.assert_array_equal(forwards[2], [[6, 5, 4], [3, 2, 1]])  # 180 deg
    np.testing.assert_array_equal(forwards[3], [[4, 1], [5, 2], [6, 3]])  # 270 deg
    np.testing.assert_array_equal(forwards[4], [[3, 2, 1], [6, 5, 4]])  # flip
    np.testing.assert_array_equal(forwards[5], [[1, 4], [2, 5], [3, 6]])  # flip, 90: transpose


def test_dihedral_inverses_are_exact_and_views_distinct():
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype("float32")
    views = []
    for forward, inverse in dihedral_transforms():
        view = np.asarray(forward(x))
        views.append(view)
        np.testing.assert_array_equal(np.asarray(inverse(view)), x)
        np.testing.assert_array_equal(np.asarray(forward(np.asarray(inverse(x)))), x)
    assert len({v.tobytes() + bytes(v.shape) for v in views}) == 8


def test_dihedral_transforms_form_a_group():
    x = np.arange(16).reshape(1, 4, 4, 1)
    pairs = dihedral_transforms()
    views = {np.asarray(f(x)).tobytes() for f, _ in pairs}
    for f, _ in pairs:
        for g, _ in pairs:
            assert np.asarray(f(np.asarray(g(x)))).tobytes() in views


def test_predict_probs_on_650_px_tiles_crops_back_to_650():
    model, reference = _per_pixel_model()
    rng = np.random.default_rng(1)
    tiles = rng.random((2, 650, 650, 3)).astype("float32")
    probs = predict_probs(model, tiles, multiple=16, batch_size=2)
    assert probs.shape == (2, 650, 650, 3)
    np.testing.assert_allclose(probs, reference(tiles), atol=1e-5)


def test_tta_on_a_650_px_tile_through_a_strided_unet():
    from assignment2.model import build_unet

    keras.utils.set_random_seed(0)
    model = build_unet(depth=2, base_filters=2, context=False)
    tile = np.random.default_rng(2).random((650, 650, 3)).astype("float32")
    probs = predict_tta(model, tile, transforms="flips", multiple=4)
    assert probs.shape == (650, 650, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_predict_probs_pads_and_crops_back_in_place():
    model, reference = _per_pixel_model()
    images = np.random.default_rng(1).normal(size=(3, 13, 21, 3)).astype("float32")
    expected = reference(images)
    for batch_size in (1, 2, 8):
        probs = predict_probs(model, images, multiple=16, batch_size=batch_size)
        assert probs.shape == (3, 13, 21, 3) and probs.dtype == np.float32
        np.testing.assert_allclose(probs, expected, atol=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        predict_probs(model, images, batch_size=0)


def test_tta_maps_every_view_back_exactly():
    """A per-pixel model predicts the same for every view, so TTA equals the plain prediction
    only if each view is mapped back to the right place (non-square, not a multiple of 16)."""
    model, reference = _per_pixel_model()
    image = np.random.default_rng(2).normal(size=(13, 21, 3)).astype("float32")
    for transforms in ("d4", "flips", "none", dihedral_transforms()[1:4]):
        probs = predict_tta(model, image, transforms=transforms)
        assert probs.shape == (13, 21, 3) and probs.dtype == np.float32
        np.testing.assert_allclose(probs, reference(image), atol=1e-6)


def test_tta_average_is_equivariant_for_any_model():
    """For the D4 average, predicting a transformed tile gives the transformed prediction,
    although the model itself is not equivariant."""
    model = _conv_model()
    image = np.random.default_rng(3).normal(size=(1, 16, 16, 3)).astype("float32")
    plain = predict_probs(model, image)
    averaged = predict_tta(model, image[0])
    np.testing.assert_allclose(averaged.sum(-1), 1.0, atol=1e-5)
    worst = 0.0
    for forward, _ in dihedral_transforms():
        moved = np.asarray(forward(image))
        np.testing.assert_allclose(predict_tta(model, moved[0]),
                                   np.asarray(forward(averaged[None]))[0], atol=1e-5)
        worst = max(worst, np.abs(predict_probs(model, moved) - np.asarray(forward(plain))).max())
    assert worst > 1e-2  # the model alone is not equivariant: the property above is TTA's doing


def test_tta_is_the_mean_of_the_inverted_views():
    model = _conv_model(seed=4)
    image = np.random.default_rng(4).normal(size=(16, 16, 3)).astype("float32")
    views = [np.asarray(inv(predict_probs(model, np.asarray(fwd(image[None])))))
             for fwd, inv in dihedral_transforms()]
    np.testing.assert_allclose(predict_tta(model, image), np.mean(views, axis=0)[0], atol=1e-6)


def test_the_views_go_through_the_model_as_one_batch():
    model, _ = _per_pixel_model()
    shapes = []

    def counting(batch):
        shapes.append(tuple(batch.shape))
        return model(batch)

    image = np.random.default_rng(5).normal(size=(20, 37, 3)).astype("float32")
    predict_tta(counting, image, multiple=16)
    assert shapes == [(8, 48, 48, 3)]
    shapes.clear()
    probs = predict_tta(counting, image, scales=(1.0, 0.5), multiple=16)
    assert shapes == [(8, 48, 48, 3), (8, 32, 32, 3)]
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_scales_on_a_constant_tile():
    model, reference = _per_pixel_model()
    image = np.full((12, 18, 3), 0.3, "float32")
    probs = predict_tta(model, image, scales=(0.5, 1.0, 1.5), multiple=8)
    np.testing.assert_allclose(probs, reference(image), atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"image": np.ones((4, 4))}, "image"), ({"transforms": "d8"}, "transforms"),
    ({"transforms": [(abs,)]}, "transforms"), ({"scales": (0.0,)}, "scales"),
    ({"scales": "big"}, "scales"), ({"multiple": -16}, "multiple"),
])
def test_predict_tta_rejects_bad_arguments(kwargs, match):
    model, _ = _per_pixel_model()
    arguments = {"image": np.ones((4, 4, 3), "float32"), **kwargs}
    with pytest.raises(ValueError, match=match):
        predict_tta(model, **arguments)
