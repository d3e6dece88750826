"""``python -m assignment2.predict CHECKPOINT SRC OUT``: buildings of SpaceNet tiles, ready to use.

Runs a trained U-Net (a ``.keras`` checkpoint of ``python -m assignment2.train``) over every tile
of one or several SpaceNet 2 areas (``AOI_<n>_<City>_Train``, images-only ``*_Test_public``, or a
folder holding several), ONE TILE AT A TIME, optionally with test-time augmentation, and writes::

    OUT/<id>_probs.tif      float16 (H, W, 3) class probabilities, the tile's GeoTIFF georeferencing
    OUT/<id>_mask.tif       uint8 (H, W) classes (0 background, 1 interior, 2 boundary),
                            georeferenced; no-data pixels (all bands 0) are background
    OUT/<id>.geojson        one polygon per building in lon/lat (CRS84), like SpaceNet's GeoJSON,
                            with BuildingId, Confidence and area_px
    OUT/solution.csv        the SpaceNet submission: ImageId,BuildingId,PolygonWKT_Pix,Confidence
                            (pixel coordinates; "POLYGON EMPTY" for a tile without buildings)
    OUT/predict_config.json the options used (with the values read from the run folder)

Buildings are the instances of :func:`assignment2.instances.building_instances` (interior seeds
grown into the boundary) traced along pixel edges (:mod:`assignment2.polygons`); a building's
confidence is its mean building probability.

The model sees what it saw in training: the run folder's ``radiometry.json`` (beside
``checkpoints/``) gives the scaling (fixed or per-AOI percentiles) and its ``config.json`` the
boundary width, unless given as options. Everything is checked before anything is written (the
checkpoint, the areas, the radiometry, OUT); every file is written atomically and
``solution.csv`` only once all tiles are done. Bad input prints one line naming the file and exits
with status 2.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assignment2.cli import OneLineParser, fail
from assignment2.data import BAND_COUNTS, BAND_FOLDERS, DataError, list_raw_tiles, read_source_tile
from assignment2.geotiff import write_geotiff
from assignment2.instances import building_instances
from assignment2.masks import DEFAULT_BOUNDARY_WIDTH, check_boundary_width
from assignment2.polygons import (
    SOLUTION_COLUMNS,
    feature_collection,
    instance_polygons,
    solution_rows,
)
from assignment2.radiometry import (
    BIT_DEPTH_CHOICES,
    NORMALIZATION_CHOICES,
    Radiometry,
    load_radiometry,
    model_input,
)
from data_stubs.files import write_atomic, write_json_atomic

TTA_CHOICES = ("d4", "flips", "none")
#: Files this command writes into OUT (``--overwrite`` replaces only these).
OUTPUT_PATTERNS = ("*_probs.tif", "*_mask.tif", "*.geojson", "solution.csv",
                   "predict_config.json")


@dataclass
class PredictConfig:
    """Options of ``python -m assignment2.predict``; saved as ``OUT/predict_config.json``."""

    checkpoint: Path  # a .keras model written by python -m assignment2.train
    src: Path  # SpaceNet area(s): AOI_<n>_<City>_Train / _Test_public, or a folder of them
    out: Path  # output folder
    tta: str = "d4"  # test-time augmentation: "d4" (8 flips/rotations), "flips" (2), "none"
    bands: str = "rgb"  # "rgb" (RGB-PanSharpen) or "mul" (MUL-PanSharpen); must match the model
    bit_depth: str = "auto"  # "auto" (uint8 -> 8, uint16 -> 11) or "8", "11", "16"
    # Input scaling: None = the run's radiometry.json if there is one, else "fixed".
    normalization: str | None = None
    # Per-AOI radiometry of the training data: None = <run>/radiometry.json if it exists.
    radiometry: Path | None = None
    # Boundary thickness the model was trained with: None = the run's config.json, else the default.
    boundary_width: int | None = None
    min_area: int = 21  # smaller instances are dropped: the scorer ignores proposals <= 20 px
    overwrite: bool = False  # replace this command's outputs in a non-empty OUT

    def __post_init__(self) -> None:
        self.checkpoint, self.src, self.out = Path(self.checkpoint), Path(self.src), Path(self.out)
        _choice(self.tta, TTA_CHOICES, "--tta")
        _choice(self.bands, tuple(BAND_FOLDERS), "--bands")
        self.bit_depth = str(self.bit_depth)
        _choice(self.bit_depth, BIT_DEPTH_CHOICES, "--bit-depth")
        if self.normalization is not None:
            _choice(self.normalization, NORMALIZATION_CHOICES, "--normalization")
        if self.boundary_width is not None:
            check_boundary_width(self.boundary_width)
        if isinstance(self.min_area, bool) or not isinstance(self.min_area, int) \
                or self.min_area < 0:
            raise ValueError(f"--min-area must be an int >= 0, got {self.min_area!r}")

    def run_folder(self) -> Path:
        """The training run the checkpoint belongs to (``<run>/checkpoints/best.keras``)."""
        parent = self.checkpoint.resolve().parent
        return parent.parent if parent.name == "checkpoints" else parent


def _choice(value, choices, name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


# --------------------------------------------------------------------------- checks


def load_segmentation_model(path: Path, input_channels: int):
    """Load a ``.keras`` U-Net of this package; ValueError naming the file if it is not one."""
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint not found")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a .keras model file (python -m assignment2.train writes "
                         f"checkpoints/best.keras)")
    import keras

    import assignment2.model  # noqa: F401  (registers the package's layers and loss)

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras reports foreign or damaged archives in many ways
        raise ValueError(f"{path}: cannot load the model ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]})") from None
    inputs, outputs = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
    if len(inputs) != 4 or len(outputs) != 4 or outputs[-1] != 3:
        raise ValueError(f"{path}: not a segmentation model of this package (input {inputs}, "
                         f"output {outputs}; expected (N, H, W, C) -> (N, H, W, 3))")
    if inputs[-1] != input_channels:
        raise ValueError(f"{path}: the model takes {inputs[-1]} bands, --bands gives "
                         f"{input_channels}")
    return model


def _run_settings(config: PredictConfig, aois: set[str]) -> tuple[dict, str, int]:
    """Radiometry per AOI, normalization and boundary width, from options or the run folder."""
    run = config.run_folder()
    path = config.radiometry or (run / "radiometry.json")
    radiometry, normalization = {}, "fixed"
    if config.radiometry is not None or path.is_file():
        radiometry, normalization = load_radiometry(path)
    normalization = config.normalization or normalization
    if normalization == "percentile":
        missing = sorted(aois - set(radiometry))
        if missing:
            raise ValueError(f"{path}: no percentile statistics for {missing} (percentile "
                             f"scaling needs the AOIs the model was trained on)")
    width = config.boundary_width
    if width is None:
        width = _run_boundary_width(run / "config.json")
    return radiometry, normalization, check_boundary_width(width)


def _run_boundary_width(path: Path) -> int:
    if not path.is_file():
        return DEFAULT_BOUNDARY_WIDTH
    try:
        return int(json.loads(path.read_text(encoding="utf-8")).get("boundary_width",
                                                                    DEFAULT_BOUNDARY_WIDTH))
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: unreadable run config ({exc})") from None


def _check_out(config: PredictConfig) -> None:
    if config.out.exists() and not config.out.is_dir():
        raise ValueError(f"{config.out}: OUT is a file, not a folder")
    if config.out.resolve() == config.src.resolve():
        raise ValueError(f"OUT must differ from SRC, got {str(config.out)!r} for both")
    if config.out.is_dir() and any(config.out.iterdir()) and not config.overwrite:
        raise ValueError(f"{config.out}: OUT is not empty; pass --overwrite to replace the "
                         f"predictions in it")


# --------------------------------------------------------------------------- prediction


def predict_tile(model, image: np.ndarray, *, tta: str, multiple: int) -> np.ndarray:
    """Probabilities ``(H, W, 3)`` float32 of one model-input tile ``(H, W, C)``."""
    from assignment2.tta import predict_tta

    return np.asarray(predict_tta(model, image, transforms=tta, multiple=multiple), np.float32)


def _write_tile(out: Path, tile, probs: np.ndarray, boundary_width: int,
                min_area: int) -> list:
    """The tile's three files; returns its buildings."""
    mask = np.where(tile.valid, np.argmax(probs, axis=-1), 0).astype(np.uint8)
    instances = building_instances(mask, boundary_width=boundary_width, min_area=min_area)
    buildings = instance_polygons(instances, probs)
    write_geotiff(out / f"{tile.id}_probs.tif", probs.astype(np.float16), tile.transform)
    write_geotiff(out / f"{tile.id}_mask.tif", mask, tile.transform)
    write_json_atomic(out / f"{tile.id}.geojson", feature_collection(buildings, tile.transform))
    return buildings


def predict(config: PredictConfig) -> dict:
    """Predict every tile of ``config.src`` into ``config.out`` (see the module docstring).

    Returns:
        Summary ``{"tiles": n, "buildings": m, "seconds": s}``.

    Raises:
        ValueError / DataError naming the file: bad checkpoint, empty or image-less folder,
        missing radiometry, non-empty OUT without ``overwrite``, a corrupt tile.
    """
    tiles, _ = list_raw_tiles(config.src, bands=config.bands, labelled=False)
    radiometry, normalization, width = _run_settings(config, {t.aoi for t in tiles})
    _check_out(config)
    model = load_segmentation_model(config.checkpoint, BAND_COUNTS[config.bands])
    from assignment2.model import network_stride

    multiple = network_stride(model)
    config.out.mkdir(parents=True, exist_ok=True)
    if config.overwrite:
        for pattern in OUTPUT_PATTERNS:
            for old in config.out.glob(pattern):
                old.unlink()
    started, counts = time.perf_counter(), {"tiles": 0, "buildings": 0}

    def write_solution(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(SOLUTION_COLUMNS)
            for raw in tiles:
                tile = read_source_tile(raw, bands=config.bands, bit_depth=config.bit_depth)
                scaling = radiometry.get(tile.aoi, Radiometry(tile.bit_depth))
                image = model_input(tile.image, scaling, normalization)
                probs = predict_tile(model, image, tta=config.tta, multiple=multiple)
                buildings = _write_tile(config.out, tile, probs, width, config.min_area)
                writer.writerows(solution_rows(tile.id, buildings))
                counts["tiles"] += 1
                counts["buildings"] += len(buildings)

    write_atomic(config.out / "solution.csv", write_solution)
    counts["seconds"] = round(time.perf_counter() - started, 2)
    record = {k: (str(v) if isinstance(v, Path) else v)
              for k, v in dataclasses.asdict(config).items()}
    record.update(normalization=normalization, boundary_width=width, network_stride=multiple,
                  **counts)
    write_json_atomic(config.out / "predict_config.json", record)
    return counts


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m assignment2.predict",
                     description="Predict SpaceNet 2 tiles: georeferenced probabilities and "
                                 "masks, building GeoJSON and the SpaceNet submission CSV.")
    parser.add_argument("checkpoint", type=Path, help="a .keras checkpoint of assignment2.train")
    parser.add_argument("src", type=Path, help="AOI_<n>_<City>_Train / _Test_public, or a "
                        "folder of them")
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--tta", choices=TTA_CHOICES, default="d4",
                        help="test-time augmentation (default: d4, the 8 flips and rotations)")
    parser.add_argument("--bands", choices=tuple(BAND_FOLDERS), default="rgb",
                        help="image bands, as in training (default: rgb)")
    parser.add_argument("--bit-depth", choices=BIT_DEPTH_CHOICES, default="auto",
                        help="digital number range (default: auto)")
    parser.add_argument("--normalization", choices=NORMALIZATION_CHOICES, default=None,
                        help="input scaling (default: the run's radiometry.json, else fixed)")
    parser.add_argument("--radiometry", type=Path, default=None,
                        help="radiometry.json of the training run (default: beside "
                        "checkpoints/)")
    parser.add_argument("--boundary-width", type=int, default=None, metavar="PIXELS",
                        help="boundary thickness the model was trained with (default: the "
                        f"run's config.json, else {DEFAULT_BOUNDARY_WIDTH})")
    parser.add_argument("--min-area", type=int, default=21, metavar="PIXELS",
                        help="drop buildings of fewer pixels (default: 21; the scorer ignores "
                        "proposals of 20 px or less)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace earlier predictions in a non-empty OUT")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return int(exc.code or 0)
    try:
        config = PredictConfig(**vars(args))
        counts = predict(config)
    except (DataError, ValueError, TypeError, OSError) as exc:
        return fail(parser.prog, exc)
    print(f"predicted {counts['tiles']} tiles, {counts['buildings']} buildings into "
          f"{config.out} ({counts['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
