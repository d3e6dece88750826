"""Grading submissions end to end: stored references in, :class:`CaseResult` lists out.

The parent process loads the references (inputs and expected outputs), hands each submission's
child only the inputs (:mod:`.sandbox`), and judges what comes back (:mod:`.verdict`).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from data_stubs.grading.reference_files import inputs_of, load_reference
from data_stubs.grading.sandbox import Limits, Submission, run_submission
from data_stubs.grading.verdict import CaseResult, judge


@dataclass(frozen=True)
class Reference:
    """One stored case: its header, its inputs and its expected output."""

    header: dict
    inputs: dict
    expected: object


def graded_cases(names=None) -> list:
    """The portable cases (every implementation is asked for them), optionally only ``names``.

    Raises:
        ValueError: a name that is no portable case.
    """
    from data_stubs.references import all_cases

    cases = [case for case in all_cases() if case.portable]
    if names:
        unknown = sorted(set(names) - {case.name for case in cases})
        if unknown:
            raise ValueError(f"cases {unknown} are not graded cases; known: "
                             f"{[case.name for case in cases]}")
        cases = [case for case in cases if case.name in names]
    return cases


def load_references(cases) -> dict:
    """``{case name: Reference}``; raises ReferenceError for a missing or unreadable file."""
    references = {}
    for case in cases:
        header, arrays = load_reference(case.path)
        references[case.name] = Reference(header, inputs_of(arrays), arrays["output"])
    return references


def grade_submission(submission: Submission, cases, references: dict,
                     limits: Limits) -> tuple[list[CaseResult], float]:
    """Runs and judges every case for one submission; returns the results and the seconds taken."""
    started = time.monotonic()
    inputs = {case.name: references[case.name].inputs for case in cases}
    outcomes = run_submission(submission, cases, inputs, limits)
    results = []
    for case in cases:
        outcome, reference = outcomes[case.name], references[case.name]
        results.append(judge(case.name, reference.header, reference.expected, outcome.status,
                             outcome.output, outcome.message))
    return results, time.monotonic() - started


def grade_all(submissions, cases, references, limits: Limits, jobs: int = 1, on_done=None):
    """Grades ``submissions`` ``jobs`` at a time; ``on_done(submission, results, seconds)`` is
    called as each finishes; returns ``{submission name: (results, seconds)}`` in input order."""
    def one(submission):
        try:
            results, seconds = grade_submission(submission, cases, references, limits)
        except Exception as exc:  # noqa: BLE001 -- one submission never stops the others
            reason = f"the grader could not run this submission: {type(exc).__name__}: {exc}"
            results = [judge(c.name, references[c.name].header, None, "error", message=reason)
                       for c in cases]
            seconds = 0.0
        if on_done is not None:
            on_done(submission, results, seconds)
        return results, seconds

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        graded = list(pool.map(one, submissions))
    return {s.name: g for s, g in zip(submissions, graded)}
