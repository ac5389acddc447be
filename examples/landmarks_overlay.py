"""Draw the 68 landmarks DIC predicts onto the restored photo.

    python examples/landmarks_overlay.py portrait.jpg overlay.png --model ./models/dic-celeba

DIC estimates landmarks on the face it restores; dicsr maps them into the restored photo
(``RestoredFace.landmarks_in_output``), so they can be drawn directly. Only DIC/DICGAN models
predict landmarks.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dicsr import FaceSuperResolver
from dicsr.pipeline import SelectionPolicy
from dicsr.visualize import draw_landmarks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Draw DIC's 68 landmarks on the restored photo.")
    parser.add_argument("photo", type=Path)
    parser.add_argument("output", type=Path, help="image to write (e.g. overlay.png)")
    parser.add_argument("--model", default="dic-celeba", help="a DIC/DICGAN zoo name or model folder")
    parser.add_argument("--detector-weights", type=Path, default=None,
                        help="local RetinaFace weights (default: fetched into the dicsr cache)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--upscale", type=float, default=None, help="photo scale (default: 8)")
    parser.add_argument("--all-faces", action="store_true",
                        help="restore faces of every size (default: only those small enough for the model "
                             "to add detail)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    resolver = FaceSuperResolver.from_pretrained(
        args.model, device=args.device, detector_weights=args.detector_weights, upscale=args.upscale,
        selection=SelectionPolicy(all_sizes=args.all_faces),
    )
    if resolver.config.num_landmarks == 0:
        parser.error(f"{args.model} ({resolver.config.arch}) predicts no landmarks; use a DIC model")

    result = resolver.enhance(args.photo)
    overlay = draw_landmarks(result.image, [face.landmarks_in_output for face in result.faces])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    overlay.save(args.output)
    print(f"{result.num_faces} face(s), 68 landmarks each -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
