"""The grading harness itself: it catches a student's mistake and reports per function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_stubs.grading import (
    FORMAT_VERSION,
    ReferenceError,
    Tolerance,
    compare,
    load_reference,
    save_reference,
)
from data_stubs.references import all_cases, produce
from tests.grading.harness import parse_impl_options

ROOT = Path(__file__).resolve().parents[2]


def _run_grading(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("GRADING_IMPL", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/grading/test_references.py", "-q",
         "-p", "no:cacheprovider", *args],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_sample_student_mistake_is_caught_and_reported_per_function():
    # One run shows every outcome: a correct function, the deliberate mistake, a missing
    # function, and a module that does not import -- and the rest of the suite still runs.
    run = _run_grading("--impl", "adversarial=tests/grading/sample_student.py",
                       "--impl", "visualization=no_such_student_module",
                       "-k", "fgsm or pgd_untargeted or mim_untargeted or saliency")
    report = run.stdout
    assert run.returncode == 1, report
    student = "tests/grading/sample_student.py"
    assert f"PASSED   {student}.fgsm_attack [fgsm_untargeted]" in report
    assert f"PASSED   {student}.fgsm_attack [fgsm_targeted]" in report
    assert f"FAILED   {student}.pgd_attack [pgd_untargeted]: max abs diff" in report
    assert f"MISSING  {student}.mim_attack [mim_untargeted]" in report
    assert ("ERROR    no_such_student_module.saliency_map [saliency]: "
            "no_such_student_module does not import: ModuleNotFoundError") in report
    # The seeded case depends on the package's own random stream: not asked of a student.
    assert "pgd_seeded" not in report


def test_bad_impl_option_is_a_usage_error():
    with pytest.raises(pytest.UsageError, match="PACKAGE=MODULE"):
        parse_impl_options(["adversarial"])
    with pytest.raises(pytest.UsageError, match="'nonsense=mod'"):
        parse_impl_options(["nonsense=mod"])


def test_reference_of_another_format_version_is_refused_clearly(tmp_path):
    path = tmp_path / "case.npz"
    save_reference(path, {"output": np.zeros(3)}, function="f", tolerance=Tolerance())
    with np.load(path) as data:
        arrays = dict(data)
    header = json.loads(str(arrays["__header__"]))
    header["format_version"] = FORMAT_VERSION - 1
    arrays["__header__"] = np.array(json.dumps(header))
    np.savez(path, **arrays)
    with pytest.raises(ReferenceError, match=f"format version {FORMAT_VERSION - 1}"):
        load_reference(path)
    with pytest.raises(ReferenceError, match="is missing"):
        load_reference(tmp_path / "absent.npz")


def test_compare_counts_differing_elements():
    expected = np.array([0.0, 1.0, 2.0, 3.0])
    result = compare(expected + [0, 0, 0, 0.5], expected, Tolerance(atol=1e-3, rtol=0, max_share=0.25))
    assert result.passed and result.share_differing == 0.25 and result.max_abs_diff == 0.5
    assert not compare(expected + [0, 0, 0.5, 0.5], expected,
                       Tolerance(atol=1e-3, rtol=0, max_share=0.25)).passed
    assert "shape" in compare(np.zeros(3), expected, Tolerance()).summary()


def test_regeneration_is_deterministic():
    case = next(c for c in all_cases() if c.name == "pgd_untargeted")
    first, second = produce(case), produce(case)
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
