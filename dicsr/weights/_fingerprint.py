"""Checking a downloaded file against its published fingerprint.

A zoo entry's :class:`~dicsr.families.Fingerprint` holds whatever is published about an official
file: its size, its sha256, its git blob id (``sha1(b"blob <size>\\0" + bytes)``, the id git and
GitHub give a committed file). Any subset may be known; every known value is checked, against
measurements taken in one pass over the file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from dicsr.errors import IntegrityError
from dicsr.families import Fingerprint

__all__ = ["FileDigest", "digest_file", "git_blob_sha1", "verify_fingerprint"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileDigest:
    """What a file on disk measures: size, sha256 and git blob id."""

    size: int
    sha256: str
    git_blob_sha1: str


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def digest_file(path: str | os.PathLike[str]) -> FileDigest:
    """Size, sha256 and git blob id of a file, in one read."""
    size = Path(path).stat().st_size
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            sha256.update(chunk)
            blob.update(chunk)
    return FileDigest(size=size, sha256=sha256.hexdigest(), git_blob_sha1=blob.hexdigest())


def verify_fingerprint(digest: FileDigest, expected: Fingerprint, *, what: str) -> str:
    """Check every published value; return what was verified (``"git blob sha1 d915..."``).

    Returns ``"no fingerprint published"`` when nothing is known.

    Raises:
        IntegrityError: a published value differs (the message names both values).
    """
    checks = (
        ("size", expected.size, digest.size),
        ("sha256", expected.sha256, digest.sha256),
        ("git blob sha1", expected.git_blob_sha1, digest.git_blob_sha1),
    )
    verified = []
    for label, published, measured in checks:
        if published is None:
            continue
        if (published.lower() if isinstance(published, str) else published) != measured:
            raise IntegrityError(
                f"{what}: {label} {_shown(measured)} does not match the published {_shown(published)}"
            )
        verified.append(f"{label} {_shown(published)}")
    return ", ".join(verified) if verified else "no fingerprint published"


def _shown(value: int | str) -> str:
    return f"{value:,} B" if isinstance(value, int) else value
