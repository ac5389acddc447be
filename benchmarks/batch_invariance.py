"""Is a network's output for one face independent of the batch it runs in? (issue 14)

``enhance_many`` puts faces of several photos into one network call; ``enhance`` runs each photo's
faces on their own. Both give the same bits only if a face's output does not depend on how many
faces share its batch (batch size) or which (companions). oneDNN picks kernels, blockings and
thread splits by shape, so that is a property to measure, not to assume.

For every network and dtype asked for, the script cuts real faces out of the project's photos
(real RetinaFace detector), runs each face alone (batch 1: the reference), then in batches of
every size in ``--sizes`` with two different sets of companions, and reports per face the max
abs difference to the reference in [0, 1] units and the number of 8-bit levels that change after
the pipeline's own quantisation. Networks are the golden (seeded random) official checkpoints.

Reproduce::

    python benchmarks/batch_invariance.py --json benchmarks/results/batch_invariance.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DICSR_SHARED_DIR", REPO.parent / "shared"))
DETECTOR = SHARED / "weights" / "detection_mobilenet0.25_Final.pth"
CHECKPOINTS = {"dic": SHARED / "golden" / "DIC_CelebA_ckp.pth", "sparnet": SHARED / "golden" / "SPARNet.pth"}
PHOTOS = [
    "dlib/examples/faces/2008_002470.jpg",
    "dlib/examples/faces/2009_004587.jpg",
    "face_recognition/examples/two_people.jpg",
    "dlib/examples/faces/bald_guys.jpg",
]


def real_crops(adapter: Any, count: int) -> np.ndarray:
    """``count`` face crops (N x 3 x lr x lr in [0, 1]) in the adapter's crop convention."""
    from dicsr.pipeline import DetectorSpec, FaceSuperResolver, SelectionPolicy

    # every size: the default selection leaves these photos' large faces alone
    resolver = FaceSuperResolver(adapter, DetectorSpec(weights=DETECTOR), upscale=1,
                                 selection=SelectionPolicy(all_sizes=True))
    crops: list[np.ndarray] = []
    for name in PHOTOS:
        prepared = resolver.prepare(str(SHARED / "faces" / name))
        crops += [face.crop.lr for face in prepared.faces]
        if len(crops) >= count:
            break
    if len(crops) < count:
        raise SystemExit(f"only {len(crops)} faces in the photos, {count} asked for")
    return np.stack(crops[:count]).transpose(0, 3, 1, 2)


def quantised(images: torch.Tensor) -> np.ndarray:
    from dicsr.image import to_uint8

    return np.stack([to_uint8(image) for image in images.permute(0, 2, 3, 1).numpy()])


def measure(network: str, dtype: str, channels_last: bool, sizes: list[int]) -> dict[str, Any]:
    from dicsr.weights import convert_official_checkpoint

    adapter = convert_official_checkpoint(CHECKPOINTS[network]).adapter
    adapter.to("cpu", dtype, channels_last=channels_last)
    largest = max(sizes)
    crops = torch.from_numpy(real_crops(adapter, 2 * largest))
    faces = crops[:largest]
    companions = crops[largest:]

    def run(batch: torch.Tensor) -> torch.Tensor:
        return adapter(batch).images.float()

    alone = torch.cat([run(face[None]) for face in faces])
    alone_u8 = quantised(alone)
    rows = []
    for size in sizes:
        if size == 1:
            again = torch.cat([run(face[None]) for face in faces])
            rows.append(_compare("1 (repeat)", again, alone, alone_u8))
            continue
        # batch of the first `size` faces together, and face 0 with other companions
        together = run(faces[:size])
        rows.append(_compare(f"{size}", together, alone[:size], alone_u8[:size]))
        mixed = run(torch.cat([faces[:1], companions[: size - 1]]))
        rows.append(_compare(f"{size}, other companions", mixed[:1], alone[:1], alone_u8[:1]))
        # the same batch size, other companions: does a face depend on its companions, or only on
        # the batch's shape?
        rows.append(_compare(f"{size} vs {size}, other companions", mixed[:1], together[:1],
                             quantised(together[:1]), reference_label=f"batch {size}"))
    return {"network": network, "dtype": dtype, "channels_last": channels_last, "rows": rows}


def _compare(
    label: str, got: torch.Tensor, reference: torch.Tensor, reference_u8: np.ndarray,
    reference_label: str = "alone",
) -> dict[str, Any]:
    difference = (got - reference).abs().amax().item()
    levels = np.abs(quantised(got).astype(np.int16) - reference_u8.astype(np.int16))
    row = {"batch": label, "reference": reference_label, "faces": int(got.shape[0]), "max_abs": difference,
           "bitwise": difference == 0.0, "changed_8bit_values": int((levels > 0).sum()),
           "max_8bit_levels": int(levels.max())}
    print(f"  batch {label:<30} vs {reference_label:<8} max abs {difference:.3g}  "
          f"bitwise {row['bitwise']!s:<5}  "
          f"8-bit values changed {row['changed_8bit_values']} (max {row['max_8bit_levels']} level)",
          flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", default="dic,sparnet")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--channels-last", default="off,on", help="off, on or off,on")
    parser.add_argument("--sizes", default="1,2,3,4,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    for network in args.networks.split(","):
        for dtype in args.dtypes.split(","):
            for layout in args.channels_last.split(","):
                print(f"{network} {dtype} channels_last={layout}", flush=True)
                results.append(measure(network, dtype, layout == "on", sizes))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": args.threads, "load_average": os.getloadavg(), "results": results,
        }, indent=2))


if __name__ == "__main__":
    sys.exit(main())
