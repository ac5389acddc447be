"""``FaceSuperResolver``: detect, crop as each model was trained, super-resolve, paste back.

The pipeline only composes parts that live elsewhere:

* :mod:`dicsr.image` reads any input into float RGB (+ alpha), upscales the background and
  rebuilds outputs;
* :mod:`dicsr.face.detect` finds faces (facexlib RetinaFace);
* :mod:`dicsr.face.crop` cuts each face out the way its model was trained;
* :mod:`dicsr.families` runs the network (normalisation lives in the family's adapter) and says
  what the network can do (landmarks, re-cropping, memory per face);
* :mod:`dicsr.face.landmarks` decodes heatmaps; :mod:`dicsr.face.paste` blends faces back.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dicsr._devices import resolve_device, resolve_dtype
from dicsr._output_size import check_output_size, checked_upscale, default_output_scale
from dicsr.errors import InvalidInputError
from dicsr.face import crop as face_crop
from dicsr.face.detect import DetectorNetwork
from dicsr.face.landmarks import official_argmax_landmarks, subpixel_landmarks
from dicsr.face.paste import paste_faces
from dicsr.families import Family, ModelConfig, NetworkAdapter, get_family
from dicsr.image import (
    DEFAULT_MAX_PIXELS,
    Background,
    BackgroundUpsampler,
    ChannelOrder,
    ImageOutput,
    LoadedImage,
    load_image,
    to_output,
)
from dicsr.results import EnhanceResult, RestoredFace

__all__ = ["BackgroundUpsampler", "FaceSuperResolver"]

logger = logging.getLogger(__name__)

#: Default limit on the restored photo's size (``max_output_pixels``): an 8x upscale of a 12 MP
#: photo would need ~9 GB of float32 pixels.
DEFAULT_MAX_OUTPUT_PIXELS = 64_000_000


@dataclass(frozen=True)
class _PreparedFace:
    """A face between cropping and the network: its crop plus what the detector said."""

    crop: face_crop.FaceCrop
    detection_box: tuple[float, float, float, float] | None
    score: float
    points5: np.ndarray | None


@dataclass(frozen=True)
class _NetworkResult:
    """One face's network output, moved off the device: float32 HWC RGB in [0, 1]."""

    image: np.ndarray
    heatmap: torch.Tensor | None  # K x h x w, final step (DIC); None for networks without landmarks
    steps: tuple[np.ndarray, ...]  # every recurrent step's image, only when requested

    def landmarks(self, hr_size: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(sub-pixel, official argmax) landmarks in face coordinates, or None."""
        if self.heatmap is None:
            return None
        stride = hr_size // self.heatmap.shape[-1]  # 128 / 32 = 4 for DIC
        batch = self.heatmap[None]
        return (subpixel_landmarks(batch, stride=stride)[0].numpy(),
                official_argmax_landmarks(batch, stride=stride)[0].numpy())


class FaceSuperResolver:
    """Restore every face of a photo with a face super-resolution network.

    Args:
        model: a model-zoo name (``dicsr.list_models()``), ``"hf-hub:org/repo[@rev]"``, a
            local model folder, ``.safetensors`` file or official ``.pth`` checkpoint, or an
            already loaded :class:`~dicsr.families.NetworkAdapter`.
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda:1"``, ...
        dtype: network precision: ``float32`` (default), ``float16`` (CUDA/MPS) or ``bfloat16``.
        channels_last: run convolutions in NHWC memory format (faster on recent GPUs/CPUs).
        detector: RetinaFace backbone, ``"mobile0.25"`` (fast) or ``"resnet50"`` (accurate).
        detector_weights: local detector weights file; by default they are fetched into the
            dicsr cache (``$DICSR_CACHE_DIR``, default ``~/.cache/dicsr``).
        score_threshold: minimum detector confidence.
        max_faces: keep at most this many faces (highest scores first).
        only_center_face: keep only the face closest to the image centre.
        upscale: output scale of the whole photo; default the model's scale (8 for DIC, 1 for
            SPARNetHD), lowered (not below 1) if the output would exceed ``max_output_pixels``.
        refine_crop: for families that can (DIC): re-crop each face from the landmarks the network
            itself predicts (the training convention) and run it again when the crop moved
            noticeably; ignored for the others.
        batch_size: faces per network call; default chosen from the device's free memory.
        bg_upsampler: callable upscaling the background (e.g. a Real-ESRGAN wrapper); default
            PIL bicubic.
        max_pixels: decompression-bomb guard for inputs (``None``: no limit; Pillow's own limit
            still applies to files).
        max_output_pixels: limit on the restored photo, checked before it is allocated: the
            default scale is lowered to fit; a photo that does not fit at an explicit ``upscale``
            (or at scale 1) raises :class:`~dicsr.errors.ImageTooLargeError`. ``None``: no limit.
        cache_dir, revision, offline, progress, mirror: how model weights are fetched, passed to
            :func:`dicsr.weights.load_model` (``cache_dir`` is the Hugging Face cache for model
            weights; ``offline`` and ``mirror`` also apply to the detector weights).

    Options are fixed at construction (read them back through the read-only properties); build
    another resolver for other options. One resolver may be shared by several threads.
    """

    def __init__(
        self,
        model: str | Path | NetworkAdapter = "dic-celeba",
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = None,
        channels_last: bool = False,
        detector: DetectorNetwork = "mobile0.25",
        detector_weights: str | Path | None = None,
        score_threshold: float = 0.5,
        max_faces: int | None = None,
        only_center_face: bool = False,
        upscale: float | None = None,
        refine_crop: bool = False,
        batch_size: int | None = None,
        bg_upsampler: BackgroundUpsampler | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        max_output_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS,
        cache_dir: str | Path | None = None,
        revision: str | None = None,
        offline: bool | None = None,
        progress: bool = True,
        mirror: str | None = None,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise InvalidInputError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if max_faces is not None and max_faces < 1:
            raise InvalidInputError(f"max_faces must be >= 1 or None, got {max_faces}")
        if batch_size is not None and batch_size < 1:
            raise InvalidInputError(f"batch_size must be >= 1 or None, got {batch_size}")
        if upscale is not None and not upscale > 0:
            raise InvalidInputError(f"upscale must be > 0, got {upscale}")

        device_ = resolve_device(device)
        dtype_ = resolve_dtype(dtype)
        if isinstance(model, NetworkAdapter):
            adapter = model
        else:
            from dicsr.weights import load_model

            adapter = load_model(model, cache_dir=cache_dir, revision=revision, offline=offline,
                                 progress=progress, mirror=mirror)
        self._adapter = adapter.to(device_, dtype_, channels_last=channels_last)
        self._family: Family = get_family(self.config.arch)

        self._detector_name = detector
        self._detector_weights = detector_weights
        self._score_threshold = score_threshold
        self._max_faces = max_faces
        self._only_center_face = only_center_face
        self._upscale = upscale
        # Re-cropping needs a family that can place its training crop from its own landmarks.
        self._refine_crop = refine_crop and self._family.can_recrop(self.config)
        self._batch_size = batch_size
        self._bg_upsampler = bg_upsampler
        self._max_pixels = max_pixels
        self._max_output_pixels = max_output_pixels
        self._offline = offline
        self._mirror = mirror
        self._detector: Any = None
        # Guards the lazy construction only; FaceDetector serialises its own calls (facexlib keeps
        # per-call scale factors on the module) and the network adapter holds no per-call state.
        self._detector_lock = threading.Lock()

    # -- properties ------------------------------------------------------------------------------

    @property
    def adapter(self) -> NetworkAdapter:
        """The network with its normalisation (run it directly on pre-aligned faces)."""
        return self._adapter

    @property
    def config(self) -> ModelConfig:
        """The loaded model's configuration (sizes, crop convention, provenance)."""
        return self._adapter.config

    @property
    def upscale(self) -> float | None:
        """Output scale given at construction (``None``: the model's scale, capped)."""
        return self._upscale

    @property
    def detector(self) -> DetectorNetwork:
        """RetinaFace backbone used for detection."""
        return self._detector_name

    @property
    def score_threshold(self) -> float:
        """Minimum detector confidence."""
        return self._score_threshold

    @property
    def batch_size(self) -> int | None:
        """Faces per network call (``None``: chosen from free memory)."""
        return self._batch_size

    @property
    def device(self) -> torch.device:
        """Device the network runs on."""
        return self.adapter.device

    @property
    def dtype(self) -> torch.dtype:
        """Precision the network runs in."""
        return self.adapter.dtype

    def to(
        self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
    ) -> FaceSuperResolver:
        """Move the network (not the detector) to another device/dtype; returns ``self``."""
        self._adapter.to(device, dtype)
        return self

    def load_detector(self) -> None:
        """Fetch, verify and build the face detector now instead of at the first detection.

        A service or a batch calls it at start-up, so that missing, damaged or unobtainable
        detector weights fail once, before any photo is read. Calling it again does nothing.
        """
        self._get_detector()

    # -- main entry point ----------------------------------------------------------------------

    def enhance(
        self,
        image: Any,
        *,
        aligned: bool = False,
        channel_order: ChannelOrder = "rgb",
        paste_back: bool = True,
        upscale: float | None = None,
        return_steps: bool = False,
    ) -> EnhanceResult:
        """Super-resolve every face in ``image``.

        Args:
            image: a path, encoded bytes / binary file object, ``PIL.Image``, numpy array (HW,
                HWC; uint8/uint16/float) or tensor (CHW).
            aligned: the input already is a face crop in the model's convention: skip detection.
            channel_order: ``"rgb"`` or ``"bgr"`` for numpy inputs (OpenCV users: ``"bgr"``).
            paste_back: blend the faces into the upscaled photo; ``False`` returns faces only.
            upscale: override the resolver's output scale for this call.
            return_steps: also return every recurrent step's face (DIC).

        Returns:
            An :class:`~dicsr.results.EnhanceResult`. A photo without faces is not an error: the
            result has no faces and, with ``paste_back``, the upscaled photo.

        Raises:
            ImageTooLargeError: with ``paste_back``, the restored photo would exceed
                ``max_output_pixels`` (checked right after decoding, before any face is restored).
        """
        loaded = load_image(image, channel_order=channel_order, max_pixels=self._max_pixels)
        height, width = loaded.rgb.shape[:2]
        # Before detection and the network: a photo too large to restore fails at once.
        scale = self._output_scale(width, height, upscale, paste_back=paste_back)
        prepared = self._prepare_aligned(loaded) if aligned else self._prepare_detected(loaded)

        results = self._super_resolve([p.crop.lr for p in prepared], return_steps)
        if self._refine_crop and prepared:
            prepared, results = self._refine(loaded, prepared, results, return_steps)

        faces = self._assemble_faces(loaded, prepared, results, scale)
        photo = self._paste(loaded, prepared, results, scale) if paste_back else None
        return EnhanceResult(image=photo, faces=tuple(faces), upscale=scale, input_size=(width, height))

    __call__ = enhance

    # -- stages --------------------------------------------------------------------------------

    def _get_detector(self) -> Any:
        with self._detector_lock:
            if self._detector is None:
                from dicsr.face.detect import FaceDetector
                from dicsr.weights import resolve_detector_weights

                weights = resolve_detector_weights(
                    self._detector_name, self._detector_weights, offline=self._offline, mirror=self._mirror
                )
                self._detector = FaceDetector(
                    weights, network=self._detector_name, device=self.device,
                    score_threshold=self._score_threshold,
                )
            return self._detector

    def _prepare_detected(self, loaded: LoadedImage) -> list[_PreparedFace]:
        detector = self._get_detector()
        detections = detector.detect(
            loaded.to_uint8(), max_faces=self._max_faces, only_center_face=self._only_center_face
        )
        logger.info("detected %d face(s)", len(detections))
        return [
            _PreparedFace(
                crop=face_crop.crop_face(
                    loaded.rgb, det, convention=self.config.crop,
                    lr_size=self.config.lr_size, hr_size=self.config.hr_size,
                ),
                detection_box=det.box,
                score=float(det.score),
                points5=det.points5,
            )
            for det in detections
        ]

    def _prepare_aligned(self, loaded: LoadedImage) -> list[_PreparedFace]:
        crop = face_crop.crop_aligned(loaded.rgb, lr_size=self.config.lr_size, hr_size=self.config.hr_size)
        return [_PreparedFace(crop=crop, detection_box=None, score=1.0, points5=None)]

    def _auto_batch_size(self) -> int:
        if self._batch_size is not None:
            return self._batch_size
        per_face = self._family.bytes_per_face(self.config)
        if self.adapter.dtype != torch.float32:
            per_face /= 2
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            budget = 0.6 * free
        else:
            # CPU: large batches buy little throughput but cost memory linearly.
            budget = 2e9
        return max(1, int(budget // per_face))

    def _super_resolve(self, crops: Sequence[np.ndarray], return_steps: bool) -> list[_NetworkResult]:
        """Run the network on all crops, in memory-bounded chunks."""
        results: list[_NetworkResult] = []
        chunk = self._auto_batch_size()
        for start in range(0, len(crops), chunk):
            batch = torch.from_numpy(np.stack(crops[start : start + chunk])).permute(0, 3, 1, 2)
            out = self.adapter(batch, all_steps=return_steps)
            images = _to_hwc_numpy(out.images)
            heatmaps = out.heatmaps.float().cpu() if out.heatmaps is not None else None
            per_step = [_to_hwc_numpy(s) for s in out.step_images] if return_steps else []
            for i, image in enumerate(images):
                results.append(_NetworkResult(
                    image=image,
                    heatmap=heatmaps[i] if heatmaps is not None else None,
                    steps=tuple(step[i] for step in per_step),
                ))
        return results

    def _refine(
        self, loaded: LoadedImage, prepared: list[_PreparedFace], results: list[_NetworkResult],
        return_steps: bool,
    ) -> tuple[list[_PreparedFace], list[_NetworkResult]]:
        """Re-crop faces whose predicted landmarks imply a different training-style box.

        Only for families that can (:meth:`~dicsr.families.Family.can_recrop`, e.g. DIC, trained on
        boxes made from the 68 ground-truth landmarks, dic.md §1): the first pass runs on the box
        calibrated from the detector, so the network's own landmarks give a box closer to the
        training convention. Faces whose box moves by more than 10% of its side run again.
        """
        prepared, results = list(prepared), list(results)
        moved: list[int] = []
        for i, (face, result) in enumerate(zip(prepared, results, strict=True)):
            landmarks = result.landmarks(self.config.hr_size)
            if landmarks is None or face.crop.box is None:
                continue
            in_photo = face_crop.apply_affine(face.crop.inverse_affine, landmarks[0])
            box = self._family.recrop_box(in_photo)
            if _box_moved(face.crop.box, box):
                crop = face_crop.crop_face(loaded.rgb, box, convention=self.config.crop,
                                           lr_size=self.config.lr_size, hr_size=self.config.hr_size)
                prepared[i] = dataclasses.replace(face, crop=crop)
                moved.append(i)
        if moved:
            logger.info("refined the crop of %d face(s) from the network's own landmarks", len(moved))
            rerun = self._super_resolve([prepared[i].crop.lr for i in moved], return_steps)
            for i, result in zip(moved, rerun, strict=True):
                results[i] = result
        return prepared, results

    def _output_scale(self, width: int, height: int, upscale: float | None, *, paste_back: bool) -> float:
        """The photo's scale for this call; with ``paste_back``, checked against ``max_output_pixels``."""
        requested = upscale if upscale is not None else self._upscale
        model_scale = float(self.config.scale)
        if requested is not None:
            scale = checked_upscale(requested)
        else:
            scale = default_output_scale(width, height, model_scale, self._max_output_pixels)
        if paste_back:
            check_output_size(width, height, scale, self._max_output_pixels, requested=requested is not None)
        if requested is None and scale < model_scale:
            logger.warning(
                "output of %dx%d at x%g would exceed %d pixels; using upscale=%g (pass upscale= "
                "to override)", width, height, model_scale, self._max_output_pixels, scale,
            )
        return scale

    def _assemble_faces(
        self, loaded: LoadedImage, prepared: list[_PreparedFace], results: list[_NetworkResult], scale: float
    ) -> list[RestoredFace]:
        # Faces carry no alpha: the photo's alpha belongs to the pasted result.
        face_like = dataclasses.replace(loaded, alpha=None)
        faces = []
        for face, result in zip(prepared, results, strict=True):
            landmarks = official = in_output = None
            decoded = result.landmarks(self.config.hr_size)
            if decoded is not None:
                landmarks, official = decoded
                in_photo = face_crop.apply_affine(face.crop.inverse_affine, landmarks)
                in_output = _source_to_output(in_photo, scale)
            faces.append(
                RestoredFace(
                    image=to_output(result.image, face_like),
                    lr=face.crop.lr,
                    affine=face.crop.affine,
                    box=face.crop.box,
                    detection_box=face.detection_box,
                    score=face.score,
                    points5=face.points5,
                    landmarks=landmarks,
                    landmarks_official=official,
                    landmarks_in_output=in_output,
                    step_images=result.steps,
                )
            )
        return faces

    def _paste(
        self, loaded: LoadedImage, prepared: list[_PreparedFace], results: list[_NetworkResult], scale: float
    ) -> ImageOutput:
        # The background owns the upscale (8-bit Pillow, float, or the user's bg_upsampler), the
        # gray handling and the final quantisation; faces are blended into its pixels in place.
        background = Background.for_photo(loaded, scale, self._bg_upsampler)
        placements = [(r.image, p.crop.affine) for r, p in zip(results, prepared, strict=True)]
        paste_faces(background.pixels, placements, upscale=scale, in_place=True)
        return background.result()


def _to_hwc_numpy(batch: torch.Tensor) -> list[np.ndarray]:
    array = batch.detach().float().cpu().permute(0, 2, 3, 1).contiguous().numpy()
    return list(array)


def _source_to_output(points: np.ndarray, scale: float) -> np.ndarray:
    """Input-photo coordinates to restored-photo coordinates (pixel centres at integers)."""
    return (points + 0.5) * scale - 0.5


def _box_moved(old: Sequence[float], new: Sequence[float], tolerance: float = 0.1) -> bool:
    """True when the boxes' centres or sides differ by more than ``tolerance`` of the side."""
    side = max(old[2] - old[0], 1e-6)
    deltas = [abs(a - b) for a, b in zip(old, new, strict=True)]
    return max(deltas) > tolerance * side

