"""Restore the faces of one photo: write the restored photo and every restored face.

    python examples/enhance_photo.py group.jpg -o restored/ --model ./models/dic-celeba

Writes ``restored/<stem>.png`` (the whole photo, upscaled) and ``restored/<stem>_faceNN.png``
(each face at the network's output size, 128 px for DIC), and prints where each face was found and
why any other was left alone (by default a 16-px model restores faces of at most 32 px: the tiny
faces it adds detail to; ``--all-faces`` restores every size).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dicsr import FaceSuperResolver
from dicsr.errors import DicsrError
from dicsr.image import save_image
from dicsr.pipeline import SelectionPolicy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Restore the faces of one photo.")
    parser.add_argument("photo", type=Path, help="input photo")
    parser.add_argument("-o", "--output-dir", type=Path, default=Path("restored"))
    parser.add_argument("--model", default="dic-celeba", help="zoo name, hf-hub:org/repo@rev or model folder")
    parser.add_argument("--detector-weights", type=Path, default=None,
                        help="local RetinaFace weights (default: fetched into the dicsr cache)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--upscale", type=float, default=None, help="photo scale (default: the model's)")
    parser.add_argument("--only-center-face", action="store_true")
    parser.add_argument("--all-faces", action="store_true",
                        help="restore faces of every size (default: only those small enough for the model "
                             "to add detail)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        resolver = FaceSuperResolver.from_pretrained(
            args.model, device=args.device, detector_weights=args.detector_weights,
            upscale=args.upscale,
            selection=SelectionPolicy(only_center_face=args.only_center_face, all_sizes=args.all_faces),
        )
        result = resolver.enhance(args.photo)
    except DicsrError as exc:  # bad photo, missing weights, unavailable device: one readable line
        parser.exit(1, f"error: {exc}\n")

    args.output_dir.mkdir(parents=True, exist_ok=True)
    save_image(result.image, args.output_dir / f"{args.photo.stem}.png")
    for index, face in enumerate(result.faces):
        save_image(face.image, args.output_dir / f"{args.photo.stem}_face{index:02d}.png")
        x0, y0, x1, y1 = face.detection_box
        print(f"face {index}: score {face.score:.2f}, box ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f})")
    for left in result.skipped_faces:
        print(f"left alone: score {left.score:.2f}, {left.reason} ({left.detail})")
    width, height = result.input_size
    print(f"{result.num_faces} face(s); {width}x{height} -> {result.image.width}x{result.image.height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
