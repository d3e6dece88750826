"""Run folders that never lose work: fresh runs, ``--overwrite`` and ``--resume``.

A run folder belongs to one run. A fresh run into a folder that already holds one
(:func:`holds_run`) is refused unless the user asks to replace it, and then every output of the old
run is removed first (:func:`clear_run`), so checkpoints, predictions and metrics of two runs never
mix. A resumed run continues with the configuration saved in ``config.json``
(:func:`resume_config`): options given on the command line may change only what does not change
the model or the data (how long to train, how to report); anything else is refused with a message
naming the options. ``config.json`` keeps the configuration and one record per session
(:func:`config_record`), so the folder tells how it came to be.

Nothing here imports TensorFlow; the functions work on plain dicts and paths.
"""

from __future__ import annotations

import datetime
import json
import shutil
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

#: Files and folders a training run writes into its folder (the only names ``clear_run`` removes).
RUN_OUTPUTS = ("config.json", "split.json", "radiometry.json", "skipped_tiles.json",
               "checkpoints", "history.csv", "logs", "metrics.json", "predictions", "figures")
#: Any of these in a folder means it holds (part of) a run.
RUN_MARKERS = ("config.json", "split.json", "checkpoints", "history.csv", "metrics.json",
               "predictions")


class UsageError(Exception):
    """Bad input found after parsing (data, sizes, checkpoints, run folder): one line, exit 2."""


def holds_run(folder) -> bool:
    """True when ``folder`` contains any output of a training run (see ``RUN_MARKERS``)."""
    folder = Path(folder)
    return any((folder / name).exists() for name in RUN_MARKERS)


def clear_run(folder) -> list[str]:
    """Remove the outputs of a run from ``folder`` (only the names in ``RUN_OUTPUTS``).

    Other files in the folder are kept. Returns the names removed.
    """
    folder = Path(folder)
    removed = []
    for name in RUN_OUTPUTS:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(name)
    return removed


def read_saved_config(folder, names: Iterable[str]) -> dict:
    """The configuration saved in ``folder/config.json``, restricted to ``names``.

    Raises:
        UsageError: no checkpoint to resume, or an unreadable ``config.json``.
    """
    folder = Path(folder)
    path = folder / "config.json"
    last = folder / "checkpoints" / "last.keras"
    if not last.is_file() or not path.is_file():
        raise UsageError(f"--resume: no run to resume in {folder} (needs config.json and "
                         f"checkpoints/last.keras)")
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict):
            raise ValueError(f"expected a JSON object, got {type(saved).__name__}")
    except (OSError, ValueError) as exc:
        raise UsageError(f"--resume: unreadable {path}: {exc}") from None
    names = set(names)
    return {key: value for key, value in saved.items() if key in names}


def check_checkpoint(path) -> None:
    """A cheap check that ``path`` is a complete ``.keras`` archive (zip with a config).

    Raises:
        UsageError: missing, truncated or not a Keras archive.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist() or archive.testzip() is not None:
                raise zipfile.BadZipFile("no config.json or a corrupt member")
    except (OSError, zipfile.BadZipFile) as exc:
        raise UsageError(f"cannot load checkpoint {path}: {type(exc).__name__}: {exc}") from None


def resume_config(saved: Mapping, explicit: Mapping, *, changeable: Iterable[str],
                  option_names: Mapping[str, str] | None = None) -> tuple[dict, dict]:
    """Merge a saved configuration with the options given explicitly for a resumed run.

    Every value comes from ``saved`` unless it was given on the command line (``explicit``).
    Explicit values of names in ``changeable`` replace the saved ones; any other explicit value
    must equal the saved one.

    Args:
        saved: configuration of the run (``config.json``).
        explicit: ``{name: value}`` of the options given on the command line.
        changeable: names that may change on resume (e.g. epochs, reporting).
        option_names: ``{name: "--option"}`` for the error message (default ``--name``).

    Returns:
        ``(merged, changed)`` where ``changed`` maps each changed name to ``[old, new]``.

    Raises:
        UsageError: an explicit option would change the model or the data; the message names
            every such option with its saved and requested value.
    """
    changeable = set(changeable)
    option_names = dict(option_names or {})
    merged, changed, refused = dict(saved), {}, []
    for name, value in explicit.items():
        old = saved.get(name)
        if value == old:
            continue
        if name in changeable:
            merged[name] = value
            changed[name] = [old, value]
        else:
            option = option_names.get(name, "--" + name.replace("_", "-"))
            shown = "" if isinstance(value, bool) else " " + _show(value)
            refused.append(f"{option}{shown} (run has {name}={_show(old)})")
    if refused:
        raise UsageError("--resume cannot change the model or the data: " + "; ".join(refused)
                         + "; start a new run in another --output-dir (or --overwrite this one)")
    return merged, changed


def _show(value) -> str:
    return "None" if value is None else str(value)


def config_record(config: Mapping, sessions: list, *, mode: str, initial_epoch: int,
                  changed: Mapping | None = None) -> dict:
    """The content of ``config.json``: ``config`` plus the list of sessions that trained it.

    Each session is ``{"mode": "fresh"|"overwrite"|"resume", "started": ISO time (UTC),
    "initial_epoch": completed epochs at its start, "epochs": its target, "changed":
    {name: [old, new]}}``.
    """
    session = {"mode": mode,
               "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                   timespec="seconds"),
               "initial_epoch": int(initial_epoch), "epochs": config.get("epochs"),
               "changed": dict(changed or {})}
    return {**config, "sessions": [*sessions, session]}


def clear_evaluation(folder) -> None:
    """Remove ``predictions/`` and ``metrics.json`` before a new evaluation writes them, so the
    folder never holds predictions of two checkpoints (an interrupted evaluation leaves none)."""
    folder = Path(folder)
    if (folder / "predictions").is_dir():
        shutil.rmtree(folder / "predictions")
    (folder / "metrics.json").unlink(missing_ok=True)


def saved_sessions(folder) -> list:
    """The ``sessions`` list of ``folder/config.json`` ([] when there is none)."""
    path = Path(folder) / "config.json"
    try:
        sessions = json.loads(path.read_text()).get("sessions", [])
    except (OSError, ValueError, AttributeError):
        return []
    return sessions if isinstance(sessions, list) else []
