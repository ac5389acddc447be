"""Adding a network family is one object and one registration, and then everything works.

A tiny family is defined here, inside the test: a 4x bicubic-plus-conv network with its own config
dataclass, one preset (with no zoo entry), checkpoint recognition, a key conversion (its "official"
checkpoints store the conv under another name) and an adapter. Registered at run time, it goes the
whole way a built-in family goes: an official checkpoint is recognised, converted into a model
folder, loaded back, and restores the faces of a real photo found by the real detector. Nothing
in dicsr is edited for it, which is the proof that nothing outside a family names one.

The registry and capability tests below use the built-in families.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _support import REPO_ROOT, shared_path
from PIL import Image
from torch import nn

from dicsr import FaceSuperResolver
from dicsr.errors import UnknownArchitectureError
from dicsr.families import (
    Family,
    ModelConfig,
    NetworkAdapter,
    NetworkOutput,
    Preset,
    get_family,
    list_families,
    register_family,
    unregister_family,
)
from dicsr.pipeline import PasteOptions
from dicsr.weights import (
    convert_checkpoint,
    detect_architecture,
    list_models,
    load_model,
    read_official_checkpoint,
)

# --- the tiny family ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TinyConfig:
    """Hyper-parameters of the tiny network."""

    scale: int = 4
    kernel_size: int = 3


class TinyNet(nn.Module):
    """Bicubic upsampling plus a learned 3x3 residual; works in [0, 1] RGB."""

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.refine = nn.Conv2d(3, 3, config.kernel_size, padding=config.kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=self.config.scale, mode="bicubic", align_corners=False)
        return up + self.refine(up)


class TinyAdapter(NetworkAdapter):
    """The tiny network behind the [0, 1] boundary: no normalisation, output clamped."""

    supported_dtypes: ClassVar[dict[str, frozenset[torch.dtype]]] = {"cpu": frozenset({torch.float32})}

    @staticmethod
    def normalisation() -> dict[str, Any]:
        return {"space": "rgb01"}

    def forward(self, lr: torch.Tensor, *, all_steps: bool = False) -> NetworkOutput:
        images = self.network(lr.to(self.device, self.dtype)).float().clamp(0.0, 1.0).contiguous()
        return NetworkOutput(images=images, step_images=(images,) if all_steps else ())


# The "official" code names the conv "body"; dicsr's network calls it "refine".
_OFFICIAL, _OURS = "body.", "refine."


class TinyFamily(Family):
    def recognises(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        return set(state_dict) == {"body.weight", "body.bias"}

    def converted_shapes(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
        return {k.replace(_OFFICIAL, _OURS, 1): tuple(v.shape) for k, v in state_dict.items()}

    def convert_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k.replace(_OFFICIAL, _OURS, 1): v for k, v in state_dict.items()}


TINY = TinyFamily(
    name="tiny",
    display_name="Tiny bicubic+conv",
    config_type=TinyConfig,
    network_type=TinyNet,
    adapter_class=TinyAdapter,
    presets={"tiny-x4": Preset(TinyConfig(), lr_size=32, hr_size=128, crop="landmark_square",
                               bytes_per_face=1e6)},
    limits={"scale": (4, 4), "kernel_size": (1, 7)},
    crop_notes={"landmark_square": "axis-aligned square face box"},
    key_conversion="'body' renamed 'refine'",
)


@pytest.fixture
def tiny_family() -> Iterator[Family]:
    register_family(TINY)
    yield TINY
    unregister_family(TINY.name)


@pytest.fixture
def official_checkpoint(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A training checkpoint as the tiny family's official code would save it (seeded weights)."""
    generator = torch.Generator().manual_seed(0)
    state = {
        "body.weight": torch.randn(3, 3, 3, 3, generator=generator) * 0.05,
        "body.bias": torch.randn(3, generator=generator) * 0.01,
    }
    path = tmp_path / "tiny_official.pth"
    torch.save({"state_dict": state, "epoch": 7}, path)
    return path, state


# --- a new family, end to end --------------------------------------------------------------------------


def test_a_registered_family_is_converted_loaded_and_restores_a_photo(
    tiny_family: Family, official_checkpoint: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path,
    detector_weights: Path,
) -> None:
    path, official = official_checkpoint
    detected = detect_architecture(read_official_checkpoint(path))
    assert (detected.arch, detected.preset) == ("tiny", "tiny-x4")

    folder = convert_checkpoint(path, tmp_path / "tiny-model")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert [config[key] for key in ("arch", "preset", "lr_size", "hr_size")] == ["tiny", "tiny-x4", 32, 128]
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "Tiny bicubic+conv generator" in card and "'body' renamed 'refine'" in card

    adapter = load_model(folder)
    assert isinstance(adapter, TinyAdapter)
    assert torch.equal(adapter.network.state_dict()["refine.weight"], official["body.weight"])
    lr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    up = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    expected = (up + F.conv2d(up, official["body.weight"], official["body.bias"], padding=1)).clamp(0, 1)
    assert torch.allclose(adapter(lr).images, expected, atol=1e-6)

    image = Image.open(shared_path("faces", "face_recognition", "examples", "two_people.jpg")).convert("RGB")
    image = image.resize((image.width // 4, image.height // 4), Image.BICUBIC)  # faces of ~50 px
    resolver = FaceSuperResolver.from_pretrained(
        folder, device="cpu", detector_weights=detector_weights, refine_crop=True,
        paste=PasteOptions(back_projection=False),  # faces as the network made them, to compare below
    )
    result = resolver.enhance(image)
    assert result.num_faces == 2 and result.upscale == 4.0  # the preset's scale
    assert result.image.size == (image.width * 4, image.height * 4)
    for face in result.faces:
        assert face.lr.shape == (32, 32, 3) and face.image.size == (128, 128)
        assert face.landmarks is None  # the family predicts none, and cannot re-crop from them
        direct = adapter(torch.from_numpy(face.lr).permute(2, 0, 1)[None]).images[0]
        assert np.abs(np.asarray(face.image) - np.rint(direct.permute(1, 2, 0).numpy() * 255)).max() <= 1


def test_a_family_without_zoo_entries_adds_no_models(tiny_family: Family) -> None:
    assert "tiny" in [family.name for family in list_families()]
    assert not any(entry.arch == "tiny" for entry in list_models())


def test_registration_is_explicit_and_reversible(tiny_family: Family) -> None:
    assert get_family("tiny") is TINY
    with pytest.raises(ValueError, match="already registered"):
        register_family(TINY)
    with pytest.raises(ValueError, match="already registered"):
        register_family(TinyFamily(**{**_fields(TINY), "name": "dic"}))  # a built-in name
    unregister_family("tiny")
    with pytest.raises(UnknownArchitectureError, match="known: dic, sparnet"):
        get_family("tiny")
    register_family(TINY)  # the fixture unregisters it again


def _fields(family: Family) -> dict[str, Any]:
    return {f.name: getattr(family, f.name) for f in dataclasses.fields(family)}


def test_config_of_an_unregistered_family_is_refused(
    tiny_family: Family, official_checkpoint: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    folder = convert_checkpoint(official_checkpoint[0], tmp_path / "tiny-model")
    unregister_family("tiny")
    try:
        with pytest.raises(UnknownArchitectureError, match="'tiny'") as caught:
            load_model(folder)
        assert str(folder / "config.json") in str(caught.value)
    finally:
        register_family(TINY)


def test_config_bounds_come_from_the_family(tiny_family: Family) -> None:
    good = TINY.model_config("tiny-x4")
    assert good.arch_config == {"scale": 4, "kernel_size": 3}
    with pytest.raises(ValueError, match=r"arch_config\.kernel_size must be an integer from 1 to 7"):
        ModelConfig.from_dict({**good.to_dict(), "arch_config": {"scale": 4, "kernel_size": 99}})
    with pytest.raises(ValueError, match="lr_size is 16, but preset 'tiny-x4'"):
        ModelConfig.from_dict({**good.to_dict(), "lr_size": 16})


def test_moving_an_adapter_keeps_its_memory_format(tiny_family: Family) -> None:
    """NetworkAdapter.to changes only what it is told: channels-last survives a later move."""
    adapter = TINY.build_adapter(TINY.model_config("tiny-x4"))
    weight = adapter.network.refine.weight
    assert not weight.is_contiguous(memory_format=torch.channels_last)
    assert adapter.to("cpu", channels_last=True) is adapter
    adapter.to("cpu", torch.float32)  # e.g. FaceSuperResolver.to(device) or a user's move
    weight = adapter.network.refine.weight
    assert adapter.channels_last and weight.is_contiguous(memory_format=torch.channels_last)
    adapter.to(channels_last=False)
    assert not adapter.channels_last and adapter.network.refine.weight.is_contiguous()


# --- the built-in families ---------------------------------------------------------------------------------


def test_built_in_families_and_their_capabilities() -> None:
    assert [family.name for family in list_families()] == ["dic", "sparnet"]
    dic, sparnet = get_family("dic"), get_family("sparnet")
    dic_config = dic.model_config("dic")
    assert dic.predicts_landmarks(dic_config) and dic.can_recrop(dic_config)
    assert dic.bytes_per_face(dic_config) == 300e6
    for preset, per_face in (("sparnet", 60e6), ("sparnethd-2d", 1.6e9)):
        config = sparnet.model_config(preset)
        assert not sparnet.predicts_landmarks(config) and not sparnet.can_recrop(config)
        assert sparnet.bytes_per_face(config) == per_face
    # A custom SPARNet layout is fed at its own sizes, with the crop its norm implies.
    hd_layout = dataclasses.asdict(sparnet.presets["sparnethd-2d"].arch_config)
    layout = {**hd_layout, "in_size": 256, "out_size": 256}
    custom = sparnet.model_config("custom", layout)
    assert (custom.lr_size, custom.hr_size, custom.crop) == (256, 256, "ffhq")


def test_unknown_family_is_a_typed_error() -> None:
    with pytest.raises(UnknownArchitectureError, match="family 'esrgan'; known: dic, sparnet"):
        get_family("esrgan")


def test_the_weights_room_names_no_family() -> None:
    """dicsr/weights/ builds, recognises and converts only through the registry."""
    names = {family.name for family in list_families()} | {"dicgan", "sparnethd"}
    pattern = re.compile(rf"\b({'|'.join(sorted(names))})(?=\b|_)", re.IGNORECASE)
    found = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in sorted((REPO_ROOT / "dicsr" / "weights").glob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)
