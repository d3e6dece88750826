"""Running a submission's functions in a child process, with a time and a memory limit per case.

The parent (this module) owns the answers: it writes each case's stored inputs to a scratch
folder, asks the child (:mod:`.child`, a fresh interpreter with the submission's folder on its
path and the reference packages closed, see :mod:`.guard`) to run the function, reads the output
back and compares it itself. A case that runs past ``timeout`` seconds, grows the child past
``memory_mb`` or kills the child (``os._exit``, a segfault) scores 0 with that reason; the child
is restarted (the submission imported afresh) and the remaining cases still run.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PACKAGES = ("adversarial", "visualization", "assignment2")
#: Where ``data_stubs`` lives (site-packages or a checkout): the child imports the grader there.
_GRADER_ROOT = str(Path(__file__).resolve().parents[2])
_CHILD_START = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
                "from data_stubs.grading.child import main; sys.exit(main())")
#: TensorFlow's start-up chatter, left out of the output shown with a crash.
_TF_NOISE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages|To enable the following)")


@dataclass(frozen=True)
class Limits:
    """Per-case limits of the child process."""

    timeout: float = 60.0  # seconds of wall time per case
    startup_timeout: float = 180.0  # seconds to start TensorFlow and import the submission
    memory_mb: int = 4096  # resident memory of the child
    threads: int = 0  # TensorFlow threads in the child (0: TensorFlow's default)


@dataclass(frozen=True)
class Outcome:
    """What the child did with one case: ``status`` ok | missing | error | timeout | crashed."""

    status: str
    output: np.ndarray | None = None
    message: str = ""


class Submission:
    """A student's folder (or one ``.py`` file) and which of its modules serves which package.

    A folder holds ``adversarial.py``, ``visualization.py``, ``assignment2.py`` or packages of
    those names (any other files beside them are importable too). One ``.py`` file named after a
    package serves that package; one file of another name is graded for every function it
    defines.

    Raises:
        ValueError: the path does not exist or holds none of the expected modules.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise ValueError(f"submission {str(path)!r} does not exist")
        self.name = self.path.stem if self.path.is_file() else self.path.resolve().name
        self.modules = self._modules()
        if not any(self.modules.values()):
            raise ValueError(f"submission {str(path)!r} holds none of the expected modules "
                             f"({', '.join(p + '.py' for p in PACKAGES)} or packages of those names)")

    def _modules(self) -> dict:
        if self.path.is_file():
            if self.path.suffix != ".py":
                raise ValueError(f"submission {str(self.path)!r} is a file but not a .py module")
            if self.path.stem in PACKAGES:
                return {p: (p if p == self.path.stem else None) for p in PACKAGES}
            return {p: self.path.stem for p in PACKAGES}
        return {p: (p if (self.path / f"{p}.py").is_file()
                    or (self.path / p / "__init__.py").is_file() else None) for p in PACKAGES}

    def copy_to(self, folder: Path) -> Path:
        """Copies the submission into ``folder`` (the child imports the copy, never the original)."""
        target = folder / "submission"
        if self.path.is_file():
            target.mkdir(parents=True)
            shutil.copy2(self.path, target / self.path.name)
        else:
            shutil.copytree(self.path, target, ignore=shutil.ignore_patterns("__pycache__"))
        return target


def _rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (0 where /proc is not available)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class ChildSession:
    """One child process: started, asked case by case, killed on a limit or when done."""

    def __init__(self, submission: Submission, folder: Path, limits: Limits):
        self.limits = limits
        self.log_path = folder / f"child-{time.monotonic_ns()}.log"
        request_r, self._request_w = os.pipe()
        self._response_r, response_w = os.pipe()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(TF_CPP_MIN_LOG_LEVEL="3", GRADER_THREADS=str(limits.threads),
                   MPLBACKEND="Agg", CUDA_VISIBLE_DEVICES=os.environ.get("CUDA_VISIBLE_DEVICES", ""))
        # -I: no PYTHONPATH, user site or current folder; the grader's own location is put on
        # the path explicitly (an installed package or a checkout alike), then guarded.
        command = [sys.executable, "-I", "-c", _CHILD_START, _GRADER_ROOT, str(request_r),
                   str(response_w), str(folder / "submission"), json.dumps(submission.modules)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=(request_r, response_w), cwd=folder, env=env, start_new_session=True)
        os.close(request_r)
        os.close(response_w)
        self._buffer = b""

    def _reason_of_death(self) -> str:
        code = self.process.wait()
        if code < 0:
            return f"the child process was killed by signal {signal.Signals(-code).name}"
        return f"the child process exited with status {code} (os._exit, sys.exit in a thread, a crash)"

    def read(self, timeout: float) -> tuple[str, dict | str]:
        """Next JSON line: ``("ok", message)`` or ``("timeout"|"crashed", reason)``."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                return "timeout", f"no result within the time limit of {timeout:g} s"
            rss = _rss_mb(self.process.pid)
            if rss > self.limits.memory_mb:
                self.kill()
                return "crashed", (f"the child used {rss:.0f} MiB, over the memory limit of "
                                   f"{self.limits.memory_mb} MiB")
            ready, _, _ = select.select([self._response_r], [], [], min(left, 0.1))
            if ready:
                chunk = os.read(self._response_r, 65536)
                if not chunk:
                    return "crashed", self._reason_of_death() + self.log_tail()
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return "ok", json.loads(line)

    def ask(self, request: dict) -> None:
        """Sends one request (a closed pipe means the child is gone: the next read says why)."""
        try:
            os.write(self._request_w, (json.dumps(request) + "\n").encode())
        except OSError:
            pass

    def log_tail(self, lines: int = 8) -> str:
        """The child's last output lines (the submission's prints, a fatal error), if any."""
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        text = [line for line in text if not _TF_NOISE.match(line)]
        return ("; last output: " + " | ".join(text[-lines:])) if text else ""

    def kill(self) -> None:
        """Kills the child and anything it started (its own process group)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()

    def close(self) -> None:
        """Ends the session: closes the pipes and stops the child (nothing left to ask)."""
        for fd in (self._request_w, self._response_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.kill()


def run_submission(submission: Submission, cases, inputs: dict, limits: Limits) -> dict:
    """Runs every case of ``cases`` on ``submission``; returns ``{case name: Outcome}``.

    Args:
        submission: the student's code.
        cases: :class:`~data_stubs.references.Case` objects, in order.
        inputs: ``{case name: {input name: array}}``, the stored inputs (never the outputs).
        limits: time and memory limits.
    """
    with tempfile.TemporaryDirectory(prefix="grading-") as tmp:
        folder = Path(tmp)
        submission.copy_to(folder)
        (folder / "io").mkdir()
        outcomes: dict = {}
        pending = list(cases)
        while pending:
            pending = _session(submission, folder, pending, inputs, limits, outcomes)
        return outcomes


def _session(submission, folder, pending, inputs, limits, outcomes) -> list:
    """One child: runs cases until done or the child dies; returns the cases still to run."""
    session = ChildSession(submission, folder, limits)
    try:
        kind, ready = session.read(limits.startup_timeout)
        if kind != "ok":
            reason = f"the submission did not start: {ready}"
            outcomes.update({case.name: Outcome(kind, message=reason) for case in pending})
            return []
        for index, case in enumerate(pending):
            package_status = ready["packages"][case.package]
            if package_status != "ok":
                status = "missing" if "has no" in package_status else "error"
                outcomes[case.name] = Outcome(status, message=package_status)
                continue
            outcomes[case.name] = _run_case(session, folder, case, inputs[case.name], limits)
            if outcomes[case.name].status in ("timeout", "crashed"):
                return pending[index + 1:]
        return []
    finally:
        session.close()


def _run_case(session: ChildSession, folder: Path, case, case_inputs: dict, limits) -> Outcome:
    inputs_path = folder / "io" / f"{case.name}.inputs.npz"
    output_path = folder / "io" / f"{case.name}.output.npy"
    np.savez(inputs_path, **case_inputs)
    session.ask({"case": case.name, "inputs": str(inputs_path), "output": str(output_path)})
    started = time.monotonic()
    kind, answer = session.read(limits.timeout)
    elapsed = time.monotonic() - started
    if kind != "ok":
        return Outcome(kind, message=answer)
    if answer["status"] != "ok":
        return Outcome(answer["status"], message=answer.get("error", ""))
    try:
        output = np.load(output_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return Outcome("error", message=f"the output could not be read back: {exc}")
    finally:
        output_path.unlink(missing_ok=True)
    return Outcome("ok", output, message=f"ran in {elapsed:.2f} s")
