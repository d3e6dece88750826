"""Figures: the right type, the expected axes, and the data they were given."""

import keras
import numpy as np
import pytest
from matplotlib.figure import Figure

from adversarial import plots
from adversarial.evaluation import loss_surface


def tiny_model():
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    kernel = np.zeros((16, 3), np.float32)
    kernel[:, 1] = 1.0  # class 1's logit is the pixel sum
    kernel[:, 2] = -1.0
    model.layers[-1].set_weights([kernel, np.array([0.0, -8.0, 8.0], np.float32)])
    return model


def test_accuracy_vs_epsilon_one_line_per_model_and_attack():
    results = {"standard": {"fgsm": {"0.0": 0.98, "0.1": 0.3, "0.05": 0.6},
                            "pgd": {"0.0": 0.98, "0.05": 0.4, "0.1": 0.0}},
               "pgd_trained": {"pgd": {"0.0": 0.97, "0.05": 0.9, "0.1": 0.8}}}
    fig = plots.plot_accuracy_vs_epsilon(results)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == [
        "standard, fgsm", "standard, pgd", "pgd_trained, pgd"]
    np.testing.assert_allclose(lines[0].get_xdata(), [0.0, 0.05, 0.1])  # keys sorted as floats
    np.testing.assert_allclose(lines[0].get_ydata(), [98, 60, 30])
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()


def test_accuracy_vs_epsilon_accepts_one_models_result_and_rejects_empty():
    fig = plots.plot_accuracy_vs_epsilon({"pgd": {0.0: 1.0, 0.2: 0.5}})
    assert len(fig.axes[0].get_lines()) == 1
    with pytest.raises(ValueError, match="results"):
        plots.plot_accuracy_vs_epsilon({})


def test_panda_gibbon_layout_titles_predictions_and_confidences():
    model = tiny_model()
    x = np.full((2, 4, 4, 1), 0.25, np.float32)  # pixel sum 4: logits (0, -4, 4) -> class 2
    x_adv = np.full((2, 4, 4, 1), 0.75, np.float32)  # pixel sum 12: logits (0, 4, -4) -> class 1
    fig = plots.plot_adversarial_examples(model, x, x_adv, labels=[2, 2],
                                          class_names=["zero", "one", "two"], epsilon=0.5)
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    titles = [ax.get_title() for ax in fig.axes]
    confidence = 100 * np.exp(4) / (1 + np.exp(-4) + np.exp(4))
    assert titles[0] == f"x: true two, pred two ({confidence:.1f}%)"
    assert titles[2] == f"x_adv: pred one ({confidence:.1f}%)"
    assert "0.500" in titles[1]
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), 0.5)
    assert fig.axes[1].images[0].get_clim() == (-0.5, 0.5)


def test_panda_gibbon_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="adversarial_images"):
        plots.plot_adversarial_examples(tiny_model(), np.zeros((1, 4, 4, 1)),
                                        np.zeros((2, 4, 4, 1)))


def test_loss_surface_figure_has_a_3d_surface_and_a_region_map():
    surface = loss_surface(tiny_model(), np.full((4, 4, 1), 0.5, np.float32), 2, radius=0.2,
                           resolution=7)
    fig = plots.plot_loss_surface(surface, "test")
    assert isinstance(fig, Figure)
    assert fig.axes[0].name == "3d" and fig.axes[1].name == "rectilinear"
    assert len(fig.axes) == 3  # + the colour bar of the classes
    assert fig.axes[1].get_xlabel().startswith("a (along g")
    bad = dict(surface, loss=surface["loss"][:3])
    with pytest.raises(ValueError, match="loss"):
        plots.plot_loss_surface(bad)


def test_accuracy_vs_epsilon_draws_the_worst_case_interval_as_a_band():
    results = {"robust": {"worst case": {"0.0": 0.9, "0.1": 0.7}, "apgd-ce": {"0.1": 0.75}}}
    fig = plots.plot_accuracy_vs_epsilon(
        results, intervals={"robust": {"0.1": (0.6, 0.8), "0.0": (0.85, 0.95)}})
    ax = fig.axes[0]
    assert len(ax.collections) == 1  # the band
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(60) and band[:, 1].max() == pytest.approx(95)
    assert "robust, 95% interval" in [t.get_text() for t in ax.get_legend().get_texts()]
    with pytest.raises(ValueError, match="intervals must be"):
        plots.plot_accuracy_vs_epsilon(results, intervals={"robust": {"0.1": (0.8, 0.6)}})
