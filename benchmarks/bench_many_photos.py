"""Photos per second, CPU utilisation and peak memory: a serial ``enhance`` loop vs ``enhance_many``
over a folder of the project's photos (issue 14).

The two run interleaved in one process (serial, many, serial, many, ...) so that the machine's load
affects both alike; the ratio per round is what to read. Each round restores every photo; outputs
are checked bitwise equal between the two modes on the first round.

* photos/s: photos / wall time of the round;
* CPU utilisation: process CPU time (user + system, all threads) / wall time / cores;
* peak memory: the process's peak resident set size during the round above its size before it,
  sampled every 5 ms from /proc/self/statm (ru_maxrss cannot be reset between rounds).

The model is the golden (seeded random) official DIC checkpoint: the same network, the same cost as
the released weights. Default settings are the CLI's (default face selection and upscale).

Reproduce::

    python benchmarks/bench_many_photos.py --json benchmarks/results/many_photos.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DICSR_SHARED_DIR", REPO.parent / "shared"))
DETECTOR = SHARED / "weights" / "detection_mobilenet0.25_Final.pth"
CHECKPOINTS = {"dic": SHARED / "golden" / "DIC_CelebA_ckp.pth", "sparnet": SHARED / "golden" / "SPARNet.pth"}
#: Photos of different sizes and face counts; with the default selection DIC restores 0-3 faces each.
PHOTOS = [
    "Pillow/Tests/images/hopper.jpg",
    "dlib/examples/faces/2008_002079.jpg",
    "dlib/examples/faces/2008_002470.jpg",
    "mmpose/tests/data/coco/000000197388.jpg",
    "face_recognition/examples/obama-240p.jpg",
    "sharp/test/fixtures/Channel_digital_image_CMYK_color.jpg",
    "facexlib/assets/test.jpg",
    "dlib/examples/faces/2009_004587.jpg",
]
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


@contextmanager
def peak_rss() -> Iterator[dict[str, int]]:
    """Samples the resident set size while the block runs; fills ``before`` and ``peak``."""
    found = {"before": rss_bytes(), "peak": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            found["peak"] = max(found["peak"], rss_bytes())
            stop.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield found
    finally:
        stop.set()
        sampler.join()
        found["peak"] = max(found["peak"], rss_bytes())


def measure(run: Callable[[], list[Any]]) -> tuple[dict[str, float], list[Any]]:
    cores = os.cpu_count() or 1
    with peak_rss() as memory:
        cpu, wall = time.process_time(), time.perf_counter()
        results = run()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "seconds": wall,
        "photos_per_second": len(results) / wall,
        "cpu_utilisation": cpu / wall / cores,
        "peak_rss_above_start_mb": (memory["peak"] - memory["before"]) / 2**20,
        "peak_rss_mb": memory["peak"] / 2**20,
    }, results


def same(a: Any, b: Any) -> bool:
    return bool(np.array_equal(a.image, b.image)) and all(
        np.array_equal(x.image, y.image) for x, y in zip(a.faces, b.faces, strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", choices=sorted(CHECKPOINTS), default="dic")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--workers", type=int, default=2, help="enhance_many's workers")
    parser.add_argument("--all-faces", action="store_true", help="restore faces of every size")
    parser.add_argument("--share-batches", action="store_true",
                        help="also time enhance_many(share_batches=True)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from dicsr.pipeline import DetectorSpec, FaceSuperResolver, SelectionPolicy
    from dicsr.weights import convert_official_checkpoint

    adapter = convert_official_checkpoint(CHECKPOINTS[args.network]).adapter
    resolver = FaceSuperResolver(adapter, DetectorSpec(weights=DETECTOR),
                                 selection=SelectionPolicy(all_sizes=args.all_faces))
    photos = [str(SHARED / "faces" / name) for name in PHOTOS]
    # Warm-up, one whole pass: oneDNN sets up kernels for each new input shape (detection per photo
    # size, the network per batch size), seconds each; a cold first round is not what to compare.
    faces = sum(resolver.enhance(photo).num_faces for photo in photos)
    modes: dict[str, Callable[[], list[Any]]] = {
        "serial enhance": lambda: [resolver.enhance(photo) for photo in photos],
        "enhance_many": lambda: list(resolver.enhance_many(photos, workers=args.workers)),
    }
    if args.share_batches:
        modes["enhance_many share_batches"] = lambda: list(resolver.enhance_many(photos, share_batches=True))
    rounds: list[dict[str, Any]] = []
    for index in range(args.rounds):
        row: dict[str, Any] = {"round": index, "load_average_before": os.getloadavg()}
        outputs = {}
        for mode, run in modes.items():
            row[mode], outputs[mode] = measure(run)
            numbers = row[mode]
            print(f"round {index} {mode:<28} {numbers['photos_per_second']:.3f} photos/s  "
                  f"CPU {numbers['cpu_utilisation']:.2f}  "
                  f"peak RSS +{numbers['peak_rss_above_start_mb']:.0f} MB", flush=True)
        serial, many = outputs["serial enhance"], outputs["enhance_many"]
        row["bitwise_equal"] = all(same(a, b) for a, b in zip(serial, many, strict=True))
        row["ratio"] = row["enhance_many"]["photos_per_second"] / row["serial enhance"]["photos_per_second"]
        print(f"round {index} enhance_many / serial = {row['ratio']:.3f}  "
              f"bitwise equal {row['bitwise_equal']}", flush=True)
        rounds.append(row)
    summary = {"median_ratio": statistics.median(r["ratio"] for r in rounds),
               "ratios": [r["ratio"] for r in rounds]}
    print(f"median ratio {summary['median_ratio']:.3f} over {args.rounds} rounds", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "threads": args.threads, "workers": args.workers,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "network": args.network,
            "all_faces": args.all_faces, "photos": PHOTOS, "faces_restored": faces,
            "load_average_after": os.getloadavg(), "summary": summary, "rounds": rounds,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
