"""The face detector a resolver builds for itself: which one, and how to get its weights.

A resolver that is handed a :class:`~dicsr.face.detect.FaceDetector` uses it. Otherwise it holds a
:class:`DetectorSpec` and builds the detector when a photo first needs detection, not at
construction: a resolver that only ever restores ``aligned`` faces needs no detector weights, and
nothing is downloaded before it is needed. The detector is built on the resolver's device at that
moment and moves with it afterwards (:meth:`~dicsr.pipeline.FaceSuperResolver.to`), so its device
never depends on whether ``to()`` came before or after the first photo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import get_args

import torch

from dicsr.errors import InvalidInputError
from dicsr.face.detect import DetectorNetwork, FaceDetector
from dicsr.face.select import DEFAULT_SCORE_THRESHOLD
from dicsr.pipeline._options import checked_flag

__all__ = ["DetectorSpec"]


@dataclass(frozen=True)
class DetectorSpec:
    """Which RetinaFace a resolver builds when a photo first needs detection.

    Attributes:
        network: the backbone, ``"mobile0.25"`` (fast) or ``"resnet50"`` (accurate).
        weights: a local weights file; ``None``: the dicsr cache (``$DICSR_CACHE_DIR/detectors``),
            downloaded there from the official release if missing (checked against its size and
            sha256 either way).
        score_threshold: minimum detector confidence; default
            :data:`~dicsr.face.select.DEFAULT_SCORE_THRESHOLD` (0.7), calibrated for restoring
            faces on annotated photos (docs/face-crops.md, "Score threshold"). A
            :class:`~dicsr.face.detect.FaceDetector` built by hand keeps its own default, 0.5.
        offline: never download the weights (``None``: ``DICSR_OFFLINE`` or ``HF_HUB_OFFLINE``).
        mirror: a server holding the release files by name, tried before the official release
            (``None``: ``$DICSR_MIRROR``).

    Raises:
        InvalidInputError: an attribute of the wrong type or out of range (the message names it).
    """

    network: DetectorNetwork = "mobile0.25"
    weights: str | os.PathLike[str] | None = None
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    offline: bool | None = None
    mirror: str | None = None

    def __post_init__(self) -> None:
        if self.network not in get_args(DetectorNetwork):
            raise InvalidInputError(
                f"detector must be one of {', '.join(map(repr, get_args(DetectorNetwork)))} or a "
                f"FaceDetector, got {self.network!r}"
            )
        if self.weights is not None and not isinstance(self.weights, (str, os.PathLike)):
            raise InvalidInputError(f"detector_weights must be a file path or None, got {self.weights!r}")
        threshold = self.score_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise InvalidInputError(f"score_threshold must be a number in [0, 1], got {threshold!r}")
        if self.offline is not None:
            checked_flag("offline", self.offline)
        if self.mirror is not None and not isinstance(self.mirror, str):
            raise InvalidInputError(f"mirror must be a base URL (a string) or None, got {self.mirror!r}")

    def build(self, device: str | torch.device) -> FaceDetector:
        """Fetch (or find) and verify the weights, then build the detector on ``device``.

        Raises:
            ModelNotFoundError: ``weights`` does not exist.
            IntegrityError: the weights do not match their published size or sha256.
            WeightsUnavailableError: offline without a cached copy, or the download failed.
        """
        from dicsr.weights import resolve_detector_weights

        path = resolve_detector_weights(self.network, self.weights, offline=self.offline, mirror=self.mirror)
        return FaceDetector(path, network=self.network, device=device, score_threshold=self.score_threshold)
