"""Every environment variable dicsr reads, in one place, read at call time.

huggingface_hub reads its variables once, at import; dicsr reads them on every call and passes them
explicitly, so a change made later in the process (or by a test) takes effect. An explicit argument
always wins over the environment.

Each setting, with its precedence (first match wins):

* **offline** (never download, use cached files only): the ``offline=`` argument, else
  ``HF_HUB_OFFLINE`` or ``DICSR_OFFLINE`` set to ``1``/``true``/``yes``/``on``.
* **Hugging Face cache** of model folders: the ``cache_dir=`` argument, else ``$HF_HUB_CACHE``,
  else ``$HF_HOME/hub``, else the hub's default (``~/.cache/huggingface/hub``).
* **hub server**: the ``endpoint=`` argument, else ``$HF_ENDPOINT``, else huggingface.co.
* **dicsr cache root** (converted zoo models in ``models/``, official files being downloaded in
  ``downloads/``, detector weights in ``detectors/``): the ``cache_dir=`` argument where a function
  takes one for it, else ``$DICSR_CACHE_DIR``, else ``~/.cache/dicsr``.
* **mirror** of the official files, serving each by its official name (``<base>/<file name>``),
  tried after the hub and before the official origin: the ``mirror=`` argument (``--mirror``),
  else ``$DICSR_MIRROR``, else none.
* **detector weights source**: the ``base_url=`` argument, else ``$DICSR_DETECTOR_BASE_URL`` (the
  only source then); else the mirror (as above) followed by the official release URLs.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "MIRROR_VARIABLE",
    "detector_base_url",
    "dicsr_cache_dir",
    "hub_cache_dir",
    "hub_endpoint",
    "mirror_base_url",
    "offline_requested",
]

_TRUE = {"1", "true", "yes", "on"}
_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "DICSR_OFFLINE")
#: The environment variable naming a mirror of the official files.
MIRROR_VARIABLE = "DICSR_MIRROR"


def offline_requested(offline: bool | None) -> bool:
    """``offline`` if given, else whether ``HF_HUB_OFFLINE`` or ``DICSR_OFFLINE`` is set now."""
    if offline is not None:
        return offline
    return any(os.environ.get(var, "").strip().lower() in _TRUE for var in _OFFLINE_VARIABLES)


def hub_cache_dir(cache_dir: str | os.PathLike[str] | None) -> str | None:
    """``cache_dir``, else ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else the hub's default (None)."""
    if cache_dir is not None:
        return str(Path(cache_dir).expanduser())
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def hub_endpoint(endpoint: str | None) -> str | None:
    """``endpoint``, else ``$HF_ENDPOINT`` (without a trailing slash), else None (huggingface.co)."""
    value = endpoint or os.environ.get("HF_ENDPOINT") or None
    return value.rstrip("/") if value else None


def dicsr_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    """dicsr's cache root: ``cache_dir``, else ``$DICSR_CACHE_DIR``, else ``~/.cache/dicsr``."""
    root = cache_dir or os.environ.get("DICSR_CACHE_DIR") or Path.home() / ".cache" / "dicsr"
    return Path(root).expanduser()


def detector_base_url(base_url: str | None) -> str | None:
    """``base_url``, else ``$DICSR_DETECTOR_BASE_URL``, else None (the official release URLs)."""
    return base_url or os.environ.get("DICSR_DETECTOR_BASE_URL") or None


def mirror_base_url(mirror: str | None) -> str | None:
    """``mirror``, else ``$DICSR_MIRROR``, without a trailing slash; None if neither is set."""
    value = mirror if mirror is not None else os.environ.get(MIRROR_VARIABLE, "")
    return value.strip().rstrip("/") or None
