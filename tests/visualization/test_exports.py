"""The package's public names: every export imports, is callable and comes from its module."""

import importlib
import inspect
import subprocess
import sys

import pytest

import visualization

# Public names of the algorithm modules that are helpers of the package itself, not exports:
# validation and caching of the shared ascent loop.
INTERNAL = {
    "ascent": {"as_batch", "cached_objective", "check_int", "check_real", "check_value_range",
               "resolve_seed", "tracing_count"},
    # building blocks reached as ``visualization.<module>.<name>`` (objectives, parameterisations)
    "faithfulness": {"pixel_ranks"},
    "feature_vis": {"channel", "class_logit", "decorrelate_colors", "direction", "fourier_image",
                    "image_to_fourier", "initial_parameters", "neuron", "parameterized_image",
                    "random_transform", "similarity_matrices", "spectrum_scale", "to_rgb",
                    "transform_images"},
    "integrated_gradients": {"baseline_batch", "path_quadrature"},
    "sanity": {"randomization_stages", "randomize_layer"},
    "smoothgrad": {"noise_sigma"},
}


@pytest.mark.parametrize("name", visualization.__all__)
def test_every_export_imports_and_is_callable(name):
    value = getattr(__import__("visualization", fromlist=[name]), name)  # `from .. import name`
    assert callable(value), name
    module = visualization._EXPORTS[name]
    assert value.__module__ == f"visualization.{module}"
    assert value is getattr(importlib.import_module(f"visualization.{module}"), name)


def test_all_matches_the_export_table_and_dir():
    assert visualization.__all__ == sorted(visualization._EXPORTS)
    assert len(set(visualization.__all__)) == len(visualization.__all__)
    assert set(visualization.__all__) <= set(dir(visualization))


def test_the_methods_of_the_issue_are_exported():
    for name in ("saliency_map", "guided_backprop", "deconvnet", "grad_cam", "guided_grad_cam",
                 "occlusion_sensitivity", "class_model_visualization", "neuron_maximization",
                 "deep_dream", "invert_features", "gram_matrix", "style_loss", "content_loss",
                 "total_variation", "style_transfer", "filter_grid", "activation_maps",
                 "receptive_field", "top_patches", "layer_codes", "tsne_embedding",
                 "nearest_neighbours", "space_vs_units", "load_digits_cnn", "plot_saliency"):
        assert name in visualization.__all__


@pytest.mark.parametrize("module", sorted(set(visualization._EXPORTS.values())))
def test_every_public_definition_of_a_module_is_exported(module):
    mod = importlib.import_module(f"visualization.{module}")
    defined = {name for name, value in vars(mod).items()
               if not name.startswith("_") and (inspect.isfunction(value)
                                                or inspect.isclass(value))
               and value.__module__ == mod.__name__}
    missing = defined - set(visualization.__all__) - INTERNAL.get(module, set())
    assert not missing, f"visualization/{module}.py defines {sorted(missing)}; add them to " \
                        f"visualization/__init__.py (_EXPORTS and __all__)"


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_function"):
        visualization.no_such_function  # noqa: B018
    with pytest.raises(ImportError):
        from visualization import no_such_function  # noqa: F401


def test_import_is_light():
    code = ("import sys, visualization; assert 'saliency_map' in dir(visualization); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.split() == ["False", "False"]
