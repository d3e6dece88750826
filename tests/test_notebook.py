"""The Colab quick-start notebook runs from top to bottom, offline.

Offline means the install cell (tagged ``install``) is left out, the package under test being
installed already, and the ``parameters`` cell is replaced: random weights instead of ImageNet
weights and 64 px inputs, so nothing is downloaded and the run stays short.
"""
from __future__ import annotations

import re

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "colab_quickstart.ipynb"
OFFLINE_PARAMETERS = 'WEIGHTS = None\nSIZE = 64'


def _tagged(cell, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def test_notebook_runs_offline(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert any(_tagged(c, "install") for c in notebook.cells), "the install cell is missing"
    assert sum(_tagged(c, "parameters") for c in notebook.cells) == 1
    notebook.cells = [c for c in notebook.cells if not _tagged(c, "install")]
    for cell in notebook.cells:
        if _tagged(cell, "parameters"):
            cell.source = OFFLINE_PARAMETERS
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert not errors
    printed = "".join(output.get("text", "") for cell in notebook.cells
                      for output in cell.get("outputs", []) if output.get("name") == "stdout")
    assert "predicted class" in printed, printed
    assert re.search(r"\((\d+), (\d+), 3\) \(\1, \2, 3\)", printed), printed  # tile and TTA shapes
