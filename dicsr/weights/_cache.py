"""The dicsr cache of converted model folders: ``<cache>/models/<name>/``.

``<cache>`` is ``$DICSR_CACHE_DIR`` (read at call time), else ``~/.cache/dicsr``
(:func:`dicsr.weights._settings.dicsr_cache_dir`). A cached folder
is an ordinary model folder (``model.safetensors`` + ``config.json`` + ``README.md`` card) plus
``dicsr-cache.json``, the record written with it: where the official file came from, which of its
fingerprints were checked, and the sha256 of every file the folder is loaded from.

* Writers hold a per-model ``filelock`` lock, build the folder under a temporary name beside it
  and rename it into place, so readers never see a half-written folder and two processes never
  build the same model twice.
* Every read verifies the recorded sha256s (a flipped bit in a cached file would otherwise load
  silently); a mismatch raises :class:`~dicsr.errors.IntegrityError`, and the caller decides
  whether to rebuild.
* ``<cache>/downloads/`` holds official files while they download (partial files survive an
  interruption and are resumed) and until they are converted; then they are deleted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dicsr._files import atomic_write_text, sha256_of_file
from dicsr.errors import IntegrityError, WeightsUnavailableError
from dicsr.weights._folder import CONFIG_FILENAME, WEIGHTS_FILENAME

__all__ = [
    "RECORD_FILENAME",
    "CacheRecord",
    "CachedModel",
    "ModelCache",
]

logger = logging.getLogger(__name__)

RECORD_FILENAME = "dicsr-cache.json"
#: The files of a cached folder whose sha256 is recorded and checked on every load.
VERIFIED_FILES = (WEIGHTS_FILENAME, CONFIG_FILENAME)
_RECORD_FORMAT = 1


@dataclass(frozen=True)
class CacheRecord:
    """How a cached model folder was made (``dicsr-cache.json``).

    Attributes:
        name: zoo name.
        source: kind of source the official file came from (``"mirror"``, ``"github-release"``,
            ``"google-drive"``).
        source_label: the source as messages name it.
        url: the URL the file was requested from.
        official_filename: the official checkpoint's name.
        official_size: its size in bytes.
        official_sha256: its sha256 (measured).
        fingerprint_checked: which published fingerprints matched (or that none is published).
        files: sha256 of each file of :data:`VERIFIED_FILES`.
        dicsr_version: the converting dicsr's version.
    """

    name: str
    source: str
    source_label: str
    url: str
    official_filename: str
    official_size: int
    official_sha256: str
    fingerprint_checked: str
    files: dict[str, str] = field(default_factory=dict)
    dicsr_version: str = ""

    def to_json(self) -> str:
        """The ``dicsr-cache.json`` text."""
        return json.dumps({"format": _RECORD_FORMAT, **asdict(self)}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CacheRecord:
        """Parse ``dicsr-cache.json``; ``ValueError``/``TypeError`` if it is not one."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.pop("format", None) != _RECORD_FORMAT:
            raise ValueError("unknown record format")
        record = cls(**data)
        if not isinstance(record.files, dict) or set(record.files) != set(VERIFIED_FILES):
            raise ValueError("the record does not list the folder's files")
        return record


@dataclass(frozen=True)
class CachedModel:
    """A verified cached model folder and its record."""

    folder: Path
    record: CacheRecord


class ModelCache:
    """Converted model folders under ``<root>/models``; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def models_dir(self) -> Path:
        """``<root>/models``: one converted folder per zoo name."""
        return self.root / "models"

    @property
    def downloads_dir(self) -> Path:
        """``<root>/downloads``: official files while they download and until converted."""
        return self.root / "downloads"

    def folder(self, name: str) -> Path:
        """The converted folder of zoo model ``name`` (which may not exist)."""
        return self.models_dir / name

    def has(self, name: str) -> bool:
        """Whether a folder for ``name`` exists (without verifying it)."""
        return (self.folder(name) / RECORD_FILENAME).is_file()

    def read_record(self, name: str) -> CacheRecord | None:
        """The folder's record without checking its files, or ``None`` if absent/unreadable."""
        try:
            return CacheRecord.from_json((self.folder(name) / RECORD_FILENAME).read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError):
            return None

    def load(self, name: str) -> CachedModel | None:
        """The verified folder for ``name``, or ``None`` if there is none.

        Raises:
            IntegrityError: the folder exists but its record is missing or a file's sha256 differs.
        """
        folder = self.folder(name)
        if not folder.exists():
            return None
        record = self.read_record(name)
        if record is None:
            raise IntegrityError(f"cached model folder {folder} has no readable {RECORD_FILENAME}")
        for filename in VERIFIED_FILES:
            path = folder / filename
            if not path.is_file():
                raise IntegrityError(f"cached model folder {folder} lacks {filename}")
            digest = sha256_of_file(path)
            if digest != record.files[filename]:
                raise IntegrityError(
                    f"cached {path} is corrupt: sha256 {digest}, recorded {record.files[filename]} "
                    f"when it was converted"
                )
        return CachedModel(folder=folder, record=record)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the per-model lock (waits for another process building the same model).

        Raises:
            WeightsUnavailableError: the cache folder cannot be created or written.
        """
        from filelock import FileLock, Timeout

        try:
            self.models_dir.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self.models_dir / f".{name}.lock"))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                logger.info("waiting for another process fetching %s (lock %s)", name, lock.lock_file)
                lock.acquire()
        except OSError as exc:
            raise WeightsUnavailableError(
                f"cannot write the dicsr cache {self.root} ({exc}); point DICSR_CACHE_DIR at a writable "
                "folder"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def install(self, name: str, write: Callable[[Path], CacheRecord]) -> CachedModel:
        """Build the folder for ``name`` with ``write`` (which fills a temporary folder and returns
        the record without ``files``), record its sha256s, and rename it into place.

        Call with :meth:`lock` held. An existing folder (e.g. a corrupt one) is replaced.
        """
        self.models_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=self.models_dir))
        try:
            record = write(staging)
            files = {filename: sha256_of_file(staging / filename) for filename in VERIFIED_FILES}
            record = CacheRecord(**{**asdict(record), "files": files})
            atomic_write_text(staging / RECORD_FILENAME, record.to_json())
            os.chmod(staging, 0o755)  # mkdtemp makes it 0700; a shared cache must stay readable
            self.remove(name)
            os.replace(staging, self.folder(name))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return CachedModel(folder=self.folder(name), record=record)

    def remove(self, name: str) -> None:
        """Delete the folder for ``name`` (renamed aside first: never half-deleted in place)."""
        folder = self.folder(name)
        if not folder.exists():
            return
        doomed = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=self.models_dir))
        os.replace(folder, doomed / name)
        shutil.rmtree(doomed, ignore_errors=True)
