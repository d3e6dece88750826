"""Does the context module help, and does augmentation? ``python benchmarks/ablation_context.py``

Trains ``python -m assignment2.train`` (its defaults otherwise: embedded stub area, 20 epochs,
TTA validation) in the four variants

    default        context module, augmented crops
    --no-context   no context module, augmented crops
    --no-augment   context module, whole tiles
    both off       --no-context --no-augment

for each of ``--seeds`` (default 0 1 2; the seed fixes the split, the weights and the stream),
one fresh process per run into ``<--out>/<variant>/seed<k>``, and prints per variant the mean
and the sample standard deviation over the seeds of the metrics in each run's
``metrics.json`` (``no_tta`` and ``tta``): mean IoU, IoU building and building F1. The table is
also written to ``<--out>/ablation.json``. A run folder that already holds ``metrics.json`` is
reused (so an interrupted ablation continues where it stopped; ``--fresh`` retrains).

Each run takes as long as the default training run (minutes on 2 cores; the whole-tile
variants are shorter); ``--dry-run`` prints the commands only. Extra options after ``--`` go to
every run (e.g. ``-- --epochs 5`` for a quick look).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from data_stubs.files import write_json_atomic

VARIANTS = {
    "default": [],
    "no_context": ["--no-context"],
    "no_augment": ["--no-augment"],
    "no_context_no_augment": ["--no-context", "--no-augment"],
}
KEYS = ("mean_iou", "iou_building", "building_f1")


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/ablation_context"))
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--fresh", action="store_true", help="retrain runs that are done")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    parser.add_argument("extra", nargs=argparse.REMAINDER,
                        help="options after -- for every training run")
    args = parser.parse_args(argv)
    args.extra = [a for a in args.extra if a != "--"]
    return args


def _command(folder: Path, variant: str, seed: int, extra, fresh: bool) -> list[str]:
    return [sys.executable, "-m", "assignment2.train", "--output-dir", str(folder), "--seed",
            str(seed), "--verbose", "0", *VARIANTS[variant], *extra,
            *(["--overwrite"] if fresh or (folder / "config.json").exists() else [])]


def _summary(values: list[float]) -> dict:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": spread, "values": values}


def main(argv=None) -> int:
    args = _parse(argv)
    results = {}
    for variant in args.variants:
        runs = []
        for seed in args.seeds:
            folder = args.out / variant / f"seed{seed}"
            command = _command(folder, variant, seed, args.extra, args.fresh)
            done = (folder / "metrics.json").is_file() and not args.fresh
            if args.dry_run:
                print(("# done: " if done else "") + " ".join(command))
                continue
            if not done:
                start = time.perf_counter()
                if subprocess.run(command, check=False).returncode != 0:
                    sys.exit(f"ablation_context: failed: {' '.join(command)}")
                print(f"{variant} seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
            runs.append(json.loads((folder / "metrics.json").read_text()))
        if runs:
            results[variant] = {
                mode: {key: _summary([r[mode][key] for r in runs]) for key in KEYS}
                for mode in runs[0]}
    if args.dry_run:
        return 0
    print(f"{'variant':<24}{'mode':<8}" + "".join(f"{k:>22}" for k in KEYS))
    for variant, modes in results.items():
        for mode, stats in modes.items():
            cells = "".join(f"{s['mean']:>14.3f} +- {s['std']:.3f}" for s in stats.values())
            print(f"{variant:<24}{mode:<8}{cells}")
    write_json_atomic(args.out / "ablation.json",
                      {"seeds": args.seeds, "extra": args.extra, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
