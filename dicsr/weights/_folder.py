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

from dicsr._checkpoint_io import TensorSpec, check_state_dict, load_state_dict_strictly
from dicsr._files import atomic_write_text, temporary_sibling
from dicsr.errors import CheckpointError, CorruptCheckpointError, InvalidInputError, ModelNotFoundError
from dicsr.families import MAX_CONFIG_BYTES, ModelConfig, NetworkAdapter, get_family
from dicsr.weights._card import render_model_card

__all__ = [
    "CARD_FILENAME",
    "CONFIG_FILENAME",
    "WEIGHTS_FILENAME",
    "load_model_folder",
    "read_folder_config",
    "read_safetensors",
    "read_safetensors_header",
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

    path = _existing_weights(path)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, TensorSpec]:
    """Key, shape and dtype of every tensor of a safetensors file, from its header alone.

    No tensor is read: a file can be checked against the network it claims to be before memory is
    spent on either.

    Raises:
        ModelNotFoundError: no such file.
        CorruptCheckpointError: zero bytes, truncated, or not a safetensors file.
    """
    from safetensors import SafetensorError, safe_open

    path = _existing_weights(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            specs = {}
            for key in handle.keys():  # noqa: SIM118 - a safetensors handle, not a dict
                part = handle.get_slice(key)
                code = part.get_dtype()
                specs[key] = TensorSpec(tuple(part.get_shape()), _dtype_name(code), _is_floating(code))
            return specs
    except (SafetensorError, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None


# safetensors dtype codes -> torch names (for messages); any other code is shown as it is.
_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}


def _dtype_name(code: str) -> str:
    return _SAFETENSORS_DTYPES.get(code, code)


def _is_floating(code: str) -> bool:
    return code.startswith(("F", "BF"))  # F64/F32/F16, BF16 and the F8_* formats


def _existing_weights(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such weights file")
    if path.stat().st_size == 0:
        raise CorruptCheckpointError(f"{path} is empty (0 bytes); download or convert it again")
    return path


def _unreadable(path: Path, exc: Exception) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f"{path} is not a readable safetensors file ({exc}); it may be truncated: download or "
        "convert it again"
    )


def read_folder_config(folder: Path) -> ModelConfig:
    """The ``config.json`` of a model folder, every field checked (see :class:`ModelConfig`).

    Raises:
        CheckpointError: the file is missing, too large, not JSON, or a field is invalid; the
            message names the file and the field.
        UnknownArchitectureError: ``arch`` names no registered family.
    """
    config_path = folder / CONFIG_FILENAME
    if not config_path.is_file():
        raise CheckpointError(
            f"{folder} has no {CONFIG_FILENAME}: a model folder needs {WEIGHTS_FILENAME} and "
            f"{CONFIG_FILENAME} (convert an official checkpoint with `dicsr convert` to get both)"
        )
    try:
        size = config_path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise CheckpointError(
                f"{config_path} is {size:,} bytes; a model config is about 1 kB (limit {MAX_CONFIG_BYTES:,})"
            )
        text = config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read {config_path}: {exc}") from None
    try:
        return ModelConfig.from_json(text)
    except CheckpointError as exc:
        # Name the file, keeping the error's type (UnknownArchitectureError stays one).
        exc.args = (f"{config_path}: {exc}",)
        raise


def load_model_folder(
    folder: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | str = torch.float32,
    weights_file: str | os.PathLike[str] | None = None,
) -> NetworkAdapter:
    """Load a model folder strictly and return its adapter on ``device``/``dtype``.

    Nothing is built before it is checked: ``config.json`` field by field, then the weights file's
    header (keys, shapes, dtypes) against the network the config describes (built on the meta
    device, so a hostile config allocates nothing), then every value (finite); only then is the
    network built and loaded.

    Args:
        folder: directory holding ``config.json`` and ``model.safetensors``.
        weights_file: another safetensors file to pair with the folder's ``config.json``.

    Raises:
        ModelNotFoundError: the folder or weights file does not exist.
        CheckpointError: ``config.json`` missing or invalid (the message names the field).
        CorruptCheckpointError: the weights file cannot be parsed.
        ArchitectureMismatchError: the weights do not fit the network ``config.json`` describes.
        InvalidWeightsError: a tensor is not floating point where the network's is, or holds NaN
            or infinite values.
        UnsupportedDtypeError: the network cannot run in ``dtype`` on ``device``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelNotFoundError(f"{folder}: no such model folder")
    weights_path = Path(weights_file) if weights_file is not None else folder / WEIGHTS_FILENAME
    config = read_folder_config(folder)
    family = get_family(config.arch)
    what = (
        f"{weights_path.name} does not fit the {config.arch} network of {folder / CONFIG_FILENAME} "
        f"(preset {config.preset!r})"
    )
    check_state_dict(
        family.expected_tensors(config.arch_config),
        read_safetensors_header(weights_path),
        what=what,
        source=str(weights_path),
    )
    state_dict = read_safetensors(weights_path)
    adapter = family.build_adapter(config)
    load_state_dict_strictly(adapter.network, state_dict, what=what, source=str(weights_path))
    return adapter.to(device, dtype)
