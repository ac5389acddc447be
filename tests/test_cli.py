"""The ``dicsr`` command line, run in-process through ``dicsr.cli.main`` and once as a real process."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _support import shared_path, write_two_small_photos
from PIL import Image

from dicsr import __version__
from dicsr.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small real photos in nested folders."""
    folder = tmp_path_factory.mktemp("photos")
    write_two_small_photos(folder)
    return folder


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"dicsr {__version__}"


def test_models_lists_the_zoo(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert set(rows) == {"dic-celeba", "dicgan-celeba", "dic-helen", "dicgan-helen", "sparnet",
                         "sparnet-light", "sparnethd", "sparnethd-3d"}
    assert rows["dic-celeba"]["lr_size"] == 16 and rows["dic-celeba"]["hr_size"] == 128
    assert rows["sparnethd"]["crop"] == "ffhq"
    assert not any(row["cached"] for row in rows.values())
    code, out, _ = run(capsys, "models")
    assert code == 0 and "dicgan-helen" in out and "CC BY-NC-SA 4.0" in out


def test_convert_writes_a_model_folder_and_refuses_to_overwrite(capsys, tmp_path: Path) -> None:
    checkpoint = shared_path("golden", "SPARNet.pth")
    code, out, _ = run(capsys, "convert", checkpoint, tmp_path / "sparnet", "--name", "sparnet")
    assert code == 0 and "converted" in out
    config = json.loads((tmp_path / "sparnet" / "config.json").read_text())
    assert config["arch"] == "sparnet" and config["name"] == "sparnet"
    assert (tmp_path / "sparnet" / "model.safetensors").stat().st_size > 40_000_000
    code, _, err = run(capsys, "convert", checkpoint, tmp_path / "sparnet")
    assert code == 1 and "overwrite" in err and "Traceback" not in err
    code, _, _ = run(capsys, "convert", checkpoint, tmp_path / "sparnet", "--overwrite")
    assert code == 0


def test_enhance_folder_with_every_output(capsys, photo_folder: Path, tmp_path: Path,
                                          sparnet_model_dir: Path, detector_weights: Path) -> None:
    out_dir = tmp_path / "out"
    code, out, err = run(
        capsys, "enhance", photo_folder, "-o", out_dir, "--model", sparnet_model_dir,
        "--detector-weights", detector_weights, "--upscale", "2", "--save-faces", "--save-landmarks",
        "--compare", "--ext", "png", "--no-progress", "--all-faces",
    )
    assert code == 0, err
    assert "2 image(s) restored, 8 face(s), 0 skipped, 0 failed" in out
    restored = Image.open(out_dir / "nested" / "group.png")
    source = Image.open(photo_folder / "nested" / "group.jpg")
    assert restored.size == (source.width * 2, source.height * 2)
    assert len(list((out_dir / "nested").glob("group_face*.png"))) == 6
    assert Image.open(out_dir / "two_compare.png").height == Image.open(out_dir / "two.png").height
    record = json.loads((out_dir / "nested" / "group.json").read_text())
    assert record["upscale"] == 2 and len(record["faces"]) == 6
    for face in record["faces"]:
        x0, y0, x1, y1 = face["box"]
        assert 0 <= x0 < x1 <= restored.width and 0 <= y0 < y1 <= restored.height
        assert len(face["points5"]) == 5 and face["landmarks68"] is None  # SPARNet: no landmarks

    # existing outputs are skipped unless --overwrite
    code, out, _ = run(capsys, "enhance", photo_folder, "-o", out_dir, "--model", sparnet_model_dir,
                       "--detector-weights", detector_weights, "--upscale", "2", "--ext", "png",
                       "--no-progress")
    assert code == 0 and "0 image(s) restored, 0 face(s), 2 skipped" in out


def test_enhance_bf16_channels_last(capsys, photo_folder: Path, tmp_path: Path, sparnet_model_dir: Path,
                                    detector_weights: Path) -> None:
    source = photo_folder / "two.jpg"
    code, out, err = run(capsys, "enhance", source, "-o", tmp_path, "--model", sparnet_model_dir,
                         "--detector-weights", detector_weights, "--dtype", "bfloat16", "--channels-last",
                         "--upscale", "1", "--no-progress", "--all-faces")
    assert code == 0, err
    assert "1 image(s) restored, 2 face(s)" in out
    assert Image.open(tmp_path / "two.jpg").size == Image.open(photo_folder / "two.jpg").size


def test_enhance_with_dic_landmarks(capsys, photo_folder: Path, tmp_path: Path, dic_model_dir: Path,
                                    detector_weights: Path) -> None:
    code, _, err = run(capsys, "enhance", photo_folder / "two.jpg", "-o", tmp_path, "--model", dic_model_dir,
                       "--detector-weights", detector_weights, "--upscale", "2", "--save-landmarks",
                       "--draw-landmarks", "--ext", "png", "--no-progress", "--all-faces")
    assert code == 0, err
    record = json.loads((tmp_path / "two.json").read_text())
    assert len(record["faces"]) == 2
    drawn = np.asarray(Image.open(tmp_path / "two.png").convert("RGB")).astype(int)
    for face in record["faces"]:
        points = np.array(face["landmarks68"])
        assert points.shape == (68, 2)
        x0, y0, x1, y1 = face["crop_box"]
        assert (points[:, 0] > x0 - 1).all() and (points[:, 0] < x1 + 1).all()
        assert (points[:, 1] > y0 - 1).all() and (points[:, 1] < y1 + 1).all()
        # a landmark dot is drawn in green
        x, y = np.rint(points[30]).astype(int)
        assert tuple(drawn[y, x]) == (0, 255, 0)


def test_offline_download_is_a_clear_error(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("DICSR_CACHE_DIR", str(tmp_path))
    code, _, err = run(capsys, "download", "dic-celeba", "--no-progress")
    assert code == 1
    assert err.startswith("dicsr: error:") and "dicsr convert" in err and "Traceback" not in err


def test_no_inputs_and_no_command(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "enhance", tmp_path / "nothing-*.jpg", "-o", tmp_path / "out")
    assert code == 1 and "no input images" in err
    # the hub client's per-retry warnings are kept for -vv; dicsr reports the outcome itself
    assert logging.getLogger("huggingface_hub").level == logging.ERROR
    assert main([]) == 2


def test_console_script_runs_as_a_process(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path),
           "DICSR_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "dicsr", "download", "sparnet"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "dicsr: error:" in done.stderr
    assert "sparnet" in done.stderr and "offline" in done.stderr.lower()


def test_download_detector_uses_the_verified_cache(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   detector_weights: Path) -> None:
    monkeypatch.setenv("DICSR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("DICSR_OFFLINE", "1")
    code, _, err = run(capsys, "download", "--detector", "mobile0.25")
    assert code == 1 and "not cached" in err and "Traceback" not in err
    (tmp_path / "detectors").mkdir()
    shutil.copy(detector_weights, tmp_path / "detectors" / detector_weights.name)
    code, out, _ = run(capsys, "download", "--detector", "mobile0.25")
    assert code == 0 and str(tmp_path / "detectors" / detector_weights.name) in out
    # a damaged cached copy is refused, not used
    (tmp_path / "detectors" / detector_weights.name).write_bytes(b"\0" * 1000)
    code, _, err = run(capsys, "download", "--detector", "mobile0.25")
    assert code == 1 and "dicsr: error:" in err
    code, _, err = run(capsys, "download")
    assert code == 1 and "nothing to download" in err


def test_max_pixels_option_refuses_big_inputs(capsys, photo_folder: Path, tmp_path: Path,
                                              sparnet_model_dir: Path, detector_weights: Path) -> None:
    source = photo_folder / "two.jpg"
    code, out, _ = run(capsys, "enhance", source, "-o", tmp_path, "--model", sparnet_model_dir,
                       "--detector-weights", detector_weights, "--max-pixels", "1000", "--no-progress")
    assert code == 1 and "1 failed" in out and "more than the limit of 1,000" in out
    code, _, err = run(capsys, "enhance", source, "-o", tmp_path, "--model", sparnet_model_dir,
                       "--max-pixels", "-1")
    assert code == 1 and "--max-pixels" in err
