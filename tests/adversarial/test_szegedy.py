"""Szegedy et al.'s MNIST tables: the paper's models, the weight decay, the measurements, the CLI."""

import json

import keras
import numpy as np
import pytest

from adversarial import szegedy


def test_paper_tables_are_complete_and_in_model_order():
    assert list(szegedy.PAPER_TABLE) == list(szegedy.MODEL_NAMES)
    assert list(szegedy.PAPER_CROSS_MODEL)[:6] == list(szegedy.MODEL_NAMES)
    for row, errors in szegedy.PAPER_CROSS_MODEL.items():
        assert len(errors) == 6
        if row in szegedy.MODEL_NAMES:  # each model misclassifies all its own examples
            assert errors[szegedy.MODEL_NAMES.index(row)] == 1.0
    assert szegedy.PAPER_TABLE["FC100-100-10"] == (0.0, 0.0164, 0.058)


def test_fc_network_layout_and_the_papers_weight_decay():
    model = szegedy.fc_network((100, 100), (1e-5, 1e-5, 1e-6), "FC100-100-10")
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [100, 100, 10]
    assert [layer.activation.__name__ for layer in dense] == ["sigmoid", "sigmoid", "linear"]
    for layer in dense:
        layer.kernel.assign(np.full(layer.kernel.shape, 0.5, np.float32))
    model(np.zeros((1, 28, 28, 1), np.float32))
    # lambda * sum(w^2) / units per layer, biases not penalised
    expected = (1e-5 * 784 * 100 * 0.25 / 100 + 1e-5 * 100 * 100 * 0.25 / 100
                + 1e-6 * 100 * 10 * 0.25 / 10)
    np.testing.assert_allclose(float(sum(model.losses)), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="decays must have 3 entries"):
        szegedy.fc_network((100, 100), (1e-5,), "bad")


def test_wrong_targets_are_never_the_label_and_cover_the_other_classes():
    labels = np.repeat(np.arange(10), 50)
    targets = szegedy.wrong_targets(labels, seed=3)
    assert np.all(targets != labels) and targets.min() >= 0 and targets.max() <= 9
    assert len(np.unique(targets[labels == 0])) == 9
    np.testing.assert_array_equal(targets, szegedy.wrong_targets(labels, seed=3))


def test_noise_baseline_has_the_stddev_and_stays_in_range():
    images = np.full((200, 28, 28, 1), 0.5, np.float32)
    blurred = szegedy.noisy(images, 0.1, seed=0)
    assert blurred.min() >= 0 and blurred.max() <= 1
    assert abs(float(np.std(blurred - images)) - 0.1) < 0.002


def test_cross_model_table_counts_errors_of_each_column_model():
    x = np.zeros((4, 2), np.float32)
    y = np.array([0, 0, 1, 1])

    def constant(cls):  # a model predicting one class
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
        model.set_weights([np.zeros((2, 2), np.float32), np.eye(2, dtype=np.float32)[cls]])
        return model

    models = {"zero": constant(0), "one": constant(1)}
    table = szegedy.cross_model_table(models, {"zero": x, "one": x}, x, y)
    assert table["zero"] == [0.5, 0.5] and table["one"] == [0.5, 0.5]
    assert list(table)[2:] == ["Gaussian noise, stddev=0.1", "Gaussian noise, stddev=0.3"]


def test_cli_writes_both_tables_beside_the_papers(tmp_path, capsys):
    argv = ["--output-dir", str(tmp_path), "--epochs", "2", "--autoencoder-epochs", "1",
            "--train-size", "300", "--num-attacked", "3", "--search-steps", "2",
            "--max-iterations", "15"]
    assert szegedy.main(argv) == 0
    result = json.loads((tmp_path / "szegedy_mnist.json").read_text())
    assert list(result["models"]) == list(szegedy.MODEL_NAMES)
    for row in result["models"].values():
        assert 0 <= row["test_error"] <= 1 and 0 <= row["attack_success_rate"] <= 1
    assert list(result["cross_model_error"]) == list(szegedy.PAPER_CROSS_MODEL)
    assert result["num_train"] == 300 and result["num_attacked"] == 3
    text = (tmp_path / "szegedy_mnist.md").read_text()
    assert "| FC10(1) |" in text and "/ 20.0% |" in text  # the paper's FC10(1) test error
    assert json.loads((tmp_path / "szegedy_config.json").read_text())["epochs"] == 2


@pytest.mark.parametrize("argv, match", [
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--num-attacked", "2000"], "--num-attacked must be <= 1000"),
    (["--learning-rate", "-1"], "--learning-rate must be > 0"),
])
def test_bad_options_exit_2_with_one_line(argv, match, capsys):
    assert szegedy.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and match in lines[0]
