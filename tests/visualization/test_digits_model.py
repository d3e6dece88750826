"""The default digits CNN: architecture, seeded builds, training into a cache, atomic reload."""

import json

import keras
import numpy as np
import pytest

from visualization import digits_model
from visualization._model import ends_in_softmax
from visualization.digits_model import build_digits_cnn, load_digits_cnn

REDUCED = {"epochs": 2, "train_size": 300}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cnn-cache")
    model = load_digits_cnn(folder, **REDUCED)
    return folder, model


def test_architecture_has_the_documented_layers_and_ends_in_softmax():
    model = build_digits_cnn()
    assert model.input_shape == (None, 28, 28, 1)
    assert model.output_shape == (None, 10)
    names = [layer.name for layer in model.layers]
    for name in ("conv1", "pool1", "conv2", "relu2", "pool2", "conv3", "fc", "predictions"):
        assert name in names
    assert isinstance(model.get_layer("relu2"), keras.layers.ReLU)
    assert ends_in_softmax(model)
    probabilities = np.asarray(model(np.zeros((2, 28, 28, 1), np.float32)))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_builds_with_the_same_seed_are_identical_and_other_seeds_differ():
    first, second, other = build_digits_cnn(3), build_digits_cnn(3), build_digits_cnn(4)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])


def test_training_writes_model_and_config_atomically(cache):
    folder, _ = cache
    assert sorted(p.name for p in folder.iterdir()) == ["digits_cnn.json", "digits_cnn.keras"]
    info = json.loads((folder / "digits_cnn.json").read_text())
    assert info["epochs"] == 2 and info["train_size"] == 300 and info["seed"] == 0
    # 2 epochs on 300 images already beat chance (10%) by far; the full config reaches >= 95%.
    assert 0.5 < info["test_accuracy"] <= 1.0
    assert digits_model.cached_test_accuracy(folder) == info["test_accuracy"]


def test_second_call_loads_the_cache_without_training(cache, monkeypatch):
    folder, trained = cache

    def no_training(**kwargs):
        raise AssertionError("the cached model should have been loaded")

    monkeypatch.setattr(digits_model, "train_digits_cnn", no_training)
    loaded = load_digits_cnn(folder, **REDUCED)
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(trained(x)), atol=1e-6)


def test_corrupt_cache_or_other_config_is_retrained(cache, monkeypatch, tmp_path):
    folder, trained = cache
    calls = []

    def fake_training(**kwargs):
        calls.append(kwargs)
        return trained, 0.5

    monkeypatch.setattr(digits_model, "train_digits_cnn", fake_training)
    for name in ("digits_cnn.keras", "digits_cnn.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    load_digits_cnn(tmp_path, epochs=3, train_size=300)  # config differs from the cached one
    assert calls[-1]["epochs"] == 3
    (tmp_path / "digits_cnn.keras").write_bytes(b"not a keras file")
    load_digits_cnn(tmp_path, epochs=3, train_size=300)
    assert len(calls) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_cache_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CNN_COURSE_CACHE", str(tmp_path / "c"))
    assert digits_model.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CNN_COURSE_CACHE")
    assert digits_model.default_cache_dir().parts[-2:] == (".cache", "cnn-course")


@pytest.mark.parametrize("kwargs, error", [
    ({"epochs": 0}, ValueError), ({"epochs": 1.5}, TypeError), ({"train_size": 0}, ValueError),
    ({"epochs": True}, TypeError)])
def test_bad_training_config_is_rejected_with_the_argument_name(kwargs, error, tmp_path):
    with pytest.raises(error, match=next(iter(kwargs))):
        load_digits_cnn(tmp_path, **kwargs)
