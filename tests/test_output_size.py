"""Bounded memory: the restored photo is checked against ``max_output_pixels`` before it is allocated.

An explicit ``upscale`` whose photo would exceed the limit is a typed error naming the size and the
limit; the default scale is lowered to fit, never below 1, so a photo already larger than the limit
is refused rather than silently restored above it. The CLI reports such files (and a real
``MemoryError``) per file and goes on with the next one.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from _support import shared_path
from PIL import Image

from dicsr.cli import main
from dicsr.errors import ImageTooLargeError, InvalidInputError
from dicsr.pipeline import DEFAULT_MAX_OUTPUT_PIXELS, FaceSuperResolver
from dicsr.pipeline._options import checked_scale
from dicsr.pipeline._output_size import check_output_size, default_output_scale, output_pixels

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


# --- the rules, as functions ---------------------------------------------------------------------


def test_output_pixels_round_like_the_background_upscale() -> None:
    assert output_pixels(6000, 4000, 8) == 48000 * 32000
    assert output_pixels(3, 3, 0.1) == 1  # never below one pixel
    assert output_pixels(101, 11, 1.5) == round(151.5) * round(16.5)
    assert math.isinf(output_pixels(128, 128, 1e308))


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "2", None, True])
def test_an_upscale_must_be_a_finite_positive_number(value) -> None:
    with pytest.raises(InvalidInputError, match="upscale must be"):
        checked_scale("upscale", value)


def test_the_default_scale_is_lowered_to_fit_but_never_below_one() -> None:
    assert default_output_scale(400, 300, 8, 64_000_000) == 8  # 3200x2400 fits
    lowered = default_output_scale(4000, 3000, 8, 64_000_000)
    assert lowered == 2.3 and output_pixels(4000, 3000, lowered) <= 64_000_000
    assert output_pixels(4000, 3000, lowered + 0.01) > 64_000_000  # the largest 0.01 step that fits
    assert default_output_scale(9000, 9000, 8, 64_000_000) == 1  # 81 MP: not shrunk ...
    with pytest.raises(ImageTooLargeError, match="already more than max_output_pixels = 64,000,000"):
        check_output_size(9000, 9000, 1, 64_000_000, requested=False)  # ... but refused
    assert default_output_scale(9000, 9000, 8, None) == 8


def test_an_explicit_upscale_over_the_limit_names_the_size_and_the_limit() -> None:
    with pytest.raises(ImageTooLargeError) as caught:
        check_output_size(6000, 4000, 8, DEFAULT_MAX_OUTPUT_PIXELS, requested=True)
    message = str(caught.value)
    assert "48000×32000 = 1,536,000,000 pixels" in message and "6000×4000 at upscale 8" in message
    assert "max_output_pixels = 64,000,000" in message and "--max-output-pixels" in message
    with pytest.raises(ImageTooLargeError, match="an astronomical size"):
        check_output_size(128, 128, 1e308, DEFAULT_MAX_OUTPUT_PIXELS, requested=True)
    check_output_size(6000, 4000, 8, None, requested=True)  # no limit


# --- through FaceSuperResolver -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def resolver_without_detector(sparnet_model_dir, tmp_path_factory) -> FaceSuperResolver:
    """A resolver whose detector cannot be built: a check that runs first is the only error seen."""
    missing = tmp_path_factory.mktemp("nowhere") / "detector.pth"
    return FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cpu", detector_weights=missing,
                                             progress=False)


@pytest.mark.parametrize("shape, upscale", [((128, 128, 3), 1e6), ((4000, 6000, 3), 8)])
def test_an_explicit_upscale_is_refused_before_detection(resolver_without_detector, shape, upscale) -> None:
    photo = np.zeros(shape, dtype=np.uint8)
    with pytest.raises(ImageTooLargeError, match="more than max_output_pixels = 64,000,000"):
        resolver_without_detector.enhance(photo, upscale=upscale)


def test_a_photo_larger_than_the_limit_is_refused_at_the_default_scale(sparnet_model_dir, detector_weights):
    strict = FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cpu",
                                               detector_weights=detector_weights,
                                               max_output_pixels=10_000, progress=False)
    with pytest.raises(ImageTooLargeError, match=r"the photo is 200×100 = 20,000 pixels, already more"):
        strict.enhance(np.zeros((100, 200, 3), dtype=np.uint8))
    # faces only: no photo is allocated, so nothing to refuse
    assert strict.enhance(np.zeros((100, 200, 3), dtype=np.uint8), paste_back=False).upscale == 1
    # a photo that fits at a lower scale gets it, and the result is within the limit
    result = strict.enhance(np.zeros((40, 50, 3), dtype=np.uint8))
    assert result.upscale == 2.23 and result.image.shape[0] * result.image.shape[1] <= 10_000
    unlimited = FaceSuperResolver(strict.adapter, strict.detector, max_output_pixels=None)
    assert unlimited.enhance(np.zeros((100, 200, 3), dtype=np.uint8)).image.shape[:2] == (800, 1600)


# --- through the CLI ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("two")
    Image.open(shared_path("faces", "face_recognition", "examples", "obama-240p.jpg")).save(folder / "a.png")
    Image.open(shared_path("faces", "Pillow", "Tests", "images", "hopper.jpg")).save(folder / "b.png")
    return folder


def cli_args(inputs: Path, output: Path, model: Path, weights: Path, *extra: str) -> list[str]:
    return ["enhance", str(inputs), "-o", str(output), "--model", str(model),
            "--detector-weights", str(weights), "--no-progress", *extra]


def test_the_cli_lists_each_photo_too_large_to_restore_and_goes_on(capsys, two_photos, tmp_path,
                                                                  sparnet_model_dir, detector_weights):
    out = tmp_path / "out"
    code = main(cli_args(two_photos, out, sparnet_model_dir, detector_weights, "--upscale", "1e6"))
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    assert "0 image(s) restored, 0 face(s), 0 skipped, 2 failed" in captured.out
    first, second = captured.out.splitlines()[1:]
    assert first == (
        f"  failed: {two_photos / 'a.png'}: the restored photo would be 427000000×240000000 = "
        f"102,480,000,000,000,000 pixels (427×240 at upscale 1e+06), more than max_output_pixels "
        f"= 64,000,000; pass a smaller upscale, or a larger max_output_pixels if the memory is "
        f"there (command line: --upscale, --max-output-pixels)"
    )
    assert second.startswith(f"  failed: {two_photos / 'b.png'}: the restored photo would be 128000000×")


def test_the_cli_catches_a_real_memory_error_per_file(capsys, two_photos, tmp_path, sparnet_model_dir,
                                                      detector_weights):
    # No limit: the 43 PiB background really is requested, and the allocation fails at once.
    out = tmp_path / "out"
    code = main(cli_args(two_photos, out, sparnet_model_dir, detector_weights, "--upscale", "1e6",
                         "--max-output-pixels", "0"))
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    assert "0 image(s) restored, 0 face(s), 0 skipped, 2 failed" in captured.out  # the second was tried
    for name in ("a.png", "b.png"):
        assert f"  failed: {two_photos / name}: out of memory: " in captured.out
    assert list((tmp_path / "out").iterdir()) == []


def test_max_output_pixels_option(capsys, two_photos, tmp_path, sparnet_model_dir, detector_weights):
    args = cli_args(two_photos / "b.png", tmp_path / "out", sparnet_model_dir, detector_weights)
    assert main([*args, "--max-output-pixels", "100000"]) == 0  # 128x128 at x8 is 1 MP: lowered to x2.47
    assert Image.open(tmp_path / "out" / "b.png").size == (316, 316)
    assert main([*args, "--max-output-pixels", "-3"]) == 1
    assert "--max-output-pixels must be >= 0" in capsys.readouterr().err
