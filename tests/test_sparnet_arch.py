"""SPARNet / SPARNet-Light / SPARNetHD: golden parity, layouts, spectral-norm folding, adapter.

Golden fixtures (``../shared/golden/SPARNet.{pth,npz}``) come from the official code with seeded
random weights (docs/specs/sparnet.md §9). Measured on this machine (torch 2.14.1, CPU): the
output and all 16 attention maps match the golden float32 arrays bit for bit (max abs error 0.0);
the tests allow 1e-5 so other CPUs/BLAS builds pass too.
"""

from __future__ import annotations

import dataclasses
import json
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from _support import shared_path
from PIL import Image
from torch import nn

from dicsr.errors import CheckpointError, UnsupportedDtypeError
from dicsr.families import ModelConfig
from dicsr.families.sparnet import FAMILY, SPARNet, SPARNetAdapter, SPARNetConfig, fold_spectral_norm
from dicsr.families.sparnet._adapter import official_uint8, pil_bicubic_resize_uint8, uint8_to_network_space
from dicsr.families.sparnet._network import SPARNET_PRESETS

PARITY_ATOL = 1e-5

# docs/specs/sparnet.md §1, §4, §6: parameters (without BN running stats) and official state-dict sizes.
OFFICIAL_LAYOUTS = {
    "sparnet": (10_518_867, 1154),
    "sparnet-light": (5_242_211, 605),
    "sparnethd-2d": (85_793_412, 892),
    "sparnethd-3d": (90_093_793, 892),
}


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden_state_dict() -> dict[str, torch.Tensor]:
    return torch.load(shared_path("golden", "SPARNet.pth"), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(shared_path("golden", "SPARNet.npz")) as arrays:
        return {name: arrays[name] for name in arrays.files}


@pytest.fixture(scope="module")
def golden_network(golden, golden_state_dict) -> SPARNet:
    meta = json.loads(str(golden["meta"]))
    assert meta["net_kwargs"] == {
        "model": "sparnet",
        "res_depth": 10,
        "att_name": "spar",
        "Gnorm": "bn",
        "bottleneck_size": 4,
    }, "golden fixture is not the released SPARNet configuration this file tests"
    network = SPARNet(SPARNET_PRESETS["sparnet"]).eval()
    network.load_state_dict(golden_state_dict, strict=True)
    return network.requires_grad_(False)


@pytest.fixture(scope="module")
def golden_run(golden, golden_network) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    with torch.inference_mode():
        return golden_network.forward_with_attention(torch.from_numpy(golden["input"]))


def _sparnet_model_config(**overrides) -> ModelConfig:
    fields = {
        "arch": "sparnet",
        "preset": "sparnet",
        "arch_config": dataclasses.asdict(SPARNET_PRESETS["sparnet"]),
        "lr_size": 16,
        "hr_size": 128,
        "crop": "landmark_square",
    }
    return ModelConfig(**{**fields, **overrides})


def _adapter(network: nn.Module, state_dict: dict[str, torch.Tensor], config: ModelConfig) -> SPARNetAdapter:
    network.load_state_dict(state_dict, strict=True)
    return SPARNetAdapter(network, config)


# --- golden parity -------------------------------------------------------------------------------


def test_official_checkpoint_layout_is_ours(golden_state_dict):
    ours = SPARNet(SPARNET_PRESETS["sparnet"]).state_dict()
    assert list(ours) == list(golden_state_dict)  # names and registration order
    mismatched = [k for k, v in ours.items() if v.shape != golden_state_dict[k].shape]
    assert mismatched == []


def test_output_matches_golden(golden, golden_run):
    output, _ = golden_run
    expected = torch.from_numpy(golden["output"])
    assert output.shape == expected.shape == (2, 3, 128, 128)
    torch.testing.assert_close(output, expected, rtol=0.0, atol=PARITY_ATOL)


def test_every_attention_map_matches_golden(golden, golden_run):
    _, maps = golden_run
    golden_maps = {k.removeprefix("att_map/"): v for k, v in golden.items() if k.startswith("att_map/")}
    assert set(maps) == set(golden_maps)
    assert len(maps) == 16  # 3 encoder + 10 body + 3 decoder units
    for path, expected in golden_maps.items():
        torch.testing.assert_close(
            maps[path], torch.from_numpy(expected), rtol=0.0, atol=PARITY_ATOL, msg=path
        )


def test_official_uint8_reproduces_golden_bits(golden, golden_run):
    official = torch.from_numpy(golden["output_uint8_hwc"])
    golden_images = torch.from_numpy(golden["output"]).add(1.0).div(2.0).clamp(0.0, 1.0)
    quantised = official_uint8(golden_images)
    assert quantised.dtype == torch.uint8
    assert torch.equal(quantised.permute(0, 2, 3, 1), official)
    # Our own float output: truncation can move a value by one level only where our float32
    # result differs from the golden one by an ulp across an integer boundary.
    ours = official_uint8(golden_run[0].add(1.0).div(2.0).clamp(0.0, 1.0))
    assert (ours.permute(0, 2, 3, 1).int() - official.int()).abs().max() <= 1


def test_input_uint8_maps_to_golden_input(golden):
    # The golden input is the 128 px uint8 image after the loader's resize, then ToTensor+Normalize.
    converted = uint8_to_network_space(torch.from_numpy(golden["input_uint8"]))
    assert torch.equal(converted, torch.from_numpy(golden["input"]))


def test_adapter_output_matches_golden_at_network_size(golden, golden_state_dict):
    # lr_size == in_size takes the direct path; uint8/255 then (x - .5) / .5 are the official float ops.
    config = _sparnet_model_config(preset="custom", lr_size=128)
    adapter = _adapter(SPARNet(SPARNET_PRESETS["sparnet"]), golden_state_dict, config)
    faces = torch.from_numpy(golden["input_uint8"][:1]).float().div(255.0)
    result = adapter(faces)
    assert result.heatmaps is None and result.step_images == ()
    expected = torch.from_numpy(golden["output"][:1]).add(1.0).div(2.0).clamp(0.0, 1.0)
    torch.testing.assert_close(result.images, expected, rtol=0.0, atol=PARITY_ATOL)


# --- layouts of the four released presets -----------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(OFFICIAL_LAYOUTS))
def test_preset_parameter_count_and_official_keys(preset):
    n_params, n_official_keys = OFFICIAL_LAYOUTS[preset]
    config = SPARNET_PRESETS[preset]
    with torch.device("meta"):
        network = SPARNet(config)
    assert sum(p.numel() for p in network.parameters()) == n_params
    ours = network.state_dict()
    if config.norm == "bn":
        assert len(ours) == n_official_keys
        return
    # SPARNetHD: rebuild the official layout (spectral norm on every Conv2d,
    # docs/specs/sparnet.md §3), then fold it back.
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.utils.spectral_norm(module)
    official = network.state_dict()
    assert len(official) == n_official_keys
    folded = fold_spectral_norm(official)
    assert {k: v.shape for k, v in folded.items()} == {k: v.shape for k, v in ours.items()}


def test_sparnethd_quirks():
    with torch.device("meta"):
        network = SPARNet(SPARNET_PRESETS["sparnethd-2d"])
    assert network.encoder[0].conv2d.out_channels == 102  # 512 // 5, docs/specs/sparnet.md §7.9
    assert len(network.res_layers) == 9  # res_depth + 3 - down_steps, docs/specs/sparnet.md §3
    assert network.encoder[1].att_func.b1_4.norm.norm.__class__ is nn.InstanceNorm2d


# --- spectral-norm folding ------------------------------------------------------------------------


def test_fold_spectral_norm_matches_torch_eval():
    torch.manual_seed(0)
    conv = nn.utils.spectral_norm(nn.Conv2d(5, 7, 3, padding=1))
    x = torch.randn(2, 5, 9, 9)
    for _ in range(3):  # train-mode forwards power-iterate u, v away from their initial values
        conv(x)
    conv.eval()
    with torch.no_grad():
        expected = conv(x)
        state = conv.state_dict()
        folded = fold_spectral_norm(state)
        assert set(folded) == {"weight", "bias"}
        plain = nn.Conv2d(5, 7, 3, padding=1)
        plain.load_state_dict(folded, strict=True)
        assert torch.equal(plain.weight, conv.weight)  # the W / sigma spectral norm uses in eval
        torch.testing.assert_close(plain(x), expected, rtol=0.0, atol=1e-6)
    assert "weight_orig" in state and state["weight_orig"] is not folded["weight"]  # input untouched


def test_fold_spectral_norm_rejects_incomplete_triplet():
    state = {"conv.weight_orig": torch.ones(4, 2, 3, 3), "conv.weight_u": torch.ones(4)}
    with pytest.raises(ValueError, match=r"conv\.weight_v"):
        fold_spectral_norm(state)
    state["conv.weight_v"] = torch.ones(5)
    with pytest.raises(ValueError, match="do not fit"):
        fold_spectral_norm(state)


# --- behaviour ---------------------------------------------------------------------------------------


def test_attention_maps_visible_to_forward_hooks(golden, golden_network):
    x = torch.from_numpy(golden["input"][:1, :, :64, :64])
    seen: dict[str, torch.Tensor] = {}
    handle = golden_network.get_submodule("decoder.2.att_func").register_forward_hook(
        lambda module, inputs, output: seen.setdefault("map", output)
    )
    try:
        with torch.inference_mode():
            output = golden_network(x)
            output_again, maps = golden_network.forward_with_attention(x)
    finally:
        handle.remove()
    assert torch.equal(output, output_again)
    assert torch.equal(seen["map"], maps["decoder.2.att_func"])
    assert not any(isinstance(v, torch.Tensor) for m in golden_network.modules() for v in vars(m).values())


def test_concurrent_threads_get_their_own_results(golden, golden_network):
    inputs = [torch.from_numpy(golden["input"][i : i + 1, :, :64, :64]).clone() for i in range(2)]
    with torch.inference_mode():
        sequential = [golden_network.forward_with_attention(x) for x in inputs]
    results: list[tuple[torch.Tensor, dict[str, torch.Tensor]] | None] = [None, None]
    barrier = threading.Barrier(2)

    def run(index: int) -> None:
        barrier.wait()
        with torch.inference_mode():
            results[index] = golden_network.forward_with_attention(inputs[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for (expected_out, expected_maps), (out, maps) in zip(sequential, results, strict=True):
        torch.testing.assert_close(out, expected_out, rtol=0.0, atol=1e-6)
        for path, expected in expected_maps.items():
            torch.testing.assert_close(maps[path], expected, rtol=0.0, atol=1e-6)


def test_instance_norm_layout_runs_and_is_batch_independent():
    # HD's structure (4 down steps, hourglass depths 4,3,2,1 | 1 | 2,3,4,5, IN, 3-D maps) at toy width.
    config = SPARNetConfig(
        min_channels=8, max_channels=40, in_size=64, out_size=64, min_feat_size=4,
        res_depth=2, attention="3d", norm="in",
    )  # fmt: skip
    torch.manual_seed(0)
    network = SPARNet(config).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        output, maps = network.forward_with_attention(x)
        single = network(x[:1])
    assert output.shape == (2, 3, 64, 64)
    assert sum(path.startswith("res_layers.") for path in maps) == 1  # res_depth + 3 - down_steps
    for path, attention in maps.items():
        unit = network.get_submodule(path.removesuffix(".att_func"))
        assert attention.shape[1] == unit.conv2.conv2d.out_channels  # one map per channel
        assert attention.min() >= 0.0 and attention.max() <= 1.0
    torch.testing.assert_close(single, output[:1], rtol=0.0, atol=1e-5)


@pytest.mark.parametrize(
    "overrides",
    [
        {"in_size": 32, "out_size": 32, "min_feat_size": 16},  # hourglass bottleneck below 2 px
        {"in_size": 96},  # 96 / 16 is not a power of two
        {"attention": "1d"},
        {"norm": "gn"},
        {"bottleneck_size": 3},
        {"min_channels": 256},
        {"res_depth": -1},
        {"min_feat_size": 4},  # 5 down steps: the body would get no hourglass
    ],
)
def test_config_rejects_layouts_the_network_cannot_run(overrides):
    with pytest.raises(ValueError, match="SPARNetConfig"):
        SPARNetConfig(**overrides)


def test_feeding_the_16px_face_directly_fails_clearly():
    network = SPARNet(SPARNetConfig(res_depth=0)).eval()  # smallest body; layout checks are size-only
    with pytest.raises(ValueError, match="multiples of 32 and at least 64 px"):
        network(torch.zeros(1, 3, 16, 16))


# --- adapter -------------------------------------------------------------------------------------


def test_adapter_resizes_16px_faces_like_the_official_loader():
    rng = np.random.default_rng(7)
    lr_uint8 = rng.integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    # The official path: PIL image -> resize(BICUBIC) -> ToTensor -> Normalize(.5, .5)
    # (docs/specs/sparnet.md §5).
    upsampled = [Image.fromarray(img).resize((128, 128), Image.BICUBIC) for img in lr_uint8]
    expected = torch.stack([TF.normalize(TF.to_tensor(img), [0.5] * 3, [0.5] * 3) for img in upsampled])
    lr = torch.from_numpy(lr_uint8).permute(0, 3, 1, 2).float().div(255.0)
    with torch.device("meta"):  # pre-processing only: no weights needed
        adapter = SPARNetAdapter(SPARNet(SPARNET_PRESETS["sparnet"]), _sparnet_model_config())
    assert adapter.resizes_input
    assert torch.equal(adapter.preprocess(lr), expected)
    # torch's bicubic (a = -0.75, float) is not the up-sampling the weights were trained on.
    pil = pil_bicubic_resize_uint8(torch.from_numpy(lr_uint8).permute(0, 3, 1, 2), 128)
    torch_bicubic = F.interpolate(lr, size=128, mode="bicubic").mul(255).round().clamp(0, 255).byte()
    assert not torch.equal(pil, torch_bicubic)


def test_adapter_bfloat16_close_to_float32(golden_state_dict):
    torch.manual_seed(3)
    lr = torch.rand(1, 3, 16, 16)
    config = _sparnet_model_config()
    fp32 = _adapter(SPARNet(SPARNET_PRESETS["sparnet"]), golden_state_dict, config)
    bf16 = _adapter(SPARNet(SPARNET_PRESETS["sparnet"]), golden_state_dict, config).to(dtype=torch.bfloat16)
    reference = fp32(lr, all_steps=True)
    result = bf16(lr)
    assert reference.images.shape == result.images.shape == (1, 3, 128, 128)
    assert result.images.dtype == torch.float32
    assert reference.step_images == (reference.images,)
    assert result.images.min() >= 0.0 and result.images.max() <= 1.0
    # Measured with the golden (random) weights: mean 0.004 (~1 grey level), max 0.026.
    difference = (result.images - reference.images).abs()
    assert difference.mean() < 0.01
    assert difference.max() < 0.08


def test_adapter_validates_config_and_dtype():
    with torch.device("meta"):
        network = SPARNet(SPARNET_PRESETS["sparnet"])
    with pytest.raises(CheckpointError, match="hr_size"):
        SPARNetAdapter(network, _sparnet_model_config(hr_size=64))
    with pytest.raises(CheckpointError, match="arch_config"):
        FAMILY.build_network(_sparnet_model_config(arch_config={"attention": "spar"}).arch_config)
    with pytest.raises(UnsupportedDtypeError):
        SPARNetAdapter(network, _sparnet_model_config()).to("cpu", torch.float16)
    built = FAMILY.build_network(
        _sparnet_model_config(arch_config=dataclasses.asdict(SPARNET_PRESETS["sparnet-light"])).arch_config
    )
    assert isinstance(built, SPARNet) and built.config == SPARNET_PRESETS["sparnet-light"]
    assert SPARNetAdapter.normalisation()["range"] == [-1.0, 1.0]
