"""``python -m visualization``: outputs of the methods on a tiny saved model, image loading,
``--help`` and the one-line error exits."""

import dataclasses
import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from visualization import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SIZE, CLASSES = 12, 3


def _tiny_model():
    """``12x12x1 -> c1 Conv(4) -> pool -> c2 Conv(6) -> flatten -> fc Dense(8) -> out Dense(3,
    softmax)`` with fixed normal weights."""
    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1"),
        keras.layers.MaxPooling2D(2, name="p1"),
        keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(8, activation="relu", name="fc"),
        keras.layers.Dense(CLASSES, activation="softmax", name="out"),
    ], name="tiny")
    rng = np.random.default_rng(3)
    model.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32")
                       for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    _tiny_model().save(path)
    return str(path)


def _run(method, out, model_path, *extra):
    return cli.main([method, "--model", model_path, "--output-dir", str(out), "--num-images", "3",
                     *extra])


def _outputs(out, method):
    png = (out / f"{method}.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 5000  # a drawn figure, not an empty file
    config = json.loads((out / "config.json").read_text())
    return np.load(out / f"{method}.npy"), config


# method, extra options, shape of <method>.npy
CASES = [
    ("guided-backprop", ["--layer", "c2", "--unit", "1"], (3, SIZE, SIZE, 1)),
    ("grad-cam", [], (3, SIZE, SIZE)),
    ("deepdream", ["--steps", "2", "--octaves", "1"], (3, SIZE, SIZE, 1)),
    ("style-transfer", ["--steps", "2"], (1, SIZE, SIZE, 1)),
    ("filters", [], (4, 3, 3, 1)),
    ("top-patches", ["--dataset-size", "20", "--k", "4"], None),
    ("tsne", ["--dataset-size", "24", "--perplexity", "5"], (24, 2)),
    ("neighbours", ["--dataset-size", "20", "--k", "2"], (3, 2)),
    ("space-vs-units", ["--dataset-size", "20", "--k", "4"], (4,)),
]


@pytest.mark.parametrize("method, extra, shape", CASES, ids=[c[0] for c in CASES])
def test_method_writes_figure_arrays_and_config(tmp_path, model_path, method, extra, shape):
    assert _run(method, tmp_path, model_path, *extra) == 0
    result, config = _outputs(tmp_path, method)
    if shape is not None:
        assert result.shape == shape
    assert np.all(np.isfinite(result))
    assert config["method"] == method and config["model"] == model_path
    fields = {f.name for f in dataclasses.fields(cli.VisualizationConfig)}
    assert set(config) == fields | {"resolved"}
    if method not in cli.NO_INPUT_METHODS:
        images = np.load(tmp_path / "images.npy")
        assert images.shape == (3, SIZE, SIZE, 1) and 0 <= images.min() <= images.max() <= 1


def test_saliency_and_occlusion_files_hold_the_functions_results(tmp_path, model_path):
    from visualization import occlusion_sensitivity, saliency_map

    model = keras.saving.load_model(model_path)
    assert _run("saliency", tmp_path / "s", model_path, "--class-index", "1") == 0
    assert _outputs(tmp_path / "s", "saliency")[0].shape == (3, SIZE, SIZE)
    images = np.load(tmp_path / "s" / "images.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "s" / "classes.npy"), [1, 1, 1])
    np.testing.assert_allclose(np.load(tmp_path / "s" / "saliency.npy"),
                               saliency_map(model, images, 1, normalize=True), atol=1e-6)
    assert _run("occlusion", tmp_path / "o", model_path, "--patch-size", "6", "--stride", "3") == 0
    assert _outputs(tmp_path / "o", "occlusion")[0].shape == (3, 3, 3)  # (12 - 6) // 3 + 1
    predicted = np.argmax(model.predict(images, verbose=0), axis=1)
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "classes.npy"), predicted)
    np.testing.assert_allclose(np.load(tmp_path / "o" / "occlusion.npy"),
                               occlusion_sensitivity(model, images, patch_size=6, stride=3),
                               atol=1e-6)


def test_defaults_resolved_and_saved(tmp_path, model_path):
    assert _run("filters", tmp_path / "f", model_path) == 0
    assert json.loads((tmp_path / "f" / "config.json").read_text())["resolved"] == {"layer": "c1"}
    assert _run("class-model", tmp_path / "c", model_path, "--steps", "2") == 0
    result, config = _outputs(tmp_path / "c", "class-model")
    assert result.shape == (CLASSES, SIZE, SIZE, 1)  # every class when --class-index is absent
    assert config["resolved"] == {"classes": [0, 1, 2]} and config["steps"] == 2
    assert np.load(tmp_path / "c" / "history.npy").shape == (2, CLASSES)
    saved = {k: v for k, v in config.items() if k != "resolved"}
    saved["image"] = tuple(saved["image"])
    assert cli.VisualizationConfig(**saved).method == "class-model"  # round trip


def test_neuron_and_inversion_default_layers(tmp_path, model_path):
    assert _run("neuron", tmp_path / "n", model_path, "--steps", "2") == 0
    result, config = _outputs(tmp_path / "n", "neuron")
    assert config["resolved"] == {"layer": "c2", "units": [0, 1, 2, 3, 4, 5]}  # last conv, 6 maps
    assert result.shape == (6, SIZE, SIZE, 1)
    assert _run("inversion", tmp_path / "i", model_path, "--steps", "2", "--layer", "c1") == 0
    result, config = _outputs(tmp_path / "i", "inversion")
    assert config["resolved"] == {"layer": "c1"} and result.shape == (3, SIZE, SIZE, 1)
    assert 0 <= result.min() <= result.max() <= 1  # kept in the images' range


def test_image_file_is_resized_greyed_and_scaled(tmp_path, model_path):
    from skimage import io

    red = np.zeros((20, 30, 3), np.uint8)
    red[..., 0] = 255
    io.imsave(tmp_path / "red.png", red, check_contrast=False)
    assert cli.main(["activations", "--model", model_path, "--image", str(tmp_path / "red.png"),
                     "--output-dir", str(tmp_path / "out")]) == 0
    images = np.load(tmp_path / "out" / "images.npy")
    assert images.shape == (1, SIZE, SIZE, 1)
    np.testing.assert_allclose(images, 0.2125, atol=1e-4)  # rgb2gray luminance of pure red
    assert np.load(tmp_path / "out" / "activations.npy").shape == (1, SIZE, SIZE, 4)


def test_conform_image_conversions():
    grey16 = np.full((4, 6), 65535 // 5, np.uint16)
    x = cli.conform_image(grey16, (None, None, 3))
    assert x.shape == (4, 6, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x, (65535 // 5) / 65535, rtol=1e-6)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 1], rgba[..., 3] = 255, 7  # green, nearly transparent: alpha is ignored
    np.testing.assert_allclose(cli.conform_image(rgba, (8, 8, 3))[..., 1], 1.0)
    ramp = np.linspace(-2.0, 6.0, 16).reshape(4, 4)  # floats outside [0, 1]: min-max
    y = cli.conform_image(ramp, (4, 4, 1))
    assert y.min() == 0.0 and y.max() == 1.0
    with pytest.raises(ValueError, match="channels"):
        cli.conform_image(np.zeros((4, 4, 3)), (4, 4, 2))


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("python -m visualization: error:")
    for needle in needles:
        assert needle in err[0], err[0]


@pytest.mark.parametrize("argv, needles", [
    (["bogus"], ["METHOD", "'bogus'"]),
    (["occlusion", "--stride", "0"], ["--stride", "0"]),
    (["occlusion", "--patch-size", "two"], ["--patch-size", "'two'"]),
    (["saliency", "--model", "missing.keras"], ["--model", "missing.keras"]),
    (["saliency", "--image", "nope.png"], ["--image", "nope.png"]),
    (["tsne", "--perplexity", "-1"], ["--perplexity", "-1"]),
    (["saliency", "--no-such-option"], ["--no-such-option"]),
])
def test_bad_options_exit_2_with_one_line(capsys, argv, needles):
    assert cli.main(argv) == 2
    _one_error_line(capsys, *needles)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # imageio's plugins, trying the text
def test_bad_files_and_indices_exit_2(tmp_path, model_path, capsys):
    text = tmp_path / "not_an_image.png"
    text.write_text("hello")
    assert _run("saliency", tmp_path, model_path, "--image", str(text)) == 2
    _one_error_line(capsys, "--image", "not_an_image.png")
    assert cli.main(["saliency", "--model", str(text), "--output-dir", str(tmp_path)]) == 2
    _one_error_line(capsys, "--model", "not_an_image.png")
    assert _run("filters", tmp_path, model_path, "--layer", "conv9") == 2
    _one_error_line(capsys, "conv9", "c1")  # the message lists the available layers
    assert _run("saliency", tmp_path, model_path, "--class-index", "7") == 2
    _one_error_line(capsys, "class_index", "7")
    assert _run("guided-backprop", tmp_path, model_path, "--unit", "2") == 2
    _one_error_line(capsys, "--unit", "--layer")


def test_help_is_fast_lists_methods_and_does_not_import_tensorflow():
    code = ("import sys; from visualization.cli import main; status = main(['--help']); "
            "print('tensorflow' in sys.modules, status)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0
    for method in cli.METHODS:
        assert method in result.stdout
    assert result.stdout.split()[-2:] == ["False", "0"]


def test_module_entry_point_exits_2_with_exactly_one_line(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    cases = [(["occlusion", "--stride", "0"],
              "python -m visualization: error: --stride must be >= 1, got 0"),
             (["saliency", "--image", str(text)],
              f"--image cannot be read as an image from {str(text)!r}"),
             (["saliency", "--model", str(tmp_path / "m.keras")],
              "--model must be an existing file")]
    (tmp_path / "fake.keras").write_text("not a zip")
    cases.append((["filters", "--model", str(tmp_path / "fake.keras")],
                  "--model must be a .keras archive"))
    for argv, expected in cases:  # checked before TensorFlow is imported: nothing else on stderr
        result = subprocess.run([sys.executable, "-m", "visualization", *argv],
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], result.stderr
