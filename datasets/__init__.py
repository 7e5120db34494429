"""Video DG benchmarks (Dassl datasets): synthetic, UCF-HMDB, Something-Something, PKU-MMD, NTU, your own videos.

Every module here is imported with the package, so a new file registers itself without editing a list."""
from components import import_submodules

import_submodules(__name__, __path__)
