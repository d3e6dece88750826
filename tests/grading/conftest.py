"""The grading suite: fixtures and the per-function report.

``pytest tests/grading`` grades the package itself; ``pytest tests/grading --impl
adversarial=student_attacks`` grades a student's module instead (see :mod:`tests.grading.harness`),
in a sandboxed child process. A module that does not import, a missing function, a function that
raises, loops or exits fails its cases with one clear line; the rest of the suite runs. The
harness's own tests live in ``tests/data_stubs`` and are not re-run when grading a student.
"""

from __future__ import annotations

import pytest

from data_stubs.grading.grader import load_references
from data_stubs.references import Case, all_cases
from tests.grading.harness import StudentRuns, implementations

_RESULTS = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[_RESULTS] = []


@pytest.fixture(scope="session")
def graded(pytestconfig):
    """Package name -> the Implementation graded for it."""
    return implementations(pytestconfig)


@pytest.fixture(scope="session")
def references():
    """Every stored reference (inputs, expected output, header), read once."""
    return load_references(all_cases())


@pytest.fixture(scope="session")
def student_runs(request, graded, references):
    """Outcomes of the replaced packages' selected cases, run once in a sandboxed child."""
    # Other suites parametrise a "case" too (a name, say): only this suite's Case objects count.
    selected = {params["case"].name for params in
                (getattr(getattr(item, "callspec", None), "params", {}) for item in
                 request.session.items) if isinstance(params.get("case"), Case)}
    cases = [c for c in all_cases() if c.portable and c.name in selected]
    return StudentRuns(graded, cases, references)


@pytest.fixture
def record_grade(pytestconfig):
    def record(source, result):
        pytestconfig.stash[_RESULTS].append((source, result))
    return record


def pytest_terminal_summary(terminalreporter, config):
    rows = config.stash.get(_RESULTS, [])
    if not rows:
        return
    terminalreporter.write_sep("=", "grading report (per function and case)")
    for source, result in rows:
        first = result.message.split("\n")[0].partition(": ")[2]
        terminalreporter.write_line(
            f"{result.verdict:8s} {source}: {result.function} [{result.case}]: {first}")
    verdicts = [r.verdict for _, r in rows]
    counts = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
    score = sum(r.score for _, r in rows)
    total = sum(r.max_score for _, r in rows)
    terminalreporter.write_line(", ".join(f"{n} {v.lower()}" for v, n in counts.items())
                                + f"; {score:g} of {total:g} points")
