"""One plain HTTP(S) file download: redirects, Range resume, short timeouts, optional progress bar.

Built on ``requests`` (a dependency of ``gdown``, which dicsr needs for Google Drive anyway) and
``tqdm``. The policy is "one attempt per source, fail fast":

* a connection that cannot be opened within :data:`CONNECT_TIMEOUT_SECONDS` fails at once - no
  retry loop, no back-off (the caller moves on to its next source);
* a transfer that breaks *after* bytes arrived resumes with ``Range: bytes=N-`` at most
  :data:`MAX_RESUMES` times, each only if the previous try made progress;
* bytes go to ``<dest>.<url-hash>.part`` and are renamed to ``dest`` only when complete, so an
  interrupted download resumes on the next call (from the same URL only: a partial file is never
  completed with bytes from another server).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dicsr._version import __version__

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "MAX_RESUMES",
    "READ_TIMEOUT_SECONDS",
    "DownloadFailed",
    "DownloadedFile",
    "download_file",
    "partial_path",
    "request_failure_reason",
    "unreachable_reason",
]

logger = logging.getLogger(__name__)

#: Seconds to open a TCP(+TLS) connection. A reachable server answers in well under a second; a lost
#: SYN is sent again after 1 s and next after 3 s (Linux's initial retransmission timeout, doubling),
#: so 2 s gets the one retry 3 s would. Three silent sources (hub, mirror, origin) then cost 6 s,
#: which leaves the command's own start-up (importing torch: seconds on a busy machine) room
#: within the 10 s a user waits for the error.
CONNECT_TIMEOUT_SECONDS = 2.0
#: Seconds without a byte before a transfer counts as stalled.
READ_TIMEOUT_SECONDS = 10.0
#: Resumes after a transfer broke mid-body (each needs progress since the last one).
MAX_RESUMES = 2

# Small enough that a transfer cut short keeps nearly all it received (a partial chunk is lost).
_CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadFailed(Exception):
    """A download did not complete; ``str(exc)`` is a one-line reason for the user."""


@dataclass(frozen=True)
class DownloadedFile:
    """A completed download.

    Attributes:
        path: the complete file.
        size: its size in bytes.
        url: the URL the bytes came from after redirects.
        resumed_from: bytes already on disk from an earlier interrupted call (0 if none).
    """

    path: Path
    size: int
    url: str
    resumed_from: int


def partial_path(dest: Path, url: str) -> Path:
    """Where the incomplete bytes of ``url`` bound for ``dest`` are kept between calls."""
    tag = hashlib.sha1(url.encode("utf-8")).hexdigest()[:12]
    return dest.with_name(f"{dest.name}.{tag}.part")


def download_file(url: str, dest: Path, *, progress: bool = True) -> DownloadedFile:
    """GET ``url`` into ``dest`` (following redirects), resuming an earlier partial download.

    Raises:
        DownloadFailed: connection refused or timed out, HTTP error status, or the transfer broke
            more often than :data:`MAX_RESUMES` allows. The partial file is kept for the next call.
    """
    import requests

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(dest, url)
    resumed_from = part.stat().st_size if part.exists() else 0
    if resumed_from:
        logger.info("resuming %s from byte %s", url, f"{resumed_from:,}")
    with requests.Session() as session:
        session.headers["User-Agent"] = f"dicsr/{__version__}"
        final_url = url
        for attempt in range(MAX_RESUMES + 1):
            offset = part.stat().st_size if part.exists() else 0
            try:
                final_url, total = _transfer(session, url, part, offset, label=dest.name, progress=progress)
            except _Interrupted as broken:
                if broken.progressed and attempt < MAX_RESUMES:
                    logger.info("%s: %s; resuming", url, broken)
                    continue
                raise DownloadFailed(str(broken)) from None
            except requests.RequestException as exc:
                raise DownloadFailed(request_failure_reason(url, exc)) from None
            size = part.stat().st_size
            if total is not None and size != total:  # pragma: no cover - _transfer checks it
                raise DownloadFailed(f"got {size:,} of {total:,} bytes from {url}")
            os.replace(part, dest)
            return DownloadedFile(path=dest, size=size, url=final_url, resumed_from=resumed_from)
    raise AssertionError("unreachable")  # pragma: no cover


def unreachable_reason(url: str) -> str | None:
    """One HEAD of ``url`` without redirects: ``None`` if the server answered (any status below
    500 except 429), else a one-line reason (cannot connect, timed out, server error).

    Lets a caller whose client would retry with back-off (huggingface_hub) skip an unreachable
    server after one short attempt.
    """
    import requests

    try:  # a server that accepted the connection answers a HEAD about as fast
        response = requests.head(
            url, timeout=(CONNECT_TIMEOUT_SECONDS, CONNECT_TIMEOUT_SECONDS), allow_redirects=False,
            headers={"User-Agent": f"dicsr/{__version__}"},
        )
    except requests.RequestException as exc:
        return request_failure_reason(url, exc)
    response.close()
    if response.status_code >= 500 or response.status_code == 429:
        return f"{urlsplit(url).netloc} answered HTTP {response.status_code} {response.reason or ''}".strip()
    return None


class _Interrupted(Exception):
    """The body stopped early; ``progressed`` says whether this try wrote any byte."""

    def __init__(self, message: str, *, progressed: bool) -> None:
        super().__init__(message)
        self.progressed = progressed


def _transfer(
    session: Any, url: str, part: Path, offset: int, *, label: str, progress: bool
) -> tuple[str, int | None]:
    """One GET appending to ``part`` from ``offset``; returns (final URL, total size if announced)."""
    import requests

    # Network failures once the body is flowing: the transfer broke, it may be resumed.
    _BROKEN_TRANSFER = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    headers = {"Range": f"bytes={offset}-", "Accept-Encoding": "identity"} if offset else {}
    timeout = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)
    with session.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=True) as response:
        status = response.status_code
        if offset and status == 416:  # the partial file is not a prefix the server can extend
            part.unlink(missing_ok=True)
            raise _Interrupted(f"{url} refused to resume (HTTP 416); starting over", progressed=True)
        if status >= 400:
            raise DownloadFailed(f"HTTP {status} {response.reason or ''} from {response.url}".strip())
        start = offset if status == 206 else 0
        if status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match is None or int(match.group(1)) != offset:
                part.unlink(missing_ok=True)  # an answer we cannot append safely
                raise _Interrupted(f"{url} answered an unexpected byte range; starting over", progressed=True)
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        written = 0
        bar = _progress_bar(label, total, start, enabled=progress)
        try:
            with open(part, "r+b" if start and part.exists() else "wb") as out:
                out.seek(start)
                out.truncate()
                try:
                    for chunk in response.iter_content(chunk_size=_CHUNK):
                        out.write(chunk)
                        written += len(chunk)
                        bar.update(len(chunk))
                except _BROKEN_TRANSFER as exc:
                    got = start + written
                    of = f" of {total:,}" if total is not None else ""
                    raise _Interrupted(
                        f"connection to {urlsplit(str(response.url)).netloc} broke after {got:,}{of} bytes "
                        f"({_short_cause(exc)})",
                        progressed=written > 0,
                    ) from None
        finally:
            bar.close()
        if total is not None and start + written != total:
            raise _Interrupted(
                f"{response.url} sent {start + written:,} of {total:,} bytes (truncated body)",
                progressed=written > 0,
            )
        return str(response.url), total


def _progress_bar(name: str, total: int | None, initial: int, *, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
        disable=not enabled, leave=False,
    )


def request_failure_reason(url: str, exc: Exception) -> str:
    """One line for a request that got no usable answer (refused, timed out, unresolvable, TLS)."""
    import requests

    host = urlsplit(url).netloc or url
    if isinstance(exc, requests.exceptions.ProxyError):  # $HTTPS_PROXY / $HTTP_PROXY is in the way
        timed_out = "timed out" in str(exc)
        cause = f"no answer within {CONNECT_TIMEOUT_SECONDS:g} s" if timed_out else _short_cause(exc)
        return f"cannot connect to {host} through the proxy ({cause})"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"cannot connect to {host} (no answer within {CONNECT_TIMEOUT_SECONDS:g} s)"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"{host} accepted the connection but did not answer in time"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS failure talking to {host} ({_short_cause(exc)})"
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return f"too many redirects from {url}"
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema)):
        return f"invalid URL {url!r}"
    return f"cannot connect to {host} ({_short_cause(exc)})"


def _short_cause(exc: BaseException) -> str:
    """The operating system's words for a network failure, without urllib3's object dumps."""
    text = str(exc)
    found = re.findall(r"\[Errno -?\d+\] ([^'\"\)\]]+)", text)
    if found:
        return found[-1].strip()
    for phrase in ("Name or service not known", "Connection refused", "Connection reset by peer",
                   "Remote end closed connection without response", "IncompleteRead"):
        if phrase in text:
            return phrase
    return type(exc).__name__
