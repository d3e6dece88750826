"""Small embedded data used by every default run and every test.

- :mod:`data_stubs.digits`: scikit-learn's 8x8 digits (shipped with scikit-learn), scaled to [0, 1].
- :mod:`data_stubs.spacenet`: a deterministic generator of a miniature SpaceNet 2 area.
- ``data_stubs/references``: reference outputs for graders (see :mod:`data_stubs.references`).
"""
