"""Name -> class/function tables. The key is always the object's own __name__, so the name a YAML file or a
flag gives (TRAINER.NAME APN) is the class name in the code."""
import difflib
import functools
from typing import Any, Callable, Dict, List, Optional


def check_availability(requested: str, available: List[str]) -> None:
    """Raise ValueError listing the valid names (and the closest one) if `requested` is unknown."""
    if requested in available:
        return
    close = difflib.get_close_matches(requested, available, n=1, cutoff=0.0)
    hint = f' Did you mean "{close[0]}"?' if close else ""
    raise ValueError(f'"{requested}" is not available. Choose from: {sorted(available)}.{hint}')


class Registry:
    """`@REGISTRY.register()` above a class (or `REGISTRY.register(obj)`) files it under its __name__."""

    def __init__(self, name: str):
        self._name = name
        self._obj_map: Dict[str, Any] = {}

    def register(self, obj: Optional[Any] = None, force: bool = False) -> Callable:
        if obj is None:
            return functools.partial(self._file, force=force)
        return self._file(obj, force=force)

    def _file(self, obj: Any, force: bool = False) -> Any:
        key = obj.__name__
        holder = self._obj_map.get(key)
        if holder is not None and not force:
            where = f"{getattr(holder, '__module__', '?')}.{getattr(holder, '__qualname__', key)}"
            raise KeyError(f'{self._name}: the name "{key}" is taken by {where}. Give the new one another name '
                           "(a module imported under two names registers twice), or pass force=True to replace it.")
        self._obj_map[key] = obj
        return obj

    def get(self, name: str) -> Any:
        try:
            return self._obj_map[name]
        except KeyError:
            raise KeyError(f'{self._name} has nothing named "{name}"; it holds {sorted(self._obj_map)}. Is the '
                           "module that registers it imported?") from None

    def registered_names(self) -> List[str]:
        return list(self._obj_map)

    def __contains__(self, name: str) -> bool:
        return name in self._obj_map
