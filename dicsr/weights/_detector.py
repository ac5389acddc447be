"""RetinaFace detector weights (facexlib's release assets), cached and verified by dicsr.

facexlib would download these into its own ``site-packages`` folder, which is often read-only and
is shared by every environment user; dicsr keeps them in its cache instead:

* ``weights=`` (a local file) wins, checked against the published size/sha256 unless
  ``verify=False`` (for re-trained detectors);
* otherwise ``<cache>/detectors/<file>``, with ``<cache>`` = ``cache_dir``, ``$DICSR_CACHE_DIR`` or
  ``~/.cache/dicsr``; a missing file is downloaded to a temporary file, checked, then renamed. It
  comes from ``base_url`` / ``$DICSR_DETECTOR_BASE_URL`` if set, else from the models' mirror
  (``mirror`` / ``$DICSR_MIRROR``, serving files by name) and then the release URL, each tried
  once with a short connect timeout;
* offline (``offline=True``, ``DICSR_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) a missing file raises
  :class:`~dicsr.errors.WeightsUnavailableError` saying where to put it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from dicsr._files import sha256_of_file
from dicsr.errors import IntegrityError, InvalidInputError, ModelNotFoundError, WeightsUnavailableError
from dicsr.weights._http import DownloadFailed, download_file
from dicsr.weights._settings import detector_base_url, dicsr_cache_dir, mirror_base_url, offline_requested

__all__ = ["DETECTOR_WEIGHTS", "DetectorWeights", "detector_cache_dir", "resolve_detector_weights"]

logger = logging.getLogger(__name__)

_RELEASE = "https://github.com/xinntao/facexlib/releases/download/v0.1.0"


@dataclass(frozen=True)
class DetectorWeights:
    """One published detector checkpoint.

    Attributes:
        network: dicsr's name of the detector network.
        filename: release asset name (also the cached file name).
        url: official download URL.
        size: published size in bytes.
        sha256: published hex sha256, or ``None`` when unknown (size is still checked).
        license: licence of the weights.
    """

    network: str
    filename: str
    url: str
    size: int
    sha256: str | None
    license: str


#: Detector weights by network name (facexlib's ``retinaface_<network>`` models).
DETECTOR_WEIGHTS: dict[str, DetectorWeights] = {
    "mobile0.25": DetectorWeights(
        network="mobile0.25",
        filename="detection_mobilenet0.25_Final.pth",
        url=f"{_RELEASE}/detection_mobilenet0.25_Final.pth",
        size=1_789_735,
        sha256="2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
        license="MIT (biubug6/Pytorch_Retinaface)",
    ),
    "resnet50": DetectorWeights(
        network="resnet50",
        filename="detection_Resnet50_Final.pth",
        url=f"{_RELEASE}/detection_Resnet50_Final.pth",
        size=109_497_761,
        # Not verified against the asset by this project, so only the size is enforced.
        sha256=None,
        license="MIT (biubug6/Pytorch_Retinaface)",
    ),
}


def detector_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Cached detector weights folder: ``<cache_dir | $DICSR_CACHE_DIR | ~/.cache/dicsr>/detectors``."""
    return dicsr_cache_dir(cache_dir) / "detectors"


def resolve_detector_weights(
    network: str = "mobile0.25",
    weights: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    base_url: str | None = None,
    verify: bool = True,
    mirror: str | None = None,
) -> Path:
    """Path of verified detector weights for ``network``, downloading them if needed.

    Args:
        network: ``"mobile0.25"`` or ``"resnet50"`` (``retinaface_`` prefix accepted).
        weights: a local weights file to use instead of the cache.
        cache_dir: dicsr cache root (default ``$DICSR_CACHE_DIR`` or ``~/.cache/dicsr``).
        offline: never download (default: ``DICSR_OFFLINE``/``HF_HUB_OFFLINE`` set now).
        base_url: mirror serving the release assets by file name (default
            ``$DICSR_DETECTOR_BASE_URL``, else the official release).
        verify: check ``weights`` against the published size/sha256 (turn off for other detectors).
        mirror: the models' mirror (default ``$DICSR_MIRROR``), tried before the release URL
            when no ``base_url`` is set.

    Raises:
        InvalidInputError: unknown network.
        ModelNotFoundError: ``weights`` does not exist.
        IntegrityError: size or sha256 mismatch (a downloaded or cached bad file is deleted).
        WeightsUnavailableError: offline without a cached copy, or the download failed.
    """
    spec = _spec(network)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"detector weights {path}: no such file")
        if verify:
            _check(path, spec, what=f"detector weights {path}")
        return path

    path = detector_cache_dir(cache_dir) / spec.filename
    if path.is_file():
        try:
            _check(path, spec, what=f"cached detector weights {path}")
            return path
        except IntegrityError:
            if offline_requested(offline):
                raise
            logger.warning("cached %s is corrupt; deleting it and downloading again", path)
            path.unlink(missing_ok=True)
    if offline_requested(offline):
        raise WeightsUnavailableError(
            f"RetinaFace {spec.network} weights are not cached at {path} and downloads are off "
            f"(offline=True, DICSR_OFFLINE or HF_HUB_OFFLINE). Download {spec.url} and put it there "
            f"(or point $DICSR_CACHE_DIR at a folder whose detectors/ holds it), or pass the file "
            f"explicitly (detector_weights=...)"
        )
    _download(_download_urls(spec, base_url, mirror), path, spec)
    return path


def _spec(network: str) -> DetectorWeights:
    key = network.removeprefix("retinaface_")
    if key not in DETECTOR_WEIGHTS:
        raise InvalidInputError(f"unknown detector network {network!r}; known: {', '.join(DETECTOR_WEIGHTS)}")
    return DETECTOR_WEIGHTS[key]


def _download_urls(spec: DetectorWeights, base_url: str | None, mirror: str | None) -> list[str]:
    """The URLs to try in order: the detector base URL alone if set, else the mirror and the release."""
    base = detector_base_url(base_url)
    if base:
        return [f"{base.rstrip('/')}/{spec.filename}"]
    mirror_base = mirror_base_url(mirror)
    return [f"{mirror_base}/{spec.filename}", spec.url] if mirror_base else [spec.url]


def _check(path: Path, spec: DetectorWeights, *, what: str) -> None:
    size = path.stat().st_size
    if size != spec.size:
        raise IntegrityError(
            f"{what} is {size:,} bytes, expected {spec.size:,} ({spec.filename} from {spec.url})"
        )
    if spec.sha256 is not None:
        digest = sha256_of_file(path)
        if digest != spec.sha256:
            raise IntegrityError(f"{what} has sha256 {digest}, expected {spec.sha256} ({spec.url})")


def _download(urls: list[str], path: Path, spec: DetectorWeights) -> None:
    """Fetch the first of ``urls`` that delivers the published file; rename it into place."""
    staging = path.with_name(f".{path.name}.download")
    reasons = []
    bad_bytes = False
    for url in urls:
        logger.info("downloading %s (%.1f MB) to %s", url, spec.size / 1e6, path)
        try:
            download_file(url, staging, progress=False)
        except DownloadFailed as exc:  # an unusable cache folder is no download failure: OSError
            reasons.append(f"{url}: {exc}")
            continue
        try:
            _check(staging, spec, what=f"the download of {url}")
        except IntegrityError as exc:
            staging.unlink(missing_ok=True)  # nothing bad reaches the cache
            bad_bytes = True
            reasons.append(f"{exc}; it was discarded")
            continue
        os.replace(staging, path)
        return
    if bad_bytes:
        raise IntegrityError(f"download of RetinaFace {spec.network} weights failed: {'; '.join(reasons)}")
    raise WeightsUnavailableError(_unavailable(spec, path, "; ".join(reasons)))


def _unavailable(spec: DetectorWeights, path: Path, reasons: str) -> str:
    return (
        f"could not download RetinaFace {spec.network} weights ({reasons}). Download "
        f"{spec.url} by hand and put it at {path}, or pass the file explicitly (detector_weights=...)"
    )
