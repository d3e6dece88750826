"""Layer codes, t-SNE on tiny inputs, nearest neighbours on literal points."""

import keras
import numpy as np
import pytest

from visualization.representation import (
    code_layer_name,
    compare_neighbours,
    layer_codes,
    nearest_neighbours,
    tsne_embedding,
)


def _model():
    """image (4, 4, 1) -> conv -> flatten -> fc7 (3, relu) -> dropout -> classifier -> softmax."""
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", name="conv")(inputs)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(3, activation="relu", name="fc7")(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    x = keras.layers.Dense(4, name="classifier")(x)
    return keras.Model(inputs, keras.layers.Softmax(name="prob")(x))


def test_code_layer_is_the_one_before_the_classifier():
    assert code_layer_name(_model()) == "fc7"
    nested = keras.Sequential([keras.Input((4, 4, 1)), _model()])
    assert code_layer_name(nested) == "fc7"
    no_dense = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(1, 1, name="c")])
    with pytest.raises(ValueError, match="layer_name is needed"):
        code_layer_name(no_dense)


def test_layer_codes_default_and_flattened_spatial_codes():
    model = _model()
    images = np.random.default_rng(0).random((5, 4, 4, 1), dtype=np.float32)
    codes = layer_codes(model, images)
    flat = keras.Model(model.input, model.get_layer("flat").output)(images)
    fc7 = model.get_layer("fc7")
    expected = np.maximum(np.asarray(flat) @ np.asarray(fc7.kernel) + np.asarray(fc7.bias), 0)
    np.testing.assert_allclose(codes, expected, atol=1e-5)
    assert layer_codes(model, images, "conv").shape == (5, 32)


def test_nearest_neighbours_on_literal_points():
    database = np.array([[0.0], [1.0], [3.0], [7.0]])
    result = nearest_neighbours(np.array([[2.9], [0.2]]), database, k=2)
    np.testing.assert_array_equal(result.indices, [[2, 1], [0, 1]])
    np.testing.assert_allclose(result.distances, [[0.1, 1.9], [0.2, 0.8]], atol=1e-6)


def test_nearest_neighbours_flatten_images_break_ties_by_index_and_find_self():
    database = np.zeros((4, 2, 2, 1))
    database[1, 0, 0, 0] = 3.0
    database[2, 1, 1, 0] = 4.0
    database[3, 1, 0, 0] = -3.0
    result = nearest_neighbours(database, database, k=4)
    np.testing.assert_array_equal(result.indices[:, 0], [0, 1, 2, 3])
    np.testing.assert_allclose(result.distances[:, 0], 0.0, atol=1e-6)
    np.testing.assert_array_equal(result.indices[0], [0, 1, 3, 2])  # 3 and 3 tie: index order
    np.testing.assert_allclose(result.distances[1], [0.0, 3.0, np.sqrt(18), 5.0], atol=1e-5)


def test_compare_neighbours_uses_pixels_and_codes():
    model = _model()
    rng = np.random.default_rng(2)
    queries, database = rng.random((3, 4, 4, 1)), rng.random((6, 4, 4, 1))
    result = compare_neighbours(model, queries, database, k=3)
    assert result.layer_name == "fc7"
    np.testing.assert_array_equal(result.pixel.indices,
                                  nearest_neighbours(queries, database, 3).indices)
    expected = nearest_neighbours(layer_codes(model, queries), layer_codes(model, database), 3)
    np.testing.assert_array_equal(result.feature.indices, expected.indices)


def _two_clusters():
    rng = np.random.default_rng(0)
    centres = np.zeros((2, 10))
    centres[1, 0] = 20.0
    return np.concatenate([c + rng.normal(size=(8, 10)) for c in centres]), np.repeat([0, 1], 8)


def test_tsne_keeps_two_separated_clusters_apart_and_is_seeded():
    codes, labels = _two_clusters()
    embedding = tsne_embedding(codes, perplexity=30.0, seed=0)  # perplexity clipped to 5
    assert embedding.shape == (16, 2) and embedding.dtype == np.float32
    distances = np.linalg.norm(embedding[:, None] - embedding[None], axis=-1)
    same = labels[:, None] == labels[None]
    assert distances[same].max() < distances[~same].min()
    np.testing.assert_array_equal(tsne_embedding(codes, perplexity=30.0, seed=0), embedding)


@pytest.mark.parametrize("call, pattern", [
    (lambda: tsne_embedding(np.zeros((3, 2))), "at least 4 points"),
    (lambda: tsne_embedding(np.zeros((5, 2)), perplexity=0), "perplexity.*0"),
    (lambda: tsne_embedding(np.array([[np.nan, 1]] * 5)), "codes must be finite"),
    (lambda: nearest_neighbours(np.zeros((1, 2)), np.zeros((3, 2)), k=4), r"k must be in \[1, 3\]"),
    (lambda: nearest_neighbours(np.zeros((1, 2)), np.zeros((3, 3)), k=1), "same size"),
    (lambda: nearest_neighbours(np.zeros(2), np.zeros((3, 2)), k=1), r"queries must have shape"),
])
def test_bad_input(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_k_must_be_an_int():
    with pytest.raises(TypeError, match="k must be an int"):
        nearest_neighbours(np.zeros((1, 2)), np.zeros((3, 2)), k=1.0)
