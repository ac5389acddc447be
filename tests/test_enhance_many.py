"""Many photos through one resolver (issue 14): ``enhance_many`` and ``enhance_batch`` give each photo
exactly what ``enhance`` gives it, in input order, with a failure value in place of a bad input.

Real parts throughout: DIC and SPARNet model folders converted from the golden (seeded random)
official checkpoints, the real RetinaFace weights from ../shared, real photos as paths, arrays and
PIL images.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import numpy as np
import pytest
from _support import shared_path
from PIL import Image

from dicsr import EnhanceFailure, EnhanceResult, FaceSuperResolver
from dicsr.errors import InvalidImageError, InvalidInputError
from dicsr.face.detect import FaceDetector
from dicsr.pipeline import PasteOptions, SelectionPolicy, StageEvent
from dicsr.weights import load_model

#: The photos' faces are larger than a 16-px model restores by default; restore them all.
EVERY_SIZE = SelectionPolicy(all_sizes=True)


@pytest.fixture(scope="module")
def detector(detector_weights: Path) -> FaceDetector:
    return FaceDetector(detector_weights)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[object]:
    """Five inputs of the kinds enhance takes, the third an unreadable file: a path (one face), an
    array (two_people at a quarter: two faces), the bad file, a PIL image (two faces), a path."""
    bad = tmp_path_factory.mktemp("bad") / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not the rest of a JPEG")
    two_people = Image.open(shared_path("faces", "face_recognition", "examples", "two_people.jpg"))
    quarter = (two_people.width // 4, two_people.height // 4)
    return [
        str(shared_path("faces", "face_recognition", "examples", "obama-240p.jpg")),
        np.asarray(two_people.convert("RGB").resize(quarter, Image.Resampling.BICUBIC)),
        bad,
        Image.open(shared_path("faces", "dlib", "examples", "faces", "2009_004587.jpg")),
        str(shared_path("faces", "facexlib", "assets", "test.jpg")),
    ]


def assert_same_result(got: EnhanceResult, expected: EnhanceResult) -> None:
    assert type(got.image) is type(expected.image)  # the input's type: PIL for PIL, else an array
    got_pixels, expected_pixels = np.asarray(got.image), np.asarray(expected.image)
    assert got_pixels.dtype == expected_pixels.dtype
    np.testing.assert_array_equal(got_pixels, expected_pixels)
    assert got.num_faces == expected.num_faces and got.input_size == expected.input_size
    for a, b in zip(got.faces, expected.faces, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        assert a.box == b.box and a.score == b.score
        if b.landmarks is not None:
            np.testing.assert_array_equal(a.landmarks, b.landmarks)


@pytest.mark.parametrize("model", ["dic_model_dir", "sparnet_model_dir"])
def test_many_and_batch_give_each_photo_what_enhance_gives_it_bit_for_bit(model, request, detector, photos):
    adapter = load_model(request.getfixturevalue(model))
    sr = FaceSuperResolver(adapter, detector, upscale=2, selection=EVERY_SIZE)
    good = photos[:2] + photos[3:]
    alone = [sr.enhance(photo) for photo in good]
    assert [r.num_faces for r in alone] == [1, 2, 2, 1]  # faces of several photos: a real test of order

    many = list(sr.enhance_many(photos, prefetch=2))
    assert len(many) == len(photos)
    failure = many.pop(2)
    assert isinstance(failure, EnhanceFailure)
    assert failure.index == 2 and failure.name == str(photos[2])
    assert isinstance(failure.error, InvalidImageError) and str(photos[2]) in str(failure.error)
    for got, expected in zip(many, alone, strict=True):
        assert isinstance(got, EnhanceResult)
        assert_same_result(got, expected)

    for got, expected in zip(sr.enhance_batch(good), alone, strict=True):
        assert_same_result(got, expected)


def test_enhance_batch_raises_the_typed_error_of_a_bad_input(sparnet_model_dir, detector, photos) -> None:
    sr = FaceSuperResolver(load_model(sparnet_model_dir), detector, upscale=1, selection=EVERY_SIZE)
    with pytest.raises(InvalidImageError, match=r"broken\.jpg"):
        sr.enhance_batch(photos)


def test_faces_of_several_photos_share_calls_only_when_asked(sparnet_model_dir, detector, photos) -> None:
    calls: list[int] = []

    def count(event: StageEvent) -> None:
        if event.stage == "restore":
            calls.append(event.faces)

    sr = FaceSuperResolver(load_model(sparnet_model_dir), detector, upscale=1, selection=EVERY_SIZE,
                           batch_size=3, on_stage=count)
    good = photos[:2] + photos[3:]
    alone = [sr.enhance(photo) for photo in good]
    faces_per_photo = [r.num_faces for r in alone]
    calls.clear()
    list(sr.enhance_many(good))
    assert calls == faces_per_photo  # by default each photo's faces run as enhance runs them

    calls.clear()
    shared = list(sr.enhance_many(good, share_batches=True))
    assert sum(calls) == sum(faces_per_photo) and max(calls) <= 3
    for got, expected in zip(shared, alone, strict=True):
        # the same photo and faces; a face's last bits may depend on its batch companions
        assert isinstance(got, EnhanceResult)
        assert [f.box for f in got.faces] == [f.box for f in expected.faces]
        levels = np.abs(np.asarray(got.image, np.int16) - np.asarray(expected.image, np.int16))
        assert levels.max() <= 1


def test_a_per_call_paste_override_applies_to_every_photo_as_in_enhance(sparnet_model_dir, detector, photos):
    sr = FaceSuperResolver(load_model(sparnet_model_dir), detector, upscale=1, selection=EVERY_SIZE)
    good = photos[:2]
    weaker = PasteOptions(strength=0.5, back_projection=False)
    alone = [sr.enhance(photo, paste=weaker) for photo in good]
    assert any(not np.array_equal(np.asarray(a.image), np.asarray(sr.enhance(p).image))
               for a, p in zip(alone, good, strict=True))  # the override changes the photo
    for got, expected in zip(sr.enhance_batch(good, paste=weaker), alone, strict=True):
        assert_same_result(got, expected)


def test_an_endless_stream_is_read_lazily_and_stopping_ends_the_threads(sparnet_model_dir, detector) -> None:
    sr = FaceSuperResolver(load_model(sparnet_model_dir), detector, upscale=1)
    photo = shared_path("faces", "face_recognition", "examples", "obama-240p.jpg")
    read = 0

    def endless():
        nonlocal read
        for _ in itertools.count():
            read += 1
            yield photo

    outcomes = sr.enhance_many(endless(), prefetch=2)
    first = next(outcomes)
    assert isinstance(first, EnhanceResult)
    outcomes.close()
    assert read <= 1 + 2 * 2  # the one returned, at most `prefetch` being prepared and `prefetch` finished
    assert not [t for t in threading.enumerate() if t.name.startswith("dicsr-many")]


@pytest.mark.parametrize(("option", "value"), [("workers", 0), ("prefetch", -1), ("prefetch", 1.5),
                                               ("share_batches", "yes"), ("upscale", 0),
                                               ("paste", "strong")])
def test_a_bad_option_is_refused_at_the_call_naming_it(sparnet_model_dir, option, value) -> None:
    sr = FaceSuperResolver(load_model(sparnet_model_dir), upscale=1)
    with pytest.raises(InvalidInputError, match=option):
        sr.enhance_many(["never read.jpg"], **{option: value})


def test_one_image_instead_of_an_iterable_is_refused(sparnet_model_dir) -> None:
    sr = FaceSuperResolver(load_model(sparnet_model_dir), upscale=1)
    with pytest.raises(InvalidInputError, match="iterable of images"):
        sr.enhance_many("photo.jpg")
