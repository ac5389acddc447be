"""The input images of ``dicsr enhance``: files, folders (searched recursively) and glob patterns.

Every entry the walk passes over is accounted for: it becomes an :class:`InputImage`, or an
:class:`Ignored` entry with its reason (the run's summary lists them). Only dicsr's own hidden
bookkeeping (temporary files of writes in progress, the output record) and other hidden non-image
files are passed over silently.

An argument that names nothing usable (missing, a broken link or loop, a name too long) stops the
run before any work, as does an output folder that is, or is inside, an input folder, unless
``--allow-output-in-input`` is given: then files the output folder's record lists as earlier
dicsr outputs are never taken as inputs.
"""

from __future__ import annotations

import errno
import glob
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dicsr._files import is_temporary_sibling
from dicsr._photo_files import IMAGE_SUFFIXES, OUTPUT_RECORD
from dicsr.errors import InvalidInputError

__all__ = [
    "ALLOW_FLAG",
    "IMAGE_SUFFIXES",
    "Ignored",
    "InputImage",
    "Inputs",
    "collect_inputs",
    "real_path",
    "unusable_reason",
]

#: The flag that lets the output folder be, or be inside, an input folder.
ALLOW_FLAG = "--allow-output-in-input"


@dataclass(frozen=True)
class InputImage:
    """One file to restore: where it is, and where below its argument (which names its outputs)."""

    path: Path
    relative: Path


@dataclass(frozen=True)
class Ignored:
    """An entry of a folder or pattern that is not processed, and why."""

    path: Path
    reason: str


@dataclass
class Inputs:
    """What the arguments name: the images to restore and the entries passed over."""

    images: list[InputImage] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)


def real_path(path: Path) -> Path:
    """``path`` absolute with every symbolic link resolved (as far as it exists)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a link loop on the way: compare the absolute spelling
        return path.absolute()


def collect_inputs(
    arguments: Sequence[str],
    *,
    output: Path,
    allow_output_in_input: bool,
    earlier_outputs: frozenset[Path] = frozenset(),
) -> Inputs:
    """The images the command-line ``arguments`` name, in argument order, each file once.

    Args:
        arguments: files, folders and glob patterns as typed.
        output: the output folder (``-o``).
        allow_output_in_input: ``--allow-output-in-input`` was given.
        earlier_outputs: real paths of the files dicsr wrote into ``output`` before.

    Raises:
        InvalidInputError: an argument names nothing usable, or the output folder is (inside)
            an input folder without ``allow_output_in_input``.
    """
    walk = _Walk(_OutputFolder(real_path(output), output, allow_output_in_input, earlier_outputs))
    for argument in arguments:
        path = Path(argument)
        try:
            info = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT and not os.path.lexists(path) and glob.has_magic(argument):
                walk.pattern(argument)
                continue
            raise InvalidInputError(f"input {argument}: {unusable_reason(exc, path)}") from exc
        if stat.S_ISDIR(info.st_mode):
            walk.folder(path)
        else:
            walk.file(path, Path(path.name), named=True)
    return walk.found


def unusable_reason(exc: OSError, path: Path) -> str:
    """Why ``os.stat(path)`` failed, in words (a broken link or a loop is not "not found")."""
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "broken symbolic link" if os.path.lexists(path) else "no such file, folder or matching file"
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long"
    return exc.strerror or str(exc)


@dataclass(frozen=True)
class _OutputFolder:
    real: Path
    given: Path
    allowed: bool
    earlier_outputs: frozenset[Path]

    def refuse(self, what: str) -> InvalidInputError:
        return InvalidInputError(
            f"-o/--output {self.given} {what}: restored photos would be mixed with the photos they come "
            f"from. Choose another output folder, or pass {ALLOW_FLAG} (dicsr then never writes over an "
            f"input and never reads its own outputs back as inputs)"
        )

    def holds(self, real: Path) -> bool:
        return self.real == real or self.real in real.parents


class _Walk:
    def __init__(self, output: _OutputFolder) -> None:
        self.output = output
        self.found = Inputs()
        self._seen: dict[tuple[int, int], Path] = {}

    def folder(self, folder: Path) -> None:
        real = real_path(folder)
        if not self.output.allowed:
            if real == self.output.real:
                raise self.output.refuse(f"is the input folder {folder}")
            if real in self.output.real.parents:
                raise self.output.refuse(f"is inside the input folder {folder}")
            if self.output.holds(real):
                raise self.output.refuse(f"holds the input folder {folder}")

        def unreadable(exc: OSError) -> None:
            self._ignore(Path(exc.filename or folder), f"cannot list the folder: {exc.strerror}")

        for parent, folders, names in os.walk(folder, onerror=unreadable):
            folders.sort()
            for name in folders:
                if os.path.islink(os.path.join(parent, name)):  # os.walk does not follow them
                    self._ignore(Path(parent, name), "a linked folder, not followed (name it to search it)")
            for name in sorted(names):
                entry = Path(parent, name)
                if not self._is_bookkeeping(name) and self._has_image_suffix(entry):
                    self.file(entry, entry.relative_to(folder), named=False)

    def pattern(self, pattern: str) -> None:
        matches = sorted(glob.glob(pattern, recursive=True))
        if not matches:
            self._ignore(Path(pattern), "the pattern matches no file")
        for match in matches:
            entry = Path(match)
            if os.path.isdir(entry):
                self._ignore(entry, "a folder matched by a pattern (name it on its own to search it)")
            elif not self._is_bookkeeping(entry.name):
                self.file(entry, Path(entry.name), named=False)

    def file(self, path: Path, relative: Path, *, named: bool) -> None:
        try:
            info = os.stat(path)
        except OSError as exc:
            if named:
                raise InvalidInputError(f"input {path}: {unusable_reason(exc, path)}") from exc
            self._ignore(path, unusable_reason(exc, path))
            return
        if not stat.S_ISREG(info.st_mode):
            if named:
                raise InvalidInputError(f"input {path}: not a regular file")
            self._ignore(path, "not a regular file")
            return
        real = real_path(path)
        if self.output.holds(real):
            if not self.output.allowed:
                raise self.output.refuse(f"holds the input {path}")
            if real in self.output.earlier_outputs:
                self._ignore(path, "an earlier dicsr output")
                return
        identity = (info.st_dev, info.st_ino)
        if identity in self._seen:
            self._ignore(path, f"the same file as {self._seen[identity]}")
            return
        self._seen[identity] = path
        self.found.images.append(InputImage(path, relative))

    def _has_image_suffix(self, entry: Path) -> bool:
        if entry.suffix.lower() in IMAGE_SUFFIXES:
            return True
        if not entry.name.startswith("."):  # hidden files (.DS_Store, ...) are passed over quietly
            suffix = entry.suffix or "no suffix"
            self._ignore(entry, f"{suffix}: not a suffix the folder walk reads (name the file to process it)")
        return False

    @staticmethod
    def _is_bookkeeping(name: str) -> bool:
        return name == OUTPUT_RECORD or is_temporary_sibling(name)

    def _ignore(self, path: Path, reason: str) -> None:
        self.found.ignored.append(Ignored(path, reason))
