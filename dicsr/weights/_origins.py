"""A zoo name's source chain: where its weights come from, tried in order, each once.

1. **The dicsr cache** (``$DICSR_CACHE_DIR/models/<name>/``, verified on every load) and the
   Hugging Face cache: no network.
2. **The Hugging Face Hub** repository of the converted weights at its pinned revision
   (:mod:`dicsr.weights._hub`; one HEAD decides reachability, no retry storm).
3. **A mirror**: ``mirror=`` / ``--mirror`` / ``$DICSR_MIRROR``, a base URL serving the official
   files by their official names (``<base>/<official_filename>``); plain HTTP(S) GET.
4. **The official origin** of the checkpoint (the zoo entry's :class:`~dicsr.families.Origin`): a
   GitHub release asset (HTTPS GET, GitHub redirects to its CDN) or a file in the authors' Google
   Drive folder (through ``gdown``: list the folder, then download the one file by id).

Sources 3 and 4 give an official ``.pth``: its published fingerprint is checked, it is read with
``torch.load(weights_only=True)`` only, converted strictly into a model folder in the dicsr cache
(temporary folder + rename, under a per-model file lock), and deleted. Offline
(``offline=True``, ``HF_HUB_OFFLINE=1`` or ``DICSR_OFFLINE=1``) only step 1 runs.

When every source fails, one typed error lists each source tried with its one-line reason, then
the manual route. Each network source makes one connection attempt bounded by a short connect
timeout (:func:`worst_case_connect_seconds`), so with nothing reachable the error comes in seconds.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dicsr._version import __version__
from dicsr.errors import (
    CheckpointError,
    DicsrError,
    IntegrityError,
    ModelNotFoundError,
    WeightsUnavailableError,
)
from dicsr.families import GITHUB_RELEASE, GOOGLE_DRIVE
from dicsr.weights._cache import CachedModel, CacheRecord, ModelCache
from dicsr.weights._convert import convert_checkpoint
from dicsr.weights._fingerprint import digest_file, verify_fingerprint
from dicsr.weights._folder import WEIGHTS_FILENAME
from dicsr.weights._http import (
    CONNECT_TIMEOUT_SECONDS,
    READ_TIMEOUT_SECONDS,
    DownloadFailed,
    download_file,
    request_failure_reason,
)
from dicsr.weights._hub import HUB_PREFIX, download_from_hub, is_in_hub_cache
from dicsr.weights._settings import MIRROR_VARIABLE, dicsr_cache_dir, mirror_base_url, offline_requested
from dicsr.weights._zoo import ModelEntry

__all__ = [
    "ModelSource",
    "ObtainedModel",
    "SourceAttempt",
    "cache_status",
    "in_local_cache",
    "obtain_model",
    "official_sources",
    "worst_case_connect_seconds",
]

logger = logging.getLogger(__name__)

HUB, MIRROR, CACHE = "hub", "mirror", "cache"


@dataclass(frozen=True)
class SourceAttempt:
    """One source of the chain and what happened there.

    Attributes:
        source: ``"hub"``, ``"mirror"``, ``"github-release"`` or ``"google-drive"``.
        label: the source as messages name it (with its URL).
        reason: why it gave nothing (one line), or ``None`` if it delivered.
        bad_bytes: it delivered bytes that failed a check (fingerprint, unreadable checkpoint).
    """

    source: str
    label: str
    reason: str | None = None
    bad_bytes: bool = False


@dataclass(frozen=True)
class ObtainedModel:
    """A zoo model's folder and how it got there.

    Attributes:
        name: zoo name.
        folder: model folder to load (dicsr cache or Hugging Face cache).
        source: ``"cache"`` (already there), ``"hub"``, ``"mirror"``, ``"github-release"`` or
            ``"google-drive"``: where the bytes came from in this call.
        source_label: that source as messages name it.
        url: the URL requested (``""`` for the cache).
        downloaded_bytes: bytes of the official file fetched in this call (``None`` if none).
        fingerprint: what was verified: the official file's published fingerprint on download,
            the recorded sha256s on a cache hit.
        cache_record: the dicsr cache record, for folders in the dicsr cache.
        attempts: the sources tried before this one delivered.
    """

    name: str
    folder: Path
    source: str
    source_label: str
    url: str
    downloaded_bytes: int | None
    fingerprint: str
    cache_record: CacheRecord | None = None
    attempts: tuple[SourceAttempt, ...] = ()


@dataclass(frozen=True)
class ModelSource:
    """A network source of an official checkpoint: its kind, label and URL."""

    kind: str
    label: str
    url: str


def official_sources(entry: ModelEntry, mirror: str | None = None) -> list[ModelSource]:
    """The network sources of ``entry``'s official file after the hub, in the order tried."""
    sources = []
    base = mirror_base_url(mirror)
    if base is not None:
        url = f"{base}/{entry.official_filename}"
        sources.append(ModelSource(MIRROR, f"mirror {url}", url))
    origin = entry.origin
    if origin is not None and origin.kind == GITHUB_RELEASE:
        sources.append(ModelSource(origin.kind, f"GitHub release asset {origin.url}", origin.url))
    elif origin is not None and origin.kind == GOOGLE_DRIVE:
        sources.append(
            ModelSource(origin.kind, f"Google Drive folder {origin.url} (file {origin.path})", origin.url)
        )
    return sources


def worst_case_connect_seconds(entry: ModelEntry, mirror: str | None = None) -> float:
    """Time spent waiting for connections when no source answers (one address per host).

    One connection attempt per source, none retried, each bounded by the connect timeout: the
    hub's probe, then one GET per mirror or GitHub source; Google Drive lists the folder first and
    downloads only after an answer. (Name resolution is the operating system's and not bounded
    here; a host with several addresses is tried once per address.)
    """
    return CONNECT_TIMEOUT_SECONDS * (1 + len(official_sources(entry, mirror)))


# --- the chain ---------------------------------------------------------------------------------------


def cache_status(entry: ModelEntry, *, cache_dir: str | os.PathLike[str] | None = None) -> str | None:
    """Where ``entry`` is cached, for listings: ``"converted (from <source>)"``, ``"hub cache"``,
    or ``None`` if it is not (no network, files not re-hashed)."""
    record = ModelCache(dicsr_cache_dir(None)).read_record(entry.name)
    if record is not None:
        return f"converted (from {record.source})"
    if is_in_hub_cache(entry, cache_dir=cache_dir):
        return "hub cache"
    return None


def in_local_cache(entry: ModelEntry, *, revision: str | None = None,
                   cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``entry`` loads without the network (its dicsr-cache folder is not re-hashed here)."""
    return ModelCache(dicsr_cache_dir(None)).has(entry.name) or is_in_hub_cache(
        entry, revision=revision, cache_dir=cache_dir
    )


def obtain_model(
    entry: ModelEntry,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    endpoint: str | None = None,
    progress: bool = True,
    mirror: str | None = None,
) -> ObtainedModel:
    """Run the source chain for ``entry``; see the module docstring.

    Args:
        revision: hub revision overriding the entry's pin (disables its sha256 check).
        cache_dir: Hugging Face cache folder (the dicsr cache is ``$DICSR_CACHE_DIR``).
        offline: only use the caches (default: ``HF_HUB_OFFLINE``/``DICSR_OFFLINE`` set now).
        endpoint: hub URL (default ``$HF_ENDPOINT``, else huggingface.co).
        progress: show download progress bars.
        mirror: base URL serving the official files by name (default ``$DICSR_MIRROR``).

    Raises:
        WeightsUnavailableError: offline and not cached, or no source delivered (the message lists
            every source tried with its reason, then the manual route).
        IntegrityError: a cached folder is corrupt while offline; or no source delivered and one
            of them delivered bytes that failed a check.
    """
    cache = ModelCache(dicsr_cache_dir(None))
    offline = offline_requested(offline)
    hub_options: dict[str, Any] = {
        "revision": revision, "cache_dir": cache_dir, "endpoint": endpoint, "progress": progress,
        "manual_route": False,
    }
    try:
        cached = cache.load(entry.name)
    except IntegrityError as exc:
        if offline:
            raise IntegrityError(
                f"{entry.name}: {exc}. Delete {cache.folder(entry.name)} and run `dicsr download "
                f"{entry.name}` with network access to rebuild it"
            ) from None
        logger.warning("%s: %s; fetching it again", entry.name, exc)
        cached = None
    if cached is not None:
        return _cache_hit(entry, cached)
    from_hub_cache = _from_hub_cache(entry, hub_options)
    if from_hub_cache is not None:
        return from_hub_cache
    if offline:
        raise WeightsUnavailableError(_offline_message(entry, cache)) from None
    with cache.lock(entry.name):
        try:  # another process may have built it while this one waited for the lock
            cached = cache.load(entry.name)
        except IntegrityError:
            cached = None  # still the corrupt folder: install() replaces it
        if cached is not None:
            return _cache_hit(entry, cached)
        return _from_network(entry, cache, hub_options, mirror=mirror, progress=progress)


def _from_hub_cache(entry: ModelEntry, hub_options: dict[str, Any]) -> ObtainedModel | None:
    if not is_in_hub_cache(entry, revision=hub_options["revision"], cache_dir=hub_options["cache_dir"]):
        return None
    try:
        folder = download_from_hub(entry, offline=True, **hub_options)
    except DicsrError as exc:  # e.g. the cached copy fails the published sha256 (and was deleted)
        logger.info("%s: the Hugging Face cache copy is unusable: %s", entry.name, exc)
        return None
    return ObtainedModel(
        name=entry.name, folder=folder, source=CACHE, source_label="Hugging Face cache", url="",
        downloaded_bytes=None, fingerprint=_hub_fingerprint(entry),
    )


def _hub_fingerprint(entry: ModelEntry) -> str:
    return f"sha256 {entry.sha256}" if entry.sha256 else "no sha256 published for the hub copy"


def _cache_hit(entry: ModelEntry, cached: CachedModel) -> ObtainedModel:
    return ObtainedModel(
        name=entry.name, folder=cached.folder, source=CACHE,
        source_label=f"dicsr cache (converted from {cached.record.source_label})", url=cached.record.url,
        downloaded_bytes=None,
        fingerprint=f"{WEIGHTS_FILENAME} sha256 {cached.record.files[WEIGHTS_FILENAME]} matches its record",
        cache_record=cached.record,
    )


def _from_network(
    entry: ModelEntry, cache: ModelCache, hub_options: dict[str, Any], *, mirror: str | None, progress: bool
) -> ObtainedModel:
    attempts: list[SourceAttempt] = []
    hub_label = f"Hugging Face Hub {entry.hub_repo}@{hub_options['revision'] or entry.revision}"
    try:
        folder = download_from_hub(entry, offline=False, **hub_options)
    except ModelNotFoundError as exc:  # pragma: no cover - zoo entries map to WeightsUnavailableError
        attempts.append(SourceAttempt(HUB, hub_label, _hub_reason(exc)))
    except IntegrityError as exc:
        attempts.append(SourceAttempt(HUB, hub_label, _hub_reason(exc), bad_bytes=True))
    except DicsrError as exc:
        attempts.append(SourceAttempt(HUB, hub_label, _hub_reason(exc)))
    else:
        _log_licence_notice(entry)
        return ObtainedModel(
            name=entry.name, folder=folder, source=HUB, source_label=hub_label,
            url=f"{HUB_PREFIX}{entry.hub_repo}@{entry.revision}", downloaded_bytes=None,
            fingerprint=_hub_fingerprint(entry),
        )
    logger.debug("%s: %s: %s", entry.name, hub_label, attempts[-1].reason)

    for source in official_sources(entry, mirror):
        logger.info("%s: fetching %s from %s", entry.name, entry.official_filename, source.label)
        attempt, obtained = _fetch_and_convert(entry, cache, source, progress=progress)
        attempts.append(attempt)
        if obtained is not None:
            for earlier in attempts:
                if earlier.bad_bytes:
                    logger.warning("%s: %s sent bad bytes: %s", entry.name, earlier.label, earlier.reason)
            _log_licence_notice(entry)
            return dataclasses.replace(obtained, attempts=tuple(attempts[:-1]))
        logger.debug("%s: %s: %s", entry.name, source.label, attempt.reason)
    raise _chain_failure(entry, attempts, mirror) from None


def _fetch_and_convert(
    entry: ModelEntry, cache: ModelCache, source: ModelSource, *, progress: bool
) -> tuple[SourceAttempt, ObtainedModel | None]:
    """Download the official file from one source, check it, convert it into the cache."""
    target = cache.downloads_dir / entry.official_filename
    try:
        if source.kind == GOOGLE_DRIVE:
            _fetch_from_drive(entry, target, progress=progress)
            url = source.url
        else:
            url = download_file(source.url, target, progress=progress).url
    except DownloadFailed as exc:
        return SourceAttempt(source.kind, source.label, str(exc)), None
    except OSError as exc:  # the download could not be written (disk full, permissions)
        return SourceAttempt(source.kind, source.label, f"could not store the download: {exc}"), None
    try:
        digest = digest_file(target)
        checked = verify_fingerprint(
            digest, entry.official_fingerprint, what=f"{entry.official_filename} from {source.label}"
        )
        logger.info("%s: %s bytes from %s (%s)", entry.name, f"{digest.size:,}", source.label, checked)

        def write(folder: Path) -> CacheRecord:
            # The strict converter: weights-only read, every tensor checked (dicsr/_checkpoint_io.py).
            convert_checkpoint(target, folder, name=entry.name)
            return CacheRecord(
                name=entry.name, source=source.kind, source_label=source.label, url=source.url,
                official_filename=entry.official_filename, official_size=digest.size,
                official_sha256=digest.sha256, fingerprint_checked=checked, dicsr_version=__version__,
            )

        installed = cache.install(entry.name, write)
    except (IntegrityError, CheckpointError) as exc:
        return SourceAttempt(source.kind, source.label, _one_line(exc), bad_bytes=True), None
    except OSError as exc:
        return SourceAttempt(source.kind, source.label, f"could not write the dicsr cache: {exc}"), None
    finally:
        target.unlink(missing_ok=True)  # converted or refused: the pickle is never kept
    obtained = ObtainedModel(
        name=entry.name, folder=installed.folder, source=source.kind, source_label=source.label,
        url=url, downloaded_bytes=digest.size, fingerprint=checked, cache_record=installed.record,
    )
    return SourceAttempt(source.kind, source.label), obtained


def _fetch_from_drive(entry: ModelEntry, target: Path, *, progress: bool) -> None:
    """List the Drive folder with gdown, find the file by its path, download it by id.

    Raises:
        DownloadFailed: gdown missing, Drive refused (quota, permissions), or the folder's layout
            no longer has the file.
    """
    assert entry.origin is not None
    try:
        import gdown
    except ImportError:  # pragma: no cover - a declared dependency
        raise DownloadFailed("gdown is not installed (pip install gdown)") from None
    folder_id = entry.origin.url.rstrip("/").rsplit("/", 1)[-1]
    timeout = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)
    try:
        # remaining_ok: gdown before 6 refuses folders of 50+ files unless told it may list them
        # partially; gdown 6 has no such limit (nor the argument) but takes a timeout.
        listing = gdown.download_folder(
            id=folder_id, skip_download=True, quiet=True,
            **_accepted(gdown.download_folder, remaining_ok=True, timeout=timeout),
        )
    except Exception as exc:  # gdown scrapes a web page: any failure is "Drive did not list it"
        logger.debug("gdown.download_folder(%s) failed", folder_id, exc_info=True)
        reason = _gdown_reason(exc, entry.origin.url)
        raise DownloadFailed(f"Google Drive did not list the folder ({reason})") from None
    if not listing:
        raise DownloadFailed("Google Drive did not list the folder (quota, or access was withdrawn)")
    by_path = {item.path.replace(os.sep, "/"): item for item in listing if not isinstance(item, str)}
    item = by_path.get(entry.origin.path)
    if item is None:
        shown = ", ".join(sorted(by_path)[:8]) or "nothing"
        raise DownloadFailed(
            f"the Drive folder has no {entry.origin.path} (its layout changed?); it lists {shown}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        written = gdown.download(
            id=item.id, output=str(target), quiet=not progress, resume=True,
            **_accepted(gdown.download, timeout=timeout),
        )
    except Exception as exc:  # quota pages, permission pages, network errors
        logger.debug("gdown.download(%s) failed", item.id, exc_info=True)
        reason = _gdown_reason(exc, f"https://drive.google.com/uc?id={item.id}")
        raise DownloadFailed(f"Google Drive refused {entry.origin.path} ({reason})") from None
    if not written or not target.is_file():
        raise DownloadFailed(f"Google Drive refused {entry.origin.path} (no file was written)")


def _accepted(function: Callable[..., Any], **options: Any) -> dict[str, Any]:
    """The options ``function`` accepts (gdown's keyword arguments differ between majors)."""
    parameters = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return options
    return {key: value for key, value in options.items() if key in parameters}


def _gdown_reason(exc: Exception, url: str) -> str:
    import requests

    if isinstance(exc, requests.RequestException):
        return request_failure_reason(url, exc)
    text = " ".join(str(exc).split())
    if "Too many users" in text or "quota" in text.lower():
        return "download quota exceeded, Drive says to try later"
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


# --- messages -------------------------------------------------------------------------------------------


def _chain_failure(entry: ModelEntry, attempts: list[SourceAttempt], mirror: str | None) -> DicsrError:
    lines = [f"{entry.name}: no source could deliver the weights. Tried, in order:"]
    lines += [f"  - {attempt.label}: {attempt.reason}" for attempt in attempts]
    lines.append(_manual_route(entry, mirror))
    message = "\n".join(lines)
    if any(attempt.bad_bytes for attempt in attempts):
        return IntegrityError(message)
    return WeightsUnavailableError(message)


def _manual_route(entry: ModelEntry, mirror: str | None) -> str:
    route = f"To get them by hand: {entry.how_to_obtain()}."
    if mirror_base_url(mirror) is None:
        route += (
            f" Or serve {entry.official_filename} from a mirror and set {MIRROR_VARIABLE}=<base URL> "
            "(--mirror on the command line)."
        )
    return route


def _offline_message(entry: ModelEntry, cache: ModelCache) -> str:
    return (
        f"{entry.name}: not in the local cache ({cache.folder(entry.name)}, nor the Hugging Face cache) "
        f"and downloads are off (offline=True, --offline, HF_HUB_OFFLINE=1 or DICSR_OFFLINE=1). Run "
        f"`dicsr download {entry.name}` once with network access. {_manual_route(entry, None)}"
    )


def _log_licence_notice(entry: ModelEntry) -> None:
    """On a download (never on a cache hit): once per model, since later loads use the cache."""
    if entry.license_notice:
        logger.warning("%s: %s", entry.name, entry.license_notice)


def _hub_reason(exc: BaseException) -> str:
    """The hub error without its ``"<name> (<repo>, revision <rev>, file <file>): "`` prefix (the
    attempt's label names the repository already)."""
    return re.sub(r"^\S+ \([^()]*, revision [^()]*, file [^()]*\): ", "", _one_line(exc))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.split()) if text else type(exc).__name__
