"""MkDocs hooks: optional pages leave the site while their source is absent.

The site lists pages whose source another line of work adds (``docs/scaling.md``, the
``dicsr.distributed`` module documented by ``docs/reference/distributed.md``). Until that source
exists the page and its navigation entry are dropped, so the strict build passes on every branch;
once it exists the page is built like any other (and a broken page fails the build as usual).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]

#: page (relative to docs/) -> the file whose presence the page needs
OPTIONAL_PAGES = {
    "scaling.md": REPO_ROOT / "docs" / "scaling.md",
    "reference/distributed.md": REPO_ROOT / "dicsr" / "distributed.py",
}


def _absent() -> set[str]:
    return {page for page, source in OPTIONAL_PAGES.items() if not source.exists()}


def _prune(nav: Any, absent: set[str]) -> Any:
    """The navigation without entries for absent pages (entries are str, {title: str} or {title: list})."""
    if isinstance(nav, list):
        return [entry for entry in (_prune(item, absent) for item in nav) if entry is not None]
    if isinstance(nav, dict):
        pruned = {title: _prune(value, absent) for title, value in nav.items()}
        return {title: value for title, value in pruned.items() if value is not None} or None
    return None if nav in absent else nav


def on_config(config: Any, **kwargs: Any) -> Any:
    config["nav"] = _prune(config["nav"], _absent())
    return config


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    for page in _absent():
        found = files.get_file_from_path(page)
        if found is not None:
            files.remove(found)
    return files
