"""Grades an implementation (by default the package itself) against the stored references."""

from __future__ import annotations

import pytest

from data_stubs.grading.verdict import judge
from data_stubs.reference_models import KERAS_ONLY, ModelSource
from data_stubs.references import all_cases, package_function
from tests.grading.harness import implementations


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        impls = implementations(metafunc.config)
        # Cases that depend on the package's own random stream only make sense for the package.
        cases = [c for c in all_cases() if c.portable or impls[c.package].is_package]
        metafunc.parametrize("case", cases, ids=[c.name for c in cases])


def _run_package(case, reference):
    """The package's own function, in this process (it is trusted), on fresh model copies."""
    try:
        output = case.run(package_function(case), reference.inputs,
                          ModelSource(KERAS_ONLY + ("small_unet",)), case.params)
    except Exception as exc:  # noqa: BLE001 -- any exception is the case's result
        return "error", None, f"raised {type(exc).__name__}: {exc}"
    return "ok", output, ""


def test_matches_reference(case, graded, references, student_runs, record_grade):
    impl = graded[case.package]
    reference = references[case.name]
    if impl.is_package:
        status, output, message = _run_package(case, reference)
    else:
        outcome = student_runs.outcome(case)
        status, output, message = outcome.status, outcome.output, outcome.message
    result = judge(case.name, reference.header, reference.expected, status, output, message)
    record_grade(impl.source, result)
    if not result.passed:
        pytest.fail(f"{impl.source}: {result.title}: {result.message}", pytrace=False)
