"""Official checkpoints -> model folders: layouts, detection, strictness, bit-identical reloads, bad files.

Real files throughout: the golden checkpoints in ../shared (official layouts, seeded weights) and
files derived from them in the layouts the official code writes. At most a few DIC forwards
(~2.5 s each on two cores).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from _support import shared_path

from dicsr.errors import (
    ArchitectureMismatchError,
    CheckpointError,
    CorruptCheckpointError,
    DestinationExistsError,
    ModelNotFoundError,
    UnknownArchitectureError,
)
from dicsr.weights import (
    convert_checkpoint,
    convert_official_checkpoint,
    detect_architecture,
    load_model,
    load_model_folder,
    read_official_checkpoint,
)
from dicsr.weights._checkpoint import read_checkpoint

pytestmark = pytest.mark.shared


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dic_checkpoint() -> Path:
    return shared_path("golden", "DIC_CelebA_ckp.pth")


@pytest.fixture(scope="module")
def sparnet_checkpoint() -> Path:
    return shared_path("golden", "SPARNet.pth")


@pytest.fixture(scope="module")
def sparnet_state_dict(sparnet_checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(sparnet_checkpoint, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def dic_state_dict(dic_checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(dic_checkpoint, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def sparnet_folder(sparnet_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_checkpoint(sparnet_checkpoint, tmp_path_factory.mktemp("conv") / "sparnet", name="sparnet")


@pytest.fixture(scope="module")
def dic_folder(dic_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_checkpoint(
        dic_checkpoint, tmp_path_factory.mktemp("conv") / "dic-celeba", name="dic-celeba"
    )


def _assert_same_tensors(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    assert list(expected) == list(actual) or set(expected) == set(actual)
    for key, tensor in expected.items():
        assert actual[key].dtype == tensor.dtype, key
        assert torch.equal(actual[key], tensor), key


# --- golden layouts: read, detect, convert, reload bit-identically ------------------------------


def test_dic_solver_layout_is_unwrapped_and_detected(dic_checkpoint: Path, dic_state_dict: dict) -> None:
    checkpoint = read_checkpoint(dic_checkpoint)
    assert "'state_dict'" in checkpoint.layout
    assert {"optimizer", "epoch", "records"} <= set(checkpoint.ignored)
    _assert_same_tensors(dic_state_dict, checkpoint.state_dict)
    arch, preset, arch_config = detect_architecture(checkpoint.state_dict)
    assert (arch, preset) == ("dic", "dic")
    assert arch_config["num_features"] == 48 and arch_config["num_keypoints"] == 68


def test_sparnet_bare_layout_is_detected(sparnet_state_dict: dict) -> None:
    detected = detect_architecture(read_official_checkpoint(shared_path("golden", "SPARNet.pth")))
    assert (detected.arch, detected.preset) == ("sparnet", "sparnet")
    assert detected.arch_config["res_depth"] == 10 and detected.arch_config["norm"] == "bn"
    assert len(sparnet_state_dict) == 1154  # incl. BatchNorm num_batches_tracked (docs/specs/sparnet.md §4)


def test_converted_dic_reloads_bit_identically(
    dic_checkpoint: Path, dic_folder: Path, dic_state_dict: dict
) -> None:
    assert sorted(p.name for p in dic_folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    reloaded = load_model_folder(dic_folder)
    _assert_same_tensors(dic_state_dict, reloaded.network.state_dict())
    assert reloaded.config.name == "dic-celeba" and reloaded.config.num_landmarks == 68

    # Same outputs as the checkpoint loaded in memory; an 8 px input (the smallest DIC accepts)
    # keeps the two forwards cheap.
    in_memory = convert_official_checkpoint(dic_checkpoint).adapter
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) - 0.45
    with torch.inference_mode():
        assert torch.equal(
            reloaded.network(x, all_steps=False).sr[-1], in_memory.network(x, all_steps=False).sr[-1]
        )

    card = (dic_folder / "README.md").read_text()
    assert "DIC_CelebA_ckp.pth" in card and "'state_dict'" in card
    import hashlib

    assert hashlib.sha256(dic_checkpoint.read_bytes()).hexdigest() in card


def test_converted_sparnet_reloads_bit_identically(
    sparnet_checkpoint: Path, sparnet_folder: Path, sparnet_state_dict: dict
) -> None:
    reloaded = load_model_folder(sparnet_folder)
    _assert_same_tensors(sparnet_state_dict, reloaded.network.state_dict())
    in_memory = convert_official_checkpoint(sparnet_checkpoint).adapter
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(reloaded.network(x), in_memory.network(x))


# --- other official layouts ---------------------------------------------------------------------


def test_dicgan_layout_uses_netg_and_ignores_the_rest(dic_state_dict: dict, tmp_path: Path) -> None:
    path = tmp_path / "DICGAN_CelebA.pth"
    torch.save(
        {
            "step": 8,
            "netG": dic_state_dict,
            "netD": {"w": torch.zeros(3)},
            "optimizer_G": {},
            "optimizer_D": {},
        },
        path,
    )
    checkpoint = read_checkpoint(path)
    assert "'netG'" in checkpoint.layout
    assert set(checkpoint.ignored) == {"step", "netD", "optimizer_G", "optimizer_D"}
    _assert_same_tensors(dic_state_dict, checkpoint.state_dict)
    assert detect_architecture(checkpoint.state_dict).arch == "dic"


def test_module_prefixed_checkpoint_loads(sparnet_state_dict: dict, tmp_path: Path) -> None:
    # DataParallel's prefix: the official DIC loader (strict=False) would silently load nothing.
    path = tmp_path / "dp.pth"
    torch.save({"model": {f"module.{k}": v for k, v in sparnet_state_dict.items()}}, path)
    checkpoint = read_checkpoint(path)
    assert "module." in checkpoint.layout
    _assert_same_tensors(sparnet_state_dict, checkpoint.state_dict)
    adapter = convert_official_checkpoint(path).adapter
    _assert_same_tensors(sparnet_state_dict, adapter.network.state_dict())


def test_spectral_norm_layout_is_folded_like_torch_eval(tmp_path: Path) -> None:
    from dicsr.families.sparnet import SPARNet, SPARNetConfig

    # A tiny SPARNetHD-like layout (InstanceNorm + spectral norm on every conv, docs/specs/sparnet.md §3).
    config = SPARNetConfig(
        min_channels=8,
        max_channels=16,
        in_size=64,
        out_size=64,
        min_feat_size=16,
        res_depth=1,
        norm="in",
        bottleneck_size=8,
    )
    torch.manual_seed(0)
    official = SPARNet(config)
    for module in list(official.modules()):
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.utils.spectral_norm(module)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    official.train()
    with torch.no_grad():
        official(x)  # one power iteration: u, v are no longer their initial values
    official.eval()
    path = tmp_path / "SPARNetHD_tiny_net_H.pth"
    torch.save(official.state_dict(), path)
    raw = read_official_checkpoint(path)
    assert any(k.endswith("conv2d.weight_orig") for k in raw) and any(k.endswith("weight_u") for k in raw)

    detected = detect_architecture(raw)
    assert detected.arch == "sparnet" and detected.preset == "custom"
    assert detected.arch_config["norm"] == "in" and detected.arch_config["max_channels"] == 16

    adapter = convert_official_checkpoint(path).adapter
    folded = adapter.network.state_dict()
    with torch.no_grad():
        for name, module in official.named_modules():
            if isinstance(module, torch.nn.Conv2d):
                # eval-mode spectral norm computes W_orig / sigma from the stored u, v
                assert torch.equal(folded[f"{name}.weight"], module.weight), name
        expected = official(x)
        actual = adapter.network(x)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)


# --- refusing what does not fit ----------------------------------------------------------------


def test_sparnet_weights_refused_as_dic(sparnet_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ArchitectureMismatchError) as caught:
        convert_checkpoint(sparnet_checkpoint, tmp_path / "out", arch="dic")
    error = caught.value
    assert "conv_in.0.weight" in error.missing
    assert "encoder.0.conv2d.weight" in error.unexpected
    assert "looks like sparnet" in str(error)
    assert not (tmp_path / "out").exists()


def test_wrong_preset_lists_mis_shaped_keys(sparnet_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ArchitectureMismatchError) as caught:
        convert_official_checkpoint(sparnet_checkpoint, preset="sparnet-light")
    assert caught.value.unexpected  # res_layers.1-9 do not exist in the Light layout
    assert any("out_block" in key for key, _, _ in caught.value.mismatched)  # 2-D vs 3-D attention


def test_damaged_checkpoint_names_the_bad_keys(sparnet_state_dict: dict, tmp_path: Path) -> None:
    damaged = dict(sparnet_state_dict)
    del damaged["encoder.1.conv1.conv2d.weight"]
    damaged["decoder.0.conv1.conv2d.weight"] = torch.zeros(3, 3)
    damaged["extra.weight"] = torch.zeros(1)
    path = tmp_path / "damaged.pth"
    torch.save(damaged, path)
    with pytest.raises(ArchitectureMismatchError) as caught:
        convert_official_checkpoint(path)
    assert caught.value.missing == ("encoder.1.conv1.conv2d.weight",)
    assert caught.value.unexpected == ("extra.weight",)
    assert caught.value.mismatched == (("decoder.0.conv1.conv2d.weight", (128, 128, 3, 3), (3, 3)),)


def test_zoo_name_with_other_architecture_is_refused(sparnet_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ArchitectureMismatchError):
        convert_checkpoint(sparnet_checkpoint, tmp_path / "out", name="dic-celeba")


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"backbone.layer1.weight": torch.zeros(4, 3)}, path)
    with pytest.raises(UnknownArchitectureError, match="backbone"):
        convert_official_checkpoint(path)


def test_config_and_weights_mismatch_is_refused(sparnet_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((sparnet_folder / "model.safetensors").read_bytes())
    config = (sparnet_folder / "config.json").read_text().replace('"res_depth": 10', '"res_depth": 1')
    (folder / "config.json").write_text(config)
    with pytest.raises(ArchitectureMismatchError, match="does not fit"):
        load_model_folder(folder)


def test_existing_destination_needs_overwrite(sparnet_checkpoint: Path, sparnet_folder: Path) -> None:
    with pytest.raises(DestinationExistsError, match="overwrite"):
        convert_checkpoint(sparnet_checkpoint, sparnet_folder)


# --- corrupt and hostile files --------------------------------------------------------------------


def _no_torch_traceback(error: BaseException) -> None:
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    assert "Traceback" not in str(error)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda good: b"", id="zero-bytes"),
        pytest.param(lambda good: good[: len(good) // 2], id="truncated"),
        pytest.param(lambda good: os.urandom(4096), id="random-bytes"),
        pytest.param(lambda good: b"name,value\n1,2\n", id="text"),
        pytest.param(lambda good: pickle.dumps({"a": 1}), id="plain-pickle"),
    ],
)
def test_unreadable_checkpoints(make, sparnet_checkpoint: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.pth"
    path.write_bytes(make(sparnet_checkpoint.read_bytes()[:200_000]))
    with pytest.raises(CorruptCheckpointError) as caught:
        read_official_checkpoint(path)
    assert str(path) in str(caught.value)
    _no_torch_traceback(caught.value)


class _Exploit:
    """Pickles into a call of os.system: what a hostile .pth would carry."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    sentinel = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv_in.0.weight": torch.zeros(1)}, "payload": _Exploit(sentinel)}, path)
    for attempt in (
        lambda: read_official_checkpoint(path),
        lambda: convert_checkpoint(path, tmp_path / "out"),
        lambda: load_model(path),
    ):
        with pytest.raises(CorruptCheckpointError, match="never executes") as caught:
            attempt()
        assert "system" in str(caught.value)
        _no_torch_traceback(caught.value)
    assert not sentinel.exists()


def test_missing_checkpoint_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        read_official_checkpoint(tmp_path / "absent.pth")


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda good: b"", id="zero-bytes"),
        pytest.param(lambda good: good[: len(good) - 1000], id="truncated"),
        pytest.param(lambda good: (10**9).to_bytes(8, "little") + good[8:], id="garbage-header"),
    ],
)
def test_corrupt_safetensors(corrupt, sparnet_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_bytes((sparnet_folder / "config.json").read_bytes())
    (folder / "model.safetensors").write_bytes(corrupt((sparnet_folder / "model.safetensors").read_bytes()))
    with pytest.raises(CorruptCheckpointError, match=r"model\.safetensors") as caught:
        load_model_folder(folder)
    _no_torch_traceback(caught.value)


def test_folder_without_config(sparnet_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "weights-only"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((sparnet_folder / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"config\.json"):
        load_model_folder(folder)
    with pytest.raises(ModelNotFoundError):
        load_model_folder(tmp_path / "nowhere")


# --- load_model on local references -----------------------------------------------------------------


def test_load_model_accepts_local_references(sparnet_checkpoint: Path, sparnet_folder: Path) -> None:
    by_folder = load_model(sparnet_folder)
    by_file = load_model(sparnet_folder / "model.safetensors")
    with pytest.warns(UserWarning, match="dicsr convert"):
        by_pth = load_model(sparnet_checkpoint)
    expected = by_folder.network.state_dict()
    for adapter in (by_file, by_pth):
        _assert_same_tensors(expected, adapter.network.state_dict())


def test_load_model_unknown_reference_suggests_names(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="sparnet-light"):
        load_model("sparnet-lite")


def test_converted_config_is_the_published_one(sparnet_folder: Path, dic_folder: Path) -> None:
    from _support import REPO_ROOT

    for name, folder in (("sparnet", sparnet_folder), ("dic-celeba", dic_folder)):
        published = REPO_ROOT / "zoo" / name / "config.json"
        assert (folder / "config.json").read_text() == published.read_text(), name
