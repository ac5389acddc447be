"""The ``dicsr`` command line: ``enhance``, ``models``, ``download``, ``convert``, ``export``.

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
from typing import TYPE_CHECKING

from PIL import Image

from dicsr._cli.enhance import add_enhance_parser
from dicsr._cli.export import add_export_parser
from dicsr._cli.interrupts import Terminated, sigterm_interrupts
from dicsr._version import __version__
from dicsr.errors import DicsrError

if TYPE_CHECKING:  # pragma: no cover - for the type checker only
    from dicsr.weights._origins import ObtainedModel

__all__ = ["main"]

logger = logging.getLogger("dicsr.cli")

def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dicsr`` console script; returns the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
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
    except Exception as exc:  # never a traceback (unless -vv): the error once, in its own words
        print(f"dicsr: error: {_error_message(exc)}", file=sys.stderr)
        if args.verbose >= 2:
            traceback.print_exc(file=sys.stderr)
        elif not isinstance(exc, DicsrError):
            print("dicsr: (an unexpected error: -vv shows where it happened)", file=sys.stderr)
        return 1


def _error_message(exc: BaseException) -> str:
    """A dicsr error's message whole (one line, except where its lines are the point: the sources a
    zoo name was tried from, one per line, then what to do); anything else's first line and type."""
    text = str(exc).strip()
    if isinstance(exc, DicsrError) and text:
        return text
    lines = text.splitlines()
    name = "out of memory (MemoryError)" if isinstance(exc, MemoryError) else type(exc).__name__
    return f"{name}: {lines[0]}" if lines else name


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

    enhance = add_enhance_parser(sub)
    _add_weights_source_options(enhance)

    models = sub.add_parser("models", help="list the model zoo and what is cached")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.set_defaults(handler=_cmd_models)

    download = sub.add_parser("download", help="fetch model (and detector) weights into the cache")
    download.add_argument("names", nargs="*", help="zoo names (see `dicsr models`)")
    download.add_argument("--revision", default=None)
    download.add_argument("--detector", action="append", default=[], choices=["mobile0.25", "resnet50"],
                          help="also fetch these RetinaFace weights into the dicsr cache (repeatable)")
    download.add_argument("--no-progress", action="store_true")
    _add_weights_source_options(download)
    download.set_defaults(handler=_cmd_download)

    convert = sub.add_parser("convert", help="convert an official checkpoint to a model folder")
    convert.add_argument("checkpoint", type=Path, help="official .pth (DIC/DICGAN/SPARNet/SPARNetHD)")
    convert.add_argument("output", type=Path, help="model folder to write")
    convert.add_argument("--name", default=None, help="zoo name to describe (e.g. dicgan-celeba)")
    convert.add_argument("--overwrite", action="store_true")
    convert.set_defaults(handler=_cmd_convert)

    export = add_export_parser(sub)
    _add_weights_source_options(export)
    return parser


def _add_weights_source_options(command: argparse.ArgumentParser) -> None:
    """Where weights may come from: the options ``enhance``, ``download`` and ``export`` share."""
    command.add_argument("--offline", action="store_true", help="never touch the network: the caches only")
    command.add_argument("--mirror", default=None, metavar="URL",
                         help="base URL serving the official weights files by name (default $DICSR_MIRROR)")


# -- models / download / convert ----------------------------------------------------------------


def _cmd_models(args: argparse.Namespace) -> int:
    from dicsr.weights import list_models
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
    from dicsr.weights import get_model_entry, resolve_detector_weights
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


def _fingerprint_line(got: ObtainedModel) -> str:
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
    from dicsr.weights import convert_checkpoint

    folder = convert_checkpoint(args.checkpoint, args.output, name=args.name, overwrite=args.overwrite)
    print(f"converted {args.checkpoint} -> {folder}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
