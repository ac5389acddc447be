"""``dicsr enhance``: its options, the run over the inputs, and the summary it prints."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeGuard

from dicsr._cli.inputs import ALLOW_FLAG, Ignored, collect_inputs, unusable_reason
from dicsr._cli.interrupts import Terminated
from dicsr._cli.progress import progress_bar
from dicsr._cli.ray_engine import add_engine_options, check_engine_options, run_on_ray
from dicsr._cli.summary import RunSummary, failure_reason
from dicsr._files import remove_abandoned_temporaries
from dicsr._photo_files import (
    COMPARE,
    FACES,
    LANDMARKS,
    OUTPUT_RECORD,
    PHOTO,
    OutputFiles,
    OutputRecord,
    check_inputs_are_not_replaced,
    check_output_format,
    landmarks_record,
    plan_outputs,
)
from dicsr.engines import ENGINES
from dicsr.errors import CheckpointError, DicsrError, InvalidInputError, WeightsUnavailableError

__all__ = ["add_enhance_parser"]

logger = logging.getLogger("dicsr.cli")


def add_enhance_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``enhance`` sub-command to the ``dicsr`` parser's sub-parsers and return it.

    Where the weights come from (``--offline``, ``--mirror``) is added by ``dicsr.cli``, which shares
    those options with ``download``.
    """
    enhance = sub.add_parser("enhance", help="restore the faces in photos")
    enhance.add_argument("inputs", nargs="+", help="image files, folders (recursive) or glob patterns")
    enhance.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    enhance.add_argument("-m", "--model", default="dic-celeba",
                         help="zoo name, hf-hub:org/repo[@rev], model folder or checkpoint")
    enhance.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    enhance.add_argument("--dtype", default="float32", help="float32, float16 or bfloat16")
    enhance.add_argument("--channels-last", action="store_true",
                         help="NHWC memory format (with --dtype bfloat16: the CPU fast path)")
    enhance.add_argument("--backend", default="torch", choices=ENGINES,
                         help="what runs the network: eager PyTorch (default), torch.compile (compiles on "
                              "first use), or ONNX Runtime (CPU, float32; needs dicsr[onnx])")
    enhance.add_argument("--upscale", type=float, default=None,
                         help="output scale of the photo (default: the model's scale)")
    enhance.add_argument("--max-face-size", type=float, default=None, metavar="PX",
                         help="restore faces whose crop is at most PX input pixels (default: twice the "
                              "model's input, where it still adds detail; larger faces are left as they are)")
    enhance.add_argument("--all-faces", action="store_true",
                         help="restore faces of every size (duplicates and non-faces are still left alone)")
    enhance.add_argument("--only-center-face", action="store_true")
    enhance.add_argument("--max-faces", type=int, default=None)
    enhance.add_argument("--aligned", action="store_true", help="inputs are already face crops")
    enhance.add_argument("--detector", default="mobile0.25", choices=["mobile0.25", "resnet50"])
    enhance.add_argument("--detector-weights", type=Path, default=None, help="local detector weights")
    enhance.add_argument("--score-threshold", type=float, default=None,
                         help="minimum detector score (default 0.7, calibrated: docs/face-crops.md)")
    enhance.add_argument("--batch-size", type=int, default=None)
    enhance.add_argument("--max-pixels", type=int, default=None,
                         help="refuse inputs with more pixels (decompression-bomb guard; 0 = no limit; "
                              "default 89,478,485)")
    enhance.add_argument("--max-output-pixels", type=int, default=None,
                         help="refuse restored photos with more pixels; without --upscale the scale is "
                              "lowered to fit (0 = no limit; default 64,000,000)")
    enhance.add_argument("--strength", type=float, default=1.0, metavar="S",
                         help="0..1: restored faces blend with the plain upscale (0: the plain upscale; "
                              "default 1)")
    enhance.add_argument("--back-projection", action=argparse.BooleanOptionalAction, default=True,
                         help="make each restored face agree with the photo at low resolution (default: on)")
    enhance.add_argument("--landmark-mask", action=argparse.BooleanOptionalAction, default=True,
                         help="paste faces through a face-shaped mask from the 68 landmarks the network "
                              "predicts (DIC; default: on)")
    enhance.add_argument("--luminance-only", action="store_true",
                         help="restored faces change only the luma, keeping the photo's colour (old photos)")
    enhance.add_argument("--save-faces", action="store_true", help="also write each restored face")
    enhance.add_argument("--save-landmarks", action="store_true",
                         help="write a JSON per image with boxes and landmarks in photo coordinates")
    enhance.add_argument("--draw-landmarks", action="store_true", help="draw landmarks on the output")
    enhance.add_argument("--compare", action="store_true", help="also write input|output side by side")
    enhance.add_argument("--ext", default=None, help="output format, e.g. png (default: keep the input's)")
    enhance.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip)")
    enhance.add_argument(ALLOW_FLAG, action="store_true",
                         help="let -o be (inside) an input folder; dicsr's outputs there are never read as "
                              "inputs and no input is ever replaced")
    enhance.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_engine_options(enhance)
    enhance.set_defaults(handler=run_enhance)
    return enhance


def run_enhance(args: argparse.Namespace) -> int:
    """Run ``dicsr enhance`` with parsed arguments; returns the exit code.

    Everything that can stop the whole run is checked first, in this order, and reported once:
    the options, the output folder, the inputs and the names of their outputs, writing into the
    output folder, the model, the face detector. Then each input is processed on its own: its
    failure is listed and the run goes on.
    """
    check_engine_options(args)
    limits = {**_pixel_limit_option("max_pixels", args.max_pixels),
              **_pixel_limit_option("max_output_pixels", args.max_output_pixels)}
    _paste_options(args)  # a bad --strength stops the run before the output folder is made
    check_output_format(args.ext)
    created = not _existing_output_folder(args.output)
    record = OutputRecord(args.output)
    found = collect_inputs(args.inputs, output=args.output, allow_output_in_input=args.allow_output_in_input,
                           earlier_outputs=record.real_paths())
    if not found.images:
        raise no_inputs_error(args.inputs, found.ignored)
    inputs = found.images
    plans = plan_outputs(
        [image.relative for image in inputs], [image.path for image in inputs], args.output, ext=args.ext,
        landmarks=args.save_landmarks, compare=args.compare, faces=args.save_faces,
    )
    check_inputs_are_not_replaced(plans, [image.path for image in inputs])
    _prepare_output_folder(args.output)
    try:
        resolver = _build_resolver(args, limits)
    except BaseException:
        if created:  # a run that stops before its first photo leaves no empty folder behind
            with contextlib.suppress(OSError):
                args.output.rmdir()
        raise
    for folder in sorted({plan.image.parent for plan in plans}):
        for removed in remove_abandoned_temporaries(folder):
            logger.info("removed %s, left by an interrupted run", removed)
    summary = RunSummary(ignored=found.ignored)
    for entry in found.ignored:
        logger.info("ignored %s: %s", entry.path, entry.reason)
    jobs = [(image.path, plan) for image, plan in zip(inputs, plans, strict=True)]
    if args.engine == "ray":  # the same jobs, summary and exit code; each Ray actor loads its own model
        del resolver
        return run_on_ray(jobs, record, args, summary, resolver_arguments(args, limits))
    # Inputs whose outputs all exist are skipped; the others go through enhance_many, which prepares
    # the next photos while the network restores the current one (same results as enhance).
    wanted = [bool(args.overwrite or outputs.missing()) for _, outputs in jobs]
    outcomes = resolver.enhance_many(
        (source for (source, _), todo in zip(jobs, wanted, strict=True) if todo), aligned=args.aligned
    )
    done = 0
    try:
        with contextlib.closing(outcomes), progress_bar(len(jobs), enabled=not args.no_progress) as advance:
            for (source, outputs), todo in zip(jobs, wanted, strict=True):
                if todo:
                    _write_one(next(outcomes), source, outputs, record, args, summary)
                else:
                    summary.skipped += 1
                    logger.info("skip %s: its outputs exist (use --overwrite)", source)
                done += 1
                advance()
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated): account for every input
        summary.interrupted_by = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        summary.left = [source for source, _ in jobs[done:]]
        # The interrupted write cleans up after itself, unless the signal came just as its
        # temporary file was created; nothing of ours is being written any more.
        if done < len(jobs):
            remove_abandoned_temporaries(jobs[done][1].image.parent, including_this_process=True)
    for line in summary.lines():
        print(line)
    return summary.exit_code()


def _write_one(
    outcome: Any, source: Path, outputs: OutputFiles, record: OutputRecord, args: argparse.Namespace,
    summary: RunSummary,
) -> None:
    """Write the outputs of one restored input (or list its failure) and count it in ``summary``;
    its failure never stops the run."""
    from dicsr.pipeline import EnhanceFailure

    try:
        if isinstance(outcome, EnhanceFailure):
            raise outcome.error
        written = _write_outputs(outcome, source, outputs, record, args)
    except Exception as exc:  # MemoryError included: listed, and the next input goes on
        summary.failures.append((source, failure_reason(exc, source)))
        logger.debug("failed %s", source, exc_info=True)
        return
    summary.add_done(outcome.num_faces, written, left_alone=[face.reason for face in outcome.skipped_faces])


def _existing_output_folder(folder: Path) -> bool:
    """Whether ``-o`` exists (then as a folder); any other state of it stops the run."""
    try:
        info = os.stat(folder)
    except (FileNotFoundError, NotADirectoryError):  # to be created (and then said why not)
        return False
    except OSError as exc:
        raise InvalidInputError(f"-o/--output {folder}: {unusable_reason(exc, folder)}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise InvalidInputError(f"-o/--output {folder} is a file, not a folder")
    return True


def _prepare_output_folder(folder: Path) -> None:
    """Create ``-o`` and make sure files can be written into it, or stop the run (once)."""
    from dicsr._files import temporary_sibling

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with temporary_sibling(folder / OUTPUT_RECORD):  # can we write here at all?
            pass
    except OSError as exc:
        raise InvalidInputError(
            f"-o/--output {folder}: cannot write there ({unusable_reason(exc, Path(exc.filename or folder))})"
        ) from exc


def resolver_arguments(args: argparse.Namespace, limits: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``FaceSuperResolver.from_pretrained(args.model, ...)`` the options ask for
    (also what each Ray actor builds its resolver from)."""
    from dicsr.pipeline import DetectorSpec, SelectionPolicy

    offline = True if args.offline else None
    detector = DetectorSpec(  # without --score-threshold: the spec's calibrated default
        args.detector, weights=args.detector_weights, offline=offline, mirror=args.mirror,
        **({} if args.score_threshold is None else {"score_threshold": args.score_threshold}),
    )
    selection = SelectionPolicy(max_face_size=args.max_face_size, all_sizes=args.all_faces,
                                max_faces=args.max_faces, only_center_face=args.only_center_face)
    return dict(device=args.device, dtype=args.dtype, channels_last=args.channels_last, detector=detector,
                offline=offline, mirror=args.mirror, progress=not args.no_progress, upscale=args.upscale,
                batch_size=args.batch_size, selection=selection, paste=_paste_options(args),
                engine=args.backend, **limits)


def _build_resolver(args: argparse.Namespace, limits: dict[str, Any]) -> Any:
    """Load the model and (unless --aligned) the face detector, or stop the run with one typed line."""
    from dicsr.pipeline import FaceSuperResolver

    try:
        resolver = FaceSuperResolver.from_pretrained(args.model, **resolver_arguments(args, limits))
    except DicsrError:
        raise
    except Exception as exc:  # a hostile or broken model folder must not end in a traceback
        logger.debug("loading %s failed", args.model, exc_info=True)
        reason = failure_reason(exc, Path(args.model))
        raise CheckpointError(f"model {args.model} cannot be loaded: {reason}") from exc
    if not args.aligned:
        try:
            resolver.load_detector()
        except DicsrError:
            raise
        except OSError as exc:  # e.g. an unusable $DICSR_CACHE_DIR: say how to get around it
            where = exc.filename or "the dicsr cache"
            raise WeightsUnavailableError(
                f"face detector weights: cannot use {where} ({unusable_reason(exc, Path(where))}); set "
                f"DICSR_CACHE_DIR to a writable folder, or pass --detector-weights FILE"
            ) from exc
        except Exception as exc:
            logger.debug("building the detector failed", exc_info=True)
            reason = failure_reason(exc, Path())
            raise WeightsUnavailableError(f"the face detector cannot be built: {reason}") from exc
    return resolver


def no_inputs_error(patterns: Sequence[str], ignored: Sequence[Ignored]) -> DicsrError:
    """The error for an invocation whose arguments name no image (saying what was passed over)."""
    passed_over = ""
    if ignored:
        shown = "; ".join(f"{entry.path}: {entry.reason}" for entry in ignored[:3])
        more = f"; and {len(ignored) - 3} more" if len(ignored) > 3 else ""
        passed_over = f" (ignored {len(ignored)}: {shown}{more})"
    return InvalidInputError(f"no input images found in: {' '.join(patterns)}{passed_over}")


def _pixel_limit_option(name: str, value: int | None) -> dict[str, Any]:
    """``--max-pixels`` / ``--max-output-pixels``: absent keeps the library default; 0 lifts the
    limit, as it does in the API."""
    if value is None:
        return {}
    if value < 0:
        raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    return {name: value}


def _paste_options(args: argparse.Namespace) -> Any:
    """The :class:`~dicsr.face.paste.PasteOptions` of ``--strength``, ``--[no-]back-projection``,
    ``--[no-]landmark-mask`` and ``--luminance-only``; a bad ``--strength`` is refused by its name."""
    from dicsr.face.paste import PasteOptions

    if not 0.0 <= args.strength <= 1.0:  # NaN too
        raise InvalidInputError(f"--strength must be a number in [0, 1], got {args.strength:g}")
    return PasteOptions(strength=args.strength, back_projection=args.back_projection,
                        landmark_mask=args.landmark_mask, luminance_only=args.luminance_only)


def _write_outputs(
    result: Any, source: Path, outputs: OutputFiles, record: OutputRecord, args: argparse.Namespace
) -> set[str]:
    """Write each output of ``source``'s :class:`~dicsr.pipeline.EnhanceResult` that is missing (all
    with --overwrite); returns the kinds of output written."""
    from dicsr._files import atomic_write_text
    from dicsr.image import save_image
    from dicsr.visualize import draw_landmarks, side_by_side

    def wanted(path: Path | None) -> TypeGuard[Path]:
        if path is None or (path.exists() and not args.overwrite):
            return False
        record.add(path)
        return True

    output = result.image
    if args.draw_landmarks:
        points = [f.landmarks_in_output for f in result.faces if f.landmarks_in_output is not None]
        output = draw_landmarks(output, points)
    written = set()
    if outputs.faces is not None:
        # Last to first: face 00 exists only when every face does (what a re-run checks).
        for index in reversed(range(result.num_faces)):
            if wanted(outputs.face(index)):
                save_image(result.faces[index].image, outputs.face(index))
                written.add(FACES)
    if wanted(outputs.landmarks):
        atomic_write_text(outputs.landmarks, json.dumps(landmarks_record(source, result), indent=2))
        written.add(LANDMARKS)
    if wanted(outputs.compare):
        save_image(side_by_side(source, output), outputs.compare)
        written.add(COMPARE)
    if wanted(outputs.image):
        save_image(output, outputs.image)
        written.add(PHOTO)
    return written
