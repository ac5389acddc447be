"""Calibrate and measure dicsr.face.select on the annotated photos of ../shared/faces.

Reproduce (about 40 minutes on two busy cores; ``--cache`` makes re-runs take seconds)::

    python benchmarks/face_selection.py --cache /tmp/detections.npz \\
        --json benchmarks/results/face_selection.json --markdown benchmarks/results/face_selection.md

The real RetinaFace mobile0.25 detector (``FaceDetector`` defaults, every detection scored 0.2 or
more) runs on the annotated photos (``annotated_photos.py``) at five scales (1, 0.71, 0.5, 0.35,
0.25: faces from ~100 px down to the ~8 px the detector can still find), on copies turned by ±25°
at scales 1 and 0.5 (tilted faces), on copies turned by ±45°, ±60° and 90° (how RetinaFace reads a
face lying on its side) and on the photos without a human face at scales 1, 0.5 and 0.25.
Detections are matched to the annotated faces and to the faces labelled by eye
(``face_labels.json``); see ``annotated_photos.match``.

It reports, with the rules of ``dicsr.face.select`` at their current settings:

1. precision and recall for a range of score thresholds, with and without the landmark rules
   (duplicates are always suppressed), for all faces and for faces whose crop is at most 32 px
   (the ones a 16-px model restores); the default threshold is the middle of the range where the
   F0.5 score (precision weighted twice) stays within 0.002 of its best;
2. each rule's margin on the real faces (the closest any real face comes to the rule's bound) and
   how many real faces and false positives each rule rejects;
3. duplicates: pairs of detections on one face, found and suppressed, per photo set; and the
   closest two different real faces come to the duplicate rules;
4. the size rule: the face detail a model with 16-px inputs discards, for crops of 1 to 4 times
   its input (the annotated faces, shrunk; and the photos' own small faces);
5. RetinaFace on turned photos: how many faces it finds and the roll its five points measure.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import annotated_photos as photos_

from dicsr.face.crop import crop_face, crop_region_side, landmark_square_from_points68
from dicsr.face.detect import DetectedFace
from dicsr.face.select import (
    DEFAULT_SCORE_THRESHOLD,
    DUPLICATE_OVERLAP,
    DUPLICATE_POINT_DISTANCE,
    EYE_DISTANCE_PER_BOX_SIDE,
    MAX_ROLL_DEGREES,
    SelectionPolicy,
    landmark_geometry,
    overlap_of_smaller,
    select_faces,
)
from dicsr.image import resize_float

logger = logging.getLogger("face_selection")

SCALES = (1.0, 0.71, 0.5, 0.35, 0.25)
TURNED_SCALES, TURNED_ANGLES = (1.0, 0.5), (-25.0, 25.0)
LYING_SCALE, LYING_ANGLES = 0.71, (-45.0, 45.0, -60.0, 60.0, 90.0)
NO_FACE_SCALES = (1.0, 0.5, 0.25)
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
SCORE_FLOOR = 0.2
LR_SIZE = 16  # DIC and SPARNet: the models the size rule matters for
SMALL_CROP = 2 * LR_SIZE
#: tests/test_face_select.py checks precision and recall at the defaults on the photos at this scale.
TEST_SCALE = 0.5


def main(argv: Sequence[str] | None = None) -> None:
    """Run the detector on every photo set and print / write the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--cache", type=Path, default=None, help="detections cache (.npz)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    detector = photos_.load_detector(args.shared, SCORE_FLOOR)
    annotated = photos_.annotated_photos(args.shared)
    sets = {
        "scaled": photos_.variants(annotated, SCALES),
        "turned 25°": photos_.variants(annotated, TURNED_SCALES, TURNED_ANGLES),
        "no face": photos_.variants(photos_.no_face_photos(args.shared), NO_FACE_SCALES),
        "lying": photos_.variants(annotated, (LYING_SCALE,), LYING_ANGLES),
    }
    detections = {}
    for name, variants in sets.items():
        logger.info("detecting: %s (%d photos)", name, len(variants))
        detections[name] = photos_.detect_all(detector, variants, args.cache)

    labelled = [
        (v, d) for name in ("scaled", "turned 25°") for v, d in zip(sets[name], detections[name], strict=True)
    ]
    no_face = list(detections["no face"])
    report: dict[str, Any] = {
        "command": " ".join(["python benchmarks/face_selection.py", *(argv or sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "photos": {name: len(v) for name, v in sets.items()},
        "annotated_faces": sum(len(v.faces68) for v, _ in labelled),
        "thresholds": threshold_table(labelled, no_face),
        "rules": rule_margins(labelled, no_face),
        "duplicates": duplicate_counts(sets, detections),
        "size_rule": size_rule(annotated),
        "lying": lying_faces(sets["lying"], detections["lying"]),
    }
    report["default_threshold"] = DEFAULT_SCORE_THRESHOLD
    report["f05_plateau"] = f05_plateau(report["thresholds"])
    half = [(v, d) for v, d in labelled if v.scale == TEST_SCALE and v.angle == 0]
    row = precision_recall(half, DEFAULT_SCORE_THRESHOLD, True)["all"]
    report["test_subset"] = {"scale": TEST_SCALE, **{k: row[k] for k in ("precision", "recall", "faces")}}
    text = markdown(report)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float) + "\n")
    if args.markdown:
        args.markdown.write_text(text)


# --- 1. score threshold ---------------------------------------------------------------------------


def kept_faces(detections: Sequence[DetectedFace], threshold: float, check_landmarks: bool) -> set[int]:
    """Indices of the detections select_faces keeps (every size) at ``threshold``."""
    policy = SelectionPolicy(score_threshold=threshold, check_landmarks=check_landmarks, all_sizes=True)
    kept = select_faces(detections, convention="landmark_square", lr_size=LR_SIZE, policy=policy).kept
    ids = {id(face) for face in kept}
    return {i for i, face in enumerate(detections) if id(face) in ids}


def is_small(box: Sequence[float]) -> bool:
    """A face whose crop is at most 32 px (a 16-px model restores it)."""
    x0, y0, x1, y1 = box
    # The landmark_square of a face is ~1.3 x its landmark box (that of a detection ~1.05 x its box).
    return 1.3 * max(x1 - x0, y1 - y0) <= SMALL_CROP


def precision_recall(
    labelled: Sequence[tuple[photos_.Photo, list[DetectedFace]]], threshold: float, check_landmarks: bool
) -> dict[str, Any]:
    """Counts of true/false positives and of annotated faces found, overall and for small faces."""
    counts: collections.Counter[str] = collections.Counter()
    for photo, detections in labelled:
        matching = photos_.match(photo, detections)
        kept = kept_faces(detections, threshold, check_landmarks)
        for index in kept:
            size = (
                "small" if crop_region_side(detections[index], "landmark_square") <= SMALL_CROP else "large"
            )
            if index in matching.ignored:
                continue
            first = matching.face_of(index) is not None and index not in matching.duplicates
            counts[f"{'tp' if first else 'fp'}_{size}"] += 1
        for face_index, points in enumerate(photo.faces68):
            size = "small" if is_small(photos_.tight_box(points)) else "large"
            counts[f"faces_{size}"] += 1
            counts[f"found_{size}"] += matching.annotated.get(face_index) in kept
    row: dict[str, Any] = {"threshold": threshold, "landmark_rules": check_landmarks}
    for part, sizes in (("all", ("small", "large")), ("small", ("small",)), ("large", ("large",))):
        tp, fp = (sum(counts[f"{k}_{s}"] for s in sizes) for k in ("tp", "fp"))
        found, faces = (sum(counts[f"{k}_{s}"] for s in sizes) for k in ("found", "faces"))
        row[part] = {
            "tp": tp,
            "fp": fp,
            "found": found,
            "faces": faces,
            "precision": tp / max(1, tp + fp),
            "recall": found / max(1, faces),
        }
    precision, recall = row["all"]["precision"], row["all"]["recall"]
    row["f05"] = 1.25 * precision * recall / max(1e-12, 0.25 * precision + recall)
    return row


def threshold_table(
    labelled: Sequence[tuple[photos_.Photo, list[DetectedFace]]], no_face: Sequence[list[DetectedFace]]
) -> list[dict[str, Any]]:
    """Precision / recall / false positives on no-face photos for every threshold, rules off and on."""
    rows = []
    for threshold in THRESHOLDS:
        for check in (False, True):
            row = precision_recall(labelled, threshold, check)
            row["no_face_kept"] = sum(len(kept_faces(d, threshold, check)) for d in no_face)
            rows.append(row)
    return rows


def f05_plateau(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The thresholds (landmark rules on) whose F0.5 is within 0.002 of the best, and their middle."""
    ruled = [r for r in rows if r["landmark_rules"]]
    best = max(r["f05"] for r in ruled)
    plateau = [r["threshold"] for r in ruled if r["f05"] >= best - 0.002]
    return {"best_f05": best, "thresholds": plateau, "middle": float(np.median(plateau))}


# --- 2. rule margins ------------------------------------------------------------------------------


def rule_values(face: DetectedFace) -> dict[str, float]:
    """Each landmark rule's measure (see dicsr.face.select.implausible_landmarks)."""
    g = landmark_geometry(face)
    return {
        "inside_margin": g.inside_margin,
        "abs_roll": abs(g.roll_degrees),
        "mouth_depth": g.mouth_depth,
        "nose_depth": g.nose_depth,
        "eye_distance_per_box_side": g.eye_distance_per_box_side,
    }


RULE_BOUNDS = {
    "inside_margin": (0.0, None),
    "abs_roll": (None, MAX_ROLL_DEGREES),
    "mouth_depth": (0.0, None),
    "nose_depth": (0.0, 1.0),
    "eye_distance_per_box_side": EYE_DISTANCE_PER_BOX_SIDE,
}


def rule_margins(
    labelled: Sequence[tuple[photos_.Photo, list[DetectedFace]]], no_face: Sequence[list[DetectedFace]]
) -> dict[str, Any]:
    """Per rule: the real faces' range, the margin to the bound, and who the rule rejects."""
    real: list[tuple[str, DetectedFace]] = []
    false: list[DetectedFace] = []
    for photo, detections in labelled:
        matching = photos_.match(photo, detections)
        for i, face in enumerate(detections):
            if face.score < DEFAULT_SCORE_THRESHOLD:
                continue
            if matching.face_of(i) is not None and i not in matching.duplicates:
                real.append((f"{photo.variant} #{i}", face))
            elif i in matching.false:
                false.append(face)
    false += [face for d in no_face for face in d if face.score >= DEFAULT_SCORE_THRESHOLD]
    out: dict[str, Any] = {"real_faces": len(real), "false_positives": len(false), "rules": {}}
    for rule, (low, high) in RULE_BOUNDS.items():
        values = np.array([rule_values(face)[rule] for _, face in real])

        def rejects(v: float, low: float | None = low, high: float | None = high) -> bool:
            return (low is not None and not v > low) or (high is not None and not v < high)

        outside = [name for (name, face) in real if rejects(rule_values(face)[rule])]
        inside = values[[not rejects(v) for v in values]]
        margins = []
        if low is not None:
            margins.append(float(inside.min() - low))
        if high is not None:
            margins.append(float(high - inside.max()))
        out["rules"][rule] = {
            "bound": [low, high],
            "real_min": float(np.nanmin(values)),
            "real_p1": float(np.nanpercentile(values, 1)),
            "real_median": float(np.nanmedian(values)),
            "real_p99": float(np.nanpercentile(values, 99)),
            "real_max": float(np.nanmax(values)),
            "margin": min(margins),
            "real_rejected": outside,
            "false_rejected": sum(rejects(rule_values(face)[rule]) for face in false),
        }
    return out


# --- 3. duplicates ---------------------------------------------------------------------------------


def duplicate_counts(
    sets: dict[str, list[photos_.Photo]], detections: dict[str, list[list[DetectedFace]]]
) -> dict[str, Any]:
    """Per labelled photo set: duplicate pairs found and how they end; the closest distinct faces."""
    out: dict[str, Any] = {}
    for name in ("scaled", "turned 25°", "lying"):
        found = collections.Counter()
        closest = {"overlap": 0.0, "points": np.inf}
        for photo, dets in zip(sets[name], detections[name], strict=True):
            matching = photos_.match(photo, dets)
            policy = SelectionPolicy(score_threshold=SCORE_FLOOR, all_sizes=True, report_below_threshold=True)
            selection = select_faces(dets, convention="landmark_square", lr_size=LR_SIZE, policy=policy)
            reason = {id(s.face): s.reason for s in selection.skipped}
            for i, face in enumerate(dets):
                if i not in matching.duplicates:
                    continue
                found["pairs"] += 1
                found["pairs above threshold"] += face.score >= DEFAULT_SCORE_THRESHOLD
                outcome = reason.get(id(face), "kept")
                found[
                    f"{'above' if face.score >= DEFAULT_SCORE_THRESHOLD else 'below'} threshold: {outcome}"
                ] += 1
            firsts = [i for i in range(len(dets)) if matching.face_of(i) and i not in matching.duplicates]
            for a in firsts:
                for b in firsts:
                    if a < b:
                        hi, lo = (a, b) if dets[a].score >= dets[b].score else (b, a)
                        g = landmark_geometry(dets[hi])
                        size = max(g.eye_distance, g.eye_mouth_distance)
                        dist = (
                            float(np.linalg.norm(dets[lo].points5 - dets[hi].points5, axis=1).mean()) / size
                        )
                        closest["overlap"] = max(
                            closest["overlap"], overlap_of_smaller(dets[a].box, dets[b].box)
                        )
                        closest["points"] = min(closest["points"], dist)
        out[name] = {"counts": dict(found), "closest_distinct_faces": closest}
    out["rules"] = {"overlap_of_smaller": DUPLICATE_OVERLAP, "point_distance": DUPLICATE_POINT_DISTANCE}
    return out


# --- 4. size rule ------------------------------------------------------------------------------------


def size_rule(annotated: Sequence[photos_.Photo]) -> dict[str, Any]:
    """Detail a 16-px-input model discards, by crop size (in multiples of its input side)."""

    def discarded(face: np.ndarray, side: int, small: int) -> tuple[float, float]:
        back = np.clip(resize_float(resize_float(face, (small, small)), (side, side)), 0, 1)
        inner = slice(round(0.15 * side), round(0.85 * side))
        diff, ref = (face - back)[inner, inner] * 255, face[inner, inner] * 255
        energy = float((diff**2).sum() / ((ref - ref.mean(axis=(0, 1))) ** 2).sum())
        return float(np.sqrt((diff**2).mean())), energy

    ratios = (1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
    sharp: dict[float, list[tuple[float, float]]] = {r: [] for r in ratios}
    native: dict[int, list[tuple[float, float]]] = {2: [], 4: []}
    for photo in annotated:
        rgb = photo.rgb.astype(np.float32) / 255
        for points in photo.faces68:
            box = landmark_square_from_points68(points)
            side0 = box[2] - box[0]
            if side0 >= 4 * LR_SIZE:  # big enough to be shrunk to every ratio
                for ratio in ratios:
                    side = round(ratio * LR_SIZE)
                    face = crop_face(rgb, box, convention="landmark_square", lr_size=LR_SIZE, hr_size=side).hr
                    sharp[ratio].append(discarded(face, side, LR_SIZE))
            if 2 * LR_SIZE <= side0 <= 5 * LR_SIZE:  # the photo's own small faces, at their own size
                side = round(side0)
                face = crop_face(rgb, box, convention="landmark_square", lr_size=LR_SIZE, hr_size=side).hr
                for factor in native:
                    native[factor].append(discarded(face, side, round(side / factor)))
    summary = lambda values: {  # noqa: E731
        "faces": len(values),
        "rms_levels": float(np.mean([v[0] for v in values])),
        "energy_lost": float(np.mean([v[1] for v in values])),
    }
    return {
        "sharp_faces_shrunk": {str(r): summary(v) for r, v in sharp.items()},
        "native_small_faces": {str(f): summary(v) for f, v in native.items()},
    }


# --- 5. faces lying on their side ----------------------------------------------------------------------


def lying_faces(
    variants: Sequence[photos_.Photo], detections: Sequence[list[DetectedFace]]
) -> list[dict[str, Any]]:
    """Per turn angle: faces found at the default threshold and the roll their five points measure."""
    rows = []
    for angle in LYING_ANGLES:
        rolls, rejected, faces = [], collections.Counter(), 0
        for photo, dets in zip(variants, detections, strict=True):
            if photo.angle != angle:
                continue
            faces += len(photo.faces68)
            matching = photos_.match(photo, dets)
            policy = SelectionPolicy(score_threshold=DEFAULT_SCORE_THRESHOLD, all_sizes=True)
            selection = select_faces(dets, convention="landmark_square", lr_size=LR_SIZE, policy=policy)
            reason = {id(s.face): s.reason for s in selection.skipped}
            for i in matching.annotated.values():
                if dets[i].score >= DEFAULT_SCORE_THRESHOLD:
                    rolls.append(landmark_geometry(dets[i]).roll_degrees)
                    rejected[reason.get(id(dets[i]), "kept")] += 1
        rows.append(
            {
                "angle": angle,
                "faces": faces,
                "found": len(rolls),
                "roll_median": float(np.median(rolls)) if rolls else None,
                "roll_range": [float(min(rolls)), float(max(rolls))] if rolls else None,
                "outcome": dict(rejected),
            }
        )
    return rows


# --- report ----------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    lines = [
        "# Face selection on the annotated photos",
        "",
        f"{report['date']} · command: `{report['command']}`",
        "",
        f"Photos: {report['photos']}; annotated faces over the scaled and turned copies: "
        f"{report['annotated_faces']}.",
        "",
        "## Score threshold (duplicates suppressed; every size)",
        "",
        "| threshold | landmark rules | precision | false pos. | recall | precision ≤32 px | recall ≤32 px "
        "| recall larger | no-face photos: kept | F0.5 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["thresholds"]:
        a, s, big = r["all"], r["small"], r["large"]
        lines.append(
            f"| {r['threshold']:g} | {'on' if r['landmark_rules'] else 'off'} "
            f"| {a['precision']:.3f} | {a['fp']} | {a['recall']:.3f} ({a['found']}/{a['faces']}) "
            f"| {s['precision']:.3f} | {s['recall']:.3f} | {big['recall']:.3f} | {r['no_face_kept']} "
            f"| {r['f05']:.4f} |"
        )
    plateau = report["f05_plateau"]
    subset = report["test_subset"]
    lines += [
        "",
        f"At the defaults on the photos at scale {subset['scale']:g} (the test's subset): precision "
        f"{subset['precision']:.3f}, recall {subset['recall']:.3f} of {subset['faces']} annotated faces.",
        "",
        f"F0.5 within 0.002 of its best ({plateau['best_f05']:.4f}) at thresholds {plateau['thresholds']}; "
        f"middle {plateau['middle']:g}; default `DEFAULT_SCORE_THRESHOLD` = {report['default_threshold']:g}.",
        "",
        f"## Landmark rules on the real faces (score ≥ {report['default_threshold']:g}: "
        f"{report['rules']['real_faces']} real faces, {report['rules']['false_positives']} false positives)",
        "",
        "| rule | bound | real min | real 1 % | real median | real 99 % | real max | margin | real rejected "
        "| false positives rejected |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rule, r in report["rules"]["rules"].items():
        lines.append(
            f"| {rule} | {r['bound']} | {r['real_min']:.3f} | {r['real_p1']:.3f} | {r['real_median']:.3f} "
            f"| {r['real_p99']:.3f} | {r['real_max']:.3f} | {r['margin']:.3f} | {len(r['real_rejected'])} "
            f"{r['real_rejected'] if r['real_rejected'] else ''} | {r['false_rejected']} |"
        )
    lines += [
        "",
        "## Duplicates (a second detection on one face)",
        "",
        f"Rules: overlap of the smaller box > {report['duplicates']['rules']['overlap_of_smaller']}, "
        f"or mean five-point distance < {report['duplicates']['rules']['point_distance']} face sizes.",
        "",
        "| photo set | found and what became of them | distinct real faces: largest overlap "
        "| distinct real faces: smallest point distance |",
        "|---|---|---|---|",
    ]
    for name, r in report["duplicates"].items():
        if name == "rules":
            continue
        closest = r["closest_distinct_faces"]
        lines.append(f"| {name} | {r['counts']} | {closest['overlap']:.2f} | {closest['points']:.2f} |")
    size = report["size_rule"]
    lines += [
        "",
        "## Size rule: detail a 16-px-input model discards",
        "",
        "| crop side | faces | RMS discarded (8-bit levels) | share of the face's detail energy |",
        "|---|---|---|---|",
    ]
    for ratio, r in size["sharp_faces_shrunk"].items():
        lines.append(
            f"| {float(ratio):g} × input | {r['faces']} | {r['rms_levels']:.1f} | {r['energy_lost']:.1%} |"
        )
    for factor, r in size["native_small_faces"].items():
        lines.append(
            f"| the photos' own 32–80 px faces, shrunk {factor}× | {r['faces']} | {r['rms_levels']:.1f} "
            f"| {r['energy_lost']:.1%} |"
        )
    lines += [
        "",
        "## Faces on turned photos (RetinaFace's roll reading)",
        "",
        "| turned by | faces found / annotated | measured roll median | range | outcome |",
        "|---|---|---|---|---|",
    ]
    for r in report["lying"]:
        rng = "" if r["roll_range"] is None else f"{r['roll_range'][0]:.0f}° … {r['roll_range'][1]:.0f}°"
        median = "" if r["roll_median"] is None else f"{r['roll_median']:.0f}°"
        lines.append(f"| {r['angle']:g}° | {r['found']}/{r['faces']} | {median} | {rng} | {r['outcome']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
