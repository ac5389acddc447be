"""Which files ``dicsr enhance`` writes, under which names, and which it leaves alone.

* Two inputs never write one file: inputs of one folder that share a stem (``a.jpg``, ``a.png``)
  keep their whole name as the stem of every output; a clash that remains stops the run before
  anything is written.
* An output folder equal to or inside an input folder is refused unless asked for; even then no
  input is ever replaced and no earlier output is read back as an input.
* Existing outputs are skipped file by file: a re-run that asks for more writes only what is missing.

Real photos, the golden SPARNet model folder and the real RetinaFace weights, through
``dicsr.cli.main`` in-process.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _support import shared_path
from PIL import Image

from dicsr.cli import main

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def enhance(capsys, inputs, output, model, weights, *extra: object) -> tuple[int, str, str]:
    # --all-faces: these photos' faces are larger than a 16-px model restores by default, and the
    # face files are part of what is named and written here
    inputs = inputs if isinstance(inputs, list) else [inputs]
    return run(capsys, "enhance", *inputs, "-o", output, "--model", model, "--detector-weights", weights,
               "--upscale", "1", "--no-progress", "--offline", "--all-faces", *extra)


def files_in(folder: Path) -> list[str]:
    """Every file below ``folder``, relative, without dicsr's hidden bookkeeping."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
                  and not p.name.startswith("."))


@pytest.fixture(scope="module")
def one_face() -> Path:
    return shared_path("faces", "face_recognition", "examples", "obama-240p.jpg")  # 427x240, 1 face


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory) -> Path:
    people = Image.open(shared_path("faces", "face_recognition", "examples", "two_people.jpg")).convert("RGB")
    path = tmp_path_factory.mktemp("two") / "two.png"
    people.resize((people.width // 4, people.height // 4), Image.Resampling.BICUBIC).save(path)
    return path


@pytest.fixture
def same_stem(tmp_path, one_face, two_faces) -> Path:
    """``a.jpg`` (one face) and ``a.png`` (two faces) in one folder, plus ``b.jpg``."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(one_face, folder / "a.jpg")
    shutil.copy(two_faces, folder / "a.png")
    shutil.copy(one_face, folder / "b.jpg")
    return folder


# --- names -------------------------------------------------------------------------------------------


def test_inputs_sharing_a_stem_keep_their_whole_name_in_every_output(
        capsys, same_stem, tmp_path, sparnet_model_dir, detector_weights):
    out = tmp_path / "out"
    code, stdout, err = enhance(capsys, same_stem, out, sparnet_model_dir, detector_weights, "--ext", "png",
                                "--save-landmarks", "--save-faces", "--compare")
    assert code == 0, err
    assert "3 image(s) restored, 4 face(s), 0 skipped, 0 failed" in stdout
    assert files_in(out) == sorted([
        "a.jpg.png", "a.jpg.json", "a.jpg_compare.png", "a.jpg_face00.png",
        "a.png.png", "a.png.json", "a.png_compare.png", "a.png_face00.png", "a.png_face01.png",
        "b.png", "b.json", "b_compare.png", "b_face00.png",  # b has no namesake: plain stem
    ])
    for stem, source in (("a.jpg", "a.jpg"), ("a.png", "a.png"), ("b", "b.jpg")):
        record = json.loads((out / f"{stem}.json").read_text())
        assert Path(record["input"]) == same_stem / source
    assert Image.open(out / "a.png.png").size == Image.open(same_stem / "a.png").size
    assert Image.open(out / "a.jpg.png").size == Image.open(same_stem / "a.jpg").size


def test_without_ext_the_namesakes_keep_their_own_format(capsys, same_stem, tmp_path, sparnet_model_dir,
                                                         detector_weights):
    out = tmp_path / "out"
    code, _, err = enhance(capsys, same_stem, out, sparnet_model_dir, detector_weights, "--save-landmarks")
    assert code == 0, err
    assert files_in(out) == sorted(["a.jpg.jpg", "a.jpg.json", "a.png.png", "a.png.json", "b.jpg", "b.json"])
    assert Image.open(out / "a.jpg.jpg").format == "JPEG" and Image.open(out / "a.png.png").format == "PNG"


def test_stems_differing_only_in_case_are_namesakes(capsys, tmp_path, one_face, sparnet_model_dir,
                                                    detector_weights):
    # Face.png and face.png are one file on macOS and Windows file systems.
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(one_face, folder / "Face.jpg")
    Image.open(one_face).save(folder / "face.png")
    out = tmp_path / "out"
    code, _, err = enhance(capsys, folder, out, sparnet_model_dir, detector_weights, "--ext", "png")
    assert code == 0, err
    assert files_in(out) == ["Face.jpg.png", "face.png.png"]


@pytest.mark.parametrize("case", ["two folders", "a face file as input", "names differing in case"])
def test_a_clash_that_remains_stops_the_run_before_anything_is_written(
        capsys, case, tmp_path, one_face, sparnet_model_dir, detector_weights):
    first, second = tmp_path / "day1", tmp_path / "day2"
    first.mkdir()
    second.mkdir()
    shutil.copy(one_face, first / "x.jpg")
    if case == "two folders":  # the same relative path below two arguments
        shutil.copy(one_face, second / "x.jpg")
        inputs, extra, clash = [first, second], [], "x.jpg"
    elif case == "a face file as input":  # a photo named like the first face file of another input
        shutil.copy(one_face, first / "x_face00.png")
        inputs, extra, clash = [first], ["--save-faces"], "x_face00.png"
    else:  # even their whole names are one name on a case-insensitive file system
        shutil.copy(one_face, first / "X.JPG")
        inputs, extra, clash = [first], ["--ext", "png"], "x.jpg.png"
    out = tmp_path / "out"
    code, stdout, err = enhance(capsys, inputs, out, sparnet_model_dir, detector_weights, *extra)
    assert code == 1 and stdout == ""
    assert err.startswith("dicsr: error: output names clash, nothing was written")
    assert len(err.splitlines()) == 1
    assert str(out / clash).casefold() in err.casefold() and str(first / "x.jpg") in err
    assert not out.exists()


def test_an_output_format_pillow_cannot_write_is_refused_at_the_start(capsys, tmp_path, one_face):
    code, _, err = run(capsys, "enhance", one_face, "-o", tmp_path / "out", "--ext", "json")
    assert code == 1 and "--ext json: not an image format" in err
    assert not (tmp_path / "out").exists()


# --- the output folder and the input folders ------------------------------------------------------


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def photos(tmp_path, one_face, two_faces) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(one_face, folder / "h.jpg")
    shutil.copy(two_faces, folder / "two.png")
    return folder


@pytest.mark.parametrize("where", ["the input folder", "inside it", "holding it"])
def test_an_output_folder_overlapping_an_input_folder_is_refused(capsys, where, photos, sparnet_model_dir,
                                                                 detector_weights):
    output, inputs = {"the input folder": (photos, photos), "inside it": (photos / "restored", photos),
                      "holding it": (photos.parent, photos)}[where]
    before = snapshot(photos)
    code, stdout, err = enhance(capsys, inputs, output, sparnet_model_dir, detector_weights, "--overwrite")
    assert code == 1 and stdout == "" and len(err.splitlines()) == 1
    assert err.startswith(f"dicsr: error: -o/--output {output} ") and "--allow-output-in-input" in err
    assert snapshot(photos) == before and not (photos / "restored").exists()


def test_an_output_is_never_written_over_an_input_even_with_overwrite(capsys, photos, sparnet_model_dir,
                                                                      detector_weights):
    before = snapshot(photos)
    code, stdout, err = enhance(capsys, photos, photos, sparnet_model_dir, detector_weights, "--overwrite",
                                "--allow-output-in-input")
    assert code == 1 and stdout == ""
    assert err.startswith("dicsr: error: outputs would replace inputs, nothing was written")
    assert f"{photos / 'h.jpg'} is the input {photos / 'h.jpg'}" in err and "even with --overwrite" in err
    # a single file named explicitly, written into its own folder
    code, _, err = enhance(capsys, photos / "two.png", photos, sparnet_model_dir, detector_weights,
                           "--allow-output-in-input")
    assert code == 1 and "outputs would replace inputs" in err
    assert snapshot(photos) == before


def test_outputs_inside_the_input_folder_are_never_read_back(capsys, photos, sparnet_model_dir,
                                                             detector_weights):
    restored = photos / "restored"
    allow = "--allow-output-in-input"
    code, stdout, err = enhance(capsys, photos, restored, sparnet_model_dir, detector_weights, allow)
    assert code == 0, err
    assert "2 image(s) restored, 3 face(s), 0 skipped, 0 failed" in stdout
    assert files_in(restored) == ["h.jpg", "two.png"]
    # again, as PNG and replacing: restored/ holds dicsr's outputs, not photos
    code, stdout, err = enhance(capsys, photos, restored, sparnet_model_dir, detector_weights, allow,
                                "--ext", "png", "--overwrite")
    assert code == 0, err
    assert "2 image(s) restored, 3 face(s), 0 skipped, 0 failed, 2 ignored" in stdout
    assert files_in(restored) == ["h.jpg", "h.png", "two.png"]


def test_outputs_beside_the_inputs_are_never_read_back(capsys, photos, sparnet_model_dir, detector_weights):
    options = ("--allow-output-in-input", "--ext", "png", "--upscale", "2")
    original = snapshot(photos)
    code, stdout, err = enhance(capsys, photos, photos, sparnet_model_dir, detector_weights, *options)
    # two.png would be written over itself: refused as a whole
    assert code == 1 and "outputs would replace inputs" in err and str(photos / "two.png") in err
    (photos / "two.png").unlink()
    code, stdout, err = enhance(capsys, photos, photos, sparnet_model_dir, detector_weights, *options)
    assert code == 0, err
    assert Image.open(photos / "h.png").size == (854, 480)
    # h.png is dicsr's: re-running, even replacing outputs, restores h.jpg again and never h.png
    for _ in range(2):
        code, stdout, err = enhance(capsys, photos, photos, sparnet_model_dir, detector_weights, *options,
                                    "--overwrite")
        assert code == 0, err
        assert "1 image(s) restored, 1 face(s), 0 skipped, 0 failed, 1 ignored" in stdout
        assert Image.open(photos / "h.png").size == (854, 480)
    assert (photos / "h.jpg").read_bytes() == original["h.jpg"]
    assert files_in(photos) == ["h.jpg", "h.png"]


# --- what exists is skipped, file by file -------------------------------------------------------------


@pytest.fixture
def with_a_cat(photos) -> Path:
    cat = shared_path("faces", "scikit-image", "src", "_skimage2", "data", "chelsea.png")  # no face
    Image.open(cat).save(photos / "cat.png")
    return photos


def mtimes(folder: Path) -> dict[str, int]:
    return {name: (folder / name).stat().st_mtime_ns for name in files_in(folder)}


def test_a_rerun_asking_for_more_writes_only_what_is_missing(capsys, with_a_cat, tmp_path, sparnet_model_dir,
                                                             detector_weights):
    out = tmp_path / "out"
    code, stdout, err = enhance(capsys, with_a_cat, out, sparnet_model_dir, detector_weights)
    assert code == 0 and "3 image(s) restored, 3 face(s), 0 skipped, 0 failed" in stdout, err
    photos_written = mtimes(out)
    assert sorted(photos_written) == ["cat.png", "h.jpg", "two.png"]

    more = ("--save-landmarks", "--save-faces")
    code, stdout, err = enhance(capsys, with_a_cat, out, sparnet_model_dir, detector_weights, *more)
    assert code == 0, err
    assert "0 image(s) restored, 3 face(s), 0 skipped, 0 failed, 3 completed" in stdout
    assert "wrote only the missing landmarks JSON for 3, face files for 2" in stdout
    assert files_in(out) == sorted(["cat.png", "cat.json", "h.jpg", "h.json", "h_face00.png", "two.png",
                                    "two.json", "two_face00.png", "two_face01.png"])
    assert {name: mtimes(out)[name] for name in photos_written} == photos_written  # photos untouched
    assert json.loads((out / "cat.json").read_text())["faces"] == []

    # everything is there now, the face-less cat included (its JSON says it has no face)
    everything = mtimes(out)
    code, stdout, err = enhance(capsys, with_a_cat, out, sparnet_model_dir, detector_weights, *more)
    assert code == 0 and "0 image(s) restored, 0 face(s), 3 skipped, 0 failed" in stdout, err
    assert "skipped: 3 image(s) whose outputs all exist (--overwrite replaces them)" in stdout
    assert mtimes(out) == everything

    # a face file lost (e.g. a run killed among the faces): only it is written again
    (out / "two_face00.png").unlink()
    code, stdout, err = enhance(capsys, with_a_cat, out, sparnet_model_dir, detector_weights, *more)
    assert code == 0 and "2 skipped, 0 failed, 1 completed" in stdout, err
    assert "wrote only the missing face files for 1" in stdout
    assert {k: v for k, v in mtimes(out).items() if k != "two_face00.png"} == {
        k: v for k, v in everything.items() if k != "two_face00.png"}
    assert (out / "two_face00.png").exists()

    # --overwrite writes everything again
    code, stdout, err = enhance(capsys, with_a_cat, out, sparnet_model_dir, detector_weights, *more,
                                "--overwrite")
    assert code == 0 and "3 image(s) restored, 3 face(s), 0 skipped, 0 failed" in stdout, err
    assert all(mtimes(out)[name] != stamp for name, stamp in everything.items())
