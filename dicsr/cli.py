"""The ``dicsr`` command line: ``enhance``, ``models``, ``download``, ``convert``.

Each sub-command is a thin shell around the library: what it prints is a user-facing summary;
diagnostics go through :mod:`logging` (``-v`` shows them).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from dicsr._cli.enhance import add_enhance_parser
from dicsr._cli.interrupts import Terminated, sigterm_interrupts
from dicsr._version import __version__
from dicsr.errors import DicsrError

__all__ = ["main"]

logger = logging.getLogger("dicsr.cli")

def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dicsr`` console script; returns the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose >= 2 else logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.verbose < 2:
        # The hub client logs every connection retry as a warning; dicsr reports the outcome itself
        # (a WeightsUnavailableError that says how to get the weights), so keep its chatter for -vv.
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return 2
    try:
        with sigterm_interrupts(), warnings.catch_warnings():
            # dicsr refuses oversized images itself (ImageTooLargeError, one line per file); Pillow's
            # two-line warning about the same image would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return int(args.handler(args))
    except Terminated:
        print("dicsr: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("dicsr: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback (unless -vv): one line, the error's own words
        print(f"dicsr: error: {_one_line(exc)}", file=sys.stderr)
        if args.verbose >= 2:
            traceback.print_exc(file=sys.stderr)
        elif not isinstance(exc, DicsrError):
            print("dicsr: (an unexpected error: -vv shows where it happened)", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    if isinstance(exc, DicsrError) and lines:
        return lines[0]
    name = "out of memory (MemoryError)" if isinstance(exc, MemoryError) else type(exc).__name__
    return f"{name}: {lines[0]}" if lines else name


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dicsr", description="Face super-resolution (DIC, SPARNet).")
    parser.add_argument("--version", action="version", version=f"dicsr {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    add_enhance_parser(sub)

    models = sub.add_parser("models", help="list the model zoo and what is cached")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.set_defaults(handler=_cmd_models)

    download = sub.add_parser("download", help="fetch model (and detector) weights into the cache")
    download.add_argument("names", nargs="*", help="zoo names (see `dicsr models`)")
    download.add_argument("--revision", default=None)
    download.add_argument("--detector", action="append", default=[], choices=["mobile0.25", "resnet50"],
                          help="also fetch these RetinaFace weights into the dicsr cache (repeatable)")
    download.add_argument("--no-progress", action="store_true")
    download.set_defaults(handler=_cmd_download)

    convert = sub.add_parser("convert", help="convert an official checkpoint to a model folder")
    convert.add_argument("checkpoint", type=Path, help="official .pth (DIC/DICGAN/SPARNet/SPARNetHD)")
    convert.add_argument("output", type=Path, help="model folder to write")
    convert.add_argument("--name", default=None, help="zoo name to describe (e.g. dicgan-celeba)")
    convert.add_argument("--overwrite", action="store_true")
    convert.set_defaults(handler=_cmd_convert)
    return parser


# -- models / download / convert ----------------------------------------------------------------


def _cmd_models(args: argparse.Namespace) -> int:
    from dicsr.weights import is_cached, list_models

    rows = [(entry, is_cached(entry.name)) for entry in list_models()]
    if args.json:
        print(json.dumps([{"name": e.name, "arch": e.arch, "preset": e.preset, "hub_repo": e.hub_repo,
                           "revision": e.revision, "lr_size": e.lr_size, "hr_size": e.hr_size,
                           "crop": e.crop, "license": e.license, "cached": cached} for e, cached in rows],
                         indent=2))
        return 0
    print(f"{'name':<15} {'arch':<8} {'in->out':<10} {'crop':<15} {'cached':<7} licence")
    for entry, cached in rows:
        size = f"{entry.lr_size}->{entry.hr_size}"
        print(f"{entry.name:<15} {entry.arch:<8} {size:<10} {entry.crop:<15} "
              f"{'yes' if cached else 'no':<7} {entry.license}")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from dicsr.errors import InvalidInputError
    from dicsr.weights import download_model, resolve_detector_weights

    if not args.names and not args.detector:
        raise InvalidInputError("nothing to download: name a model (see `dicsr models`) or --detector")
    for network in args.detector:
        print(f"detector {network}: {resolve_detector_weights(network)}")
    for name in args.names:
        folder = download_model(name, revision=args.revision, progress=not args.no_progress)
        print(f"{name}: {folder}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from dicsr.weights import convert_checkpoint

    folder = convert_checkpoint(args.checkpoint, args.output, name=args.name, overwrite=args.overwrite)
    print(f"converted {args.checkpoint} -> {folder}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
