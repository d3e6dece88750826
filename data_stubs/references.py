"""Reference outputs for graders: the cases, and the command that regenerates them.

Each :class:`Case` names the package and the public function it grades, builds its fixed inputs
(small arrays; the fixed models of :mod:`data_stubs.reference_models` are named, not passed) and
says how to call the function, with which parameters. The package's own functions produce the
references; the grader (``python -m data_stubs.grading``, ``pytest tests/grading``) calls the same
function of any implementation -- the package's or a student's -- with the inputs stored in the
reference file, and compares.

The cases are built to catch the typical mistakes: a model with batch normalisation and dropout
(inference mode matters), coloured images (channels matter), a Grad-CAM layer smaller than the
image (upsampling matters), U-Net weights that are not the identity (dilations and normalisation
matter), and the L2 norm, the margin loss and ``soft_label`` of the attacks.

Regenerate (deterministic: the stored model weights are the source of truth, nothing is trained)::

    python -m data_stubs.references --regenerate          # rewrite every reference file
    python -m data_stubs.references --check               # compare what is produced now with the files
    python -m data_stubs.references --regenerate --new-weights small_unet   # also new U-Net weights
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_stubs.grading import REFERENCE_DIR, Tolerance, compare, load_reference, save_reference

#: Sign-based attacks: a pixel whose gradient is ~0 may move by a whole step in another correct
#: implementation; allow 1% of such pixels, everything else to float32 precision.
SIGN_TOLERANCE = Tolerance(atol=1e-4, rtol=0.0, max_share=0.01)
FLOAT_TOLERANCE = Tolerance(atol=1e-4, rtol=1e-3)


@dataclass(frozen=True)
class Case:
    """One graded call: ``run(function, inputs, models, params) -> output``.

    ``params`` are the call's parameters (stored in the reference file and shown in every
    verdict); ``models`` is a :class:`~data_stubs.reference_models.ModelSource` that builds a
    fresh copy of a fixed model for each call.
    """

    name: str
    package: str
    function: str
    make_inputs: Callable[[], dict]
    run: Callable
    tolerance: Tolerance = FLOAT_TOLERANCE
    params: dict = field(default_factory=dict, compare=False)
    #: False where the output depends on the package's own random-number stream (a seeded random
    #: start): such a case checks the package only, other implementations are not asked for it.
    portable: bool = True
    notes: str = field(default="", compare=False)
    #: Where the package keeps the function (a student's module is flat: ``function`` only).
    module: str = ""
    points: float = 1.0

    @property
    def package_module(self) -> str:
        return self.module or self.package

    @property
    def path(self) -> Path:
        return REFERENCE_DIR / f"{self.name}.npz"

    @property
    def title(self) -> str:
        """``package.function [case]``: how reports name the case."""
        return f"{self.package}.{self.function} [{self.name}]"


# ---------------------------------------------------------------- inputs
def _digits_batch(n: int = 16) -> dict:
    """The first ``n`` test digits, their labels and a target class != label for each."""
    from data_stubs.digits import load_digits

    data = load_digits()
    labels = data.y_test[:n].astype(np.int64)
    return {"images": data.x_test[:n], "labels": labels, "targets": (labels + 3) % 10}


def _rgb_batch(n: int = 8) -> dict:
    """The first ``n`` 16x16 test digits coloured (other colours than in training)."""
    from data_stubs.digits import load_digits
    from data_stubs.reference_models import RGB_SIZE, colour_digits

    data = load_digits(image_size=RGB_SIZE)
    labels = data.y_test[:n].astype(np.int64)
    return {"images": colour_digits(data.x_test[:n], seed=2), "labels": labels,
            "targets": (labels + 3) % 10}


def _style_features() -> dict:
    rng = np.random.default_rng(7)
    return {"features": rng.normal(size=(2, 5, 4, 3)).astype(np.float32),
            "target": rng.normal(size=(2, 5, 4, 3)).astype(np.float32)}


# ---------------------------------------------------------------- attacks
def _run_attack(fn, inputs, models, params):
    params = dict(params)
    model = models.fresh(params.pop("model"))
    labels = inputs[params.pop("labels")]
    return fn(model, inputs["images"], labels, **params)


def _attack_case(name, function, model="digits_cnn", labels="labels", tolerance=SIGN_TOLERANCE,
                 portable=True, **kwargs) -> Case:
    inputs = _rgb_batch if model == "rgb_cnn" else _digits_batch
    params = {"model": model, "labels": labels, **kwargs}
    return Case(name, "adversarial", function, inputs, _run_attack, tolerance, params, portable)


def _attack_cases() -> list[Case]:
    iterative = {"epsilon": 0.1, "num_steps": 10, "step_size": 0.02}
    l2 = {"epsilon": 1.0, "num_steps": 10, "step_size": 0.25, "norm": 2}
    return [
        _attack_case("fgsm_untargeted", "fgsm_attack", epsilon=0.1),
        _attack_case("fgsm_targeted", "fgsm_attack", labels="targets", epsilon=0.1, targeted=True),
        _attack_case("fgsm_rgb", "fgsm_attack", model="rgb_cnn", epsilon=0.05),
        # The labels given are wrong on purpose: soft_label=True must ignore them.
        _attack_case("fgsm_soft_label", "fgsm_attack", labels="targets", epsilon=0.1,
                     soft_label=True),
        _attack_case("fgsm_l2", "fgsm_attack", epsilon=1.0, norm=2, tolerance=FLOAT_TOLERANCE),
        _attack_case("fgsm_margin", "fgsm_attack", epsilon=0.1, loss="margin"),
        _attack_case("pgd_untargeted", "pgd_attack", random_init=False, **iterative),
        _attack_case("pgd_targeted", "pgd_attack", labels="targets", random_init=False,
                     targeted=True, **iterative),
        _attack_case("pgd_rgb", "pgd_attack", model="rgb_cnn", random_init=False, **iterative),
        _attack_case("pgd_l2", "pgd_attack", random_init=False, tolerance=FLOAT_TOLERANCE, **l2),
        _attack_case("pgd_margin", "pgd_attack", random_init=False, loss="margin", **iterative),
        _attack_case("pgd_seeded", "pgd_attack", portable=False, seed=0, **iterative),
        _attack_case("mim_untargeted", "mim_attack", random_init=False, decay=1.0, **iterative),
        _attack_case("mim_targeted", "mim_attack", labels="targets", random_init=False, decay=1.0,
                     targeted=True, **iterative),
        _attack_case("mim_rgb", "mim_attack", model="rgb_cnn", random_init=False, decay=1.0,
                     epsilon=0.1, num_steps=10, step_size=0.01),
    ]


#: Test digits whose single random-start PGD (epsilon 0.2, one step of 0.05) succeeds 35-65% of
#: the time (measured over 100 seeds): keeping a successful restart out of 10 breaks nearly all
#: of them (each fails with probability <= 0.65**10 ~ 1%), keeping the last one about half.
RESTART_EXAMPLES = (9, 18, 26, 27, 43, 47, 55, 100, 111, 118, 122, 126, 146, 150, 167, 168)
#: Success flags from random starts: another correct implementation draws other starts, so a
#: few flags may differ (at most 3 of 16); a wrong restart rule loses about 8.
RESTART_TOLERANCE = Tolerance(atol=0.0, rtol=0.0, max_share=0.2)


def _restart_batch() -> dict:
    from data_stubs.digits import load_digits

    data = load_digits()
    index = np.array(RESTART_EXAMPLES)
    return {"images": data.x_test[index], "labels": data.y_test[index].astype(np.int64)}


def _run_restarts(fn, inputs, models, params):
    """1.0 per example where the attack returned a valid adversarial example: misclassified by a
    fresh copy of the model, inside the epsilon ball and the valid range; else 0.0."""
    params = dict(params)
    name = params.pop("model")
    images, labels = inputs["images"], inputs[params.pop("labels")]
    adversarial = np.asarray(fn(models.fresh(name), images, labels, **params), np.float32)
    if adversarial.shape != images.shape:
        raise ValueError(f"the attack returned shape {adversarial.shape} for images of shape "
                         f"{images.shape}")
    logits = np.asarray(models.fresh(name)(adversarial, training=False))
    distance = np.abs(adversarial - images).reshape(len(images), -1).max(axis=1)
    valid = ((distance <= params["epsilon"] + 1e-5)
             & (adversarial.reshape(len(images), -1).min(axis=1) >= -1e-6)
             & (adversarial.reshape(len(images), -1).max(axis=1) <= 1.0 + 1e-6))
    return (valid & (logits.argmax(axis=1) != labels)).astype(np.float32)


def _restarts_case() -> Case:
    params = {"model": "digits_cnn", "labels": "labels", "epsilon": 0.2, "num_steps": 1,
              "step_size": 0.05, "random_init": True, "restarts": 10}
    return Case("pgd_restarts", "adversarial", "pgd_attack", _restart_batch, _run_restarts,
                RESTART_TOLERANCE, params,
                notes="output: 1 where the returned image is a valid adversarial example")


def _run_lbfgs(fn, inputs, models, params):
    params = dict(params)
    model = models.fresh(params.pop("model"))
    n = params.pop("examples")
    return fn(model, inputs["images"][:n], inputs["targets"][:n], **params)


#: L-BFGS-B plus a search over c: another correct implementation lands near, not on, the same
#: minimiser; compare the images loosely.
LBFGS_TOLERANCE = Tolerance(atol=0.05, rtol=0.0, max_share=0.1)


def _lbfgs_case() -> Case:
    return Case("lbfgs", "adversarial", "lbfgs_attack", _digits_batch, _run_lbfgs,
                LBFGS_TOLERANCE, {"model": "digits_cnn", "examples": 4, "c_init": 1.0,
                                  "search_steps": 6, "max_iterations": 50},
                notes="targets (label + 3) % 10")


# ---------------------------------------------------------------- visualisations
def _run_visualization(fn, inputs, models, params):
    params = dict(params)
    model = models.fresh(params.pop("model"))
    return fn(model, inputs["images"][:params.pop("examples")], **params)


def _visualization_case(name, function, module, model="digits_cnn", **kwargs) -> Case:
    inputs = _rgb_batch if model == "rgb_cnn" else _digits_batch
    params = {"model": model, "examples": 8, **kwargs}
    return Case(name, "visualization", function, inputs, _run_visualization, FLOAT_TOLERANCE,
                params, module=f"visualization.{module}")


def _visualization_cases() -> list[Case]:
    return [
        _visualization_case("saliency", "saliency_map", "saliency"),
        _visualization_case("saliency_rgb", "saliency_map", "saliency", model="rgb_cnn"),
        _visualization_case("guided_backprop", "guided_backprop", "guided"),
        _visualization_case("guided_backprop_rgb", "guided_backprop", "guided", model="rgb_cnn"),
        _visualization_case("deconvnet", "deconvnet", "guided"),
        _visualization_case("guided_backprop_unit", "guided_backprop", "guided",
                            layer_name="conv2", unit_index=3),
        _visualization_case("grad_cam", "grad_cam", "gradcam", layer_name="conv2"),
        _visualization_case("grad_cam_rgb", "grad_cam", "gradcam", model="rgb_cnn",
                            layer_name="conv2"),
        # The fill is given: the output must not hang on a default (black, grey or the mean).
        _visualization_case("occlusion", "occlusion_sensitivity", "occlusion",
                            patch_size=3, stride=1, fill_value=0.0),
        _visualization_case("occlusion_rgb", "occlusion_sensitivity", "occlusion",
                            model="rgb_cnn", patch_size=4, stride=2, fill_value=0.5),
    ]


def _class_model_inputs() -> dict:
    rng = np.random.default_rng(3)
    return {"classes": np.array([0, 3, 7]),
            "initial": (0.5 + 0.01 * rng.normal(size=(3, 8, 8, 1))).astype(np.float32)}


def _run_class_model(fn, inputs, models, params):
    # An explicit start image and no random regulariser (jitter) keep the case portable.
    params = dict(params)
    model = models.fresh(params.pop("model"))
    value_range = tuple(params.pop("value_range"))
    return fn(model, inputs["classes"], initial_images=inputs["initial"],
              value_range=value_range, **params)


def _run_gram_matrix(fn, inputs, models, params):
    return fn(inputs["features"])


def _run_style_loss(fn, inputs, models, params):
    style = inputs["target"][0].reshape(-1, inputs["target"].shape[-1])
    target = style.T @ style  # the style image's Gram matrix G = F^T F, in numpy
    return fn([inputs["features"]], [target], [1.0])


def _style_cases() -> list[Case]:
    class_model = {"model": "digits_cnn", "steps": 20, "learning_rate": 0.05, "l2_decay": 0.01,
                   "blur_every": 5, "blur_sigma": 0.5, "value_range": [0.0, 1.0]}
    return [
        Case("gram_matrix", "visualization", "gram_matrix", _style_features, _run_gram_matrix,
             module="visualization.style"),
        Case("style_loss", "visualization", "style_loss", _style_features, _run_style_loss,
             notes="one layer, target Gram matrix of the first target image",
             module="visualization.style"),
        Case("class_model_visualization", "visualization", "class_model_visualization",
             _class_model_inputs, _run_class_model, Tolerance(atol=1e-3, rtol=1e-3), class_model,
             module="visualization.maximization"),
    ]


# ---------------------------------------------------------------- segmentation
def _unet_inputs() -> dict:
    rng = np.random.default_rng(11)
    return {"image": rng.uniform(size=(2, 32, 32, 3)).astype(np.float32),
            "tile": rng.uniform(size=(30, 27, 3)).astype(np.float32)}


def _run_unet_forward(fn, inputs, models, params):
    model = fn(**params)
    model.set_weights(models.weights("small_unet"))
    return model(inputs["image"], training=False)


def _run_tta(fn, inputs, models, params):
    params = dict(params)
    return fn(models.fresh(params.pop("model")), inputs["tile"], **params)


def _metrics_inputs() -> dict:
    """The stub area's first two ground-truth masks and a damaged copy as the 'prediction'."""
    truth = np.stack(_stub_tiles().masks[:2])
    rng = np.random.default_rng(5)
    pred = np.roll(truth, shift=(1, -2), axis=(1, 2))
    flip = rng.uniform(size=pred.shape) < 0.03
    pred[flip] = rng.integers(0, 3, size=int(flip.sum()))
    return {"true_masks": truth, "pred_masks": pred.astype(np.uint8)}


def _run_metrics(fn, inputs, models, params):
    result = fn(list(inputs["true_masks"]), list(inputs["pred_masks"]))
    return np.array([result[k] for k in params["keys"]], np.float64)


@functools.cache
def _stub_tiles():
    """A small stub area (3 tiles of 64 px), generated into a temporary folder and read back."""
    import tempfile

    from assignment2.data import load_tiles
    from data_stubs.spacenet import generate_area

    with tempfile.TemporaryDirectory() as tmp:
        return load_tiles(generate_area(tmp, n_tiles=3, tile_size=64))


def _rasterisation_inputs() -> dict:
    """Building polygons of one stub tile in pixel coordinates, flattened to arrays.

    ``vertices`` holds every ring's points; ``ring_index[i] = (building, polygon, n_points)``.
    """
    import tempfile

    from assignment2.data import _to_pixels, read_buildings
    from assignment2.geotiff import read_geotiff
    from data_stubs.spacenet import generate_area

    with tempfile.TemporaryDirectory() as tmp:
        area = generate_area(tmp, n_tiles=3, tile_size=64)
        image_path = next((area / "RGB-PanSharpen").glob("*img1.tif"))
        _, transform = read_geotiff(image_path)
        geojson = next((area / "geojson" / "buildings").glob("*img1.geojson"))
        buildings = [_to_pixels(b, transform) for b in read_buildings(geojson)]
    rings = [(b, p, ring) for b, building in enumerate(buildings)
             for p, polygon in enumerate(building) for ring in polygon]
    return {"vertices": np.concatenate([r for _, _, r in rings]),
            "ring_index": np.array([(b, p, len(r)) for b, p, r in rings], np.int64),
            "shape": np.array([64, 64])}


def _run_rasterisation(fn, inputs, models, params):
    buildings: dict = {}
    offset = 0
    for b, p, n in inputs["ring_index"]:
        ring = inputs["vertices"][offset:offset + n]
        offset += n
        buildings.setdefault(b, {}).setdefault(p, []).append(ring)
    polygons = [list(b.values()) for _, b in sorted(buildings.items())]
    mask, instances = fn(polygons, tuple(int(v) for v in inputs["shape"]), **params)
    return np.stack([np.asarray(mask, np.int32), np.asarray(instances, np.int32)])


METRIC_KEYS = ["pixel_accuracy", "iou_background", "iou_building", "iou_boundary", "mean_iou",
               "building_f1"]


def _segmentation_cases() -> list[Case]:
    from data_stubs.reference_models import SMALL_UNET_CONFIG

    exact = Tolerance(atol=0.0, rtol=0.0)
    return [
        Case("unet_forward", "assignment2", "build_unet", _unet_inputs, _run_unet_forward,
             params=dict(SMALL_UNET_CONFIG), notes="stored (non-identity) weights, training=False",
             module="assignment2.model"),
        Case("tta_average", "assignment2", "predict_tta", _unet_inputs, _run_tta,
             params={"model": "tta_net", "transforms": "d4"},
             notes="8 dihedral views of a 30x27 tile (not a multiple of the stride)",
             module="assignment2.tta"),
        Case("segmentation_metrics", "assignment2", "segmentation_metrics", _metrics_inputs,
             _run_metrics, Tolerance(atol=1e-9, rtol=0.0), {"keys": METRIC_KEYS},
             module="assignment2.metrics"),
        Case("rasterisation", "assignment2", "building_masks", _rasterisation_inputs,
             _run_rasterisation, exact, {"boundary_width": 3},
             notes="stub tile img1; output stacks mask and instances", module="assignment2.masks"),
    ]


def all_cases() -> list[Case]:
    """Every graded case, in a stable order."""
    return (_attack_cases() + [_restarts_case(), _lbfgs_case()] + _visualization_cases()
            + _style_cases() + _segmentation_cases())


# ---------------------------------------------------------------- regeneration
def package_function(case: Case):
    """The package's own implementation of ``case.function``."""
    import importlib

    return getattr(importlib.import_module(case.package_module), case.function)


def produce(case: Case, function=None, models=None) -> dict:
    """Inputs and output of ``case`` computed with ``function`` (default: the package's)."""
    from data_stubs.reference_models import KERAS_ONLY, ModelSource

    models = models or ModelSource(KERAS_ONLY + ("small_unet",))
    inputs = case.make_inputs()
    output = case.run(function or package_function(case), inputs, models, case.params)
    arrays = {f"input_{k}": np.asarray(v) for k, v in inputs.items()}
    arrays["output"] = np.asarray(output)
    return arrays


def regenerate(cases=None) -> list[Path]:
    """Writes the reference file of every case; returns the paths written."""
    from data_stubs.grading.reference_files import provenance

    made_by = provenance()
    written = []
    for case in cases or all_cases():
        save_reference(case.path, produce(case), function=f"{case.package}.{case.function}",
                       tolerance=case.tolerance, params=case.params,
                       extra={"case": case.name, "points": case.points, "notes": case.notes,
                              "portable": case.portable, "produced_by": made_by})
        written.append(case.path)
    return written


def check(cases=None) -> list[str]:
    """Compares what the package produces now with the stored files; returns the mismatches."""
    problems = []
    for case in cases or all_cases():
        try:
            _, stored = load_reference(case.path)
            result = compare(produce(case)["output"], stored["output"], case.tolerance)
        except Exception as exc:  # noqa: BLE001 -- every case is reported, none stops the check
            problems.append(f"{case.name}: {type(exc).__name__}: {exc}")
            continue
        if not result.passed:
            problems.append(f"{case.name}: {result.summary()}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_stubs.references", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--regenerate", action="store_true", help="rewrite every reference file")
    mode.add_argument("--check", action="store_true", help="compare the package with the files")
    parser.add_argument("--new-weights", nargs="+", default=[], metavar="MODEL",
                        help="with --regenerate: make fresh weights of these fixed models first "
                             "(digits_cnn, rgb_cnn, tta_net, small_unet)")
    parser.add_argument("--only", nargs="*", default=None, metavar="CASE",
                        help="restrict to these case names")
    args = parser.parse_args(argv)
    from data_stubs.reference_models import BUILDERS, create_weights

    cases = all_cases()
    unknown = sorted(set(args.only or ()) - {c.name for c in cases})
    unknown_models = sorted(set(args.new_weights) - set(BUILDERS))
    if unknown or unknown_models:
        parser.exit(2, f"error: unknown case(s) {unknown or ''} model(s) {unknown_models or ''}; "
                       f"known cases {[c.name for c in cases]}, models {list(BUILDERS)}\n")
    if args.new_weights and not args.regenerate:
        parser.exit(2, "error: --new-weights only goes with --regenerate\n")
    if args.only:
        cases = [c for c in cases if c.name in args.only]
    if args.regenerate:
        for name in args.new_weights:
            print(f"new weights: {create_weights(name)}")
        for path in regenerate(cases):
            print(f"wrote {path}")
        return 0
    problems = check(cases)
    for line in problems:
        print(line)
    print(f"{len(cases) - len(problems)} of {len(cases)} references reproduced")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
