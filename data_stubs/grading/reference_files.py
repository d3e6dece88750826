"""The reference file format: one ``.npz`` per case with its inputs, output and a JSON header.

The header records the format version, what produced the file (package, TensorFlow, Keras and
NumPy versions, platform, device), the graded function, the call parameters and the tolerance,
so a file explains itself: a grader sees what was asked, with which limits, made where.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np

from data_stubs.files import write_atomic
from data_stubs.grading.compare import Tolerance

#: Bumped whenever the layout of reference files changes; the suite refuses other formats.
FORMAT_VERSION = 2
REFERENCE_DIR = Path(__file__).resolve().parent.parent / "references"


class ReferenceError(Exception):
    """A reference file is missing, unreadable or of another format version."""


def package_version() -> str:
    """Version of the installed package that produces the references."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("convnets-course")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


def provenance() -> dict:
    """What produces a reference here: package, TensorFlow, Keras, NumPy, Python, platform."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {"package_version": package_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "machine": platform.machine(), "device": "GPU" if gpus else "CPU"}


def save_reference(path: Path, arrays: dict, *, function: str, tolerance: Tolerance,
                   params: dict | None = None, extra: dict | None = None) -> None:
    """Writes one reference file atomically (temporary file in the same folder, then rename).

    Args:
        path: the ``.npz`` to write.
        arrays: ``input_*`` arrays and ``output``.
        function: ``package.function`` graded.
        tolerance: the limits the grader applies.
        params: the call parameters (JSON-serialisable), shown in every verdict.
        extra: more header fields (points, notes, provenance).
    """
    header = {"format_version": FORMAT_VERSION, "function": function,
              "tolerance": asdict(tolerance), "params": params or {}, **(extra or {})}
    arrays = {k: np.asarray(v) for k, v in sorted(arrays.items())}
    write_atomic(path, lambda tmp: np.savez_compressed(
        tmp, __header__=np.array(json.dumps(header, sort_keys=True)), **arrays))


def load_reference(path: Path) -> tuple[dict, dict]:
    """Reads a reference file: ``(header, arrays)``; raises :class:`ReferenceError` clearly."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceError(f"reference file {path} is missing: this installation is incomplete "
                             "(reinstall the package: its wheel carries every reference file)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        header = json.loads(str(arrays.pop("__header__")))
    except Exception as exc:  # any unreadable file gets the same clear message
        raise ReferenceError(f"reference file {path} is unreadable: {exc}") from exc
    if header.get("format_version") != FORMAT_VERSION:
        raise ReferenceError(
            f"reference file {path} has format version {header.get('format_version')!r} "
            f"(package {header.get('package_version')!r}); this grader reads format "
            f"{FORMAT_VERSION}: install the package version that matches the files")
    return header, arrays


def stored_tolerance(header: dict) -> Tolerance:
    """The tolerance recorded in a reference file's header (the one the grader applies)."""
    return Tolerance(**header["tolerance"])


def inputs_of(arrays: dict) -> dict:
    """The case's inputs stored in a reference file (``input_*`` arrays), without the answer."""
    return {k[len("input_"):]: v for k, v in arrays.items() if k.startswith("input_")}
