"""What ``dicsr enhance`` writes for each input, and under which names."""

from __future__ import annotations

from pathlib import Path

__all__ = ["output_path"]


def output_path(root: Path, relative: Path, ext: str | None) -> Path:
    """The restored photo of the input found at ``relative`` below its argument."""
    target = root / relative
    return target.with_suffix("." + ext.lstrip(".")) if ext else target
