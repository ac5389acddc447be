"""Official DIC/DICGAN and SPARNet/SPARNetHD checkpoints: read, recognise, convert, load strictly.

Reading never executes code: files are opened with ``torch.load(weights_only=True)`` only, which
refuses any pickle that asks for an arbitrary global. Loading is always strict: the official DIC
loader uses ``strict=False`` and silently loads nothing from a ``module.``-prefixed file
(dic.md §4, §6.10); here every key must be consumed and every shape must match, or
:class:`~dicsr.errors.ArchitectureMismatchError` names the offending keys.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import pickle
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dicsr.errors import (
    ArchitectureMismatchError,
    CheckpointError,
    CorruptCheckpointError,
    ModelNotFoundError,
    UnknownArchitectureError,
)
from dicsr.loading.presets import CUSTOM_PRESET, arch_presets

__all__ = [
    "DetectedArchitecture",
    "OfficialCheckpoint",
    "check_state_dict",
    "convert_state_dict",
    "detect_architecture",
    "expected_shapes",
    "load_state_dict_strictly",
    "read_checkpoint",
    "read_official_checkpoint",
]

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]

# Wrappers around the generator's state dict, in the order they are tried: the DIC solver
# (`sr_align`, dic.md §4), the DICGAN solver (its generator; netD and optimizers are ignored),
# and the generic `model` key the official DIC loader also accepts.
_WRAPPER_KEYS = ("state_dict", "netG", "model")
_DATA_PARALLEL_PREFIX = "module."
_SPECTRAL_SUFFIXES = ("_orig", "_u", "_v")


@dataclass(frozen=True)
class OfficialCheckpoint:
    """An official checkpoint after unwrapping.

    Attributes:
        state_dict: the generator's tensors, ``module.`` prefixes removed.
        layout: how the file stored them (for logs and model cards).
        ignored: top-level entries that are not the generator (optimizers, discriminator, ...).
    """

    state_dict: StateDict
    layout: str
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class DetectedArchitecture:
    """What :func:`detect_architecture` recognised; unpacks as ``(arch, preset, arch_config)``.

    Attributes:
        arch: ``"dic"`` or ``"sparnet"``.
        preset: the released configuration, or ``"custom"`` for another consistent layout.
        arch_config: keyword arguments of the architecture's config dataclass.
    """

    arch: str
    preset: str
    arch_config: Mapping[str, Any]

    def __iter__(self) -> Iterator[Any]:
        return iter((self.arch, self.preset, self.arch_config))


# --- reading ----------------------------------------------------------------------------------


def read_official_checkpoint(path: str | os.PathLike[str]) -> StateDict:
    """The generator state dict stored in an official checkpoint file.

    Accepts the DIC solver layout (``state_dict``), the DICGAN layout (``netG``; ``netD`` and
    optimizers are ignored), a ``model`` wrapper, bare state dicts (SPARNet, SPARNetHD with
    spectral-norm ``weight_orig/_u/_v``) and ``module.``-prefixed keys.

    Raises:
        ModelNotFoundError: ``path`` does not exist.
        CorruptCheckpointError: zero bytes, truncated, not a PyTorch checkpoint, a pickle that
            needs arbitrary globals (refused, never executed), or no state dict inside.
    """
    return read_checkpoint(path).state_dict


def read_checkpoint(path: str | os.PathLike[str]) -> OfficialCheckpoint:
    """Like :func:`read_official_checkpoint`, also saying which layout the file used."""
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CorruptCheckpointError(f"{path} is empty (0 bytes); download or copy it again")
    obj = _torch_load_safely(path)
    return _unwrap(obj, path)


def _torch_load_safely(path: Path) -> Any:
    try:
        with warnings.catch_warnings():
            # Old checkpoints use pickle protocols torch does not write; it warns but reads them fine.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CorruptCheckpointError(f"{path}: {_weights_only_reason(str(exc))}") from None
    except Exception as exc:
        # Truncated zip archives raise RuntimeError, truncated legacy files EOFError/RuntimeError,
        # text and other non-pickles KeyError/ValueError, damaged legacy storage tables
        # AssertionError (found by tests/test_fuzz.py): all mean "not a readable checkpoint".
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptCheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or not a checkpoint: {reason})"
        ) from None


def _weights_only_reason(message: str) -> str:
    """Turn torch's long weights_only refusal into one actionable sentence."""
    # Wording varies across torch versions: "unsupported GLOBAL x", "Unsupported global: GLOBAL x was".
    blocked = re.search(r"unsupported (?:global: )?GLOBAL (\S+)", message, flags=re.IGNORECASE)
    if blocked:
        return (
            f"refused to load: the file asks to import {blocked.group(1)}, which a weights-only load "
            "never executes (torch.load(weights_only=True)); a genuine checkpoint holds only tensors. "
            "If you trust the file, re-save its state dict with torch.save(model.state_dict(), ...)"
        )
    return "not a PyTorch checkpoint (the weights-only unpickler cannot read it; truncated or another format)"


def _unwrap(obj: Any, path: Path) -> OfficialCheckpoint:
    if not isinstance(obj, Mapping):
        raise CorruptCheckpointError(
            f"{path} holds a {type(obj).__name__}, not a checkpoint (expected a dict of tensors)"
        )
    layout, ignored = "bare state dict", ()
    for key in _WRAPPER_KEYS:
        if isinstance(obj.get(key), Mapping):
            ignored = tuple(sorted(str(k) for k in obj if k != key))
            layout = f"'{key}' entry of a training checkpoint"
            if ignored:
                logger.info("%s: using %r, ignoring %s", path, key, ", ".join(ignored))
            obj = obj[key]
            break
    non_tensors = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
    if non_tensors or not obj:
        found = ", ".join(non_tensors[:8]) or "nothing"
        raise CorruptCheckpointError(
            f"{path}: no state dict found (expected a dict of tensors, or one under "
            f"{' / '.join(_WRAPPER_KEYS)}; found non-tensor entries: {found})"
        )
    state_dict = {str(k): v for k, v in obj.items()}
    # DataParallel wraps every key; the official DIC loader would silently load nothing (dic.md §4).
    while state_dict and all(k.startswith(_DATA_PARALLEL_PREFIX) for k in state_dict):
        state_dict = {k[len(_DATA_PARALLEL_PREFIX) :]: v for k, v in state_dict.items()}
        layout += ", 'module.' prefix removed"
    return OfficialCheckpoint(state_dict=state_dict, layout=layout, ignored=ignored)


# --- recognising -------------------------------------------------------------------------------


def detect_architecture(state_dict: Mapping[str, torch.Tensor]) -> DetectedArchitecture:
    """Recognise the architecture and preset of a generator state dict from key names and shapes.

    DIC is recognised by its ``conv_in``/``first_block``/``HG`` keys, SPARNet by
    ``encoder``/``out_conv``. A SPARNet layout is read from the checkpoint (number of encoder,
    body and decoder blocks, 1-channel vs per-channel attention maps, BatchNorm running stats vs
    InstanceNorm, widths, hourglass depth; spectral-norm ``weight_orig`` counts as ``weight``) and
    named after the released preset whose keys and shapes it reproduces exactly (SPARNet 1154
    keys, Light 605, HD 892 with a 102-channel stem), else ``"custom"`` when another consistent
    layout reproduces them. A checkpoint of a known family that no layout reproduces (a damaged or
    edited file) is reported as the closest preset: loading it strictly then names every missing,
    unexpected and mis-shaped key.

    Raises:
        UnknownArchitectureError: the keys match no architecture (the message lists what was seen).
    """
    for arch, looks_like, infer in (
        ("dic", _looks_like_dic, lambda sd: [_infer_dic_config(sd)]),
        ("sparnet", _looks_like_sparnet, _sparnet_candidates),
    ):
        if looks_like(state_dict):
            return _best_layout(arch, state_dict, infer(state_dict))
    raise UnknownArchitectureError(
        f"the checkpoint matches no architecture dicsr knows (DIC/DICGAN, SPARNet/SPARNetHD): "
        f"{len(state_dict)} tensors; {_describe(state_dict)}"
    )


def _describe(state_dict: Mapping[str, torch.Tensor]) -> str:
    prefixes = sorted({k.split(".", 1)[0] for k in state_dict})
    sample = [f"{k} {tuple(v.shape)}" for k, v in list(state_dict.items())[:5]]
    shown = ", ".join(prefixes[:12]) + (", ..." if len(prefixes) > 12 else "")
    return f"top-level names: {shown}; first keys: {'; '.join(sample) or 'none'}"


def _looks_like_dic(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return all(k in state_dict for k in ("conv_in.0.weight", "conv_out.0.weight", "HG.compress_in.weight"))


def _looks_like_sparnet(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return (
        _weight(state_dict, "encoder.0.conv2d") is not None
        and _weight(state_dict, "out_conv.conv2d") is not None
    )


def _weight(state_dict: Mapping[str, torch.Tensor], stem: str) -> torch.Tensor | None:
    """A conv weight, plain or as the spectral-norm ``weight_orig`` (same shape, sparnet.md §3)."""
    return state_dict.get(f"{stem}.weight", state_dict.get(f"{stem}.weight_orig"))


def _indices(state_dict: Mapping[str, torch.Tensor], prefix: str) -> list[int]:
    found = {k[len(prefix) :].split(".", 1)[0] for k in state_dict if k.startswith(prefix)}
    return sorted(int(i) for i in found if i.isdigit())


def _infer_dic_config(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """DIC hyper-parameters readable from shapes (dic.md §4); steps and scale keep their defaults."""
    defaults = dataclasses.asdict(arch_presets("dic")["dic"])
    conv_in = state_dict["conv_in.0.weight"]
    return {
        **defaults,
        "in_channels": int(conv_in.shape[1]),
        "out_channels": int(state_dict["conv_out.0.weight"].shape[0]),
        "num_features": int(conv_in.shape[0]) // 4,  # conv_in feeds PixelShuffle(2): 4C channels
        "num_groups": len(_indices(state_dict, "first_block.upBlocks.")) or defaults["num_groups"],
        "hg_num_features": int(state_dict["HG.compress_in.weight"].shape[0]) // 2,
        "num_fusion_blocks": len(_indices(state_dict, "block.fusion_block.resnet."))
        or defaults["num_fusion_blocks"],
    }


def _hourglass_depth(state_dict: Mapping[str, torch.Tensor], block: str) -> int:
    """Levels of a block's attention hourglass: one ``b1_<level>`` skip conv per level (sparnet.md §2)."""
    return len(_indices(state_dict, f"{block}.att_func.b1_"))


def _sparnet_candidates(state_dict: Mapping[str, torch.Tensor]) -> list[dict[str, Any]]:
    """SPARNet layouts consistent with the checkpoint's block counts, widths and norms (sparnet.md §3).

    Sizes are not stored in weights (the network is fully convolutional): a custom layout is
    described with a 16 px body unless that cannot be built.
    """
    down_steps = len(_indices(state_dict, "encoder.")) - 1  # encoder.0 is the stem conv
    up_steps = len(_indices(state_dict, "decoder."))
    body = len(_indices(state_dict, "res_layers."))
    blocks = [f"encoder.{i}" for i in range(1, down_steps + 1)] + [f"res_layers.{i}" for i in range(body)]
    blocks += [f"decoder.{i}" for i in range(up_steps)]
    if not blocks:
        return []
    out_block = _weight(state_dict, f"{blocks[0]}.att_func.out_block.0.conv2d")
    attention = "2d" if out_block is not None and out_block.shape[0] == 1 else "3d"
    norm = "bn" if any(k.endswith(".running_mean") for k in state_dict) else "in"
    # The first block's hourglass has log2(64 / bottleneck) levels; body blocks one more than the
    # last encoder block (sparnet.md §3 pseudo-code).
    first_depth = _hourglass_depth(state_dict, blocks[0])
    initial_depth = first_depth if down_steps else first_depth - 1
    widths = [int(w.shape[0]) for b in blocks if (w := _weight(state_dict, f"{b}.conv1.conv2d")) is not None]
    stem = _weight(state_dict, "encoder.0.conv2d")
    last = _weight(state_dict, "out_conv.conv2d")
    assert stem is not None and last is not None  # guaranteed by _looks_like_sparnet
    all_widths = [int(stem.shape[0]), int(last.shape[1]), *widths]
    candidates = []
    for min_channels in sorted({min(all_widths), int(stem.shape[0]), 32}):
        for min_feat_size in (16, 32, 8, 64, 4):
            candidates.append(
                {
                    "min_channels": min_channels,
                    "max_channels": max(all_widths),
                    "in_size": min_feat_size * 2**down_steps,
                    "out_size": min_feat_size * 2**up_steps,
                    "min_feat_size": min_feat_size,
                    "res_depth": body - 3 + down_steps,
                    "attention": attention,
                    "norm": norm,
                    "bottleneck_size": max(1, 64 >> max(initial_depth, 0)),
                }
            )
    return candidates


def _best_layout(
    arch: str, state_dict: Mapping[str, torch.Tensor], candidates: list[dict[str, Any]]
) -> DetectedArchitecture:
    """The released preset reproducing the checkpoint's keys and shapes exactly, else a custom
    candidate that does, else the closest preset - whose strict load then names every difference."""
    signature = _signature(state_dict)
    presets = arch_presets(arch)
    for name, preset_config in presets.items():
        if signature == _preset_signature(arch, name):
            return DetectedArchitecture(arch, name, dataclasses.asdict(preset_config))
    for config in candidates:
        if signature == _config_signature(arch, config):
            return DetectedArchitecture(arch, CUSTOM_PRESET, config)
    closest = min(presets, key=lambda name: _difference(signature, _preset_signature(arch, name)))
    logger.info("checkpoint matches no %s layout exactly; closest preset: %s", arch, closest)
    return DetectedArchitecture(arch, closest, dataclasses.asdict(presets[closest]))


def _difference(actual: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]] | None) -> int:
    if expected is None:
        return len(actual)
    return len(set(actual) ^ set(expected)) + sum(
        1 for k in actual if k in expected and actual[k] != expected[k]
    )


def _signature(state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Keys and shapes as the (folded) network would hold them: ``weight_orig`` counts as ``weight``."""
    signature = {}
    for key, value in state_dict.items():
        stem, _, suffix = key.rpartition("_")
        if f"_{suffix}" in _SPECTRAL_SUFFIXES and f"{stem}_orig" in state_dict:
            if suffix == "orig":
                signature[stem] = tuple(value.shape)
            continue
        signature[key] = tuple(value.shape)
    return signature


@functools.lru_cache(maxsize=16)
def _preset_signature(arch: str, preset: str) -> dict[str, tuple[int, ...]]:
    return _config_signature(arch, dataclasses.asdict(arch_presets(arch)[preset]))


def _config_signature(arch: str, arch_config: Mapping[str, Any]) -> dict[str, tuple[int, ...]] | None:
    try:
        return expected_shapes(arch, arch_config)
    except (TypeError, ValueError):
        return None  # a candidate layout the architecture refuses to build


def expected_shapes(arch: str, arch_config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the network ``arch_config`` describes (built on the meta device: no memory)."""
    with torch.device("meta"):
        network = _build_network(arch, arch_config)
    return {k: tuple(v.shape) for k, v in network.state_dict().items()}


def _build_network(arch: str, arch_config: Mapping[str, Any]) -> nn.Module:
    if arch == "dic":
        from dicsr.archs.dic import DIC, DICConfig

        return DIC(DICConfig(**arch_config))
    if arch == "sparnet":
        from dicsr.archs.sparnet import SPARNet, SPARNetConfig

        return SPARNet(SPARNetConfig(**arch_config))
    raise UnknownArchitectureError(f"unknown architecture {arch!r}; known: dic, sparnet")


# --- converting and loading -------------------------------------------------------------------


def convert_state_dict(
    state_dict: Mapping[str, torch.Tensor], arch: str, arch_config: Mapping[str, Any]
) -> StateDict:
    """Map an official generator state dict onto dicsr's key layout for ``arch``.

    Key names are the official ones, so the only change is folding SPARNetHD's spectral norm
    (``weight_orig``/``weight_u``/``weight_v`` -> ``weight = weight_orig / sigma``, as torch does in
    eval mode, sparnet.md §3). Nothing is dropped: every remaining key must be consumed by the
    strict load that follows (:func:`load_state_dict_strictly`).

    Raises:
        ArchitectureMismatchError: spectral-norm buffers that do not fit their weight.
    """
    del arch_config  # the layout is checked by the strict load; kept for a stable signature
    converted = dict(state_dict)
    if arch == "sparnet" and any(k.endswith("_orig") for k in converted):
        from dicsr.archs.sparnet import fold_spectral_norm

        try:
            converted = fold_spectral_norm(converted)
        except ValueError as exc:
            raise ArchitectureMismatchError(f"cannot fold spectral norm: {exc}") from None
    return converted


def check_state_dict(
    expected: Mapping[str, tuple[int, ...]], state_dict: Mapping[str, torch.Tensor], *, what: str
) -> None:
    """Raise :class:`ArchitectureMismatchError` unless ``state_dict`` has exactly these keys and shapes."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        (k, tuple(expected[k]), tuple(v.shape))
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k])
    ]
    if missing or unexpected or mismatched:
        raise ArchitectureMismatchError(what, missing=missing, unexpected=unexpected, mismatched=mismatched)


def load_state_dict_strictly(
    network: nn.Module, state_dict: Mapping[str, torch.Tensor], *, what: str
) -> None:
    """Load every tensor of ``state_dict`` into ``network``, or raise naming what does not fit.

    Args:
        what: start of the error message (e.g. ``"DIC_CelebA.pth does not fit dic preset 'dic'"``).

    Raises:
        ArchitectureMismatchError: missing, unexpected or mis-shaped keys.
        CheckpointError: a tensor the network keeps in floating point is stored as integers or
            booleans, or holds NaN/infinite values.
    """
    reference = network.state_dict()
    expected = {k: tuple(v.shape) for k, v in reference.items()}
    check_state_dict(expected, state_dict, what=what)
    check_tensor_values(reference, state_dict, what=what)
    network.load_state_dict(state_dict, strict=True)


def check_tensor_values(
    reference: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor], *, what: str
) -> None:
    """Refuse weights that would load but compute garbage, naming the first offending tensor.

    ``load_state_dict`` casts silently: int64 weights (truncated values) or NaN/inf weights load and
    give NaN faces. A tensor must be floating point wherever the network's is (integer counters
    such as BatchNorm's ``num_batches_tracked`` stay integers), and finite.
    """
    for key, tensor in state_dict.items():
        if reference[key].is_floating_point() and not tensor.is_floating_point():
            raise CheckpointError(
                f"{what}: tensor {key!r} is stored as {tensor.dtype}, expected floating point "
                "(the file was not saved from this network's weights)"
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{what}: tensor {key!r} holds NaN or infinite values")
