"""A zoo name's source chain against local stand-ins of its origins: no network.

The chain (dicsr/weights/_origins.py) runs for real: the hub client, requests, filelock, torch's
weights-only reader, the converter and safetensors. Only the places are local: a GitHub-like
server that redirects to a second loopback server serving the bytes (tests/originserver.py), a
mirror, and for Google Drive the two gdown calls (the boundary dicsr does not own). Entries are
the real zoo entries re-pointed at those servers; the served files are the golden (seeded random)
official checkpoints in ../shared/golden, so their fingerprints are re-recorded where needed.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _support import REPO_ROOT, shared_path
from originserver import ClosingServer, OriginServer

from dicsr.errors import IntegrityError, WeightsUnavailableError
from dicsr.families import GITHUB_RELEASE, Fingerprint, Origin
from dicsr.weights import ModelEntry, get_model_entry, load_model, load_model_folder, resolve_detector_weights
from dicsr.weights._cache import RECORD_FILENAME, ModelCache
from dicsr.weights._fingerprint import git_blob_sha1
from dicsr.weights._http import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS
from dicsr.weights._origins import worst_case_connect_seconds

pytestmark = pytest.mark.shared

SPARNET_FILE = "SPARNet-V16-S4-epoch20.pth"
DIC_FILE = "DIC_CelebA.pth"
# dic-arch parity tolerance (tests/test_dic_arch.py): float32 against the official outputs.
F32_TOLERANCE = 1e-5


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sparnet_bytes() -> bytes:
    return shared_path("golden", "SPARNet.pth").read_bytes()


@pytest.fixture(scope="module")
def dic_bytes() -> bytes:
    return shared_path("golden", "DIC_CelebA_ckp.pth").read_bytes()


@pytest.fixture(scope="module")
def servers(sparnet_bytes: bytes, dic_bytes: bytes):
    with OriginServer() as server:
        server.add_release_asset("chaofengc/Face-SPARNet", "v0.1.0", SPARNET_FILE, sparnet_bytes)
        server.add_file(f"/mirror/{DIC_FILE}", dic_bytes)
        server.add_file(f"/mirror/{SPARNET_FILE}", sparnet_bytes)
        yield server


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, servers: OriginServer) -> Path:
    """An empty dicsr cache and hub cache, the hub at a closed port, no mirror, nothing offline."""
    for var in ("HF_HUB_OFFLINE", "DICSR_OFFLINE", "DICSR_MIRROR", "HF_HOME", "DICSR_DETECTOR_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DICSR_CACHE_DIR", str(tmp_path / "dicsr-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_ENDPOINT", _closed_port_url())
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    servers.reset()
    return tmp_path / "dicsr-cache"


@pytest.fixture
def no_drive(monkeypatch: pytest.MonkeyPatch) -> None:
    """Google Drive must not be reached (a test whose mirror delivers)."""
    import gdown

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Google Drive was contacted")

    monkeypatch.setattr(gdown, "download_folder", refuse)
    monkeypatch.setattr(gdown, "download", refuse)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _github_entry(
    servers: OriginServer, data: bytes, *, fingerprint: Fingerprint | None = None
) -> ModelEntry:
    """The real sparnet entry with its release asset on the local GitHub and the served file's
    fingerprint (the golden file is not the official one), unless another is given."""
    url = f"{servers.github}/chaofengc/Face-SPARNet/releases/download/v0.1.0/{SPARNET_FILE}"
    if fingerprint is None:
        fingerprint = Fingerprint(size=len(data), git_blob_sha1=git_blob_sha1(data))
    return dataclasses.replace(
        get_model_entry("sparnet"), origin=Origin(GITHUB_RELEASE, url), official_fingerprint=fingerprint
    )


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return list(left) == list(right) and all(torch.equal(left[k], right[k]) for k in left)


def _left_in(cache: Path) -> list[str]:
    """Files of the dicsr cache, lock files aside."""
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock")


# --- GitHub release: redirect, bytes, conversion, cache --------------------------------------------------


def test_github_release_is_followed_through_its_redirect_and_converted_once(
    servers: OriginServer, sparnet_bytes: bytes, sparnet_model_dir: Path, isolated: Path,
    caplog: pytest.LogCaptureFixture, no_drive: None,
) -> None:
    entry = _github_entry(servers, sparnet_bytes)
    with caplog.at_level(logging.WARNING, logger="dicsr"):
        adapter = load_model(entry, progress=False)
        again = load_model(entry, progress=False)

    assert _same_weights(adapter.network, load_model(sparnet_model_dir).network)  # the converter's output
    assert _same_weights(again.network, adapter.network)
    github, objects = servers.recorded("github"), servers.recorded("objects")
    assert [(r.method, r.status) for r in github] == [("GET", 302)]  # one request, redirected
    assert [(r.method, r.status) for r in objects] == [("GET", 200)]  # the bytes, from the second host
    assert objects[0].path.startswith("/release-assets/") and objects[0].path.endswith(SPARNET_FILE)

    folder = isolated / "models" / "sparnet"
    assert _left_in(isolated) == [f"models/sparnet/{name}" for name in
                                  ("README.md", "config.json", RECORD_FILENAME, "model.safetensors")]
    record = json.loads((folder / RECORD_FILENAME).read_text())
    assert record["source"] == GITHUB_RELEASE and record["official_size"] == len(sparnet_bytes)
    assert record["fingerprint_checked"] == (
        f"size {len(sparnet_bytes):,} B, git blob sha1 {git_blob_sha1(sparnet_bytes)}"
    )
    card = (folder / "README.md").read_text()
    assert "CC BY-NC-SA 4.0" in card and record["official_sha256"] in card
    notices = [r for r in caplog.records if "non-commercial" in r.getMessage()]
    assert len(notices) == 1  # logged once, on the first download

    servers.reset()
    offline = load_model("sparnet", offline=True)  # the zoo name, from the cache only
    assert _same_weights(offline.network, adapter.network) and servers.requests == []


# --- interruptions, errors, wrong bytes ----------------------------------------------------------------


def test_a_transfer_cut_mid_body_resumes_with_a_range_request(
    servers: OriginServer, sparnet_bytes: bytes, sparnet_model_dir: Path,
) -> None:
    entry = _github_entry(servers, sparnet_bytes)
    cdn_path = next(path for path in servers.files if path.startswith("/release-assets/"))
    servers.cut(cdn_path, after=3_000_000, times=1)
    adapter = load_model(entry, progress=False)
    (first, second) = servers.recorded("objects")
    assert (first.range, first.status, second.status) == (None, 200, 206)
    # it asks for the bytes after those it kept (whole chunks received before the cut)
    assert second.range is not None and 0 < int(second.range.removeprefix("bytes=").rstrip("-")) <= 3_000_000
    assert _same_weights(adapter.network, load_model(sparnet_model_dir).network)


def test_a_truncated_body_is_a_typed_error_and_the_next_call_resumes(
    servers: OriginServer, sparnet_bytes: bytes, sparnet_model_dir: Path, isolated: Path,
) -> None:
    entry = _github_entry(servers, sparnet_bytes)
    cdn_path = next(path for path in servers.files if path.startswith("/release-assets/"))
    servers.cut(cdn_path, after=1_000_000)  # every answer stops short of its Content-Length
    with pytest.raises(WeightsUnavailableError) as caught:
        load_model(entry, progress=False)
    message = str(caught.value)
    assert f"of {len(sparnet_bytes):,} bytes" in message and "dicsr convert" in message
    # one try plus two resumes, each after progress: bounded, and no folder in the cache
    ranges = [r.range for r in servers.recorded("objects")]
    starts = [int(r.removeprefix("bytes=").rstrip("-")) for r in ranges[1:] if r is not None]
    assert len(ranges) == 3 and ranges[0] is None and len(starts) == 2 and 0 < starts[0] < starts[1]
    assert not (isolated / "models" / "sparnet").exists()
    (partial,) = (isolated / "downloads").glob("*.part")
    assert starts[1] < partial.stat().st_size < len(sparnet_bytes)
    assert partial.read_bytes() == sparnet_bytes[: partial.stat().st_size]  # a true prefix

    servers.reset()  # the server recovers: the next call asks only for the missing bytes
    kept = partial.stat().st_size
    adapter = load_model(entry, progress=False)
    assert [(r.range, r.status) for r in servers.recorded("objects")] == [(f"bytes={kept}-", 206)]
    assert _same_weights(adapter.network, load_model(sparnet_model_dir).network)
    assert list((isolated / "downloads").iterdir()) == []


def test_a_missing_asset_is_a_reason_not_a_crash(servers: OriginServer, isolated: Path) -> None:
    entry = dataclasses.replace(
        get_model_entry("sparnet-light"),
        origin=Origin(GITHUB_RELEASE, f"{servers.github}/chaofengc/Face-SPARNet/releases/download/v0.1.0/x"),
    )
    with pytest.raises(WeightsUnavailableError) as caught:
        load_model(entry, progress=False)
    lines = str(caught.value).splitlines()
    assert lines[0] == "sparnet-light: no source could deliver the weights. Tried, in order:"
    assert lines[1].startswith("  - Hugging Face Hub dicsr/sparnet-light@v1: the hub could not be reached")
    assert lines[2].startswith("  - GitHub release asset ") and lines[2].endswith("HTTP 404 Not Found from "
                                                                                 f"{servers.github}"
                                                                                 "/chaofengc/Face-SPARNet/"
                                                                                 "releases/download/v0.1.0/x")
    assert "dicsr convert SPARNetLight_Attn3D-epoch20.pth" in lines[3] and "DICSR_MIRROR" in lines[3]
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert _left_in(isolated) == []


def test_wrong_bytes_fail_the_published_fingerprint_and_leave_nothing(
    servers: OriginServer, sparnet_bytes: bytes, isolated: Path,
) -> None:
    # The real registry fingerprint (git blob d915f8a8...) against the golden file's bytes.
    real = get_model_entry("sparnet").official_fingerprint
    entry = _github_entry(servers, sparnet_bytes, fingerprint=real)
    with pytest.raises(IntegrityError) as caught:
        load_model(entry, progress=False)
    message = str(caught.value)
    served = git_blob_sha1(sparnet_bytes)
    assert f"git blob sha1 {served} does not match the published {real.git_blob_sha1}" in message
    assert _left_in(isolated) == []  # neither the download nor a folder


def test_a_malicious_pickle_served_as_a_checkpoint_never_executes(
    servers: OriginServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path, no_drive: None,
) -> None:
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):  # what a booby-trapped checkpoint does when unpickled
            return (os.system, (f"touch {marker}",))

    buffer = io.BytesIO()
    torch.save({"state_dict": {"conv_in.weight": Payload()}}, buffer)  # a zip checkpoint, as official
    servers.add_file(f"/evil/{DIC_FILE}", buffer.getvalue())
    monkeypatch.setenv("DICSR_MIRROR", f"{servers.objects}/evil")
    with pytest.raises(IntegrityError) as caught:
        load_model("dic-celeba", progress=False)
    assert "never executes" in str(caught.value)
    assert not marker.exists()
    assert _left_in(isolated) == []


# --- the mirror, end to end ---------------------------------------------------------------------------


def test_mirror_zoo_name_reproduces_the_golden_outputs(
    servers: OriginServer, monkeypatch: pytest.MonkeyPatch, isolated: Path, no_drive: None,
) -> None:
    monkeypatch.setenv("DICSR_MIRROR", f"{servers.objects}/mirror/")
    adapter = load_model("dic-celeba", progress=False)
    assert servers.count("objects", contains=DIC_FILE) == 1
    with np.load(shared_path("golden", "DIC_CelebA.npz")) as golden:
        lr, sr = torch.from_numpy(golden["lr"]), golden["sr"]
    with torch.inference_mode():
        output = adapter.network(lr, all_steps=True)
    errors = [float((step - torch.from_numpy(sr[i])).abs().max()) for i, step in enumerate(output.sr)]
    assert len(errors) == 4 and max(errors) <= F32_TOLERANCE, errors
    record = ModelCache(isolated).read_record("dic-celeba")
    assert record is not None and record.source == "mirror"
    assert record.fingerprint_checked == "no fingerprint published"
    card = (isolated / "models" / "dic-celeba" / "README.md").read_text()
    assert "MIT (Copyright (c) 2021 Cheng Ma)" in card


# --- Google Drive, at gdown's boundary ----------------------------------------------------------------


class FakeDrive:
    """Stands in for gdown.download_folder / gdown.download, serving a folder listing and files."""

    def __init__(self, files: dict[str, bytes], *, refuse: Exception | None = None) -> None:
        self.files = {f"id-{i}": (path, data) for i, (path, data) in enumerate(files.items())}
        self.refuse = refuse
        self.calls: list[tuple[str, dict[str, object]]] = []

    def download_folder(self, **kwargs: object) -> list[object]:
        from gdown.download_folder import GoogleDriveFileToDownload

        self.calls.append(("download_folder", kwargs))
        return [GoogleDriveFileToDownload(id=key, path=path, local_path=f"/nowhere/{path}")
                for key, (path, _) in self.files.items()]

    def download(self, **kwargs: object) -> str:
        self.calls.append(("download", kwargs))
        if self.refuse is not None:
            raise self.refuse
        _, data = self.files[str(kwargs["id"])]
        Path(str(kwargs["output"])).write_bytes(data)
        return str(kwargs["output"])


def _install(monkeypatch: pytest.MonkeyPatch, drive: FakeDrive) -> None:
    import gdown

    monkeypatch.setattr(gdown, "download_folder", drive.download_folder)
    monkeypatch.setattr(gdown, "download", drive.download)


def test_google_drive_folder_is_listed_then_the_one_file_fetched(
    monkeypatch: pytest.MonkeyPatch, dic_bytes: bytes, dic_model_dir: Path, isolated: Path,
) -> None:
    drive = FakeDrive(
        {"models/DICGAN_CelebA.pth": b"other", f"models/{DIC_FILE}": dic_bytes, "README.txt": b""}
    )
    _install(monkeypatch, drive)
    adapter = load_model("dic-celeba", progress=False)
    assert _same_weights(adapter.network, load_model(dic_model_dir).network)
    (listing, listed), (fetch, fetched) = drive.calls
    assert listing == "download_folder" and listed["id"] == "1Q1T1smMDRMO1NcjkxbZvotOX93YIVp5e"
    assert listed["skip_download"] is True
    assert listed["timeout"] == (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)
    assert fetch == "download" and fetched["id"] == "id-1"  # the file at models/DIC_CelebA.pth
    record = ModelCache(isolated).read_record("dic-celeba")
    assert record is not None and record.source == "google-drive"
    assert not (isolated / "downloads" / DIC_FILE).exists()


def test_google_drive_refusals_are_typed_and_name_the_manual_route(
    monkeypatch: pytest.MonkeyPatch, dic_bytes: bytes, isolated: Path,
) -> None:
    import gdown

    quota = gdown.exceptions.FileURLRetrievalError(
        "Too many users have viewed or downloaded this file recently. Please try accessing the file "
        "again later."
    )
    _install(monkeypatch, FakeDrive({f"models/{DIC_FILE}": dic_bytes}, refuse=quota))
    with pytest.raises(WeightsUnavailableError) as caught:
        load_model("dic-celeba", progress=False)
    message = str(caught.value)
    assert f"Google Drive refused models/{DIC_FILE} (download quota exceeded" in message
    assert f"dicsr convert {DIC_FILE} ./dic-celeba --name dic-celeba" in message
    assert "drive.google.com" in message.splitlines()[-1]

    _install(monkeypatch, FakeDrive({f"checkpoints/{DIC_FILE}": dic_bytes}))  # the layout changed
    with pytest.raises(WeightsUnavailableError) as caught:
        load_model("dic-celeba", progress=False)
    changed = f"has no models/{DIC_FILE} (its layout changed?); it lists checkpoints/{DIC_FILE}"
    assert changed in str(caught.value)
    assert _left_in(isolated) == []


# --- the cache: races, corruption, offline ------------------------------------------------------------


def test_two_processes_racing_leave_one_valid_folder(
    servers: OriginServer, tmp_path: Path, isolated: Path
) -> None:
    servers.delay_seconds = 1.0  # both are waiting on the mirror at once
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import pathlib, time
        while not pathlib.Path({str(go)!r}).exists():
            time.sleep(0.01)
        from dicsr.weights import download_model
        print(download_model("dic-celeba", progress=False))
        """
    )
    env = {**os.environ, "DICSR_MIRROR": f"{servers.objects}/mirror", "PYTHONPATH": str(REPO_ROOT)}
    runs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    go.touch()
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in results]
    folders = {out.strip().splitlines()[-1] for out, _ in results}
    assert folders == {str(isolated / "models" / "dic-celeba")}
    assert servers.count("objects", contains=DIC_FILE) == 1  # the second process waited, then found it
    assert [p.name for p in (isolated / "models").iterdir() if p.suffix != ".lock"] == ["dic-celeba"]
    assert ModelCache(isolated).load("dic-celeba") is not None  # every recorded sha256 matches


def test_a_corrupted_cached_folder_is_detected_on_load(
    servers: OriginServer, monkeypatch: pytest.MonkeyPatch, isolated: Path, no_drive: None,
) -> None:
    monkeypatch.setenv("DICSR_MIRROR", f"{servers.objects}/mirror")
    clean = load_model("dic-celeba", progress=False)
    weights = isolated / "models" / "dic-celeba" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    header = int.from_bytes(data[:8], "little")
    data[8 + header + 4003] ^= 0x40  # one exponent bit inside the tensor data (probe D6)
    weights.write_bytes(bytes(data))

    with pytest.raises(IntegrityError) as caught:
        load_model("dic-celeba", offline=True)
    message = str(caught.value)
    assert f"cached {weights} is corrupt" in message and "dicsr download dic-celeba" in message

    servers.reset()  # online, it is fetched and converted again
    rebuilt = load_model("dic-celeba", progress=False)
    assert servers.count("objects", contains=DIC_FILE) == 1
    assert _same_weights(rebuilt.network, clean.network)

    config = isolated / "models" / "dic-celeba" / "config.json"
    config.write_text(config.read_text().replace('"num_steps": 4', '"num_steps": 400'))
    with pytest.raises(IntegrityError) as caught:
        load_model("dic-celeba", offline=True)
    assert f"cached {config} is corrupt" in str(caught.value)


def test_offline_uses_the_caches_only(servers: OriginServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DICSR_MIRROR", f"{servers.objects}/mirror")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as caught:
        load_model("dic-celeba")
    message = str(caught.value)
    assert "downloads are off" in message and "dicsr download dic-celeba" in message
    assert "dicsr convert DIC_CelebA.pth" in message
    assert servers.requests == []


def test_an_unusable_cache_folder_is_a_typed_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "cache-is-a-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("DICSR_CACHE_DIR", str(not_a_folder))
    with pytest.raises(WeightsUnavailableError) as caught:
        load_model("dic-celeba", progress=False)
    assert f"cannot write the dicsr cache {not_a_folder}" in str(caught.value)
    assert "DICSR_CACHE_DIR" in str(caught.value)


# --- nothing reachable --------------------------------------------------------------------------------


def test_nothing_reachable_fails_fast_and_lists_every_source(
    monkeypatch: pytest.MonkeyPatch, sparnet_bytes: bytes, isolated: Path,
) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)  # a back-off loop would show here
    with ClosingServer() as closing:
        url = closing.url
        monkeypatch.setenv("HF_ENDPOINT", url)
        entry = dataclasses.replace(
            get_model_entry("sparnet"), origin=Origin(GITHUB_RELEASE, f"{url}/{SPARNET_FILE}")
        )
        with pytest.raises(WeightsUnavailableError) as caught:
            load_model(entry, progress=False, mirror=url)
        attempts = closing.accepted
    lines = str(caught.value).splitlines()
    sources = ["Hugging Face Hub dicsr/sparnet@v1", f"mirror {url}/{SPARNET_FILE}",
               f"GitHub release asset {url}/{SPARNET_FILE}"]
    assert len(lines) == 5
    host = url.removeprefix("http://")
    for line, source in zip(lines[1:4], sources, strict=True):
        assert line.startswith(f"  - {source}: ") and f"cannot connect to {host}" in line
    assert lines[4].startswith("To get them by hand:") and "dicsr convert" in lines[4]
    # One connection per source, nothing retried, nothing waited for: with every source silent
    # instead of closing, the wait is bounded by one connect timeout per source.
    assert attempts == 3 and sleeps == []
    assert worst_case_connect_seconds(entry, url) == 3 * CONNECT_TIMEOUT_SECONDS < 10
    assert _left_in(isolated) == []


def test_a_dead_proxy_is_named_for_every_source(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    # Behind a company proxy that is down, every source fails the same way: the reason says so.
    proxy = _closed_port_url()
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(variable, proxy)
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.invalid")
    entry = dataclasses.replace(
        get_model_entry("sparnet"), origin=Origin(GITHUB_RELEASE, f"http://github.invalid/{SPARNET_FILE}")
    )
    with pytest.raises(WeightsUnavailableError) as caught:
        load_model(entry, progress=False, mirror="http://mirror.invalid")
    lines = str(caught.value).splitlines()
    assert len(lines) == 5
    for line, host in zip(lines[1:4], ("hub.invalid", "mirror.invalid", "github.invalid"), strict=True):
        assert f"cannot connect to {host} through the proxy (Connection refused)" in line, line


# --- detector weights and the command line -------------------------------------------------------------


def test_detector_weights_come_from_the_mirror(
    servers: OriginServer, detector_weights: Path, tmp_path: Path
) -> None:
    servers.add_file(f"/mirror/{detector_weights.name}", detector_weights.read_bytes())
    path = resolve_detector_weights("mobile0.25", cache_dir=tmp_path, mirror=f"{servers.objects}/mirror")
    assert path.read_bytes() == detector_weights.read_bytes()
    assert servers.count("objects", contains=detector_weights.name) == 1


def test_cli_prints_every_source_tried_and_what_to_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], dic_bytes: bytes, tmp_path: Path,
) -> None:
    """The chain's error is one error of several lines; the command prints all of them, once."""
    import gdown

    from dicsr.cli import main

    refusal = gdown.exceptions.FileURLRetrievalError("Too many users have viewed or downloaded this file.")
    _install(monkeypatch, FakeDrive({f"models/{DIC_FILE}": dic_bytes}, refuse=refusal))
    mirror = _closed_port_url()
    photo = shared_path("faces", "face_recognition", "examples", "obama-240p.jpg")
    code = main(["enhance", str(photo), "-o", str(tmp_path / "out"), "--model", "dic-celeba",
                 "--mirror", mirror, "--no-progress"])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert (code, captured.out) == (1, "") and "Traceback" not in captured.err
    assert lines[0] == "dicsr: error: dic-celeba: no source could deliver the weights. Tried, in order:"
    assert lines[1].startswith("  - Hugging Face Hub dicsr/dic-celeba@v1: ")
    assert lines[2].startswith(f"  - mirror {mirror}/{DIC_FILE}: cannot connect")
    assert lines[3].startswith("  - Google Drive folder ") and "download quota exceeded" in lines[3]
    assert len(lines) == 5 and lines[4].startswith("To get them by hand:") and "dicsr convert" in lines[4]
    assert not (tmp_path / "out").exists()  # a run that stops before its first photo leaves nothing


def test_cli_download_and_models_say_where_weights_came_from(
    servers: OriginServer, capsys: pytest.CaptureFixture[str], dic_bytes: bytes, isolated: Path,
    no_drive: None,
) -> None:
    from dicsr.cli import main

    mirror = f"{servers.objects}/mirror"
    assert main(["download", "dic-celeba", "--mirror", mirror, "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    folder = isolated / "models" / "dic-celeba"
    record = ModelCache(isolated).read_record("dic-celeba")
    assert record is not None
    assert lines == [
        "dic-celeba:",
        f"  source:      mirror {mirror}/{DIC_FILE}",
        f"  bytes:       {len(dic_bytes):,} bytes ({DIC_FILE}), converted",
        f"  fingerprint: none published for {DIC_FILE}; its sha256 {record.official_sha256} is recorded "
        "in the cache",
        f"  cache:       {folder}",
    ]
    assert load_model_folder(folder).config.name == "dic-celeba"

    assert main(["download", "dic-celeba", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "already cached, nothing downloaded" in out
    assert f"verified: model.safetensors sha256 {record.files['model.safetensors']} matches its record" in out

    assert main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["dic-celeba"]["cache"] == "converted (from mirror)" and rows["dic-celeba"]["cached"]
    assert rows["sparnet"]["cache"] is None and not rows["sparnet"]["cached"]
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("dic-celeba "))
    assert "converted (from mirror)" in row and "MIT (Copyright (c) 2021 Cheng Ma)" in row


def test_enhance_with_a_zoo_name_needs_no_other_step_then_works_offline(
    servers: OriginServer, detector_weights: Path, tmp_path: Path, isolated: Path,
) -> None:
    """The README's main job on a fresh checkout: weights and detector come from the mirror."""
    servers.add_file(f"/mirror/{detector_weights.name}", detector_weights.read_bytes())
    photo = shared_path("faces", "face_recognition", "examples", "obama-240p.jpg")
    env = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "DICSR_OFFLINE")}
    env.update({"DICSR_MIRROR": f"{servers.objects}/mirror", "PYTHONPATH": str(REPO_ROOT),
                "OMP_NUM_THREADS": "2"})
    command = [sys.executable, "-m", "dicsr", "enhance", str(photo), "-o", str(tmp_path / "out"),
               "--model", "dic-celeba", "--no-progress"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert first.returncode == 0, first.stderr
    assert "1 image(s) restored" in first.stdout
    assert (tmp_path / "out" / photo.name).is_file()
    stderr_lines = [line for line in first.stderr.splitlines() if line.strip()]
    assert len(stderr_lines) == len(set(stderr_lines))  # no log line printed twice

    servers.reset()
    (tmp_path / "out" / photo.name).unlink()
    offline = subprocess.run([*command, "--offline"], env=env, capture_output=True, text=True, timeout=600,
                             check=False)
    assert offline.returncode == 0, offline.stderr
    assert (tmp_path / "out" / photo.name).is_file() and servers.requests == []


@pytest.mark.parametrize(("verbosity", "expected"), [([], 0), (["-v"], 0), (["-vv"], 1)])
def test_hub_chatter_shows_only_with_vv_and_never_twice(verbosity: list[str], expected: int) -> None:
    # huggingface_hub is imported lazily, after the command configured logging (as in `dicsr
    # download`); its retry warnings then go through its own handler and the root one.
    script = textwrap.dedent(
        f"""
        import logging
        from dicsr.cli import main
        main({[*verbosity, "models", "--json"]!r})
        from huggingface_hub.utils import _http
        _http.logger.warning("Retrying in 1s [Retry 1/5].")
        logging.getLogger("dicsr.weights").warning("a dicsr warning")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stderr.count("Retrying in 1s") == expected
    assert done.stderr.count("a dicsr warning") == 1
