"""Many photos through one resolver (issue 14): ``enhance_many`` and ``enhance_batch``.

The per-photo work is the same code as :meth:`FaceSuperResolver.enhance`, its three parts
(:mod:`dicsr.pipeline._stages`), arranged so that they overlap:

* **prepare** (decode, detect, select, crop) runs in a small thread pool ahead of the network, at
  most ``prefetch`` photos ahead (a bounded queue of futures, in input order);
* **restore** runs in the calling thread, on one photo's faces as ``enhance`` runs them or, with
  ``share_batches``, on the faces of as many already prepared photos as fill one network batch
  (:meth:`FaceSuperResolver.network_batch_size` faces);
* **finish** (faces in the caller's type, paste into the upscaled photo) runs in the pool again,
  while the calling thread starts the next network batch.

Results come back in input order. A photo that fails (unreadable, too large, ...) yields an
:class:`EnhanceFailure` in its place and the others go on.

Why the results are bitwise those of ``enhance``: each photo is decoded, detected, cropped,
restored and pasted by the same methods, and its faces go through the network in the same calls
(the same batches) as ``enhance`` runs them. Sharing calls between photos would be faster but is not
exact: on oneDNN CPU a face's float32 output depends on the batch it runs in (DIC: up to 7.6e-7, one
8-bit level; ``benchmarks/batch_invariance.py``, docs/scaling.md), so it is the caller's choice
(``share_batches=True``), not the default.

Memory is bounded by ``prefetch``: at most ``prefetch`` photos (decoded, with their crops) waiting
for or in preparation, one network batch, and at most ``prefetch + 1`` restored photos being
finished or waiting for the caller (measured in docs/scaling.md).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from dicsr.errors import InvalidInputError
from dicsr.face.paste import PasteOptions
from dicsr.image import ChannelOrder, ImageInput
from dicsr.pipeline._options import checked_flag, checked_paste, checked_scale
from dicsr.pipeline._results import EnhanceResult
from dicsr.pipeline._stages import PreparedPhoto, RestoredPhoto

if TYPE_CHECKING:  # pragma: no cover
    from dicsr.pipeline._resolver import FaceSuperResolver

__all__ = ["DEFAULT_PREFETCH", "DEFAULT_WORKERS", "EnhanceFailure", "EnhanceOutcome", "enhance_many"]

#: Threads preparing and finishing photos beside the network (decoding and pasting release the GIL;
#: detection is serialised by the detector, so more threads than this buy nothing).
DEFAULT_WORKERS = 2
#: Photos prepared ahead of the network: enough to fill a batch while the network runs, few enough
#: that memory stays a small multiple of one photo's.
DEFAULT_PREFETCH = 4


@dataclass(frozen=True)
class EnhanceFailure:
    """One input of :meth:`FaceSuperResolver.enhance_many` that could not be restored.

    Attributes:
        index: the input's position in the iterable (0-based).
        name: the path as given, or a description of an in-memory input (``"input 3 (numpy array
            480x640x3 uint8)"``).
        error: why: a :class:`dicsr.errors.DicsrError` for anything wrong with the input
            (:class:`~dicsr.errors.InvalidImageError`, :class:`~dicsr.errors.ImageTooLargeError`, ...);
            any other exception (``MemoryError``) is reported the same way, so the other inputs go on.
    """

    index: int
    name: str
    error: Exception

    def __str__(self) -> str:
        return f"{self.name}: {self.error}"


#: What :meth:`FaceSuperResolver.enhance_many` yields for each input, in input order.
EnhanceOutcome = EnhanceResult | EnhanceFailure

_Prepare = Callable[[ImageInput], PreparedPhoto]
_Finish = Callable[[RestoredPhoto], EnhanceResult]
_ReadAhead = Callable[[], None]


def input_name(image: object, index: int) -> str:
    """How an input is named in an :class:`EnhanceFailure`: its path, or what it is."""
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, np.ndarray):
        shape = "x".join(str(side) for side in image.shape)
        return f"input {index} (numpy array {shape} {image.dtype})"
    if isinstance(image, torch.Tensor):
        shape = "x".join(str(side) for side in image.shape)
        return f"input {index} (tensor {shape} {str(image.dtype).removeprefix('torch.')})"
    if isinstance(image, Image.Image):
        return f"input {index} (PIL image {image.width}x{image.height} {image.mode})"
    file_name = getattr(image, "name", None)
    if isinstance(file_name, str):
        return file_name
    return f"input {index} ({type(image).__name__})"


@dataclass
class _Waiting:
    """One input between the stages: its future (prepare, then finish) or its failure."""

    index: int
    name: str
    future: Future[PreparedPhoto] | Future[EnhanceResult] | None
    failure: EnhanceFailure | None = None

    def fail(self, error: Exception) -> EnhanceFailure:
        return EnhanceFailure(index=self.index, name=self.name, error=error)


def enhance_many(
    resolver: FaceSuperResolver,
    images: Iterable[ImageInput],
    *,
    aligned: bool = False,
    channel_order: ChannelOrder = "rgb",
    paste_back: bool = True,
    upscale: float | None = None,
    return_steps: bool = False,
    paste: PasteOptions | None = None,
    workers: int = DEFAULT_WORKERS,
    prefetch: int = DEFAULT_PREFETCH,
    share_batches: bool = False,
) -> Generator[EnhanceOutcome, None, None]:
    """The engine of :meth:`FaceSuperResolver.enhance_many` (see there for the arguments).

    Options are checked at the call, before any input is read (this is not a generator function;
    the generator it returns does the work).
    """
    for name, flag in (("aligned", aligned), ("paste_back", paste_back), ("return_steps", return_steps),
                       ("share_batches", share_batches)):
        checked_flag(name, flag)
    if upscale is not None:
        upscale = checked_scale("upscale", upscale)
    checked_paste(paste)
    for name, count in (("workers", workers), ("prefetch", prefetch)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidInputError(f"{name} must be a whole number >= 1, got {count!r}")
    if isinstance(images, (str, os.PathLike, bytes, np.ndarray, torch.Tensor, Image.Image)) or hasattr(
        images, "read"
    ):
        raise InvalidInputError(
            f"enhance_many takes an iterable of images (e.g. a list of paths), got one "
            f"{type(images).__name__}; use enhance for a single image"
        )

    def prepare(image: ImageInput) -> PreparedPhoto:
        return resolver.prepare(image, aligned=aligned, channel_order=channel_order, upscale=upscale,
                                paste_back=paste_back)

    def finish(restored: RestoredPhoto) -> EnhanceResult:
        return resolver.finish(restored, paste_back=paste_back, paste=paste)

    capacity = resolver.network_batch_size() if share_batches else 0
    return _run(resolver, iter(images), prepare, finish, return_steps=return_steps, workers=workers,
                prefetch=prefetch, capacity=capacity)


def _run(
    resolver: FaceSuperResolver,
    images: Iterator[ImageInput],
    prepare: _Prepare,
    finish: _Finish,
    *,
    return_steps: bool,
    workers: int,
    prefetch: int,
    capacity: int,
) -> Generator[EnhanceOutcome, None, None]:
    preparing: deque[_Waiting] = deque()  # in input order, at most `prefetch`
    finishing: deque[_Waiting] = deque()  # in input order, at most `prefetch`
    next_index = 0
    exhausted = False
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dicsr-many")

    def read_ahead() -> None:
        nonlocal next_index, exhausted
        while not exhausted and len(preparing) < prefetch:
            try:
                image = next(images)
            except StopIteration:
                exhausted = True
                return
            index, next_index = next_index, next_index + 1
            preparing.append(_Waiting(index, input_name(image, index), pool.submit(prepare, image)))

    try:
        read_ahead()
        while preparing or finishing:
            if preparing:
                group = _next_group(preparing, read_ahead, capacity=capacity, most=prefetch)
                finishing.extend(_restore(resolver, group, finish, pool, return_steps))
            # hand back what is done, in order; wait only when the queue is full or nothing is left
            while finishing and (_is_done(finishing[0]) or len(finishing) > prefetch or not preparing):
                yield _outcome(finishing.popleft())
    finally:
        for waiting in (*preparing, *finishing):
            if waiting.future is not None:
                waiting.future.cancel()
        # Running prepare/finish calls end on their own (a fraction of a second); nothing else runs.
        pool.shutdown(wait=True, cancel_futures=True)


def _next_group(
    preparing: deque[_Waiting], read_ahead: _ReadAhead, *, capacity: int, most: int
) -> list[tuple[_Waiting, PreparedPhoto | None]]:
    """The next photos (at most ``most``), in order, whose faces go through the network together: the
    first one (waited for), then those already prepared whose faces still fit in ``capacity`` (never
    waiting for one: the network is better busy with fewer faces than idle). ``capacity`` 0: the
    first photo alone."""
    group: list[tuple[_Waiting, PreparedPhoto | None]] = []
    faces = 0
    while preparing and (
        not group or (capacity > 0 and len(group) < most and _fits(preparing[0], capacity - faces))
    ):
        waiting = preparing.popleft()
        read_ahead()
        assert waiting.future is not None
        try:
            prepared: PreparedPhoto = waiting.future.result()  # type: ignore[assignment]
        except Exception as exc:  # this input's failure; the others go on
            waiting.failure, waiting.future = waiting.fail(exc), None
            group.append((waiting, None))
            continue
        group.append((waiting, prepared))
        faces += len(prepared.faces)
    return group


def _fits(waiting: _Waiting, room: int) -> bool:
    """Whether a photo is prepared and its faces fit in ``room`` more (a failed one always fits)."""
    if waiting.future is None or not waiting.future.done():
        return False
    if waiting.future.exception() is not None:
        return True
    prepared: PreparedPhoto = waiting.future.result()  # type: ignore[assignment]
    return len(prepared.faces) <= room


def _restore(
    resolver: FaceSuperResolver,
    group: list[tuple[_Waiting, PreparedPhoto | None]],
    finish: _Finish,
    pool: ThreadPoolExecutor,
    return_steps: bool,
) -> list[_Waiting]:
    """The group's faces through the network (one :meth:`~FaceSuperResolver.restore` call), then each
    photo's finish submitted to the pool. If the shared call fails, each photo is tried alone, so
    that only the photo at fault fails."""
    photos = [prepared for _, prepared in group if prepared is not None]
    restored: list[RestoredPhoto | Exception] = []
    if len(photos) == 1:
        restored = [_restore_alone(resolver, photos[0], return_steps)]
    elif photos:
        try:
            restored = list(resolver.restore(photos, return_steps=return_steps))
        except Exception:  # e.g. MemoryError of the shared batch: only the photo at fault fails
            restored = [_restore_alone(resolver, photo, return_steps) for photo in photos]
    outputs = iter(restored)
    for waiting, prepared in group:
        if prepared is None:
            continue
        result = next(outputs)
        if isinstance(result, Exception):
            waiting.failure, waiting.future = waiting.fail(result), None
        else:
            waiting.future = pool.submit(finish, result)
    return [waiting for waiting, _ in group]


def _restore_alone(
    resolver: FaceSuperResolver, photo: PreparedPhoto, return_steps: bool
) -> RestoredPhoto | Exception:
    try:
        (restored,) = resolver.restore([photo], return_steps=return_steps)
    except Exception as exc:
        return exc
    return restored


def _is_done(waiting: _Waiting) -> bool:
    return waiting.future is None or waiting.future.done()


def _outcome(waiting: _Waiting) -> EnhanceOutcome:
    if waiting.failure is not None:
        return waiting.failure
    assert waiting.future is not None
    try:
        return waiting.future.result()  # type: ignore[return-value]
    except Exception as exc:
        return waiting.fail(exc)
