"""Helpers the test modules import: where the repository and ../shared are, and ``shared_path``.

Import them from here (``from _support import shared_path``), not from ``conftest``: pytest loads
conftest.py itself, and importing it as a module as well is what pytest advises against.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("DICSR_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()

#: sha256 of the official RetinaFace mobile0.25 weights (``detection_mobilenet0.25_Final.pth``).
DETECTOR_SHA256 = "2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220"


def shared_path(*parts: str) -> Path:
    """Path inside ../shared, or skip the calling test with the reason it cannot run."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"needs {path}: the project's shared data folder (golden fixtures, photos, detector "
            f"weights) is expected beside the repository as ../shared or in $DICSR_SHARED_DIR"
        )
    return path


def write_two_small_photos(folder: Path) -> None:
    """Two small real photos in ``folder``: ``two.jpg`` (two people at a quarter size) and
    ``nested/group.jpg`` (a group photo in a sub-folder); the folder runs of the CLI and of Ray use them."""
    import shutil

    from PIL import Image

    (folder / "nested").mkdir(exist_ok=True)
    two = Image.open(shared_path("faces", "face_recognition", "examples", "two_people.jpg")).convert("RGB")
    two.resize((two.width // 4, two.height // 4), Image.BICUBIC).save(folder / "two.jpg", quality=95)
    group = shared_path("faces", "dlib", "examples", "faces", "2008_002470.jpg")
    shutil.copy(group, folder / "nested" / "group.jpg")
