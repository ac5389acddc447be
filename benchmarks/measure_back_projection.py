"""Measure back-projection (dicsr.face.consistency) on the golden networks and real faces.

Every annotated face of ../shared/faces/landmarks68.json is cut with DIC's training box
(``landmark_square_from_points68``: HR 128 px, LR = Pillow bicubic 16 px, docs/specs/dic.md §1) and restored
by the golden (seeded random) DIC and SPARNet checkpoints of ../shared/golden, converted with
``convert_checkpoint``. For each network it prints, before → after back-projection:

* the LR disagreement: mean absolute difference between the restored face downsampled as the
  input was made and the LR crop, in 8-bit levels (mean over faces, and the worst face);
* PSNR against the HR crop the LR was made from (the face the network should have produced);
* where the change lies in frequency: the share of its energy below the LR Nyquist frequency
  (1/16 cycle per HR pixel), and how much the energy of the face above twice that frequency (the
  detail a network adds) changes.

The golden weights are random: their faces are noise (7% of their samples saturated at 0 or 1),
so the numbers show what the operation does (how far it moves a face, and where in the spectrum),
not how a trained network looks. The projection alone (one round, without clipping) is printed
apart from the rounds: what it changes outside the low band comes from the clipping.

A third block restores no face at all: each HR crop plus a smooth colour cast (what a network
gets wrong) and fine detail above twice the LR Nyquist frequency (what super-resolution adds);
back-projection should remove the cast and keep the detail.

Usage:  python benchmarks/measure_back_projection.py [--shared ../shared] [--rounds 1 3 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from dicsr.face.consistency import (
    BACK_PROJECTION_ITERATIONS,
    back_project,
    downsampling_matrix,
    lr_disagreement,
)
from dicsr.face.crop import FaceCrop, crop_face, landmark_square_from_points68
from dicsr.image import load_image
from dicsr.weights import convert_checkpoint, load_model

CHECKPOINTS = {
    "DIC (golden)": ("DIC_CelebA_ckp.pth", "dic-celeba"),
    "SPARNet (golden)": ("SPARNet.pth", "sparnet"),
}
LR_NYQUIST = 0.5 / 8  # cycles per HR pixel


def band_energy(image: np.ndarray, low: float, high: float) -> float:
    frequency = np.abs(np.fft.fftfreq(image.shape[0]))
    band = np.maximum(frequency[:, None], frequency[None, :])
    spectrum = np.abs(np.fft.fft2(image.astype(np.float64), axes=(0, 1))) ** 2
    return float(spectrum[(band >= low) & (band <= high)].sum())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    parser.add_argument("--rounds", type=int, nargs="+", default=[1, 3, BACK_PROJECTION_ITERATIONS])
    args = parser.parse_args(argv)

    annotations = json.loads((args.shared / "faces" / "landmarks68.json").read_text())
    crops = []
    for name, faces in annotations.items():
        rgb = load_image(args.shared / "faces" / name).rgb
        for points in faces:
            box = landmark_square_from_points68(np.asarray(points, dtype=np.float64))
            crops.append(crop_face(rgb, box, convention="landmark_square", lr_size=16, hr_size=128))
    print(f"{len(crops)} annotated faces from {len(annotations)} photos, DIC training crops 16 -> 128\n")
    lr_batch = torch.from_numpy(np.stack([c.lr for c in crops])).permute(0, 3, 1, 2)

    with tempfile.TemporaryDirectory() as folder:
        for label, (checkpoint, name) in CHECKPOINTS.items():
            model = convert_checkpoint(args.shared / "golden" / checkpoint, Path(folder) / name, name=name)
            adapter = load_model(model)
            chunks = [adapter(lr_batch[i : i + 8]).images for i in range(0, len(crops), 8)]
            restored = list(torch.cat(chunks).permute(0, 2, 3, 1).numpy())
            report(label, restored, crops, args.rounds)
    report_known_cast_and_detail(crops)


def report(label: str, restored: list[np.ndarray], crops: list[FaceCrop], rounds_to_try: list[int]) -> None:
    lrs, hrs = [c.lr for c in crops], [c.hr for c in crops]
    before = np.array([lr_disagreement(f, lr) for f, lr in zip(restored, lrs, strict=True)]) * 255
    psnr_before = np.array([psnr(f, hr) for f, hr in zip(restored, hrs, strict=True)])
    print(f"{label}: LR disagreement {before.mean():.2f} levels (worst face {before.max():.2f}), "
          f"PSNR vs HR crop {psnr_before.mean():.2f} dB")
    for rounds in rounds_to_try:
        faces = [back_project(f, lr, iterations=rounds) for f, lr in zip(restored, lrs, strict=True)]
        after = np.array([lr_disagreement(f, lr) for f, lr in zip(faces, lrs, strict=True)]) * 255
        gain = np.array([psnr(f, hr) for f, hr in zip(faces, hrs, strict=True)]) - psnr_before
        pairs = list(zip(faces, restored, strict=True))
        low_share = np.mean([
            band_energy(a - f, 0, LR_NYQUIST) / band_energy(a - f, 0, 0.5) for a, f in pairs
        ])
        detail = np.mean([
            band_energy(a, 2 * LR_NYQUIST, 0.5) / band_energy(f, 2 * LR_NYQUIST, 0.5) - 1 for a, f in pairs
        ])
        print(f"  {rounds:2d} round(s): LR disagreement {after.mean():.3f} levels (worst {after.max():.3f}); "
              f"PSNR gain {gain.mean():+.2f} dB (least {gain.min():+.2f}); change below LR Nyquist "
              f"{100 * low_share:.1f}% of its energy; detail-band energy {100 * detail:+.1f}%")
    down = downsampling_matrix(128, 16)
    lift = np.linalg.solve(down @ down.T, down).T
    projected = [
        f + np.einsum("ij,jkc,lk->ilc", lift, c.lr - np.einsum("ij,jkc,lk->ilc", down, f, down), lift)
        for f, c in zip(restored, crops, strict=True)
    ]
    pairs = list(zip(projected, restored, strict=True))
    low_share = np.mean([band_energy(a - f, 0, LR_NYQUIST) / band_energy(a - f, 0, 0.5) for a, f in pairs])
    detail = np.mean([
        band_energy(a, 2 * LR_NYQUIST, 0.5) / band_energy(f, 2 * LR_NYQUIST, 0.5) - 1 for a, f in pairs
    ])
    print(f"  projection alone (no clipping): change below LR Nyquist {100 * low_share:.1f}% of its energy; "
          f"detail-band energy {100 * detail:+.1f}%")
    print()


def report_known_cast_and_detail(crops: list[FaceCrop]) -> None:
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:128, 0:128] / 127.0
    frequency = np.abs(np.fft.fftfreq(128))
    band = np.maximum(frequency[:, None], frequency[None, :])
    rows = []
    for crop in crops:
        cast = np.stack([0.06 + 0.04 * xs, -0.03 + 0 * xs, -0.05 * ys], axis=-1)
        noise = np.fft.fft2(rng.normal(0.0, 0.04, (128, 128, 3)), axes=(0, 1))
        noise[band <= 2 * LR_NYQUIST] = 0
        detail = np.real(np.fft.ifft2(noise, axes=(0, 1)))
        face = np.clip(crop.hr + cast + detail, 0, 1).astype(np.float32)
        fixed = back_project(face, crop.lr)
        rows.append((
            255 * lr_disagreement(face, crop.lr),
            255 * lr_disagreement(fixed, crop.lr),
            255 * np.abs((face - crop.hr).mean((0, 1))).mean(),
            255 * np.abs((fixed - crop.hr).mean((0, 1))).mean(),
            band_energy(fixed, 2 * LR_NYQUIST, 0.5) / band_energy(face, 2 * LR_NYQUIST, 0.5) - 1,
        ))
    before, after, cast_before, cast_after, detail_change = np.array(rows).mean(axis=0)
    print("HR crop + smooth colour cast + fine detail (no network):")
    print(f"  LR disagreement {before:.2f} -> {after:.3f} levels; mean colour error {cast_before:.2f} -> "
          f"{cast_after:.2f} levels; detail-band energy {100 * detail_change:+.2f}%")


if __name__ == "__main__":
    main()
