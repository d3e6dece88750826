"""``python -m data_stubs.grading SUBMISSION... --output-dir OUT``: grade a class.

Each submission (a folder with ``adversarial.py``, ``visualization.py``, ``assignment2.py`` or
packages of those names, or one ``.py`` file) runs in its own child process with a time limit per
case and a memory limit; the parent compares. Writes ``OUT/<submission>/results.json``
(Gradescope's format), ``OUT/gradebook.csv`` and ``OUT/grading_config.json``; exits 0 when
grading ran, whatever the scores, and 2 with one line on bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from data_stubs.files import write_json_atomic

PROG = "python -m data_stubs.grading"


@dataclass
class GradingConfig:
    """Settings of one grading run (saved as ``grading_config.json`` beside the results)."""

    submissions: list = field(default_factory=list)  # folders or .py files, one per student
    output_dir: str = "grades"  # results.json per submission, gradebook.csv
    timeout: float = 60.0  # seconds per case before it scores 0 (TIMEOUT)
    startup_timeout: float = 180.0  # seconds to start TensorFlow and import a submission
    memory_mb: int = 4096  # resident memory allowed to a submission's process, MiB
    jobs: int = 1  # submissions graded at once (each in its own process)
    cases: list = field(default_factory=list)  # only these cases (empty: every graded case)


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{PROG}: error: {message}\n")


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value
    return parse


def parse_args(argv) -> GradingConfig:
    parser = _OneLineParser(prog=PROG, description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = GradingConfig()
    parser.add_argument("submissions", nargs="+", metavar="SUBMISSION")
    parser.add_argument("--output-dir", required=True, metavar="OUT")
    parser.add_argument("--timeout", type=_positive(float), default=defaults.timeout,
                        help="seconds per case (default %(default)s)")
    parser.add_argument("--startup-timeout", type=_positive(float),
                        default=defaults.startup_timeout,
                        help="seconds to start a submission's process (default %(default)s)")
    parser.add_argument("--memory-mb", type=_positive(int), default=defaults.memory_mb,
                        help="memory limit per submission in MiB (default %(default)s)")
    parser.add_argument("--jobs", type=_positive(int), default=defaults.jobs,
                        help="submissions graded in parallel (default %(default)s)")
    parser.add_argument("--cases", nargs="+", default=[], metavar="CASE",
                        help="grade only these cases")
    return GradingConfig(**vars(parser.parse_args(argv)))


def _check_output_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise ValueError(f"--output-dir {str(path)!r} is a file, not a folder")


def _submissions(paths):
    from data_stubs.grading.sandbox import Submission

    submissions = [Submission(p) for p in paths]
    names = [s.name for s in submissions]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"several submissions are named {duplicates}: their results would "
                         "overwrite each other; give each its own folder name")
    return submissions


def run(config: GradingConfig) -> dict:
    """Grades every submission of ``config``; writes the outputs; returns the gradebook rows."""
    from data_stubs.grading.grader import grade_all, graded_cases, load_references
    from data_stubs.grading.report import results_json, write_gradebook, write_results
    from data_stubs.grading.sandbox import Limits

    out = Path(config.output_dir)
    _check_output_dir(out)
    submissions = _submissions(config.submissions)
    cases = graded_cases(config.cases)
    references = load_references(cases)
    threads = max(1, (os.cpu_count() or 1) // config.jobs)
    limits = Limits(config.timeout, config.startup_timeout, config.memory_mb, threads)
    write_json_atomic(out / "grading_config.json", asdict(config))

    def done(submission, results, seconds):
        write_results(out / submission.name, results_json(results, execution_time=seconds))
        score = sum(r.score for r in results)
        print(f"{submission.name}: {score:g} of {sum(r.max_score for r in results):g} points "
              f"({seconds:.1f} s)", flush=True)

    graded = grade_all(submissions, cases, references, limits, config.jobs, done)
    write_gradebook(out / "gradebook.csv", {name: r for name, (r, _) in graded.items()})
    return graded


def main(argv=None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    from data_stubs.grading.reference_files import ReferenceError

    try:
        run(config)
    except (ValueError, ReferenceError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
