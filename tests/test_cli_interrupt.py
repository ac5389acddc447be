"""Killing ``dicsr enhance`` mid-run loses nothing: no partial file under a final name, and a re-run
completes the set.

The CLI runs as a real process over photos whose restored PNGs take a while to encode. The test
does not guess when to strike: it watches the output folder and sends the signal once the run has
reached the moment under test (the first output finished, or a write in progress).

* SIGTERM and SIGINT unwind like Ctrl-C: the write in progress leaves nothing, the summary says
  what was done and what is left, the exit status is 143 / 130.
* SIGKILL cannot be handled: the write in progress leaves its hidden temporary file, which no run
  takes for an output and the next run removes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _support import shared_path
from PIL import Image

from dicsr._files import is_temporary_sibling

PHOTOS = 4
#: Generous: a stuck run fails the test instead of hanging it; nothing is timed.
DEADLINE_SECONDS = 600


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Four 1920x1080 photos: at x2 each restored PNG is 8.3 MP, long enough to encode."""
    folder = tmp_path_factory.mktemp("photos")
    source = shared_path("faces", "face_recognition", "examples", "obama-1080p.jpg")
    for index in range(PHOTOS):
        shutil.copy(source, folder / f"photo{index}.jpg")
    return folder


def start(photos: Path, output: Path, model: Path, weights: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "dicsr", "enhance", str(photos), "-o", str(output), "-m", str(model),
               "--detector-weights", str(weights), "--upscale", "2", "--ext", "png", "--save-landmarks",
               "--no-progress", "--all-faces"]  # the photo's one large face is restored
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    # As from a terminal: a shell starts background jobs (pytest run with `&`, CI runners) with SIGINT
    # ignored, and a child inherits that; the command's Ctrl-C handling is what is under test.
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def temporaries(output: Path) -> list[str]:
    return [name for name in os.listdir(output) if is_temporary_sibling(name)] if output.exists() else []


def finished_photos(output: Path) -> list[str]:
    return sorted(p.name for p in output.glob("photo*.png")) if output.exists() else []


def wait_for(process: subprocess.Popen[str], condition: Callable[[], bool], what: str) -> None:
    """Poll until ``condition`` holds; fail (not hang) if the run ends first or takes far too long."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the run ended (rc {process.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {what} within {DEADLINE_SECONDS} s")
        time.sleep(0.002)


def assert_every_final_file_is_complete(output: Path) -> list[str]:
    """Every file under a final name decodes to its end; returns the restored photos' names."""
    for path in output.iterdir():
        if path.name.startswith("."):
            continue
        if path.suffix == ".json":
            assert json.loads(path.read_text())["input"].endswith(path.stem + ".jpg"), path
        else:
            with Image.open(path) as image:
                image.load()  # raises on a truncated file
                assert image.size == (3840, 2160), path
    return finished_photos(output)


def rerun_completes_the_set(photos: Path, output: Path, model: Path, weights: Path, done: list[str]) -> None:
    process = start(photos, output, model, weights)
    out, err = process.communicate(timeout=DEADLINE_SECONDS)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert f"dicsr: {PHOTOS - len(done)} image(s) restored" in out and f"{len(done)} skipped, 0 failed" in out
    assert assert_every_final_file_is_complete(output) == [f"photo{i}.png" for i in range(PHOTOS)]
    assert sorted(p.name for p in output.glob("*.json")) == [f"photo{i}.json" for i in range(PHOTOS)]
    assert temporaries(output) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_write_leaves_no_partial_file_and_a_rerun_completes(
        signum, photos, tmp_path, sparnet_model_dir, detector_weights):
    output = tmp_path / "out"
    process = start(photos, output, sparnet_model_dir, detector_weights)
    # the moment under test: the first photo is finished and another output is being written
    wait_for(process, lambda: bool(finished_photos(output)) and bool(temporaries(output)),
             "write in progress after the first finished photo")
    process.send_signal(signum)
    out, err = process.communicate(timeout=DEADLINE_SECONDS)

    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err
    done = assert_every_final_file_is_complete(output)
    assert 1 <= len(done) < PHOTOS
    assert temporaries(output) == [], "the interrupted write left its temporary file"
    headline, *details = out.splitlines()
    assert headline == (f"dicsr: {len(done)} image(s) restored, {len(done)} face(s), 0 skipped, 0 failed, "
                        f"{PHOTOS - len(done)} left")
    name = signal.Signals(signum).name
    assert details == [f"  left: {PHOTOS - len(done)} image(s) not processed ({name}); run the same command "
                       f"again to finish: what is done is skipped"]

    rerun_completes_the_set(photos, output, sparnet_model_dir, detector_weights, done)


def test_a_killed_write_leaves_only_a_hidden_temporary_that_the_next_run_removes(
        photos, tmp_path, sparnet_model_dir, detector_weights):
    output = tmp_path / "out"
    process = start(photos, output, sparnet_model_dir, detector_weights)
    wait_for(process, lambda: bool(finished_photos(output)) and bool(temporaries(output)),
             "write in progress after the first finished photo")
    process.kill()
    process.communicate(timeout=DEADLINE_SECONDS)
    assert process.returncode == -signal.SIGKILL

    left_behind = temporaries(output)
    assert left_behind and all(name.startswith(".") and name.endswith(".tmp") for name in left_behind)
    done = assert_every_final_file_is_complete(output)  # the temporary never is one of them
    assert 1 <= len(done) < PHOTOS

    rerun_completes_the_set(photos, output, sparnet_model_dir, detector_weights, done)
    assert not any((output / name).exists() for name in left_behind)
