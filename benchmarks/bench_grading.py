"""Grading a class with the full case set: ``python benchmarks/bench_grading.py``

Builds ``--submissions`` submissions (default 10), each a copy of the package's own
``adversarial/``, ``visualization/`` and ``assignment2/`` folders (and ``data_stubs/files.py``, which
assignment2 imports) -- a student who got everything right: every portable case runs to the end,
is compared, and must pass -- and grades them with
``python -m data_stubs.grading SUBMISSION... --output-dir OUT --jobs 2`` (the command line, in a
child process, as a TA would run it). Prints the wall time, the time per submission (wall time
x jobs / submissions: what one submission costs on one of the ``--jobs`` lanes) and the scores.
Goal: at most 20 s per submission on 2 cores. Quote ``uptime``: the number is only meaningful on
an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("adversarial", "visualization", "assignment2")


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    return parser.parse_args(argv)


def _make_submissions(folder: Path, count: int) -> list[Path]:
    paths = []
    for index in range(count):
        target = folder / f"student{index:02d}"
        for package in PACKAGES:
            shutil.copytree(ROOT / package, target / package,
                            ignore=shutil.ignore_patterns("__pycache__"))
        # assignment2 writes files with data_stubs.files (the reference data_stubs is closed to
        # submissions): the student ships that helper too.
        (target / "data_stubs").mkdir()
        (target / "data_stubs" / "__init__.py").write_text("")
        shutil.copy2(ROOT / "data_stubs" / "files.py", target / "data_stubs" / "files.py")
        paths.append(target)
    return paths


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        submissions = _make_submissions(Path(tmp) / "class", args.submissions)
        out = Path(tmp) / "grades"
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        started = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "data_stubs.grading", *map(str, submissions), "--output-dir",
             str(out), "--jobs", str(args.jobs), "--timeout", str(args.timeout)],
            cwd=tmp, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if run.returncode != 0:
            print(f"grading failed (exit {run.returncode}): {run.stderr.strip()}")
            return 1
        with open(out / "gradebook.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    totals = sorted({f"{r['total']} of {r['max_score']}" for r in rows})
    per_submission = wall * args.jobs / args.submissions
    print(f"{args.submissions} submissions, --jobs {args.jobs}: {wall:.1f} s wall, "
          f"{per_submission:.1f} s per submission (goal <= 20 s); scores {', '.join(totals)}")
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average), {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
