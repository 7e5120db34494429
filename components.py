"""Every dataset, model and trainer of the project, registered in Dassl's registries by one call.

`register_all()` imports the packages `datasets`, `models` and `trainers`; each package imports all of its
modules (see `import_submodules`), and each module registers its entries and declares its config keys. So a
new method is one file under trainers/ (plus its YAML), found without editing any list.

`list_components()` names the registered entries without importing anything heavy (it reads the source
files), so that `train.py --help` answers at once.
"""
import ast
import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parent
PACKAGES = ("datasets", "models", "trainers")
# registry name in the source -> what --help calls it
REGISTRIES = {"TRAINER_REGISTRY": "trainers", "DATASET_REGISTRY": "datasets", "BACKBONE_REGISTRY": "backbones",
              "HEAD_REGISTRY": "heads"}


def import_submodules(package_name: str, package_path) -> None:
    """Import every module and sub-package of a package (not those whose name starts with '_')."""
    for info in pkgutil.iter_modules(package_path):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package_name}.{info.name}")


def register_all() -> None:
    """Import (so register) every dataset, model and trainer; call once at the start of an entry point."""
    for name in PACKAGES:
        importlib.import_module(name)


def registered() -> bool:
    """Whether register_all has imported the packages."""
    return all(name in sys.modules for name in PACKAGES)


def _registered_in(path: Path) -> Dict[str, List[str]]:
    """{registry: [names]} for the `@X_REGISTRY.register()` definitions in one source file; a definition inside a
    module-level `if` is named with its condition, e.g. "DasslCrossGrad (if ENGINE == 'dassl')"."""
    found: Dict[str, List[str]] = {}
    tree = ast.parse(path.read_text(), filename=str(path))
    condition = {}  # definition -> the test of the module-level `if` it is in
    for top in tree.body:
        if isinstance(top, ast.If):
            for inner in ast.walk(top):
                condition[inner] = ast.unparse(top.test)
    for node in ast.walk(tree):
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            continue
        for deco in node.decorator_list:
            call = deco.func if isinstance(deco, ast.Call) else deco
            if isinstance(call, ast.Attribute) and call.attr == "register" and isinstance(call.value, ast.Name):
                if call.value.id in REGISTRIES:
                    name = f"{node.name} (if {condition[node]})" if node in condition else node.name
                    found.setdefault(REGISTRIES[call.value.id], []).append(name)
    return found


def list_components() -> Dict[str, List[str]]:
    """{"trainers": [...], "datasets": [...], "backbones": [...], "heads": [...]} from the source files."""
    names: Dict[str, List[str]] = {kind: [] for kind in REGISTRIES.values()}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for kind, found in _registered_in(path).items():
                names[kind].extend(found)
    return {kind: sorted(found) for kind, found in names.items()}
