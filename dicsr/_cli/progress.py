"""The command's progress bar over the inputs of a run (local or on Ray)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

__all__ = ["progress_bar"]


@contextlib.contextmanager
def progress_bar(total: int, *, enabled: bool) -> Iterator[Callable[[], object]]:
    """A progress bar over ``total`` inputs (none for a single one); yields "one more is done".

    While the bar is shown, log records are written through it, so a warning (e.g. the output
    cap) appears on its own line instead of inside the bar.
    """
    if not enabled or total < 2:
        yield lambda: None
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(), tqdm(total=total, desc="dicsr", unit="img") as bar:
        yield bar.update
