"""The child process that runs one submission's functions (started by :mod:`.sandbox`).

``main([REQUEST_FD, RESPONSE_FD, SUBMISSION_DIR, MODULES_JSON])`` in ``python -I``, the grader's
folder first on ``sys.path`` (it is taken off again before the submission is imported).

It reads the fixed models' weights, closes the reference packages (:mod:`.guard`), imports the
student's modules ONCE, then answers requests, one JSON line each on ``REQUEST_FD``:
``{"case": name, "inputs": path, "output": path}`` -> it calls the case's function on the inputs
and a fresh copy of the model, saves the output to ``output`` and replies ``{"status": "ok"}``,
``{"status": "missing", ...}`` or ``{"status": "error", "error": ...}`` on ``RESPONSE_FD``.
Anything the student raises, ``SystemExit`` and ``KeyboardInterrupt`` included, is an answer;
what it does to the process (``os._exit``, a crash, an endless loop) the parent sees and scores.
The child never sees an expected output.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from pathlib import Path


#: The submission's folder (set once by :func:`serve`): where a traceback's own frames are.
_SUBMISSION_DIR = [os.sep * 2]


def _configure_threads() -> None:
    import tensorflow as tf

    threads = int(os.environ.get("GRADER_THREADS", "0"))
    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _describe(exc: BaseException) -> str:
    """``Type: message`` plus the submission's innermost frame (file and line)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames)
                  if f.filename.startswith(_SUBMISSION_DIR[0])), "")
    text = f"{type(exc).__name__}: {exc}"
    return f"{text} (at {where})" if where else text


def _import_modules(modules: dict) -> dict:
    """``{package: module name or None}`` -> ``{package: module or error string}``."""
    loaded, imported = {}, {}
    for package, name in modules.items():
        if name is None:
            loaded[package] = f"the submission has no {package}.py or {package}/ package"
            continue
        if name not in imported:
            try:
                imported[name] = importlib.import_module(name)
            except BaseException as exc:  # noqa: BLE001 -- SystemExit too: a graded outcome
                imported[name] = f"{name} does not import: {_describe(exc)}"
        loaded[package] = imported[name]
    return loaded


def _to_array(output):
    import numpy as np

    array = np.asarray(output)
    if array.dtype == object:
        raise TypeError(f"the function returned {type(output).__name__}, not an array of numbers")
    return array


def _from_submodule(package, case):
    """A package submission may keep the function where the reference package does
    (``assignment2.model.build_unet``): ``package.<submodule>.function``, or None."""
    name = package.__name__ + case.module[len(case.package):]
    try:
        return getattr(importlib.import_module(name), case.function, None)
    except ModuleNotFoundError as exc:
        if exc.name == name:  # no such submodule: the function is missing
            return None
        return f"{name} does not import: {_describe(exc)}"
    except BaseException as exc:  # noqa: BLE001 -- SystemExit too: a graded outcome
        return f"{name} does not import: {_describe(exc)}"


def _answer(request: dict, cases: dict, loaded: dict, models) -> dict:
    import numpy as np

    case = cases[request["case"]]
    module = loaded[case.package]
    if isinstance(module, str):
        return {"status": "error", "error": module}
    function = getattr(module, case.function, None)
    if not callable(function) and case.module and hasattr(module, "__path__"):
        function = _from_submodule(module, case)
        if isinstance(function, str):
            return {"status": "error", "error": function}
    if not callable(function):
        return {"status": "missing",
                "error": f"{module.__name__} defines no function {case.function}"}
    with np.load(request["inputs"], allow_pickle=False) as data:
        inputs = {k: data[k] for k in data.files}
    try:
        output = _to_array(case.run(function, inputs, models, case.params))
    except BaseException as exc:  # noqa: BLE001 -- SystemExit, KeyboardInterrupt: graded too
        return {"status": "error", "error": f"raised {_describe(exc)}"}
    np.save(request["output"], output, allow_pickle=False)
    return {"status": "ok"}


def serve(request_fd: int, response_fd: int, submission_dir: Path, modules: dict) -> None:
    """Sets up, imports the submission, answers requests until the parent closes the pipe."""
    import keras  # noqa: F401 -- imported before the guard: the submission may use it

    from data_stubs.grading import guard
    from data_stubs.reference_models import KERAS_ONLY, ModelSource
    from data_stubs.references import all_cases

    _configure_threads()
    _SUBMISSION_DIR[0] = str(submission_dir.resolve()) + os.sep
    cases = {case.name: case for case in all_cases()}
    models = ModelSource(KERAS_ONLY + ("small_unet",))
    responses = os.fdopen(response_fd, "w", buffering=1)
    requests = os.fdopen(request_fd, "r")
    grader_root = str(Path(guard.__file__).resolve().parents[2])
    if sys.path and sys.path[0] == grader_root:
        sys.path.pop(0)
    guard.install(submission_dir)
    sys.path.insert(0, str(submission_dir))
    loaded = _import_modules(modules)
    status = {p: (m if isinstance(m, str) else "ok") for p, m in loaded.items()}
    responses.write(json.dumps({"status": "ready", "packages": status}) + "\n")
    for line in requests:
        keras.utils.set_random_seed(0)
        responses.write(json.dumps(_answer(json.loads(line), cases, loaded, models)) + "\n")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    request_fd, response_fd, submission_dir, modules = argv
    serve(int(request_fd), int(response_fd), Path(submission_dir), json.loads(modules))
    return 0


if __name__ == "__main__":
    sys.exit(main())
