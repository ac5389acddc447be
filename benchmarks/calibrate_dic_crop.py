"""Calibrate the detection → ``landmark_square`` crop box of dicsr.face.crop, with pose in mind.

DIC was trained on squares around the 68 landmarks enlarged 1.3× (``landmark_square_from_points68``);
SPARNet's crops are framed the same way. At inference dicsr has RetinaFace's box and five points,
so the training box is predicted from them. This script runs the real detector on the annotated
photos (``annotated_photos.py``: scaled to 1, 0.71, 0.5, 0.35 and 0.25 so tiny faces are in, and
turned by ±25° at scales 1 and 0.5 so tilted faces with an exactly known training box are in),
matches each annotated face to its detection (kept when scored at least the default threshold),
and fits by least squares, every row normalised by the true side:

* **before**: the box model dicsr used until now, centre = box centre + (0, k·h),
  side = s·max(w, h), with its published constants (k = 0.1273, s = 1.0382, fitted on the 55
  unscaled, untilted faces);
* **pose models**: the centre moved along the face's own down axis (perpendicular to the eye line,
  so a tilted face's offset tilts with it), the side growing with |sin roll| (the axis-aligned
  training box of a tilted face is larger), and optional yaw / pitch terms from the five points
  (nose offset across the face; nose depth between the eye line and the mouth).

Faces are grouped by the pose of their *annotation* (the detector plays no part): **tilted**
(|roll| ≥ 15°), else **turned** (nose offset ≥ 0.2 face sizes across the face, or nose depth
outside 0.4-0.65 of the way from the eye line to the mouth: yaw or pitch), else **frontal**.
Residuals are reported per group, in-sample and leave-one-photo-out (every copy of a photo is
held out together), with the share of faces whose 68 points are not all inside the predicted box
("clipped"). The side is finally enlarged by ``LOOSE`` (5 %): a slightly loose box costs the
model a face a few percent smaller than it was trained on; a tight one cuts the jaw off.

Reproduce (``--cache`` is shared with face_selection.py)::

    python benchmarks/calibrate_dic_crop.py --cache /tmp/detections.npz \\
        --json benchmarks/results/crop_calibration.json --markdown benchmarks/results/crop_calibration.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import annotated_photos as photos_

from dicsr.face import crop as crop_
from dicsr.face.detect import DetectedFace
from dicsr.face.select import DEFAULT_SCORE_THRESHOLD

logger = logging.getLogger("calibrate_dic_crop")

SCALES = (1.0, 0.71, 0.5, 0.35, 0.25)
TURNED_SCALES, TURNED_ANGLES = (1.0, 0.5), (-25.0, 25.0)
#: The copies the real-photo test checks (tests/test_face_select.py): the annotated photos at half
#: size, upright and turned by 25°.
TEST_SUBSET = ((0.5, 0.0), (0.5, 25.0))
GROUPS = ("frontal", "turned", "tilted")
LOOSE = 1.05

#: Constants of the box model before this calibration (dicsr 0.1.0).
BEFORE = {"center_down": 0.1273, "side_per_box": 1.0382}


@dataclass(frozen=True)
class Sample:
    """One annotated face matched to its detection."""

    photo: str
    variant: tuple[float, float]  # (scale, angle)
    manual: bool
    group: str
    face: DetectedFace
    points68: np.ndarray
    target_center: np.ndarray
    target_side: float


def five_points(points68: np.ndarray) -> np.ndarray:
    """RetinaFace's five points from 68 landmarks: eye centres, nose tip, mouth corners."""
    return np.stack(
        [points68[36:42].mean(0), points68[42:48].mean(0), points68[30], points68[48], points68[54]]
    )


def pose_cues(points5: np.ndarray) -> tuple[float, float, float]:
    """(roll in degrees, nose offset across the face in face sizes, nose depth eye line → mouth)."""
    left_eye, right_eye, nose, mouth_left, mouth_right = points5
    eyes, mouth = (left_eye + right_eye) / 2, (mouth_left + mouth_right) / 2
    along = (right_eye - left_eye) / max(float(np.linalg.norm(right_eye - left_eye)), 1e-12)
    down = np.array([-along[1], along[0]])
    size = max(float(np.linalg.norm(right_eye - left_eye)), float(np.linalg.norm(mouth - eyes)))
    offset = float((nose - (eyes + mouth) / 2) @ along) / size
    depth = float((nose - eyes) @ down) / max(float((mouth - eyes) @ down), 1e-12)
    return crop_.face_roll(points5), offset, depth


def pose_group(points68: np.ndarray) -> str:
    """The pose group of an annotated face (see the module docstring)."""
    roll, offset, depth = pose_cues(five_points(points68))
    if abs(roll) >= 15:
        return "tilted"
    if abs(offset) >= 0.2 or not 0.4 <= depth <= 0.65:
        return "turned"
    return "frontal"


def collect_samples(args: argparse.Namespace) -> list[Sample]:
    """Every annotated face of every copy, matched to a detection scored at least the default threshold."""
    detector = photos_.load_detector(args.shared, 0.2)
    annotated = photos_.annotated_photos(args.shared)
    variants = photos_.variants(annotated, SCALES) + photos_.variants(annotated, TURNED_SCALES, TURNED_ANGLES)
    samples = []
    for photo, detections in zip(variants, photos_.detect_all(detector, variants, args.cache), strict=True):
        matching = photos_.match(photo, detections)
        for index, det in matching.annotated.items():
            if detections[det].score < DEFAULT_SCORE_THRESHOLD:
                continue
            points = photo.faces68[index]
            x0, y0, x1, y1 = crop_.landmark_square_from_points68(points)
            samples.append(
                Sample(
                    photo=photo.name,
                    variant=(photo.scale, photo.angle),
                    manual=photo.manual[index],
                    group=pose_group(points),
                    face=detections[det],
                    points68=points,
                    target_center=np.array([(x0 + x1) / 2, (y0 + y1) / 2]),
                    target_side=x1 - x0,
                )
            )
    return samples


# --- models: (centre design 2×k, centre origin, side design m) ------------------------------------

Features = Callable[[DetectedFace], tuple[np.ndarray, np.ndarray, np.ndarray]]


def box_model(face: DetectedFace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Before: centre = box centre + (0, k·h), side = s·max(w, h)."""
    x0, y0, x1, y1 = face.box
    return (
        np.array([[0.0], [y1 - y0]]),
        np.array([(x0 + x1) / 2, (y0 + y1) / 2]),
        np.array([max(x1 - x0, y1 - y0)]),
    )


def pose_model(center_terms: Sequence[str] = (), side_terms: Sequence[str] = ("roll",)) -> Features:
    """Centre offset along the face's down axis (+ optional terms), side = max(w, h)·(s + terms)."""

    def features(face: DetectedFace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = face.box
        longer = max(x1 - x0, y1 - y0)
        roll, offset, depth = pose_cues(face.points5)
        angle = math.radians(roll)
        along, down = (
            np.array([math.cos(angle), math.sin(angle)]),
            np.array([-math.sin(angle), math.cos(angle)]),
        )
        columns = [down * (y1 - y0)]
        columns += [along * longer * offset] if "yaw" in center_terms else []
        columns += [down * longer * (depth - 0.52)] if "pitch" in center_terms else []
        side = [longer]
        side += [longer * abs(math.sin(angle))] if "roll" in side_terms else []
        side += [longer * abs(offset)] if "yaw" in side_terms else []
        side += [longer * (depth - 0.52)] if "pitch" in side_terms else []
        return np.stack(columns, axis=1), np.array([(x0 + x1) / 2, (y0 + y1) / 2]), np.array(side)

    return features


MODELS: dict[str, Features] = {
    "box (before)": box_model,
    "pose: roll": pose_model(),
    "pose: roll + yaw": pose_model(("yaw",), ("roll", "yaw")),
    "pose: roll + yaw + pitch": pose_model(("yaw", "pitch"), ("roll", "yaw", "pitch")),
}
CHOSEN = "pose: roll"


def fit(samples: Sequence[Sample], features: Features) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares centre and side coefficients; every row divided by the true side."""
    rows, rhs, side_rows = [], [], []
    for s in samples:
        design, origin, side_design = features(s.face)
        rows.append(design / s.target_side)
        rhs.append((s.target_center - origin) / s.target_side)
        side_rows.append(side_design / s.target_side)
    center = np.linalg.lstsq(np.concatenate(rows), np.concatenate(rhs), rcond=None)[0]
    side = np.linalg.lstsq(np.array(side_rows), np.ones(len(side_rows)), rcond=None)[0]
    return center, side


def residuals(samples: Sequence[Sample], predict: Callable[[DetectedFace], crop_.Box]) -> np.ndarray:
    """Per face: centre error / true side, side ratio − 1, IoU with the training box, clipped (0/1)."""
    out = []
    for s in samples:
        box = predict(s.face)
        center = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        half = s.target_side / 2
        truth = (*(s.target_center - half), *(s.target_center + half))
        p = s.points68
        clipped = bool(
            (p[:, 0] < box[0]).any()
            or (p[:, 0] > box[2]).any()
            or (p[:, 1] < box[1]).any()
            or (p[:, 1] > box[3]).any()
        )
        out.append(
            [
                float(np.linalg.norm(center - s.target_center)) / s.target_side,
                (box[2] - box[0]) / s.target_side - 1,
                photos_.box_iou(box, truth),
                clipped,
            ]
        )
    return np.array(out).reshape(-1, 4)


def predictor(
    features: Features, center: np.ndarray, side: np.ndarray, loose: float = 1.0
) -> Callable[[DetectedFace], crop_.Box]:
    """The box a fitted model predicts for a detection."""

    def predict(face: DetectedFace) -> crop_.Box:
        design, origin, side_design = features(face)
        c = origin + design @ center
        return crop_.square_box((float(c[0]), float(c[1])), float(side_design @ side) * loose)

    return predict


def leave_one_photo_out(samples: Sequence[Sample], features: Features, loose: float = 1.0) -> np.ndarray:
    """Each photo's faces (all its copies) predicted by a model fitted without that photo."""
    out = np.zeros((len(samples), 4))
    for photo in sorted({s.photo for s in samples}):
        held = [i for i, s in enumerate(samples) if s.photo == photo]
        center, side = fit([s for s in samples if s.photo != photo], features)
        out[held] = residuals([samples[i] for i in held], predictor(features, center, side, loose))
    return out


def summary(errors: np.ndarray, samples: Sequence[Sample]) -> dict[str, Any]:
    """RMS / mean / extreme statistics per pose group and over all faces."""
    out = {}
    for group in (*GROUPS, "all"):
        mask = np.array([group in ("all", s.group) for s in samples])
        e = errors[mask]
        out[group] = {
            "faces": int(mask.sum()),
            "center_rms": float(np.sqrt((e[:, 0] ** 2).mean())),
            "center_max": float(e[:, 0].max()),
            "side_rms": float(np.sqrt((e[:, 1] ** 2).mean())),
            "side_mean": float(e[:, 1].mean()),
            "iou_mean": float(e[:, 2].mean()),
            "iou_min": float(e[:, 2].min()),
            "clipped": float(e[:, 3].mean()),
        }
    return out


def library_predict(face: DetectedFace) -> crop_.Box:
    """What dicsr does now."""
    return crop_.landmark_square_from_detection(face)


def before_predict(face: DetectedFace) -> crop_.Box:
    """What dicsr did before this calibration."""
    return predictor(box_model, np.array([BEFORE["center_down"]]), np.array([BEFORE["side_per_box"]]))(face)


def main(argv: Sequence[str] | None = None) -> None:
    """Fit, cross-validate and print / write the residual tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--cache", type=Path, default=None, help="detections cache (.npz)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    samples = collect_samples(args)
    report: dict[str, Any] = {
        "command": " ".join(["python benchmarks/calibrate_dic_crop.py", *(argv or sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "faces": len(samples),
        "photos": len({s.photo for s in samples}),
        "hand_annotated": sum(s.manual for s in samples),
        "groups": {g: sum(s.group == g for s in samples) for g in GROUPS},
        "models": {},
    }
    for name, features in MODELS.items():
        center, side = fit(samples, features)
        entry: dict[str, Any] = {"center_coefficients": center.tolist(), "side_coefficients": side.tolist()}
        for loose in (1.0, LOOSE):
            entry[f"leave_one_photo_out x{loose:g}"] = summary(
                leave_one_photo_out(samples, features, loose), samples
            )
        report["models"][name] = entry
    center, side = fit(samples, MODELS[CHOSEN])
    report["chosen"] = {
        "model": CHOSEN,
        "loose": LOOSE,
        "center_down": float(center[0]),
        "side_per_box": float(side[0]),
        "side_per_sin_roll": float(side[1]),
        "in_crop_py": {
            "center_down": crop_.DETECTION_CENTER_DOWN,
            "side_per_box": crop_.DETECTION_SIDE_PER_BOX,
            "side_per_sin_roll": crop_.DETECTION_SIDE_PER_SIN_ROLL,
            "loose": crop_.CROP_LOOSENESS,
        },
    }
    report["before"] = {
        "constants": BEFORE,
        "residuals": summary(residuals(samples, before_predict), samples),
    }
    report["after"] = {"residuals": summary(residuals(samples, library_predict), samples)}
    subset = [s for s in samples if s.variant in TEST_SUBSET]
    report["test_subset"] = {
        "copies": [list(v) for v in TEST_SUBSET],
        "before": summary(residuals(subset, before_predict), subset),
        "after": summary(residuals(subset, library_predict), subset),
    }
    text = markdown(report)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(text)


TABLE_HEADER = (
    "| model | residuals | group | faces | centre RMS (max) | side RMS | side mean | IoU mean (min) "
    "| clipped |"
)


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    chosen = report["chosen"]
    lines = [
        "# Detection → landmark_square calibration",
        "",
        f"{report['date']} · command: `{report['command']}`",
        "",
        f"{report['faces']} detected annotated faces (score ≥ {DEFAULT_SCORE_THRESHOLD:g}) in "
        f"{report['photos']} photos and their scaled / turned copies; "
        f"{report['hand_annotated']} of them hand-annotated; "
        f"groups {report['groups']}.",
        "",
        f"Chosen: `{chosen['model']}` × {chosen['loose']:g}: centre_down {chosen['center_down']:.4f}, "
        f"side_per_box {chosen['side_per_box']:.4f}, side_per_sin_roll {chosen['side_per_sin_roll']:.4f} "
        f"(crop.py: {chosen['in_crop_py']}).",
        "",
        "Errors are fractions of the true side; 'clipped' = share of faces with a landmark outside the box.",
        "",
        TABLE_HEADER,
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def rows(model: str, kind: str, stats: dict[str, Any]) -> None:
        for group, s in stats.items():
            lines.append(
                f"| {model} | {kind} | {group} | {s['faces']} "
                f"| {s['center_rms']:.1%} ({s['center_max']:.1%}) | {s['side_rms']:.1%} "
                f"| {s['side_mean']:+.1%} | {s['iou_mean']:.3f} ({s['iou_min']:.2f}) | {s['clipped']:.1%} |"
            )

    rows("before (dicsr 0.1.0 constants)", "as shipped", report["before"]["residuals"])
    rows("after (crop.py now)", "in-sample", report["after"]["residuals"])
    for name, entry in report["models"].items():
        for key, stats in entry.items():
            if key.startswith("leave_one_photo_out"):
                rows(name, key.replace("_", " "), stats)
    lines += [
        "",
        f"Test subset (copies {report['test_subset']['copies']}, checked by tests/test_face_select.py):",
        "",
        TABLE_HEADER,
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows("before", "as shipped", report["test_subset"]["before"])
    rows("after", "crop.py now", report["test_subset"]["after"])
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
