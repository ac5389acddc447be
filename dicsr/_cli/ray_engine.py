"""``dicsr enhance --engine ray``: the same inputs, outputs and summary as the local run, restored by
the actors of a Ray cluster (:mod:`dicsr.distributed`).

Everything before the photos are restored is the local run's: the options, the inputs, their output
names and every check that stops a run are made on this machine first. Then the photos whose
outputs are missing go to Ray, and each row that comes back is counted in the summary as the local
run counts a photo.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dicsr import errors
from dicsr._cli.interrupts import Terminated
from dicsr._cli.progress import progress_bar
from dicsr._cli.summary import RunSummary, failure_reason
from dicsr._photo_files import OutputFiles, OutputRecord
from dicsr.errors import InvalidInputError

__all__ = ["add_engine_options", "check_engine_options", "run_on_ray"]

logger = logging.getLogger("dicsr.cli")

#: What ``--engine ray`` does not write yet; it refuses them rather than leave them out silently.
_LOCAL_ONLY = {"save_faces": "--save-faces", "compare": "--compare", "draw_landmarks": "--draw-landmarks"}

_RAY_OPTIONS = {"ray_address": "--ray-address", "actors": "--actors", "gpus_per_actor": "--gpus-per-actor",
                "cpus_per_actor": "--cpus-per-actor", "threads_per_actor": "--threads-per-actor"}


def add_engine_options(enhance: argparse.ArgumentParser) -> None:
    """The options choosing where the photos are restored: here, or on a Ray cluster."""
    group = enhance.add_argument_group("engine", "where the photos are restored (docs/scaling.md)")
    group.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local: in this process (default); ray: by the actors of a Ray cluster "
                            "(pip install 'dicsr[ray]')")
    group.add_argument("--ray-address", default=None, metavar="ADDR",
                       help="the Ray cluster to use (e.g. auto, ray://head:10001); default: $RAY_ADDRESS, "
                            "else a Ray started on this machine for the run")
    group.add_argument("--actors", nargs=2, type=int, default=None, metavar=("MIN", "MAX"),
                       help="size of the pool of actors, each holding one model (default: 1 and up to "
                            "half the cluster's CPUs)")
    group.add_argument("--gpus-per-actor", type=float, default=None, metavar="F",
                       help="GPUs each actor reserves; a fraction such as 0.5 shares a GPU (default 0)")
    group.add_argument("--cpus-per-actor", type=float, default=None, metavar="F",
                       help="CPUs each actor reserves (default: the cluster's CPUs shared by MAX actors, "
                            "at most 1, leaving some for reading)")
    group.add_argument("--threads-per-actor", type=int, default=None, metavar="N",
                       help="PyTorch threads in each actor (default: its CPUs, at least 1); outputs are "
                            "bitwise those of a local run with as many threads")


def check_engine_options(args: argparse.Namespace) -> None:
    """Refuse engine options out of range or without ``--engine ray``, and a missing Ray, up front."""
    if args.engine != "ray":
        given = [flag for name, flag in _RAY_OPTIONS.items() if getattr(args, name) is not None]
        if given:
            raise InvalidInputError(f"{', '.join(given)} go(es) with --engine ray")
        return
    refused = [flag for name, flag in _LOCAL_ONLY.items() if getattr(args, name)]
    if refused:
        raise InvalidInputError(
            f"{', '.join(refused)}: not available with --engine ray yet (use --engine local)"
        )
    if args.actors is not None and not 1 <= args.actors[0] <= args.actors[1]:
        low, high = args.actors
        raise InvalidInputError(
            f"--actors MIN MAX must be whole numbers with 1 <= MIN <= MAX, got {low} {high}"
        )
    if args.threads_per_actor is not None and args.threads_per_actor < 1:
        raise InvalidInputError(f"--threads-per-actor must be >= 1, got {args.threads_per_actor}")
    for name in ("gpus_per_actor", "cpus_per_actor"):
        value = getattr(args, name)
        if value is not None and not 0 <= value < float("inf"):
            raise InvalidInputError(f"{_RAY_OPTIONS[name]} must be a number >= 0, got {value}")
    from dicsr.distributed import require_ray

    require_ray()


def run_on_ray(
    jobs: Sequence[tuple[Path, OutputFiles]], record: OutputRecord, args: argparse.Namespace,
    summary: RunSummary, resolver_arguments: dict[str, Any],
) -> int:
    """Restore ``jobs`` (each input and its planned outputs) on Ray; print the summary and return the
    exit code, as the local run does."""
    from dicsr.distributed import PhotoJob, enhance_jobs

    to_run: list[PhotoJob] = []
    for source, outputs in jobs:
        if not outputs.missing() and not args.overwrite:
            summary.skipped += 1
            logger.info("skip %s: its outputs exist (use --overwrite)", source)
            continue
        for path in (outputs.landmarks, outputs.image):  # in the order they are written
            if path is not None and (args.overwrite or not path.exists()):
                record.add(path)  # before it is written, as the local run does
        to_run.append(PhotoJob(str(source), outputs.image, outputs.landmarks))
    order = {job.source: index for index, job in enumerate(to_run)}
    rows: list[dict[str, Any]] = []
    try:
        if to_run:
            with _ray_for_the_run(args) as ray:
                actors, cpus, gpus = _pool(ray, args)
                logger.info("Ray: %d to %d actor(s), %.2f CPU and %.2f GPU each", *actors, cpus, gpus)
                dataset = enhance_jobs(
                    to_run, model=args.model, actors=actors, cpus_per_actor=cpus, gpus_per_actor=gpus,
                    threads_per_actor=args.threads_per_actor, overwrite=args.overwrite, aligned=args.aligned,
                    **resolver_arguments,
                )
                with progress_bar(len(to_run), enabled=not args.no_progress) as advance:
                    for row in dataset.iter_rows():
                        rows.append(row)
                        advance()
    except KeyboardInterrupt as exc:
        summary.interrupted_by = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        reported = {row["path"] for row in rows}
        summary.left = [Path(job.source) for job in to_run if job.source not in reported]
    for row in sorted(rows, key=lambda row: order[row["path"]]):
        source = Path(row["path"])
        if row["error_type"] is not None:
            error = _remote_error(row["error_type"], row["error"])
            summary.failures.append((source, failure_reason(error, source)))
        else:
            summary.add_done(row["faces_restored"], set(row["written"]), left_alone=row["left_alone_reasons"])
    for line in summary.lines():
        print(line)
    return summary.exit_code()


@contextlib.contextmanager
def _ray_for_the_run(args: argparse.Namespace) -> Iterator[Any]:
    """Ray connected to ``--ray-address`` (or ``$RAY_ADDRESS``), or a Ray started on this machine for
    the run and stopped after it; quiet unless ``-v``."""
    from dicsr.distributed import require_ray

    ray = require_ray()
    verbose = logger.isEnabledFor(logging.INFO)
    address = args.ray_address or os.environ.get("RAY_ADDRESS")
    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {"logging_level": logging.INFO if verbose else logging.WARNING,
                                   "log_to_driver": verbose}
        if address:
            ray.init(address=address, **options)
        else:  # a Ray of this machine's size, for this run only
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **options)
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False  # dicsr's own bar counts photos
    logging.getLogger("ray.data").setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _pool(ray: Any, args: argparse.Namespace) -> tuple[tuple[int, int], float, float]:
    """(min, max) actors, CPUs and GPUs per actor: the options, or sized to the cluster."""
    total_cpus = float(ray.cluster_resources().get("CPU", 1.0))
    actors = tuple(args.actors) if args.actors is not None else (1, max(1, int(total_cpus) // 2))
    gpus = args.gpus_per_actor or 0.0
    cpus = args.cpus_per_actor
    if cpus is None:  # every actor fits at once, with half a CPU left for the reads that feed them
        cpus = max(0.1, min(1.0, (total_cpus - 0.5) / actors[1]))
    return (actors[0], actors[1]), cpus, gpus


def _remote_error(type_name: str, message: str) -> BaseException:
    """An exception like the one a worker reported by name and message, for :func:`failure_reason`
    (which words the reason by its type, as the local run does)."""
    error_class: Any = getattr(errors, type_name, None) or getattr(builtins, type_name, None)
    if not (isinstance(error_class, type) and issubclass(error_class, BaseException)):
        error_class = type(type_name, (Exception,), {})
    error = error_class.__new__(error_class)  # without its __init__: some take more than a message
    error.args = (message,)
    return error
