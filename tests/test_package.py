"""Package-level promises: a light import, typed public API, CLI entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dicsr

HEAVY_MODULES = ("facexlib", "torchvision", "huggingface_hub", "safetensors", "cv2", "ray", "pyarrow")


def _run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          check=True)
    return done.stdout


def test_import_is_light_and_lazy() -> None:
    out = _run_python(
        "import sys, time\n"
        "import torch\n"
        "start = time.perf_counter()\n"
        "import dicsr\n"
        "from dicsr import FaceSuperResolver\n"
        "print(time.perf_counter() - start)\n"
        f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    seconds, loaded = out.splitlines()[0], out.splitlines()[1:]
    assert float(seconds) < 1.0, f"importing dicsr took {seconds} s beyond torch"
    assert loaded in ([], [""]), f"import dicsr pulled in {loaded}"


def test_public_names_resolve_and_are_documented() -> None:
    for name in dicsr.__all__:
        value = getattr(dicsr, name)
        if callable(value):
            assert value.__doc__, f"dicsr.{name} has no docstring"
    assert "FaceSuperResolver" in dir(dicsr)


def test_package_is_typed() -> None:
    assert (Path(dicsr.__file__).parent / "py.typed").exists()
