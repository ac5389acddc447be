"""FaceSuperResolver as composed parts: loading, options checked at construction, no hidden state,
explicit stages.

Real parts throughout: SPARNet and DIC model folders converted from the golden (seeded random)
official checkpoints, the real RetinaFace weights from ../shared, real photos.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _support import shared_path
from PIL import Image

from dicsr import FaceSuperResolver
from dicsr.cli import main
from dicsr.errors import InvalidImageError, InvalidInputError, UnsupportedDtypeError
from dicsr.face.detect import FaceDetector
from dicsr.pipeline import DetectorSpec, PasteOptions, PipelineOptions, SelectionPolicy, StageEvent
from dicsr.weights import load_model

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")

TWO_PEOPLE = ("face_recognition", "examples", "two_people.jpg")

#: two_people's faces at a quarter size (~50 px) are larger than a 16-px model restores by default;
#: the composition tests restore them (tests/test_face_selection_pipeline.py checks the default).
EVERY_SIZE = SelectionPolicy(all_sizes=True)


@pytest.fixture(scope="module")
def sparnet(sparnet_model_dir: Path):
    """A SPARNet adapter loaded once; tests compose resolvers around it (and must not change it)."""
    return load_model(sparnet_model_dir)


@pytest.fixture(scope="module")
def detector(detector_weights: Path) -> FaceDetector:
    return FaceDetector(detector_weights)


@pytest.fixture(scope="module")
def two_people() -> np.ndarray:
    """two_people.jpg at a quarter size: two faces of ~50 px."""
    image = Image.open(shared_path("faces", *TWO_PEOPLE)).convert("RGB")
    return np.asarray(image.resize((image.width // 4, image.height // 4), Image.Resampling.BICUBIC))


@pytest.fixture(scope="module")
def tiny_face() -> np.ndarray:
    """A 16x16 aligned face (a GFPGAN crop shrunk to the networks' input)."""
    face = Image.open(shared_path("faces", "GFPGAN", "inputs", "cropped_faces", "Adele_crop.png"))
    return np.asarray(face.convert("RGB").resize((16, 16), Image.Resampling.BICUBIC))


def parameters(sr: FaceSuperResolver) -> list[torch.Tensor]:
    return list(sr.adapter.network.parameters())


# --- loading: from_pretrained and the string shortcut -------------------------------------------------


def test_string_model_is_from_pretrained_with_its_defaults(sparnet_model_dir: Path, tiny_face) -> None:
    short = FaceSuperResolver(str(sparnet_model_dir))
    long = FaceSuperResolver.from_pretrained(sparnet_model_dir)
    assert short.config == long.config
    assert (short.device, short.dtype) == (long.device, long.dtype)
    assert short.device.type == ("cuda" if torch.cuda.is_available() else short.device.type)  # "auto"
    assert short.detector == long.detector == DetectorSpec()  # the default detector, not built yet
    # an aligned face needs no detector: nothing was built or fetched
    a, b = short.enhance(tiny_face, aligned=True), long.enhance(tiny_face, aligned=True)
    np.testing.assert_array_equal(a.faces[0].image, b.faces[0].image)
    assert isinstance(short.detector, DetectorSpec)


def test_from_pretrained_builds_the_named_detector_on_first_use(sparnet_model_dir, detector_weights,
                                                                two_people) -> None:
    sr = FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cpu", detector="mobile0.25",
                                           detector_weights=detector_weights, offline=True, upscale=1,
                                           selection=EVERY_SIZE)
    assert sr.detector == DetectorSpec("mobile0.25", weights=detector_weights, offline=True)
    assert sr.enhance(two_people).num_faces == 2
    built = sr.detector
    assert isinstance(built, FaceDetector) and built.device == sr.device and built.network == "mobile0.25"
    assert sr.load_detector() is built  # built once


def test_from_pretrained_passes_every_pipeline_option(sparnet_model_dir, detector) -> None:
    # PipelineOptions (what from_pretrained forwards) lists exactly the constructor's options
    keyword_only = [name for name, p in inspect.signature(FaceSuperResolver).parameters.items()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert sorted(PipelineOptions.__annotations__) == sorted(keyword_only)
    selection, paste = SelectionPolicy(max_faces=3), PasteOptions(strength=0.5)
    sr = FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cpu", detector=detector, upscale=1.5,
                                           selection=selection, paste=paste, batch_size=4, max_pixels=0)
    assert sr.detector is detector
    assert (sr.upscale, sr.selection, sr.paste_options, sr.batch_size, sr.max_pixels) == (
        1.5, selection, paste, 4, None)
    assert FaceSuperResolver(sr.adapter, detector).paste_options == PasteOptions()


def test_detector_weights_go_with_a_named_backbone_only(sparnet_model_dir, detector, detector_weights):
    with pytest.raises(InvalidInputError, match="detector_weights"):
        FaceSuperResolver.from_pretrained(sparnet_model_dir, detector=detector,
                                          detector_weights=detector_weights)


# --- every option is checked at construction ----------------------------------------------------------

#: constructor keyword -> bad value (each once escaped as a raw exception or was accepted silently)
BAD_OPTIONS = {
    "upscale": ["2", 0, -1.5, math.nan, math.inf, True],
    "batch_size": [2.5, 0, -3, "4", True],
    "max_pixels": [-1, 2.5, "10"],
    "max_output_pixels": [-5, 1e6, "64000000"],
    "bg_upsampler": [5, "bicubic"],
    "on_stage": [5],
    "refine_crop": ["yes", 1, None],
    "selection": [{"max_faces": 2}, 2],
    "paste": [{"strength": 0.5}, 0.5, SelectionPolicy()],
}


@pytest.mark.parametrize(("option", "value"), [(o, v) for o, values in BAD_OPTIONS.items() for v in values])
def test_a_bad_option_is_refused_at_construction_naming_it(sparnet, option, value) -> None:
    with pytest.raises(InvalidInputError, match=option):
        FaceSuperResolver(sparnet, **{option: value})


@pytest.mark.parametrize(("field", "value"), [("max_faces", 0), ("max_faces", 2.5), ("max_faces", "1"),
                                              ("only_center_face", 1), ("only_center_face", "no")])
def test_a_bad_selection_policy_is_refused_naming_the_field(field, value) -> None:
    with pytest.raises(InvalidInputError, match=field):
        SelectionPolicy(**{field: value})


@pytest.mark.parametrize(("field", "value", "named"), [
    ("network", "retina", "detector"), ("network", None, "detector"),
    ("score_threshold", 2.0, "score_threshold"), ("score_threshold", "0.5", "score_threshold"),
    ("weights", 5, "detector_weights"), ("offline", "no", "offline"),
])
def test_a_bad_detector_spec_is_refused_naming_the_field(field, value, named) -> None:
    with pytest.raises(InvalidInputError, match=named):
        DetectorSpec(**{field: value})


@pytest.mark.parametrize("model", [None, 123, torch.zeros(3)])
def test_a_model_that_is_neither_an_adapter_nor_a_reference_is_refused(model) -> None:
    with pytest.raises(InvalidInputError, match="model must be"):
        FaceSuperResolver(model)


def test_from_pretrained_takes_a_reference_not_a_loaded_adapter(sparnet) -> None:
    with pytest.raises(InvalidInputError, match=r"FaceSuperResolver\(adapter"):
        FaceSuperResolver.from_pretrained(sparnet)


@pytest.mark.parametrize("detector", ["mobile0.25", 5])
def test_the_constructor_takes_a_detector_object(sparnet, detector) -> None:
    with pytest.raises(InvalidInputError, match="detector must be"):
        FaceSuperResolver(sparnet, detector)


@pytest.mark.parametrize(("option", "value"), [("channels_last", "yes"), ("offline", "no"),
                                               ("progress", None), ("revision", 3), ("cache_dir", 5)])
def test_from_pretrained_refuses_bad_loading_options(sparnet_model_dir, option, value) -> None:
    with pytest.raises(InvalidInputError, match=option):
        FaceSuperResolver.from_pretrained(sparnet_model_dir, **{option: value})


def test_from_pretrained_checks_options_before_looking_for_the_model(tmp_path) -> None:
    # a bad option is reported, not the missing model (and nothing is downloaded)
    with pytest.raises(InvalidInputError, match="batch_size"):
        FaceSuperResolver.from_pretrained(tmp_path / "no-such-model", batch_size=2.5)


@pytest.mark.parametrize(("option", "value"), [("upscale", "2"), ("upscale", -1), ("aligned", "yes"),
                                               ("paste_back", None), ("return_steps", 1),
                                               ("paste", {"strength": 0})])
def test_a_bad_option_of_one_call_is_refused_naming_it(sparnet, tiny_face, option, value) -> None:
    with pytest.raises(InvalidInputError, match=option):
        FaceSuperResolver(sparnet).enhance(tiny_face, **{option: value})


def test_max_pixels_zero_means_no_limit_in_the_api_and_the_cli(sparnet, sparnet_model_dir, detector,
                                                             detector_weights, tmp_path) -> None:
    gray = np.full((40, 30, 3), 128, np.uint8)  # 1,200 pixels, no face
    with pytest.raises(InvalidImageError, match="limit of 1,000"):
        FaceSuperResolver(sparnet, detector, max_pixels=1000).enhance(gray)
    for no_limit in (0, None):
        sr = FaceSuperResolver(sparnet, detector, max_pixels=no_limit, max_output_pixels=no_limit, upscale=1)
        assert sr.max_pixels is None and sr.max_output_pixels is None
        assert sr.enhance(gray).image.shape == gray.shape  # was "more than the limit of 0" with 0
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(gray).save(inputs / "gray.png")
    code = main(["enhance", str(inputs), "-o", str(tmp_path / "out"), "--model", str(sparnet_model_dir),
                 "--detector-weights", str(detector_weights), "--upscale", "1", "--max-pixels", "0",
                 "--no-progress", "--offline"])
    assert code == 0 and (tmp_path / "out" / "gray.png").is_file()


# --- no hidden state: a caller's parts are never changed ------------------------------------------------


def test_to_moves_a_copy_of_a_shared_adapter(sparnet, detector, tiny_face) -> None:
    first, second = FaceSuperResolver(sparnet, detector), FaceSuperResolver(sparnet, detector)
    before = second.enhance(tiny_face, aligned=True).faces[0].image
    weights = [p.clone() for p in sparnet.network.parameters()]

    assert first.to("cpu", "bfloat16") is first
    assert first.dtype == torch.bfloat16 and all(p.dtype == torch.bfloat16 for p in parameters(first))
    # the caller's adapter, and the other resolver sharing it, are untouched
    assert first.adapter is not sparnet and second.adapter is sparnet
    assert sparnet.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in sparnet.network.parameters())
    assert all(torch.equal(a, b) for a, b in zip(sparnet.network.parameters(), weights, strict=True))
    np.testing.assert_array_equal(second.enhance(tiny_face, aligned=True).faces[0].image, before)
    # the detector did not have to move (same device): still the caller's object
    assert first.detector is detector and second.detector is detector

    # a resolver moves its own copy in place from then on, and a no-op move copies nothing
    own = first.adapter
    assert first.to(dtype="float32").adapter is own and first.to("cpu").adapter is own
    assert all(p.dtype == torch.float32 for p in parameters(first))


def test_channels_last_survives_to(sparnet_model_dir) -> None:
    sr = FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cpu", channels_last=True)
    sr.to(dtype="bfloat16")
    assert sr.adapter.channels_last
    convolutions = [p for p in parameters(sr) if p.ndim == 4]
    assert convolutions and all(p.is_contiguous(memory_format=torch.channels_last) for p in convolutions)
    assert not sr.to(channels_last=False).adapter.channels_last


def test_a_failed_move_changes_nothing(sparnet, detector) -> None:
    sr = FaceSuperResolver(sparnet, detector)
    with pytest.raises(UnsupportedDtypeError):
        sr.to("cpu", "float16")  # SPARNet offers no float16 on the CPU
    assert sr.adapter is sparnet and sr.dtype == torch.float32 and sr.detector is detector


@pytest.mark.skipif(not torch.cuda.is_available(), reason="moving between devices needs a CUDA device")
def test_to_moves_both_networks_to_another_device(sparnet, detector, detector_weights, two_people) -> None:
    shared = FaceSuperResolver(sparnet, detector)
    moved = FaceSuperResolver(sparnet, detector, upscale=1, selection=EVERY_SIZE).to("cuda")
    assert moved.device.type == "cuda" and moved.detector.device.type == "cuda"
    assert sparnet.device.type == "cpu" and detector.device.type == "cpu"  # the caller's, unmoved
    assert shared.adapter is sparnet and shared.detector is detector
    assert moved.enhance(two_people).num_faces == 2
    # a detector the resolver builds itself follows it, whenever to() is called
    lazy = FaceSuperResolver(sparnet, DetectorSpec(weights=detector_weights)).to("cuda")
    assert lazy.load_detector().device.type == "cuda"


def test_a_built_detector_is_on_the_resolvers_device(sparnet, detector_weights, two_people) -> None:
    sr = FaceSuperResolver(sparnet, DetectorSpec(weights=detector_weights), upscale=1, selection=EVERY_SIZE)
    assert isinstance(sr.detector, DetectorSpec)  # nothing built at construction
    sr.to("cpu")
    assert sr.enhance(two_people).num_faces == 2
    assert isinstance(sr.detector, FaceDetector) and sr.detector.device == sr.device


def test_a_detector_copy_is_independent(detector, two_people) -> None:
    import copy

    twin = copy.deepcopy(detector)  # what a resolver moves instead of a caller's detector
    assert twin is not detector and twin.to("cpu") is twin and twin.device == detector.device
    found, again = detector.detect(two_people), twin.detect(two_people)
    assert [f.box for f in found] == [f.box for f in again] and len(found) == 2


# --- explicit stages -----------------------------------------------------------------------------------

STAGES_OF_A_PHOTO = ["decode", "detect", "select", "crop", "restore", "backproject", "mask",
                     "paste.background", "paste.blend", "paste.output", "paste"]


def test_stage_callback_sees_every_stage_in_order(sparnet, detector, two_people) -> None:
    events: list[StageEvent] = []
    sr = FaceSuperResolver(sparnet, detector, upscale=2, selection=EVERY_SIZE, on_stage=events.append)
    result = sr.enhance(two_people)
    assert [e.stage for e in events] == STAGES_OF_A_PHOTO
    faces = {e.stage: e.faces for e in events}
    assert faces["decode"] == 0 and faces["detect"] >= 2
    assert faces["select"] == faces["crop"] == faces["restore"] == faces["paste"] == result.num_faces == 2
    assert faces["backproject"] == faces["mask"] == 2
    assert all(e.seconds >= 0 for e in events)
    parts = [e for e in events if e.part_of == "paste"]
    assert [e.stage for e in parts] == ["paste.background", "paste.blend", "paste.output"]
    assert events[-1].seconds >= sum(e.seconds for e in parts)

    events.clear()
    sr_one = FaceSuperResolver(sparnet, detector, selection=SelectionPolicy(all_sizes=True, max_faces=1),
                               on_stage=events.append)
    sr_one.enhance(two_people, paste_back=False)
    assert [(e.stage, e.faces) for e in events][2:] == [("select", 1), ("crop", 1), ("restore", 1),
                                                        ("backproject", 1), ("mask", 1)]
    # without back-projection its stage does not run; the faces still get their masks
    events.clear()
    sr_one.enhance(two_people, paste_back=False, paste=PasteOptions(back_projection=False))
    assert [e.stage for e in events][-2:] == ["restore", "mask"]


def test_an_aligned_face_skips_detection(sparnet, tiny_face) -> None:
    events: list[StageEvent] = []
    FaceSuperResolver(sparnet, on_stage=events.append).enhance(tiny_face, aligned=True, paste_back=False)
    assert [(e.stage, e.faces) for e in events] == [("decode", 0), ("crop", 1), ("restore", 1),
                                                    ("backproject", 1), ("mask", 1)]


def test_refine_crop_reports_the_recrop_and_the_second_pass(dic_model_dir, tiny_face) -> None:
    events: list[StageEvent] = []
    sr = FaceSuperResolver.from_pretrained(dic_model_dir, device="cpu", refine_crop=True,
                                           on_stage=events.append)
    assert sr.refine_crop
    sr.enhance(tiny_face, aligned=True, paste_back=False)
    stages = [(e.stage, e.faces) for e in events]
    assert stages[:4] == [("decode", 0), ("crop", 1), ("restore", 1), ("recrop", stages[3][1])]
    moved = stages[3][1]
    assert stages[4:] == ([("restore", moved)] if moved else []) + [("backproject", 1), ("mask", 1)]


def test_enhance_is_finish_of_restore_of_prepare(sparnet, detector, two_people) -> None:
    sr = FaceSuperResolver(sparnet, detector, upscale=2, selection=EVERY_SIZE)
    prepared = sr.prepare(two_people)
    assert len(prepared.faces) == 2 and prepared.scale == 2.0
    (restored,) = sr.restore([prepared])
    by_parts, whole = sr.finish(restored), sr.enhance(two_people)
    np.testing.assert_array_equal(by_parts.image, whole.image)
    for a, b in zip(by_parts.faces, whole.faces, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        assert a.box == b.box and a.score == b.score


def test_faces_left_alone_pass_from_select_to_the_result(sparnet, detector, two_people) -> None:
    # the default selection leaves both ~50 px faces alone; every part carries them to the result
    sr = FaceSuperResolver(sparnet, detector, upscale=2)
    selection = sr.select(sr.decode(two_people), sr.detect(sr.decode(two_people)))
    assert selection.kept == () and len(selection.skipped) == 2
    prepared = sr.prepare(two_people)
    assert prepared.faces == () and len(prepared.skipped) == 2
    (restored,) = sr.restore([prepared])
    result = sr.finish(restored)
    assert result.num_faces == 0
    assert [(f.box, f.reason) for f in result.skipped_faces] == [
        (s.face.box, "larger than the model's useful size") for s in selection.skipped
    ]
    assert [f.box for f in sr.enhance(two_people).skipped_faces] == [f.box for f in result.skipped_faces]


def test_faces_of_several_photos_share_the_network(sparnet, detector, two_people, tiny_face) -> None:
    # one restore call for two photos gives each photo what enhance gives it (batch_size=1: the same
    # network calls, so bit for bit)
    calls: list[int] = []
    sr = FaceSuperResolver(sparnet, detector, upscale=1, batch_size=1, selection=EVERY_SIZE,
                           on_stage=lambda e: calls.append(e.faces) if e.stage == "restore" else None)
    photos = [sr.prepare(two_people), sr.prepare(tiny_face, aligned=True)]
    calls.clear()
    together = [sr.finish(r) for r in sr.restore(photos)]
    assert calls == [3]  # one restore stage for the three faces of both photos
    alone = [sr.enhance(two_people), sr.enhance(tiny_face, aligned=True)]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        assert [f.box for f in a.faces] == [f.box for f in b.faces]
