"""The account ``dicsr enhance`` gives at the end of a run, finished or interrupted.

Each input appears once: restored, completed (only missing side files written), skipped (every
output exists), failed (with a one-line reason naming the file once), or left (the run was
interrupted before it). Entries of the inputs that were passed over are listed as ignored. Faces
the selection left alone are counted by reason, with the option that restores them (not an error).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dicsr._cli.inputs import Ignored
from dicsr._photo_files import COMPARE, FACES, LANDMARKS, PHOTO
from dicsr.errors import DicsrError

__all__ = ["RunSummary", "failure_reason"]

logger = logging.getLogger("dicsr.cli")

#: Ignored entries shown in the summary; ``-v`` logs every one of them as it is found.
_IGNORED_SHOWN = 10

#: What restores the faces left alone for a reason (``dicsr.face.select.SkipReason``), where an
#: option does; the other reasons (duplicates, non-faces) are the selection doing its job.
_RESTORED_BY = {
    "larger than the model's useful size": "--max-face-size PX or --all-faces restores them",
    "not the centre face": "asked by --only-center-face",
    "beyond max_faces": "asked by --max-faces",
}


@dataclass
class RunSummary:
    """What a run did, input by input."""

    restored: int = 0
    faces: int = 0
    completed_images: int = 0  # images whose photo existed and whose missing side files were written
    completed: dict[str, int] = field(default_factory=dict)  # side file kind -> images completed
    skipped: int = 0
    failures: list[tuple[Path, str]] = field(default_factory=list)
    ignored: Sequence[Ignored] = ()
    left: list[Path] = field(default_factory=list)
    interrupted_by: str | None = None
    left_alone: Counter[str] = field(default_factory=Counter)  # faces not restored, by reason

    def add_done(self, faces: int, written: set[str], *, left_alone: Iterable[str] = ()) -> None:
        """Count one processed input: its restored faces, the kinds of output it wrote, and the
        reasons of the faces it left alone."""
        self.faces += faces
        self.left_alone.update(left_alone)
        if PHOTO in written:
            self.restored += 1
        elif written:
            self.completed_images += 1
            for kind in written:
                self.completed[kind] = self.completed.get(kind, 0) + 1
        else:
            self.skipped += 1  # its missing side files turned out to be none (no face to save)

    def lines(self) -> list[str]:
        """The summary as printed: one headline, then one line per thing worth a look."""
        counts = [f"{self.restored} image(s) restored", f"{self.faces} face(s)", f"{self.skipped} skipped",
                  f"{len(self.failures)} failed"]
        counts += [f"{self.completed_images} completed"] if self.completed else []
        counts += [f"{len(self.ignored)} ignored"] if self.ignored else []
        counts += [f"{len(self.left)} left"] if self.interrupted_by else []
        counts += [f"{self.left_alone.total()} face(s) left alone"] if self.left_alone else []
        lines = ["dicsr: " + ", ".join(counts)]
        for reason, count in self.left_alone.most_common():
            restored_by = f" ({_RESTORED_BY[reason]})" if reason in _RESTORED_BY else ""
            lines.append(f"  left alone: {count} face(s): {reason}{restored_by}")
        if self.completed:
            kinds = ", ".join(f"{kind} for {self.completed[kind]}" for kind in (LANDMARKS, COMPARE, FACES)
                              if kind in self.completed)
            lines.append(f"  completed: restored photos existed; wrote only the missing {kinds}")
        if self.skipped:
            lines.append(f"  skipped: {self.skipped} image(s) whose outputs all exist "
                         f"(--overwrite replaces them)")
        for entry in self.ignored[:_IGNORED_SHOWN]:
            lines.append(f"  ignored: {entry.path}: {entry.reason}")
        if len(self.ignored) > _IGNORED_SHOWN:
            lines.append(f"  ignored: ... and {len(self.ignored) - _IGNORED_SHOWN} more (-v lists them all)")
        lines += [f"  failed: {source}: {reason}" for source, reason in self.failures]
        if self.interrupted_by:
            lines.append(
                f"  left: {len(self.left)} image(s) not processed ({self.interrupted_by}); run the same "
                f"command again to finish: what is done is skipped"
            )
        return lines

    def exit_code(self) -> int:
        """0: all done; 1: a file failed; 130/143: interrupted by SIGINT/SIGTERM."""
        if self.interrupted_by:
            return 143 if self.interrupted_by == "SIGTERM" else 130
        return 1 if self.failures else 0


def failure_reason(exc: BaseException, source: Path) -> str:
    """One line saying why ``source`` failed, without repeating its path (the line starts with it)."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    spelled = str(source)
    if message.startswith(f"{spelled}: "):
        message = message[len(spelled) + 2:]
    elif message.endswith(f": {spelled}"):
        message = message[: -len(spelled) - 2]
    else:
        message = message.replace(f" {spelled}", "")
    if "." in source.name:  # the bare file name, as in "image x.png is 12000×9000 = ..." (a word, never)
        message = re.sub(rf"\s{re.escape(source.name)}(?=[\s:;,)]|$)", "", message)
    if isinstance(exc, MemoryError):
        return f"out of memory: {message or 'MemoryError'}"
    if isinstance(exc, DicsrError):
        return message or type(exc).__name__
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
