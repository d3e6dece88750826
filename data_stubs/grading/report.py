"""Machine-readable grades: Gradescope's ``results.json`` per submission, one gradebook CSV.

``results.json`` follows Gradescope's autograder specification
(https://gradescope-autograders.readthedocs.io/en/latest/specs/): a top-level ``score`` (the
maximum in ``extra_data``), ``execution_time`` in whole seconds, and one
test per function and case with ``name``, ``score``, ``max_score``, ``status`` (passed/failed)
and ``output`` (the verdict with the call, the limits and the measured differences).
The gradebook has one row per submission, one column per graded function (points summed over
its cases: partial credit per function) and the total.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from data_stubs.files import write_bytes_atomic, write_json_atomic
from data_stubs.grading.verdict import CaseResult


def results_json(results: Sequence[CaseResult], *, execution_time: float, note: str = "") -> dict:
    """Gradescope's ``results.json`` payload for one submission."""
    tests = [{"name": r.title, "number": f"{i + 1}", "score": r.score, "max_score": r.max_score,
              "status": "passed" if r.passed else "failed", "output": r.message,
              "tags": [r.function.partition(".")[0], r.function], "visibility": "visible"}
             for i, r in enumerate(results)]
    score = sum(r.score for r in results)
    maximum = sum(r.max_score for r in results)
    passed = sum(r.passed for r in results)
    summary = f"{passed} of {len(results)} cases passed, {score:g} of {maximum:g} points."
    # Only keys of Gradescope's specification at the top level; the maximum goes to extra_data.
    return {"score": score, "execution_time": int(round(execution_time)),
            "output": f"{summary} {note}".strip(), "stdout_visibility": "hidden",
            "extra_data": {"max_score": maximum}, "tests": tests}


def function_scores(results: Sequence[CaseResult]) -> dict:
    """``{package.function: points}`` summed over the function's cases, in case order."""
    scores: dict = {}
    for result in results:
        scores[result.function] = scores.get(result.function, 0.0) + result.score
    return scores


def write_results(folder: Path, payload: dict) -> Path:
    """Writes ``folder/results.json`` atomically."""
    return write_json_atomic(Path(folder) / "results.json", payload)


def write_gradebook(path: Path, graded: dict) -> Path:
    """One row per submission, a column per function, the total and the maximum.

    Args:
        path: the CSV to write.
        graded: ``{submission name: [CaseResult, ...]}`` (every submission graded on the same
            cases).
    """
    functions: list = []
    for results in graded.values():
        functions += [f for f in function_scores(results) if f not in functions]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["submission", *functions, "total", "max_score"])
    for name, results in graded.items():
        scores = function_scores(results)
        writer.writerow([name, *(f"{scores.get(f, 0.0):g}" for f in functions),
                         f"{sum(r.score for r in results):g}",
                         f"{sum(r.max_score for r in results):g}"])
    return write_bytes_atomic(path, buffer.getvalue().encode())
