"""The grading machinery itself: comparison, verdicts, reference files, reports, the CLI's input
checks and the pytest harness on a sample submission (the harness's self-test lives here, so
``pytest tests/grading --impl ...`` grades a student without re-running it)."""

from __future__ import annotations

import csv
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
from data_stubs.grading.__main__ import main
from data_stubs.grading.report import results_json, write_gradebook
from data_stubs.grading.verdict import judge
from data_stubs.references import all_cases, produce
from tests.grading.harness import parse_impl_options

ROOT = Path(__file__).resolve().parents[2]
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"


def test_compare_counts_differing_elements_and_states_the_limits():
    expected = np.array([0.0, 1.0, 2.0, 3.0])
    limits = Tolerance(atol=1e-3, rtol=0, max_share=0.25)
    result = compare(expected + [0, 0, 0, 0.5], expected, limits)
    assert result.passed and result.share_differing == 0.25 and result.max_abs_diff == 0.5
    failed = compare(expected + [0, 0, 0.5, 0.5], expected, limits)
    assert not failed.passed
    assert failed.summary() == (
        "max abs diff 0.5, 50.00% of elements differ (limit |actual - expected| <= 0.001 + 0 * "
        "|expected|, at most 25.00% of elements outside); worst element at index (2,): got 2.5, "
        "expected 2")
    assert "shape (3,) differs" in compare(np.zeros(3), expected, Tolerance()).summary()
    assert "NaN" in compare(np.full(4, np.nan), expected, Tolerance()).summary()
    assert "not an array of numbers" in compare({"a": 1}, expected, Tolerance()).summary()


def test_verdict_reads_the_files_tolerance_and_shows_the_call():
    header = {"function": "adversarial.fgsm_attack", "tolerance": {"atol": 0.5, "rtol": 0.0,
                                                                   "max_share": 0.0},
              "params": {"model": "digits_cnn", "epsilon": 0.1}, "points": 2.0}
    expected = np.zeros(4)
    close = judge("c", header, expected, "ok", np.full(4, 0.4))
    assert close.passed and close.score == 2.0 and close.max_score == 2.0
    far = judge("c", header, expected, "ok", np.full(4, 0.6))
    assert far.verdict == "FAILED" and far.score == 0.0
    assert "call: adversarial.fgsm_attack(model=digits_cnn, epsilon=0.1)" in far.message
    assert "limits: |actual - expected| <= 0.5 + 0 * |expected|" in far.message
    timeout = judge("c", header, expected, "timeout", message="no result within 3 s")
    assert timeout.message.startswith("TIMEOUT: no result within 3 s") and timeout.score == 0


def test_reference_of_another_format_version_is_refused_without_advising_regeneration(tmp_path):
    path = tmp_path / "case.npz"
    save_reference(path, {"output": np.zeros(3)}, function="f", tolerance=Tolerance())
    with np.load(path) as data:
        arrays = dict(data)
    header = json.loads(str(arrays["__header__"]))
    header["format_version"] = FORMAT_VERSION - 1
    arrays["__header__"] = np.array(json.dumps(header))
    np.savez(path, **arrays)
    with pytest.raises(ReferenceError, match=f"format version {FORMAT_VERSION - 1}") as error:
        load_reference(path)
    assert "--new-weights" not in str(error.value)
    with pytest.raises(ReferenceError, match="is missing: this installation is incomplete"):
        load_reference(tmp_path / "absent.npz")


def test_every_stored_reference_records_its_call_and_what_produced_it():
    for case in all_cases():
        header, arrays = load_reference(case.path)
        assert header["function"] == f"{case.package}.{case.function}"
        assert header["params"] == json.loads(json.dumps(case.params)), case.name
        assert Tolerance(**header["tolerance"]) == case.tolerance, case.name
        made = header["produced_by"]
        assert {"tensorflow", "keras", "numpy", "platform", "device"} <= set(made), case.name
        assert "output" in arrays and any(k.startswith("input_") for k in arrays)


def test_regeneration_is_deterministic():
    case = next(c for c in all_cases() if c.name == "pgd_untargeted")
    first, second = produce(case), produce(case)
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_results_json_and_gradebook(tmp_path):
    header = {"function": "visualization.gram_matrix", "tolerance": {"atol": 0.1, "rtol": 0.0,
                                                                    "max_share": 0.0}}
    results = [judge("a", header, np.zeros(2), "ok", np.zeros(2)),
               judge("b", header, np.zeros(2), "crashed", message="the child exited")]
    payload = results_json(results, execution_time=1.234)
    assert payload["score"] == 1.0 and payload["extra_data"] == {"max_score": 2.0}
    assert payload["execution_time"] == 1
    # Gradescope's specification: these top-level keys, these keys per test.
    assert set(payload) <= {"score", "execution_time", "output", "output_format", "visibility",
                            "stdout_visibility", "extra_data", "tests", "leaderboard"}
    for test in payload["tests"]:
        assert set(test) <= {"score", "max_score", "status", "name", "name_format", "number",
                             "output", "output_format", "tags", "visibility", "extra_data"}
    assert [t["status"] for t in payload["tests"]] == ["passed", "failed"]
    assert payload["tests"][0]["name"] == "visualization.gram_matrix [a]"
    write_gradebook(tmp_path / "g.csv", {"alice": results, "bob": results[1:]})
    with open(tmp_path / "g.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["submission", "visualization.gram_matrix", "total", "max_score"],
                    ["alice", "1", "1", "2"], ["bob", "0", "0", "1"]]


@pytest.mark.parametrize("argv, message", [
    (["no/such/folder"], "submission 'no/such/folder' does not exist"),
    ([str(ROOT / "docs")], "holds none of the expected modules"),
    ([str(SUBMISSIONS / "packaged"), "--timeout", "soon"], "argument --timeout: expected a "
                                                            "positive number, got 'soon'"),
    ([str(SUBMISSIONS / "packaged"), "--jobs", "0"], "argument --jobs: expected a positive"),
    ([str(SUBMISSIONS / "packaged"), "--cases", "nope"], "cases ['nope'] are not graded cases"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        code = main([*argv, "--output-dir", str(tmp_path / "out")])
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_output_dir_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main([str(SUBMISSIONS / "packaged"), "--output-dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a folder" in err


def test_bad_impl_option_is_a_usage_error():
    with pytest.raises(pytest.UsageError, match="PACKAGE=MODULE"):
        parse_impl_options(["adversarial"])
    with pytest.raises(pytest.UsageError, match="'nonsense=mod'"):
        parse_impl_options(["nonsense=mod"])


def test_pytest_harness_grades_a_student_module_in_the_sandbox():
    # Correct FGSM, PGD without the epsilon-ball projection, no MIM; another package's module
    # that does not exist. Only tests/grading runs: the harness's own tests are not repeated.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("GRADING_IMPL", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/grading", "-q", "-p", "no:cacheprovider",
         "--impl", "adversarial=tests/grading/sample_student.py",
         "-k", "fgsm_untargeted or fgsm_targeted or pgd_untargeted or mim_untargeted"],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    report = run.stdout
    assert run.returncode == 1, report
    student = "tests/grading/sample_student.py"
    assert f"PASSED   {student}: adversarial.fgsm_attack [fgsm_untargeted]" in report
    assert f"PASSED   {student}: adversarial.fgsm_attack [fgsm_targeted]" in report
    assert (f"FAILED   {student}: adversarial.pgd_attack [pgd_untargeted]: max abs diff"
            in report)
    assert (f"MISSING  {student}: adversarial.mim_attack [mim_untargeted]: adversarial "
            "defines no function mim_attack") in report
    assert "pgd_seeded" not in report
    assert "2 passed, 1 failed, 1 missing; 2 of 4 points" in report


def test_the_wheel_carries_every_reference_file():
    # setup.cfg's package_data globs must match every file under data_stubs/references, the
    # fixed models' weights in references/models/ included (a non-recursive glob once lost them).
    import configparser
    import fnmatch

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    patterns = [p.strip() for p in config["options.package_data"]["data_stubs"].split(",")]
    folder = ROOT / "data_stubs" / "references"
    files = [p.relative_to(ROOT / "data_stubs").as_posix() for p in folder.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts]
    assert any(f.startswith("references/models/") for f in files)
    missing = [f for f in files if not any(fnmatch.fnmatchcase(f, p) and f.count("/") ==
                                           p.count("/") for p in patterns)]
    assert missing == []
