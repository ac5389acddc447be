"""Fingerprints of downloaded files: what the registry knows about a file, and the check.

A :class:`Fingerprint` holds whatever is published about an official file: its size, its sha256,
its git blob id (``sha1(b"blob <size>\\0" + bytes)``, the id git and GitHub give a committed file).
Any subset may be known; every known value is checked, in one pass over the file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from dicsr.errors import IntegrityError

__all__ = ["FileDigest", "Fingerprint", "digest_file", "git_blob_sha1", "verify_fingerprint"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Fingerprint:
    """Published facts about a file; ``None`` where unknown.

    Attributes:
        size: size in bytes.
        sha256: hex sha256 of the bytes.
        git_blob_sha1: hex git blob id (sha1 of ``b"blob <size>\\0"`` followed by the bytes).
    """

    size: int | None = None
    sha256: str | None = None
    git_blob_sha1: str | None = None

    @property
    def known(self) -> bool:
        """Whether anything is published to check against."""
        return any(value is not None for value in (self.size, self.sha256, self.git_blob_sha1))

    def describe(self) -> str:
        """``"size 1,234 B, sha256 ab12..."``: the published values, for messages."""
        parts = []
        if self.size is not None:
            parts.append(f"size {self.size:,} B")
        if self.sha256 is not None:
            parts.append(f"sha256 {self.sha256}")
        if self.git_blob_sha1 is not None:
            parts.append(f"git blob sha1 {self.git_blob_sha1}")
        return ", ".join(parts) or "nothing published"


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
