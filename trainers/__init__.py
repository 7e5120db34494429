"""Trainers (Dassl trainers on (B, M, C, H, W) clips): ERM, APN / video ADA, DG methods.

Every module here is imported with the package, so a new file registers itself without editing a list."""
from components import import_submodules

import_submodules(__name__, __path__)
