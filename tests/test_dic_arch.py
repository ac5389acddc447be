"""DIC network, adapter and heatmap decoding: parity with the official code and behaviour.

Golden fixtures (../shared/golden, see shared/README.md) are outputs of the official DIC code with
seeded random weights. A DIC forward costs ~1-2.5 s per image on the 2-core CI machine, so the
checkpoint, the golden arrays and the golden forward pass are shared per module.
"""

from __future__ import annotations

import copy
import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from _support import shared_path

from dicsr.face.landmarks import official_argmax_landmarks, subpixel_landmarks
from dicsr.families import ModelConfig, NetworkOutput
from dicsr.families.dic import CELEBA_MEAN, DIC, FAMILY, DICAdapter, DICConfig, DICOutput
from dicsr.families.dic._adapter import official_uint8
from dicsr.families.dic._network import DIC_PRESETS

pytestmark = pytest.mark.shared

# Float32 parity with the official code (shared/README.md). Measured: 1.7e-6 on the final SR image
# (the 256x256 1x1 projections run as matrix products, which sum in another order than oneDNN's
# convolution), 2.0e-6 in channels-last.
F32_TOLERANCE = 1e-5
# bfloat16 on CPU (contiguous or channels-last) vs float32, final step, golden random weights.
# Measured: image max 0.011-0.013 / mean 0.0014 (in [0, 1] units: at worst ~3/255), heatmaps max
# 0.014 (their range is about [-1.4, 1.2]). Asserted with ~3x headroom.
BF16_IMAGE_MAX, BF16_IMAGE_MEAN, BF16_HEATMAP_MAX = 0.03, 0.005, 0.04

NUM_STEPS = 4
OFFICIAL_NUM_PARAMS = 21_803_849  # docs/specs/dic.md §4 and §5


def _max_error(actual: torch.Tensor, expected: np.ndarray | torch.Tensor) -> float:
    return (actual.float() - torch.as_tensor(expected).float()).abs().max().item()


# --- shared fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(shared_path("golden", "DIC_CelebA.npz")) as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def official_state_dict() -> dict[str, torch.Tensor]:
    checkpoint = torch.load(shared_path("golden", "DIC_CelebA_ckp.pth"), weights_only=True)
    return checkpoint["state_dict"]


@pytest.fixture(scope="module")
def net(official_state_dict: dict[str, torch.Tensor]) -> DIC:
    network = DIC()
    network.load_state_dict(official_state_dict, strict=True)
    return network.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def model_config() -> ModelConfig:
    return ModelConfig(
        arch="dic",
        preset="dic",
        arch_config=dataclasses.asdict(DIC_PRESETS["dic"]),
        lr_size=16,
        hr_size=128,
        crop="landmark_square",
        num_landmarks=68,
        normalisation=DICAdapter.normalisation(),
    )


@pytest.fixture(scope="module")
def lr01(golden: dict[str, np.ndarray]) -> torch.Tensor:
    """The golden LR faces as a decoder would hand them over: uint8 / 255, NCHW float32."""
    return torch.from_numpy(golden["lr_uint8"]).permute(0, 3, 1, 2).float() / 255


@pytest.fixture(scope="module")
def golden_run(net: DIC, model_config: ModelConfig, lr01: torch.Tensor):
    """One adapter forward of the golden batch with all steps, plus the raw network output and the
    official intermediates captured by hooks (to localise a mismatch)."""
    captured: dict[str, list[torch.Tensor]] = {}

    def keep(name: str, tensor: torch.Tensor) -> None:
        # clone: the network adds the global residual in place to the conv_out result
        captured.setdefault(name, []).append(tensor.detach().clone())

    hooks = [
        net.register_forward_hook(lambda m, args, out: captured.setdefault("raw", []).append(out)),
        net.first_block.register_forward_hook(lambda m, args, out: keep("fb_out", out)),
        net.block.register_forward_hook(lambda m, args, out: keep("fb_out", out)),
        net.block.register_forward_hook(lambda m, args, out: keep("merged_heatmap", args[2])),
        net.block.fusion_block.register_forward_hook(lambda m, args, out: keep("fusion_out", out)),
        net.conv_out.register_forward_hook(lambda m, args, out: keep("residual", out)),
        net.HG.register_forward_hook(lambda m, args, out: keep("hg_hidden", out[1])),
    ]
    try:
        output = DICAdapter(net, model_config)(lr01, all_steps=True)
    finally:
        for hook in hooks:
            hook.remove()
    (raw,) = captured.pop("raw")
    return output, raw, captured


@pytest.fixture(scope="module")
def second_image_alone(net: DIC, golden: dict[str, np.ndarray]) -> DICOutput:
    with torch.inference_mode():
        return net(torch.from_numpy(golden["lr"][1:2]), all_steps=False)


# --- checkpoint layout ------------------------------------------------------------------------------


def test_state_dict_is_the_official_layout(official_state_dict: dict[str, torch.Tensor]) -> None:
    ours = DIC().state_dict()
    assert list(ours) == list(official_state_dict)  # same keys, same order (docs/specs/dic.md §4)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in official_state_dict.items()}
    assert len(ours) == 296
    assert sum(p.numel() for p in DIC().parameters()) == OFFICIAL_NUM_PARAMS
    assert sum(v.numel() for v in official_state_dict.values()) == OFFICIAL_NUM_PARAMS


def test_module_keeps_no_tensor_state_between_calls(net: DIC) -> None:
    # The official code stores the SR hidden state on the module (docs/specs/dic.md §2); ours must not.
    tensor_attributes = [
        f"{name}.{attr}"
        for name, module in net.named_modules()
        for attr, value in vars(module).items()
        if isinstance(value, torch.Tensor)
    ]
    assert tensor_attributes == []
    assert list(net.buffers()) == []


def test_adapter_builds_the_preset_network(model_config: ModelConfig) -> None:
    network = FAMILY.build_network(model_config.arch_config)
    assert isinstance(network, DIC)
    assert network.config == DIC_PRESETS["dic"]


@pytest.mark.parametrize(
    ("field", "value"), [("scale", 4), ("num_keypoints", 194), ("num_steps", 0), ("hg_num_features", 255)]
)
def test_config_rejects_unsupported_settings(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field.split("_")[-1]):
        DICConfig(**{field: value})


def test_network_rejects_lr_side_not_divisible_by_8(net: DIC) -> None:
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.zeros(1, 3, 12, 12))


# --- golden parity (float32) ----------------------------------------------------------------------


def test_adapter_reproduces_the_official_network_input(
    golden: dict[str, np.ndarray], lr01: torch.Tensor
) -> None:
    expected = torch.from_numpy(golden["lr"])
    assert torch.equal(DICAdapter.to_network_space(lr01), expected)
    # a decoder that scales by the reciprocal, as the official loader does, gives the same input
    assert torch.equal(DICAdapter.to_network_space(lr01 * 255 * (1 / 255)), expected)


def test_every_step_matches_the_official_network(golden_run, golden: dict[str, np.ndarray]) -> None:
    _, raw, _ = golden_run
    assert len(raw.sr) == len(raw.heatmaps) == NUM_STEPS
    errors = {
        f"{kind}[{step}]": _max_error(steps[step], golden[kind][step])
        for kind, steps in (("sr", raw.sr), ("heatmap", raw.heatmaps))
        for step in range(NUM_STEPS)
    }
    assert max(errors.values()) <= F32_TOLERANCE, errors


def test_intermediates_match_the_official_network(golden_run, golden: dict[str, np.ndarray]) -> None:
    _, _, captured = golden_run
    # Relative to each tensor's magnitude: the merged heatmaps reach ~50 (maxima clamped to 0.05
    # divide by 0.05, docs/specs/dic.md §2.3), where 1e-5 absolute would be below float32 resolution.
    relative_errors = {}
    for name, tensors in captured.items():
        assert len(tensors) == len(golden[name]), name
        for i, tensor in enumerate(tensors):
            scale = max(1.0, float(np.abs(golden[name][i]).max()))
            relative_errors[f"{name}[{i}]"] = _max_error(tensor, golden[name][i]) / scale
    assert set(captured) == {"fb_out", "merged_heatmap", "fusion_out", "residual", "hg_hidden"}
    assert max(relative_errors.values()) <= F32_TOLERANCE, relative_errors


def test_adapter_output_quantises_to_the_official_png(golden_run, golden: dict[str, np.ndarray]) -> None:
    output, raw, _ = golden_run
    assert isinstance(output, NetworkOutput)
    assert output.images.dtype == torch.float32 and output.images.shape == (2, 3, 128, 128)
    assert output.images.min() >= 0.0 and output.images.max() <= 1.0
    assert len(output.step_images) == len(output.step_heatmaps) == NUM_STEPS
    assert torch.equal(output.step_images[-1], output.images)
    assert torch.equal(output.heatmaps, raw.heatmaps[-1])
    quantised = official_uint8(output.images).permute(0, 2, 3, 1).numpy().astype(int)
    expected = golden["sr_uint8"].astype(int)
    # Equal 8-bit values, except where the official float value lies within the float32 tolerance of
    # a rounding boundary (x.5 levels): there a rounding difference of 1e-6 may flip one level.
    official = (golden["sr"][-1] + np.float32(CELEBA_MEAN).reshape(1, 3, 1, 1)).clip(0, 1) * 255
    near_boundary = np.abs(official - np.floor(official) - 0.5).transpose(0, 2, 3, 1) <= F32_TOLERANCE * 255
    differs = quantised != expected
    assert not (differs & ~near_boundary).any()
    assert np.abs(quantised - expected).max() <= 1
    assert differs.sum() <= near_boundary.sum() < 0.01 * expected.size


def test_official_landmarks_match_golden(golden_run, golden: dict[str, np.ndarray]) -> None:
    output, _, _ = golden_run
    expected = torch.from_numpy(golden["landmarks"])
    assert torch.equal(official_argmax_landmarks(output.heatmaps), expected)
    assert torch.equal(official_argmax_landmarks(golden["heatmap"][-1]), expected)  # numpy input


# --- behaviour ----------------------------------------------------------------------------------


def test_final_step_only_equals_the_last_of_all_steps(
    second_image_alone: DICOutput, golden: dict[str, np.ndarray]
) -> None:
    assert len(second_image_alone.sr) == len(second_image_alone.heatmaps) == 1
    assert _max_error(second_image_alone.sr[0], golden["sr"][-1, 1:2]) <= F32_TOLERANCE
    assert _max_error(second_image_alone.heatmaps[0], golden["heatmap"][-1, 1:2]) <= F32_TOLERANCE


def test_images_in_a_batch_are_independent(golden_run, second_image_alone: DICOutput) -> None:
    _, raw, _ = golden_run
    assert _max_error(second_image_alone.sr[0], raw.sr[-1][1:2]) <= F32_TOLERANCE
    assert _max_error(second_image_alone.heatmaps[0], raw.heatmaps[-1][1:2]) <= F32_TOLERANCE


def test_training_gives_every_parameter_a_gradient(net: DIC, golden: dict[str, np.ndarray]) -> None:
    # While autograd records, the projections take the official concatenating formulation (the
    # inference path overwrites its scratch stacks in place) and the PReLUs stay differentiable.
    network = copy.deepcopy(net).train().requires_grad_(True)
    lr = torch.from_numpy(golden["lr"][:1, :, :8, :8]).contiguous()  # 8x8 LR keeps backward cheap
    output = network(lr, all_steps=True)
    loss = sum(sr.square().mean() for sr in output.sr) + sum(h.square().mean() for h in output.heatmaps)
    loss.backward()
    without_gradient = [
        name
        for name, parameter in network.named_parameters()
        if parameter.grad is None or not torch.isfinite(parameter.grad).all() or not parameter.grad.any()
    ]
    assert not without_gradient
    with torch.inference_mode():
        inference = net(lr, all_steps=True)
    for trained, fast in zip(output.sr + output.heatmaps, inference.sr + inference.heatmaps, strict=True):
        assert _max_error(trained.detach(), fast) <= F32_TOLERANCE


def test_concurrent_calls_from_two_threads(net: DIC, golden: dict[str, np.ndarray]) -> None:
    # Different images in each thread: any recurrent state kept on the module would mix them.
    lr = torch.from_numpy(golden["lr"])

    def final_step(index: int) -> DICOutput:
        with torch.inference_mode():
            return net(lr[index : index + 1], all_steps=False)

    with ThreadPoolExecutor(max_workers=2) as pool:
        outputs = list(pool.map(final_step, [0, 1]))
    for index, output in enumerate(outputs):
        assert _max_error(output.sr[0], golden["sr"][-1, index : index + 1]) <= F32_TOLERANCE
        assert _max_error(output.heatmaps[0], golden["heatmap"][-1, index : index + 1]) <= F32_TOLERANCE


def test_channels_last_matches_golden(net: DIC, golden: dict[str, np.ndarray]) -> None:
    network = copy.deepcopy(net).to(memory_format=torch.channels_last)
    lr = torch.from_numpy(golden["lr"][:1]).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        output = network(lr, all_steps=False)
    assert _max_error(output.sr[0], golden["sr"][-1, :1]) <= F32_TOLERANCE
    assert _max_error(output.heatmaps[0], golden["heatmap"][-1, :1]) <= F32_TOLERANCE


def test_bfloat16_on_cpu_is_close_to_float32(
    net: DIC, model_config: ModelConfig, golden_run, lr01: torch.Tensor
) -> None:
    reference, _, _ = golden_run
    adapter = DICAdapter(copy.deepcopy(net), model_config).to("cpu", torch.bfloat16, channels_last=True)
    output = adapter(lr01[:1])
    assert output.images.dtype == output.heatmaps.dtype == torch.float32
    assert output.step_images == output.step_heatmaps == ()
    image_error = (output.images - reference.images[:1]).abs()
    assert image_error.max() <= BF16_IMAGE_MAX and image_error.mean() <= BF16_IMAGE_MEAN
    assert _max_error(output.heatmaps, reference.heatmaps[:1]) <= BF16_HEATMAP_MAX


def _small_dic() -> DIC:
    """A smaller DIC (same structure, seeded weights) for tests that need no official numbers.

    Four projection groups of the official width: the 1x1 projections then read channel prefixes
    of 96 and 144 of a 192-wide stack, as the full network does.
    """
    torch.manual_seed(0)
    config = DICConfig(num_groups=4, hg_num_features=16, num_fusion_blocks=1)
    return DIC(config).eval().requires_grad_(False)


def test_stale_memory_never_reaches_the_output(monkeypatch: pytest.MonkeyPatch) -> None:
    # The allocator may hand back memory holding NaN bit patterns (freed float32 activations read
    # as bfloat16). The projection stack is zeroed for that reason: BLAS kernels read a prefix's
    # rows a little past its last column. Simulate the worst allocator: every empty tensor is NaN.
    network = _small_dic().to(torch.bfloat16)
    lr = (torch.randn(1, 3, 8, 8) * 0.2).to(torch.bfloat16)
    with torch.inference_mode():
        clean = network(lr, all_steps=False).sr[0]
        real_empty = torch.empty

        def poisoned_empty(*args, **kwargs):
            tensor = real_empty(*args, **kwargs)
            return tensor.fill_(float("nan")) if tensor.is_floating_point() else tensor

        monkeypatch.setattr(torch, "empty", poisoned_empty)
        poisoned = network(lr, all_steps=False).sr[0]
    assert torch.isfinite(clean).all() and torch.equal(poisoned, clean)


def test_traces_as_one_graph_for_torch_compile() -> None:
    # No graph breaks: the in-place PReLU reads its slope as a Python number only outside compile.
    network = _small_dic()
    lr = torch.randn(1, 3, 8, 8) * 0.2
    graphs = []

    def counting_backend(graph_module: torch.fx.GraphModule, example_inputs: list) -> object:
        graphs.append(graph_module)
        return graph_module.forward

    with torch.inference_mode():
        compiled = torch.compile(network, backend=counting_backend)(lr, all_steps=False)
        eager = network(lr, all_steps=False)
    assert len(graphs) == 1
    assert torch.equal(compiled.sr[0], eager.sr[0]) and torch.equal(compiled.heatmaps[0], eager.heatmaps[0])


# --- heatmap decoding ---------------------------------------------------------------------------


def _gaussian_heatmaps(centres: torch.Tensor, sigma: float, size: int = 32) -> torch.Tensor:
    """1 x K x size x size unnormalised Gaussians centred at ``centres`` (K x 2, (x, y))."""
    grid = torch.arange(size, dtype=torch.float64)
    dx = grid.view(1, 1, size) - centres[:, 0].view(-1, 1, 1)
    dy = grid.view(1, size, 1) - centres[:, 1].view(-1, 1, 1)
    return torch.exp(-(dx**2 + dy**2) / (2 * sigma**2)).unsqueeze(0).float()


@pytest.mark.parametrize("sigma", [1.0, 1.5])
def test_subpixel_landmarks_recover_gaussian_centres(sigma: float) -> None:
    generator = torch.Generator().manual_seed(0)
    centres = 2 + 27 * torch.rand(68, 2, generator=generator, dtype=torch.float64)
    decoded = subpixel_landmarks(_gaussian_heatmaps(centres, sigma), stride=1)
    assert decoded.dtype == torch.float32 and decoded.shape == (1, 68, 2)
    assert (decoded[0].double() - centres).abs().max() < 0.1


def test_subpixel_landmarks_use_the_official_coordinate_convention() -> None:
    # A Gaussian centred on heatmap pixel (x=5, y=9) is landmark (20, 36) in the 128-px image.
    heatmaps = _gaussian_heatmaps(torch.tensor([[5.0, 9.0]], dtype=torch.float64), 1.0)
    assert torch.allclose(subpixel_landmarks(heatmaps), torch.tensor([[[20.0, 36.0]]]), atol=1e-4)
    assert torch.equal(official_argmax_landmarks(heatmaps), torch.tensor([[[20, 36]]]))


def test_subpixel_landmarks_stay_within_a_pixel_of_the_official_ones(golden: dict[str, np.ndarray]) -> None:
    heatmaps = golden["heatmap"].reshape(-1, 68, 32, 32)  # every step of both images
    distance = (subpixel_landmarks(heatmaps) - official_argmax_landmarks(heatmaps).float()).abs()
    assert distance.max() <= 4  # one heatmap pixel = 4 SR pixels


def test_official_landmarks_take_the_first_maximum_in_row_major_order() -> None:
    heatmaps = torch.zeros(1, 1, 32, 32)
    heatmaps[0, 0, 7, 20] = heatmaps[0, 0, 7, 3] = heatmaps[0, 0, 2, 30] = 1.0
    assert official_argmax_landmarks(heatmaps).tolist() == [[[30 * 4, 2 * 4]]]
