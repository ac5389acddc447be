"""Restore every photo of a folder (recursively) into another folder, with a progress bar.

    python examples/batch_folder.py photos/ restored/ --model ./models/dic-celeba

One resolver serves the whole folder, so the model and the detector load once. Outputs keep the
inputs' relative paths (as PNG). A file that cannot be read is reported and skipped; the exit
status is 1 if any file failed. Existing outputs are skipped unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from dicsr import FaceSuperResolver
from dicsr.errors import DicsrError
from dicsr.image import save_image
from dicsr.pipeline import SelectionPolicy

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}

logger = logging.getLogger("batch_folder")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Restore every photo of a folder.")
    parser.add_argument("input_dir", type=Path)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--model", default="dic-celeba", help="zoo name, hf-hub:org/repo@rev or model folder")
    parser.add_argument("--detector-weights", type=Path, default=None,
                        help="local RetinaFace weights (default: fetched into the dicsr cache)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--upscale", type=float, default=None, help="photo scale (default: the model's)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--all-faces", action="store_true",
                        help="restore faces of every size (default: only those small enough for the model "
                             "to add detail)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    inputs = sorted(
        p for p in args.input_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not inputs:
        parser.error(f"no images found in {args.input_dir}")
    resolver = FaceSuperResolver.from_pretrained(
        args.model, device=args.device, detector_weights=args.detector_weights,
        progress=not args.no_progress, upscale=args.upscale,
        selection=SelectionPolicy(all_sizes=args.all_faces),
    )

    done = faces = 0
    failed: list[Path] = []
    for path in tqdm(inputs, unit="img", disable=args.no_progress):
        target = (args.output_dir / path.relative_to(args.input_dir)).with_suffix(".png")
        if target.exists() and not args.overwrite:
            continue
        try:
            result = resolver.enhance(path)
        except DicsrError as exc:  # unreadable or unsupported file: report it and go on
            logger.warning("skipped %s: %s", path, exc)
            failed.append(path)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        save_image(result.image, target)
        done += 1
        faces += result.num_faces

    print(f"{done} image(s) restored, {faces} face(s), {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
