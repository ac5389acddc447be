"""Outputs are written atomically: a final name holds the old file or the complete new one, never a part.

``dicsr.image.save_image`` (and through it every file the CLI writes) writes to a hidden temporary
file beside the target and renames it into place. A temporary file left by a killed process is
never taken for an output, and the next run removes it once its writer is gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dicsr._files import is_temporary_sibling, remove_abandoned_temporaries, temporary_sibling
from dicsr.errors import InvalidImageError
from dicsr.image import save_image


def photo_array() -> np.ndarray:
    gradient = np.linspace(0, 255, 64 * 48 * 3).reshape(48, 64, 3)
    return gradient.astype(np.uint8)


def test_a_failed_save_leaves_the_existing_file_intact(tmp_path: Path) -> None:
    target = tmp_path / "photo.jpg"
    save_image(photo_array(), target)
    before = target.read_bytes()
    # Pillow opens the destination before it finds out it cannot encode a palette image as JPEG
    # (it used to truncate the existing file first).
    with pytest.raises(InvalidImageError, match="cannot write"):
        save_image(Image.new("P", (8, 8)), target)
    assert target.read_bytes() == before
    with Image.open(target) as reread:
        reread.load()
    assert os.listdir(tmp_path) == ["photo.jpg"], "a temporary file was left behind"


@pytest.mark.parametrize("name", ["face.png", "face.jpg", "face.webp", "face.tif", "deep.png"])
def test_save_image_writes_the_format_of_the_final_name(tmp_path: Path, name: str) -> None:
    image = photo_array().astype(np.uint16) * 257 if name == "deep.png" else photo_array()
    written = save_image(image, tmp_path / name)
    assert written == tmp_path / name
    with Image.open(written) as reread:
        expected = {".png": "PNG", ".jpg": "JPEG", ".webp": "WEBP", ".tif": "TIFF"}[written.suffix]
        assert reread.format == expected and reread.size == (64, 48)
    assert os.listdir(tmp_path) == [name]


def test_an_unknown_extension_is_a_typed_error_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match=r"unknown image file extension '\.xyz'"):
        save_image(photo_array(), tmp_path / "photo.xyz")
    assert os.listdir(tmp_path) == []


def test_temporary_names_are_hidden_name_the_writer_and_are_recognised(tmp_path: Path) -> None:
    target = tmp_path / ("x" * 250 + ".png")  # a legal name still gives a legal temporary name
    with temporary_sibling(target) as partial:
        assert partial.parent == tmp_path and partial.name.startswith(".")
        assert f".{os.getpid()}." in partial.name and partial.suffix == ".tmp"
        assert is_temporary_sibling(partial.name)
        assert partial.exists()
    assert not partial.exists()
    assert not is_temporary_sibling("photo.png") and not is_temporary_sibling(".photo.png.tmp")


def test_abandoned_temporaries_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    # A real process that has exited: its pid names no process any more.
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)
    abandoned = tmp_path / f".photo.png.{dead_pid}.k2j4x9_q.tmp"
    abandoned.write_bytes(b"\x89PNG half of a file")
    live = tmp_path / f".other.png.{os.getpid()}.a8b7c6d5.tmp"
    live.write_bytes(b"being written")
    unrelated = tmp_path / ".photo.png.tmp"  # not one of ours
    unrelated.write_bytes(b"")
    if Path(f"/proc/{dead_pid}").exists():
        pytest.skip(f"pid {dead_pid} was reused already")
    assert remove_abandoned_temporaries(tmp_path) == [abandoned]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, unrelated.name])
