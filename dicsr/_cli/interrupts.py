"""SIGTERM handled like Ctrl-C, so that an interrupted run cleans up and reports what it did."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Terminated", "sigterm_interrupts"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``docker stop``, a batch scheduler), raised like Ctrl-C where the program is.

    Raising it, rather than dying at once, lets every ``finally`` run: an output being written is
    left as a removed temporary file, never as a truncated file under its final name.
    """


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the command runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
