"""Start-up cost: from ``import dicsr`` to the first restored face in a fresh process (issue 16).

Reproduce (~2 min on a 2-core VM)::

    python benchmarks/bench_startup.py --json benchmarks/results/startup.json > benchmarks/results/startup.md

Each run is a fresh ``python`` process that times, in order: ``import dicsr`` (and torch), building a
:class:`dicsr.FaceSuperResolver` (model folder load), the first ``enhance`` of a one-face photo (the
detector is loaded lazily here, and oneDNN creates its kernels for the first shapes), then three
more ``enhance`` calls of the same photo: their median is the steady state. Start-up overhead =
(import + construction + first enhance) − steady state. Runs alternate between the settings given
with ``--settings`` so background load hits them alike; medians over runs are reported.

The model is DIC converted from the golden checkpoint (random weights, the cost of trained ones),
the detector the real RetinaFace MobileNet-0.25 weights, the photo ``obama-240p.jpg`` (one face).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_networks import GOLDEN, SHARED, machine_info

PHOTO = SHARED / "faces" / "face_recognition" / "examples" / "obama-240p.jpg"
DETECTOR = SHARED / "weights" / "detection_mobilenet0.25_Final.pth"

CHILD = r"""
import json, sys, time
start = time.perf_counter()
import torch
torch.set_num_threads({threads})
import dicsr
imported = time.perf_counter()
from dicsr.pipeline import SelectionPolicy
# every face: the photo's face is larger than DIC restores by default (issue 11's size rule)
resolver = dicsr.FaceSuperResolver.from_pretrained(
    {model!r}, device="cpu", detector_weights={detector!r}, selection=SelectionPolicy(all_sizes=True),
    {options})
built = time.perf_counter()
result = resolver.enhance({photo!r})
first = time.perf_counter()
assert len(result.faces) >= 1, "no face restored"
steady = []
for _ in range(3):
    t = time.perf_counter()
    resolver.enhance({photo!r})
    steady.append(time.perf_counter() - t)
print(json.dumps({{"import_s": imported - start, "construct_s": built - imported,
                  "first_enhance_s": first - built, "steady_s": steady, "faces": len(result.faces)}}))
"""


def run_child(model: Path, options: str, threads: int) -> dict:
    code = CHILD.format(
        threads=threads, model=str(model), detector=str(DETECTOR), photo=str(PHOTO), options=options
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per setting")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--settings",
        default="fp32=;bf16-cl=dtype='bfloat16', channels_last=True",
        help="';'-separated name=FaceSuperResolver keyword arguments",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.settings.split(";"))

    from dicsr.weights import convert_checkpoint

    info = machine_info(args.threads)
    results: dict[str, list[dict]] = {name: [] for name in settings}
    with tempfile.TemporaryDirectory() as folder:
        model = convert_checkpoint(GOLDEN / "DIC_CelebA_ckp.pth", Path(folder) / "dic", name="dic-celeba")
        for _ in range(args.runs):
            for name, options in settings.items():
                results[name].append(run_child(model, options, args.threads))
    info["load_average_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())

    print("# Start-up: import dicsr -> first restored face, fresh processes\n")
    print(" · ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"\ncommand: python {' '.join(sys.argv)}\n")
    print(
        "| setting | import s | construct s | first enhance s | steady enhance s | "
        "start-up overhead s (import + construct + first − steady) |"
    )
    print("|---|---|---|---|---|---|")
    summary = {}
    for name, runs in results.items():

        def median(key: str, runs: list[dict] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        steady = statistics.median(statistics.median(r["steady_s"]) for r in runs)
        overheads = [
            r["import_s"] + r["construct_s"] + r["first_enhance_s"] - statistics.median(r["steady_s"])
            for r in runs
        ]
        summary[name] = {"overhead_s": statistics.median(overheads), "steady_s": steady}
        phases = f"{median('import_s'):.2f} | {median('construct_s'):.2f} | {median('first_enhance_s'):.2f}"
        spread = f"({min(overheads):.2f}–{max(overheads):.2f})"
        print(f"| {name} | {phases} | {steady:.2f} | **{statistics.median(overheads):.2f}** {spread} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"machine": info, "command": sys.argv, "runs": results, "summary": summary}, indent=2)
        )


if __name__ == "__main__":
    main()
