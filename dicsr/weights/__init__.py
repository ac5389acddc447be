"""Getting weights: the model zoo, the Hugging Face Hub, mirrors and official origins, the dicsr
cache of converted model folders, official-checkpoint reading and conversion, detector weights.

>>> from dicsr.weights import list_models, load_model
>>> name = list_models()[0].name                           # a zoo name
>>> adapter = load_model(name)   # fetched, verified, converted and cached once   doctest: +SKIP
>>> adapter = load_model("./converted/my-model")           # a model folder   doctest: +SKIP

A zoo name's weights come from the first source that delivers, each tried once: the dicsr cache
and the Hugging Face cache, the hub copy at its pinned revision, a mirror (``mirror=`` or
``$DICSR_MIRROR``), the official origin. An official checkpoint is checked against its published
fingerprint, read without running code, converted into ``$DICSR_CACHE_DIR/models/<name>/`` and
deleted; the converted folder is verified on every load.

Nothing here knows a network family: networks are built, checkpoints recognised and keys converted
through :mod:`dicsr.families`, and each family's zoo entries say where its official checkpoints come
from. The environment variables read here are listed, with their precedence, in
``dicsr/weights/_settings.py``. huggingface_hub, requests, gdown and safetensors are imported only
when a download or a file read needs them.
"""

from __future__ import annotations

from dicsr.weights._checkpoint import (
    DetectedArchitecture,
    convert_state_dict,
    detect_architecture,
    read_official_checkpoint,
)
from dicsr.weights._convert import ConvertedModel, convert_checkpoint, convert_official_checkpoint
from dicsr.weights._detector import (
    DETECTOR_WEIGHTS,
    DetectorWeights,
    detector_cache_dir,
    resolve_detector_weights,
)
from dicsr.weights._folder import load_model_folder, save_model_folder
from dicsr.weights._hub import HubReference
from dicsr.weights._resolve import download_model, is_cached, load_model
from dicsr.weights._zoo import ModelEntry, get_model_entry, list_models

__all__ = [
    "DETECTOR_WEIGHTS",
    "ConvertedModel",
    "DetectedArchitecture",
    "DetectorWeights",
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
