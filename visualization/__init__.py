"""Visualising convnets: every method of the "understanding convnets" lectures.

Gradients to the image: :func:`saliency_map` (Simonyan et al. 2014), :func:`guided_backprop`
(Springenberg et al. 2015), :func:`deconvnet` (Zeiler & Fergus 2014), :func:`grad_cam` and
:func:`guided_grad_cam` (Selvaraju et al. 2017), :func:`occlusion_sensitivity`.
Optimisation to the image: :func:`class_model_visualization`, :func:`neuron_maximization`,
:func:`deep_dream`, :func:`invert_features` (Mahendran & Vedaldi 2015), :func:`style_transfer`
(Gatys et al. 2016) with :func:`gram_matrix`, :func:`style_loss`, :func:`content_loss`,
:func:`total_variation`, all on one compiled :func:`gradient_ascent` loop.
Weights, activations, representation: :func:`filter_grid`, :func:`activation_maps`,
:func:`receptive_field`, :func:`top_patches`, :func:`layer_codes`, :func:`tsne_embedding`,
:func:`nearest_neighbours`, :func:`compare_neighbours`, :func:`space_vs_units` (Szegedy et al.).
The default model: :func:`load_digits_cnn`. Figures: the ``plot_*`` functions (matplotlib).
Command line: ``python -m visualization METHOD --output-dir DIR`` (see :mod:`visualization.cli`).

``import visualization`` is light: the submodule holding a name (and TensorFlow with it) is
imported on first access, so ``python -m visualization --help`` answers at once.
``from visualization import saliency_map`` works as usual and ``dir(visualization)`` lists
every export.
"""

from __future__ import annotations

import importlib
import sys
import types

# name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # gradients to the image
    "saliency_map": "saliency",
    "guided_backprop": "guided",
    "deconvnet": "guided",
    "grad_cam": "gradcam",
    "guided_grad_cam": "gradcam",
    "last_spatial_layer": "gradcam",
    "occlusion_sensitivity": "occlusion",
    # past the lecture: attribution, sanity checks, faithfulness, feature visualisation
    "grad_cam_plus_plus": "gradcam",
    "integrated_gradients": "integrated_gradients",
    "completeness": "integrated_gradients",
    "Completeness": "integrated_gradients",
    "smoothgrad": "smoothgrad",
    "model_randomization": "sanity",
    "label_randomization": "sanity",
    "rank_correlation": "sanity",
    "SanityResult": "sanity",
    "load_random_label_cnn": "sanity",
    "train_random_label_cnn": "sanity",
    "deletion_insertion": "faithfulness",
    "FaithfulnessCurves": "faithfulness",
    "feature_visualization": "feature_vis",
    "FeatureVisualization": "feature_vis",
    "Transforms": "feature_vis",
    "Objective": "feature_vis",
    # optimisation to the image
    "Regularizers": "ascent",
    "gradient_ascent": "ascent",
    "gaussian_blur": "ascent",
    "class_model_visualization": "maximization",
    "neuron_maximization": "maximization",
    "deep_dream": "deepdream",
    "invert_features": "inversion",
    "inversion_loss": "inversion",
    "gram_matrix": "style",
    "style_layer_loss": "style",
    "style_loss": "style",
    "content_loss": "style",
    "total_variation": "style",
    "style_transfer": "style",
    "style_transfer_loss": "style",
    # weights, activations and the representation
    "filter_grid": "filters",
    "layer_outputs": "activations",
    "activation_maps": "activations",
    "ReceptiveField": "patches",
    "TopPatches": "patches",
    "receptive_field": "patches",
    "top_patches": "patches",
    "Neighbours": "representation",
    "NeighbourComparison": "representation",
    "code_layer_name": "representation",
    "layer_codes": "representation",
    "tsne_embedding": "representation",
    "nearest_neighbours": "representation",
    "compare_neighbours": "representation",
    "SpaceVsUnits": "units",
    "random_direction": "units",
    "top_along": "units",
    "space_vs_units": "units",
    # the default model
    "build_digits_cnn": "digits_model",
    "train_digits_cnn": "digits_model",
    "load_digits_cnn": "digits_model",
    "cached_test_accuracy": "digits_model",
    "default_cache_dir": "digits_model",
    # figures
    "plot_heatmaps": "plots",
    "plot_saliency": "plots",
    "plot_gradcam": "plots",
    "plot_gradient_images": "plots",
    "plot_occlusion": "plots",
    "plot_image_grid": "plots",
    "plot_maximization": "plots",
    "plot_filters": "plots",
    "plot_activation_maps": "plots",
    "plot_top_patches": "plots",
    "plot_patch_boxes": "plots",
    "plot_tsne": "plots",
    "plot_neighbours": "plots",
    "plot_neighbour_comparison": "plots",
    "plot_space_vs_units": "plots",
    "plot_style_transfer": "plots",
}

# the same names, spelled out for static tools (tests/visualization/test_exports.py checks)
__all__ = [
    "Completeness",
    "FaithfulnessCurves",
    "FeatureVisualization",
    "NeighbourComparison",
    "Neighbours",
    "Objective",
    "ReceptiveField",
    "Regularizers",
    "SanityResult",
    "SpaceVsUnits",
    "TopPatches",
    "Transforms",
    "activation_maps",
    "build_digits_cnn",
    "cached_test_accuracy",
    "class_model_visualization",
    "code_layer_name",
    "compare_neighbours",
    "completeness",
    "content_loss",
    "deconvnet",
    "deep_dream",
    "default_cache_dir",
    "deletion_insertion",
    "feature_visualization",
    "filter_grid",
    "gaussian_blur",
    "grad_cam",
    "grad_cam_plus_plus",
    "gradient_ascent",
    "gram_matrix",
    "guided_backprop",
    "guided_grad_cam",
    "integrated_gradients",
    "inversion_loss",
    "invert_features",
    "label_randomization",
    "last_spatial_layer",
    "layer_codes",
    "layer_outputs",
    "load_digits_cnn",
    "load_random_label_cnn",
    "model_randomization",
    "nearest_neighbours",
    "neuron_maximization",
    "occlusion_sensitivity",
    "plot_activation_maps",
    "plot_filters",
    "plot_gradcam",
    "plot_gradient_images",
    "plot_heatmaps",
    "plot_image_grid",
    "plot_maximization",
    "plot_neighbour_comparison",
    "plot_neighbours",
    "plot_occlusion",
    "plot_patch_boxes",
    "plot_saliency",
    "plot_space_vs_units",
    "plot_style_transfer",
    "plot_top_patches",
    "plot_tsne",
    "random_direction",
    "rank_correlation",
    "receptive_field",
    "saliency_map",
    "smoothgrad",
    "space_vs_units",
    "style_layer_loss",
    "style_loss",
    "style_transfer",
    "style_transfer_loss",
    "top_along",
    "top_patches",
    "total_variation",
    "train_digits_cnn",
    "train_random_label_cnn",
    "tsne_embedding",
]


def __getattr__(name: str):
    """Import the submodule defining ``name`` on first access (PEP 562) and cache the result."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'visualization' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"visualization.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Keeps an exported function whose submodule has the same name (``integrated_gradients``,
    ``smoothgrad``): importing the submodule binds it on the package, which would otherwise
    replace the function that ``from visualization import integrated_gradients`` must give."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
