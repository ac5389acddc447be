"""How FaceSuperResolver puts restored faces back: strength, back-projection, landmark mask and
luminance only (issue 12), per resolver (``paste=PasteOptions(...)``), per call and on the command
line, on real photos with the real detector and the golden (seeded random) networks.

The face-level functions are tested in tests/test_paste_controls.py; here the pipeline's own stages
carry the options, and an oracle network (it returns the photo's own pixels) shows that whatever
the options, a face that is already right is put back unchanged.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
from _support import shared_path
from PIL import Image

from dicsr import FaceSuperResolver
from dicsr.cli import main
from dicsr.errors import InvalidInputError
from dicsr.face.consistency import lr_disagreement
from dicsr.face.mask import mask_for_face
from dicsr.image import Background, load_image
from dicsr.image._background import upscale_background
from dicsr.pipeline import PasteOptions, SelectionPolicy

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")

TWO_PEOPLE = ("face_recognition", "examples", "two_people.jpg")
ADELE = ("GFPGAN", "inputs", "cropped_faces", "Adele_crop.png")

#: two_people's faces at a quarter size (~50 px) are larger than a 16-px model restores by default.
EVERY_SIZE = SelectionPolicy(all_sizes=True)


@pytest.fixture(scope="module")
def small_two_people() -> Image.Image:
    """two_people.jpg at a quarter size: two faces of ~50 px."""
    image = Image.open(shared_path("faces", *TWO_PEOPLE)).convert("RGB")
    return image.resize((image.width // 4, image.height // 4), Image.Resampling.BICUBIC)


@pytest.fixture(scope="module")
def plain(small_two_people: Image.Image) -> np.ndarray:
    """The plain ×2 upscale of the 8-bit photo: Pillow's own 8-bit bicubic resize."""
    size = (small_two_people.width * 2, small_two_people.height * 2)
    return np.asarray(small_two_people.resize(size, Image.Resampling.BICUBIC))


@pytest.fixture(scope="module")
def sparnet_sr(sparnet_model_dir: Path, detector_weights: Path) -> FaceSuperResolver:
    return FaceSuperResolver.from_pretrained(
        sparnet_model_dir, device="cpu", detector_weights=detector_weights, upscale=2, selection=EVERY_SIZE
    )


def test_strength_zero_returns_the_plain_upscale_bit_for_bit(sparnet_sr, small_two_people, plain) -> None:
    none = PasteOptions(strength=0.0)
    result = sparnet_sr.enhance(small_two_people, paste=none)
    assert result.num_faces == 2
    np.testing.assert_array_equal(np.asarray(result.image), plain)
    # 16-bit: the float resize, quantised once
    rgb16 = np.asarray(small_two_people).astype(np.uint16) * 257 + 100
    result16 = sparnet_sr.enhance(rgb16, paste=none)
    expected = np.rint(upscale_background(load_image(rgb16).rgb, 2.0) * 65535).astype(np.uint16)
    assert result16.image.dtype == np.uint16
    np.testing.assert_array_equal(result16.image, expected)
    # the faces are still restored and returned
    assert result16.num_faces == 2 and result16.faces[0].image.dtype == np.uint16


def test_the_pasted_difference_grows_with_strength(sparnet_sr, small_two_people, plain) -> None:
    changes = []
    for strength in (0.0, 0.25, 0.5, 1.0):
        image = sparnet_sr.enhance(small_two_people, paste=PasteOptions(strength=strength)).image
        changes.append(np.abs(np.asarray(image).astype(int) - plain).sum())
    assert changes[0] == 0
    assert all(weaker < stronger for weaker, stronger in itertools.pairwise(changes))


def test_options_per_resolver_and_per_call(sparnet_sr, small_two_people, plain) -> None:
    quiet = PasteOptions(strength=0.0, back_projection=False, luminance_only=True)
    weak = FaceSuperResolver(sparnet_sr.adapter, sparnet_sr.detector, upscale=2, selection=EVERY_SIZE,
                             paste=quiet)
    assert weak.paste_options == quiet and sparnet_sr.paste_options == PasteOptions()
    np.testing.assert_array_equal(np.asarray(weak.enhance(small_two_people).image), plain)
    # one call's options apply to that call only
    full = np.asarray(weak.enhance(small_two_people, paste=PasteOptions()).image).astype(int)
    assert np.abs(full - plain).max() > 10
    np.testing.assert_array_equal(full, np.asarray(sparnet_sr.enhance(small_two_people).image))
    assert weak.paste_options == quiet
    np.testing.assert_array_equal(np.asarray(weak.enhance(small_two_people).image), plain)
    # the stage API takes them too
    (restored,) = weak.restore([weak.prepare(small_two_people)])
    np.testing.assert_array_equal(np.asarray(weak.finish(restored, paste=PasteOptions()).image), full)
    with pytest.raises(InvalidInputError, match="strength"):
        weak.enhance(small_two_people, paste=PasteOptions(strength=-1))
    with pytest.raises(InvalidInputError, match="paste must be a PasteOptions"):
        weak.enhance(small_two_people, paste={"strength": 0.5})  # type: ignore[arg-type]


def test_luminance_only_keeps_the_photos_colour(sparnet_sr, small_two_people, plain) -> None:
    colour = sparnet_sr.enhance(small_two_people)
    luma_only = sparnet_sr.enhance(small_two_people, paste=PasteOptions(luminance_only=True))

    def chroma(image: Image.Image | np.ndarray) -> np.ndarray:
        ycbcr = np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("YCbCr")).astype(float)
        return ycbcr[..., 1:]

    changed = np.any(np.asarray(colour.image) != plain, axis=-1)
    assert changed.mean() > 0.02
    # the random golden SPARNet paints its own colours; luminance-only keeps the photo's (to rounding)
    assert np.abs(chroma(colour.image) - chroma(plain))[changed].mean() > 5
    assert np.abs(chroma(luma_only.image) - chroma(plain))[changed].mean() < 1.5
    luma = np.asarray(luma_only.image.convert("L")).astype(float)
    assert np.abs(luma - np.asarray(colour.image.convert("L")).astype(float))[changed].mean() < 1.5


def test_faces_are_back_projected_and_carry_their_mask(sparnet_sr, small_two_people) -> None:
    result = sparnet_sr.enhance(small_two_people)
    raw = sparnet_sr.enhance(small_two_people, paste=PasteOptions(back_projection=False))
    faces_only = sparnet_sr.enhance(small_two_people, paste_back=False)
    for face, raw_face, alone in zip(result.faces, raw.faces, faces_only.faces, strict=True):
        # SPARNet predicts no landmarks: the rounded square
        assert face.mask.dtype == np.float32 and face.mask.shape == (128, 128)
        np.testing.assert_array_equal(face.mask, mask_for_face(128))
        # back-projection is on by default: the face reproduces its input (8-bit rounding aside)
        restored, unprojected = (np.asarray(f.image, dtype=np.float32) / 255 for f in (face, raw_face))
        assert lr_disagreement(restored, face.lr) * 255 < 1
        assert lr_disagreement(unprojected, raw_face.lr) * 255 > 3
        # the same face with paste_back=False: back-projection is about the faces, not the paste
        np.testing.assert_array_equal(np.asarray(alone.image), np.asarray(face.image))


def test_dic_faces_go_back_through_the_mask_of_their_landmarks(dic_model_dir, detector_weights,
                                                                 small_two_people) -> None:
    sr = FaceSuperResolver.from_pretrained(dic_model_dir, device="cpu", detector_weights=detector_weights,
                                           upscale=2, selection=EVERY_SIZE)
    shaped = sr.enhance(small_two_people, paste_back=False)
    square = sr.enhance(small_two_people, paste_back=False, paste=PasteOptions(landmark_mask=False))
    for face, plain_face in zip(shaped.faces, square.faces, strict=True):
        np.testing.assert_array_equal(face.mask, mask_for_face(128, face.landmarks))
        np.testing.assert_array_equal(plain_face.mask, mask_for_face(128))


# --- the oracle: a network that returns the photo's own pixels --------------------------------------

ORACLE_OPTIONS = [
    PasteOptions(),
    PasteOptions(strength=0.5),
    PasteOptions(back_projection=False),
    PasteOptions(landmark_mask=False),
    PasteOptions(luminance_only=True),
    PasteOptions(strength=0.7, back_projection=True, landmark_mask=True, luminance_only=True),
]


@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("options", ORACLE_OPTIONS, ids=repr)
def test_an_oracle_network_gives_back_the_plain_upscale_with_every_option(dic_model_dir, options, bit_depth):
    """A real face, 64 px, as an aligned input at ×2: DIC's 128-px face frame is then the output grid
    itself. The oracle replaces the network's faces by the plain upscale's own pixels (keeping DIC's
    landmarks, so the face-shaped mask is used); the pipeline's finish must give the plain upscale
    back, within one 8-bit level, whatever the paste options. (Back-projection is not quite a no-op
    here: an aligned input's LR is the photo resized straight to 16 px, which differs slightly from
    the upscale downsampled again; 16-bit photos show it, by ~50 of 65535.)"""
    face = Image.open(shared_path("faces", *ADELE)).convert("RGB").resize((64, 64), Image.Resampling.LANCZOS)
    photo = np.asarray(face) if bit_depth == 8 else np.asarray(face).astype(np.uint16) * 257
    sr = FaceSuperResolver.from_pretrained(dic_model_dir, device="cpu", upscale=2)
    (restored,) = sr.restore([sr.prepare(photo, aligned=True)])
    plain = Background.for_photo(restored.photo, 2.0).result()
    top = 255.0 if bit_depth == 8 else 65535.0
    own_pixels = (plain / top).astype(np.float32)
    oracle = [dataclasses.replace(output, image=own_pixels) for output in restored.outputs]
    result = sr.finish(dataclasses.replace(restored, outputs=tuple(oracle)), paste=options)
    assert result.image.dtype == plain.dtype
    one_level = 1 if bit_depth == 8 else 257
    assert np.abs(result.image.astype(np.int64) - plain.astype(np.int64)).max() <= one_level
    # the face was pasted: its mask is opaque over a good part of the photo
    assert (result.faces[0].mask == 1).mean() > 0.05


# --- the command line ---------------------------------------------------------------------------------


def test_cli_paste_flags(tmp_path: Path, sparnet_model_dir: Path, detector_weights: Path, small_two_people,
                         plain, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "two.png"
    small_two_people.save(source)
    common = ["enhance", str(source), "--model", str(sparnet_model_dir), "--detector-weights",
              str(detector_weights), "--upscale", "2", "--all-faces", "--no-progress"]
    assert main([*common, "-o", str(tmp_path / "plain"), "--strength", "0"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "plain" / "two.png")), plain)
    flags = ["--strength", "0.5", "--no-back-projection", "--no-landmark-mask", "--luminance-only"]
    assert main([*common, "-o", str(tmp_path / "flags"), *flags]) == 0
    written = np.asarray(Image.open(tmp_path / "flags" / "two.png"))
    api = FaceSuperResolver.from_pretrained(
        sparnet_model_dir, device="cpu", detector_weights=detector_weights, upscale=2, selection=EVERY_SIZE,
        paste=PasteOptions(strength=0.5, back_projection=False, landmark_mask=False, luminance_only=True),
    ).enhance(small_two_people).image
    np.testing.assert_array_equal(written, np.asarray(api))
    assert np.any(written != plain)
    capsys.readouterr()
    for bad in ("2", "-0.1", "nan"):
        assert main([*common, "-o", str(tmp_path / "bad"), "--strength", bad]) == 1
        assert f"--strength must be a number in [0, 1], got {float(bad):g}" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before anything was written
