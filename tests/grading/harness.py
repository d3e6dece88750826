"""Which implementation the grading suite grades: the package's own, or a student's module.

``--impl adversarial=student_attacks`` (or ``GRADING_IMPL=adversarial=student_attacks``) grades the
functions of ``student_attacks`` -- an importable module or a path to a ``.py`` file -- in place of
the package's ``adversarial``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGES = ("adversarial", "visualization", "assignment2")


@dataclass
class Implementation:
    """Where the graded functions of one package come from."""

    package: str
    source: str  # module name or file path; the package's own name when not replaced

    @property
    def is_package(self) -> bool:
        return self.source == self.package

    def load(self, package_module: str | None = None):
        """The graded module: ``package_module`` (where the package keeps the function) when the
        package itself is graded, else the replacement; raises ImportError with a one-line reason.
        """
        name = package_module if (self.is_package and package_module) else self.source
        try:
            if name.endswith(".py"):
                path = Path(name).resolve()
                spec = importlib.util.spec_from_file_location(f"graded_{path.stem}", path)
                if spec is None or not path.is_file():
                    raise FileNotFoundError(f"no such file {path}")
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
            return importlib.import_module(name)
        except Exception as exc:  # a broken student module is a graded outcome
            raise ImportError(f"{name} does not import: {type(exc).__name__}: {exc}") from exc


def parse_impl_options(values: list[str]) -> dict[str, Implementation]:
    """``["adversarial=mod", ...]`` -> one :class:`Implementation` per package."""
    impls = {p: Implementation(p, p) for p in PACKAGES}
    for value in values:
        package, sep, source = value.partition("=")
        if not sep or package not in PACKAGES or not source:
            raise pytest.UsageError(f"--impl/GRADING_IMPL takes PACKAGE=MODULE with PACKAGE one of "
                                    f"{PACKAGES}, got {value!r}")
        impls[package] = Implementation(package, source)
    return impls


def implementations(config) -> dict[str, Implementation]:
    env = [v for v in os.environ.get("GRADING_IMPL", "").split(",") if v.strip()]
    return parse_impl_options([v.strip() for v in env] + list(config.getoption("--impl")))
