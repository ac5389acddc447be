"""The files of a run over many photos: which files a folder walk takes as photos, what each photo
writes and under which names, and the record of what was written. Shared by ``dicsr enhance``
(``dicsr._cli``) and the Ray job (``dicsr.distributed``), so both name and write alike.

Naming (docs/cli.md, *Output names*): an input found at ``REL/NAME.EXT`` below its argument (a file
or glob match: just ``NAME.EXT``) writes ``OUT/REL/STEM.EXT`` (``.EXT`` replaced by ``--ext``) and,
when asked, ``STEM.json``, ``STEM_compare.EXT`` and ``STEM_faceNN.png`` beside it. ``STEM`` is
``NAME``, except when several inputs of one folder share ``NAME`` (``a.jpg`` and ``a.png``): then
each of them keeps its whole file name as its stem (``a.jpg.png``, ``a.jpg.json``,
``a.jpg_face00.png``), so no two inputs write the same file. Names are compared without regard to
case, as many file systems do. A clash that remains (the same relative path under two arguments)
stops the run before anything is written, as does an output that would replace an input.

Every file a run writes is listed in ``OUT/.dicsr-outputs.jsonl`` (:class:`OutputRecord`), so a
later run whose inputs include the output folder (``--allow-output-in-input``) can tell its earlier
outputs from photos.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dicsr.errors import InvalidInputError
from dicsr.image import upscaled_points

__all__ = [
    "COMPARE",
    "FACES",
    "IMAGE_SUFFIXES",
    "LANDMARKS",
    "OUTPUT_RECORD",
    "PHOTO",
    "OutputFiles",
    "OutputRecord",
    "check_inputs_are_not_replaced",
    "check_output_format",
    "landmarks_record",
    "plan_outputs",
]

#: Suffixes a folder walk takes as images (files named explicitly are read whatever their suffix).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})

#: The list of files dicsr wrote into an output folder, one JSON string per line (relative path).
OUTPUT_RECORD = ".dicsr-outputs.jsonl"

_FACE_NAME = re.compile(r"(?P<stem>.*)_face\d{2,}\.png", re.S)

#: The kinds of output, as the summary names them.
PHOTO, LANDMARKS, COMPARE, FACES = "restored photo", "landmarks JSON", "side-by-side", "face files"


@dataclass(frozen=True)
class OutputFiles:
    """Every file one input may write; ``None`` for what was not asked for.

    Attributes:
        image: the restored photo.
        landmarks: the landmarks JSON (``--save-landmarks``).
        compare: the input beside the output (``--compare``).
        faces: folder and stem of the restored faces (``--save-faces``): face ``i`` is
            ``<faces>_face<ii>.png``.
    """

    image: Path
    landmarks: Path | None = None
    compare: Path | None = None
    faces: Path | None = None

    def face(self, index: int) -> Path:
        """The file of the ``index``-th restored face."""
        if self.faces is None:
            raise ValueError("faces were not asked for")
        return self.faces.with_name(f"{self.faces.name}_face{index:02d}.png")

    def missing(self) -> list[str]:
        """The kinds of output (``PHOTO``, ``LANDMARKS``, ...) that do not exist yet."""
        kinds = [] if self.image.exists() else [PHOTO]
        if self.landmarks is not None and not self.landmarks.exists():
            kinds.append(LANDMARKS)
        if self.compare is not None and not self.compare.exists():
            kinds.append(COMPARE)
        if self.faces is not None and not self._faces_exist():
            kinds.append(FACES)
        return kinds

    def _faces_exist(self) -> bool:
        # Faces are written last to first, so face 00 exists only once all of them do.
        if self.face(0).exists():
            return True
        # A photo without faces writes no face file; its landmarks JSON, if there is one, says so.
        return self.image.exists() and self.landmarks is not None and _face_count(self.landmarks) == 0

    def named_files(self) -> Iterator[Path]:
        """The files whose names are known before the run (all but the faces)."""
        yield self.image
        if self.landmarks is not None:
            yield self.landmarks
        if self.compare is not None:
            yield self.compare


def check_output_format(ext: str | None) -> None:
    """Refuse an ``--ext`` that Pillow cannot write, before anything runs."""
    if ext is None:
        return
    suffix = "." + ext.lstrip(".").lower()
    if Image.registered_extensions().get(suffix) not in Image.SAVE:
        raise InvalidInputError(f"--ext {ext}: not an image format Pillow can write (e.g. png, jpg, webp)")


def plan_outputs(
    relatives: Sequence[Path],
    sources: Sequence[Path],
    root: Path,
    *,
    ext: str | None,
    landmarks: bool,
    compare: bool,
    faces: bool,
) -> list[OutputFiles]:
    """The outputs of each input (``relatives[i]`` is where ``sources[i]`` was found below its argument).

    Raises:
        InvalidInputError: two inputs would still write one file (see the module docstring).
    """
    shared = Counter(_stem_key(relative) for relative in relatives)
    plans = []
    for relative in relatives:
        stem = relative.name if shared[_stem_key(relative)] > 1 else relative.stem
        suffix = "." + ext.lstrip(".") if ext else relative.suffix
        folder = root / relative.parent
        plans.append(OutputFiles(
            image=folder / f"{stem}{suffix}",
            landmarks=folder / f"{stem}.json" if landmarks else None,
            compare=folder / f"{stem}_compare{suffix}" if compare else None,
            faces=folder / stem if faces else None,
        ))
    clashes = _clashes(plans, sources)
    if clashes:
        shown = "; ".join(clashes[:3]) + (f"; and {len(clashes) - 3} more" if len(clashes) > 3 else "")
        raise InvalidInputError(
            f"output names clash, nothing was written: {shown}. Give such inputs separate output "
            f"folders (one run per -o)"
        )
    return plans


def _face_count(landmarks: Path) -> int | None:
    """Number of faces a landmarks JSON records, or None when it cannot be read."""
    try:
        faces = json.loads(landmarks.read_text(encoding="utf-8")).get("faces")
    except (OSError, ValueError, AttributeError):
        return None
    return len(faces) if isinstance(faces, list) else None


def _stem_key(relative: Path) -> tuple[str, str]:
    return str(relative.parent).casefold(), relative.stem.casefold()


def _clashes(plans: Sequence[OutputFiles], sources: Sequence[Path]) -> list[str]:
    """Every file two inputs would both write (face files by their stem)."""
    clashes = []
    writers: dict[str, tuple[Path, Path]] = {}  # case-folded name -> (file, the input writing it)
    face_writers: dict[tuple[str, str], Path] = {}
    for plan, source in zip(plans, sources, strict=True):
        if plan.faces is not None:
            key = (str(plan.faces.parent).casefold(), plan.faces.name.casefold())
            if key in face_writers:
                clashes.append(f"{face_writers[key]} and {source} would both write {plan.face(0)}, ...")
            face_writers.setdefault(key, source)
        for path in plan.named_files():
            folded = str(path).casefold()
            if folded in writers and writers[folded][1] != source:
                clashes.append(f"{writers[folded][1]} and {source} would both write {path}")
            writers.setdefault(folded, (path, source))
    for folded, (path, writer) in writers.items():
        face = _FACE_NAME.fullmatch(Path(folded).name)
        face_writer = face_writers.get((str(Path(folded).parent), face["stem"])) if face else None
        if face_writer is not None and face_writer != writer:
            clashes.append(f"{writer} and {face_writer} would both write {path}")
    return clashes


def check_inputs_are_not_replaced(plans: Sequence[OutputFiles], inputs: Iterable[Path]) -> None:
    """Refuse a run in which any output would be written over one of its inputs (even --overwrite).

    Files are compared by identity (device and inode), so links and case-insensitive file
    systems cannot hide a match.
    """
    identities = {}
    for path in inputs:
        try:
            info = os.stat(path)
        except OSError:  # gone since the walk: it fails on its own when its turn comes
            continue
        identities[(info.st_dev, info.st_ino)] = path
    replaced = []
    for plan in plans:
        candidates = list(plan.named_files())
        if plan.faces is not None and plan.faces.parent.is_dir():
            stem = plan.faces.name.casefold()
            candidates += [plan.faces.parent / name for name in os.listdir(plan.faces.parent)
                           if (face := _FACE_NAME.fullmatch(name.casefold())) and face["stem"] == stem]
        for path in candidates:
            try:
                info = os.stat(path)
            except OSError:
                continue
            source = identities.get((info.st_dev, info.st_ino))
            if source is not None:
                replaced.append(f"{path} is the input {source}")
    if replaced:
        shown = "; ".join(replaced[:3]) + (f"; and {len(replaced) - 3} more" if len(replaced) > 3 else "")
        raise InvalidInputError(
            f"outputs would replace inputs, nothing was written: {shown}. dicsr never writes over an "
            f"input, even with --overwrite: choose another output folder or --ext"
        )


def landmarks_record(source: Path | str, result: Any) -> dict[str, Any]:
    """JSON-ready description of the faces of one image (an :class:`~dicsr.pipeline.EnhanceResult`), in
    output-photo coordinates: the landmarks JSON (``--save-landmarks``)."""
    scale = result.upscale

    def to_output(values: Any) -> Any:
        if values is None:
            return None
        return upscaled_points(np.asarray(values, dtype=np.float64), scale).tolist()

    faces = []
    for face in result.faces:
        faces.append({
            "score": face.score,
            "box": to_output(face.detection_box),
            "crop_box": to_output(face.box),
            "points5": to_output(face.points5),
            "landmarks68": None if face.landmarks_in_output is None else face.landmarks_in_output.tolist(),
        })
    skipped = [
        {"score": face.score, "box": to_output(face.box), "points5": to_output(face.points5),
         "reason": face.reason, "detail": face.detail}
        for face in result.skipped_faces
    ]
    width, height = result.input_size
    return {
        "input": str(source),
        "input_size": [width, height],
        "upscale": scale,
        "coordinates": "restored-photo pixels, (x, y), integer values are pixel centres",
        "faces": faces,
        "skipped_faces": skipped,
    }


class OutputRecord:
    """The files dicsr wrote into one output folder, kept in ``<folder>/.dicsr-outputs.jsonl``.

    A file is recorded *before* it is written, so a run killed at any moment never leaves an
    unrecorded output (at worst a record line for a file that never appeared).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / OUTPUT_RECORD
        self._entries = self._read()

    def real_paths(self) -> frozenset[Path]:
        """The recorded files, absolute, with the output folder's links resolved."""
        root = self.folder.resolve()
        return frozenset(root / entry for entry in self._entries)

    def add(self, path: Path) -> None:
        """Record ``path`` (inside the folder) as written by dicsr."""
        entry = path.relative_to(self.folder).as_posix()
        if entry in self._entries:
            return
        with open(self.path, "a", encoding="utf-8") as record:
            record.write(json.dumps(entry) + "\n")
        self._entries.add(entry)

    def _read(self) -> set[str]:
        try:
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return set()
        entries = set()
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:  # a line cut short by a killed run: its file was never written
                continue
            if isinstance(entry, str):
                entries.add(entry)
        return entries
