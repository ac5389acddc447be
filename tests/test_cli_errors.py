"""What ``dicsr enhance`` says when something is wrong: once, in one typed line, naming the culprit.

* A configuration error (the output folder, an input argument, the dicsr cache, the model, the
  detector weights) stops the run at the start, before any photo, with one ``dicsr: error:`` line;
  ``main`` never lets an exception out as a traceback (``-vv`` prints it).
* A file that fails is listed once, in the summary, with its path once; the folder walk lists what
  it passes over (other suffixes, broken links, loops, linked folders); a decoded file whose values
  are unusable is named; an animated image is said to be restored from its first frame.
* The end-to-end corpus: the CLI as a real process over bad files and hostile model folders, whose
  stderr never holds a traceback and whose every failure line names its file.

Real files, the golden SPARNet model folder and the real RetinaFace weights.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from _support import shared_path
from PIL import Image

from dicsr.cli import main
from dicsr.errors import InvalidImageError, NonFiniteValuesError
from dicsr.image import load_image

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def portrait() -> Path:
    return shared_path("faces", "face_recognition", "examples", "obama-240p.jpg")


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed tiny PNG whose header claims ``width × height`` RGB pixels."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * min(width, 1000)) * 2)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


# --- configuration errors stop the run once, at the start ---------------------------------------------


def nested_brackets(folder: Path) -> None:
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)


def string_format_version(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "format_version": "1"}))


def not_json(folder: Path) -> None:
    (folder / "config.json").write_text("{ this is not json")


def truncated_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])


def no_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()


#: hostile or broken model folder -> (how to break a copy of the SPARNet folder, what the error names
#: besides the folder). More cases are one line each; the config.json validation of issue 13 item 6
#: will let the first two name their field.
HOSTILE_MODELS: dict[str, tuple[Callable[[Path], None], str]] = {
    "100000 nested brackets": (nested_brackets, ""),
    "format_version as a string": (string_format_version, ""),
    "config.json not JSON": (not_json, "config.json"),
    "truncated safetensors": (truncated_weights, "model.safetensors"),
    "no safetensors": (no_weights, "model.safetensors"),
}


@pytest.fixture
def broken_model(request, sparnet_model_dir, tmp_path) -> tuple[Path, str]:
    damage, named = HOSTILE_MODELS[request.param]
    folder = tmp_path / "hostile-model"
    shutil.copytree(sparnet_model_dir, folder)
    damage(folder)
    return folder, named


@pytest.mark.parametrize("broken_model", sorted(HOSTILE_MODELS), indirect=True)
def test_a_hostile_model_folder_stops_the_run_once(capsys, broken_model, tmp_path, detector_weights):
    folder, named = broken_model
    code, stdout, err = run(capsys, "enhance", portrait(), portrait().parent / "two_people.jpg", "-o",
                            tmp_path / "out", "-m", folder, "--detector-weights", detector_weights,
                            "--no-progress")
    assert code == 1 and stdout == ""
    assert len(err.splitlines()) == 1 and err.startswith("dicsr: error:"), err
    assert str(folder) in err and named in err
    assert not (tmp_path / "out").exists()  # a run that stops at the start leaves nothing behind


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("not a folder")
    return path


def test_an_output_folder_that_cannot_be_one_stops_the_run_once(capsys, a_file, sparnet_model_dir):
    code, stdout, err = run(capsys, "enhance", portrait(), "-o", a_file, "-m", sparnet_model_dir)
    assert (code, stdout) == (1, "")
    assert err == f"dicsr: error: -o/--output {a_file} is a file, not a folder\n"
    code, stdout, err = run(capsys, "enhance", portrait(), "-o", a_file / "sub", "-m", sparnet_model_dir)
    assert (code, stdout) == (1, "")
    assert err == f"dicsr: error: -o/--output {a_file / 'sub'}: cannot write there (Not a directory)\n"


@pytest.mark.parametrize("argument, reason", [
    ("a" * 300 + ".jpg", "file name too long"),
    ("missing.jpg", "no such file, folder or matching file"),
    ("loop.jpg", "symbolic link loop"),
    ("dangling.jpg", "broken symbolic link"),
])
def test_an_input_argument_naming_nothing_usable_stops_the_run_once(capsys, tmp_path, sparnet_model_dir,
                                                                    argument, reason):
    os.symlink("loop.jpg", tmp_path / "loop.jpg")
    os.symlink("gone.jpg", tmp_path / "dangling.jpg")
    code, stdout, err = run(capsys, "enhance", portrait(), tmp_path / argument, "-o", tmp_path / "out",
                            "-m", sparnet_model_dir)
    assert (code, stdout) == (1, "")
    assert err == f"dicsr: error: input {tmp_path / argument}: {reason}\n"


def test_an_unusable_dicsr_cache_stops_the_run_once(capsys, tmp_path, a_file, sparnet_model_dir, monkeypatch):
    monkeypatch.setenv("DICSR_CACHE_DIR", str(a_file))  # a file where the cache folder should be
    monkeypatch.setenv("DICSR_DETECTOR_BASE_URL", "http://127.0.0.1:9")  # never the internet
    monkeypatch.delenv("DICSR_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    photos = [portrait(), portrait().parent / "two_people.jpg"]
    code, stdout, err = run(capsys, "enhance", *photos, "-o", tmp_path / "out", "-m", sparnet_model_dir,
                            "--no-progress")
    assert (code, stdout) == (1, "")
    assert err == (f"dicsr: error: face detector weights: cannot use {a_file / 'detectors'} "
                   f"(Not a directory); set DICSR_CACHE_DIR to a writable folder, or pass "
                   f"--detector-weights FILE\n")
    # offline with an empty cache: the typed how-to, once for the whole run (it was once per photo)
    monkeypatch.setenv("DICSR_CACHE_DIR", str(tmp_path / "empty-cache"))
    code, stdout, err = run(capsys, "enhance", *photos, "-o", tmp_path / "out", "-m", sparnet_model_dir,
                            "--no-progress", "--offline")
    assert (code, stdout) == (1, "") and len(err.splitlines()) == 1
    assert "RetinaFace mobile0.25 weights are not cached" in err
    # a --detector-weights file that does not exist
    code, stdout, err = run(capsys, "enhance", *photos, "-o", tmp_path / "out", "-m", sparnet_model_dir,
                            "--no-progress", "--detector-weights", tmp_path / "nowhere.pth")
    assert (code, stdout) == (1, "")
    assert err == f"dicsr: error: detector weights {tmp_path / 'nowhere.pth'}: no such file\n"


def test_main_turns_any_unexpected_exception_into_one_line(capsys, tmp_path, a_file, monkeypatch):
    # A Hugging Face cache that is a file: the hub client's own error is not a dicsr error.
    monkeypatch.setenv("HF_HUB_CACHE", str(a_file))
    import dicsr.weights._origins

    def broken(*args: object, **kwargs: object) -> str | None:
        raise NotADirectoryError(20, "Not a directory", str(a_file / "models--dicsr--dic-celeba"))

    monkeypatch.setattr(dicsr.weights._origins, "cache_status", broken)  # what `dicsr models` asks
    code, _, err = run(capsys, "models")
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[0] == f"dicsr: error: NotADirectoryError: [Errno 20] Not a directory: " \
                                  f"'{a_file / 'models--dicsr--dic-celeba'}'"
    code, _, err = run(capsys, "-vv", "models")
    assert code == 1 and "Traceback (most recent call last)" in err  # -vv shows where


# --- each failure once, each path once; what the walk passes over ----------------------------------------


def float_tiff(values: np.ndarray) -> Callable[[Path], None]:
    return lambda path: Image.fromarray(values.astype(np.float32), mode="F").save(path)


def int32_tiff(path: Path) -> None:
    Image.fromarray(np.full((8, 8), 70_000, dtype=np.int32), mode="I").save(path)


def animated_gif(path: Path) -> None:
    frames = [Image.new("RGB", (48, 32), color) for color in ("red", "green", "blue")]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


#: bad file -> (how to write it, what its failure line says). The run goes on past each of them.
BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "empty.jpg": (lambda p: p.write_bytes(b""), "image file is empty (0 bytes)"),
    "truncated.jpg": (lambda p: p.write_bytes(portrait().read_bytes()[:4000]), "truncated"),
    "notes.jpg": (lambda p: p.write_text("meeting notes\n"), "not an image file Pillow can decode"),
    "bomb.png": (lambda p: p.write_bytes(png_claiming(100_000, 100_000)), "decompression bomb"),
    "large.png": (lambda p: p.write_bytes(png_claiming(12_000, 9_000)), "more than the limit of 89,478,485"),
    "scaled.tif": (float_tiff(np.full((8, 8), 200.0)), "image values must lie in [0, 1]"),
    "nan.tif": (float_tiff(np.full((8, 8), np.nan)), "NaN or infinite"),
    "int32.tif": (int32_tiff, "outside the 16-bit range"),
}

#: entry a folder walk passes over -> (how to make it, the reason listed)
PASSED_OVER: dict[str, tuple[Callable[[Path], None], str]] = {
    "animated.gif": (animated_gif, ".gif: not a suffix the folder walk reads"),
    "readme.txt": (lambda p: p.write_text("photos of the trip"), ".txt: not a suffix"),
    "loop.jpg": (lambda p: os.symlink("loop.jpg", p), "symbolic link loop"),
    "dangling.jpg": (lambda p: os.symlink("gone.jpg", p), "broken symbolic link"),
    "album": (lambda p: os.symlink(p.parent / "sub", p), "a linked folder, not followed"),
}


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("messy")
    (folder / "sub").mkdir()
    shutil.copy(portrait(), folder / "sub" / "good.jpg")
    for name, (make, _) in {**BAD_FILES, **PASSED_OVER}.items():
        make(folder / name)
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: passed over quietly
    (folder / f".good.jpg.{2**22 + 1}.a1b2c3d4.tmp").write_bytes(b"half")  # an abandoned dicsr write
    return folder


def test_each_failure_and_each_passed_over_entry_is_listed_once(capsys, messy_folder, tmp_path,
                                                                sparnet_model_dir, detector_weights):
    code, stdout, err = run(capsys, "enhance", messy_folder, "-o", tmp_path / "out", "-m", sparnet_model_dir,
                            "--detector-weights", detector_weights, "--upscale", "1", "--no-progress",
                            "--all-faces")  # the portrait's face is restored, not left alone
    assert code == 1
    assert err == ""  # nothing on stderr: no warning line repeating a failure, no Pillow warning
    assert stdout.splitlines()[0] == (f"dicsr: 1 image(s) restored, 1 face(s), 0 skipped, {len(BAD_FILES)} "
                                      f"failed, {len(PASSED_OVER)} ignored")
    listed = {}
    for line in stdout.splitlines()[1:]:
        kind, _, rest = line.strip().partition(": ")
        path, _, reason = rest.partition(": ")
        assert Path(path).name not in listed, f"listed twice: {line}"
        assert line.count(Path(path).name) == 1, f"path repeated: {line}"
        listed[Path(path).name] = (kind, reason)
    expected = {**{n: ("failed", r) for n, (_, r) in BAD_FILES.items()},
                **{n: ("ignored", r) for n, (_, r) in PASSED_OVER.items()}}
    assert sorted(listed) == sorted(expected)
    for name, (kind, fragment) in expected.items():
        assert listed[name][0] == kind and fragment in listed[name][1], (name, listed[name])


def test_checks_after_decoding_name_the_file(messy_folder) -> None:
    for name in ("scaled.tif", "int32.tif"):
        with pytest.raises(InvalidImageError, match=f"^{re.escape(str(messy_folder / name))}: "):
            load_image(messy_folder / name)
    with pytest.raises(NonFiniteValuesError, match=f"^{re.escape(str(messy_folder / 'nan.tif'))}: "):
        load_image(messy_folder / "nan.tif")


def test_a_link_loop_is_not_called_not_found(messy_folder) -> None:
    with pytest.raises(InvalidImageError, match=r"image file symbolic link loop: .*loop\.jpg"):
        load_image(messy_folder / "loop.jpg")
    with pytest.raises(InvalidImageError, match=r"image file broken symbolic link: .*dangling\.jpg"):
        load_image(messy_folder / "dangling.jpg")
    with pytest.raises(InvalidImageError, match=r"image file not found: .*nothing\.jpg"):
        load_image(messy_folder / "nothing.jpg")


def test_an_animated_image_says_it_uses_its_first_frame(messy_folder, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="dicsr.image"):
        loaded = load_image(messy_folder / "animated.gif")
    assert [r.getMessage() for r in caplog.records] == [
        f"{messy_folder / 'animated.gif'} has 3 frames (animated or multi-page); only the first is restored"]
    red = loaded.to_uint8()[0, 0]
    assert red[0] > 200 and red[1] < 50 and red[2] < 50  # frame 0 is the red one


def test_a_warning_does_not_break_into_the_progress_bar(tmp_path, sparnet_model_dir, detector_weights):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(portrait(), folder / name)
    # the 8x default would exceed the output limit: the scale is lowered with a warning per photo
    done = subprocess.run(
        [sys.executable, "-m", "dicsr", "enhance", str(folder), "-o", str(tmp_path / "out"), "-m",
         str(sparnet_model_dir), "--detector-weights", str(detector_weights),
         "--max-output-pixels", "500000"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.split("\n") if "would exceed" in line]
    assert len(warnings) == 2, done.stderr
    for line in warnings:  # what is left of the line after the bar's last carriage return
        assert line.split("\r")[-1].startswith("WARNING dicsr.pipeline: output of 427x240 at x8"), repr(line)
    assert "100%" in done.stderr  # the bar itself was drawn


# --- end to end: the CLI as a real process over a corpus of bad inputs -----------------------------------


def dicsr_process(*argv: object, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
                  ) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dicsr", *map(str, argv)]
    if prefix:  # run under a wrapper such as capsh, which takes one shell command
        command = [*prefix, " ".join(f"'{part}'" for part in command)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)


def test_a_corpus_of_bad_files_never_gives_a_traceback_and_names_every_file(
        messy_folder, tmp_path, sparnet_model_dir, detector_weights):
    done = dicsr_process("enhance", messy_folder, messy_folder / "animated.gif", "-o", tmp_path / "out", "-m",
                         sparnet_model_dir, "--detector-weights", detector_weights, "--upscale", "1",
                         "--no-progress")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    lines = done.stdout.splitlines()
    assert lines[0].startswith("dicsr: 2 image(s) restored")  # the portrait and the named GIF
    for name in [*BAD_FILES, *PASSED_OVER]:
        assert len([line for line in lines[1:] if f"{messy_folder / name}: " in line]) == 1, name
    reported = ("  failed: /", "  ignored: /", "  left alone: ")
    assert all(line.startswith(reported) for line in lines[1:]), lines
    # the one warning on stderr is the animated GIF's, naming it
    assert done.stderr.strip() == (f"WARNING dicsr.image: {messy_folder / 'animated.gif'} has 3 frames "
                                   f"(animated or multi-page); only the first is restored")


def unwritable_parent(tmp_path: Path) -> tuple[list[object], tuple[str, ...], Path]:
    parent = tmp_path / "read-only"
    parent.mkdir(mode=0o555)
    if os.geteuid() != 0:
        return [], (), parent / "out"
    if shutil.which("capsh") is None:
        pytest.skip("running as root without capsh: cannot make a folder unwritable")
    # root ignores permissions unless it drops the capability to
    return [], ("capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c"), parent / "out"


#: configuration case -> (what to set up: returns (extra arguments, wrapper, -o), what the error names)
CONFIGURATIONS: dict[str, tuple[Callable[[Path], tuple[list[object], tuple[str, ...], Path]], str]] = {
    "-o is a file": (lambda t: ([], (), Path(shutil.copy(portrait(), t / "o.jpg"))), "o.jpg is a file"),
    "-o under an unwritable parent": (unwritable_parent, "read-only/out: cannot write there"),
    "input path of 300 bytes": (lambda t: ([t / ("a" * 300 + ".jpg")], (), t / "out"),
                                "aaaa.jpg: file name too long"),
    "-o name of 300 bytes": (lambda t: ([], (), t / ("o" * 300)), "oooo: file name too long"),
    "output format": (lambda t: (["--ext", "json"], (), t / "out"), "--ext json"),
    "upscale not a number": (lambda t: (["--upscale", "x"], (), t / "out"), "--upscale"),
}


@pytest.mark.parametrize("case", sorted(CONFIGURATIONS))
def test_a_configuration_error_is_one_line_naming_its_culprit(case, tmp_path, sparnet_model_dir,
                                                             detector_weights):
    setup, named = CONFIGURATIONS[case]
    extra, prefix, output = setup(tmp_path)
    done = dicsr_process("enhance", portrait(), *extra, "-o", output, "-m", sparnet_model_dir,
                         "--detector-weights", detector_weights, "--no-progress", prefix=prefix)
    assert done.returncode in (1, 2) and done.stdout == ""
    assert "Traceback" not in done.stderr
    error_lines = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and named in error_lines[0], done.stderr


@pytest.mark.parametrize("broken_model", sorted(HOSTILE_MODELS), indirect=True)
def test_a_hostile_model_folder_in_a_real_process(broken_model, tmp_path, detector_weights):
    folder, named = broken_model
    done = dicsr_process("enhance", portrait(), "-o", tmp_path / "out", "-m", folder, "--detector-weights",
                         detector_weights, "--no-progress")
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith("dicsr: error:") and str(folder) in done.stderr and named in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_an_unusable_cache_in_a_real_process(tmp_path, sparnet_model_dir, a_file):
    done = dicsr_process("enhance", portrait(), portrait().parent / "two_people.jpg", "-o", tmp_path / "out",
                         "-m", sparnet_model_dir, "--no-progress",
                         env={"DICSR_CACHE_DIR": str(a_file), "DICSR_DETECTOR_BASE_URL": "http://127.0.0.1:9",
                              "HF_HUB_OFFLINE": "", "DICSR_OFFLINE": ""})
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"dicsr: error: face detector weights: cannot use {a_file / 'detectors'} (Not a directory); set "
        f"DICSR_CACHE_DIR to a writable folder, or pass --detector-weights FILE"]
