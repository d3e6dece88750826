"""The grading harness: fixtures and the per-function report.

``pytest tests/grading`` grades the package itself; ``pytest tests/grading --impl
adversarial=student_attacks`` grades a student's module instead (see :mod:`tests.grading.harness`).
A module that does not import, a missing function, a function that raises or a missing reference
fails that case with one clear line; the rest of the suite runs.
"""

from __future__ import annotations

import pytest

from tests.grading.harness import implementations

_RESULTS = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[_RESULTS] = []


@pytest.fixture(scope="session")
def graded(pytestconfig):
    """Package name -> the Implementation graded for it."""
    return implementations(pytestconfig)


@pytest.fixture
def record_grade(pytestconfig):
    def record(case, source, status, detail):
        pytestconfig.stash[_RESULTS].append((case.package, case.function, case.name, source,
                                             status, detail))
    return record


def pytest_terminal_summary(terminalreporter, config):
    rows = config.stash.get(_RESULTS, [])
    if not rows:
        return
    terminalreporter.write_sep("=", "grading report (per function and case)")
    for package, function, case, source, status, detail in rows:
        terminalreporter.write_line(
            f"{status:8s} {source}.{function} [{case}]: {detail}")
    counts = {s: sum(r[4] == s for r in rows) for s in ("PASSED", "FAILED", "MISSING", "ERROR")}
    terminalreporter.write_line(", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n))
