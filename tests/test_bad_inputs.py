"""Bad and odd inputs end to end: what a user sees from ``FaceSuperResolver`` and from the CLI.

Every failure a user can cause is a typed :class:`dicsr.errors.DicsrError` whose message says what
went wrong; odd-but-valid images (CMYK, palette, gray+alpha, 16-bit, EXIF-rotated, 1×1,
100000×10) are restored, not refused; a folder with some bad files restores every good file and
lists each bad one with a one-line reason, with exit code 1 and no traceback. Weights are never
unpickled: ``torch.load`` only ever runs with ``weights_only=True``, and a malicious pickle does not
execute. Real files, the real RetinaFace weights and golden checkpoints throughout.
"""

from __future__ import annotations

import ast
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from _support import REPO_ROOT, shared_path
from PIL import Image

import dicsr
from dicsr.cli import main
from dicsr.errors import (
    ArchitectureMismatchError,
    CorruptCheckpointError,
    DicsrError,
    ImageTooLargeError,
    IntegrityError,
    InvalidImageError,
    InvalidInputError,
    UnsupportedDeviceError,
    UnsupportedDtypeError,
    WeightsUnavailableError,
)
from dicsr.image import load_image, to_uint8
from dicsr.image._background import upscale_background, upscale_background_8bit
from dicsr.pipeline import FaceSuperResolver

UPSCALE = 2.0


pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


def photo(*parts: str) -> Path:
    return shared_path("faces", *parts)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed 661-byte PNG whose header claims ``width × height`` RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * min(width, 1000)) * 2)
    chunks = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


# --- the files --------------------------------------------------------------------------------------

#: bad file name -> (error class, fragment of the message a user sees)
BAD_FILES = {
    "empty.jpg": (InvalidImageError, "empty (0 bytes)"),
    "truncated.jpg": (InvalidImageError, "truncated"),
    "notes.jpg": (InvalidImageError, "not an image file"),
    "bomb.png": (ImageTooLargeError, "decompression bomb"),
}

#: odd-but-valid file name -> (output PIL mode, faces expected)
GOOD_FILES = {
    "portrait.jpg": ("RGB", 1),
    "cmyk.jpg": ("RGB", None),
    "palette.png": ("RGB", 1),
    "gray_alpha.png": ("LA", None),
    "sixteen_bit.png": ("I;16", None),
    "rotated.jpg": ("RGB", None),
    "one_pixel.png": ("RGB", 0),
    "cat.png": ("RGB", 0),
}


def write_bad_files(folder: Path) -> None:
    (folder / "empty.jpg").write_bytes(b"")
    jpeg = photo("dlib", "examples", "faces", "2008_001009.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) * 2 // 5])  # a download cut short
    (folder / "notes.jpg").write_text("meeting notes, saved with the wrong extension\n")
    (folder / "bomb.png").write_bytes(png_claiming(100_000, 100_000))


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(photo("face_recognition", "examples", "obama-240p.jpg"), folder / "portrait.jpg")
    cmyk = photo("sharp", "test", "fixtures", "Channel_digital_image_CMYK_color.jpg")
    shutil.copy(cmyk, folder / "cmyk.jpg")
    shutil.copy(photo("mmpose", "tests", "data", "300w", "indoor_020.png"), folder / "palette.png")
    shutil.copy(photo("derived", "hopper_16bit_from_pgm.png"), folder / "sixteen_bit.png")
    shutil.copy(photo("Pillow", "Tests", "images", "hopper_orientation_6.jpg"), folder / "rotated.jpg")
    shutil.copy(photo("scikit-image", "src", "_skimage2", "data", "chelsea.png"), folder / "cat.png")
    with Image.open(photo("scikit-image", "src", "_skimage2", "data", "camera.png")) as camera:
        gray = camera.convert("L").resize((160, 160), Image.Resampling.BICUBIC)
    alpha = Image.linear_gradient("L").resize((160, 160))
    Image.merge("LA", (gray, alpha)).save(folder / "gray_alpha.png")
    Image.new("RGB", (1, 1), (200, 120, 90)).save(folder / "one_pixel.png")
    write_bad_files(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*BAD_FILES, *GOOD_FILES])
    return folder


@pytest.fixture(scope="module")
def resolver(sparnet_model_dir, detector_weights) -> FaceSuperResolver:
    from dicsr.pipeline import SelectionPolicy

    # all_sizes: these photos' faces are larger than a 16-px model restores by default
    return FaceSuperResolver.from_pretrained(
        sparnet_model_dir, device="cpu", detector_weights=detector_weights, upscale=UPSCALE, progress=False,
        selection=SelectionPolicy(all_sizes=True),
    )


def upright_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        rotated = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        return (image.height, image.width) if rotated else image.size


# --- through FaceSuperResolver.enhance ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_raise_a_typed_error_naming_the_file(resolver, messy_folder, name):
    error_type, fragment = BAD_FILES[name]
    with pytest.raises(error_type) as caught:
        resolver.enhance(messy_folder / name)
    message = str(caught.value)
    assert fragment in message and name in message
    if error_type is ImageTooLargeError:  # it says how to lift the limit
        assert "max_pixels" in message and "MAX_IMAGE_PIXELS" in message


def test_pixel_limit_is_checked_from_the_header_and_configurable(resolver, detector_weights, tmp_path):
    # 108 MP claimed in a 661-byte file: refused by dicsr's own limit before any decoding (Pillow
    # only warns between 89 and 179 MP).
    path = tmp_path / "large.png"
    path.write_bytes(png_claiming(12_000, 9_000))
    with pytest.raises(ImageTooLargeError, match="pass a larger max_pixels"), \
            pytest.warns(Image.DecompressionBombWarning):
        resolver.enhance(path)
    small = tmp_path / "small.png"
    Image.new("RGB", (64, 48)).save(small)
    # the same network and detector composed with another pixel limit
    strict = FaceSuperResolver(resolver.adapter, resolver.detector, max_pixels=64 * 48 - 1)
    with pytest.raises(ImageTooLargeError, match="3,072 pixels"):
        strict.enhance(small)


@pytest.mark.parametrize("name", sorted(GOOD_FILES))
def test_odd_but_valid_files_are_restored_in_their_own_type(resolver, messy_folder, name):
    mode, faces = GOOD_FILES[name]
    path = messy_folder / name
    result = resolver.enhance(path)
    width, height = upright_size(path)
    assert result.input_size == (width, height)
    assert isinstance(result.image, Image.Image) and result.image.mode == mode
    assert result.image.size == (round(width * UPSCALE), round(height * UPSCALE))
    if faces is not None:
        assert result.num_faces == faces
    if name == "sixteen_bit.png":  # 16-bit in, 16-bit out, not 8 bits scaled up
        samples = np.asarray(result.image)
        assert np.count_nonzero(samples % 257) > samples.size // 2
    if name == "gray_alpha.png":  # alpha carried through, upscaled like the background
        alpha = load_image(path).alpha
        expected = upscale_background(np.repeat(alpha[..., None], 3, axis=2), UPSCALE)[..., 0]
        np.testing.assert_array_equal(np.asarray(result.image)[..., 1], to_uint8(expected))


def test_absurd_aspect_ratio_is_processed(resolver, tmp_path):
    path = tmp_path / "strip.png"
    Image.new("RGB", (100_000, 10), (90, 140, 200)).save(path)
    result = resolver.enhance(path)
    assert result.num_faces == 0 and result.image.size == (200_000, 20)


def test_photo_without_faces_is_the_upscaled_photo(resolver):
    cat = photo("scikit-image", "src", "_skimage2", "data", "chelsea.png")
    result = resolver.enhance(cat)
    assert result.num_faces == 0 and result.faces == ()
    loaded = load_image(cat)
    # an 8-bit photo: the background is Pillow's own 8-bit bicubic resize
    expected = upscale_background_8bit(loaded.to_uint8(), UPSCALE)
    np.testing.assert_array_equal(np.asarray(result.image), expected)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_tensors_are_invalid_input(resolver, value):
    tensor = torch.rand(3, 32, 32)
    tensor[1, 5, 7] = value
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        resolver.enhance(tensor)
    batch = torch.rand(1, 3, 16, 16)
    batch[0, 0, 0, 0] = value
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        resolver.adapter(batch)


def closed_file():
    handle = open(photo("Pillow", "Tests", "images", "hopper.jpg"), "rb")  # noqa: SIM115 - closed on purpose
    handle.close()
    return handle


#: inputs that once escaped as raw exceptions (issue 13 item 8) -> a fragment of the typed message
UNUSABLE_INPUTS = {
    "meta tensor": (lambda: torch.empty(3, 32, 32, device="meta"), "meta device"),
    "sparse tensor": (lambda: torch.rand(3, 32, 32).to_sparse(), "must be dense"),
    "sparse batch of one": (lambda: torch.rand(1, 3, 32, 32).to_sparse(), "must be dense"),
    "closed file object": (closed_file, "hopper.jpg' is closed"),
}


@pytest.mark.parametrize("case", sorted(UNUSABLE_INPUTS))
def test_unusable_tensors_and_file_objects_are_typed_errors(resolver, case):
    make, fragment = UNUSABLE_INPUTS[case]
    with pytest.raises(InvalidImageError, match=fragment):
        resolver.enhance(make())


def test_unsupported_dtype_and_device_are_typed_errors(sparnet_model_dir):
    with pytest.raises(UnsupportedDtypeError, match="does not support float16 on cpu"):
        FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cpu", dtype=torch.float16)
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: device='cuda' is not an error")
    with pytest.raises(UnsupportedDeviceError, match="CUDA is not available"):
        FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cuda")


def test_offline_without_cache_says_how_to_get_the_weights(tmp_path):
    with pytest.raises(WeightsUnavailableError) as caught:
        FaceSuperResolver.from_pretrained("dic-celeba", offline=True, cache_dir=tmp_path)
    message = str(caught.value)
    assert "not in the local cache" in message and "offline" in message
    assert "dicsr convert" in message and "DIC_CelebA.pth" in message  # the manual route


def test_offline_without_detector_weights_says_where_to_put_them(sparnet_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DICSR_CACHE_DIR", str(tmp_path))  # an empty dicsr cache
    sr = FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cpu", offline=True)
    with pytest.raises(WeightsUnavailableError) as caught:
        sr.enhance(photo("face_recognition", "examples", "obama-240p.jpg"))
    message = str(caught.value)
    assert "detection_mobilenet0.25_Final.pth" in message and "https://" in message
    assert str(tmp_path / "detectors") in message  # where to put the file


@pytest.fixture
def model_copy(sparnet_model_dir, tmp_path) -> Path:
    folder = tmp_path / "sparnet"
    shutil.copytree(sparnet_model_dir, folder)
    return folder


@pytest.mark.parametrize("damage", ["truncated", "zero_bytes", "garbage_header"])
def test_corrupt_safetensors_is_a_corrupt_checkpoint(model_copy, damage):
    weights = model_copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) // 3], "zero_bytes": b"",
                         "garbage_header": b"\xff" * 16 + data[16:]}[damage])
    with pytest.raises(CorruptCheckpointError, match=r"model\.safetensors"):
        FaceSuperResolver.from_pretrained(model_copy, device="cpu")


def test_weights_of_another_architecture_are_refused(model_copy, dic_model_dir):
    shutil.copy(dic_model_dir / "config.json", model_copy / "config.json")  # says DIC, holds SPARNet
    with pytest.raises(ArchitectureMismatchError) as caught:
        FaceSuperResolver.from_pretrained(model_copy, device="cpu")
    assert caught.value.missing and caught.value.unexpected
    assert "dic" in str(caught.value) and "missing keys" in str(caught.value)


# --- never unpickle ---------------------------------------------------------------------------------


def _torch_load_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            qualified = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            owner = func.value.id if qualified else ""
            yield node, owner, name


def test_torch_load_is_only_ever_called_with_weights_only():
    package = Path(dicsr.__file__).parent
    torch_loads, problems = 0, []
    for source in sorted(package.rglob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        for node, owner, name in _torch_load_calls(tree):
            where = f"{source.relative_to(REPO_ROOT)}:{node.lineno}"
            if (owner, name) == ("torch", "load"):
                torch_loads += 1
                flags = {k.arg: k.value for k in node.keywords}
                flag = flags.get("weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    problems.append(f"{where}: torch.load without weights_only=True")
            elif owner in ("pickle", "dill", "joblib", "cloudpickle") and name in ("load", "loads"):
                problems.append(f"{where}: {owner}.{name}")
            elif name == "load" and any(k.arg == "allow_pickle" for k in node.keywords):
                problems.append(f"{where}: load(allow_pickle=...)")
        text = source.read_text(encoding="utf-8")
        if "from torch import load" in text or "from pickle import load" in text:
            problems.append(f"{source.relative_to(REPO_ROOT)}: imports a bare load()")
    # One shared reader (dicsr/_checkpoint_io.py) serves model checkpoints and detector weights.
    assert torch_loads >= 1, "expected the checkpoint reader to call torch.load"
    assert not problems, problems


class _Payload:
    """Unpickling this object runs code: it writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('executed')",))


@pytest.fixture
def malicious_pth(sparnet_model_dir, tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    path = tmp_path / "sparnet_weights.pth"
    state = {"state_dict": {"encoder.0.conv2d.weight": torch.zeros(1)}, "trojan": _Payload(marker)}
    torch.save(state, path)  # torch.save pickles the payload; a plain torch.load would run it
    return path, marker


def test_malicious_checkpoint_is_refused_without_running(malicious_pth):
    path, marker = malicious_pth
    with pytest.raises(CorruptCheckpointError, match="refused to load") as caught:
        FaceSuperResolver.from_pretrained(path, device="cpu")
    assert "exec" in str(caught.value)
    assert not marker.exists(), "the checkpoint's code ran"


def test_malicious_detector_weights_are_refused_without_running(sparnet_model_dir, malicious_pth):
    from dicsr.face.detect import FaceDetector

    path, marker = malicious_pth
    # the pipeline checks the published size and sha256 of detector weights before reading them
    sr = FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cpu", detector_weights=path)
    with pytest.raises(IntegrityError, match="expected 1,789,735"):
        sr.enhance(photo("face_recognition", "examples", "obama-240p.jpg"))
    # and the detector's own reader, used directly, never unpickles code either
    with pytest.raises(CorruptCheckpointError):
        FaceDetector(path)
    assert not marker.exists(), "the detector weights' code ran"


# --- through the CLI ----------------------------------------------------------------------------------


def cli_args(inputs: Path, output: Path, model: Path, weights: Path) -> list[str]:
    return ["enhance", str(inputs), "-o", str(output), "--model", str(model),
            "--detector-weights", str(weights), "--upscale", str(UPSCALE), "--no-progress", "--offline",
            "--all-faces"]


def failure_lines(stdout: str) -> dict[str, str]:
    lines = [line.strip() for line in stdout.splitlines() if line.strip().startswith("failed:")]
    found = {}
    for line in lines:
        path, _, reason = line.removeprefix("failed:").strip().partition(": ")
        found[Path(path).name] = reason
    assert len(found) == len(lines), f"a file is listed twice: {lines}"
    return found


def assert_bad_files_listed(stdout: str, names) -> None:
    failures = failure_lines(stdout)
    assert sorted(failures) == sorted(names)
    for name, reason in failures.items():
        fragment = BAD_FILES[name][1]
        assert fragment in reason, f"{name}: {reason!r} does not explain the failure"
        assert "\n" not in reason and len(reason) < 400


def test_cli_restores_every_good_file_and_lists_the_bad_ones(messy_folder, tmp_path, sparnet_model_dir,
                                                             detector_weights, capsys):
    output = tmp_path / "restored"
    code = main(cli_args(messy_folder, output, sparnet_model_dir, detector_weights))
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert f"{len(GOOD_FILES)} image(s) restored" in captured.out
    assert f"{len(BAD_FILES)} failed" in captured.out
    assert_bad_files_listed(captured.out, BAD_FILES)
    assert sorted(p.name for p in output.iterdir() if not p.name.startswith(".")) == sorted(GOOD_FILES)
    for name, (mode, _) in GOOD_FILES.items():
        width, height = upright_size(messy_folder / name)
        with Image.open(output / name) as written:
            assert written.size == (round(width * UPSCALE), round(height * UPSCALE)), name
            assert written.mode == mode, name

    # a second run never overwrites finished work, and still reports the bad files
    before = {p.name: p.stat().st_mtime_ns for p in output.iterdir()}
    code = main(cli_args(messy_folder, output, sparnet_model_dir, detector_weights))
    captured = capsys.readouterr()
    assert code == 1 and f"{len(GOOD_FILES)} skipped" in captured.out
    assert_bad_files_listed(captured.out, BAD_FILES)
    assert {p.name: p.stat().st_mtime_ns for p in output.iterdir()} == before


def test_cli_as_a_real_process_lists_bad_files_without_a_traceback(tmp_path, sparnet_model_dir,
                                                                   detector_weights):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photo("face_recognition", "examples", "obama-240p.jpg"), folder / "portrait.jpg")
    write_bad_files(folder)
    output = tmp_path / "restored"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "dicsr", *cli_args(folder, output, sparnet_model_dir,
                                                                      detector_weights)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "1 image(s) restored" in done.stdout and f"{len(BAD_FILES)} failed" in done.stdout
    assert_bad_files_listed(done.stdout, BAD_FILES)
    assert [p.name for p in output.iterdir() if not p.name.startswith(".")] == ["portrait.jpg"]
    with Image.open(output / "portrait.jpg") as written:
        assert written.size == (round(427 * UPSCALE), round(240 * UPSCALE))


def test_every_dicsr_error_is_a_dicsr_error_subclass():
    # what the CLI and callers rely on to catch "a user error" in one clause
    for error in (ArchitectureMismatchError, CorruptCheckpointError, ImageTooLargeError, InvalidImageError,
                  InvalidInputError, UnsupportedDeviceError, UnsupportedDtypeError, WeightsUnavailableError):
        assert issubclass(error, DicsrError)
