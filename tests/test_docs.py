"""Every code snippet of README.md and docs/*.md runs.

Python blocks of one file run in order in one namespace, as a reader pasting them one after the
other into a notebook would. Two offline substitutions are made, and only these: pretrained
weights (``weights="imagenet"``) become ``weights=None``, and ``!pip``/``%pip`` lines are dropped.
Every ``python -m MODULE ...`` and ``python benchmarks/SCRIPT.py ...`` line of a ``bash`` block is
parsed by the program's own argument parser (its options must exist and accept the values shown);
the program itself is not run, since those lines name the user's data folders and take minutes.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import re
import shlex
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _blocks(path: Path, language: str) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    return [(text[:m.start()].count("\n") + 1, m.group(2))
            for m in _BLOCK.finditer(text) if m.group(1) == language]


def _offline(source: str) -> str:
    source = re.sub(r"""weights=["']imagenet["']""", "weights=None", source)
    return "\n".join(line for line in source.splitlines()
                     if not line.lstrip().startswith(("!pip", "%pip")))


def _python_documents():
    return [p for p in DOCUMENTS if _blocks(p, "python")]


@pytest.mark.parametrize("path", _python_documents(), ids=lambda p: p.name)
def test_python_snippets_run(path, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)            # snippets that save files write into a scratch folder
    namespace: dict = {"__name__": "__snippets__"}
    for line, source in _blocks(path, "python"):
        try:
            exec(compile(_offline(source), f"{path.name}:{line}", "exec"), namespace)
        except Exception as error:  # noqa: BLE001 - name the snippet, keep the cause
            raise AssertionError(f"{path.name}, snippet at line {line} fails: "
                                 f"{type(error).__name__}: {error}") from error
    import matplotlib.pyplot as plt
    plt.close("all")


class _Parsed(Exception):
    """Raised instead of running a program once its arguments parsed."""


def _command_lines():
    for path in DOCUMENTS:
        for line, source in _blocks(path, "bash"):
            for offset, text in enumerate(source.splitlines()):
                command = text.split(" #")[0].strip()
                for part in command.split("&&"):
                    part = part.strip()
                    if part.startswith("python ") and "[" not in part:
                        yield pytest.param(part, id=f"{path.name}:{line + 1 + offset}")


def _program(words: list[str]):
    if words[1] == "-m":
        module = importlib.import_module(words[2])
        if not hasattr(module, "main"):
            module = importlib.import_module(words[2] + ".__main__")
        return module.main, words[3:]
    script = ROOT / words[1]
    assert script.is_file(), f"{words[1]} does not exist"
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main, words[2:]


@pytest.mark.parametrize("command", list(_command_lines()))
def test_command_lines_parse(command, monkeypatch):
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    main, argv = _program(shlex.split(command))
    takes_argv = bool(inspect.signature(main).parameters)
    with pytest.raises(_Parsed):
        try:
            if not takes_argv:           # a program without options: it runs (and must be fast)
                main()
                raise _Parsed("ran")
            status = main(argv)
            if "--help" in argv and status == 0:   # a CLI that returns from --help
                raise _Parsed("help")
        except SystemExit as stop:
            if "--help" in argv and stop.code == 0:
                raise _Parsed("help") from None
            raise AssertionError(f"{command!r} does not parse (exit {stop.code})") from None
