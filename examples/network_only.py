"""Run only the network on faces that are already aligned: no detector, no paste-back.

    python examples/network_only.py Adele_crop.png Julia_Roberts_crop.png -o out/ --model ./models/dic-celeba

Each input is one aligned face, e.g. a 512 px FFHQ-aligned crop from GFPGAN's
``inputs/cropped_faces``. The face is cut to the model's training crop (``--box``), resampled
to the network's input size (16x16 for DIC and SPARNet) exactly as the training data was made,
and all faces go through the network in one batch. For every input this writes
``<stem>_lr.png`` (the network input), ``<stem>_sr.png`` (the restored face) and, for models
that predict landmarks, ``<stem>_landmarks.png``.

``--box`` is the crop as fractions of the image side. The default is DIC's training box (the
68-landmark square enlarged 1.3x) on an FFHQ-aligned face, as dicsr's calibrated detection model
places it on GFPGAN's four sample crops (spread under 0.03). SPARNetHD takes the FFHQ crop
itself, so the box is ignored for it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from dicsr import load_model
from dicsr.face.crop import crop_aligned, crop_face
from dicsr.face.landmarks import subpixel_landmarks
from dicsr.image import load_image, save_image, to_uint8
from dicsr.visualize import draw_landmarks

FFHQ_DIC_BOX = (0.095, 0.265, 0.85, 1.02)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run only the network on aligned faces.")
    parser.add_argument("faces", type=Path, nargs="+", help="aligned face images")
    parser.add_argument("-o", "--output-dir", type=Path, default=Path("network_only"))
    parser.add_argument("--model", default="dic-celeba", help="zoo name, hf-hub:org/repo@rev or model folder")
    parser.add_argument("--box", type=float, nargs=4, default=FFHQ_DIC_BOX, metavar=("X0", "Y0", "X1", "Y1"),
                        help="face crop as fractions of the image width/height (default: %(default)s)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    adapter = load_model(args.model, device=args.device)  # a NetworkAdapter: [0, 1] RGB in and out
    config = adapter.config
    crops = []
    for path in args.faces:
        rgb = load_image(path).rgb  # H×W×3 float32 RGB in [0, 1]
        if config.crop == "ffhq":
            crops.append(crop_aligned(rgb, lr_size=config.lr_size, hr_size=config.hr_size))
            continue
        height, width = rgb.shape[:2]
        x0, y0, x1, y1 = args.box
        # Fractions of the image -> continuous pixel coordinates (integer = pixel centre).
        box = (x0 * width - 0.5, y0 * height - 0.5, x1 * width - 0.5, y1 * height - 0.5)
        crops.append(
            crop_face(rgb, box, convention=config.crop, lr_size=config.lr_size, hr_size=config.hr_size)
        )

    batch = torch.from_numpy(np.stack([crop.lr for crop in crops])).permute(0, 3, 1, 2)  # B×3×lr×lr
    output = adapter(batch)  # output.images: B×3×hr×hr float32 in [0, 1]
    restored = output.images.permute(0, 2, 3, 1).cpu().numpy()
    landmarks = None if output.heatmaps is None else subpixel_landmarks(output.heatmaps).numpy()

    args.output_dir.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(args.faces):
        save_image(to_uint8(crops[index].lr), args.output_dir / f"{path.stem}_lr.png")
        save_image(to_uint8(restored[index]), args.output_dir / f"{path.stem}_sr.png")
        if landmarks is not None:
            overlay = draw_landmarks(to_uint8(restored[index]), [landmarks[index]])
            overlay.save(args.output_dir / f"{path.stem}_landmarks.png")
    print(f"{len(crops)} face(s): {config.lr_size}x{config.lr_size} -> {config.hr_size}x{config.hr_size}"
          f" with {config.arch} ({config.preset})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
