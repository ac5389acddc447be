"""End-to-end photo time split into load / detect / crop / SR / paste, and bounded memory (issue 5, 6).

Reproduce::

    python benchmarks/bench_pipeline.py --json benchmarks/results/pipeline.json

Part 1 (time): a real group photo from ``../shared/faces`` through :class:`dicsr.FaceSuperResolver`
with the real RetinaFace MobileNet-0.25 weights and a DIC converted from the golden checkpoint
(random weights, same cost as trained ones). The resolver reports every stage to its ``on_stage``
callback (:class:`dicsr.pipeline.StageEvent`); the table sums them per row: load (``decode``),
detect (``detect`` + ``select``), crop (``crop``, and ``recrop`` with ``refine_crop``), SR
(``restore``: batch stacking, the network adapter, tensor -> numpy, landmark decoding), fit
(``backproject`` and ``mask``: each face made to agree with its input and given its paste mask) and paste,
with its parts background upscale (``paste.background``), face blending (``paste.blend``) and output
conversion (``paste.output``). Everything else in ``enhance`` (result assembly: each face in the
caller's type) is reported as "other". Pipeline overhead = total − SR, as % of SR. The detector is
loaded before the timed runs; one warm-up photo, then ``--repeats`` runs; medians and ranges.

Part 2 (memory): a "huge photo with many faces" (the group photo tiled ``--tile`` x ``--tile``),
processed in a fresh subprocess per ``batch_size`` (1, 4, auto), ``upscale=1`` so the output photo
does not dominate; peak RSS (``ru_maxrss``) of the whole process is reported.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DICSR_SHARED_DIR", REPO.parent / "shared"))
DEFAULT_PHOTO = SHARED / "faces" / "dlib" / "examples" / "faces" / "2008_002470.jpg"
DETECTOR = SHARED / "weights" / "detection_mobilenet0.25_Final.pth"
DIC_CHECKPOINT = SHARED / "golden" / "DIC_CelebA_ckp.pth"

logger = logging.getLogger("bench_pipeline")

PASTE_PARTS = ("paste/background", "paste/faces", "paste/output")


def build_resolver(batch_size: int | None, **options: Any) -> Any:
    from dicsr.pipeline import DetectorSpec, FaceSuperResolver, SelectionPolicy
    from dicsr.weights import convert_official_checkpoint

    adapter = convert_official_checkpoint(DIC_CHECKPOINT).adapter
    # Every face: the group photo's faces are larger than DIC restores by default (the size rule of
    # docs/face-crops.md), and a photo with no face restored measures no network time.
    return FaceSuperResolver(adapter, DetectorSpec(weights=DETECTOR), batch_size=batch_size,
                             selection=SelectionPolicy(all_sizes=True), **options)


#: The table's rows, from the pipeline's stage names (dicsr.pipeline.StageName).
ROW_OF_STAGE = {
    "decode": "load",
    "detect": "detect",
    "select": "detect",  # selection used to run inside detection; it costs microseconds
    "crop": "crop",
    "recrop": "crop",
    "restore": "sr",
    "backproject": "fit",
    "mask": "fit",
    "paste": "paste",
    "paste.background": "paste/background",
    "paste.blend": "paste/faces",
    "paste.output": "paste/output",
}


class StageTimer:
    """The resolver's ``on_stage`` callback: sums each stage's seconds into its table row."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def __call__(self, event: Any) -> None:
        self.seconds[ROW_OF_STAGE[event.stage]] += event.seconds

    def reset(self) -> None:
        self.seconds.clear()


def time_photo(photo: Path, repeats: int, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    timer = StageTimer()
    resolver = build_resolver(batch_size=None, on_stage=timer)
    resolver.load_detector()  # loaded outside the timed region (one-off cost)
    runs: list[dict[str, float]] = []
    faces = 0
    for index in range(repeats + 1):  # the first run is a warm-up
        timer.reset()
        start = time.perf_counter()
        result = resolver.enhance(str(photo))
        total = time.perf_counter() - start
        faces = len(result.faces)
        stages = dict(timer.seconds)
        stages["total"] = total
        stages["other"] = total - sum(v for k, v in timer.seconds.items() if "/" not in k)
        if index:
            runs.append(stages)
        logger.info("run %d: %s", index, {k: round(v, 3) for k, v in stages.items()})
    keys = ["load", "detect", "crop", "sr", "fit", "paste", *PASTE_PARTS, "other", "total"]
    summary = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in keys}
    overhead = [(r["total"] - r["sr"]) / r["sr"] for r in runs]
    width, height = result.input_size
    return {
        "photo": str(photo),
        "size": [width, height],
        "faces": faces,
        "upscale": result.upscale,
        "runs": runs,
        "median_s": summary,
        "overhead_pct_median": 100 * statistics.median(overhead),
        "overhead_pct_range": [100 * min(overhead), 100 * max(overhead)],
        "sr_s_per_face": summary["sr"] / max(faces, 1),
    }


# --- memory of a huge photo ----------------------------------------------------------------------


def huge_photo(photo: Path, tile: int, out: Path) -> Path:
    from PIL import Image

    with Image.open(photo) as image:
        rgb = np.asarray(image.convert("RGB"))
    tiled = np.tile(rgb, (tile, tile, 1))
    Image.fromarray(tiled).save(out, quality=95)
    return out


def _status_mb(field_name: str) -> float | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return None


def memory_worker(photo: Path, batch: str, threads: int) -> None:
    torch.set_num_threads(threads)
    batch_size = None if batch == "auto" else int(batch)
    resolver = build_resolver(batch_size=batch_size, upscale=1.0)
    resolver.load_detector()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Loading the checkpoint peaks higher than a small enhance; reset the high-water mark (VmHWM)
    # so the peak of the enhance call itself is measured ("5" > clear_refs, Linux >= 4.0).
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    rss_start = _status_mb("VmRSS")
    start = time.perf_counter()
    result = resolver.enhance(str(photo))
    elapsed = time.perf_counter() - start
    peak = _status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    chunk = resolver.network_batch_size()
    print(
        json.dumps(
            {
                "batch_size": batch,
                "chunk": chunk,
                "faces": len(result.faces),
                "seconds": elapsed,
                "maxrss_before_mb": before,
                "rss_before_enhance_mb": rss_start,
                "maxrss_mb": peak,
                "hwm_reset": reset,
            }
        )
    )


def measure_memory(photo: Path, batches: list[str], threads: int, timeout: float) -> list[dict[str, Any]]:
    rows = []
    for batch in batches:
        cmd = [sys.executable, __file__, "--memory-worker", str(photo), batch, "--threads", str(threads)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
        except subprocess.CalledProcessError as exc:
            logger.warning("memory run batch %s failed:\n%s", batch, exc.stderr[-2000:])
            continue
        except (subprocess.SubprocessError, OSError) as exc:
            logger.warning("memory run batch %s failed: %s", batch, exc)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        logger.info("memory: %s", rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tile", type=int, default=3, help="huge photo = photo tiled tile x tile")
    parser.add_argument("--memory-batches", default="1,4,auto")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-timing", action="store_true", help="only the huge-photo memory part")
    parser.add_argument("--memory-timeout", type=float, default=3600.0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--memory-worker", nargs=2, metavar=("PHOTO", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()

    if args.memory_worker:
        memory_worker(Path(args.memory_worker[0]), args.memory_worker[1], args.threads)
        return
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    logger.setLevel(logging.INFO)

    print("# dicsr pipeline benchmark\n")
    print(
        f"torch {torch.__version__} · threads {args.threads} · "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} · "
        f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    import dicsr

    print(f"command: python {' '.join(sys.argv)} · dicsr from {Path(dicsr.__file__).parents[1]}\n")
    timing: dict[str, Any] = {}
    if not args.no_timing:
        timing = time_photo(args.photo, args.repeats, args.threads)
        med = timing["median_s"]
        print(
            f"photo {args.photo.name} ({timing['size'][0]}x{timing['size'][1]}), {timing['faces']} faces, "
            f"upscale {timing['upscale']:g}, DIC fp32, median of {args.repeats} runs after 1 warm-up\n"
        )
        print("| stage | median s | % of total |\n|---|---|---|")
        for key in ("load", "detect", "crop", "sr", "fit", "paste", *PASTE_PARTS, "other", "total"):
            label = f"· {key.split('/')[1]}" if "/" in key else key
            print(f"| {label} | {med[key]:.3f} | {100 * med[key] / med['total']:.1f} |")
        low, high = timing["overhead_pct_range"]
        print(
            f"\npipeline overhead (total − SR) = {timing['overhead_pct_median']:.1f}% of SR time "
            f"(range {low:.1f}–{high:.1f}%); SR {timing['sr_s_per_face']:.2f} s/face; "
            f"target < 10%: {'met' if timing['overhead_pct_median'] < 10 else 'NOT met'}\n"
        )

    memory: list[dict[str, Any]] = []
    if not args.no_memory:
        out = Path(os.environ.get("TMPDIR", "/tmp")) / f"dicsr-huge-{args.tile}x{args.tile}.jpg"
        huge = huge_photo(args.photo, args.tile, out)
        memory = measure_memory(huge, args.memory_batches.split(","), args.threads, args.memory_timeout)
        from PIL import Image

        with Image.open(huge) as image:
            size = image.size
        print(
            f"huge photo: {args.photo.name} tiled {args.tile}x{args.tile} = {size[0]}x{size[1]}, upscale 1\n"
        )
        print(
            "| batch_size | faces per chunk | faces | seconds | peak RSS during enhance MB | RSS before MB |"
        )
        print("|---|---|---|---|---|---|")
        for row in memory:
            before = row.get("rss_before_enhance_mb") or row["maxrss_before_mb"]
            print(
                f"| {row['batch_size']} | {row['chunk']} | {row['faces']} | {row['seconds']:.0f} | "
                f"{row['maxrss_mb']:.0f} | {before:.0f} |"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"timing": timing, "memory": memory, "argv": sys.argv}, indent=2))


if __name__ == "__main__":
    main()
