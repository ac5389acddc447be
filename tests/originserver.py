"""Local stand-ins for the places official checkpoints are downloaded from, for tests.

* :class:`OriginServer`: two HTTP servers on 127.0.0.1. ``github`` plays GitHub's release
  downloads: ``/<owner>/<repo>/releases/download/<tag>/<file>`` answers ``302 Found`` with an
  absolute ``Location`` on the second server, as GitHub redirects to its asset CDN. ``objects``
  serves bytes with ``Content-Length`` and honours ``Range: bytes=N-`` with ``206 Partial
  Content``; it also plays a plain mirror (files added with :meth:`OriginServer.add_file`). Faults
  can be injected per path: a body cut short after some bytes (the connection is closed although
  ``Content-Length`` promised more), or a delay before answering.
* :class:`ClosingServer`: a TCP port that accepts connections and closes them at once without a
  byte, counting them: one accepted connection is one attempt by a client.

Every request is recorded (server, method, path, ``Range`` header, status).
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = ["ClosingServer", "OriginServer", "Recorded"]


@dataclass(frozen=True)
class Recorded:
    """One answered request."""

    server: str
    method: str
    path: str
    range: str | None
    status: int


class OriginServer:
    """The ``github`` and ``objects`` servers (see the module docstring); a context manager."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}  # objects-server path -> bytes
        self.redirects: dict[str, str] = {}  # github-server path -> objects-server path
        self.cut_after: dict[str, int] = {}  # objects path -> body bytes sent before closing
        self.cuts_left: dict[str, int | None] = {}  # how many more answers to cut (None: all)
        self.delay_seconds: float = 0.0
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []

    # -- content and faults ------------------------------------------------------------------------

    def add_file(self, path: str, data: bytes) -> str:
        """Serve ``data`` at ``path`` on the objects server; return its URL."""
        self.files[path] = data
        return f"{self.objects}{path}"

    def add_release_asset(self, owner_repo: str, tag: str, filename: str, data: bytes) -> str:
        """A GitHub release asset; return its ``github.com``-style download URL (on this server)."""
        cdn_path = f"/release-assets/{hashlib.sha256(data).hexdigest()}/{filename}"
        self.files[cdn_path] = data
        path = f"/{owner_repo}/releases/download/{tag}/{filename}"
        self.redirects[path] = cdn_path
        return f"{self.github}{path}"

    def cut(self, path: str, after: int, *, times: int | None = None) -> None:
        """Close the connection after ``after`` body bytes for the next ``times`` answers of ``path``."""
        self.cut_after[path] = after
        self.cuts_left[path] = times

    def heal(self) -> None:
        self.cut_after.clear()
        self.cuts_left.clear()
        self.delay_seconds = 0.0

    def reset(self) -> None:
        self.heal()
        with self._lock:
            self.requests.clear()

    def count(self, server: str | None = None, *, method: str = "GET", contains: str = "") -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (server is None or r.server == server) and r.method == method and contains in r.path
            )

    def recorded(self, server: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.server == server]

    # -- lifecycle -----------------------------------------------------------------------------------

    @property
    def github(self) -> str:
        return _url(self._servers[0])

    @property
    def objects(self) -> str:
        return _url(self._servers[1])

    def __enter__(self) -> OriginServer:
        for role in ("github", "objects"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, role))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, name=f"origin-{role}", daemon=True).start()
            self._servers.append(server)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    # -- protocol ---------------------------------------------------------------------------------------

    def _record(self, entry: Recorded) -> None:
        with self._lock:
            self.requests.append(entry)

    def _take_cut(self, path: str) -> int | None:
        """Bytes to send before cutting this answer, or None for a complete answer."""
        with self._lock:
            if path not in self.cut_after:
                return None
            left = self.cuts_left[path]
            if left is not None:
                if left <= 0:
                    return None
                self.cuts_left[path] = left - 1
            return self.cut_after[path]


def _url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


def _handler(origin: OriginServer, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, *, body: bool) -> None:
            path = urlsplit(self.path).path
            requested_range = self.headers.get("Range")
            if role == "github":
                target = origin.redirects.get(path)
                status = 302 if target is not None else 404
                origin._record(Recorded(role, self.command, path, requested_range, status))
                self.send_response(status)
                if target is not None:
                    self.send_header("Location", f"{origin.objects}{target}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if origin.delay_seconds:
                time.sleep(origin.delay_seconds)
            data = origin.files.get(path)
            if data is None:
                origin._record(Recorded(role, self.command, path, requested_range, 404))
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = 0
            status = 200
            if requested_range and requested_range.startswith("bytes="):
                start = int(requested_range[len("bytes="):].split("-")[0] or 0)
                status = 206
            payload = data[start:]
            origin._record(Recorded(role, self.command, path, requested_range, status))
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if not body:
                return
            cut = origin._take_cut(path) if self.command == "GET" else None
            if cut is None:
                self.wfile.write(payload)
                return
            self.wfile.write(payload[:cut])
            self.wfile.flush()
            self.close_connection = True  # the promised Content-Length never arrives

    return Handler


class ClosingServer:
    """Accepts TCP connections on 127.0.0.1 and closes each at once; counts them."""

    def __init__(self) -> None:
        self.accepted = 0
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="closing-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def __enter__(self) -> ClosingServer:
        self._socket.settimeout(0.1)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            connection.close()
