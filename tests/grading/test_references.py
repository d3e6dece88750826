"""Grades an implementation (by default the package itself) against the stored references."""

from __future__ import annotations

import pytest

from data_stubs.grading import ReferenceError, compare, load_reference
from data_stubs.references import all_cases
from tests.grading.harness import implementations


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        impls = implementations(metafunc.config)
        # Cases that depend on the package's own random stream only make sense for the package.
        cases = [c for c in all_cases() if c.portable or impls[c.package].is_package]
        metafunc.parametrize("case", cases, ids=[c.name for c in cases])


def test_matches_reference(case, graded, record_grade):
    impl = graded[case.package]

    def fail(status, detail):
        record_grade(case, impl.source, status, detail)
        pytest.fail(f"{status} {impl.source}.{case.function} [{case.name}]: {detail}",
                    pytrace=False)

    try:
        _, stored = load_reference(case.path)
    except ReferenceError as exc:
        fail("ERROR", str(exc))
    try:
        module = impl.load(case.package_module)
    except ImportError as exc:
        fail("ERROR", str(exc))
    function = getattr(module, case.function, None)
    if function is None:
        fail("MISSING", f"{impl.source} defines no function {case.function}")
    inputs = {k[len("input_"):]: v for k, v in stored.items() if k.startswith("input_")}
    try:
        output = case.run(function, inputs)
    except Exception as exc:  # noqa: BLE001 -- any exception of the graded code is its result
        fail("ERROR", f"raised {type(exc).__name__}: {exc}")
    result = compare(output, stored["output"], case.tolerance)
    if not result.passed:
        fail("FAILED", result.summary())
    record_grade(case, impl.source, "PASSED", result.summary())
