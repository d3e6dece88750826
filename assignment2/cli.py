"""What the command lines of ``assignment2`` share: one-line errors with exit status 2."""

from __future__ import annotations

import argparse
import sys


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (no usage block) and exits with 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def fail(prog: str, error: BaseException) -> int:
    """Print ``error`` as one line (whitespace folded) under ``prog``; return exit status 2."""
    print(f"{prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
    return 2
