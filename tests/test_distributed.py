"""dicsr on Ray (``dicsr.distributed``, ``dicsr enhance --engine ray``): one local Ray for the module, over
real photos with bad files among them, against the local run on the same inputs.

Ray starts once (module fixture, two CPUs) and only for the tests marked slow; the option checks
need no Ray running.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _support import write_two_small_photos
from PIL import Image

from dicsr.cli import main
from dicsr.errors import InvalidInputError

ray = pytest.importorskip("ray", reason="the Ray tests need ray[data]: pip install 'dicsr[ray]'")

#: The bad files among the photos, and a word each one's reason must contain.
BAD_FILES = {"empty.jpg": "empty", "text.png": "not an image file", "cut.jpg": "truncated"}


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real photos (one in a sub-folder) and three bad files: empty, not an image, cut short."""
    folder = tmp_path_factory.mktemp("photos")
    write_two_small_photos(folder)
    group = folder / "nested" / "group.jpg"
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_bytes(b"a text file, not a photo\n")
    (folder / "cut.jpg").write_bytes(group.read_bytes()[:3000])
    return folder


def enhance(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, list[str]]:
    code = main(["enhance", *map(str, argv)])
    return code, capsys.readouterr().out.splitlines()


def files_below(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != ".dicsr-outputs.jsonl"}


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray", "one_intra_op_thread")
def test_ray_engine_writes_the_files_of_the_local_engine(
    capsys: pytest.CaptureFixture[str], photos: Path, tmp_path: Path, sparnet_model_dir: Path,
    detector_weights: Path,
) -> None:
    common = [photos, "--model", sparnet_model_dir, "--detector-weights", detector_weights, "--upscale", "2",
              "--all-faces", "--save-landmarks", "--no-progress"]
    # One PyTorch thread on both sides (one_intra_op_thread here, --threads-per-actor there): CPU float
    # sums depend on the thread count, and the promise is bitwise identity at equal settings.
    local_code, local_summary = enhance(capsys, *common, "-o", tmp_path / "local")
    ray_options = ["--engine", "ray", "--actors", "1", "2", "--cpus-per-actor", "0.5",
                   "--threads-per-actor", "1"]
    ray_code, ray_summary = enhance(capsys, *common, "-o", tmp_path / "ray", *ray_options)

    assert local_code == ray_code == 1  # bad files fail the run, on either engine
    assert local_summary[0] == ray_summary[0] == "dicsr: 2 image(s) restored, 8 face(s), 0 skipped, 3 failed"
    local_files, ray_files = files_below(tmp_path / "local"), files_below(tmp_path / "ray")
    assert sorted(local_files) == sorted(ray_files) == ["nested/group.jpg", "nested/group.json", "two.jpg",
                                                        "two.json"]
    for name, content in local_files.items():
        assert ray_files[name] == content, f"{name} differs between the engines"
    failed = [line for line in ray_summary if line.startswith("  failed: ")]
    assert len(failed) == len(BAD_FILES)
    for line, (name, word) in zip(failed, sorted(BAD_FILES.items()), strict=True):
        assert line.startswith(f"  failed: {photos / name}: ") and word in line.lower(), line
    recorded = (tmp_path / "ray" / ".dicsr-outputs.jsonl").read_text().splitlines()
    assert {'"two.jpg"', '"two.json"', '"nested/group.jpg"', '"nested/group.json"'} <= set(recorded)

    # A second run finds every output there and restores nothing, as the local engine does.
    code, again = enhance(capsys, *common, "-o", tmp_path / "ray", *ray_options)
    assert code == 1 and again[0] == "dicsr: 0 image(s) restored, 0 face(s), 2 skipped, 3 failed"


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_dataset_rows_account_for_every_photo(
    photos: Path, tmp_path: Path, sparnet_model_dir: Path, detector_weights: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dicsr.distributed import RESULT_COLUMNS, enhance_dataset

    # Ray before 2.51 sizes the pool with concurrency=(min, max); 2.60 still takes it: run that form too.
    monkeypatch.setattr(ray, "__version__", "2.50.0")
    dataset = enhance_dataset(photos, tmp_path / "out", model=sparnet_model_dir, actors=(1, 2),
                              cpus_per_actor=0.5, detector_weights=detector_weights, upscale=2, device="cpu")
    rows = {Path(row["path"]).relative_to(photos).as_posix(): row for row in dataset.take_all()}

    assert sorted(rows) == sorted([*BAD_FILES, "nested/group.jpg", "two.jpg"])
    assert all(tuple(row) == RESULT_COLUMNS for row in rows.values())
    for name, word in BAD_FILES.items():
        row = rows[name]
        assert row["error_type"] == "InvalidImageError" and word in row["error"].lower(), row
        assert rows[name]["written"] == [] and not (tmp_path / "out" / name).exists()
    for name in ("two.jpg", "nested/group.jpg"):
        row = rows[name]
        assert row["error"] is None and row["written"] == ["restored photo"]
        assert row["output"] == str(tmp_path / "out" / name)
        restored, source = Image.open(row["output"]), Image.open(photos / name)
        assert restored.size == (source.width * 2, source.height * 2)
        # the default selection leaves these photos' large faces as they are, and says why
        assert row["faces_left_alone"] == len(row["left_alone_reasons"]) > 0
    assert rows["two.jpg"]["faces_restored"] + rows["two.jpg"]["faces_left_alone"] == 2
    assert rows["nested/group.jpg"]["faces_restored"] + rows["nested/group.jpg"]["faces_left_alone"] == 6


def test_ray_options_are_checked_before_anything_runs(capsys: pytest.CaptureFixture[str], photos: Path,
                                                      tmp_path: Path) -> None:
    wrong = [
        (["--engine", "ray", "--actors", "3", "1"], "--actors MIN MAX must be whole numbers with 1 <= MIN"),
        (["--engine", "ray", "--actors", "0", "2"], "1 <= MIN <= MAX, got 0 2"),
        (["--engine", "ray", "--gpus-per-actor", "-0.5"], "--gpus-per-actor must be a number >= 0"),
        (["--engine", "ray", "--threads-per-actor", "0"], "--threads-per-actor must be >= 1"),
        (["--engine", "ray", "--save-faces"], "--save-faces: not available with --engine ray"),
        (["--actors", "1", "2"], "--actors go(es) with --engine ray"),
    ]
    for options, message in wrong:
        code = main(["enhance", str(photos), "-o", str(tmp_path / "out"), *options])
        err = capsys.readouterr().err
        assert code == 1 and message in err and "Traceback" not in err, (options, err)
    assert not (tmp_path / "out").exists()


def test_a_missing_ray_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from dicsr.distributed import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    with pytest.raises(InvalidInputError, match=r"pip install 'dicsr\[ray\]'"):
        require_ray()


def test_each_ray_version_gets_its_actor_pool_argument() -> None:
    from ray.data import ActorPoolStrategy

    from dicsr.distributed import actor_pool_arguments

    assert actor_pool_arguments("2.50.1", (1, 3)) == {"concurrency": (1, 3)}
    current = actor_pool_arguments("2.60.0", (1, 3))["compute"]
    assert isinstance(current, ActorPoolStrategy)
    assert (current.min_size, current.max_size) == (1, 3)
