"""A multi-file submission: a package with a submodule and a helper module beside it."""
from .style import gram_matrix  # noqa: F401
