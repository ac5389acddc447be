"""Model folders: ``model.safetensors`` + ``config.json`` (+ ``README.md`` card).

This is the only format dicsr loads from the network, and the format ``dicsr convert`` writes: the
weights file holds tensors only (safetensors cannot carry code), and ``config.json`` says how to
rebuild and feed the network, so a folder is self-describing.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from torch import nn

from dicsr._files import atomic_write_text, temporary_sibling
from dicsr.adapters import NetworkAdapter, build_adapter
from dicsr.config import ModelConfig
from dicsr.errors import CheckpointError, CorruptCheckpointError, InvalidInputError, ModelNotFoundError
from dicsr.loading.card import render_model_card
from dicsr.loading.checkpoint import load_state_dict_strictly

__all__ = [
    "CARD_FILENAME",
    "CONFIG_FILENAME",
    "WEIGHTS_FILENAME",
    "load_model_folder",
    "read_folder_config",
    "read_safetensors",
    "save_model_folder",
]

logger = logging.getLogger(__name__)

WEIGHTS_FILENAME = "model.safetensors"
CONFIG_FILENAME = "config.json"
CARD_FILENAME = "README.md"


def save_model_folder(
    model: NetworkAdapter | nn.Module,
    folder: str | os.PathLike[str],
    *,
    config: ModelConfig | None = None,
    card: str | None = None,
) -> Path:
    """Write ``model`` as a model folder and return the folder.

    Args:
        model: an adapter (its config is used) or a bare network (then ``config`` is required).
        folder: destination; created if needed, existing files of the folder format replaced.
        config: the folder's ``config.json``; defaults to the adapter's.
        card: README text; defaults to a card rendered from the config.

    Every file is written to a temporary name and renamed, ``config.json`` last: a folder with a
    ``config.json`` always has complete weights next to it, even after an interrupted save.
    """
    if isinstance(model, NetworkAdapter):
        network, config = model.network, config or model.config
    else:
        network = model
    if config is None:
        raise InvalidInputError("save_model_folder needs config= when given a bare network")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _write_safetensors(network, folder / WEIGHTS_FILENAME, config)
    atomic_write_text(folder / CARD_FILENAME, card if card is not None else render_model_card(config))
    atomic_write_text(folder / CONFIG_FILENAME, config.to_json())
    logger.info("wrote model folder %s (%s, preset %s)", folder, config.arch, config.preset)
    return folder


def _write_safetensors(network: nn.Module, path: Path, config: ModelConfig) -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in network.state_dict().items():
        tensor = value.detach().to("cpu").contiguous()
        storage = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        # safetensors refuses tensors sharing memory (tied weights): store independent copies.
        tensors[key] = tensor.clone() if storage in seen else tensor
        seen.add(storage)
    metadata = {
        "format": "pt",
        "dicsr_arch": config.arch,
        "dicsr_preset": config.preset,
        "dicsr_config": json.dumps(config.to_dict(), sort_keys=True),
    }
    with temporary_sibling(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        # save_file recreates the file with mkstemp's 0600: weights baked into an image must stay
        # readable by other users (e.g. a non-root service account).
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file on the CPU.

    Raises:
        ModelNotFoundError: no such file.
        CorruptCheckpointError: zero bytes, truncated, or not a safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such weights file")
    if path.stat().st_size == 0:
        raise CorruptCheckpointError(f"{path} is empty (0 bytes); download or convert it again")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CorruptCheckpointError(
            f"{path} is not a readable safetensors file ({exc}); it may be truncated: download or "
            "convert it again"
        ) from None


def read_folder_config(folder: Path) -> ModelConfig:
    """The ``config.json`` of a model folder.

    Raises:
        CheckpointError: the file is missing or invalid.
    """
    config_path = folder / CONFIG_FILENAME
    if not config_path.is_file():
        raise CheckpointError(
            f"{folder} has no {CONFIG_FILENAME}: a model folder needs {WEIGHTS_FILENAME} and "
            f"{CONFIG_FILENAME} (convert an official checkpoint with `dicsr convert` to get both)"
        )
    try:
        text = config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read {config_path}: {exc}") from None
    try:
        return ModelConfig.from_json(text)
    except CheckpointError as exc:
        raise CheckpointError(f"{config_path}: {exc}") from None


def load_model_folder(
    folder: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | str = torch.float32,
    weights_file: str | os.PathLike[str] | None = None,
) -> NetworkAdapter:
    """Load a model folder strictly and return its adapter on ``device``/``dtype``.

    Args:
        folder: directory holding ``config.json`` and ``model.safetensors``.
        weights_file: another safetensors file to pair with the folder's ``config.json``.

    Raises:
        ModelNotFoundError: the folder or weights file does not exist.
        CheckpointError: ``config.json`` missing or invalid.
        CorruptCheckpointError: the weights file cannot be parsed.
        ArchitectureMismatchError: the weights do not fit the network ``config.json`` describes.
        UnsupportedDtypeError: the network cannot run in ``dtype`` on ``device``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelNotFoundError(f"{folder}: no such model folder")
    weights_path = Path(weights_file) if weights_file is not None else folder / WEIGHTS_FILENAME
    config = read_folder_config(folder)
    state_dict = read_safetensors(weights_path)
    try:
        adapter = build_adapter(config)
    except CheckpointError:
        raise
    except (TypeError, ValueError) as exc:  # the arch config dataclass refused the values
        raise CheckpointError(
            f"{folder / CONFIG_FILENAME}: arch_config does not describe a network: {exc}"
        ) from None
    load_state_dict_strictly(
        adapter.network,
        state_dict,
        what=f"{weights_path.name} does not fit the {config.arch} network of {folder / CONFIG_FILENAME} "
        f"(preset {config.preset!r})",
    )
    return adapter.to(device, dtype)
