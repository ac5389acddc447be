"""The one registry of network families: the only place that lists them by name.

A built-in family is one line below (its name and the package holding its ``FAMILY``), imported on
first use so ``import dicsr`` stays light. Other families (a plugin, a test) are added at run time
with :func:`register_family`.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING

from dicsr.errors import UnknownArchitectureError

if TYPE_CHECKING:  # pragma: no cover - the module imports _family lazily through the packages
    from dicsr.families._family import Family

__all__ = ["get_family", "list_families", "register_family", "unregister_family"]

#: Built-in families: name -> package whose ``FAMILY`` it is.
_BUILT_IN = {
    "dic": "dicsr.families.dic",
    "sparnet": "dicsr.families.sparnet",
}

_registered: dict[str, Family] = {}
_lock = threading.Lock()


def register_family(family: Family, *, replace: bool = False) -> Family:
    """Make ``family`` known to every loader (``config.json``'s ``arch``, checkpoint detection, the zoo).

    Args:
        family: the family; its ``name`` is the key.
        replace: allow replacing a registered family of the same name.

    Returns:
        ``family``, so a module can write ``FAMILY = register_family(MyFamily(...))``.

    Raises:
        ValueError: the name is taken (a built-in name always is, unless ``replace``) or invalid.
    """
    from dicsr.families._family import Family

    if not isinstance(family, Family):
        raise TypeError(f"register_family takes a dicsr.families.Family, got {type(family).__name__}")
    if not family.name or family.name != family.name.strip().lower():
        raise ValueError(f"a family name must be non-empty lower case, got {family.name!r}")
    with _lock:
        taken = family.name in _registered or family.name in _BUILT_IN
        if taken and not replace:
            raise ValueError(f"a family named {family.name!r} is already registered (pass replace=True)")
        _registered[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Forget a family added with :func:`register_family` (built-in families come back on next use)."""
    with _lock:
        _registered.pop(name, None)


def get_family(name: str) -> Family:
    """The family called ``name`` (``config.json``'s ``arch``).

    Raises:
        UnknownArchitectureError: no such family; the message lists the known ones.
    """
    family = _registered.get(name) if isinstance(name, str) else None
    if family is not None:
        return family
    if isinstance(name, str) and name in _BUILT_IN:
        module = importlib.import_module(_BUILT_IN[name])
        with _lock:
            return _registered.setdefault(name, module.FAMILY)
    known = ", ".join(sorted({*_BUILT_IN, *_registered}))
    raise UnknownArchitectureError(f"unknown network family {name!r:.60}; known: {known}")


def list_families() -> list[Family]:
    """Every family: the built-in ones first, in registry order, then those registered later."""
    names = [*_BUILT_IN, *(name for name in list(_registered) if name not in _BUILT_IN)]
    return [get_family(name) for name in names]
