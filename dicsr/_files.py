"""Small file helpers: hashing and atomic writes (temp file beside the target, then rename)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "is_temporary_sibling",
    "remove_abandoned_temporaries",
    "sha256_of_file",
    "temporary_sibling",
]

_CHUNK = 1 << 20

#: ``.<target name>.<pid of the writer>.<random>.tmp``: hidden, never an image suffix, and it names
#: the process that writes it, so a later run can tell an abandoned one from one in progress.
_TEMPORARY_NAME = re.compile(r"\.(?P<target>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp", re.S)


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
    # The target's name is only a hint for people looking at the folder: cut it so that a legal
    # 255-byte target name still gives a legal temporary name.
    hint = os.fsdecode(os.fsencode(path.name)[:128])
    fd, name = tempfile.mkstemp(prefix=f".{hint}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        os.close(fd)
        # mkstemp creates 0600; published/shared files should be readable like any other file.
        os.chmod(tmp, 0o644)
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


def is_temporary_sibling(name: str) -> bool:
    """True when a file name is one :func:`temporary_sibling` makes (a write in progress or abandoned)."""
    return _TEMPORARY_NAME.fullmatch(name) is not None


def remove_abandoned_temporaries(folder: Path, *, including_this_process: bool = False) -> list[Path]:
    """Delete the temporary siblings in ``folder`` whose writing process no longer exists.

    A process killed outright (SIGKILL, power loss) cannot remove its temporary file; the file is
    harmless (no final name ever points at it) but takes space. Files of live processes (another
    run writing the same folder) are left alone. ``including_this_process``: also those of this
    process, for a caller that knows none of its writes is in progress (an interrupt can land
    before a write's cleanup is armed). Returns the removed paths.
    """
    if os.name != "posix":  # liveness is probed with signal 0, which only POSIX defines
        return []
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        match = _TEMPORARY_NAME.fullmatch(entry.name)
        if match is None:
            continue
        pid = int(match["pid"])
        if not (including_this_process and pid == os.getpid()) and _process_exists(pid):
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _process_exists(pid: int) -> bool:
    if pid <= 0:  # signal 0 to pid 0 or -1 would probe a whole process group
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process / not a pid this system can have
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True
