"""Calibrate the detection → crop-box models of dicsr.face.crop against annotated photos.

DIC was trained on squares around the 68 landmarks enlarged 1.3× (``landmark_square_from_points68``).
At inference we only have RetinaFace's box and 5 points, so this script runs the real detector on
the annotated photos of ../shared/faces (landmarks68.json), matches each annotated face to a
detection, and fits by least squares

* the box model used by dicsr (MTCNN-style squaring of the detector box):
  centre = box centre + (0, k·h), side = s·max(w, h);
* for comparison, a 5-point model: centre = e + a·(m − e) + b·(n − (e + m)/2),
  side = c·|eye_r − eye_l| + d·|m − e|  (e, m = eye / mouth midpoints, n = nose tip).

Both are fitted against the DIC training box with errors normalised by its side. It prints the
constants to paste into crop.py and the residuals: in-sample, and leave-one-photo-out (each
photo's faces predicted by a model fitted without that photo). The box model generalises better
(leave-one-photo-out mean IoU 0.88 vs 0.86 on the 2026-11 data), so it is the one dicsr uses.

Usage:  python benchmarks/calibrate_dic_crop.py [--shared ../shared] [--threshold 0.5]
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dicsr.face.crop import landmark_square_from_points68
from dicsr.face.detect import DetectedFace, FaceDetector
from dicsr.image import load_image

logger = logging.getLogger("calibrate_dic_crop")
DETECTOR_FILE = "weights/detection_mobilenet0.25_Final.pth"


@dataclass(frozen=True)
class Sample:
    """One annotated face matched to a detection."""

    image: str
    manual: bool
    target_center: np.ndarray  # DIC training box centre
    target_side: float
    face: DetectedFace


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def collect_samples(shared: Path, detector: FaceDetector) -> tuple[list[Sample], int]:
    """Match annotated faces to detections (best IoU with the tight landmark box, IoU ≥ 0.3)."""
    faces_dir = shared / "faces"
    annotations = json.loads((faces_dir / "landmarks68.json").read_text())
    meta = json.loads((faces_dir / "landmarks68_meta.json").read_text())
    samples, unmatched = [], 0
    for image_name, faces in sorted(annotations.items()):
        detections = detector.detect(load_image(faces_dir / image_name).to_uint8())
        for index, points in enumerate(faces):
            points = np.asarray(points, dtype=np.float64)
            tight = (*points.min(axis=0), *points.max(axis=0))
            scored = [(box_iou(tight, d.box), d) for d in detections]
            best_iou, best = max(scored, key=lambda item: item[0], default=(0.0, None))
            if best is None or best_iou < 0.3:
                unmatched += 1
                logger.warning(
                    "%s face %d: no matching detection (best IoU %.2f)", image_name, index, best_iou
                )
                continue
            x0, y0, x1, y1 = landmark_square_from_points68(points)
            samples.append(
                Sample(
                    image=image_name,
                    manual=meta[image_name][index]["kind"].startswith("manual"),
                    target_center=np.array([(x0 + x1) / 2, (y0 + y1) / 2]),
                    target_side=x1 - x0,
                    face=best,
                )
            )
    return samples, unmatched


def five_point_features(face: DetectedFace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre design 2×2, centre origin, side design 2) of the 5-point model."""
    p = face.points5
    eyes, nose, mouth = (p[0] + p[1]) / 2, p[2], (p[3] + p[4]) / 2
    center_design = np.stack([mouth - eyes, nose - (eyes + mouth) / 2], axis=1)
    side_design = np.array([np.linalg.norm(p[1] - p[0]), np.linalg.norm(mouth - eyes)])
    return center_design, eyes, side_design


def box_features(face: DetectedFace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre design 2×1, centre origin, side design 1) of the box model."""
    x0, y0, x1, y1 = face.box
    return (
        np.array([[0.0], [y1 - y0]]),
        np.array([(x0 + x1) / 2, (y0 + y1) / 2]),
        np.array([max(x1 - x0, y1 - y0)]),
    )


def fit(samples: list[Sample], features) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares centre and side coefficients; every row divided by the true side."""
    rows, rhs, side_rows, side_rhs = [], [], [], []
    for s in samples:
        design, origin, side_design = features(s.face)
        rows.append(design / s.target_side)
        rhs.append((s.target_center - origin) / s.target_side)
        side_rows.append(side_design / s.target_side)
        side_rhs.append(1.0)
    center_coef = np.linalg.lstsq(np.concatenate(rows), np.concatenate(rhs), rcond=None)[0]
    side_coef = np.linalg.lstsq(np.array(side_rows), np.array(side_rhs), rcond=None)[0]
    return center_coef, side_coef


def errors(samples: list[Sample], features, center_coef: np.ndarray, side_coef: np.ndarray) -> np.ndarray:
    """Per face: (centre error / side, side ratio − 1, IoU with the true box)."""
    out = []
    for s in samples:
        design, origin, side_design = features(s.face)
        center = origin + design @ center_coef
        side = float(side_design @ side_coef)
        half, true_half = side / 2, s.target_side / 2
        predicted = (center[0] - half, center[1] - half, center[0] + half, center[1] + half)
        truth = (*(s.target_center - true_half), *(s.target_center + true_half))
        out.append(
            [
                np.linalg.norm(center - s.target_center) / s.target_side,
                side / s.target_side - 1,
                box_iou(predicted, truth),
            ]
        )
    return np.array(out)


def leave_one_photo_out(samples: list[Sample], features) -> np.ndarray:
    """Errors of each photo's faces under a model fitted on the other photos."""
    out = []
    for image in sorted({s.image for s in samples}):
        train = [s for s in samples if s.image != image]
        test = [s for s in samples if s.image == image]
        out.append(errors(test, features, *fit(train, features)))
    return np.concatenate(out)


def summary(name: str, errs: np.ndarray) -> str:
    """One line of RMS / max statistics."""
    center, side, iou = errs[:, 0], errs[:, 1], errs[:, 2]
    return (
        f"{name:34s} centre err/side RMS {np.sqrt((center**2).mean()):.3f} max {center.max():.3f} | "
        f"side ratio err RMS {np.sqrt((side**2).mean()):.3f} max |{np.abs(side).max():.3f}| | "
        f"IoU mean {iou.mean():.3f} min {iou.min():.3f}"
    )


def main() -> None:
    """Run the calibration and print constants and residuals."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--threshold", type=float, default=0.5, help="detector score threshold")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    detector = FaceDetector(args.shared / DETECTOR_FILE, score_threshold=args.threshold)
    samples, unmatched = collect_samples(args.shared, detector)
    manual = [s for s in samples if s.manual]
    logger.info(
        "%d annotated faces matched (%d hand-annotated, %d model/semi-automatic), %d unmatched, %d photos",
        len(samples),
        len(manual),
        len(samples) - len(manual),
        unmatched,
        len({s.image for s in samples}),
    )
    for name, features, constants in (
        ("Box model (used by dicsr)", box_features, ("DETECTION_CENTER_DOWN", "DETECTION_SIDE_PER_BOX")),
        (
            "5-point model (comparison)",
            five_point_features,
            ("along eye->mouth", "along nose offset", "side per eye distance", "side per eye-mouth"),
        ),
    ):
        center_coef, side_coef = fit(samples, features)
        logger.info("\n%s fitted constants:", name)
        for constant, value in zip(constants, [*center_coef, *side_coef], strict=True):
            logger.info("    %s = %.4f", constant, value)
        logger.info(summary("  in-sample, all faces", errors(samples, features, center_coef, side_coef)))
        logger.info(
            summary("  in-sample, hand-annotated only", errors(manual, features, center_coef, side_coef))
        )
        logger.info(summary("  leave-one-photo-out, all faces", leave_one_photo_out(samples, features)))


if __name__ == "__main__":
    main()
