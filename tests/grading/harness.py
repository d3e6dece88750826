"""Which implementation the grading suite grades: the package's own, or a student's module.

``--impl adversarial=student_attacks`` (or ``GRADING_IMPL=adversarial=student_attacks``) grades the
functions of ``student_attacks`` -- an importable module, a path to a ``.py`` file or to a package
folder -- in place of the package's ``adversarial``. A student's code runs on the grader's own
machinery (:mod:`data_stubs.grading`): in a child process with time and memory limits, the
reference packages out of its reach, and the same verdicts as ``python -m data_stubs.grading``.
The package itself is trusted and runs in this process.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from data_stubs.grading.sandbox import PACKAGES, Limits, Outcome, Submission, run_submission


@dataclass
class Implementation:
    """Where the graded functions of one package come from."""

    package: str
    source: str  # module name or path; the package's own name when not replaced

    @property
    def is_package(self) -> bool:
        return self.source == self.package

    def location(self) -> Path:
        """The file or package folder of a replacement; raises pytest.UsageError if none."""
        path = Path(self.source)
        if self.source.endswith(".py") or path.is_dir():
            if not path.exists():
                raise pytest.UsageError(f"--impl {self.package}={self.source}: no such file")
            return path
        spec = importlib.util.find_spec(self.source)
        if spec is None or spec.origin is None:
            raise pytest.UsageError(f"--impl {self.package}={self.source}: no module of that name")
        origin = Path(spec.origin)
        return origin.parent if origin.name == "__init__.py" else origin


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


def assemble_submission(impls: dict[str, Implementation], folder: Path) -> Submission:
    """Copies each replacement into ``folder`` under its package's name: a submission."""
    for impl in impls.values():
        if impl.is_package:
            continue
        source = impl.location()
        if source.is_dir():
            shutil.copytree(source, folder / impl.package,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, folder / f"{impl.package}.py")
    return Submission(folder)


class StudentRuns:
    """Runs every replaced package's cases in ONE sandboxed child, the first time one is asked."""

    def __init__(self, impls: dict[str, Implementation], cases, references: dict):
        self.impls, self.cases, self.references = impls, cases, references
        self._outcomes: dict | None = None

    def outcome(self, case) -> Outcome:
        if self._outcomes is None:
            student = [c for c in self.cases if not self.impls[c.package].is_package]
            with tempfile.TemporaryDirectory(prefix="impl-") as tmp:
                submission = assemble_submission(self.impls, Path(tmp))
                inputs = {c.name: self.references[c.name].inputs for c in student}
                self._outcomes = run_submission(submission, student, inputs, Limits())
        return self._outcomes[case.name]
