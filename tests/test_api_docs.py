"""What the generated API reference and the code's citations need from the code.

The API reference is built from the docstrings by mkdocs + mkdocstrings (``mkdocs build --strict``
in CI fails on a broken link or a cross-reference to nothing). These tests check the rest: every
public name has a docstring, every ``__all__`` names something that exists, and every public
package has its reference page. (The specs the docstrings cite: tests/test_spec_citations.py.)
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType

from _support import REPO_ROOT

#: The curated public surface: the top level and the advanced tier (docs/architecture.md).
PUBLIC_PACKAGES = (
    "dicsr",
    "dicsr.pipeline",
    "dicsr.image",
    "dicsr.face",
    "dicsr.families",
    "dicsr.weights",
    "dicsr.engines",
    "dicsr.errors",
)

#: Public packages that exist only once their part of the library is there (an optional extra).
OPTIONAL_PUBLIC_PACKAGES = ("dicsr.distributed",)

REFERENCE_PAGES = REPO_ROOT / "docs" / "reference"


def public_modules() -> list[ModuleType]:
    """Every importable dicsr module whose dotted name has no ``_``-private part.

    A module that needs an optional dependency which is not installed (Ray for
    ``dicsr.distributed``) is left out; a missing dicsr module is an error.
    """
    import dicsr

    names = ["dicsr"] + [
        info.name for info in pkgutil.walk_packages(dicsr.__path__, "dicsr.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] == "dicsr":
                raise
    return modules


def test_every_name_in_a_public_all_exists() -> None:
    missing = [
        f"{module.__name__}.{name}"
        for module in public_modules()
        for name in getattr(module, "__all__", ())
        if not hasattr(module, name)
    ]
    duplicated = [
        module.__name__ for module in public_modules()
        if len(set(getattr(module, "__all__", ()))) != len(getattr(module, "__all__", ()))
    ]
    assert not missing, "__all__ names that do not exist:\n" + "\n".join(missing)
    assert not duplicated, "__all__ lists with a name twice: " + ", ".join(duplicated)


def test_every_public_class_and_function_has_a_docstring() -> None:
    undocumented = []
    for module in public_modules():
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            doc = obj.__doc__ or ""
            # A dataclass without a docstring gets an auto-generated "Name(field, ...)" one.
            if not doc.strip() or doc.startswith(f"{obj.__name__}("):
                undocumented.append(f"{module.__name__}.{name}")
            if inspect.isclass(obj) and obj.__module__.startswith("dicsr"):
                for attr, value in vars(obj).items():
                    function = getattr(value, "fget", None) or getattr(value, "__func__", value)
                    if not attr.startswith("_") and inspect.isfunction(function) and not function.__doc__:
                        undocumented.append(f"{module.__name__}.{name}.{attr}")
    assert not undocumented, "public names without a docstring:\n" + "\n".join(sorted(set(undocumented)))


def documented_packages() -> set[str]:
    """Packages the reference pages render (``::: dicsr.image`` lines)."""
    return {
        match.group(1)
        for page in REFERENCE_PAGES.glob("*.md")
        for match in re.finditer(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), re.M)
    }


def test_every_public_package_has_a_reference_page() -> None:
    present = [
        name for name in OPTIONAL_PUBLIC_PACKAGES
        if (REPO_ROOT / Path(*name.split("."))).with_suffix(".py").exists()
        or (REPO_ROOT / Path(*name.split("."))).is_dir()
    ]
    assert set(PUBLIC_PACKAGES) | set(present) <= documented_packages()
