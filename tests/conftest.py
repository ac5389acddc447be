"""Shared test fixtures, and the markers that sort the tests into tiers.

Tests that need the project's ``../shared`` folder (golden fixtures, real photos, detector weights)
skip with a clear reason when it is absent; everything else runs on a fresh clone.

Tiers (docs/contributing.md): ``pytest`` runs everything, as CI does; ``pytest -m "not slow"`` is
the fast tier; ``-m "not shared"`` what runs without ../shared. :func:`pytest_collection_modifyitems`
applies both markers, so that no test module has to remember them:

* ``shared``: the test, or a fixture it uses, reads ../shared (through ``shared_path`` or
  ``SHARED_DIR``, directly or through a helper of its module or a fixture of this file);
* ``slow``: the test is listed in ``SLOW_TESTS`` (measured) or its module in ``SLOW_MODULES``.

The helpers test modules import (``shared_path``, ``REPO_ROOT``, ...) live in tests/_support.py;
this file holds only fixtures and hooks.
"""

from __future__ import annotations

import ast
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from _support import DETECTOR_SHA256, shared_path
from hypothesis import settings

# Two cores: keep intra-op threads fixed so timings and memory are predictable in CI.
torch.set_num_threads(min(2, os.cpu_count() or 1))

# CI replays the same property/fuzz examples every run (a red CI must mean a change broke
# something, not that the fuzzer got lucky); local runs explore new examples each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="module")
def one_intra_op_thread() -> Iterator[None]:
    """One intra-op thread for a module whose parallelism comes from its own threads, or whose
    network calls are tiny: two intra-op threads per call would oversubscribe the two cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def detector_weights() -> Path:
    """The real RetinaFace mobile0.25 weights from ../shared, checked against their published hash."""
    import hashlib

    path = shared_path("weights", "detection_mobilenet0.25_Final.pth")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == DETECTOR_SHA256, f"{path} is not the release file"
    return path


@pytest.fixture(scope="session")
def dic_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dicsr model folder converted from the golden (seeded random) official DIC checkpoint."""
    from dicsr.weights import convert_checkpoint

    source = shared_path("golden", "DIC_CelebA_ckp.pth")
    return convert_checkpoint(source, tmp_path_factory.mktemp("models") / "dic-celeba", name="dic-celeba")


@pytest.fixture(scope="session")
def sparnet_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dicsr model folder converted from the golden (seeded random) official SPARNet checkpoint."""
    from dicsr.weights import convert_checkpoint

    source = shared_path("golden", "SPARNet.pth")
    return convert_checkpoint(source, tmp_path_factory.mktemp("models") / "sparnet", name="sparnet")


# --- tiers -----------------------------------------------------------------------------------

#: Names through which a test reaches ../shared.
SHARED_ENTRY_POINTS = frozenset({"shared_path", "SHARED_DIR"})

#: Modules whose every test is slow (``tests/<name>``).
SLOW_MODULES = frozenset()

#: Tests that take long (``file::name``, every parametrisation), from ``pytest --durations=0``.
SLOW_TESTS = frozenset()


@functools.cache
def functions_reaching_shared(path: Path) -> frozenset[str]:
    """Functions (tests, fixtures, helpers, methods) of a module that read ../shared, directly or by
    naming another such function of the module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    names_used: dict[str, set[str]] = {}  # a name defined twice (two classes' methods) gets both bodies'
    for function in functions:
        names_used.setdefault(function.name, set()).update(
            node.id for node in ast.walk(function) if isinstance(node, ast.Name)
        )
    reaching = {name for name, used in names_used.items() if used & SHARED_ENTRY_POINTS}
    while True:
        more = {name for name, used in names_used.items() if used & reaching} - reaching
        if not more:
            return frozenset(reaching)
        reaching |= more


def needs_shared(item: pytest.Item) -> bool:
    """Whether the test or one of its fixtures (fixtures of its module or of this file, by name)
    reads ../shared."""
    reaching = functions_reaching_shared(item.path) | functions_reaching_shared(Path(__file__))
    return item.name.split("[")[0] in reaching or any(
        name in reaching for name in getattr(item, "fixturenames", ())
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if needs_shared(item):
            item.add_marker(pytest.mark.shared)
        key = f"{item.path.name}::{item.name.split('[')[0]}"
        if item.path.name in SLOW_MODULES or key in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
