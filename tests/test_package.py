"""Package-level promises: a light import, typed public API, CLI entry point."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dicsr

HEAVY_MODULES = ("facexlib", "torchvision", "huggingface_hub", "safetensors", "cv2")


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


def test_torch_load_always_refuses_arbitrary_pickles() -> None:
    """Every torch.load call in the package passes weights_only=True (never unpickle foreign objects)."""
    package = Path(dicsr.__file__).parent
    calls = []
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                flag = {k.arg: k.value for k in node.keywords}.get("weights_only")
                safe = isinstance(flag, ast.Constant) and flag.value is True
                calls.append((f"{source.name}:{node.lineno}", safe))
    assert calls, "expected the checkpoint readers to call torch.load"
    assert all(safe for _, safe in calls), [where for where, safe in calls if not safe]
