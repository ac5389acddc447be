"""Getting weights into networks: the model zoo, hub downloads, model folders, official checkpoints.

>>> from dicsr.loading import load_model, list_models
>>> [entry.name for entry in list_models()][:2]
['dic-celeba', 'dicgan-celeba']
>>> adapter = load_model("dic-celeba")   # fetched, converted and cached once  doctest: +SKIP
>>> adapter = load_model("./converted/dic-celeba")         # a model folder   doctest: +SKIP

huggingface_hub and safetensors are imported only when a download or a file read needs them.
"""

from __future__ import annotations

from dicsr.loading.checkpoint import (
    DetectedArchitecture,
    convert_state_dict,
    detect_architecture,
    read_official_checkpoint,
)
from dicsr.loading.convert import convert_checkpoint, convert_official_checkpoint
from dicsr.loading.detector_weights import DETECTOR_WEIGHTS, detector_cache_dir, resolve_detector_weights
from dicsr.loading.download import HubReference
from dicsr.loading.model_folder import load_model_folder, save_model_folder
from dicsr.loading.registry import ModelEntry, get_model_entry, list_models
from dicsr.loading.resolve import download_model, is_cached, load_model

__all__ = [
    "DETECTOR_WEIGHTS",
    "DetectedArchitecture",
    "HubReference",
    "ModelEntry",
    "convert_checkpoint",
    "convert_official_checkpoint",
    "convert_state_dict",
    "detect_architecture",
    "detector_cache_dir",
    "download_model",
    "get_model_entry",
    "is_cached",
    "list_models",
    "load_model",
    "load_model_folder",
    "read_official_checkpoint",
    "resolve_detector_weights",
    "save_model_folder",
]
