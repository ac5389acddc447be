"""Hostile or damaged model folders and checkpoints: refused with a typed error before anything is built.

A model folder is the format users share, so ``config.json`` is checked field by field (type,
bounds, consistency with the family's layout) and the weights file's header against the network
the config describes, before any tensor is read or the real network allocated; every tensor's
dtype and values are checked on every load. The cases are those of the reliability probe
(reviews/reliability-repro/repro_d5_config_json.py, repro_d7_weight_dtypes.py): before these checks
a ``num_steps`` of ten million hung ``enhance``, a ``num_features`` of 200,000 tried to allocate
160 GB, 100,000 nested brackets raised ``RecursionError``, ``format_version: "1"`` raised
``TypeError``, ``hr_size: 1e9`` loaded and failed on every image, and int64 or NaN weights loaded
and gave NaN faces.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from _support import shared_path

from dicsr.errors import (
    ArchitectureMismatchError,
    CheckpointError,
    InvalidWeightsError,
    UnknownArchitectureError,
)
from dicsr.weights import convert_checkpoint, load_model, load_model_folder

pytestmark = pytest.mark.shared


def _folder(tmp_path: Path, source: Path, config_text: str) -> Path:
    """A model folder with ``config_text`` as its config.json and ``source``'s weights (hard-linked)."""
    folder = tmp_path / "model"
    folder.mkdir()
    try:
        (folder / "model.safetensors").hardlink_to(source / "model.safetensors")
    except OSError:
        shutil.copyfile(source / "model.safetensors", folder / "model.safetensors")
    (folder / "config.json").write_text(config_text, encoding="utf-8")
    return folder


def _edited(source: Path, edit: Callable[[dict[str, Any]], None]) -> str:
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    edit(config)
    return json.dumps(config)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = config
        for key in parents:
            target = target[key]
        target[last] = value

    return edit


# --- config.json, field by field ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("arch_config.num_steps", 10_000_000),  # hung enhance
        ("arch_config.num_features", 200_000),  # tried to allocate 160 GB
        ("format_version", "1"),  # raised TypeError
        ("hr_size", 10**9),  # loaded, then failed on every image
        ("hr_size", 1e9),  # JSON's 1e9 is a float, not a size
        ("lr_size", True),  # JSON true is no integer either
        ("hr_size", 256),  # DIC restores 8 x lr_size = 128
        ("num_landmarks", 0),  # DIC predicts 68
        ("crop", "square"),
        ("arch_config.scale", 4),
        ("arch_config", [1, 2]),
        ("description", 5),
    ],
)
def test_invalid_field_is_refused_naming_file_and_field(
    dic_model_dir: Path, tmp_path: Path, field: str, value: Any
) -> None:
    folder = _folder(tmp_path, dic_model_dir, _edited(dic_model_dir, _set(field, value)))
    with pytest.raises(CheckpointError) as caught:
        load_model_folder(folder)
    message = str(caught.value)
    assert str(folder / "config.json") in message
    assert field.split(".")[-1] in message, message


def test_deeply_nested_json_is_refused(dic_model_dir: Path, tmp_path: Path) -> None:
    folder = _folder(tmp_path, dic_model_dir, "[" * 100_000 + "]" * 100_000)  # raised RecursionError
    with pytest.raises(CheckpointError, match="nested too deeply") as caught:
        load_model_folder(folder)
    assert str(folder / "config.json") in str(caught.value)


def test_oversized_config_is_refused_before_parsing(dic_model_dir: Path, tmp_path: Path) -> None:
    folder = _folder(tmp_path, dic_model_dir, _edited(dic_model_dir, _set("description", "x" * 2_000_000)))
    with pytest.raises(CheckpointError, match="limit 1,000,000"):
        load_model_folder(folder)


def test_unknown_family_is_a_typed_error_naming_the_file(dic_model_dir: Path, tmp_path: Path) -> None:
    folder = _folder(tmp_path, dic_model_dir, _edited(dic_model_dir, _set("arch", "esrgan")))
    with pytest.raises(UnknownArchitectureError, match="known: dic, sparnet") as caught:
        load_model_folder(folder)
    assert str(folder / "config.json") in str(caught.value)


def test_wrong_layout_is_refused_from_the_weights_header(dic_model_dir: Path, tmp_path: Path) -> None:
    """An in-bounds but wrong layout is compared with the safetensors header (the network is built
    on the meta device only): this one would be 1.3 billion parameters, 5 GB in float32."""
    def wide(config: dict[str, Any]) -> None:
        config["arch_config"].update(num_features=512, hg_num_features=1024)

    folder = _folder(tmp_path, dic_model_dir, _edited(dic_model_dir, wide))
    with pytest.raises(ArchitectureMismatchError, match=r"model\.safetensors does not fit") as caught:
        load_model_folder(folder)
    assert caught.value.mismatched  # shapes differ; every key exists


def test_cli_reports_a_hostile_config_in_one_line(dic_model_dir: Path, tmp_path: Path) -> None:
    folder = _folder(tmp_path, dic_model_dir, "[" * 100_000 + "]" * 100_000)
    photo = shared_path("faces", "face_recognition", "examples", "obama-240p.jpg")
    env = {**os.environ, "DICSR_OFFLINE": "1", "DICSR_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "dicsr", "enhance", str(photo), "-o", str(tmp_path / "out"), "-m", str(folder),
         "--no-progress"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr
    assert str(folder / "config.json") in done.stderr and "nested too deeply" in done.stderr


# --- weight dtypes and values, on every route --------------------------------------------------------


def _damaged(source: Path, tmp_path: Path, key: str, damage: Callable[[torch.Tensor], torch.Tensor]) -> Path:
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "damaged"
    folder.mkdir()
    tensors = load_file(source / "model.safetensors")
    tensors[key] = damage(tensors[key])
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    shutil.copyfile(source / "config.json", folder / "config.json")
    return folder


def _one_inf(tensor: torch.Tensor) -> torch.Tensor:
    damaged = tensor.clone()
    damaged.view(-1)[0] = float("inf")  # what one flipped exponent bit does
    return damaged


DAMAGES = {
    "int64": (lambda t: t.to(torch.int64), r"is int64, but the network holds floating-point values"),
    "all NaN": (lambda t: torch.full_like(t, float("nan")), r"holds [\d,]+ NaN or infinite value"),
    "one inf": (_one_inf, r"holds 1 NaN or infinite value"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_weights_in_a_folder_are_refused_naming_the_tensor(
    sparnet_model_dir: Path, tmp_path: Path, damage: str
) -> None:
    key = "out_conv.conv2d.weight"
    change, pattern = DAMAGES[damage]
    folder = _damaged(sparnet_model_dir, tmp_path, key, change)
    for load in (lambda: load_model_folder(folder), lambda: load_model(folder / "model.safetensors")):
        with pytest.raises(InvalidWeightsError, match=pattern) as caught:
            load()
        assert caught.value.tensor == key and repr(key) in str(caught.value)
        assert str(folder / "model.safetensors") in str(caught.value)


def test_integer_counters_stay_integers(sparnet_model_dir: Path) -> None:
    """BatchNorm's num_batches_tracked is int64 in the network too: it is not a damaged tensor."""
    adapter = load_model_folder(sparnet_model_dir)
    counters = [k for k, v in adapter.network.state_dict().items() if not v.dtype.is_floating_point]
    assert counters and all(k.endswith("num_batches_tracked") for k in counters)


@pytest.mark.parametrize("damage", ["int64", "all NaN"])
def test_damaged_official_checkpoint_is_refused(tmp_path: Path, damage: str) -> None:
    state = torch.load(shared_path("golden", "SPARNet.pth"), map_location="cpu", weights_only=True)
    key = "encoder.0.conv2d.weight"
    change, pattern = DAMAGES[damage]
    state[key] = change(state[key])
    path = tmp_path / "SPARNet-damaged.pth"
    torch.save(state, path)
    with pytest.raises(InvalidWeightsError, match=pattern) as caught:
        convert_checkpoint(path, tmp_path / "converted")
    assert caught.value.tensor == key and str(path) in str(caught.value)
    assert not (tmp_path / "converted").exists()
    with pytest.raises(InvalidWeightsError):
        load_model(path)

