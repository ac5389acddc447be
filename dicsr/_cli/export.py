"""``dicsr export MODEL --format onnx -o FILE``: a model's network as a file for other runtimes."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

from dicsr.errors import DestinationExistsError, InvalidInputError

__all__ = ["add_export_parser"]

logger = logging.getLogger("dicsr.cli")

#: Export formats and the packages each needs beyond torch.
_FORMATS = {"onnx": ("onnx",)}


def add_export_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``export`` sub-command to the ``dicsr`` parser's sub-parsers and return it.

    Where the weights come from (``--offline``, ``--mirror``) is added by ``dicsr.cli``, which shares
    those options with ``enhance`` and ``download``.
    """
    from dicsr.engines import DEFAULT_OPSET

    export = sub.add_parser("export", help="write a model's network as an ONNX file for other runtimes")
    export.add_argument("model", help="zoo name, hf-hub:org/repo[@rev], model folder or checkpoint (as -m)")
    export.add_argument("--format", default="onnx", choices=sorted(_FORMATS), help="export format")
    export.add_argument("-o", "--output", required=True, type=Path, help="file to write (e.g. model.onnx)")
    export.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset (default {DEFAULT_OPSET}; 14 or newer)")
    export.add_argument("--static-batch", action="store_true", help="fix the batch axis at 1 (default: free)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    export.add_argument("--no-progress", action="store_true", help="no download progress bars")
    export.set_defaults(handler=run_export)
    return export


def run_export(args: argparse.Namespace) -> int:
    """Run ``dicsr export`` with parsed arguments; returns the exit code.

    Everything that can be checked without the model is checked first (the output file, the
    format's packages, the opset); the file is written atomically, so a failed export leaves none.
    """
    from dicsr.engines import export_onnx
    from dicsr.engines._onnx import check_opset
    from dicsr.weights import load_model

    output: Path = args.output
    _check_output(output, overwrite=args.overwrite)
    missing = [name for name in _FORMATS[args.format] if importlib.util.find_spec(name) is None]
    if missing:
        raise InvalidInputError(
            f"--format {args.format} needs the {' and '.join(missing)} package: pip install 'dicsr[onnx]'"
        )
    check_opset(args.opset, name="--opset")
    adapter = load_model(args.model, offline=True if args.offline else None, progress=not args.no_progress,
                         mirror=args.mirror)
    output.parent.mkdir(parents=True, exist_ok=True)
    path = export_onnx(adapter, output, opset=args.opset, dynamic_batch=not args.static_batch)
    batch = "batch 1" if args.static_batch else "dynamic batch"
    size = path.stat().st_size
    print(f"exported {args.model} -> {path} (ONNX opset {args.opset}, {batch}, {size:,} bytes)")
    return 0


def _check_output(output: Path, *, overwrite: bool) -> None:
    """Refuse an output that is a folder, or a file that exists without ``--overwrite``; and one
    whose folder cannot be written (before the model is loaded)."""
    if output.is_dir():
        raise InvalidInputError(f"-o/--output {output} is a folder; name the file to write (e.g. model.onnx)")
    if output.exists() and not overwrite:
        raise DestinationExistsError(f"-o/--output {output} exists; pass --overwrite to replace it")
    folder = next((parent for parent in output.absolute().parents if parent.exists()), None)
    if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidInputError(f"-o/--output {output}: cannot write into {folder or output.parent}")
