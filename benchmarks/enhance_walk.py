"""The walk of one ``enhance`` call through dicsr's rooms: where control goes, and how often it climbs.

Reproduce (this checkout, or another one for a before/after comparison)::

    python benchmarks/enhance_walk.py
    PYTHONPATH=<other checkout> python benchmarks/enhance_walk.py

A profiler hook follows one ``enhance`` of a real photo (SPARNet converted from the golden
checkpoint, the real RetinaFace weights, the detector built by a warm-up call first) and records the
dicsr room that holds control after every Python call and return. Rooms and floors are those of
docs/architecture.md: pipeline 5, weights 4, families 3, face 2, image 1, the floor-0 modules 0.

* **stays**: the sequence of rooms with consecutive repeats merged (also per module, finer);
* **climbs**: moves in that sequence to a higher floor; returning to the room that called is one
  too (the code review's count);
* **calls up**: calls from a room into a room on a higher floor (data or control reaching back up),
  the thing the layering forbids.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DICSR_SHARED_DIR", REPO.parent / "shared"))
PHOTO = SHARED / "faces" / "face_recognition" / "examples" / "two_people.jpg"
DETECTOR = SHARED / "weights" / "detection_mobilenet0.25_Final.pth"
CHECKPOINT = SHARED / "golden" / "SPARNet.pth"

#: module prefix -> (room, floor), first match wins (old and new layouts both listed).
ROOMS = [
    ("dicsr.cli", "cli", 6), ("dicsr._cli", "cli", 6),
    ("dicsr.pipeline", "pipeline", 5),
    ("dicsr.weights", "weights", 4), ("dicsr.loading", "weights", 4),
    ("dicsr.families", "families", 3), ("dicsr.adapters", "families", 3), ("dicsr.archs", "families", 3),
    ("dicsr.config", "families", 3),
    ("dicsr.face", "face", 2),
    ("dicsr.image", "image", 1), ("dicsr.results", "results", 1), ("dicsr.visualize", "image", 1),
    ("dicsr.", "floor 0", 0),
]


def room_of(module: str) -> tuple[str, int] | None:
    for prefix, room, floor in ROOMS:
        inside = module.startswith(prefix) if prefix.endswith(".") else module.startswith(prefix + ".")
        if module == prefix or inside:
            return room, floor
    return None


def build_resolver() -> Any:
    from dicsr.weights import convert_official_checkpoint

    adapter = convert_official_checkpoint(CHECKPOINT).adapter
    from dicsr.pipeline import FaceSuperResolver

    try:
        from dicsr.pipeline import DetectorSpec  # the composed pipeline
    except ImportError:  # the 19-argument constructor
        return FaceSuperResolver(adapter, device="cpu", detector_weights=DETECTOR, upscale=2, progress=False)
    return FaceSuperResolver(adapter, DetectorSpec(weights=DETECTOR), upscale=2)


class Walk:
    """Records the room (and module) holding control after each call and return inside dicsr."""

    def __init__(self) -> None:
        self.rooms: list[tuple[str, int]] = []
        self.modules: list[str] = []
        self.calls_up: Counter[tuple[str, str]] = Counter()

    def __call__(self, frame: FrameType, event: str, arg: object) -> None:
        if event not in ("call", "return"):
            return
        module = frame.f_globals.get("__name__", "")
        if event == "return":  # control goes back to the caller
            caller = frame.f_back
            module = caller.f_globals.get("__name__", "") if caller is not None else ""
        elif frame.f_back is not None:
            here, there = room_of(frame.f_back.f_globals.get("__name__", "")), room_of(module)
            if here and there and there[1] > here[1]:
                self.calls_up[(here[0], there[0])] += 1
        room = room_of(module)
        if room is None:
            return  # outside dicsr (torch, numpy, Pillow): control stays with the dicsr caller
        if not self.rooms or self.rooms[-1] != room:
            self.rooms.append(room)
        if not self.modules or self.modules[-1] != module:
            self.modules.append(module)

    def climbs(self) -> int:
        return sum(1 for a, b in itertools.pairwise(self.rooms) if b[1] > a[1])

    def module_climbs(self) -> int:
        floors = [room_of(m)[1] for m in self.modules]  # type: ignore[index]
        return sum(1 for a, b in itertools.pairwise(floors) if b > a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--sequence", action="store_true", help="print the whole room sequence")
    args = parser.parse_args()
    import dicsr

    resolver = build_resolver()
    resolver.enhance(str(args.photo))  # warm-up: the detector is built, lazy imports are done
    walk = Walk()
    sys.setprofile(walk)
    try:
        result = resolver.enhance(str(args.photo))
    finally:
        sys.setprofile(None)
    rooms = Counter(room for room, _ in walk.rooms)
    print(f"dicsr from {Path(dicsr.__file__).parents[1]}; {result.num_faces} faces")
    print(f"rooms: {len(walk.rooms)} stays in {len(rooms)} rooms, {walk.climbs()} climbs; entries "
          + ", ".join(f"{room} {count}" for room, count in rooms.most_common()))
    modules = Counter(walk.modules)
    print(f"modules: {len(walk.modules)} stays in {len(modules)} modules, {walk.module_climbs()} climbs; "
          + ", ".join(f"{module.removeprefix('dicsr.')} {count}" for module, count in modules.most_common()))
    print("calls up: " + (", ".join(f"{a} -> {b} x{n}" for (a, b), n in walk.calls_up.items()) or "none"))
    if args.sequence:
        print(" -> ".join(room for room, _ in walk.rooms))


if __name__ == "__main__":
    main()
