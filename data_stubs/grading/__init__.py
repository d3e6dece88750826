"""Grading implementations against stored reference outputs, safely and at class scale.

- :mod:`~data_stubs.grading.compare`: the element-wise limits and the verdict's message.
- :mod:`~data_stubs.grading.reference_files`: the reference file format (inputs, output, header).
- :mod:`~data_stubs.grading.verdict`: one case's score from an output and its reference.
- :mod:`~data_stubs.grading.sandbox`: a submission's code in a child process with time and memory
  limits, the reference packages and answers out of its reach.
- :mod:`~data_stubs.grading.report`: Gradescope ``results.json`` and the class gradebook CSV.
- ``python -m data_stubs.grading SUBMISSION... --output-dir OUT``: the command line.
"""

from data_stubs.grading.compare import Comparison, Tolerance, compare
from data_stubs.grading.reference_files import (
    FORMAT_VERSION,
    REFERENCE_DIR,
    ReferenceError,
    inputs_of,
    load_reference,
    save_reference,
    stored_tolerance,
)

__all__ = ["FORMAT_VERSION", "REFERENCE_DIR", "Comparison", "ReferenceError", "Tolerance",
           "compare", "inputs_of", "load_reference", "save_reference", "stored_tolerance"]
