"""Engines (dicsr.engines): ONNX export run by ONNX Runtime, and torch.compile, against the golden outputs.

The golden fixtures are the official code's outputs on seeded random weights (../shared/golden).
Every engine must reproduce them within 1e-4 (float32), at batch 1 and at batch 16 for the ONNX
graphs, and keep the adapter contract ([0, 1] faces in, NetworkOutput out).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _support import shared_path

from dicsr.engines import ENGINES, export_onnx, onnxruntime_adapter, with_engine
from dicsr.errors import InvalidInputError, UnsupportedDtypeError
from dicsr.families import NetworkAdapter, NetworkOutput

onnx = pytest.importorskip("onnx", reason="the onnx engine tests need the onnx package (test extra)")
ort = pytest.importorskip("onnxruntime", reason="the onnx engine tests need onnxruntime (test extra)")

ENGINE_TOLERANCE = 1e-4
pytestmark = pytest.mark.shared


def _golden(name: str) -> dict[str, np.ndarray]:
    with np.load(shared_path("golden", f"{name}.npz")) as arrays:
        return {key: arrays[key] for key in arrays.files}


def _tiled(array: np.ndarray, batch: int) -> torch.Tensor:
    reps = -(-batch // array.shape[0])
    return torch.from_numpy(np.concatenate([array] * reps)[:batch]).float()


@pytest.fixture(scope="module")
def dic_adapter() -> NetworkAdapter:
    from dicsr.weights import convert_official_checkpoint

    return convert_official_checkpoint(shared_path("golden", "DIC_CelebA_ckp.pth")).adapter


@pytest.fixture(scope="module")
def sparnet_adapter() -> NetworkAdapter:
    from dicsr.weights import convert_official_checkpoint

    return convert_official_checkpoint(shared_path("golden", "SPARNet.pth")).adapter


@pytest.fixture(scope="module")
def dic_onnx(dic_adapter, tmp_path_factory) -> NetworkAdapter:
    path = export_onnx(dic_adapter, tmp_path_factory.mktemp("onnx") / "dic.onnx", dynamic_batch=True)
    return onnxruntime_adapter(dic_adapter, path)


@pytest.fixture(scope="module")
def sparnet_onnx_path(sparnet_adapter, tmp_path_factory):
    return export_onnx(sparnet_adapter, tmp_path_factory.mktemp("onnx") / "sparnet.onnx", dynamic_batch=True)


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 16])
def test_dic_onnx_reproduces_every_golden_step(dic_onnx, batch):
    golden = _golden("DIC_CelebA")
    with torch.inference_mode():
        out = dic_onnx.network(_tiled(golden["lr"], batch), all_steps=True)
    assert len(out.sr) == len(out.heatmaps) == 4
    for step in range(4):
        expected_sr = _tiled(golden["sr"][step], batch)
        expected_heatmaps = _tiled(golden["heatmap"][step], batch)
        assert (out.sr[step] - expected_sr).abs().max() <= ENGINE_TOLERANCE, step
        assert (out.heatmaps[step] - expected_heatmaps).abs().max() <= ENGINE_TOLERANCE, step


@pytest.mark.parametrize("batch", [1, 16])
def test_sparnet_onnx_reproduces_golden_output(sparnet_adapter, sparnet_onnx_path, batch):
    golden = _golden("SPARNet")
    engine = onnxruntime_adapter(sparnet_adapter, sparnet_onnx_path)
    with torch.inference_mode():
        output = engine.network(_tiled(golden["input"], batch))
    assert output.shape == (batch, 3, 128, 128)
    assert (output - _tiled(golden["output"], batch)).abs().max() <= ENGINE_TOLERANCE


def test_export_leaves_the_callers_network_in_eval_mode(sparnet_adapter, sparnet_onnx_path):
    # The TorchScript exporter restores the exported module's mode recursively; exporting a wrapper
    # in training mode once switched SPARNet's BatchNorm to batch statistics
    # (benchmarks/repro_onnx_train_mode.py).
    assert not any(module.training for module in sparnet_adapter.network.modules())
    golden = _golden("SPARNet")
    with torch.inference_mode():
        output = sparnet_adapter.network(_tiled(golden["input"], 2))
    assert (output - torch.from_numpy(golden["output"])).abs().max() <= 1e-5


def test_exported_file_states_its_opset_and_dynamic_batch(sparnet_onnx_path):
    model = onnx.load(str(sparnet_onnx_path))
    assert [entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")] == [17]
    batch_axis = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_axis.dim_param == "batch"
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    assert metadata["dicsr.input_shape"] == "[3, 128, 128]"
    assert '"arch": "sparnet"' in metadata["dicsr.model_config"]


def test_onnxruntime_adapter_keeps_the_adapter_contract(sparnet_adapter, sparnet_onnx_path):
    engine = onnxruntime_adapter(sparnet_adapter, sparnet_onnx_path)
    side = sparnet_adapter.lr_size
    faces = torch.rand(3, 3, side, side, generator=torch.Generator().manual_seed(0))
    expected = sparnet_adapter(faces, all_steps=True)
    result = engine(faces, all_steps=True)
    assert isinstance(result, NetworkOutput)
    assert result.images.dtype == torch.float32 and result.images.shape == expected.images.shape
    assert (result.images - expected.images).abs().max() <= ENGINE_TOLERANCE
    assert len(result.step_images) == 1
    assert engine.network is not sparnet_adapter.network  # the caller's adapter is untouched


@pytest.mark.slow
def test_dic_onnxruntime_adapter_returns_landmark_heatmaps(dic_adapter, dic_onnx):
    faces = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    expected = dic_adapter(faces)
    result = dic_onnx(faces)
    assert result.heatmaps is not None and expected.heatmaps is not None
    assert (result.images - expected.images).abs().max() <= ENGINE_TOLERANCE
    assert (result.heatmaps - expected.heatmaps).abs().max() <= ENGINE_TOLERANCE
    assert result.step_images == ()


def test_onnxruntime_engine_refuses_bfloat16(sparnet_adapter, sparnet_onnx_path):
    engine = onnxruntime_adapter(sparnet_adapter, sparnet_onnx_path)
    with pytest.raises(UnsupportedDtypeError, match="onnxruntime engine"):
        engine.to(dtype="bfloat16")


def test_onnxruntime_engine_refuses_a_bfloat16_model(sparnet_adapter, sparnet_onnx_path):
    import copy

    bf16 = copy.deepcopy(sparnet_adapter).to(dtype="bfloat16")
    with pytest.raises(UnsupportedDtypeError, match="float32 graph on the CPU"):
        onnxruntime_adapter(bf16, sparnet_onnx_path)


def test_unknown_engine_is_a_typed_error(sparnet_adapter):
    with pytest.raises(InvalidInputError, match="unknown engine 'tensorrt'"):
        with_engine(sparnet_adapter, "tensorrt")
    assert with_engine(sparnet_adapter, "torch") is sparnet_adapter
    assert ENGINES == ("torch", "compile", "onnxruntime")


def test_export_refuses_an_old_opset(sparnet_adapter, tmp_path):
    with pytest.raises(InvalidInputError, match="opset 11"):
        export_onnx(sparnet_adapter, tmp_path / "old.onnx", opset=11)
    assert not (tmp_path / "old.onnx").exists()


@pytest.mark.slow
def test_compiled_sparnet_reproduces_golden_output(sparnet_adapter):
    golden = _golden("SPARNet")
    engine = with_engine(sparnet_adapter, "compile")
    with torch.inference_mode():
        output = engine.network(_tiled(golden["input"], 2))
    assert (output - torch.from_numpy(golden["output"])).abs().max() <= ENGINE_TOLERANCE
    faces = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    assert (engine(faces).images - sparnet_adapter(faces).images).abs().max() <= ENGINE_TOLERANCE


@pytest.mark.slow
def test_compiled_dic_reproduces_golden_final_step(dic_adapter):
    golden = _golden("DIC_CelebA")
    engine = with_engine(dic_adapter, "compile")
    with torch.inference_mode():
        out = engine.network(torch.from_numpy(golden["lr"]), all_steps=False)
    assert (out.sr[-1] - torch.from_numpy(golden["sr"][-1])).abs().max() <= ENGINE_TOLERANCE
    assert (out.heatmaps[-1] - torch.from_numpy(golden["heatmap"][-1])).abs().max() <= ENGINE_TOLERANCE


# --- wiring: FaceSuperResolver.from_pretrained(engine=...), dicsr enhance --backend, dicsr export -----


@pytest.fixture(scope="module")
def tiny_face() -> np.ndarray:
    """A real 16x16 aligned face (a GFPGAN crop shrunk to the networks' input), 8-bit."""
    from PIL import Image

    face = Image.open(shared_path("faces", "GFPGAN", "inputs", "cropped_faces", "Adele_crop.png"))
    return np.asarray(face.convert("RGB").resize((16, 16), Image.Resampling.BICUBIC))


def test_from_pretrained_refuses_an_unknown_engine_before_loading_anything(tmp_path):
    from dicsr import FaceSuperResolver

    # the model does not exist either: the engine is checked first
    with pytest.raises(InvalidInputError, match="unknown engine 'tensorrt'; choose one of torch, compile"):
        FaceSuperResolver.from_pretrained(tmp_path / "no-such-model", engine="tensorrt")


def test_resolver_runs_its_network_in_onnxruntime(sparnet_model_dir, tiny_face):
    from dicsr import FaceSuperResolver
    from dicsr.engines import OnnxRuntimeNetwork

    resolver = FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cpu", engine="onnxruntime")
    assert isinstance(resolver.adapter.network, OnnxRuntimeNetwork)
    eager = FaceSuperResolver.from_pretrained(sparnet_model_dir, device="cpu")
    assert not isinstance(eager.adapter.network, OnnxRuntimeNetwork)
    face = tiny_face.astype(np.float32) / 255  # float in, float faces out: no 8-bit rounding
    restored = resolver.enhance(face, aligned=True, paste_back=False).faces[0]
    expected = eager.enhance(face, aligned=True, paste_back=False).faces[0]
    assert np.abs(restored.image - expected.image).max() <= ENGINE_TOLERANCE
    # the engine runs float32 on the CPU only: moving the resolver elsewhere is a typed error
    with pytest.raises(UnsupportedDtypeError, match="onnxruntime engine"):
        resolver.to(dtype="bfloat16")


def test_cli_enhance_backend(sparnet_model_dir, tiny_face, tmp_path, capsys):
    from PIL import Image

    from dicsr.cli import main

    source = tmp_path / "face.png"
    Image.fromarray(tiny_face).save(source)
    common = ["enhance", str(source), "-m", str(sparnet_model_dir), "--aligned", "--device", "cpu",
              "--no-progress"]
    assert main([*common, "-o", str(tmp_path / "torch")]) == 0
    assert main([*common, "-o", str(tmp_path / "ort"), "--backend", "onnxruntime"]) == 0
    eager, ort_run = (np.asarray(Image.open(tmp_path / r / "face.png")).astype(int) for r in ("torch", "ort"))
    assert eager.shape == ort_run.shape == (128, 128, 3)
    assert np.abs(eager - ort_run).max() <= 1  # float32 parity ≤ 1e-4, then 8-bit rounding
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main([*common, "-o", str(tmp_path / "bad"), "--backend", "tensorrt"])
    assert stopped.value.code == 2
    assert "invalid choice: 'tensorrt'" in capsys.readouterr().err


def test_cli_export_writes_a_loadable_onnx_file(sparnet_model_dir, tmp_path, capsys):
    from dicsr.cli import main

    target = tmp_path / "models" / "sparnet.onnx"  # its folder is created
    assert main(["export", str(sparnet_model_dir), "--format", "onnx", "-o", str(target)]) == 0
    assert "(ONNX opset 17, dynamic batch" in capsys.readouterr().out
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    golden = _golden("SPARNet")
    output = session.run(None, {"input": golden["input"]})[0]
    assert np.abs(output - golden["output"]).max() <= ENGINE_TOLERANCE
    # A second export to the same file is refused with a typed error (exit 1), not overwritten.
    before = target.stat().st_mtime_ns
    assert main(["export", str(sparnet_model_dir), "-o", str(target)]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert target.stat().st_mtime_ns == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["sparnet.onnx"]  # no temporary left


def test_cli_export_takes_an_official_checkpoint_with_a_static_batch(tmp_path, capsys):
    from dicsr.cli import main

    target = tmp_path / "sparnet-b1.onnx"
    assert main(["export", str(shared_path("golden", "SPARNet.pth")), "-o", str(target), "--static-batch",
                 "--opset", "18"]) == 0
    assert "(ONNX opset 18, batch 1" in capsys.readouterr().out
    model = onnx.load(str(target))
    assert model.opset_import[0].version == 18
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


@pytest.mark.parametrize(("arguments", "message"), [
    (["--opset", "11"], "--opset 11 cannot be exported"),
    (["--opset", "99"], "--opset 99 cannot be exported"),
])
def test_cli_export_refuses_bad_options_before_loading_the_model(tmp_path, capsys, arguments, message):
    from dicsr.cli import main

    # the model does not exist: the options are refused first, by name
    assert main(["export", str(tmp_path / "no-such-model"), "-o", str(tmp_path / "m.onnx"), *arguments]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export_refuses_a_folder_as_output(sparnet_model_dir, tmp_path, capsys):
    from dicsr.cli import main

    assert main(["export", str(sparnet_model_dir), "-o", str(tmp_path)]) == 1
    assert "is a folder; name the file to write" in capsys.readouterr().err
