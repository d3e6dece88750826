"""Atomic file writes, shared by every package: nothing written is ever half a file.

Every output (checkpoints, predictions, figures, JSON, reference files, the stub area) is written
to a temporary file in the target's own folder (same file system, so the rename is atomic) and
then renamed onto the target with ``os.replace``: a reader sees the old file or the complete new
one, and an interrupted run leaves no partial file and no lost checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _readable(tmp: str) -> None:
    # mkstemp creates 0600 files; outputs are shared like any file the user creates.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def write_atomic(path, write: Callable[[str], object]) -> Path:
    """Calls ``write(tmp)`` on a temporary file beside ``path``, then renames it onto ``path``.

    The temporary name ends with ``path``'s whole name (``.tmp-k3j9w2-best.keras``), so writers
    that check extensions (``model.save`` wants ``.keras``, ``save_weights`` ``.weights.h5``,
    ``savefig`` infers the format) behave as for ``path`` itself.

    Args:
        path: the file to create or replace; its folder is created if missing.
        write: writes the whole content to the path it is given.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{path.name}", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        _readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically."""
    return write_atomic(path, lambda tmp: Path(tmp).write_bytes(data))


def write_json_atomic(path, payload, *, indent: int = 2) -> Path:
    """Writes ``payload`` as indented JSON (with a final newline) to ``path`` atomically."""
    return write_bytes_atomic(path, (json.dumps(payload, indent=indent) + "\n").encode())
