"""Temporal heads: (B, M, D) frame features -> the classifier's input, plus named feature levels for ADA.

Every module here is imported with the package, so a new file registers itself without editing a list."""
from components import import_submodules

import_submodules(__name__, __path__)
