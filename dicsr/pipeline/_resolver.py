"""``FaceSuperResolver``: detect, select, crop as each model was trained, restore, paste back.

The resolver composes parts that live elsewhere and never names a network family:

* :mod:`dicsr.image` decodes any input, owns the upscaled background and rebuilds outputs;
* :mod:`dicsr.face` finds faces (:class:`~dicsr.face.detect.FaceDetector`), cuts each one out the
  way its model was trained, makes each restored face agree with its input (back-projection), gives
  it its paste mask and blends it back (:class:`~dicsr.face.paste.PasteOptions`);
* the network adapter (:class:`~dicsr.families.NetworkAdapter`) runs the network, and its family
  (:class:`~dicsr.families.Family`) says what the network can do: landmarks, re-cropping from
  them, memory per face.

Each stage is a method that takes what the previous one returned (see
:mod:`dicsr.pipeline._stages` for the three parts ``enhance`` is made of).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Generator, Iterable, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

from dicsr._devices import resolve_device, resolve_dtype
from dicsr.errors import InvalidInputError, UnsupportedDtypeError
from dicsr.face.consistency import back_project
from dicsr.face.crop import Box, FaceCrop, apply_affine, crop_aligned, crop_face
from dicsr.face.detect import DetectedFace, DetectorNetwork, FaceDetector
from dicsr.face.paste import FaceToPaste, PasteOptions, face_to_paste, paste_faces
from dicsr.face.select import FaceSelection, SelectionPolicy, SkipReason, select_faces
from dicsr.families import Family, ModelConfig, NetworkAdapter, get_family
from dicsr.image import (
    DEFAULT_MAX_PIXELS,
    Background,
    BackgroundUpsampler,
    ChannelOrder,
    ImageInput,
    ImageOutput,
    LoadedImage,
    load_image,
    to_output,
    upscaled_points,
)
from dicsr.pipeline._detector import DetectorSpec
from dicsr.pipeline._many import DEFAULT_PREFETCH, DEFAULT_WORKERS, EnhanceFailure, enhance_many
from dicsr.pipeline._options import (
    DEFAULT_MAX_OUTPUT_PIXELS,
    CheckedOptions,
    checked_flag,
    checked_paste,
    checked_scale,
)
from dicsr.pipeline._output_size import check_output_size, default_output_scale
from dicsr.pipeline._results import EnhanceResult, RestoredFace, SkippedFace
from dicsr.pipeline._stages import (
    NetworkFace,
    PreparedFace,
    PreparedPhoto,
    RestoredPhoto,
    StageCallback,
    StageEvent,
    StageName,
)

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

    from dicsr.pipeline._options import PipelineOptions

__all__ = ["FaceSuperResolver"]

# The name users filter on (docs/troubleshooting.md), whichever private module logs.
logger = logging.getLogger("dicsr.pipeline")

#: Activation memory budget for one network call on the CPU: large batches buy little throughput
#: there but cost memory linearly.
_CPU_BATCH_BYTES = 2e9
#: Share of the free GPU memory one network call may use.
_GPU_BATCH_SHARE = 0.6


class FaceSuperResolver:
    """Restore every face of a photo with a face super-resolution network.

    Compose one from a loaded network and a detector, or load both with :meth:`from_pretrained`
    (``FaceSuperResolver("dic-celeba")`` is the short form of ``from_pretrained("dic-celeba")``).

    Args:
        model: a :class:`~dicsr.families.NetworkAdapter` (used where it is; never moved or changed:
            :meth:`to` moves a copy), or a model reference (zoo name, ``"hf-hub:org/repo[@rev]"``,
            model folder, ``.safetensors`` file, official checkpoint) loaded as
            ``from_pretrained(model)`` with its defaults.
        detector: a :class:`~dicsr.face.detect.FaceDetector` (used as it is; never moved or
            changed), a :class:`~dicsr.pipeline.DetectorSpec` of the one to build when a photo
            first needs detection, or ``None`` for ``DetectorSpec()`` (RetinaFace mobile0.25 from the
            dicsr cache).
        upscale: output scale of the whole photo; default the model's scale (8 for DIC, 1 for
            SPARNetHD), lowered (not below 1) if the output would exceed ``max_output_pixels``.
        selection: which detected faces are restored (default :class:`SelectionPolicy`: each real
            face once, and only where the model adds detail: its crop at most twice the model's
            input side, docs/face-crops.md, "Face selection"). The others are reported in
            :attr:`EnhanceResult.skipped_faces` with their reasons.
        paste: how restored faces go back (default :class:`~dicsr.face.paste.PasteOptions`: full
            strength, each face made to agree with the photo at low resolution (back-projection),
            the face-shaped mask for networks that predict 68 landmarks, colour kept as restored;
            docs/face-crops.md, "How a restored face goes back"). One call can use others
            (``enhance(..., paste=...)``).
        refine_crop: for families that can (:meth:`dicsr.families.Family.can_recrop`, DIC): crop each
            face again from the landmarks the network predicts on it (its training crop) and
            restore it again when the crop moved noticeably; ignored for the others.
        batch_size: faces per network call; ``None``: from the device's free memory and the
            family's memory per face.
        bg_upsampler: callable upscaling the background (:data:`BackgroundUpsampler`, e.g. a
            Real-ESRGAN wrapper); default Pillow bicubic.
        max_pixels: refuse input photos with more pixels (decompression-bomb guard); ``None`` or
            ``0``: no limit (as the CLI's ``--max-pixels 0``; Pillow's own limit still applies to
            files).
        max_output_pixels: limit on every restored photo, checked right after decoding, before
            anything of it is allocated: the default scale is lowered to fit; a photo that does not
            fit at an explicit ``upscale`` (or at scale 1) raises
            :class:`~dicsr.errors.ImageTooLargeError`. ``None`` or ``0``: no limit.
        on_stage: called with a :class:`StageEvent` after every stage of every call (name, seconds,
            faces), in the thread that ran it: progress, timing, tracing.

    Raises:
        InvalidInputError: an option or ``model``/``detector`` of the wrong type or out of range;
            the message names it. Every option is checked here, before anything is loaded.
        DicsrError: for a model reference, what :meth:`from_pretrained` raises.

    Options are fixed at construction (read them back through the read-only properties); build
    another resolver for other options. One resolver may be shared by several threads
    (detection is serialised, the network runs concurrently); :meth:`to` must not run while
    another thread is inside :meth:`enhance`.
    """

    def __init__(
        self,
        model: NetworkAdapter | str | os.PathLike[str],
        detector: FaceDetector | DetectorSpec | None = None,
        *,
        upscale: float | None = None,
        selection: SelectionPolicy | None = None,
        paste: PasteOptions | None = None,
        refine_crop: bool = False,
        batch_size: int | None = None,
        bg_upsampler: BackgroundUpsampler | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        max_output_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS,
        on_stage: StageCallback | None = None,
    ) -> None:
        self._options = CheckedOptions(
            upscale=upscale, selection=selection, paste=paste, refine_crop=refine_crop, batch_size=batch_size,
            bg_upsampler=bg_upsampler, max_pixels=max_pixels, max_output_pixels=max_output_pixels,
            on_stage=on_stage,
        )
        if not isinstance(detector, (FaceDetector, DetectorSpec, type(None))):
            raise InvalidInputError(
                f"detector must be a FaceDetector, a DetectorSpec or None, got {type(detector).__name__}"
            )
        if isinstance(model, NetworkAdapter):
            self._adapter, self._owns_adapter = model, False
        else:
            self._adapter, self._owns_adapter = _load_adapter(model), True
        self._family: Family = get_family(self.config.arch)
        # Re-cropping needs a family that can place its training crop from its own landmarks.
        self._refine_crop = refine_crop and self._family.can_recrop(self.config)

        self._detector_spec = detector if isinstance(detector, DetectorSpec) else DetectorSpec()
        self._detector = detector if isinstance(detector, FaceDetector) else None
        self._owns_detector = False
        # Guards building the detector and swapping it in to(); FaceDetector serialises its own
        # calls (facexlib keeps per-call state on the module), the adapter holds no per-call state.
        self._detector_lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike[str],
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = None,
        channels_last: bool = False,
        engine: str = "torch",
        detector: DetectorNetwork | FaceDetector | DetectorSpec = "mobile0.25",
        detector_weights: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        revision: str | None = None,
        offline: bool | None = None,
        progress: bool = True,
        mirror: str | None = None,
        **options: Unpack[PipelineOptions],
    ) -> FaceSuperResolver:
        """Load a model and a face detector and compose them: the one-liner.

        Args:
            model: a zoo name (``dicsr.list_models()``), ``"hf-hub:org/repo[@rev]"``, a model
                folder, a ``.safetensors`` file with ``config.json`` beside it, or an official
                checkpoint (see :func:`dicsr.weights.load_model`).
            device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda:1"``, ...
            dtype: network precision: ``float32`` (default), ``float16`` (CUDA/MPS) or ``bfloat16``.
            channels_last: run convolutions in NHWC memory format (faster on recent GPUs/CPUs).
            engine: what runs the network (:data:`dicsr.engines.ENGINES`): ``"torch"`` (eager
                PyTorch), ``"compile"`` (``torch.compile`` with inductor; each new input shape
                compiles on first use, a minute or more for DIC) or ``"onnxruntime"`` (the network
                exported to ONNX and run by ONNX Runtime; CPU and float32 only; needs
                ``pip install 'dicsr[onnx]'``). Which is faster depends on the network and the
                machine: docs/performance.md, "Engines".
            detector: RetinaFace backbone, ``"mobile0.25"`` (fast) or ``"resnet50"`` (accurate),
                built on first use on the resolver's device with the calibrated score threshold
                (:class:`DetectorSpec`); or a ready
                :class:`~dicsr.face.detect.FaceDetector` or :class:`DetectorSpec`.
            detector_weights: local weights of the named backbone; by default they are fetched into
                the dicsr cache (``$DICSR_CACHE_DIR``, default ``~/.cache/dicsr``).
            cache_dir: the Hugging Face cache for model weights, passed to
                :func:`dicsr.weights.load_model` like ``revision``, ``offline``, ``progress`` and
                ``mirror``.
            revision: hub revision overriding the zoo's pin.
            offline: never touch the network, for the model and the detector weights.
            progress: show download progress bars.
            mirror: a server holding the official files (default ``$DICSR_MIRROR``), for the model
                and the detector weights.
            **options: the pipeline options of the constructor (``upscale``, ``selection``, ...).

        Raises:
            InvalidInputError: an option of the wrong type or out of range (before any download).
            ModelNotFoundError, WeightsUnavailableError, IntegrityError, CheckpointError: the
                model cannot be found, fetched or read (see :func:`dicsr.weights.load_model`).
            UnsupportedDeviceError, UnsupportedDtypeError: bad ``device`` / ``dtype``, or one the
                engine cannot run (``"onnxruntime"``: float32 on the CPU).
        """
        CheckedOptions(**options)  # a bad option fails before anything is downloaded
        if isinstance(detector, str):
            detector = DetectorSpec(detector, weights=detector_weights, offline=offline, mirror=mirror)
        elif detector_weights is not None:
            raise InvalidInputError(
                "detector_weights goes with a detector named by its backbone ('mobile0.25' or 'resnet50'); "
                "a FaceDetector or DetectorSpec brings its own weights"
            )
        adapter = _load_adapter(model, device=device, dtype=dtype, channels_last=channels_last, engine=engine,
                                cache_dir=cache_dir, revision=revision, offline=offline, progress=progress,
                                mirror=mirror)
        resolver = cls(adapter, detector, **options)
        resolver._owns_adapter = True  # loaded here: moved in place by to(), no copy needed
        return resolver

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
    def family(self) -> Family:
        """The network's family (what it can do: landmarks, re-cropping, memory per face)."""
        return self._family

    @property
    def detector(self) -> FaceDetector | DetectorSpec:
        """The face detector, or the :class:`DetectorSpec` it is built from at the first detection
        (:meth:`load_detector` builds it now)."""
        return self._detector if self._detector is not None else self._detector_spec

    @property
    def upscale(self) -> float | None:
        """Output scale given at construction (``None``: the model's scale, capped)."""
        return self._options.upscale

    @property
    def selection(self) -> SelectionPolicy:
        """Which detected faces are restored."""
        return cast(SelectionPolicy, self._options.selection)  # CheckedOptions fills in the default

    @property
    def paste_options(self) -> PasteOptions:
        """How restored faces go back (the ``paste`` option): strength, back-projection, mask,
        luminance only."""
        return cast(PasteOptions, self._options.paste)  # CheckedOptions fills in the default

    @property
    def refine_crop(self) -> bool:
        """Whether faces are cropped again from their own landmarks (only for families that can)."""
        return self._refine_crop

    @property
    def batch_size(self) -> int | None:
        """Faces per network call given at construction (``None``: chosen from free memory)."""
        return self._options.batch_size

    @property
    def max_pixels(self) -> int | None:
        """Input pixel limit (``None``: none)."""
        return self._options.max_pixels

    @property
    def max_output_pixels(self) -> int | None:
        """Cap on the restored photo when ``upscale`` is not given (``None``: none)."""
        return self._options.max_output_pixels

    @property
    def device(self) -> torch.device:
        """Device the network runs on (and the detector, once the resolver builds or moves it)."""
        return self._adapter.device

    @property
    def dtype(self) -> torch.dtype:
        """Precision the network runs in."""
        return self._adapter.dtype

    # -- device / dtype --------------------------------------------------------------------------

    def to(
        self,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        *,
        channels_last: bool | None = None,
    ) -> FaceSuperResolver:
        """Move the network and the detector to another device (the network also to another dtype);
        returns ``self``.

        ``channels_last`` keeps its current value unless given. An adapter or detector the caller
        passed in is never moved: the resolver moves its own copy (other resolvers sharing it are
        not affected). A detector not built yet is built on the new device.

        Raises:
            UnsupportedDeviceError: the device is not available.
            UnsupportedDtypeError: the network cannot run in ``dtype`` there, or a half-precision
                detector would leave CUDA. Nothing is moved then.
        """
        target = resolve_device(device) if device is not None else self.device
        detector = self._detector
        if detector is not None and detector.half and target.type != "cuda":
            raise UnsupportedDtypeError(
                f"the resolver's detector runs in half precision, which needs CUDA; cannot move to {target}"
            )
        adapter = self._adapter
        wanted = (
            target,
            resolve_dtype(dtype) if dtype is not None else adapter.dtype,
            adapter.channels_last if channels_last is None else checked_flag("channels_last", channels_last),
        )
        if wanted != (adapter.device, adapter.dtype, adapter.channels_last):
            moved = adapter if self._owns_adapter else copy.deepcopy(adapter)
            self._adapter = moved.to(*wanted[:2], channels_last=wanted[2])  # checks before moving
            self._owns_adapter = True
        with self._detector_lock:
            if self._detector is not None and self._detector.device != target:
                own = self._detector if self._owns_detector else copy.deepcopy(self._detector)
                self._detector, self._owns_detector = own.to(target), True
        return self

    def load_detector(self) -> FaceDetector:
        """The face detector, built now if the resolver builds its own (fetching its weights).

        A service calls it at start-up so that missing or damaged detector weights fail once, before
        any photo is read; the first detection calls it otherwise.

        Raises:
            DicsrError: what :meth:`DetectorSpec.build` raises.
        """
        with self._detector_lock:
            if self._detector is None:
                self._detector = self._detector_spec.build(self.device)
                self._owns_detector = True
            return self._detector

    def network_batch_size(self) -> int:
        """Faces per network call now: ``batch_size``, or the number the device's free memory holds
        (the family's memory per face; 60 % of free GPU memory, 2 GB on the CPU)."""
        if self._options.batch_size is not None:
            return self._options.batch_size
        per_face = self._family.bytes_per_face(self.config)
        if self.dtype != torch.float32:
            per_face /= 2
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            budget = _GPU_BATCH_SHARE * free
        else:
            budget = _CPU_BATCH_BYTES
        return max(1, int(budget // per_face))

    # -- main entry point ----------------------------------------------------------------------

    def enhance(
        self,
        image: ImageInput,
        *,
        aligned: bool = False,
        channel_order: ChannelOrder = "rgb",
        paste_back: bool = True,
        upscale: float | None = None,
        return_steps: bool = False,
        paste: PasteOptions | None = None,
    ) -> EnhanceResult:
        """Super-resolve every face in ``image``.

        The same as ``finish(restore([prepare(image, ...)])[0], ...)``.

        Args:
            image: a path, encoded bytes / binary file object, ``PIL.Image``, numpy array (HW,
                HWC; uint8/uint16/float) or tensor (CHW).
            aligned: the input already is a face crop in the model's convention: skip detection.
            channel_order: ``"rgb"`` or ``"bgr"`` for numpy inputs (OpenCV users: ``"bgr"``).
            paste_back: blend the faces into the upscaled photo; ``False`` returns faces only.
            upscale: override the resolver's output scale for this call.
            return_steps: also return every recurrent step's face (DIC; the network's raw output,
                not back-projected).
            paste: how the faces go back for this call (e.g. ``PasteOptions(strength=0.5)`` or
                ``sr.paste_options.overridden(back_projection=False)``); ``None``: the resolver's
                :attr:`paste_options`. Back-projection also applies to the returned faces, so it
                matters with ``paste_back=False`` too.

        Returns:
            An :class:`~dicsr.pipeline.EnhanceResult`. A photo without faces is not an error: the
            result has no faces and, with ``paste_back``, the upscaled photo.

        Raises:
            InvalidImageError: the image cannot be read (the message names the file).
            InvalidInputError: a bad option for this call.
        """
        checked_flag("paste_back", paste_back)  # every option of the call, before any work
        checked_flag("return_steps", return_steps)
        checked_paste(paste)
        prepared = self.prepare(image, aligned=aligned, channel_order=channel_order, upscale=upscale,
                                paste_back=paste_back)
        (restored,) = self.restore([prepared], return_steps=return_steps)
        return self.finish(restored, paste_back=paste_back, paste=paste)

    __call__ = enhance

    def enhance_many(
        self,
        images: Iterable[ImageInput],
        *,
        aligned: bool = False,
        channel_order: ChannelOrder = "rgb",
        paste_back: bool = True,
        upscale: float | None = None,
        return_steps: bool = False,
        paste: PasteOptions | None = None,
        workers: int = DEFAULT_WORKERS,
        prefetch: int = DEFAULT_PREFETCH,
        share_batches: bool = False,
    ) -> Generator[EnhanceResult | EnhanceFailure, None, None]:
        """Restore many photos, overlapping the stages of different photos: the next photos are
        decoded and their faces detected and cropped (``workers`` threads, at most ``prefetch`` photos
        ahead) while the network runs, and pasting overlaps the next network call. Each result is bit
        for bit what :meth:`enhance` returns for that photo: its faces go through the network in the
        same calls. The overlap pays where the network leaves cores idle (more cores than its
        threads, a GPU); docs/scaling.md has the measurements.

        Args:
            images: any iterable of what :meth:`enhance` takes (paths, arrays, PIL images, ...); it is
                read lazily, at most ``prefetch`` items ahead.
            aligned: as for :meth:`enhance`, for every image.
            channel_order: as for :meth:`enhance`.
            paste_back: as for :meth:`enhance`.
            upscale: as for :meth:`enhance`.
            return_steps: as for :meth:`enhance`.
            paste: as for :meth:`enhance`.
            workers: threads preparing and finishing photos beside the network.
            prefetch: photos prepared ahead of the network, and finished results kept before the
                caller takes them; memory grows with it (at most ``prefetch`` decoded photos with
                their crops, ``prefetch + 1`` finished results, and one network batch).
            share_batches: let faces of several photos share network calls (up to
                :meth:`network_batch_size` faces): faster where batches pay (GPUs, photos with one
                face), but not bit for bit :meth:`enhance`'s results (a face's output depends on its
                batch in the last bits; measured in docs/scaling.md).

        Yields:
            One item per input, in input order: its :class:`EnhanceResult`, or an
            :class:`~dicsr.pipeline.EnhanceFailure` (index, name, typed error) for an input that
            cannot be restored; the others go on. ``images`` is read at most ``2 * prefetch`` items
            beyond the last one yielded; to stop early, ``close()`` the iterator (or drop it): its
            threads end.

        Raises:
            InvalidInputError: a bad option, at the call (before any image is read).
        """
        return enhance_many(self, images, aligned=aligned, channel_order=channel_order, paste_back=paste_back,
                            upscale=upscale, return_steps=return_steps, paste=paste, workers=workers,
                            prefetch=prefetch, share_batches=share_batches)

    def enhance_batch(
        self,
        images: Iterable[ImageInput],
        *,
        aligned: bool = False,
        channel_order: ChannelOrder = "rgb",
        paste_back: bool = True,
        upscale: float | None = None,
        return_steps: bool = False,
        paste: PasteOptions | None = None,
    ) -> list[EnhanceResult]:
        """:meth:`enhance_many` collected into a list: every photo restored, or an error.

        Raises:
            InvalidImageError, ImageTooLargeError, ...: the error of the first input that fails
                (the inputs after it are not restored).
            InvalidInputError: a bad option.
        """
        results = []
        outcomes = self.enhance_many(images, aligned=aligned, channel_order=channel_order,
                                     paste_back=paste_back, upscale=upscale, return_steps=return_steps,
                                     paste=paste)
        with contextlib.closing(outcomes):
            for outcome in outcomes:
                if isinstance(outcome, EnhanceFailure):
                    raise outcome.error
                results.append(outcome)
        return results

    # -- the three parts ---------------------------------------------------------------------------

    def prepare(
        self,
        image: ImageInput,
        *,
        aligned: bool = False,
        channel_order: ChannelOrder = "rgb",
        upscale: float | None = None,
        paste_back: bool = True,
    ) -> PreparedPhoto:
        """Everything before the network: decode, detect, select and crop (or, ``aligned``, take
        the photo as one face), and the restored photo's scale. See :meth:`enhance` for the arguments.

        Raises:
            ImageTooLargeError: with ``paste_back``, the restored photo would exceed
                ``max_output_pixels`` (checked right after decoding, before detection).
        """
        checked_flag("aligned", aligned)
        checked_flag("paste_back", paste_back)
        if upscale is not None:
            upscale = checked_scale("upscale", upscale)
        photo = self.decode(image, channel_order=channel_order)
        height, width = photo.rgb.shape[:2]
        # Before detection and the network: a photo too large to restore fails at once.
        scale = self._output_scale(width, height, upscale, paste_back=paste_back)
        if aligned:
            return PreparedPhoto(photo=photo, faces=tuple(self.crop_aligned(photo)), scale=scale)
        selection = self.select(photo, self.detect(photo))
        faces = self.crop(photo, selection.kept)
        skipped = tuple(_skipped_face(s.face, s.reason, s.detail) for s in selection.skipped)
        return PreparedPhoto(photo=photo, faces=tuple(faces), scale=scale, skipped=skipped)

    def restore(self, photos: Sequence[PreparedPhoto], *, return_steps: bool = False) -> list[RestoredPhoto]:
        """The network part: the faces of any number of prepared photos, in memory-bounded batches
        of :meth:`network_batch_size` faces (faces of different photos share batches).

        With ``refine_crop``, faces whose own landmarks place their training crop elsewhere are
        cropped again (stage ``recrop``) and restored again.

        Returns:
            One :class:`RestoredPhoto` per prepared photo, in order.
        """
        checked_flag("return_steps", return_steps)
        photos = list(photos)
        faces = [list(prepared.faces) for prepared in photos]
        where = [(i, j) for i, photo_faces in enumerate(faces) for j in range(len(photo_faces))]
        outputs = self._run_network([faces[i][j].crop.lr for i, j in where], return_steps)
        if self._refine_crop and where:
            start = time.perf_counter()
            moved = []
            for k, (i, j) in enumerate(where):
                recropped = self._recropped(photos[i].photo, faces[i][j], outputs[k])
                if recropped is not None:
                    faces[i][j] = recropped
                    moved.append(k)
            self._report("recrop", start, len(moved))
            if moved:
                logger.info("refined the crop of %d face(s) from the network's own landmarks", len(moved))
                again = self._run_network([faces[i][j].crop.lr for i, j in map(where.__getitem__, moved)],
                                          return_steps)
                for k, output in zip(moved, again, strict=True):
                    outputs[k] = output
        by_photo: list[list[NetworkFace]] = [[] for _ in photos]
        for (i, _), output in zip(where, outputs, strict=True):
            by_photo[i].append(output)
        return [
            RestoredPhoto(photo=prepared.photo, faces=tuple(faces[i]), outputs=tuple(by_photo[i]),
                          scale=prepared.scale, skipped=prepared.skipped)
            for i, prepared in enumerate(photos)
        ]

    def finish(
        self, restored: RestoredPhoto, *, paste_back: bool = True, paste: PasteOptions | None = None
    ) -> EnhanceResult:
        """The faces as they go back (:meth:`faces_to_paste`) in the caller's type and, with
        ``paste_back``, pasted into the upscaled photo. ``paste``: as in :meth:`enhance`."""
        checked_flag("paste_back", paste_back)
        options = checked_paste(paste) or self.paste_options
        ready = self.faces_to_paste(restored, options)
        faces = self._restored_faces(restored, ready)
        image = self.paste(restored, ready, options) if paste_back else None
        height, width = restored.photo.rgb.shape[:2]
        return EnhanceResult(image=image, faces=faces, upscale=restored.scale, input_size=(width, height),
                             skipped_faces=restored.skipped)

    # -- stages ----------------------------------------------------------------------------------

    def decode(self, image: ImageInput, *, channel_order: ChannelOrder = "rgb") -> LoadedImage:
        """Read any input into float RGB (+ alpha), checked against ``max_pixels`` (stage ``decode``)."""
        start = time.perf_counter()
        photo = load_image(image, channel_order=channel_order, max_pixels=self._options.max_pixels)
        self._report("decode", start, 0)
        return photo

    def detect(self, photo: LoadedImage) -> list[DetectedFace]:
        """Every face the detector finds, highest score first (stage ``detect``; the first call
        builds the detector if the resolver builds its own)."""
        start = time.perf_counter()
        found = self.load_detector().detect(photo.to_uint8())
        logger.info("detected %d face(s)", len(found))
        self._report("detect", start, len(found))
        return found

    def select(self, photo: LoadedImage, detections: Sequence[DetectedFace]) -> FaceSelection:
        """The detections to restore and the ones left alone with their reasons, by
        :attr:`selection` and the model's input size (stage ``select``; its count is the kept faces)."""
        start = time.perf_counter()
        height, width = photo.rgb.shape[:2]
        selection = select_faces(detections, convention=self.config.crop, lr_size=self.config.lr_size,
                                 policy=self.selection, photo_size=(width, height))
        if selection.skipped:
            logger.info("restoring %d face(s), leaving %d alone", len(selection.kept), len(selection.skipped))
            for left in selection.skipped:
                logger.info("left alone (%s): score %.2f, %s", left.reason, left.face.score, left.detail)
        self._report("select", start, len(selection.kept))
        return selection

    def crop(self, photo: LoadedImage, faces: Sequence[DetectedFace]) -> list[PreparedFace]:
        """Cut each face out the way the model's training data was made (stage ``crop``)."""
        start = time.perf_counter()
        prepared = [PreparedFace(crop=self._crop(photo, face), detection=face) for face in faces]
        self._report("crop", start, len(prepared))
        return prepared

    def crop_aligned(self, photo: LoadedImage) -> list[PreparedFace]:
        """The whole photo as the one face (``aligned=True``; stage ``crop``)."""
        start = time.perf_counter()
        crop = crop_aligned(photo.rgb, lr_size=self.config.lr_size, hr_size=self.config.hr_size)
        self._report("crop", start, 1)
        return [PreparedFace(crop=crop, detection=None)]

    def faces_to_paste(self, restored: RestoredPhoto, options: PasteOptions) -> list[FaceToPaste]:
        """Each restored face as it goes back, in the order of ``restored.faces``: made to agree
        with its network input (stage ``backproject``, only with ``options.back_projection``;
        :func:`dicsr.face.consistency.back_project`) and given its paste mask (stage ``mask``: the
        face-shaped mask from 68 predicted landmarks with ``options.landmark_mask``, else the
        rounded square; :func:`dicsr.face.paste.face_to_paste`)."""
        pairs = list(_pairs(restored))
        images = [output.image for _, output in pairs]
        if options.back_projection:
            start = time.perf_counter()
            images = [back_project(output.image, face.crop.lr) for face, output in pairs]
            self._report("backproject", start, len(images))
        start = time.perf_counter()
        mask_only = options.overridden(back_projection=False)  # done above, timed as its own stage
        ready = [
            face_to_paste(image, face.crop.lr, output.landmarks, mask_only)
            for image, (face, output) in zip(images, pairs, strict=True)
        ]
        self._report("mask", start, len(ready))
        return ready

    def paste(
        self, restored: RestoredPhoto, faces: Sequence[FaceToPaste], options: PasteOptions
    ) -> ImageOutput:
        """Blend the faces (:meth:`faces_to_paste` of ``restored``) into the upscaled photo with
        ``options.strength`` and ``options.luminance_only``, and return it in the caller's type
        (stage ``paste``, with its parts ``paste.background``, ``paste.blend``, ``paste.output``)."""
        start = time.perf_counter()
        count = len(restored.faces)
        if len(faces) != count:
            raise InvalidInputError(f"paste got {len(faces)} faces to paste for the photo's {count} faces")
        # The background owns the upscale (8-bit Pillow, float, or the user's bg_upsampler), the
        # gray handling and the final quantisation; faces are blended into its pixels in place.
        background = Background.for_photo(restored.photo, restored.scale, self._options.bg_upsampler)
        self._report("paste.background", start, count)
        part = time.perf_counter()
        placements = [(f.image, face.crop.affine) for face, f in zip(restored.faces, faces, strict=True)]
        masks = [f.paste_mask for f in faces]
        paste_faces(background.pixels, placements, upscale=restored.scale, masks=masks,
                    strength=options.strength, luminance_only=options.luminance_only, in_place=True)
        self._report("paste.blend", part, count)
        part = time.perf_counter()
        image = background.result()
        self._report("paste.output", part, count)
        self._report("paste", start, count)
        return image

    # -- inside the stages -------------------------------------------------------------------------

    def _crop(self, photo: LoadedImage, target: DetectedFace | Box) -> FaceCrop:
        return crop_face(photo.rgb, target, convention=self.config.crop, lr_size=self.config.lr_size,
                         hr_size=self.config.hr_size)

    def _run_network(self, crops: Sequence[np.ndarray], return_steps: bool) -> list[NetworkFace]:
        """The network on all crops, in memory-bounded chunks; landmarks decoded once per face
        (stage ``restore``)."""
        start = time.perf_counter()
        faces: list[NetworkFace] = []
        chunk = self.network_batch_size()
        for first in range(0, len(crops), chunk):
            batch = torch.from_numpy(np.stack(crops[first : first + chunk])).permute(0, 3, 1, 2)
            out = self._adapter(batch, all_steps=return_steps)
            images = _to_hwc_numpy(out.images)
            points = official = None
            if out.heatmaps is not None:
                points, official = self._family.decode_landmarks(self.config, out.heatmaps.float().cpu())
            per_step = [_to_hwc_numpy(step) for step in out.step_images] if return_steps else []
            faces.extend(
                NetworkFace(
                    image=image,
                    landmarks=points[i] if points is not None else None,
                    landmarks_official=official[i] if official is not None else None,
                    steps=tuple(step[i] for step in per_step),
                )
                for i, image in enumerate(images)
            )
        self._report("restore", start, len(faces))
        return faces

    def _recropped(self, photo: LoadedImage, face: PreparedFace, output: NetworkFace) -> PreparedFace | None:
        """The face cropped again where its own landmarks put the training crop, or ``None`` when
        the family keeps the crop (see :meth:`dicsr.families.Family.refined_box`)."""
        if output.landmarks is None or face.crop.box is None:
            return None
        landmarks = apply_affine(face.crop.inverse_affine, output.landmarks)
        box = self._family.refined_box(self.config, face.crop.box, landmarks)
        if box is None:
            return None
        return dataclasses.replace(face, crop=self._crop(photo, box))

    def _output_scale(self, width: int, height: int, upscale: float | None, *, paste_back: bool) -> float:
        """The restored photo's scale: the call's, the resolver's, or the model's lowered to fit
        ``max_output_pixels``; with ``paste_back``, checked against that limit before anything of
        the photo is allocated (:mod:`dicsr.pipeline._output_size`)."""
        requested = upscale if upscale is not None else self._options.upscale
        model_scale = float(self.config.scale)
        limit = self._options.max_output_pixels
        scale = default_output_scale(width, height, model_scale, limit) if requested is None else requested
        if paste_back:
            check_output_size(width, height, scale, limit, requested=requested is not None)
        if requested is None and scale < model_scale:
            logger.warning(
                "output of %dx%d at x%g would exceed %d pixels; using upscale=%g (pass upscale= "
                "to override)", width, height, model_scale, limit, scale,
            )
        return scale

    def _restored_faces(
        self, restored: RestoredPhoto, ready: Sequence[FaceToPaste]
    ) -> tuple[RestoredFace, ...]:
        # Faces carry no alpha: the photo's alpha belongs to the pasted result.
        face_like = dataclasses.replace(restored.photo, alpha=None)
        faces = []
        for (face, output), pasted in zip(_pairs(restored), ready, strict=True):
            in_output = None
            if output.landmarks is not None:
                in_photo = apply_affine(face.crop.inverse_affine, output.landmarks)
                in_output = upscaled_points(in_photo, restored.scale)
            detection = face.detection
            faces.append(
                RestoredFace(
                    image=to_output(pasted.image, face_like),
                    lr=face.crop.lr,
                    affine=face.crop.affine,
                    box=face.crop.box,
                    detection_box=detection.box if detection is not None else None,
                    score=detection.score if detection is not None else 1.0,
                    points5=detection.points5 if detection is not None else None,
                    landmarks=output.landmarks,
                    landmarks_official=output.landmarks_official,
                    landmarks_in_output=in_output,
                    mask=pasted.mask,
                    step_images=output.steps,
                )
            )
        return tuple(faces)

    def _report(self, stage: StageName, start: float, faces: int) -> None:
        callback = self._options.on_stage
        if callback is not None:
            callback(StageEvent(stage=stage, seconds=time.perf_counter() - start, faces=faces))


def _load_adapter(
    model: object,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = None,
    channels_last: bool = False,
    engine: str = "torch",
    cache_dir: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    offline: bool | None = None,
    progress: bool = True,
    mirror: str | None = None,
) -> NetworkAdapter:
    """Load ``model`` (a reference) onto ``device``/``dtype`` and ``engine``: the loading of
    :meth:`from_pretrained`."""
    if isinstance(model, NetworkAdapter):
        raise InvalidInputError(
            "from_pretrained loads a model by reference; compose a loaded NetworkAdapter with "
            "FaceSuperResolver(adapter, detector, ...) and move it with .to()"
        )
    if not isinstance(model, (str, os.PathLike)):
        raise InvalidInputError(
            f"model must be a NetworkAdapter or a model reference (zoo name, hf-hub:org/repo, model "
            f"folder or file), got {type(model).__name__} {model!r:.40}"
        )
    device_, dtype_ = resolve_device(device), resolve_dtype(dtype)  # bad names fail before a download
    checked_flag("channels_last", channels_last)
    from dicsr.engines import check_engine, with_engine

    check_engine(engine)  # an unknown or uninstalled engine fails before a download
    checked_flag("progress", progress)
    if offline is not None:
        checked_flag("offline", offline)
    if revision is not None and not isinstance(revision, str):
        raise InvalidInputError(f"revision must be a string or None, got {revision!r}")
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise InvalidInputError(f"cache_dir must be a folder path or None, got {cache_dir!r}")
    if mirror is not None and not isinstance(mirror, str):
        raise InvalidInputError(f"mirror must be a base URL (a string) or None, got {mirror!r}")
    from dicsr.weights import load_model

    adapter = load_model(model, cache_dir=cache_dir, revision=revision, offline=offline, progress=progress,
                         mirror=mirror)
    return with_engine(adapter.to(device_, dtype_, channels_last=channels_last), engine)


def _skipped_face(face: DetectedFace, reason: SkipReason, detail: str) -> SkippedFace:
    return SkippedFace(box=face.box, score=face.score, points5=face.points5, reason=reason, detail=detail)


def _pairs(restored: RestoredPhoto) -> zip[tuple[PreparedFace, NetworkFace]]:
    return zip(restored.faces, restored.outputs, strict=True)


def _to_hwc_numpy(batch: torch.Tensor) -> list[np.ndarray]:
    array = batch.detach().float().cpu().permute(0, 2, 3, 1).contiguous().numpy()
    return list(array)
