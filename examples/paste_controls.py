"""Composite restored faces yourself: masks, strength, back-projection and luminance only, side by side.

    python examples/paste_controls.py portrait.jpg controls.png --model ./models/dic-celeba

The network runs once (``paste_back=False``); each variant is then composited from the same
restored faces with the parts :class:`dicsr.FaceSuperResolver` itself uses: the upscaled
photo (:class:`dicsr.image.Background`), the paste masks (:mod:`dicsr.face.mask`: the rounded
square, or the face-shaped mask from the 68 landmarks a DIC model predicts),
back-projection onto the network input (:mod:`dicsr.face.consistency`) and
:func:`dicsr.face.paste.paste_faces` with ``strength`` and ``luminance_only``. It writes one
picture: the first face's surroundings in every variant, and the two masks
(red: rounded square, green: face-shaped; yellow where both) and the change back-projection makes
(smooth: it corrects the low-pass component only), and prints how far each face
disagrees with the photo at low resolution before and after back-projection.

``--landmarks points.json`` takes the face-shaped mask from your own 68 landmarks instead (a JSON
list of faces, each 68 ``[x, y]`` in photo pixels, iBUG order, e.g. from dlib), e.g. for a network
that predicts none, or when the network's own are not to be trusted: an untrained network's
landmarks are scattered over the crop, and their mask is the clipped square.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dicsr import FaceSuperResolver, RestoredFace
from dicsr.face.consistency import back_project, lr_disagreement
from dicsr.face.crop import apply_affine, invert_affine
from dicsr.face.mask import mask_for_face
from dicsr.face.paste import paste_faces
from dicsr.image import Background, LoadedImage, load_image, save_image, to_uint8
from dicsr.pipeline import PasteOptions, SelectionPolicy

TILE = 256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Show dicsr's paste-back controls side by side.")
    parser.add_argument("photo", type=Path)
    parser.add_argument("output", type=Path, help="picture to write (e.g. controls.png)")
    parser.add_argument("--model", default="dic-celeba",
                        help="a zoo name or model folder (a DIC model gives the face-shaped mask)")
    parser.add_argument("--detector-weights", type=Path, default=None,
                        help="local RetinaFace weights (default: fetched into the dicsr cache)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--upscale", type=float, default=4.0, help="photo scale (default: 4)")
    parser.add_argument("--landmarks", type=Path, default=None,
                        help="JSON list of faces, 68 [x, y] photo points each, for the face-shaped mask")
    parser.add_argument("--all-faces", action="store_true",
                        help="restore faces of every size (default: only those small enough for the model "
                             "to add detail)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    # The network's raw faces: this example back-projects them itself, to show both.
    resolver = FaceSuperResolver.from_pretrained(
        args.model, device=args.device, upscale=args.upscale, detector_weights=args.detector_weights,
        selection=SelectionPolicy(all_sizes=args.all_faces), paste=PasteOptions(back_projection=False),
    )
    # A float RGB array in gives float RGB arrays out: the faces, ready to composite.
    photo = load_image(load_image(args.photo).rgb)
    result = resolver.enhance(photo.rgb, paste_back=False)
    if not result.faces:
        left = "; ".join(f"{face.reason} ({face.detail})" for face in result.skipped_faces)
        print(f"no face restored{': ' + left if left else ''}")
        return 1
    size = resolver.config.hr_size
    restored = [face.image for face in result.faces]
    affines = [face.affine for face in result.faces]
    consistent = [back_project(face.image, face.lr) for face in result.faces]
    for i, (face, fixed) in enumerate(zip(result.faces, consistent, strict=True)):
        before, after = lr_disagreement(face.image, face.lr), lr_disagreement(fixed, face.lr)
        print(f"face {i}: LR disagreement {255 * before:.2f} -> {255 * after:.3f} levels "
              "with back-projection")
    squares = [mask_for_face(size)] * len(restored)
    annotated = json.loads(args.landmarks.read_text()) if args.landmarks else []
    shaped = [mask_for_face(size, _landmarks_for(face, annotated, size)) for face in result.faces]

    def composite(
        faces: list[np.ndarray], masks: list[np.ndarray], strength: float = 1.0, luminance_only: bool = False
    ) -> np.ndarray:
        background = Background.for_photo(photo, result.upscale)
        paste_faces(background.pixels, list(zip(faces, affines, strict=True)), upscale=result.upscale,
                    masks=masks, strength=strength, luminance_only=luminance_only, in_place=True)
        return np.asarray(background.result())

    plain = composite(restored, squares, strength=0.0)
    shaped_paste = composite(restored, shaped)
    projected = composite(consistent, shaped)
    variants = {
        "plain upscale": plain,
        "rounded square": composite(restored, squares),
        "face-shaped mask": shaped_paste,
        "masks (red square, green face)": _masks_picture(photo, result.upscale, affines, squares, shaped),
        "strength 0.5": composite(restored, shaped, strength=0.5),
        "luminance only": composite(restored, shaped, luminance_only=True),
        "back-projection": projected,
        "its change (x2, grey = 0)": np.clip(0.5 + 2 * (projected - shaped_paste), 0, 1),
        "0.8, back-proj., luminance": composite(consistent, shaped, strength=0.8, luminance_only=True),
    }
    region = _region_around(affines[0], size, result.upscale)
    tiles = [_tile(image, region, label) for label, image in variants.items()]
    grid = np.concatenate([np.concatenate(tiles[row : row + 3], axis=1) for row in (0, 3, 6)], axis=0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, args.output)
    print(f"{result.num_faces} face(s), {len(variants)} variants -> {args.output}")
    return 0


def _landmarks_for(face: RestoredFace, annotated: list[list[list[float]]], size: int) -> np.ndarray | None:
    """The annotated face whose centre falls nearest the face frame's centre (in face coordinates),
    else the network's own landmarks (``None`` for networks without)."""
    centre = (size - 1) / 2.0
    candidates = [apply_affine(face.affine, np.asarray(points, dtype=np.float64)) for points in annotated]
    inside = [p for p in candidates if np.abs(p.mean(axis=0) - centre).max() < size / 2]
    if not inside:
        return face.landmarks
    return min(inside, key=lambda p: float(np.abs(p.mean(axis=0) - centre).max()))


def _masks_picture(
    photo: LoadedImage, scale: float, affines: list[np.ndarray], squares: list[np.ndarray],
    shaped: list[np.ndarray],
) -> np.ndarray:
    """Red: the rounded square's opacity; green: the face-shaped mask's (yellow where both)."""
    height, width = round(photo.rgb.shape[0] * scale), round(photo.rgb.shape[1] * scale)
    white = [np.ones((squares[0].shape[0],) * 2 + (3,), np.float32)] * len(affines)
    black = np.zeros((height, width, 3), np.float32)
    square = paste_faces(black, list(zip(white, affines, strict=True)), upscale=scale, masks=squares)
    face = paste_faces(black, list(zip(white, affines, strict=True)), upscale=scale, masks=shaped)
    return np.stack([square[..., 0], face[..., 0], np.zeros_like(face[..., 0])], axis=-1)


def _region_around(affine: np.ndarray, size: int, scale: float) -> tuple[int, int, int, int]:
    """The face frame's footprint in the output photo, enlarged by a quarter."""
    edges = np.array([[-0.5, -0.5], [size - 0.5, size - 0.5]])
    (x0, y0), (x1, y1) = (apply_affine(invert_affine(affine), edges) + 0.5) * scale - 0.5
    grow = 0.125 * (x1 - x0)
    return round(x0 - grow), round(y0 - grow), round(x1 + grow), round(y1 + grow)


def _tile(image: np.ndarray, region: tuple[int, int, int, int], label: str) -> np.ndarray:
    picture = Image.fromarray(to_uint8(image)).crop(region).resize((TILE, TILE), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, 0, TILE, 14), fill=(0, 0, 0))
    draw.text((4, 2), label, fill=(255, 255, 255))
    return np.asarray(picture)


if __name__ == "__main__":
    sys.exit(main())
