"""Fetching model folders from the Hugging Face Hub, pinned, verified and offline-capable.

Downloads go only through ``huggingface_hub.hf_hub_download`` (its cache layout, locking and
resume). On top of it, dicsr:

* reads ``HF_ENDPOINT`` / ``HF_HUB_OFFLINE`` / ``HF_HUB_CACHE`` at *call* time
  (:mod:`dicsr.weights._settings`) and passes them explicitly - huggingface_hub reads them once at
  import, so a change made later in the process (or a test) would otherwise be ignored;
* fetches ``config.json`` first and then the weights at the commit it resolved to, so the two
  files always come from the same snapshot;
* verifies the sha256 the registry publishes (the hub client only compares sizes) and deletes a
  mismatching file from the cache before raising :class:`~dicsr.errors.IntegrityError`;
* turns every hub, HTTP and network exception into a typed dicsr error whose message says how to
  get the weights by hand - no raw HTTP-library traceback reaches the user;
* fails fast when the hub cannot be reached: for a file that is not cached, one HEAD request with
  a short connect timeout (``dicsr.weights._http``, no retry) must get an answer first, because
  ``hf_hub_download`` itself retries a failed request five times with 1-8 s back-off (~23 s)
  when it has no cached copy (and huggingface_hub 2.4 also fetches an "agent harnesses" registry
  with a 3 s timeout before its first request).

This is source 1 of a zoo name's source chain (``dicsr.weights._origins``); ``hf-hub:``
references use it alone.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dicsr._files import sha256_of_file
from dicsr._version import __version__
from dicsr.errors import (
    DicsrError,
    IntegrityError,
    InvalidInputError,
    ModelNotFoundError,
    WeightsUnavailableError,
)
from dicsr.weights._folder import CONFIG_FILENAME
from dicsr.weights._settings import hub_cache_dir, hub_endpoint, offline_requested
from dicsr.weights._zoo import ModelEntry, get_model_entry

__all__ = [
    "HubReference",
    "download_from_hub",
    "is_in_hub_cache",
    "parse_hub_reference",
]

logger = logging.getLogger(__name__)

HUB_PREFIX = "hf-hub:"
_COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class HubReference:
    """A model folder on the hub: ``hf-hub:org/repo[@revision]``, or a registry entry's pinned copy.

    Attributes:
        repo_id: ``org/repo``.
        revision: branch, tag or 40-hex commit (``"main"`` when not given).
        filename: weights file in the repository.
        sha256: expected hex sha256 of the weights, if published.
        size: expected byte size of the weights, if published.
        entry: the registry entry this came from, if any (for error messages).
    """

    repo_id: str
    revision: str = "main"
    filename: str = "model.safetensors"
    sha256: str | None = None
    size: int | None = None
    entry: ModelEntry | None = None

    @classmethod
    def from_entry(cls, entry: ModelEntry, revision: str | None = None) -> HubReference:
        """The pinned hub copy of a registry entry (``revision`` overrides the pin, dropping its hash)."""
        pinned = revision is None or revision == entry.revision
        return cls(
            repo_id=entry.hub_repo,
            revision=entry.revision if revision is None else revision,
            filename=entry.filename,
            sha256=entry.sha256 if pinned else None,
            size=entry.size if pinned else None,
            entry=entry,
        )

    @property
    def label(self) -> str:
        """How error messages name this model (the zoo name, else the hub reference)."""
        return self.entry.name if self.entry is not None else f"{HUB_PREFIX}{self.repo_id}@{self.revision}"

    def how_to_obtain(self) -> str:
        """Instructions for getting the weights without this download."""
        if self.entry is not None:
            return self.entry.how_to_obtain()
        return (
            f"download {CONFIG_FILENAME} and {self.filename} from the hub repository {self.repo_id} "
            f"(revision {self.revision}) into a folder and pass that folder"
        )


def parse_hub_reference(ref: str) -> HubReference:
    """Parse ``hf-hub:org/repo[@revision]``.

    Raises:
        InvalidInputError: not of that form.
    """
    body = ref[len(HUB_PREFIX) :] if ref.startswith(HUB_PREFIX) else ref
    repo_id, at, revision = body.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")) or (at and not revision):
        raise InvalidInputError(
            f"{ref!r} is not a hub reference; expected hf-hub:org/repo or hf-hub:org/repo@revision"
        )
    return HubReference(repo_id=repo_id, revision=revision or "main")


# --- downloading --------------------------------------------------------------------------------


def download_from_hub(
    ref: str | ModelEntry | HubReference,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    endpoint: str | None = None,
    progress: bool = True,
    manual_route: bool = True,
) -> Path:
    """Fetch a model folder (``config.json`` + weights) into the hub cache; return the local folder.

    Args:
        ref: a registry name or entry, ``hf-hub:org/repo[@revision]``, or a :class:`HubReference`.
        revision: override the entry's pinned revision (its sha256 is then not checked).
        cache_dir: hub cache folder (default ``$HF_HUB_CACHE``, ``$HF_HOME/hub``, the hub's default).
        offline: only use the cache (default: ``HF_HUB_OFFLINE``/``DICSR_OFFLINE`` set now).
        endpoint: hub URL (default ``$HF_ENDPOINT``, else huggingface.co).
        progress: show download progress bars.
        manual_route: end error messages with how to get the weights by hand (the source chain
            turns this off: it lists every source's reason first, then the route once).

    Raises:
        WeightsUnavailableError: offline and not cached, network or server failure, or not published.
        IntegrityError: the weights do not match the published sha256/size (the file is deleted).
        ModelNotFoundError: unknown registry name or hub repository.
    """
    target = _as_hub_reference(ref, revision)
    offline = offline_requested(offline)
    fetch = _Fetcher(
        target, hub_cache_dir(cache_dir), hub_endpoint(endpoint), offline, progress, manual_route
    )
    config_path = fetch(CONFIG_FILENAME, target.revision)
    # Fetch the weights at the commit config.json resolved to: both files from one snapshot even if
    # a branch moves between the two requests.
    snapshot = config_path.parent.name
    weights_revision = snapshot if _COMMIT.fullmatch(snapshot) else target.revision
    weights_path = fetch(target.filename, weights_revision)
    _verify(weights_path, target, manual_route=manual_route)
    if weights_path.parent != config_path.parent:  # pragma: no cover - hub cache layout guarantees it
        raise WeightsUnavailableError(f"{target.label}: config and weights resolved to different snapshots")
    logger.info("%s: model folder %s", target.label, weights_path.parent)
    return weights_path.parent


def is_in_hub_cache(
    ref: str | ModelEntry | HubReference,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> bool:
    """Whether the model folder is complete in the hub cache (no network access)."""
    from huggingface_hub import try_to_load_from_cache

    target = _as_hub_reference(ref, revision)
    folder = hub_cache_dir(cache_dir)
    found = [
        try_to_load_from_cache(target.repo_id, name, cache_dir=folder, revision=target.revision)
        for name in (CONFIG_FILENAME, target.filename)
    ]
    return all(isinstance(path, str) for path in found)


def _as_hub_reference(ref: str | ModelEntry | HubReference, revision: str | None) -> HubReference:
    if isinstance(ref, HubReference):
        return ref if revision is None else HubReference(ref.repo_id, revision, ref.filename, entry=ref.entry)
    if isinstance(ref, ModelEntry):
        return HubReference.from_entry(ref, revision)
    if ref.startswith(HUB_PREFIX):
        parsed = parse_hub_reference(ref)
        return parsed if revision is None else HubReference(parsed.repo_id, revision, parsed.filename)
    return HubReference.from_entry(get_model_entry(ref), revision)


class _Fetcher:
    """One ``hf_hub_download`` call per file, with errors mapped to dicsr's."""

    def __init__(
        self,
        target: HubReference,
        cache_dir: str | None,
        endpoint: str | None,
        offline: bool,
        progress: bool,
        manual_route: bool,
    ) -> None:
        self.target, self.cache_dir, self.endpoint = target, cache_dir, endpoint
        self.offline, self.progress, self.manual_route = offline, progress, manual_route

    def __call__(self, filename: str, revision: str) -> Path:
        from huggingface_hub import hf_hub_download

        try:
            if not self.offline:
                self._probe(filename, revision)
            path = hf_hub_download(
                self.target.repo_id,
                filename,
                revision=revision,
                cache_dir=self.cache_dir,
                local_files_only=self.offline,
                endpoint=self.endpoint,
                library_name="dicsr",
                library_version=__version__,
                tqdm_class=None if self.progress else _silent_progress_class(),
            )
        except DicsrError:
            raise
        except Exception as exc:  # every hub/HTTP/network failure -> one typed error (see _map_error)
            logger.debug("hf_hub_download(%s, %s) failed", self.target.repo_id, filename, exc_info=True)
            raise _map_error(
                exc, self.target, filename, offline=self.offline, manual_route=self.manual_route
            ) from None
        return Path(path)

    def _probe(self, filename: str, revision: str) -> None:
        """One HEAD without retries for a file that is not cached yet (see the module docstring)."""
        from huggingface_hub import hf_hub_url, try_to_load_from_cache

        from dicsr.weights._http import unreachable_reason

        if isinstance(try_to_load_from_cache(self.target.repo_id, filename, self.cache_dir, revision), str):
            return  # cached: hf_hub_download falls back to it without retrying
        problem = unreachable_reason(hf_hub_url(self.target.repo_id, filename, revision=revision,
                                                endpoint=self.endpoint))
        if problem is not None:
            where = f"{self.target.label} ({self.target.repo_id}, revision {revision}, file {filename})"
            how = f" To get the weights another way: {self.target.how_to_obtain()}."
            raise WeightsUnavailableError(
                f"{where}: the hub could not be reached ({problem}).{how if self.manual_route else ''}"
            )


def _silent_progress_class() -> type:
    from tqdm.auto import tqdm

    class _SilentTqdm(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return _SilentTqdm


def _verify(path: Path, target: HubReference, *, manual_route: bool = True) -> None:
    """Check published size and sha256; delete the cached file (blob and snapshot link) on mismatch."""
    actual_size = path.stat().st_size
    problem = None
    if target.size is not None and actual_size != target.size:
        problem = f"size {actual_size:,} bytes, expected {target.size:,}"
    elif target.sha256 is not None:
        digest = sha256_of_file(path)
        if digest != target.sha256.lower():
            problem = f"sha256 {digest}, expected {target.sha256}"
    if problem is None:
        return
    _remove_cached(path)
    how = f" Retry the download; if it persists, {target.how_to_obtain()}" if manual_route else ""
    raise IntegrityError(
        f"{target.label}: downloaded {target.filename} does not match the published file ({problem}); "
        f"the corrupt copy was deleted from the cache.{how}"
    )


def _remove_cached(path: Path) -> None:
    blob = path.resolve()
    for victim in {path, blob}:
        try:
            victim.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # pragma: no cover - read-only cache
            logger.warning("could not delete corrupt cached file %s: %s", victim, exc)


# --- error mapping ------------------------------------------------------------------------------


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Exception bases of the HTTP libraries huggingface_hub uses (httpx2 in 2.4; httpx, requests before)."""
    bases: list[type[BaseException]] = []
    for module_name, attr in (
        ("httpx2", "HTTPError"),
        ("httpx", "HTTPError"),
        ("requests", "RequestException"),
    ):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        base = getattr(module, attr, None)
        if isinstance(base, type) and issubclass(base, BaseException):
            bases.append(base)
    return tuple(bases)


def _map_error(
    exc: Exception, target: HubReference, filename: str, *, offline: bool, manual_route: bool = True
) -> DicsrError:
    from huggingface_hub import errors as hub_errors

    where = f"{target.label} ({target.repo_id}, revision {target.revision}, file {filename})"
    how = f" To get the weights another way: {target.how_to_obtain()}." if manual_route else ""
    reason = _first_line(exc)

    if isinstance(
        exc,
        (
            hub_errors.RepositoryNotFoundError,
            hub_errors.RevisionNotFoundError,
            hub_errors.RemoteEntryNotFoundError,
        ),
    ):
        kind = {
            hub_errors.GatedRepoError: "the repository is gated",
            hub_errors.RepositoryNotFoundError: "no such repository (or it is private)",
            hub_errors.RevisionNotFoundError: "no such revision",
            hub_errors.RemoteEntryNotFoundError: "no such file in the repository",
        }
        detail = next(text for cls, text in kind.items() if isinstance(exc, cls))
        error_type: Callable[[str], DicsrError] = (
            WeightsUnavailableError if target.entry is not None else ModelNotFoundError
        )
        return error_type(f"{where}: {detail} on the hub.{how}")
    if isinstance(exc, (hub_errors.LocalEntryNotFoundError, hub_errors.OfflineModeIsEnabled)):
        if offline or isinstance(exc, hub_errors.OfflineModeIsEnabled):
            state = "downloads are off (offline=True or HF_HUB_OFFLINE=1)"
        else:
            state = f"the hub could not be reached ({_cause_line(exc)})"
        return WeightsUnavailableError(f"{where}: not in the local cache and {state}.{how}")
    if isinstance(exc, hub_errors.HFValidationError):
        return ModelNotFoundError(f"{where}: invalid hub repository or revision ({reason})")
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return IntegrityError(f"{where}: incomplete download ({reason}). Retry the download.{how}")
    if isinstance(exc, hub_errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        return WeightsUnavailableError(f"{where}: the hub answered HTTP {status} ({reason}).{how}")
    if isinstance(exc, (*_transport_errors(), ConnectionError, TimeoutError)):
        return WeightsUnavailableError(f"{where}: network failure ({type(exc).__name__}: {reason}).{how}")
    if isinstance(exc, OSError):
        return WeightsUnavailableError(f"{where}: could not store the download ({reason}).{how}")
    return WeightsUnavailableError(f"{where}: download failed ({type(exc).__name__}: {reason}).{how}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cause_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{type(cause).__name__}: {_first_line(cause)}" if cause is not None else _first_line(exc)
