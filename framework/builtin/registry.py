"""Name -> class/function tables, keyed by the object's own __name__ (as in Dassl)."""
import difflib
from typing import Any, Callable, Dict, List, Optional


def check_availability(requested: str, available: List[str]) -> None:
    """Raise ValueError listing the valid names (and the closest one) if `requested` is unknown."""
    if requested in available:
        return
    close = difflib.get_close_matches(requested, available, n=1, cutoff=0.0)
    hint = f' Did you mean "{close[0]}"?' if close else ""
    raise ValueError(f'"{requested}" is not available. Choose from: {sorted(available)}.{hint}')


class Registry:

    def __init__(self, name: str):
        self._name = name
        self._obj_map: Dict[str, Any] = {}

    def _do_register(self, name: str, obj: Any, force: bool = False) -> None:
        if name in self._obj_map and not force:
            raise KeyError(f'An object named "{name}" was already registered in "{self._name}" registry')
        self._obj_map[name] = obj

    def register(self, obj: Optional[Any] = None, force: bool = False) -> Callable:
        if obj is None:

            def decorator(fn_or_class):
                self._do_register(fn_or_class.__name__, fn_or_class, force=force)
                return fn_or_class

            return decorator
        self._do_register(obj.__name__, obj, force=force)
        return obj

    def get(self, name: str) -> Any:
        if name not in self._obj_map:
            raise KeyError(f'Object name "{name}" does not exist in "{self._name}" registry')
        return self._obj_map[name]

    def registered_names(self) -> List[str]:
        return list(self._obj_map.keys())

    def __contains__(self, name: str) -> bool:
        return name in self._obj_map
