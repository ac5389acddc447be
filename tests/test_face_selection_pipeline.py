"""Face selection through FaceSuperResolver and ``dicsr enhance``: a photo with tiny and large faces.

Real photos composed on one canvas: two_people.jpg shrunk 3x (two faces with ~75 px crops) and a
7-person group photo shrunk 3x (faces of 11-15 px, the tiny faces DIC and SPARNet are for). With
the defaults a 16-px model restores the tiny faces and leaves the large ones as they are, saying
why; ``SelectionPolicy(all_sizes=True)`` / ``--all-faces`` restores them all. SPARNet converted from
the golden checkpoint stands in for any 16-px model (the selection does not depend on the weights).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
from _support import shared_path
from PIL import Image

from dicsr import FaceSuperResolver
from dicsr.cli import main
from dicsr.errors import InvalidInputError
from dicsr.face.crop import crop_region_side
from dicsr.face.detect import DetectedFace, FaceDetector
from dicsr.face.select import DEFAULT_SCORE_THRESHOLD
from dicsr.pipeline import DetectorSpec, SelectionPolicy, SkippedFace
from dicsr.weights import load_model

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")

LARGE = "larger than the model's useful size"


@pytest.fixture(scope="module")
def mixed_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """640x400: two people at a third of their size (top left), a group at a third (bottom right)."""
    two = Image.open(shared_path("faces", "face_recognition", "examples", "two_people.jpg")).convert("RGB")
    group = Image.open(shared_path("faces", "dlib", "examples", "faces", "2008_007676.jpg")).convert("RGB")
    canvas = Image.new("RGB", (640, 400), (128, 128, 128))
    canvas.paste(two.resize((two.width // 3, two.height // 3), Image.Resampling.LANCZOS), (0, 0))
    small = group.resize((group.width // 3, group.height // 3), Image.Resampling.LANCZOS)
    canvas.paste(small, (640 - small.width, 400 - small.height))
    path = tmp_path_factory.mktemp("mixed") / "mixed.png"
    canvas.save(path)
    return path


@pytest.fixture(scope="module")
def default_resolver(sparnet_model_dir: Path, detector_weights: Path) -> FaceSuperResolver:
    """SPARNet with every default: the detector the resolver builds, the default selection."""
    return FaceSuperResolver(load_model(sparnet_model_dir), DetectorSpec(weights=detector_weights), upscale=2)


def with_selection(resolver: FaceSuperResolver, **policy: object) -> FaceSuperResolver:
    """The same network and (built) detector, composed with another selection policy."""
    return FaceSuperResolver(resolver.adapter, resolver.load_detector(), upscale=2,
                             selection=SelectionPolicy(**policy))


def crop_side(face) -> float:
    detection = DetectedFace(box=face.detection_box, score=face.score, points5=face.points5)
    return crop_region_side(detection, "landmark_square")


def test_the_detector_a_resolver_builds_uses_the_calibrated_threshold(default_resolver) -> None:
    assert DetectorSpec().score_threshold == DEFAULT_SCORE_THRESHOLD == 0.7
    assert default_resolver.load_detector().score_threshold == 0.7
    # a detector built by hand (for detection alone) keeps its own default
    assert inspect.signature(FaceDetector).parameters["score_threshold"].default == 0.5
    assert default_resolver.selection == SelectionPolicy()


def test_tiny_faces_are_restored_and_large_ones_reported(mixed_photo: Path, default_resolver) -> None:
    result = default_resolver.enhance(mixed_photo)
    # The group's faces (bottom right) are restored; the two people (top left) are not.
    assert result.num_faces >= 5
    assert all(face.detection_box[0] > 640 - 166 and crop_side(face) <= 32 for face in result.faces)
    large = [face for face in result.skipped_faces if face.reason == LARGE]
    assert len(large) == 2 and len(result.skipped_faces) == 2
    for face in large:
        assert isinstance(face, SkippedFace)
        x0, y0, x1, y1 = face.box
        assert x1 < 375 and y1 < 220  # in two_people
        assert face.score >= 0.7 and face.points5.shape == (5, 2)
        assert "> 32 px" in face.detail
    # Where a face was left alone the output is the plain upscale of the photo.
    plain = Image.open(mixed_photo).resize(result.image.size, Image.Resampling.BICUBIC)
    for face in large:
        x0, y0, x1, y1 = (int(v * 2) for v in face.box)
        region = (slice(y0, y1), slice(x0, x1))
        np.testing.assert_array_equal(np.asarray(result.image)[region], np.asarray(plain)[region])

    everyone = with_selection(default_resolver, all_sizes=True).enhance(mixed_photo)
    assert everyone.num_faces == result.num_faces + 2 and everyone.skipped_faces == ()
    assert {face.box for face in large} <= {face.detection_box for face in everyone.faces}

    # max_face_size moves the boundary: 100 px takes the two people in as well.
    wider = with_selection(default_resolver, max_face_size=100).enhance(mixed_photo)
    assert wider.num_faces == everyone.num_faces

    # Faces asked away are reported too, after the size rule.
    two = with_selection(default_resolver, max_faces=2).enhance(mixed_photo, paste_back=False)
    assert two.num_faces == 2
    reasons = sorted(face.reason for face in two.skipped_faces)
    assert reasons == sorted([LARGE] * 2 + ["beyond max_faces"] * (result.num_faces - 2))


def test_size_options_are_checked_naming_them() -> None:
    with pytest.raises(InvalidInputError, match="max_face_size"):
        SelectionPolicy(max_face_size=-5)
    with pytest.raises(InvalidInputError, match="min_face_size"):
        SelectionPolicy(min_face_size=40, max_face_size=20)


def test_cli_says_why_it_left_faces_alone_and_all_faces_restores_them(
    capsys: pytest.CaptureFixture[str], mixed_photo: Path, tmp_path: Path, sparnet_model_dir: Path,
    detector_weights: Path,
) -> None:
    common = [str(mixed_photo), "--model", str(sparnet_model_dir), "--detector-weights",
              str(detector_weights), "--upscale", "2", "--save-landmarks", "--no-progress", "--offline"]
    assert main(["enhance", "-o", str(tmp_path / "default"), *common]) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "default" / "mixed.json").read_text())
    restored = len(record["faces"])
    assert restored >= 5 and f"1 image(s) restored, {restored} face(s)" in out
    assert "2 face(s) left alone" in out
    assert f"left alone: 2 face(s): {LARGE} (--max-face-size PX or --all-faces restores them)" in out
    assert [face["reason"] for face in record["skipped_faces"]] == [LARGE, LARGE]
    for face in record["skipped_faces"]:
        _, _, x1, y1 = face["box"]  # restored-photo coordinates, like the restored faces'
        assert x1 < 2 * 375 and y1 < 2 * 220 and len(face["points5"]) == 5 and "> 32 px" in face["detail"]

    assert main(["enhance", "-o", str(tmp_path / "all"), "--all-faces", *common]) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "all" / "mixed.json").read_text())
    assert len(record["faces"]) == restored + 2 and record["skipped_faces"] == []
    assert f"{restored + 2} face(s)" in out and "left alone" not in out

    assert main(["enhance", "-o", str(tmp_path / "wide"), "--max-face-size", "100", *common]) == 0
    assert len(json.loads((tmp_path / "wide" / "mixed.json").read_text())["faces"]) == restored + 2
