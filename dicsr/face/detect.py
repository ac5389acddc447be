"""Face detection with facexlib's RetinaFace, tuned for the tiny faces 8× face SR is for.

Coordinates: every point and box is in **source-photo pixels with integer = pixel centre**
(pixel ``(row i, column j)`` is centred on ``(x=j, y=i)``, its area is ``[j-0.5, j+0.5)``; the
dlib/OpenCV convention). Boxes are ``(x0, y0, x1, y1)`` with ``x1 - x0`` the face width.

Why not just call RetinaFace once: its smallest anchors are 16 px, so faces under ~16–20 px (the
*input size* of DIC and SPARNet) are missed at native resolution, while huge photos are slow and
gain nothing (their faces are big). :class:`FaceDetector` therefore runs

1. a *native pass* at a scale that shrinks photos whose long side exceeds ``max_detection_side``
   and enlarges thumbnails whose long side is under ``min_detection_side``, and
2. a *tiny-face pass* at twice that scale (within a pixel budget) whose detections are kept only
   if they are too small for the native pass to be reliable (< ``TINY_FACE_PX`` at native-pass
   scale). Restricting the second pass to small faces matters: on an upsampled photo RetinaFace
   also fires on large blurry non-faces (cat faces, record sleeves) that the native pass rejects.

Both passes are mapped back to source coordinates and merged with non-maximum suppression.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from dicsr._checkpoint_io import load_state_dict_strictly, read_torch_checkpoint
from dicsr._devices import resolve_device
from dicsr.errors import InvalidInputError, ModelNotFoundError, UnsupportedDtypeError

__all__ = ["TINY_FACE_PX", "DetectedFace", "FaceDetector", "nearest_to_center"]

logger = logging.getLogger(__name__)

DetectorNetwork = Literal["mobile0.25", "resnet50"]

#: A face narrower than this (in pixels at native-pass scale) is "tiny": RetinaFace's 16-px
#: anchors find such faces unreliably, so they are taken from the 2× tiny-face pass instead.
TINY_FACE_PX = 32.0

# RetinaFace downsamples by 32; smaller detection images are padded (bottom/right, so coordinates
# are unchanged) to at least this size.
_MIN_NETWORK_SIDE = 32
# Thumbnails are never enlarged more than this for the native pass.
_MAX_THUMBNAIL_UPSCALE = 8.0


@dataclass(frozen=True, eq=False)
class DetectedFace:
    """One detected face, in source-photo pixel coordinates (integer = pixel centre).

    Attributes:
        box: ``(x0, y0, x1, y1)`` face box as RetinaFace draws it (forehead to chin, ear to ear).
        score: detector confidence in ``[0, 1]``.
        points5: ``5×2`` float64 ``(x, y)`` landmarks in RetinaFace order: image-left eye,
            image-right eye, nose tip, image-left mouth corner, image-right mouth corner.
    """

    box: tuple[float, float, float, float]
    score: float
    points5: np.ndarray

    @property
    def width(self) -> float:
        """Box width in source pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in source pixels."""
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        """Box centre ``(x, y)``."""
        return (self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0


class FaceDetector:
    """RetinaFace (facexlib's network class) loaded from a local weights file.

    Nothing is downloaded: the network is built directly and the given file is loaded with
    ``torch.load(weights_only=True)`` and a strict state-dict match.

    Thread safety: one instance may be shared between threads. facexlib's ``detect_faces`` keeps
    per-call state on the module (``resize``, ``scale``), so calls are serialised by a lock;
    run one detector per thread for parallel detection.

    Args:
        weights: RetinaFace state dict file (facexlib's ``detection_mobilenet0.25_Final.pth`` or
            ``detection_Resnet50_Final.pth``; a ``module.`` prefix is stripped).
        network: backbone the weights belong to.
        device: torch device for the network.
        score_threshold: minimum detector confidence.
        nms_threshold: IoU above which overlapping detections are merged.
        half: run in float16 (CUDA only).
        max_detection_side: photos with a longer side are shrunk to it for the native pass.
        min_detection_side: photos with a shorter *long* side are enlarged to it (at most 8×).
        tiny_face_pass: run the 2× pass for faces smaller than :data:`TINY_FACE_PX`.
        tiny_pass_max_pixels: pixel budget of the tiny-face pass image; above it the pass runs at a
            lower scale, or not at all when that would be under 1.5× the native pass.
        min_face_size: drop faces whose box is narrower or shorter than this (source pixels).

    Raises:
        ModelNotFoundError: the weights file does not exist.
        CorruptCheckpointError: the file is not a loadable checkpoint.
        ArchitectureMismatchError: the state dict does not fit the chosen ``network``.
        UnsupportedDeviceError, UnsupportedDtypeError: bad ``device`` / ``half`` on CPU.
    """

    def __init__(
        self,
        weights: str | Path,
        *,
        network: DetectorNetwork = "mobile0.25",
        device: str | torch.device = "cpu",
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        half: bool = False,
        max_detection_side: int = 1600,
        min_detection_side: int = 320,
        tiny_face_pass: bool = True,
        tiny_pass_max_pixels: int = 4_000_000,
        min_face_size: float = 8.0,
    ) -> None:
        if network not in ("mobile0.25", "resnet50"):
            raise InvalidInputError(f"network must be 'mobile0.25' or 'resnet50', got {network!r}")
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 < nms_threshold <= 1.0:
            raise InvalidInputError(
                f"score_threshold must be in [0, 1] and nms_threshold in (0, 1], "
                f"got {score_threshold} and {nms_threshold}"
            )
        self.device = resolve_device(device)
        if half and self.device.type != "cuda":
            raise UnsupportedDtypeError("half-precision detection needs a CUDA device; use half=False")
        self.network = network
        self.half = bool(half)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_detection_side = int(max_detection_side)
        self.min_detection_side = int(min_detection_side)
        self.tiny_face_pass = bool(tiny_face_pass)
        self.tiny_pass_max_pixels = int(tiny_pass_max_pixels)
        self.min_face_size = float(min_face_size)
        self._lock = threading.Lock()
        self._net = _build_retinaface(Path(weights), network, self.device, half)

    def to(self, device: str | torch.device) -> FaceDetector:
        """Move the network to ``device`` (like ``nn.Module.to``); returns ``self``.

        Raises:
            UnsupportedDeviceError: the device is not available.
            UnsupportedDtypeError: a half-precision detector moved off CUDA.
        """
        device = resolve_device(device)
        if self.half and device.type != "cuda":
            raise UnsupportedDtypeError(
                "half-precision detection needs a CUDA device; build the detector with half=False"
            )
        with self._lock:
            _place_retinaface(self._net, device)
            self.device = device
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FaceDetector:
        # A copy with its own network and its own lock (a lock cannot be copied, and sharing one
        # would serialise two independent detectors).
        copied = copy.copy(self)
        with self._lock:
            copied._net = copy.deepcopy(self._net, memo)
        copied._lock = threading.Lock()
        return copied

    def detect(
        self,
        rgb_uint8: np.ndarray,
        *,
        max_faces: int | None = None,
        only_center_face: bool = False,
    ) -> list[DetectedFace]:
        """Detect faces in an ``H×W×3`` uint8 RGB photo.

        Args:
            rgb_uint8: the photo (RGB; :meth:`dicsr.image.LoadedImage.to_uint8` gives it).
            max_faces: keep at most this many faces (the highest-scoring ones).
            only_center_face: keep only the face whose box centre is nearest the image centre.

        Returns:
            Faces sorted by score, highest first (ties: larger box first); empty if none.
        """
        _check_rgb_uint8(rgb_uint8)
        if max_faces is not None and max_faces < 0:
            raise InvalidInputError(f"max_faces must be >= 0, got {max_faces}")
        height, width = rgb_uint8.shape[:2]
        native_scale = self._native_scale(height, width)
        rows = [self._detect_at_scale(rgb_uint8, native_scale)]
        tiny_scale = self._tiny_pass_scale(height, width, native_scale)
        if tiny_scale is not None:
            tiny = self._detect_at_scale(rgb_uint8, tiny_scale)
            short_side = np.minimum(tiny[:, 2] - tiny[:, 0], tiny[:, 3] - tiny[:, 1])
            rows.append(tiny[short_side * native_scale < TINY_FACE_PX])
        faces = _to_faces(_merge(np.concatenate(rows), self.nms_threshold), self.min_face_size)
        if only_center_face and faces:
            faces = [nearest_to_center(faces, width, height)]
        return faces[:max_faces] if max_faces is not None else faces

    # -- passes --------------------------------------------------------------------------------

    def _native_scale(self, height: int, width: int) -> float:
        long_side = max(height, width)
        if long_side > self.max_detection_side:
            return self.max_detection_side / long_side
        if long_side < self.min_detection_side:
            return min(self.min_detection_side / long_side, _MAX_THUMBNAIL_UPSCALE)
        return 1.0

    def _tiny_pass_scale(self, height: int, width: int, native_scale: float) -> float | None:
        if not self.tiny_face_pass:
            return None
        scale = min(2.0 * native_scale, math.sqrt(self.tiny_pass_max_pixels / (height * width)))
        return scale if scale >= 1.5 * native_scale else None

    def _detect_at_scale(self, rgb_uint8: np.ndarray, scale: float) -> np.ndarray:
        """Raw detections ``(N, 15)``: box, score, 5 points, mapped to source coordinates."""
        height, width = rgb_uint8.shape[:2]
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = rgb_uint8
        if size != (width, height):
            image = np.asarray(Image.fromarray(rgb_uint8).resize(size, Image.Resampling.BICUBIC))
        # facexlib wants OpenCV's BGR order (its mean is (104, 117, 123) in BGR).
        bgr = _pad_to_min_side(np.ascontiguousarray(image[:, :, ::-1]), _MIN_NETWORK_SIDE)
        with self._lock, torch.inference_mode():
            raw = self._net.detect_faces(
                bgr,
                conf_threshold=self.score_threshold,
                nms_threshold=self.nms_threshold,
                use_origin_size=True,
            )
        raw = np.asarray(raw, dtype=np.float64).reshape(-1, 15)
        # RetinaFace regresses against anchors centred on (k + 0.5)·stride, i.e. in pixel-edge
        # coordinates; x_src = x_edge / scale − 0.5 also undoes the detection resize exactly
        # (Pillow maps pixel edges onto pixel edges). Per-axis factors absorb size rounding.
        factors = np.array([size[0] / width, size[1] / height])
        coords = np.concatenate([raw[:, :4], raw[:, 5:]], axis=1)
        coords = coords / np.tile(factors, 7) - 0.5
        return np.concatenate([coords[:, :4], raw[:, 4:5], coords[:, 4:]], axis=1)


def nearest_to_center(faces: Sequence[DetectedFace], width: int, height: int) -> DetectedFace:
    """The face whose box centre is nearest the centre of a ``width × height`` photo (ties: the
    first); ``faces`` must not be empty."""
    return min(faces, key=lambda f: math.dist(f.center, ((width - 1) / 2, (height - 1) / 2)))


def _to_faces(rows: np.ndarray, min_face_size: float) -> list[DetectedFace]:
    faces = [
        DetectedFace(
            box=(float(row[0]), float(row[1]), float(row[2]), float(row[3])),
            score=float(row[4]),
            points5=row[5:15].reshape(5, 2).copy(),
        )
        for row in rows
        if min(row[2] - row[0], row[3] - row[1]) >= min_face_size
    ]
    return sorted(faces, key=lambda f: (-f.score, -(f.width * f.height)))


def _merge(rows: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Non-maximum suppression over detections of several passes (highest score wins)."""
    if len(rows) == 0:
        return rows
    from torchvision.ops import nms  # torchvision is a declared dependency; imported lazily

    keep = nms(torch.from_numpy(rows[:, :4]), torch.from_numpy(rows[:, 4]), iou_threshold)
    return rows[keep.numpy()]


def _pad_to_min_side(image: np.ndarray, min_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    if height >= min_side and width >= min_side:
        return image
    padded = np.zeros((max(height, min_side), max(width, min_side), 3), dtype=image.dtype)
    padded[:height, :width] = image
    return padded


def _check_rgb_uint8(image: Any) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
        raise InvalidInputError(
            f"detect() takes an H×W×3 uint8 RGB array, got {desc}; use dicsr.image.to_uint8 for floats"
        )
    if min(image.shape[:2]) == 0:
        raise InvalidInputError(f"cannot detect faces in an empty image of shape {image.shape}")


# --- building the network -------------------------------------------------------------------------


def _build_retinaface(weights: Path, network: DetectorNetwork, device: torch.device, half: bool) -> Any:
    if not weights.is_file():
        raise ModelNotFoundError(
            f"RetinaFace weights not found: {weights}; pass the path of facexlib's "
            f"detection_{'mobilenet0.25' if network == 'mobile0.25' else 'Resnet50'}_Final.pth"
        )
    state = read_torch_checkpoint(weights).state_dict
    # Built on CPU first so a mismatch is reported before anything is moved to the device.
    with warnings.catch_warnings():
        # facexlib builds its ResNet-50 backbone with torchvision's deprecated `pretrained=False`;
        # the warning is about facexlib's call, not anything a dicsr user can change.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.models\._utils")
        net = _retinaface_class()(network_name=network, half=False, phase="test", device=torch.device("cpu"))
    load_state_dict_strictly(
        net, state, what=f"{weights} is not a RetinaFace {network} state dict (check the network= argument)",
        source=str(weights),
    )
    net.half_inference = half
    _place_retinaface(net, device)
    net = net.eval()
    return net.half() if half else net


def _place_retinaface(net: Any, device: torch.device) -> None:
    """Move facexlib's RetinaFace to ``device``: its weights, and the device and mean it keeps as plain
    attributes; cached anchor priors of the old device are dropped."""
    net.device = device
    net.mean_tensor = net.mean_tensor.to(device)
    net.to(device)
    net.__dict__.pop("_prior_cache", None)


#: Input sizes whose anchor priors a detector keeps (a service sees a few photo sizes over and over).
_PRIOR_CACHE_SIZES = 8


@functools.cache
def _retinaface_class() -> type:
    """facexlib's ``RetinaFace`` with its anchor priors cached per input size.

    facexlib rebuilds the priors in a Python loop on every call: about a third of the detection
    time of a 500×332 photo with its 2× tiny-face pass. The subclass overrides only the private
    step that builds them (``__detect_faces``, name-mangled); if a facexlib release renames it, the
    override is simply not called and detection stays correct, only slower (a test checks the
    cache is used). Defined on first use: facexlib pulls in OpenCV and torchvision, which
    ``import dicsr`` should not pay for.
    """
    from facexlib.detection.retinaface import RetinaFace

    class RetinaFaceWithPriorCache(RetinaFace):
        def _RetinaFace__detect_faces(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            # facexlib's __detect_faces, with the priors from the cache.
            height, width = inputs.shape[2:]
            self.scale = torch.tensor([width, height] * 2, dtype=torch.float32, device=self.device)
            self.scale1 = torch.tensor([width, height] * 5, dtype=torch.float32, device=self.device)
            inputs = inputs.to(self.device)
            if self.half_inference:
                inputs = inputs.half()
            loc, conf, landmarks = self(inputs)
            return loc, conf, landmarks, self.priors_for(height, width)

        def priors_for(self, height: int, width: int) -> torch.Tensor:
            """The anchor priors of an input of ``height × width`` (cached)."""
            cache: dict[tuple[int, int], torch.Tensor] = self.__dict__.setdefault("_prior_cache", {})
            key = (int(height), int(width))
            if key not in cache:
                if len(cache) >= _PRIOR_CACHE_SIZES:
                    del cache[next(iter(cache))]  # the oldest size
                cache[key] = _anchor_priors(self.cfg, *key).to(self.device)
            return cache[key]

    return RetinaFaceWithPriorCache


def _anchor_priors(cfg: Mapping[str, Any], height: int, width: int) -> torch.Tensor:
    """RetinaFace's anchor priors ``(N, 4)`` = (cx, cy, w, h) relative to a ``height × width`` input.

    Equal, bit for bit, to facexlib's ``PriorBox(cfg, (height, width)).forward()``: the same float64
    expressions in the same order (feature map, row, column, anchor size), vectorised.
    """
    blocks = []
    for step, min_sizes in zip(cfg["steps"], cfg["min_sizes"], strict=True):
        centre_y = (np.arange(math.ceil(height / step)) + 0.5) * step / height
        centre_x = (np.arange(math.ceil(width / step)) + 0.5) * step / width
        grid_y, grid_x = np.meshgrid(centre_y, centre_x, indexing="ij")
        per_size = []
        for size in min_sizes:
            anchor_w, anchor_h = np.full_like(grid_x, size / width), np.full_like(grid_y, size / height)
            per_size.append(np.stack([grid_x, grid_y, anchor_w, anchor_h], axis=-1))
        # rows, columns, then anchor sizes: facexlib's order
        blocks.append(np.stack(per_size, axis=2).reshape(-1, 4))
    priors = torch.from_numpy(np.concatenate(blocks).astype(np.float32))
    return priors.clamp_(min=0, max=1) if cfg["clip"] else priors
