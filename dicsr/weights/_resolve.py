"""``load_model``: one entry point for every way of naming a model.

Resolution order for a string reference:

1. ``hf-hub:org/repo[@revision]`` -> download that model folder from the hub;
2. a zoo name (case and ``_``/``-`` ignored) -> the zoo's source chain (:mod:`dicsr.weights._origins`:
   the caches, the hub, a mirror, the official origin) - use ``./name`` for a local folder that
   happens to share a zoo name;
3. an existing local path: a model folder, a ``.safetensors`` file with ``config.json`` beside it,
   or an official checkpoint (``.pth``/``.pt``/``.ckpt``/``.bin``), converted in memory.

Pickled official checkpoints are only ever read with ``torch.load(weights_only=True)``; one
downloaded by the source chain is converted into a safetensors model folder once and deleted.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from dicsr.errors import ModelNotFoundError
from dicsr.families import NetworkAdapter
from dicsr.weights._folder import load_model_folder
from dicsr.weights._hub import HUB_PREFIX, HubReference, download_from_hub, is_in_hub_cache
from dicsr.weights._origins import in_local_cache, obtain_model
from dicsr.weights._zoo import ModelEntry, get_model_entry

__all__ = ["OFFICIAL_CHECKPOINT_SUFFIXES", "download_model", "is_cached", "load_model"]

OFFICIAL_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


def load_model(
    ref: str | os.PathLike[str] | ModelEntry,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | str = torch.float32,
    cache_dir: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    offline: bool | None = None,
    progress: bool = True,
    mirror: str | None = None,
) -> NetworkAdapter:
    """Load a model by registry name, hub reference, folder or file; return its adapter.

    Args:
        ref: a zoo name, ``"hf-hub:org/repo@rev"``, a model folder, a ``.safetensors``
            file with ``config.json`` beside it, an official ``.pth`` checkpoint, or a
            :class:`~dicsr.weights.ModelEntry`.
        device: where the network runs (``"auto"``, ``"cpu"``, ``"cuda:1"``, ...).
        dtype: the network's precision (``None``: float32).
        cache_dir: hub cache folder for downloads.
        revision: hub revision overriding the registry's pin (disables its sha256 check).
        offline: never touch the network (default: ``HF_HUB_OFFLINE``/``DICSR_OFFLINE``).
        progress: show download progress bars.
        mirror: base URL serving the official checkpoints by file name (default ``$DICSR_MIRROR``).

    Raises:
        ModelNotFoundError: the reference names nothing (close registry names are suggested).
        WeightsUnavailableError, IntegrityError: download problems (see :func:`download_model`).
        CheckpointError and subclasses: unreadable or mismatching weights (including
            :class:`~dicsr.errors.InvalidWeightsError` for non-float or non-finite tensors).
    """

    def fetch(target: str | ModelEntry) -> Path:
        return download_model(
            target, revision=revision, cache_dir=cache_dir, offline=offline, progress=progress,
            mirror=mirror,
        )

    if isinstance(ref, ModelEntry):
        return load_model_folder(fetch(ref), device=device, dtype=dtype)
    text = os.fspath(ref)
    if text.startswith(HUB_PREFIX):
        return load_model_folder(fetch(text), device=device, dtype=dtype)
    if isinstance(ref, str) and _is_registry_name(text):
        return load_model_folder(fetch(get_model_entry(text)), device=device, dtype=dtype)
    return _load_local(Path(text), device=device, dtype=dtype)


def download_model(
    ref: str | ModelEntry | HubReference,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    endpoint: str | None = None,
    progress: bool = True,
    mirror: str | None = None,
) -> Path:
    """Make a model available locally and return its folder (``config.json`` + weights).

    A zoo name (or :class:`~dicsr.weights.ModelEntry`) goes through the source chain, tried in
    order, each once: the dicsr and Hugging Face caches, the hub copy at its pinned revision, the
    mirror, the official origin (GitHub release or Google Drive); an official checkpoint is
    verified, converted into ``$DICSR_CACHE_DIR/models/<name>/`` and deleted. An ``hf-hub:``
    reference or :class:`~dicsr.weights.HubReference` is fetched from the hub only.

    Args:
        ref: zoo name or entry, ``hf-hub:org/repo[@revision]``, or a hub reference.
        revision: hub revision overriding the entry's pin (disables its sha256 check).
        cache_dir: Hugging Face cache folder (default ``$HF_HUB_CACHE``, ``$HF_HOME/hub``, the
            hub's default). The dicsr cache is ``$DICSR_CACHE_DIR`` (default ``~/.cache/dicsr``).
        offline: only use the caches (default: ``HF_HUB_OFFLINE``/``DICSR_OFFLINE`` set now).
        endpoint: hub URL (default ``$HF_ENDPOINT``, else huggingface.co).
        progress: show download progress bars.
        mirror: base URL serving the official checkpoints by file name (default ``$DICSR_MIRROR``).

    Raises:
        WeightsUnavailableError: offline and not cached, or no source delivered (the message lists
            every source tried with its one-line reason, then the manual route).
        IntegrityError: bytes failed a check (published sha256/size/git blob id, or a corrupt
            cached folder while offline) and no other source delivered.
        ModelNotFoundError: unknown zoo name or hub repository.
    """
    if isinstance(ref, HubReference) or (isinstance(ref, str) and ref.startswith(HUB_PREFIX)):
        return download_from_hub(
            ref, revision=revision, cache_dir=cache_dir, offline=offline, endpoint=endpoint, progress=progress
        )
    entry = ref if isinstance(ref, ModelEntry) else get_model_entry(ref)
    return obtain_model(
        entry, revision=revision, cache_dir=cache_dir, offline=offline, endpoint=endpoint,
        progress=progress, mirror=mirror,
    ).folder


def is_cached(
    ref: str | ModelEntry | HubReference,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> bool:
    """Whether the model loads without the network: in the dicsr cache (converted) or the hub cache."""
    if isinstance(ref, HubReference) or (isinstance(ref, str) and ref.startswith(HUB_PREFIX)):
        return is_in_hub_cache(ref, revision=revision, cache_dir=cache_dir)
    entry = ref if isinstance(ref, ModelEntry) else get_model_entry(ref)
    return in_local_cache(entry, revision=revision, cache_dir=cache_dir)


def _is_registry_name(text: str) -> bool:
    try:
        get_model_entry(text)
    except ModelNotFoundError:
        return False
    return True


def _load_local(path: Path, *, device: torch.device | str, dtype: torch.dtype | str) -> NetworkAdapter:
    if path.is_dir():
        return load_model_folder(path, device=device, dtype=dtype)
    if path.is_file() and path.suffix == ".safetensors":
        return load_model_folder(path.parent, device=device, dtype=dtype, weights_file=path)
    if path.is_file() and path.suffix.lower() in OFFICIAL_CHECKPOINT_SUFFIXES:
        return _load_official(path, device=device, dtype=dtype)
    if path.is_file():
        raise ModelNotFoundError(
            f"{path}: unsupported model file; expected a model folder, a .safetensors file with "
            f"config.json beside it, or an official checkpoint ({', '.join(OFFICIAL_CHECKPOINT_SUFFIXES)})"
        )
    try:
        get_model_entry(path.name)
    except ModelNotFoundError as exc:  # carries "did you mean" suggestions for near-miss names
        raise ModelNotFoundError(f"{path} is not a file or folder, and {exc}") from None
    raise ModelNotFoundError(f"{path}: no such file or folder")  # pragma: no cover - names resolve above


def _load_official(path: Path, *, device: torch.device | str, dtype: torch.dtype | str) -> NetworkAdapter:
    from dicsr.weights._convert import convert_official_checkpoint

    converted = convert_official_checkpoint(path)
    warnings.warn(
        f"{path.name} is an official checkpoint, converted in memory on every load; convert it once "
        f"with `dicsr convert {path} <folder>` and load the folder (faster, and no pickle involved)",
        UserWarning,
        stacklevel=3,
    )
    return converted.adapter.to(device, dtype)
