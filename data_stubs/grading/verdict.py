"""One case's verdict: its score and a message that says why, with the limits and the numbers.

The tolerance and the call parameters come from the reference file's header (what the file says
is what is applied); the message names the call, the limits and the measured differences, so a
student can tell a sign error (half the elements off by ``2 epsilon``) from round-off.
"""

from __future__ import annotations

from dataclasses import dataclass

from data_stubs.grading.compare import compare
from data_stubs.grading.reference_files import stored_tolerance

STATUS_WORDS = {"ok": "FAILED", "missing": "MISSING", "error": "ERROR", "timeout": "TIMEOUT",
                "crashed": "CRASHED"}


@dataclass(frozen=True)
class CaseResult:
    """The graded result of one function on one case."""

    case: str
    function: str  # package.function
    score: float
    max_score: float
    verdict: str  # PASSED, FAILED, MISSING, ERROR, TIMEOUT or CRASHED
    message: str

    @property
    def passed(self) -> bool:
        return self.verdict == "PASSED"

    @property
    def title(self) -> str:
        return f"{self.function} [{self.case}]"


def call_text(function: str, params: dict) -> str:
    """``adversarial.fgsm_attack(model=digits_cnn, epsilon=0.1)``: the call a case makes."""
    arguments = ", ".join(f"{k}={v}" for k, v in params.items())
    return f"{function}({arguments})"


def judge(case_name: str, header: dict, expected, status: str, output=None,
          message: str = "") -> CaseResult:
    """Scores one case.

    Args:
        case_name: the case.
        header: the reference file's header (function, params, tolerance, points).
        expected: the stored output.
        status: what running the function gave: ``ok`` (then ``output`` is compared), or
            ``missing``, ``error``, ``timeout``, ``crashed`` (then ``message`` says why).
        output: the function's output when ``status == "ok"``.
        message: the reason when it did not run, or a note (the run time).

    Returns:
        A :class:`CaseResult`: full points when the output is within the stored tolerance, else 0.
    """
    tolerance = stored_tolerance(header)
    points = float(header.get("points", 1.0))
    call = f"call: {call_text(header['function'], header.get('params', {}))}"
    limits = f"limits: {tolerance.describe()}"
    if status == "ok":
        result = compare(output, expected, tolerance)
        verdict = "PASSED" if result.passed else "FAILED"
        detail = result.summary()
        note = f" ({message})" if message else ""
        text = f"{verdict}: {detail}{note}\n{call}\n{limits}"
        return CaseResult(case_name, header["function"], points if result.passed else 0.0,
                          points, verdict, text)
    verdict = STATUS_WORDS.get(status, "ERROR")
    return CaseResult(case_name, header["function"], 0.0, points, verdict,
                      f"{verdict}: {message}\n{call}\n{limits}")
