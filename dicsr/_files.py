"""Small file helpers shared by the loading modules: hashing and atomic writes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "sha256_of_file", "temporary_sibling"]

_CHUNK = 1 << 20


def sha256_of_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (weights can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def temporary_sibling(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path`` that is removed unless the caller renamed it.

    Writing beside the destination keeps the final ``os.replace`` on one file system, hence atomic:
    a reader never sees a half-written file, and an interrupted write leaves only a stray temp file
    that the next attempt does not mistake for the real one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    # mkstemp creates 0600; published/shared files should be readable like any other file.
    os.chmod(tmp, 0o644)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename)."""
    with temporary_sibling(path) as tmp:
        tmp.write_bytes(data)
        os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (temp file + rename)."""
    atomic_write_bytes(path, text.encode("utf-8"))
