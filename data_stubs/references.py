"""Reference outputs for graders: the cases, and the command that regenerates them.

Each :class:`Case` names the package and the public function it grades, builds its fixed inputs
(small arrays, the fixed models of :mod:`data_stubs.reference_models`) and says how to call the
function. The package's own functions produce the references; the grading suite
(``tests/grading``) calls the same function of any implementation -- the package's or a
student's -- and compares.

Regenerate (deterministic: the stored model weights are the source of truth, nothing is trained)::

    python -m data_stubs.references --regenerate          # rewrite every reference file
    python -m data_stubs.references --check               # compare what is produced now with the files
    python -m data_stubs.references --regenerate --new-weights   # also make fresh model weights
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
#: implementation; allow 2% of such pixels, everything else to float32 precision.
SIGN_TOLERANCE = Tolerance(atol=1e-4, rtol=0.0, max_share=0.02)
FLOAT_TOLERANCE = Tolerance(atol=1e-4, rtol=1e-3)


@dataclass(frozen=True)
class Case:
    """One graded call: ``run(getattr(implementation, function), inputs) -> output``."""

    name: str
    package: str
    function: str
    make_inputs: Callable[[], dict]
    run: Callable[[Callable, dict], np.ndarray]
    tolerance: Tolerance = FLOAT_TOLERANCE
    #: False where the output depends on the package's own random-number stream (a seeded random
    #: start): such a case checks the package only, other implementations are not asked for it.
    portable: bool = True
    notes: str = field(default="", compare=False)
    #: Where the package keeps the function (a student's module is flat: ``function`` only).
    module: str = ""

    @property
    def package_module(self) -> str:
        return self.module or self.package

    @property
    def path(self) -> Path:
        return REFERENCE_DIR / f"{self.name}.npz"


def _model(name):
    from data_stubs.reference_models import load_reference_model

    return load_reference_model(name)


# ---------------------------------------------------------------- inputs
def _digits_batch(n: int = 16) -> dict:
    """The first ``n`` test digits, their labels and a target class != label for each."""
    from data_stubs.digits import load_digits

    data = load_digits()
    labels = data.y_test[:n].astype(np.int64)
    return {"images": data.x_test[:n], "labels": labels, "targets": (labels + 3) % 10}


def _style_features() -> dict:
    rng = np.random.default_rng(7)
    return {"features": rng.normal(size=(2, 5, 4, 3)).astype(np.float32),
            "target": rng.normal(size=(2, 5, 4, 3)).astype(np.float32)}


# ---------------------------------------------------------------- cases
def _attack_case(name, function, tolerance=SIGN_TOLERANCE, portable=True, **kwargs) -> Case:
    def run(fn, inputs):
        labels = inputs["targets"] if kwargs.get("targeted") else inputs["labels"]
        return np.asarray(fn(_model("digits_cnn"), inputs["images"], labels, **kwargs))

    return Case(name, "adversarial", function, _digits_batch, run, tolerance, portable,
                notes=", ".join(f"{k}={v}" for k, v in kwargs.items()))


def _attack_cases() -> list[Case]:
    iterative = {"epsilon": 0.1, "num_steps": 10, "step_size": 0.02}
    return [
        _attack_case("fgsm_untargeted", "fgsm_attack", epsilon=0.1),
        _attack_case("fgsm_targeted", "fgsm_attack", epsilon=0.1, targeted=True),
        _attack_case("pgd_untargeted", "pgd_attack", random_init=False, **iterative),
        _attack_case("pgd_targeted", "pgd_attack", random_init=False, targeted=True, **iterative),
        _attack_case("pgd_seeded", "pgd_attack", portable=False, seed=0, **iterative),
        _attack_case("mim_untargeted", "mim_attack", random_init=False, decay=1.0, **iterative),
        _attack_case("mim_targeted", "mim_attack", random_init=False, decay=1.0, targeted=True,
                     **iterative),
    ]


def _visualization_case(name, function, module, **kwargs) -> Case:
    def run(fn, inputs):
        return np.asarray(fn(_model("digits_cnn"), inputs["images"][:8], **kwargs))

    return Case(name, "visualization", function, _digits_batch, run, FLOAT_TOLERANCE,
                notes=", ".join(f"{k}={v}" for k, v in kwargs.items()),
                module=f"visualization.{module}")


def _visualization_cases() -> list[Case]:
    return [
        _visualization_case("saliency", "saliency_map", "saliency"),
        _visualization_case("guided_backprop", "guided_backprop", "guided"),
        _visualization_case("deconvnet", "deconvnet", "guided"),
        _visualization_case("guided_backprop_unit", "guided_backprop", "guided",
                            layer_name="conv2", unit_index=3),
        _visualization_case("grad_cam", "grad_cam", "gradcam", layer_name="conv2"),
        _visualization_case("occlusion", "occlusion_sensitivity", "occlusion",
                            patch_size=3, stride=1),
    ]


def _class_model_inputs() -> dict:
    rng = np.random.default_rng(3)
    return {"classes": np.array([0, 3, 7]),
            "initial": (0.5 + 0.01 * rng.normal(size=(3, 8, 8, 1))).astype(np.float32)}


def _run_class_model(fn, inputs):
    # An explicit start image and no random regulariser (jitter) keep the case portable.
    return np.asarray(fn(_model("digits_cnn"), inputs["classes"], initial_images=inputs["initial"],
                         steps=20, learning_rate=0.05, l2_decay=0.01, blur_every=5,
                         blur_sigma=0.5, value_range=(0.0, 1.0)))


def _run_style_loss(fn, inputs):
    style = inputs["target"][0].reshape(-1, inputs["target"].shape[-1])
    target = style.T @ style  # the style image's Gram matrix G = F^T F, in numpy
    return np.asarray(fn([inputs["features"]], [target], [1.0]))


def _style_cases() -> list[Case]:
    return [
        Case("gram_matrix", "visualization", "gram_matrix", _style_features,
             lambda fn, inputs: np.asarray(fn(inputs["features"])), module="visualization.style"),
        Case("style_loss", "visualization", "style_loss", _style_features, _run_style_loss,
             notes="one layer, target Gram matrix of the first target image",
             module="visualization.style"),
        Case("class_model_visualization", "visualization", "class_model_visualization",
             _class_model_inputs, _run_class_model, Tolerance(atol=1e-3, rtol=1e-3),
             notes="20 steps, lr 0.05, l2 0.01, blur every 5 steps", module="visualization.maximization"),
    ]


def _run_lbfgs(fn, inputs):
    return np.asarray(fn(_model("digits_cnn"), inputs["images"][:4], inputs["targets"][:4],
                         c_init=1.0, search_steps=6, max_iterations=50))


#: L-BFGS-B plus a search over c: another correct implementation lands near, not on, the same
#: minimiser; compare the images loosely.
LBFGS_TOLERANCE = Tolerance(atol=0.05, rtol=0.0, max_share=0.1)


def _unet_inputs() -> dict:
    rng = np.random.default_rng(11)
    return {"image": rng.uniform(size=(2, 32, 32, 3)).astype(np.float32),
            "tile": rng.uniform(size=(30, 27, 3)).astype(np.float32)}


def _run_unet_forward(fn, inputs):
    from data_stubs.reference_models import stored_weights

    model = fn(depth=2, base_filters=4, upsampling="bilinear", context=True)
    model.set_weights(stored_weights("small_unet"))
    return np.asarray(model(inputs["image"], training=False))


def _run_tta(fn, inputs):
    return np.asarray(fn(_model("small_unet"), inputs["tile"], transforms="d4"))


def _metrics_inputs() -> dict:
    """The stub area's first two ground-truth masks and a damaged copy as the 'prediction'."""
    truth = np.stack(_stub_tiles().masks[:2])
    rng = np.random.default_rng(5)
    pred = np.roll(truth, shift=(1, -2), axis=(1, 2))
    flip = rng.uniform(size=pred.shape) < 0.03
    pred[flip] = rng.integers(0, 3, size=int(flip.sum()))
    return {"true_masks": truth, "pred_masks": pred.astype(np.uint8)}


METRIC_KEYS = ("pixel_accuracy", "iou_background", "iou_building", "iou_boundary", "mean_iou",
               "building_f1")


def _run_metrics(fn, inputs):
    result = fn(list(inputs["true_masks"]), list(inputs["pred_masks"]))
    return np.array([result[k] for k in METRIC_KEYS], np.float64)


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


def _run_rasterisation(fn, inputs):
    buildings: dict = {}
    offset = 0
    for b, p, n in inputs["ring_index"]:
        ring = inputs["vertices"][offset:offset + n]
        offset += n
        buildings.setdefault(b, {}).setdefault(p, []).append(ring)
    polygons = [list(b.values()) for _, b in sorted(buildings.items())]
    mask, instances = fn(polygons, tuple(int(v) for v in inputs["shape"]), boundary_width=3)
    return np.stack([np.asarray(mask, np.int32), np.asarray(instances, np.int32)])


def _segmentation_cases() -> list[Case]:
    exact = Tolerance(atol=0.0, rtol=0.0)
    return [
        Case("unet_forward", "assignment2", "build_unet", _unet_inputs, _run_unet_forward,
             notes="depth 2, 4 base filters, bilinear, context module, stored weights",
             module="assignment2.model"),
        Case("tta_average", "assignment2", "predict_tta", _unet_inputs, _run_tta,
             notes="8 dihedral views of a 30x27 tile (not a multiple of the stride)",
             module="assignment2.tta"),
        Case("segmentation_metrics", "assignment2", "segmentation_metrics", _metrics_inputs,
             _run_metrics, Tolerance(atol=1e-9, rtol=0.0), notes=", ".join(METRIC_KEYS),
             module="assignment2.metrics"),
        Case("rasterisation", "assignment2", "building_masks", _rasterisation_inputs,
             _run_rasterisation, exact, notes="stub tile img1, boundary width 3; mask, instances",
             module="assignment2.masks"),
    ]


def all_cases() -> list[Case]:
    """Every graded case, in a stable order."""
    lbfgs = Case("lbfgs", "adversarial", "lbfgs_attack", _digits_batch, _run_lbfgs,
                 LBFGS_TOLERANCE, notes="4 images, targets (label + 3) % 10, 6 values of c")
    return (_attack_cases() + [lbfgs] + _visualization_cases() + _style_cases()
            + _segmentation_cases())


# ---------------------------------------------------------------- regeneration
def produce(case: Case, implementation=None) -> dict:
    """Inputs and output of ``case`` computed with ``implementation`` (default: the package)."""
    import importlib

    module = implementation or importlib.import_module(case.package_module)
    inputs = case.make_inputs()
    output = case.run(getattr(module, case.function), inputs)
    arrays = {f"input_{k}": np.asarray(v) for k, v in inputs.items()}
    arrays["output"] = np.asarray(output)
    return arrays


def regenerate(cases=None) -> list[Path]:
    """Writes the reference file of every case; returns the paths written."""
    written = []
    for case in cases or all_cases():
        save_reference(case.path, produce(case), function=f"{case.package}.{case.function}",
                       tolerance=case.tolerance)
        written.append(case.path)
    return written


def check(cases=None) -> list[str]:
    """Compares what the package produces now with the stored files; returns the mismatches."""
    problems = []
    for case in cases or all_cases():
        _, stored = load_reference(case.path)
        result = compare(produce(case)["output"], stored["output"], case.tolerance)
        if not result.passed:
            problems.append(f"{case.name}: {result.summary()}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_stubs.references", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--regenerate", action="store_true", help="rewrite every reference file")
    mode.add_argument("--check", action="store_true", help="compare the package with the files")
    parser.add_argument("--new-weights", action="store_true",
                        help="with --regenerate: make fresh weights of the fixed models first")
    parser.add_argument("--only", nargs="*", default=None, metavar="CASE",
                        help="restrict to these case names")
    args = parser.parse_args(argv)
    cases = all_cases()
    if args.only:
        unknown = sorted(set(args.only) - {c.name for c in cases})
        if unknown:
            parser.exit(2, f"error: unknown case(s) {unknown}; known: {[c.name for c in cases]}\n")
        cases = [c for c in cases if c.name in args.only]
    if args.regenerate:
        if args.new_weights:
            from data_stubs.reference_models import BUILDERS, create_weights

            for name in BUILDERS:
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
