"""Bounded fuzzing of image decoding and checkpoint loading (hypothesis-driven byte mutation).

Real files are mutated (truncated, bit-flipped, header bytes overwritten, bytes inserted or
deleted, emptied) and handed to the loaders: photos from ../shared/faces and their re-encodings in
every format and mode dicsr reads, the golden official checkpoints (whole, and a slice re-saved in
torch's zip and legacy formats), their converted safetensors model folder (conftest's session
fixture) and the real RetinaFace weights. Every outcome must be a success or a
:class:`dicsr.errors.DicsrError` subclass with a message: never another exception, never a hang
(each example runs under a time bound), never an unbounded allocation (images are loaded with a
pixel limit, checked from the header before decoding).

Marked ``slow``; the whole module runs in well under a minute on two shared cores.
"""

from __future__ import annotations

import io
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _support import shared_path
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from dicsr.errors import DicsrError
from dicsr.image import load_image
from dicsr.weights import load_model_folder, read_official_checkpoint
from dicsr.weights._folder import CONFIG_FILENAME, WEIGHTS_FILENAME

pytestmark = [
    pytest.mark.slow,
    # Pillow warns about the damage it skips over (corrupt EXIF, oversized tags): expected here.
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
    pytest.mark.usefixtures("one_intra_op_thread"),
]

#: Wall-clock bound of one load. Healthy loads of these files take well under a second.
EXAMPLE_SECONDS = 20.0
#: Pixel limit for fuzzed images: a mutated header may claim any size; this keeps memory bounded.
FUZZ_MAX_PIXELS = 4_000_000


class Seeds(dict):
    """Seed files by name; a short repr keeps hypothesis' failure reports readable."""

    def __repr__(self) -> str:
        return f"Seeds({', '.join(self)})"


class Blob(bytes):
    def __repr__(self) -> str:
        return f"<{len(self):,} bytes>"


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                               HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """One folder for the module's fuzzed files, each overwritten by the next example."""
    return tmp_path_factory.mktemp("fuzz")




def run_bounded(load: Callable[[], Any], what: str) -> str:
    """Run ``load`` with a time bound; return "ok" or "DicsrError"; anything else fails the test."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            load()
            outcome["result"] = "ok"
        except DicsrError as exc:
            outcome["result"] = "DicsrError"
            outcome["message"] = str(exc)
        except BaseException as exc:  # reported below, in the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"fuzz {what}", daemon=True)
    worker.start()
    worker.join(EXAMPLE_SECONDS)
    if worker.is_alive():
        pytest.fail(f"{what}: no result after {EXAMPLE_SECONDS:.0f} s (hang)")
    if "error" in outcome:
        error = outcome["error"]
        raise AssertionError(
            f"{what}: {type(error).__name__} escaped instead of a DicsrError: {error}"
        ) from error
    if outcome["result"] == "DicsrError":
        assert outcome["message"].strip(), f"{what}: DicsrError without a message"
    event(outcome["result"])  # --hypothesis-show-statistics: how often each outcome occurred
    return outcome["result"]


# --- mutations --------------------------------------------------------------------------------------


def _position(draw, limit: int) -> int:
    """An offset in ``[0, limit)`` spread over the whole range (integers() favours small values)."""
    return min(limit - 1, int(draw(st.floats(0.0, 1.0, exclude_max=True)) * limit))


SINGLE_STEPS = ["truncate", "flip", "flip_header", "overwrite_header", "insert", "delete"]


@st.composite
def mutated(draw, original: bytes, *, header: int = 256) -> bytes:
    """One structural mutation of ``original``; ``header`` bytes at the start get extra attention."""
    data = bytearray(original)
    kind = draw(st.sampled_from([*SINGLE_STEPS, "zero_length", "stack"]))
    if kind == "zero_length":
        return b""
    steps = draw(st.integers(2, 4)) if kind == "stack" else 1
    for _ in range(steps):
        step = draw(st.sampled_from(SINGLE_STEPS)) if kind == "stack" else kind
        size = len(data)
        if size == 0:
            break
        if step == "truncate":
            del data[_position(draw, size) :]
        elif step in ("flip", "flip_header"):
            limit = min(size, header) if step == "flip_header" else size
            for _ in range(draw(st.integers(1, 8))):
                data[_position(draw, limit)] ^= 1 << draw(st.integers(0, 7))
        elif step == "overwrite_header":
            offset = _position(draw, min(size, header))
            patch = draw(st.binary(min_size=1, max_size=16))
            data[offset : offset + len(patch)] = patch
        elif step == "insert":
            offset = _position(draw, size + 1)
            data[offset:offset] = draw(st.binary(min_size=1, max_size=64))
        elif step == "delete":
            start = _position(draw, size)
            del data[start : start + draw(st.integers(1, 256))]
    return bytes(data)


# --- images -----------------------------------------------------------------------------------------

REAL_IMAGE_FILES = [
    ("Pillow", "Tests", "images", "hopper.jpg"),
    ("Pillow", "Tests", "images", "hopper_orientation_6.jpg"),  # EXIF orientation
    ("Pillow", "Tests", "images", "hopper_16bit.pgm"),
    ("derived", "hopper_16bit_from_pgm.png"),  # 16-bit PNG
]


@pytest.fixture(scope="module")
def image_seeds() -> dict[str, bytes]:
    """Real image files, plus crops of real photos re-encoded in every format and mode dicsr reads."""
    seeds = Seeds({"/".join(parts): shared_path("faces", *parts).read_bytes() for parts in REAL_IMAGE_FILES})
    with Image.open(shared_path("faces", "face_recognition", "examples", "alex-lacamoire.png")) as rgba:
        face = rgba.crop((150, 60, 214, 124))  # 64 px around the face, RGBA
    cmyk_path = shared_path("faces", "sharp", "test", "fixtures", "Channel_digital_image_CMYK_color.jpg")
    with Image.open(cmyk_path) as cmyk:
        cmyk_crop = cmyk.crop((200, 100, 248, 148))
    encodings = {
        "rgba.png": (face, "PNG", {}),
        "palette.png": (face.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE), "PNG", {}),
        "la.png": (face.convert("LA"), "PNG", {}),
        "gray.gif": (face.convert("L"), "GIF", {}),
        "rgb.bmp": (face.convert("RGB"), "BMP", {}),
        "rgba.tiff": (face, "TIFF", {"compression": "tiff_deflate"}),
        "rgb.webp": (face.convert("RGB"), "WEBP", {"quality": 80}),
        "bilevel.png": (face.convert("1"), "PNG", {}),
        "cmyk.jpg": (cmyk_crop, "JPEG", {"quality": 90}),
        "cmyk.tiff": (cmyk_crop, "TIFF", {}),
        "progressive.jpg": (face.convert("RGB"), "JPEG", {"progressive": True}),
    }
    for name, (image, fmt, options) in encodings.items():
        buffer = io.BytesIO()
        image.save(buffer, fmt, **options)
        seeds[name] = buffer.getvalue()
    return seeds


@fuzz_settings(1500)
@given(data=st.data())
def test_mutated_image_files_load_or_raise_a_typed_error(image_seeds, scratch, data):
    name = data.draw(st.sampled_from(sorted(image_seeds)), label="seed")
    payload = data.draw(mutated(image_seeds[name]), label="mutation")
    path = scratch / f"fuzzed{Path(name).suffix}"
    path.write_bytes(payload)

    def load() -> None:
        loaded = load_image(path, max_pixels=FUZZ_MAX_PIXELS)
        # whatever decodes must be a usable image
        assert loaded.rgb.ndim == 3 and loaded.rgb.shape[2] == 3 and np.isfinite(loaded.rgb).all()
        assert loaded.width * loaded.height <= FUZZ_MAX_PIXELS

    run_bounded(load, f"load_image({name} mutated)")


# --- official checkpoints --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint_seeds() -> dict[str, bytes]:
    """Small real checkpoints: a slice of the golden SPARNet weights in torch's zip and legacy
    formats, bare and in the DIC solver layout (``state_dict`` + optimizer + epoch)."""
    state = read_official_checkpoint(shared_path("golden", "SPARNet.pth"))
    small = {k: v for k, v in list(state.items())[:24]}
    solver = {"state_dict": small, "epoch": 7, "optimizer": {"lr": 1e-4, "betas": (0.9, 0.999)}}
    seeds = Seeds()
    for name, obj, legacy in (("bare_zip.pth", small, False), ("bare_legacy.pth", small, True),
                              ("solver_zip.pth", solver, False), ("solver_legacy.pth", solver, True)):
        buffer = io.BytesIO()
        torch.save(obj, buffer, _use_new_zipfile_serialization=not legacy)
        seeds[name] = buffer.getvalue()
    return seeds


@fuzz_settings(600)
@given(data=st.data())
def test_mutated_checkpoints_read_or_raise_a_typed_error(checkpoint_seeds, scratch, data):
    name = data.draw(st.sampled_from(sorted(checkpoint_seeds)), label="seed")
    payload = data.draw(mutated(checkpoint_seeds[name], header=1024), label="mutation")
    path = scratch / name
    path.write_bytes(payload)
    run_bounded(lambda: read_official_checkpoint(path), f"read_official_checkpoint({name} mutated)")


@pytest.fixture(scope="module")
def golden_sparnet() -> bytes:
    return Blob(shared_path("golden", "SPARNet.pth").read_bytes())


@fuzz_settings(25)
@given(data=st.data())
def test_mutated_golden_checkpoint_reads_or_raises_a_typed_error(golden_sparnet, scratch, data):
    # the whole 43 MB official file: its zip directory sits at the end, so truncation matters most
    payload = data.draw(mutated(golden_sparnet, header=4096), label="mutation")
    path = scratch / "SPARNet.pth"
    path.write_bytes(payload)
    run_bounded(lambda: read_official_checkpoint(path), "read_official_checkpoint(SPARNet.pth mutated)")


# --- model folders (safetensors + config.json) -----------------------------------------------------


def _folder_with(folder: Path, source: Path, filename: str, payload: bytes) -> Path:
    """``folder`` holding ``payload`` as ``filename`` and the source folder's other file."""
    if not folder.exists():
        folder.mkdir()
        for other in (WEIGHTS_FILENAME, CONFIG_FILENAME):
            if other != filename:
                # a hard link: the 43 MB weights are not copied (nothing writes to them)
                try:
                    (folder / other).hardlink_to(source / other)
                except OSError:
                    shutil.copyfile(source / other, folder / other)
    (folder / filename).write_bytes(payload)
    return folder


@fuzz_settings(40)
@given(data=st.data())
def test_mutated_safetensors_load_or_raise_a_typed_error(sparnet_model_dir, scratch, data):
    original = (sparnet_model_dir / WEIGHTS_FILENAME).read_bytes()
    header_size = 8 + int.from_bytes(original[:8], "little")  # u64 length + JSON header
    payload = data.draw(mutated(original, header=header_size), label="mutation")
    folder = _folder_with(scratch / "weights_mutated", sparnet_model_dir, WEIGHTS_FILENAME, payload)
    run_bounded(lambda: load_model_folder(folder), "load_model_folder(model.safetensors mutated)")


@fuzz_settings(100)
@given(data=st.data())
def test_mutated_model_config_loads_or_raises_a_typed_error(sparnet_model_dir, scratch, data):
    original = (sparnet_model_dir / CONFIG_FILENAME).read_bytes()
    payload = data.draw(mutated(original, header=len(original)), label="mutation")
    folder = _folder_with(scratch / "config_mutated", sparnet_model_dir, CONFIG_FILENAME, payload)
    run_bounded(lambda: load_model_folder(folder), "load_model_folder(config.json mutated)")


# --- detector weights ---------------------------------------------------------------------------------


@fuzz_settings(30)
@given(data=st.data())
def test_mutated_detector_weights_load_or_raise_a_typed_error(detector_weights, scratch, data):
    from dicsr.face.detect import FaceDetector

    original = detector_weights.read_bytes()
    payload = data.draw(mutated(original, header=4096), label="mutation")
    path = scratch / "detection_mobilenet0.25_Final.pth"
    path.write_bytes(payload)
    run_bounded(lambda: FaceDetector(path), "FaceDetector(mutated weights)")
