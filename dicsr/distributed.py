"""Restore the faces of many photos on a Ray cluster, with Ray Data (optional extra ``dicsr[ray]``).

>>> from dicsr.distributed import enhance_dataset
>>> rows = enhance_dataset("s3://bucket/photos/", "/mnt/shared/restored",          # doctest: +SKIP
...                        model="dicgan-celeba", actors=(2, 8), gpus_per_actor=0.5)
>>> failed = rows.filter(lambda row: row["error"] is not None).take_all()    # doctest: +SKIP

The photos are read as bytes by Ray (``ray.data.read_binary_files``: any file system Ray reads, local
paths or ``s3://``, ``gs://``, ...) and decoded inside the workers, where each actor of a pool holds
one :class:`~dicsr.pipeline.FaceSuperResolver` (the model is loaded once per actor). Each restored
photo (and its landmarks JSON when asked) is written into the destination under the names
``dicsr enhance`` gives it (docs/cli.md, *Output names*), atomically: a retried task never leaves a
half-written file. The destination is a folder every worker can write (a shared mount on a
cluster): object stores cannot rename, so they cannot take an atomic write.

The returned :class:`ray.data.Dataset` is lazy, like every Ray dataset: the job runs while it is
consumed (``take_all()``, ``iter_rows()``, ``materialize()``), once per consumption. It holds one row
per photo (:data:`RESULT_COLUMNS`); a photo that fails is a row with its error, never dropped.

Importing ``dicsr`` never imports Ray; this module imports it on first use.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicsr.errors import InvalidInputError

if TYPE_CHECKING:  # pragma: no cover - for the type checker only
    import pyarrow
    import ray.data

    from dicsr.pipeline import EnhanceResult

__all__ = [
    "RESULT_COLUMNS",
    "PhotoJob",
    "actor_pool_arguments",
    "enhance_dataset",
    "enhance_jobs",
    "plan_jobs",
    "require_ray",
]

#: The columns of the returned dataset, one row per photo:
#:
#: * ``path``: the photo, as its :class:`PhotoJob` names it;
#: * ``output``: its restored photo's file;
#: * ``faces_restored``, ``faces_left_alone``: faces restored, and faces the selection left as they
#:   are (``left_alone_reasons``: the reason of each, as :attr:`dicsr.pipeline.SkippedFace.reason`);
#: * ``written``: the kinds of output written (``"restored photo"``, ``"landmarks JSON"``); empty
#:   for a photo whose outputs all existed (without ``overwrite``) or that failed;
#: * ``error_type``, ``error``: the error's class name (e.g. ``"InvalidImageError"``) and message,
#:   or null.
RESULT_COLUMNS = ("path", "output", "faces_restored", "faces_left_alone", "left_alone_reasons", "written",
                  "error_type", "error")

#: Ray 2.9 brought ``map_batches(concurrency=...)`` and deprecated ``compute=ActorPoolStrategy(...)``;
#: 2.51 turned that round. Each Ray of the supported range (setup.cfg, extra ``ray``) gets its form.
_COMPUTE_STRATEGY_IS_CURRENT_FROM = (2, 51)

#: CPUs reserved by each read task: reading bytes is light, and a pool whose actors hold every CPU
#: would leave none for the reads that feed it (Ray Data then waits for ever).
_READ_CPUS = 0.25


@dataclass(frozen=True)
class PhotoJob:
    """One photo of a job and where its outputs go.

    Attributes:
        source: the photo as Ray reads it: a local path, or a URI of a file system Ray reads
            (``s3://bucket/key.jpg``). Rows and the landmarks JSON name the photo by it.
        output: the restored photo's file (its suffix chooses the format).
        landmarks: the landmarks JSON's file, or ``None`` for none.
    """

    source: str
    output: Path
    landmarks: Path | None = None


def require_ray() -> Any:
    """The ``ray`` module, or :class:`~dicsr.errors.InvalidInputError` saying how to install it."""
    try:
        import ray
        import ray.data  # the extra is ray[data], not bare ray
    except ImportError:
        raise InvalidInputError(
            "running on Ray needs the ray[data] package: pip install 'dicsr[ray]'"
        ) from None
    return ray


def plan_jobs(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    destination: str | os.PathLike[str],
    *,
    ext: str | None = None,
    save_landmarks: bool = False,
) -> list[PhotoJob]:
    """The photos ``sources`` name and their outputs in ``destination``, named as ``dicsr enhance`` does.

    A source is a photo or a folder (searched recursively for the suffixes the command reads),
    local or a URI (``s3://bucket/photos/``); all sources must be on one file system.

    Raises:
        InvalidInputError: a source that does not exist, names no photo, or two photos that would
            write one file.
    """
    from pyarrow import fs as pafs

    from dicsr._photo_files import IMAGE_SUFFIXES, check_output_format, plan_outputs

    check_output_format(ext)
    found: list[tuple[str, Path]] = []  # (source, where below its argument)
    for source in [sources] if isinstance(sources, (str, os.PathLike)) else list(sources):
        spelled = os.fspath(source)
        filesystem, path = _filesystem_and_path(spelled)
        info = filesystem.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise InvalidInputError(f"input {spelled}: no such file or folder")
        if info.type != pafs.FileType.Directory:
            found.append((spelled, Path(info.base_name)))
            continue
        selector = pafs.FileSelector(path, recursive=True)
        for entry in sorted(filesystem.get_file_info(selector), key=lambda entry: entry.path):
            relative = Path(entry.path).relative_to(path)
            hidden = any(part.startswith(".") for part in relative.parts)  # dicsr's bookkeeping too
            if entry.type == pafs.FileType.File and not hidden and relative.suffix.lower() in IMAGE_SUFFIXES:
                found.append((spelled.rstrip("/") + "/" + relative.as_posix(), relative))
    if not found:
        raise InvalidInputError(f"no input images found in: {' '.join(map(os.fspath, _as_list(sources)))}")
    plans = plan_outputs([relative for _, relative in found], [Path(source) for source, _ in found],
                         Path(destination), ext=ext, landmarks=save_landmarks, compare=False, faces=False)
    return [PhotoJob(source, plan.image, plan.landmarks)
            for (source, _), plan in zip(found, plans, strict=True)]


def enhance_dataset(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    destination: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] = "dic-celeba",
    ext: str | None = None,
    save_landmarks: bool = False,
    **options: Any,
) -> ray.data.Dataset:
    """Restore the faces of every photo ``sources`` name into ``destination``, on Ray.

    ``plan_jobs(sources, destination, ext=..., save_landmarks=...)`` then :func:`enhance_jobs`: see
    both for the arguments (``options`` are :func:`enhance_jobs`'s keywords).

    Returns:
        A lazy dataset of one row per photo (:data:`RESULT_COLUMNS`); the job runs as it is consumed.
    """
    jobs = plan_jobs(sources, destination, ext=ext, save_landmarks=save_landmarks)
    return enhance_jobs(jobs, model=model, **options)


def enhance_jobs(
    jobs: Sequence[PhotoJob],
    *,
    model: str | os.PathLike[str] = "dic-celeba",
    actors: tuple[int, int] = (1, 1),
    cpus_per_actor: float = 1.0,
    gpus_per_actor: float = 0.0,
    photos_per_batch: int = 4,
    threads_per_actor: int | None = None,
    overwrite: bool = False,
    aligned: bool = False,
    address: str | None = None,
    **resolver_options: Any,
) -> ray.data.Dataset:
    """Restore the photos of ``jobs`` on Ray and write their outputs; rows say how each went.

    Args:
        jobs: the photos and their outputs (:func:`plan_jobs` makes them from folders and URIs).
        model: what each actor loads, as for :meth:`FaceSuperResolver.from_pretrained
            <dicsr.pipeline.FaceSuperResolver.from_pretrained>`: a zoo name, ``hf-hub:org/repo``, or a
            model folder every node can read.
        actors: the pool's smallest and largest number of actors (Ray Data scales between them).
        cpus_per_actor: CPUs each actor reserves; fractions allowed. On a small machine keep the
            pool's total below the machine's CPUs: the reads need some too.
        gpus_per_actor: GPUs each actor reserves; a fraction (``0.5``) shares a GPU between actors.
        photos_per_batch: photos handed to an actor at a time.
        threads_per_actor: PyTorch intra-op threads in each actor; ``None``: Ray's choice (the CPUs
            the actor reserves, at least 1). Float convolutions on a CPU add up in an order that
            depends on the thread count: outputs are bitwise those of a local run with as many
            threads (``OMP_NUM_THREADS``), and may differ from others by a level in a few pixels.
        overwrite: replace existing outputs (default: a photo whose outputs all exist is skipped, and
            of the others only the missing outputs are written).
        aligned: the photos are face crops already (no detection).
        address: the Ray cluster to connect to when Ray is not initialised yet (``"auto"``,
            ``"ray://host:10001"``; ``None``: ``$RAY_ADDRESS``, else a new local Ray). An initialised
            Ray is used as it is.
        **resolver_options: passed to ``FaceSuperResolver.from_pretrained`` in every actor
            (``device``, ``dtype``, ``upscale``, ``selection``, ``detector``, ``detector_weights``,
            ``batch_size``, ``max_pixels``, ...).

    Returns:
        A lazy dataset of one row per job (:data:`RESULT_COLUMNS`), in no particular order.

    Raises:
        InvalidInputError: Ray is not installed, an option out of range, or jobs on several file
            systems.
    """
    _check_pool(actors, cpus_per_actor, gpus_per_actor, photos_per_batch, threads_per_actor)
    if not jobs:
        raise InvalidInputError("no photos to restore: jobs is empty")
    ray = require_ray()
    filesystem, read_paths = _read_paths(job.source for job in jobs)
    if len(set(read_paths)) != len(read_paths):
        raise InvalidInputError("jobs name one photo twice")
    if not ray.is_initialized():
        ray.init(address=address)
    by_read_path = {read: (job.source, str(job.output), None if job.landmarks is None else str(job.landmarks))
                    for read, job in zip(read_paths, jobs, strict=True)}
    photos = ray.data.read_binary_files(read_paths, include_paths=True, filesystem=filesystem,
                                        num_cpus=_READ_CPUS)
    return photos.map_batches(
        _PhotoRestorer,
        batch_size=photos_per_batch,
        batch_format="pyarrow",
        fn_constructor_kwargs={
            "model": os.fspath(model), "resolver_options": {**resolver_options, "progress": False},
            "jobs": by_read_path, "overwrite": overwrite, "aligned": aligned, "threads": threads_per_actor,
        },
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor,
        **actor_pool_arguments(ray.__version__, actors),
    )


def actor_pool_arguments(ray_version: str, actors: tuple[int, int]) -> dict[str, Any]:
    """``map_batches``'s keyword for an actor pool of ``actors`` (min, max), as ``ray_version`` spells it."""
    low, high = actors
    if _version(ray_version) >= _COMPUTE_STRATEGY_IS_CURRENT_FROM:
        from ray.data import ActorPoolStrategy

        return {"compute": ActorPoolStrategy(min_size=low, max_size=high)}
    return {"concurrency": (low, high)}


def _version(text: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _check_pool(actors: Any, cpus: Any, gpus: Any, photos_per_batch: Any, threads: Any) -> None:
    if (not isinstance(actors, (tuple, list)) or len(actors) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in actors)
            or not 1 <= actors[0] <= actors[1]):
        raise InvalidInputError(
            f"actors must be (min, max) whole numbers with 1 <= min <= max, got {actors!r}"
        )
    for name, value in (("cpus_per_actor", cpus), ("gpus_per_actor", gpus)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise InvalidInputError(f"{name} must be a number >= 0 (fractions allowed), got {value!r}")
    if cpus == 0 and gpus == 0:
        raise InvalidInputError(
            "an actor needs some CPU or GPU: cpus_per_actor and gpus_per_actor are both 0"
        )
    for name, value in (("photos_per_batch", photos_per_batch), ("threads_per_actor", threads)):
        if value is None and name == "threads_per_actor":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"{name} must be a whole number >= 1, got {value!r}")


def _as_list(sources: Any) -> list[Any]:
    return [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)


def _filesystem_and_path(source: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The file system of ``source`` and its path there (local paths made absolute)."""
    from pyarrow import fs as pafs

    if "://" not in source:
        return pafs.LocalFileSystem(), os.path.abspath(source)
    try:
        return pafs.FileSystem.from_uri(source)
    except (ValueError, OSError) as exc:
        raise InvalidInputError(f"input {source}: cannot be read ({exc})") from exc


def _read_paths(sources: Any) -> tuple[pyarrow.fs.FileSystem, list[str]]:
    """One file system for every source, and each source's path on it (what Ray's rows will say)."""
    filesystem, paths = None, []
    for source in sources:
        this, path = _filesystem_and_path(source)
        if filesystem is None:
            filesystem = this
        elif this.type_name != filesystem.type_name:
            raise InvalidInputError(
                f"the photos are on several file systems ({filesystem.type_name} and {this.type_name}, "
                f"{source}); run one job per file system"
            )
        paths.append(path)
    return filesystem, paths


class _PhotoRestorer:
    """The callable class of ``map_batches``: one resolver per actor, built once, then batch after batch."""

    def __init__(self, model: str, resolver_options: Mapping[str, Any],
                 jobs: Mapping[str, tuple[str, str, str | None]], overwrite: bool, aligned: bool,
                 threads: int | None) -> None:
        import torch

        from dicsr.pipeline import FaceSuperResolver

        if threads is not None:
            torch.set_num_threads(threads)

        self._resolver = FaceSuperResolver.from_pretrained(model, **resolver_options)
        if not aligned:
            self._resolver.load_detector()  # now, not on the first photo: every photo sees one setup
        self._jobs = jobs
        self._overwrite = overwrite
        self._aligned = aligned

    def __call__(self, batch: pyarrow.Table) -> pyarrow.Table:
        import pyarrow

        rows: list[dict[str, Any]] = []
        # (row, bytes, photo file, landmarks file) of the photos with an output to write
        todo: list[tuple[dict[str, Any], bytes, Path | None, Path | None]] = []
        for read_path, data in zip(batch.column("path").to_pylist(), batch.column("bytes").to_pylist(),
                                   strict=True):
            source, output, landmarks = self._jobs[read_path]
            row = {"path": source, "output": output, "faces_restored": 0, "faces_left_alone": 0,
                   "left_alone_reasons": [], "written": [], "error_type": None, "error": None}
            rows.append(row)
            photo_file, landmarks_file = self._wanted(output), self._wanted(landmarks)
            # Without one, every output exists: the photo is skipped, as the command skips it.
            if photo_file is not None or landmarks_file is not None:
                todo.append((row, data, photo_file, landmarks_file))
        outcomes = self._restore([data for _, data, _, _ in todo])
        for (row, _, photo_file, landmarks_file), outcome in zip(todo, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                outcome = _attempt(self._write, row["path"], outcome, photo_file, landmarks_file)
            if isinstance(outcome, BaseException):
                row.update(error_type=type(outcome).__name__, error=str(outcome))
            else:
                row.update(outcome)
        return pyarrow.Table.from_pylist(rows, schema=_result_schema())

    def _wanted(self, path: str | None) -> Path | None:
        """``path`` if it is to be written: asked for, and missing (or ``overwrite``)."""
        if path is None or (not self._overwrite and os.path.exists(path)):
            return None
        return Path(path)

    def _restore(self, photos: list[bytes]) -> list[EnhanceResult | BaseException]:
        """Each photo's result, or the exception it raised (the others go on). ``enhance_many``
        overlaps the photos' decoding and pasting with the network and gives ``enhance``'s results."""
        from dicsr.pipeline import EnhanceFailure

        return [outcome.error if isinstance(outcome, EnhanceFailure) else outcome
                for outcome in self._resolver.enhance_many(photos, aligned=self._aligned)]

    @staticmethod
    def _write(
        source: str, result: EnhanceResult, photo: Path | None, landmarks: Path | None
    ) -> dict[str, Any]:
        """Write the outputs asked for, the photo last (as the command: it means "done"); the row's counts."""
        from dicsr._files import atomic_write_text
        from dicsr._photo_files import LANDMARKS, PHOTO, landmarks_record
        from dicsr.image import save_image

        written = []
        if landmarks is not None:
            atomic_write_text(landmarks, json.dumps(landmarks_record(source, result), indent=2))
            written.append(LANDMARKS)
        if photo is not None and result.image is not None:  # (paste_back: there always is an image)
            save_image(result.image, photo)
            written.append(PHOTO)
        reasons = [face.reason for face in result.skipped_faces]
        return {"faces_restored": result.num_faces, "faces_left_alone": len(reasons),
                "left_alone_reasons": reasons, "written": written}


def _attempt(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``, or the exception it raised (MemoryError included)."""
    try:
        return function(*args, **kwargs)
    except Exception as exc:
        return exc


def _result_schema() -> pyarrow.Schema:
    import pyarrow

    return pyarrow.schema([
        ("path", pyarrow.string()), ("output", pyarrow.string()), ("faces_restored", pyarrow.int64()),
        ("faces_left_alone", pyarrow.int64()), ("left_alone_reasons", pyarrow.list_(pyarrow.string())),
        ("written", pyarrow.list_(pyarrow.string())), ("error_type", pyarrow.string()),
        ("error", pyarrow.string()),
    ])
