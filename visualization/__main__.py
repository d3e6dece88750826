"""``python -m visualization METHOD [options] --output-dir DIR`` (see :mod:`visualization.cli`)."""

import sys

from visualization.cli import main

if __name__ == "__main__":
    sys.exit(main())
