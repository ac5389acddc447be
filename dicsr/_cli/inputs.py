"""The input images of ``dicsr enhance``: files, folders (searched recursively) and glob patterns."""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from pathlib import Path

from dicsr.errors import DicsrError, InvalidInputError

__all__ = ["IMAGE_SUFFIXES", "collect_inputs", "no_inputs_error"]

#: Suffixes a folder walk takes as images (files named explicitly are read whatever their suffix).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})


def collect_inputs(patterns: Sequence[str]) -> Iterator[tuple[Path, Path]]:
    """Yield ``(file, path relative to its root)`` for files, folders (recursive) and globs."""
    seen: set[Path] = set()
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            candidates = [(p, p.relative_to(path)) for p in sorted(path.rglob("*"))
                          if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        elif path.exists():
            candidates = [(path, Path(path.name))]
        else:
            candidates = [(Path(p), Path(Path(p).name)) for p in sorted(glob.glob(pattern, recursive=True))
                          if Path(p).is_file()]
        for file, relative in candidates:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                yield file, relative


def no_inputs_error(patterns: Sequence[str]) -> DicsrError:
    """The error for an invocation whose arguments name no image."""
    return InvalidInputError(f"no input images found in: {' '.join(patterns)}")
