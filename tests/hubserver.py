"""A local stand-in for the Hugging Face Hub's file-resolution protocol, for tests.

It speaks what ``huggingface_hub.hf_hub_download`` (2.4, httpx2) actually sends, read from
``file_download.py`` / ``utils/_http.py``:

* ``HEAD {endpoint}/{org}/{repo}/resolve/{revision}/{filename}`` with redirects *not* followed
  off-origin. A regular file answers 200 with ``X-Repo-Commit``, ``ETag`` (git blob sha1) and
  ``Content-Length``. An LFS file (``*.safetensors``) answers 302 with ``Location`` on a second
  origin (the "CDN": another port, so the client stops there and reads the metadata from the
  redirect itself), ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``; the ``Location`` must be
  absolute because the client stores it verbatim as the download URL.
* ``GET`` of the same URL (regular files) or of the CDN URL (LFS blobs), honouring
  ``Range: bytes=N-`` for resumed downloads.
* Errors are 404s with ``X-Error-Code``: ``RepoNotFound`` (not "RepositoryNotFound"),
  ``RevisionNotFound``, and ``EntryNotFound`` with ``X-Repo-Commit`` so the client can cache the
  absence.
* No ``X-Xet-Hash`` header is ever sent, so the client never switches to Xet storage (hf_xet is
  installed but only used when the server advertises it).

Revisions map to fake 40-hex commits; a commit is accepted as a revision too. Every request is
recorded so tests can assert that a cache hit made no GET.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["HubServer", "RecordedRequest"]

LFS_SUFFIXES = (".safetensors", ".pth", ".bin")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server answered: ``method``, URL ``path``, and which ``server`` (hub/cdn/static)."""

    method: str
    path: str
    server: str


def fake_commit(repo: str, revision: str) -> str:
    """Deterministic 40-hex commit id standing for ``repo@revision``."""
    return hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()


def git_blob_sha1(data: bytes) -> str:
    """The id git (and the hub's ETag) gives a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubServer:
    """Threaded HTTP servers on 127.0.0.1 (hub + CDN origins) serving in-memory repositories.

    Use as a context manager; add files with :meth:`add_file` / :meth:`add_folder` and plain files
    (e.g. release assets) with :meth:`add_static`.
    """

    def __init__(self) -> None:
        self.files: dict[tuple[str, str, str], bytes] = {}
        self.static: dict[str, bytes] = {}
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []

    # -- content -------------------------------------------------------------------------------

    def add_file(self, repo: str, revision: str, filename: str, data: bytes) -> None:
        self.files[(repo, revision, filename)] = data

    def add_folder(self, repo: str, revision: str, folder: Path) -> None:
        for path in sorted(folder.iterdir()):
            if path.is_file():
                self.add_file(repo, revision, path.name, path.read_bytes())

    def add_static(self, path: str, data: bytes) -> None:
        """Serve ``data`` at ``{endpoint}{path}`` with plain GET (no hub headers)."""
        self.static[path] = data

    def commit(self, repo: str, revision: str) -> str:
        return fake_commit(repo, revision)

    # -- introspection --------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return self._url(0)

    @property
    def cdn(self) -> str:
        return self._url(1)

    def count(self, method: str | None = None, *, contains: str = "") -> int:
        """Number of recorded requests with that method whose path contains ``contains``."""
        with self._lock:
            return sum(
                1 for r in self.requests if (method is None or r.method == method) and contains in r.path
            )

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> HubServer:
        for role in ("hub", "cdn"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self, role))
            server.daemon_threads = True
            thread = threading.Thread(target=server.serve_forever, name=f"hubserver-{role}", daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _url(self, index: int) -> str:
        host, port = self._servers[index].server_address[:2]
        return f"http://{host}:{port}"

    # -- protocol --------------------------------------------------------------------------------

    def _record(self, method: str, path: str, server: str) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, server))

    def _revisions(self, repo: str) -> dict[str, str]:
        """revision name or commit -> revision name, for one repository."""
        names = {rev for (r, rev, _) in self.files if r == repo}
        return {**{name: name for name in names}, **{fake_commit(repo, name): name for name in names}}

    def resolve(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for ``/{org}/{repo}/resolve/{revision}/{filename}``."""
        parts = path.split("/")
        if len(parts) < 6 or parts[3] != "resolve":
            return _error(404, "RepoNotFound", f"no route {path}")
        repo, revision, filename = f"{parts[1]}/{parts[2]}", unquote(parts[4]), unquote("/".join(parts[5:]))
        revisions = self._revisions(repo)
        if not revisions:
            return _error(404, "RepoNotFound", f"Repository Not Found for url: {path}.")
        if revision not in revisions:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        name = revisions[revision]
        commit = fake_commit(repo, name)
        data = self.files.get((repo, name, filename))
        if data is None:
            status, headers, body = _error(404, "EntryNotFound", f"{filename} does not exist at {name}")
            headers["X-Repo-Commit"] = commit
            return status, headers, body
        headers = {"X-Repo-Commit": commit, "ETag": f'"{git_blob_sha1(data)}"'}
        if filename.endswith(LFS_SUFFIXES):
            sha256 = hashlib.sha256(data).hexdigest()
            headers.update(
                {
                    "Location": f"{self.cdn}/blobs/{sha256}",
                    "X-Linked-Etag": f'"{sha256}"',
                    "X-Linked-Size": str(len(data)),
                }
            )
            return 302, headers, b""
        return 200, headers, data

    def blob(self, sha256: str) -> bytes | None:
        return next((d for d in self.files.values() if hashlib.sha256(d).hexdigest() == sha256), None)


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": message}).encode()
    return (
        status,
        {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"},
        body,
    )


def _make_handler(hub: HubServer, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the hub client's pooled connections expect

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def log_message(self, format: str, *args: object) -> None:  # silence stderr logging
            pass

        def _answer(self, *, send_body: bool) -> None:
            path = urlsplit(self.path).path
            hub._record(self.command, path, "static" if path in hub.static else role)
            if path in hub.static:
                status, headers, body = 200, {}, hub.static[path]
            elif role == "cdn" and path.startswith("/blobs/"):
                data = hub.blob(path.rsplit("/", 1)[-1])
                status, headers, body = (
                    (200, {}, data) if data is not None else _error(404, "EntryNotFound", path)
                )
            else:
                status, headers, body = hub.resolve(path)
            status, headers, body = _apply_range(self.headers.get("Range"), status, headers, body)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body and body:
                self.wfile.write(body)

    return Handler


def _apply_range(
    header: str | None, status: int, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """Honour ``Range: bytes=N-`` (what a resumed download sends) on 200 answers."""
    if status != 200 or not header or not header.startswith("bytes="):
        return status, headers, body
    start_text, _, end_text = header[len("bytes=") :].partition("-")
    start = int(start_text or 0)
    end = int(end_text) if end_text else len(body) - 1
    headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(body)}"}
    return 206, headers, body[start : end + 1]
