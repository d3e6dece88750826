"""What keeps a submission away from the answers, inside the child process that runs it.

Installed once the child has read what it needs (the fixed models' weights) and before the
student's code is imported:

- an import blocker first on ``sys.meta_path``: the reference packages (``adversarial``,
  ``visualization``, ``assignment2``, ``data_stubs``, ``tests``) import only from the submission's
  own folder; anything else of those names (the installed package, an editable install's path
  hook) raises ``ModuleNotFoundError``; the already imported reference modules are dropped from
  ``sys.modules``;
- an audit hook (PEP 578: it cannot be removed) refusing to open any file under the reference
  packages' folders -- so neither the stored ``.npz`` answers nor the reference sources can be
  read -- and refusing to start processes (a fresh interpreter would import the reference package
  unguarded).

The expected outputs are never handed to the child at all: the parent compares. These guards
stop the shortcuts a student can take by accident or in a hurry (re-exporting the package,
``np.load`` of a reference file); they are not a security boundary against an attacker who
controls the machine (run the grader in a container for that, as Gradescope does).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

GUARDED = ("adversarial", "visualization", "assignment2", "data_stubs", "tests")
_PROCESS_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                   "os.fork", "os.forkpty", "pty.spawn")


class ReferenceImportBlocker:
    """Meta-path finder: guarded names resolve inside ``submission_dir`` only."""

    def __init__(self, submission_dir: Path):
        self.submission_dir = str(submission_dir)

    def find_spec(self, fullname, path=None, target=None):
        root = fullname.partition(".")[0]
        if root not in GUARDED:
            return None
        if "." not in fullname:
            spec = importlib.machinery.PathFinder.find_spec(fullname, [self.submission_dir])
        else:
            inside = [p for p in (path or []) if _is_within(p, self.submission_dir)]
            spec = importlib.machinery.PathFinder.find_spec(fullname, inside) if inside else None
        if spec is None:
            raise ModuleNotFoundError(
                f"No module named {fullname!r} in the submission (the reference package is not "
                f"available to graded code)", name=fullname)
        return spec


def _is_within(path, folder) -> bool:
    try:
        return os.path.commonpath([os.path.realpath(path), os.path.realpath(folder)]) == \
            os.path.realpath(folder)
    except ValueError:
        return False


def reference_folders() -> list[str]:
    """The folders of the installed reference packages (found without importing them)."""
    folders = []
    for name in GUARDED:
        module = sys.modules.get(name)
        spec = module.__spec__ if module is not None else importlib.util.find_spec(name)
        locations = list(spec.submodule_search_locations or []) if spec else []
        folders += [os.path.realpath(p) for p in locations if os.path.isdir(p)]
    return folders


def _make_audit_hook(blocked: list[str], allowed: str):
    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            real = os.path.realpath(path)
            if not real.startswith(allowed) and any(real.startswith(b) for b in blocked):
                raise PermissionError(f"graded code may not read {path}: the reference package "
                                      "and its stored answers are not available to submissions")
        elif event in _PROCESS_EVENTS:
            raise PermissionError(f"graded code may not start processes ({event})")
    return hook


def install(submission_dir: Path) -> None:
    """Closes the reference packages and their files to everything imported from now on."""
    submission_dir = Path(submission_dir).resolve()
    blocked = [folder + os.sep for folder in reference_folders()]
    for name in list(sys.modules):
        if name.partition(".")[0] in GUARDED:
            del sys.modules[name]
    sys.meta_path.insert(0, ReferenceImportBlocker(submission_dir))
    sys.path_importer_cache.clear()
    sys.addaudithook(_make_audit_hook(blocked, str(submission_dir) + os.sep))
