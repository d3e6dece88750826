"""Comparison of an implementation's output with a stored reference, and the reference file format.

A reference is one ``.npz`` file per case in ``data_stubs/references/``: the case's inputs (so a
grader can see what was asked), the expected ``output`` and a JSON header with the format version,
the package version that produced it and the tolerance the grading suite applies.

Two outputs agree element-wise when ``|actual - expected| <= atol + rtol * |expected|``; a case
passes when the share of elements that do not agree is at most ``max_share``. Sign-based attacks
(FGSM, PGD, MIM) use a small ``max_share``: where the loss gradient is (numerically) zero its sign
may flip between two correct implementations, moving a pixel by a whole step.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from data_stubs.files import write_atomic

#: Bumped whenever the layout of reference files changes; the suite refuses other formats.
FORMAT_VERSION = 1
REFERENCE_DIR = Path(__file__).resolve().parent / "references"


@dataclass(frozen=True)
class Tolerance:
    """Element-wise tolerance and the share of elements allowed outside it."""

    atol: float = 1e-5
    rtol: float = 1e-4
    max_share: float = 0.0


@dataclass(frozen=True)
class Comparison:
    """How far an output is from its reference."""

    passed: bool
    max_abs_diff: float
    share_differing: float
    detail: str = ""

    def summary(self) -> str:
        if self.detail:
            return self.detail
        return (f"max abs diff {self.max_abs_diff:.3g}, "
                f"{100 * self.share_differing:.2f}% of elements differ")


def compare(actual, expected, tolerance: Tolerance) -> Comparison:
    """Compares ``actual`` with ``expected`` under ``tolerance``; shapes must match exactly."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        return Comparison(False, float("inf"), 1.0,
                          f"shape {actual.shape} differs from the reference's {expected.shape}")
    if not np.all(np.isfinite(actual.astype(np.float64))):
        return Comparison(False, float("inf"), 1.0, "output has NaN or infinite values")
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    diff = np.abs(a - e)
    bad = diff > tolerance.atol + tolerance.rtol * np.abs(e)
    share = float(bad.mean()) if bad.size else 0.0
    max_diff = float(diff.max()) if diff.size else 0.0
    return Comparison(share <= tolerance.max_share, max_diff, share)


def package_version() -> str:
    """Version of the installed package that produces the references."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("convnets-course")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


def save_reference(path: Path, arrays: dict, *, function: str, tolerance: Tolerance) -> None:
    """Writes one reference file atomically (temporary file in the same folder, then rename)."""
    header = {"format_version": FORMAT_VERSION, "package_version": package_version(),
              "function": function, "tolerance": asdict(tolerance)}
    arrays = {k: np.asarray(v) for k, v in sorted(arrays.items())}
    write_atomic(path, lambda tmp: np.savez_compressed(
        tmp, __header__=np.array(json.dumps(header, sort_keys=True)), **arrays))


class ReferenceError(Exception):
    """A reference file is missing, unreadable or of another format version."""


def load_reference(path: Path) -> tuple[dict, dict]:
    """Reads a reference file: ``(header, arrays)``; raises :class:`ReferenceError` clearly."""
    if not path.is_file():
        raise ReferenceError(f"reference file {path} is missing: regenerate with "
                             "`python -m data_stubs.references --regenerate`")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        header = json.loads(str(arrays.pop("__header__")))
    except Exception as exc:  # any unreadable file gets the same clear message
        raise ReferenceError(f"reference file {path} is unreadable: {exc}") from exc
    if header.get("format_version") != FORMAT_VERSION:
        raise ReferenceError(
            f"reference file {path} has format version {header.get('format_version')!r} "
            f"(package {header.get('package_version')!r}); this suite reads format "
            f"{FORMAT_VERSION}: regenerate with `python -m data_stubs.references --regenerate`")
    return header, arrays
