"""``dicsr enhance``: its options, the run over the inputs, and the summary it prints."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from dicsr._cli.inputs import ALLOW_FLAG, collect_inputs
from dicsr._cli.outputs import (
    COMPARE,
    FACES,
    LANDMARKS,
    PHOTO,
    OutputFiles,
    OutputRecord,
    check_inputs_are_not_replaced,
    check_output_format,
    plan_outputs,
)
from dicsr._cli.summary import RunSummary, failure_reason
from dicsr.errors import DicsrError, InvalidInputError

__all__ = ["add_enhance_parser"]

logger = logging.getLogger("dicsr.cli")


def add_enhance_parser(sub: Any) -> None:
    """Add the ``enhance`` sub-command to the ``dicsr`` parser's sub-parsers."""
    enhance = sub.add_parser("enhance", help="restore the faces in photos")
    enhance.add_argument("inputs", nargs="+", help="image files, folders (recursive) or glob patterns")
    enhance.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    enhance.add_argument("-m", "--model", default="dic-celeba",
                         help="zoo name, hf-hub:org/repo[@rev], model folder or checkpoint")
    enhance.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    enhance.add_argument("--dtype", default="float32", help="float32, float16 or bfloat16")
    enhance.add_argument("--channels-last", action="store_true",
                         help="NHWC memory format (with --dtype bfloat16: the CPU fast path)")
    enhance.add_argument("--upscale", type=float, default=None,
                         help="output scale of the photo (default: the model's scale)")
    enhance.add_argument("--only-center-face", action="store_true")
    enhance.add_argument("--max-faces", type=int, default=None)
    enhance.add_argument("--aligned", action="store_true", help="inputs are already face crops")
    enhance.add_argument("--detector", default="mobile0.25", choices=["mobile0.25", "resnet50"])
    enhance.add_argument("--detector-weights", type=Path, default=None, help="local detector weights")
    enhance.add_argument("--score-threshold", type=float, default=0.5)
    enhance.add_argument("--batch-size", type=int, default=None)
    enhance.add_argument("--max-pixels", type=int, default=None,
                         help="refuse inputs with more pixels (decompression-bomb guard; 0 = no limit; "
                              "default 89,478,485)")
    enhance.add_argument("--max-output-pixels", type=int, default=None,
                         help="refuse restored photos with more pixels; without --upscale the scale is "
                              "lowered to fit (0 = no limit; default 64,000,000)")
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
    enhance.add_argument("--offline", action="store_true", help="never touch the network")
    enhance.set_defaults(handler=run_enhance)


def run_enhance(args: argparse.Namespace) -> int:
    """Run ``dicsr enhance`` with parsed arguments; returns the exit code."""
    from dicsr.pipeline import FaceSuperResolver

    record = OutputRecord(args.output)
    found = collect_inputs(args.inputs, output=args.output, allow_output_in_input=args.allow_output_in_input,
                           earlier_outputs=record.real_paths())
    if not found.images:
        raise no_inputs_error(args.inputs)
    check_output_format(args.ext)
    inputs = found.images
    plans = plan_outputs(
        [image.relative for image in inputs], [image.path for image in inputs], args.output, ext=args.ext,
        landmarks=args.save_landmarks, compare=args.compare, faces=args.save_faces,
    )
    check_inputs_are_not_replaced(plans, [image.path for image in inputs])
    args.output.mkdir(parents=True, exist_ok=True)
    resolver = FaceSuperResolver(
        args.model, device=args.device, dtype=args.dtype, channels_last=args.channels_last,
        upscale=args.upscale,
        only_center_face=args.only_center_face, max_faces=args.max_faces, detector=args.detector,
        detector_weights=args.detector_weights, score_threshold=args.score_threshold,
        batch_size=args.batch_size, offline=True if args.offline else None, progress=not args.no_progress,
        **_pixel_limit_option("max_pixels", args.max_pixels),
        **_pixel_limit_option("max_output_pixels", args.max_output_pixels),
    )
    summary = RunSummary(ignored=found.ignored)
    for entry in found.ignored:
        logger.info("ignored %s: %s", entry.path, entry.reason)
    jobs = [(image.path, plan) for image, plan in zip(inputs, plans, strict=True)]
    for source, outputs in _progress(jobs, enabled=not args.no_progress):
        missing = outputs.missing()
        if not missing and not args.overwrite:
            summary.skipped += 1
            logger.info("skip %s: its outputs exist (use --overwrite)", source)
            continue
        try:
            faces, written = _enhance_one(resolver, source, outputs, record, args)
        except Exception as exc:  # one file never stops the batch: MemoryError included
            summary.failures.append((source, failure_reason(exc, source)))
            logger.debug("failed %s", source, exc_info=True)
            continue
        summary.add_done(faces, written)

    for line in summary.lines():
        print(line)
    return summary.exit_code()


def no_inputs_error(patterns: Sequence[str]) -> DicsrError:
    """The error for an invocation whose arguments name no image."""
    return InvalidInputError(f"no input images found in: {' '.join(patterns)}")


def _pixel_limit_option(name: str, value: int | None) -> dict[str, Any]:
    """``--max-pixels`` / ``--max-output-pixels``: absent keeps the library default, 0 lifts the limit."""
    if value is None:
        return {}
    if value < 0:
        raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    return {name: value or None}


def _enhance_one(
    resolver: Any, source: Path, outputs: OutputFiles, record: OutputRecord, args: argparse.Namespace
) -> tuple[int, set[str]]:
    """Restore ``source`` and write each of its outputs that is missing (all with --overwrite).

    Returns the number of faces and the kinds of output written.
    """
    from dicsr._files import atomic_write_text
    from dicsr.image import save_image
    from dicsr.visualize import draw_landmarks, side_by_side

    def wanted(path: Path | None) -> TypeGuard[Path]:
        if path is None or (path.exists() and not args.overwrite):
            return False
        record.add(path)
        return True

    result = resolver.enhance(source, aligned=args.aligned)
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
        atomic_write_text(outputs.landmarks, json.dumps(_landmarks_record(source, result), indent=2))
        written.add(LANDMARKS)
    if wanted(outputs.compare):
        save_image(side_by_side(source, output), outputs.compare)
        written.add(COMPARE)
    if wanted(outputs.image):
        save_image(output, outputs.image)
        written.add(PHOTO)
    return result.num_faces, written


def _landmarks_record(source: Path, result: Any) -> dict[str, Any]:
    """JSON-ready description of the faces of one image, in output-photo coordinates."""
    scale = result.upscale

    def to_output(values: Any) -> Any:
        # input-photo coordinates -> restored-photo coordinates (integers are pixel centres)
        if values is None:
            return None
        return ((np.asarray(values, dtype=np.float64) + 0.5) * scale - 0.5).tolist()

    faces = []
    for face in result.faces:
        faces.append({
            "score": face.score,
            "box": to_output(face.detection_box),
            "crop_box": to_output(face.box),
            "points5": to_output(face.points5),
            "landmarks68": None if face.landmarks_in_output is None else face.landmarks_in_output.tolist(),
        })
    width, height = result.input_size
    return {
        "input": str(source),
        "input_size": [width, height],
        "upscale": scale,
        "coordinates": "restored-photo pixels, (x, y), integer values are pixel centres",
        "faces": faces,
    }


def _progress(items: list[Any], *, enabled: bool) -> Any:
    if not enabled or len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="dicsr", unit="img")
