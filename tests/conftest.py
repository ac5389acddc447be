"""Shared test fixtures.

Tests that need the project's ``../shared`` folder (golden fixtures, real photos, detector weights)
skip with a clear reason when it is absent; everything else runs on a fresh clone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("DICSR_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()

# Two cores: keep intra-op threads fixed so timings and memory are predictable in CI.
torch.set_num_threads(min(2, os.cpu_count() or 1))

# CI replays the same property/fuzz examples every run (a red CI must mean a change broke
# something, not that the fuzzer got lucky); local runs explore new examples each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def shared_path(*parts: str) -> Path:
    """Path inside ../shared, or skip the calling test with the reason it cannot run."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"needs {path}: the project's shared data folder (golden fixtures, photos, detector "
            f"weights) is expected beside the repository as ../shared or in $DICSR_SHARED_DIR"
        )
    return path


@pytest.fixture(scope="module")
def one_intra_op_thread() -> Iterator[None]:
    """One intra-op thread for a module whose parallelism comes from its own threads, or whose
    network calls are tiny: two intra-op threads per call would oversubscribe the two cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


DETECTOR_SHA256 = "2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220"


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
