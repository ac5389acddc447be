"""The ``dicsr`` command line: ``enhance``, ``models``, ``download``, ``convert``.

Each sub-command is a thin shell around the library: what it prints is a user-facing summary;
diagnostics go through :mod:`logging` (``-v`` shows them).
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dicsr._version import __version__
from dicsr.errors import DicsrError

__all__ = ["main"]

logger = logging.getLogger("dicsr.cli")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dicsr`` console script; returns the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except DicsrError as exc:
        print(f"dicsr: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dicsr: interrupted", file=sys.stderr)
        return 130


# -- logging -----------------------------------------------------------------------------------------


def _configure_logging(verbose: int) -> None:
    """One stderr handler for everything; -v shows dicsr's info, -vv debug and the hub's chatter."""
    logging.basicConfig(
        level=logging.DEBUG if verbose >= 2 else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # huggingface_hub configures its logger when it is first imported (utils/logging.py): it adds
    # its own stderr handler and sets the level to WARNING. dicsr imports it lazily, i.e. after
    # this function ran, so a level set here was overwritten (its retry warnings showed anyway)
    # and every record printed twice (its handler, then ours via propagation). Import it now,
    # drop its handler, and keep its per-request warnings for -vv: dicsr reports the outcome.
    import huggingface_hub.utils.logging  # noqa: F401  (runs that configuration now)

    hub_logger = logging.getLogger("huggingface_hub")
    for handler in list(hub_logger.handlers):
        hub_logger.removeHandler(handler)
    hub_logger.setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dicsr", description="Face super-resolution (DIC, SPARNet).")
    parser.add_argument("--version", action="version", version=f"dicsr {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

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
    enhance.add_argument("--save-faces", action="store_true", help="also write each restored face")
    enhance.add_argument("--save-landmarks", action="store_true",
                         help="write a JSON per image with boxes and landmarks in photo coordinates")
    enhance.add_argument("--draw-landmarks", action="store_true", help="draw landmarks on the output")
    enhance.add_argument("--compare", action="store_true", help="also write input|output side by side")
    enhance.add_argument("--ext", default=None, help="output format, e.g. png (default: keep the input's)")
    enhance.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip)")
    enhance.add_argument("--no-progress", action="store_true", help="no progress bars")
    enhance.add_argument("--offline", action="store_true", help="never touch the network (use the caches)")
    enhance.add_argument("--mirror", default=None, metavar="URL",
                         help="base URL serving the official weights files by name (default $DICSR_MIRROR)")
    enhance.set_defaults(handler=_cmd_enhance)

    models = sub.add_parser("models", help="list the model zoo and what is cached")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.set_defaults(handler=_cmd_models)

    download = sub.add_parser("download", help="fetch model (and detector) weights into the cache")
    download.add_argument("names", nargs="*", help="zoo names (see `dicsr models`)")
    download.add_argument("--revision", default=None)
    download.add_argument("--detector", action="append", default=[], choices=["mobile0.25", "resnet50"],
                          help="also fetch these RetinaFace weights into the dicsr cache (repeatable)")
    download.add_argument("--no-progress", action="store_true")
    download.add_argument("--offline", action="store_true", help="only check the caches")
    download.add_argument("--mirror", default=None, metavar="URL",
                          help="base URL serving the official weights files by name (default $DICSR_MIRROR)")
    download.set_defaults(handler=_cmd_download)

    convert = sub.add_parser("convert", help="convert an official checkpoint to a model folder")
    convert.add_argument("checkpoint", type=Path, help="official .pth (DIC/DICGAN/SPARNet/SPARNetHD)")
    convert.add_argument("output", type=Path, help="model folder to write")
    convert.add_argument("--name", default=None, help="zoo name to describe (e.g. dicgan-celeba)")
    convert.add_argument("--overwrite", action="store_true")
    convert.set_defaults(handler=_cmd_convert)
    return parser


# -- enhance ---------------------------------------------------------------------------------------


@dataclass
class _Summary:
    images: int = 0
    faces: int = 0
    skipped: int = 0
    failures: list[tuple[Path, str]] = field(default_factory=list)


def _cmd_enhance(args: argparse.Namespace) -> int:
    from dicsr.pipeline import FaceSuperResolver

    inputs = list(_collect_inputs(args.inputs))
    if not inputs:
        raise _no_inputs_error(args.inputs)
    args.output.mkdir(parents=True, exist_ok=True)
    resolver = FaceSuperResolver(
        args.model, device=args.device, dtype=args.dtype, channels_last=args.channels_last,
        upscale=args.upscale,
        only_center_face=args.only_center_face, max_faces=args.max_faces, detector=args.detector,
        detector_weights=args.detector_weights, score_threshold=args.score_threshold,
        batch_size=args.batch_size, offline=True if args.offline else None, progress=not args.no_progress,
        mirror=args.mirror, **_max_pixels_option(args.max_pixels),
    )
    summary = _Summary()
    for source, relative in _progress(inputs, enabled=not args.no_progress):
        target = _output_path(args.output, relative, args.ext)
        if target.exists() and not args.overwrite:
            summary.skipped += 1
            logger.info("skip %s: %s exists (use --overwrite)", source, target)
            continue
        try:
            faces = _enhance_one(resolver, source, target, args)
        except DicsrError as exc:
            summary.failures.append((source, str(exc)))
            logger.warning("failed %s: %s", source, exc)
            continue
        except (OSError, ValueError, RuntimeError) as exc:  # never let one file stop the batch
            summary.failures.append((source, f"{type(exc).__name__}: {exc}"))
            logger.warning("failed %s: %s", source, exc, exc_info=logger.isEnabledFor(logging.DEBUG))
            continue
        summary.images += 1
        summary.faces += faces

    print(f"dicsr: {summary.images} image(s) restored, {summary.faces} face(s), "
          f"{summary.skipped} skipped, {len(summary.failures)} failed")
    for source, reason in summary.failures:
        print(f"  failed: {source}: {reason.splitlines()[0] if reason else 'unknown error'}")
    return 1 if summary.failures else 0


def _max_pixels_option(max_pixels: int | None) -> dict[str, Any]:
    """``--max-pixels``: absent keeps the library default, 0 lifts the limit."""
    if max_pixels is None:
        return {}
    if max_pixels < 0:
        from dicsr.errors import InvalidInputError

        raise InvalidInputError(f"--max-pixels must be >= 0, got {max_pixels}")
    return {"max_pixels": max_pixels or None}


def _enhance_one(resolver: Any, source: Path, target: Path, args: argparse.Namespace) -> int:
    from dicsr.image import save_image
    from dicsr.visualize import draw_landmarks, side_by_side

    result = resolver.enhance(source, aligned=args.aligned)
    output = result.image
    if args.draw_landmarks:
        points = [f.landmarks_in_output for f in result.faces if f.landmarks_in_output is not None]
        output = draw_landmarks(output, points)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_image(output, target)
    if args.compare:
        save_image(side_by_side(source, output), target.with_name(f"{target.stem}_compare{target.suffix}"))
    if args.save_faces:
        for index, face in enumerate(result.faces):
            save_image(face.image, target.with_name(f"{target.stem}_face{index:02d}.png"))
    if args.save_landmarks:
        target.with_suffix(".json").write_text(json.dumps(_landmarks_record(source, result), indent=2))
    return result.num_faces


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


def _collect_inputs(patterns: Sequence[str]) -> Iterator[tuple[Path, Path]]:
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


def _no_inputs_error(patterns: Sequence[str]) -> DicsrError:
    from dicsr.errors import InvalidInputError

    return InvalidInputError(f"no input images found in: {' '.join(patterns)}")


def _output_path(root: Path, relative: Path, ext: str | None) -> Path:
    target = root / relative
    return target.with_suffix("." + ext.lstrip(".")) if ext else target


def _progress(items: list[tuple[Path, Path]], *, enabled: bool) -> Any:
    if not enabled or len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="dicsr", unit="img")


# -- models / download / convert ----------------------------------------------------------------


def _cmd_models(args: argparse.Namespace) -> int:
    from dicsr.loading import list_models
    from dicsr.weights._origins import cache_status

    rows = [(entry, cache_status(entry)) for entry in list_models()]
    if args.json:
        print(json.dumps([{"name": e.name, "arch": e.arch, "preset": e.preset, "hub_repo": e.hub_repo,
                           "revision": e.revision, "lr_size": e.lr_size, "hr_size": e.hr_size,
                           "crop": e.crop, "license": e.license, "cached": status is not None,
                           "cache": status} for e, status in rows],
                         indent=2))
        return 0
    print(f"{'name':<15} {'arch':<8} {'in->out':<10} {'crop':<15} {'cached':<33} licence")
    for entry, status in rows:
        size = f"{entry.lr_size}->{entry.hr_size}"
        print(f"{entry.name:<15} {entry.arch:<8} {size:<10} {entry.crop:<15} "
              f"{status or 'no':<33} {entry.license}")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from dicsr.errors import InvalidInputError
    from dicsr.loading import get_model_entry, resolve_detector_weights
    from dicsr.weights._origins import obtain_model

    if not args.names and not args.detector:
        raise InvalidInputError("nothing to download: name a model (see `dicsr models`) or --detector")
    offline = True if args.offline else None
    for network in args.detector:
        path = resolve_detector_weights(network, offline=offline, mirror=args.mirror)
        print(f"detector {network}: {path}")
    for name in args.names:
        entry = get_model_entry(name)
        got = obtain_model(entry, revision=args.revision, offline=offline, progress=not args.no_progress,
                           mirror=args.mirror)
        if got.downloaded_bytes is not None:
            what = f"{got.downloaded_bytes:,} bytes ({entry.official_filename}), converted"
        elif got.source == "hub":
            what = f"{(got.folder / entry.filename).stat().st_size:,} bytes ({entry.filename})"
        else:
            what = "already cached, nothing downloaded"
        print(f"{entry.name}:")
        print(f"  source:      {got.source_label}")
        print(f"  bytes:       {what}")
        print(f"  fingerprint: {_fingerprint_line(got)}")
        print(f"  cache:       {got.folder}")
    return 0


def _fingerprint_line(got: Any) -> str:
    """What was checked, for `dicsr download`."""
    record = got.cache_record
    if got.source == "cache" and record is not None:
        return f"verified: {got.fingerprint}"
    if record is not None and record.fingerprint_checked == "no fingerprint published":
        return (f"none published for {record.official_filename}; its sha256 {record.official_sha256} "
                f"is recorded in the cache")
    if record is not None:
        return f"verified: {record.fingerprint_checked}"
    return got.fingerprint


def _cmd_convert(args: argparse.Namespace) -> int:
    from dicsr.loading import convert_checkpoint

    folder = convert_checkpoint(args.checkpoint, args.output, name=args.name, overwrite=args.overwrite)
    print(f"converted {args.checkpoint} -> {folder}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
