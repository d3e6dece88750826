"""The grader against hostile and unusual submissions, end to end through the command line.

One run grades three submissions two at a time: ``hostile/`` (an honest ``gram_matrix`` beside
functions that exit the process, raise SystemExit, loop forever, exhaust memory, read the stored
answers, patch the comparison, vandalise the model, and reach for the reference package through
``sys.path``, its source file and a fresh interpreter), ``reexport.py`` (a one-line re-export of
the reference package) and ``packaged/`` (a valid multi-file package using postponed annotations
with a dataclass).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"
CASES = ["fgsm_untargeted", "fgsm_targeted", "pgd_untargeted", "mim_untargeted", "lbfgs",
         "gram_matrix", "saliency", "guided_backprop", "deconvnet", "grad_cam", "occlusion",
         "style_loss"]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    out = tmp_path_factory.mktemp("grades")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", HOSTILE_REPO_ROOT=str(ROOT))
    run = subprocess.run(
        [sys.executable, "-m", "data_stubs.grading", str(SUBMISSIONS / "hostile"),
         str(SUBMISSIONS / "reexport.py"), str(SUBMISSIONS / "packaged"), "--output-dir",
         str(out), "--timeout", "10", "--memory-mb", "1200", "--jobs", "2", "--cases", *CASES],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    return run, out


def _verdicts(out: Path, name: str) -> dict:
    results = json.loads((out / name / "results.json").read_text())
    return {t["name"].split("[")[1].rstrip("]"): t for t in results["tests"]}


def test_grading_ran_and_exits_zero_whatever_the_scores(graded):
    run, out = graded
    assert run.returncode == 0, run.stderr
    assert {"hostile", "reexport", "packaged"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "grading_config.json").read_text())["timeout"] == 10


def test_every_escape_scores_zero_with_its_reason_and_the_honest_case_still_passes(graded):
    _, out = graded
    tests = _verdicts(out, "hostile")
    first = {case: t["output"].split("\n")[0] for case, t in tests.items()}
    assert first["gram_matrix"].startswith("PASSED"), first["gram_matrix"]
    assert first["saliency"].startswith("CRASHED: the child process exited with status 0")
    assert first["guided_backprop"].startswith("ERROR: raised SystemExit: giving up")
    assert first["deconvnet"].startswith("TIMEOUT: no result within the time limit of 10 s")
    assert first["occlusion"].startswith("CRASHED: the child used") and "memory limit" in first[
        "occlusion"]
    assert "may not read" in first["grad_cam"] and "grad_cam.npz" in first["grad_cam"]
    assert first["style_loss"].startswith("ERROR: raised ModuleNotFoundError: No module named "
                                          "'data_stubs'")
    assert first["pgd_untargeted"].startswith("ERROR: raised ModuleNotFoundError")
    assert "may not read" in first["mim_untargeted"] and "mim.py" in first["mim_untargeted"]
    assert "may not start processes" in first["lbfgs"]
    # fgsm_attack zeroes its model's weights after each (correct) call: each case gets its own.
    assert first["fgsm_untargeted"].startswith("PASSED")
    assert first["fgsm_targeted"].startswith("PASSED")
    assert {c for c, t in tests.items() if t["score"] > 0} == {"gram_matrix", "fgsm_untargeted",
                                                                "fgsm_targeted"}


def test_a_reexport_of_the_reference_package_scores_nothing(graded):
    _, out = graded
    tests = _verdicts(out, "reexport")
    assert all(t["score"] == 0 for t in tests.values())
    assert "No module named 'adversarial' in the submission" in tests["fgsm_untargeted"]["output"]


def test_a_multi_file_package_with_a_dataclass_is_graded(graded):
    _, out = graded
    tests = _verdicts(out, "packaged")
    assert tests["gram_matrix"]["status"] == "passed", tests["gram_matrix"]["output"]
    assert tests["saliency"]["output"].startswith("MISSING: visualization defines no function")
    assert tests["fgsm_untargeted"]["output"].startswith("MISSING: the submission has no "
                                                         "adversarial.py")


def test_results_follow_gradescopes_format_and_the_gradebook_sums_them(graded):
    _, out = graded
    results = json.loads((out / "hostile" / "results.json").read_text())
    assert results["score"] == 3 and results["extra_data"]["max_score"] == len(CASES)
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output"}
        assert test["status"] in ("passed", "failed")
        assert "call: " in test["output"] and "limits: " in test["output"]
    with open(out / "gradebook.csv", newline="") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"hostile", "reexport", "packaged"}
    assert rows["hostile"]["adversarial.fgsm_attack"] == "2"
    assert rows["hostile"]["visualization.gram_matrix"] == "1"
    assert rows["hostile"]["total"] == "3" and rows["packaged"]["total"] == "1"
    assert rows["reexport"]["total"] == "0" and rows["reexport"]["max_score"] == str(len(CASES))
