"""Hub downloads with the real huggingface_hub client against a local hub on 127.0.0.1.

The served repositories hold model folders converted from the golden checkpoints by dicsr's own
converter; registry entries are real entries re-pointed at the local server (the published ones
have no sha256 yet), and their official origin at a closed local port, so a hub failure that
moves on along the source chain never leaves the machine. See tests/hubserver.py for the
protocol details.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from _support import REPO_ROOT, shared_path
from hubserver import HubServer

from dicsr.errors import IntegrityError, InvalidWeightsError, ModelNotFoundError, WeightsUnavailableError
from dicsr.families import GITHUB_RELEASE
from dicsr.weights import (
    DETECTOR_WEIGHTS,
    ModelEntry,
    download_model,
    get_model_entry,
    is_cached,
    load_model,
    resolve_detector_weights,
)

pytestmark = pytest.mark.shared

REPO = "dicsr-test/sparnet"
DIC_REPO = "dicsr-test/dic-celeba"


# --- served content -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sparnet_folder(sparnet_model_dir: Path) -> Path:
    return sparnet_model_dir  # conftest's session-wide conversion of the golden checkpoint


@pytest.fixture(scope="module")
def sparnet_folder_v2(sparnet_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second revision with different bytes (one weight changed)."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("hub") / "sparnet-v2"
    folder.mkdir()
    tensors = load_file(sparnet_folder / "model.safetensors")
    tensors["out_conv.conv2d.bias"] = tensors["out_conv.conv2d.bias"] + 1
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_bytes((sparnet_folder / "config.json").read_bytes())
    return folder


@pytest.fixture(scope="module")
def dic_folder(dic_model_dir: Path) -> Path:
    return dic_model_dir


@pytest.fixture(scope="module")
def hub(sparnet_folder: Path, sparnet_folder_v2: Path):
    with HubServer() as server:
        server.add_folder(REPO, "v1", sparnet_folder)
        server.add_folder(REPO, "v2", sparnet_folder_v2)
        detector = DETECTOR_WEIGHTS["mobile0.25"]
        server.add_static(
            f"/releases/{detector.filename}", shared_path("weights", detector.filename).read_bytes()
        )
        yield server


@pytest.fixture(autouse=True)
def isolated_env(
    monkeypatch: pytest.MonkeyPatch, hub: HubServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Point the hub client at the local server through the environment, read at call time by dicsr;
    an empty dicsr cache and no mirror."""
    for var in (
        "HF_HUB_OFFLINE",
        "DICSR_OFFLINE",
        "HF_HUB_CACHE",
        "HF_HOME",
        "DICSR_DETECTOR_BASE_URL",
        "DICSR_MIRROR",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DICSR_CACHE_DIR", str(tmp_path_factory.mktemp("dicsr-cache")))
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    hub.reset_counts()


def _entry(folder: Path, *, name: str = "sparnet", repo: str = REPO, **changes) -> ModelEntry:
    weights = (folder / "model.safetensors").read_bytes()
    real = get_model_entry(name)
    assert real.origin is not None
    fields = {
        "hub_repo": repo,
        "revision": "v1",
        "sha256": hashlib.sha256(weights).hexdigest(),
        "size": len(weights),
        "origin": dataclasses.replace(real.origin, kind=GITHUB_RELEASE, url=f"{_closed_port_url()}/x.pth"),
        **changes,
    }
    return dataclasses.replace(real, **fields)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


def _assert_clean_message(error: BaseException) -> None:
    text = str(error)
    for noise in ("Traceback", "httpx", "urllib3", "requests.exceptions", "HTTPError("):
        assert noise not in text
    assert error.__cause__ is None and error.__suppress_context__


# --- downloads and the cache ----------------------------------------------------------------------


def test_first_download_then_cache_hit(hub: HubServer, dic_folder: Path, tmp_path: Path) -> None:
    hub.add_folder(DIC_REPO, "v1", dic_folder)
    entry = _entry(dic_folder, name="dic-celeba", repo=DIC_REPO)
    adapter = load_model(entry, cache_dir=tmp_path, progress=False)
    assert hub.count("GET", contains="config.json") == 1
    assert hub.count("GET", contains="/blobs/") == 1  # LFS weights came from the "CDN" origin
    expected = load_model(dic_folder)
    for key, tensor in expected.network.state_dict().items():
        assert torch.equal(adapter.network.state_dict()[key], tensor), key
    assert adapter.config.name == "dic-celeba" and adapter.config.crop == "landmark_square"

    hub.reset_counts()
    folder = download_model(entry, cache_dir=tmp_path, progress=False)
    assert hub.count("GET") == 0  # cache hit: at most a HEAD to resolve the tag
    assert (folder / "model.safetensors").read_bytes() == (dic_folder / "model.safetensors").read_bytes()
    assert is_cached(entry, cache_dir=tmp_path)


def test_pinned_commit_needs_no_request(hub: HubServer, sparnet_folder: Path, tmp_path: Path) -> None:
    entry = _entry(sparnet_folder)
    download_model(entry, cache_dir=tmp_path, progress=False)
    hub.reset_counts()
    pinned = dataclasses.replace(entry, revision=hub.commit(REPO, "v1"))
    folder = download_model(pinned, cache_dir=tmp_path, progress=False)
    assert hub.count() == 0
    assert folder.name == hub.commit(REPO, "v1")


def test_revisions_are_pinned(
    hub: HubServer, sparnet_folder: Path, sparnet_folder_v2: Path, tmp_path: Path
) -> None:
    v1 = download_model(_entry(sparnet_folder), cache_dir=tmp_path, progress=False)
    v2 = download_model(_entry(sparnet_folder_v2, revision="v2"), cache_dir=tmp_path, progress=False)
    assert v1 != v2 and v1.name == hub.commit(REPO, "v1") and v2.name == hub.commit(REPO, "v2")
    assert (v1 / "model.safetensors").read_bytes() == (sparnet_folder / "model.safetensors").read_bytes()
    assert (v2 / "model.safetensors").read_bytes() == (sparnet_folder_v2 / "model.safetensors").read_bytes()
    by_reference = load_model(f"hf-hub:{REPO}@v2", cache_dir=tmp_path, progress=False)
    bias = by_reference.network.state_dict()["out_conv.conv2d.bias"]
    assert torch.equal(bias, load_model(sparnet_folder).network.state_dict()["out_conv.conv2d.bias"] + 1)


# --- offline ----------------------------------------------------------------------------------------


def test_offline_uses_the_cache_and_explains_what_is_missing(
    hub: HubServer, sparnet_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = _entry(sparnet_folder)
    download_model(entry, cache_dir=tmp_path, progress=False)
    monkeypatch.setenv("HF_ENDPOINT", _closed_port_url())  # would fail if anything went out
    hub.reset_counts()
    folder = download_model(entry, cache_dir=tmp_path, offline=True)
    assert (folder / "config.json").is_file() and hub.count() == 0

    with pytest.raises(WeightsUnavailableError) as caught:
        download_model(entry, cache_dir=tmp_path / "empty", offline=True)
    message = str(caught.value)
    assert "offline" in message and "not in the local cache" in message
    assert "dicsr convert SPARNet-V16-S4-epoch20.pth" in message and entry.official_source in message
    _assert_clean_message(caught.value)


def test_hf_hub_offline_environment_in_a_fresh_process(
    hub: HubServer, sparnet_folder: Path, tmp_path: Path
) -> None:
    """HF_HUB_OFFLINE=1 set before huggingface_hub is imported: cached loads work, missing ones explain."""
    entry = _entry(sparnet_folder)
    download_model(entry, cache_dir=tmp_path, progress=False)
    hub.reset_counts()
    script = textwrap.dedent(
        f"""
        import dataclasses, json
        from dicsr.errors import WeightsUnavailableError
        from dicsr.weights import download_model, get_model_entry
        entry = dataclasses.replace(get_model_entry("sparnet"), hub_repo={REPO!r}, revision="v1",
                                    sha256={entry.sha256!r}, size={entry.size})
        result = {{"folder": str(download_model(entry, cache_dir={str(tmp_path)!r}))}}
        try:
            download_model(dataclasses.replace(entry, revision="v2"), cache_dir={str(tmp_path)!r})
        except WeightsUnavailableError as exc:
            result["missing"] = str(exc)
        print(json.dumps(result))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": hub.endpoint, "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert Path(result["folder"]).name == hub.commit(REPO, "v1")
    assert "offline" in result["missing"] and "dicsr convert" in result["missing"]
    assert hub.count() == 0


# --- failures -----------------------------------------------------------------------------------------


def test_sha256_mismatch_deletes_the_download(hub: HubServer, sparnet_folder: Path, tmp_path: Path) -> None:
    bad = _entry(sparnet_folder, sha256="0" * 64)
    with pytest.raises(IntegrityError, match="sha256") as caught:
        download_model(bad, cache_dir=tmp_path, progress=False)
    assert "deleted" in str(caught.value)
    cached = list(tmp_path.rglob("model.safetensors")) + [
        p for p in (tmp_path.rglob("blobs/*")) if p.stat().st_size > 1_000_000
    ]
    assert cached == []  # neither the snapshot link nor the blob survived
    # The next download with the right hash fetches it again and succeeds.
    folder = download_model(_entry(sparnet_folder), cache_dir=tmp_path, progress=False)
    assert (
        hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
        == _entry(sparnet_folder).sha256
    )


def test_non_finite_weights_from_the_hub_are_refused(
    hub: HubServer, sparnet_folder: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A published folder whose bytes match its sha256 can still hold NaN weights: load refuses them."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("hub") / "sparnet-nan"
    folder.mkdir()
    tensors = load_file(sparnet_folder / "model.safetensors")
    tensors["out_conv.conv2d.weight"] = torch.full_like(tensors["out_conv.conv2d.weight"], float("nan"))
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_bytes((sparnet_folder / "config.json").read_bytes())
    hub.add_folder("dicsr-test/sparnet-nan", "v1", folder)
    with pytest.raises(InvalidWeightsError, match="NaN or infinite") as caught:
        load_model("hf-hub:dicsr-test/sparnet-nan@v1", cache_dir=tmp_path, progress=False)
    assert caught.value.tensor == "out_conv.conv2d.weight"


def test_missing_file_revision_and_repository(hub: HubServer, sparnet_folder: Path, tmp_path: Path) -> None:
    entry = _entry(sparnet_folder)
    with pytest.raises(WeightsUnavailableError, match="no such file") as caught:
        download_model(dataclasses.replace(entry, filename="absent.safetensors"), cache_dir=tmp_path)
    _assert_clean_message(caught.value)
    with pytest.raises(WeightsUnavailableError, match="no such revision"):
        download_model(dataclasses.replace(entry, revision="v9"), cache_dir=tmp_path)
    with pytest.raises(ModelNotFoundError, match="no such repository"):
        load_model("hf-hub:dicsr-test/absent", cache_dir=tmp_path)


def test_server_down(sparnet_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub alone retries a refused request five times with 1-8 s back-off (~23 s);
    # dicsr asks once and moves on, so nothing waits.
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    monkeypatch.setenv("HF_ENDPOINT", _closed_port_url())
    with pytest.raises(WeightsUnavailableError) as caught:
        load_model(_entry(sparnet_folder), cache_dir=tmp_path)
    message = str(caught.value)
    assert "could not be reached" in message and "dicsr convert" in message
    assert sleeps == []
    _assert_clean_message(caught.value)


# --- detector weights --------------------------------------------------------------------------------


def test_detector_weights_download_verify_and_cache(hub: HubServer, tmp_path: Path) -> None:
    spec = DETECTOR_WEIGHTS["mobile0.25"]
    base_url = f"{hub.endpoint}/releases"
    path = resolve_detector_weights("mobile0.25", cache_dir=tmp_path, base_url=base_url)
    assert path == tmp_path / "detectors" / spec.filename
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256
    assert hub.count("GET", contains=spec.filename) == 1

    hub.reset_counts()
    assert resolve_detector_weights("retinaface_mobile0.25", cache_dir=tmp_path, offline=True) == path
    assert hub.count() == 0

    # An explicit file wins and is verified; a different file is refused.
    assert resolve_detector_weights("mobile0.25", path, offline=True) == path
    tampered = tmp_path / "tampered.pth"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        resolve_detector_weights("mobile0.25", tampered)


def test_detector_weights_corrupt_download_is_discarded(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = DETECTOR_WEIGHTS["mobile0.25"]
    good = hub.static[f"/releases/{spec.filename}"]
    hub.add_static(f"/corrupt/{spec.filename}", good[:-1] + bytes([good[-1] ^ 0xFF]))  # same size
    monkeypatch.setenv("DICSR_DETECTOR_BASE_URL", f"{hub.endpoint}/corrupt")
    monkeypatch.setenv("DICSR_CACHE_DIR", str(tmp_path))
    with pytest.raises(IntegrityError, match="discarded"):
        resolve_detector_weights("mobile0.25")
    assert list((tmp_path / "detectors").iterdir()) == []


def test_detector_weights_offline_and_server_down(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailableError) as caught:
        resolve_detector_weights("resnet50", cache_dir=tmp_path, offline=True)
    message = str(caught.value)
    assert str(tmp_path / "detectors" / "detection_Resnet50_Final.pth") in message
    assert "DICSR_CACHE_DIR" in message and DETECTOR_WEIGHTS["resnet50"].url in message

    with pytest.raises(WeightsUnavailableError, match="could not download") as caught:
        resolve_detector_weights("mobile0.25", cache_dir=tmp_path, base_url=_closed_port_url())
    assert "Traceback" not in str(caught.value) and caught.value.__cause__ is None
