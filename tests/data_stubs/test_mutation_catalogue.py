"""Every typical mistake of the catalogue fails at least its case; independent correct
implementations pass. Run in this process (no child interpreter per mutant): the cases, the
stored inputs and the verdict are the grader's own."""

from __future__ import annotations

import pytest

from data_stubs.grading.grader import load_references
from data_stubs.grading.verdict import judge
from data_stubs.reference_models import KERAS_ONLY, ModelSource
from data_stubs.references import all_cases, package_function
from tests.data_stubs.mutants import CATALOGUE, CORRECT

CASES = {case.name: case for case in all_cases()}


@pytest.fixture(scope="module")
def references():
    return load_references(all_cases())


@pytest.fixture(scope="module")
def models():
    return ModelSource(KERAS_ONLY + ("small_unet",))


def _verdict(case_name, make, references, models):
    case, reference = CASES[case_name], references[case_name]
    function = make(package_function(case))
    try:
        output = case.run(function, reference.inputs, models, case.params)
    except Exception as exc:  # noqa: BLE001 -- a mutant that raises is caught as well
        return judge(case.name, reference.header, reference.expected, "error",
                     message=f"raised {type(exc).__name__}: {exc}")
    return judge(case.name, reference.header, reference.expected, "ok", output)


def test_catalogue_covers_attacks_visualisations_and_segmentation():
    assert len(CATALOGUE) >= 25
    assert len({m.name for m in CATALOGUE}) == len(CATALOGUE)
    packages = {CASES[m.case].package for m in CATALOGUE}
    assert packages == {"adversarial", "visualization", "assignment2"}


@pytest.fixture(scope="module")
def reference_verdicts(references, models):
    """The package's own verdict on each case a mutant is checked against (computed once)."""
    cache = {}

    def verdict(case_name):
        if case_name not in cache:
            cache[case_name] = _verdict(case_name, lambda reference: reference, references,
                                        models)
        return cache[case_name]
    return verdict


@pytest.mark.parametrize("mutant", CATALOGUE, ids=[m.name for m in CATALOGUE])
def test_mutant_is_caught(mutant, references, models, reference_verdicts):
    # The unmutated package passes the same case: the mutant, not a stale reference, fails it.
    untouched = reference_verdicts(mutant.case)
    assert untouched.passed, f"the package itself fails {mutant.case}: {untouched.message}"
    result = _verdict(mutant.case, mutant.make, references, models)
    # FAILED, not ERROR: the mistake runs and gives other numbers (a mutant that only raises,
    # say on an unknown keyword, would prove nothing about the case).
    assert result.verdict == "FAILED", (f"{mutant.name} ({mutant.description}): "
                                        f"{result.message}")


@pytest.mark.parametrize("name, case_name, make", CORRECT,
                         ids=[f"{n}-{c}" for n, c, _ in CORRECT])
def test_independent_correct_implementation_passes(name, case_name, make, references, models):
    result = _verdict(case_name, make, references, models)
    assert result.passed, result.message
