"""Shared test fixtures.

Tests that need the project's ``../shared`` folder (golden fixtures, real photos, detector weights)
skip with a clear reason when it is absent; everything else runs on a fresh clone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("DICSR_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()

# Two cores: keep intra-op threads fixed so timings and memory are predictable in CI.
torch.set_num_threads(min(2, os.cpu_count() or 1))


def shared_path(*parts: str) -> Path:
    """Path inside ../shared, or skip the calling test with the reason it cannot run."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"needs {path}: the project's shared data folder (golden fixtures, photos, detector "
            f"weights) is expected beside the repository as ../shared or in $DICSR_SHARED_DIR"
        )
    return path
