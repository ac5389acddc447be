"""Photos per second of the Ray job (``dicsr.distributed``) with 1 and 2 actors, on a local Ray (issue 14).

Reproduce::

    python benchmarks/bench_ray_actors.py --json benchmarks/results/ray_actors.json

A folder of the real photos of ``../shared/faces/dlib/examples/faces`` (each copied ``--copies``
times under other names) goes through :func:`dicsr.distributed.enhance_jobs` on one local Ray
(``ray.init(num_cpus=--cpus)``), SPARNet converted from the golden checkpoint (random weights, the
cost of trained ones), the real RetinaFace MobileNet-0.25, ``upscale=2`` and every face restored
(``all_sizes``). Each run starts its actor pool (model and detector loaded per actor), restores
every photo and writes it (``overwrite``): the time is the whole job's, start-up included, as a
user sees it. Runs of 1 and 2 actors (0.75 CPU and one PyTorch thread each) alternate for
``--rounds`` rounds in this one process, so a busy machine weighs on both alike; a serial loop of
``FaceSuperResolver.enhance`` in the driver (one thread, model already loaded) is the baseline.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from dicsr.distributed import PhotoJob, enhance_jobs
from dicsr.pipeline import FaceSuperResolver, SelectionPolicy
from dicsr.weights import convert_checkpoint

SHARED = Path(os.environ.get("DICSR_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import ray
    from ray.data import DataContext

    work = Path(tempfile.mkdtemp(prefix="dicsr-bench-ray-"))
    try:
        model = convert_checkpoint(SHARED / "golden" / "SPARNet.pth", work / "sparnet", name="sparnet")
        detector = SHARED / "weights" / "detection_mobilenet0.25_Final.pth"
        photos = work / "photos"
        photos.mkdir()
        for source in sorted((SHARED / "faces" / "dlib" / "examples" / "faces").glob("*.jpg")):
            for copy in range(args.copies):
                shutil.copy(source, photos / f"{source.stem}_{copy}.jpg")
        jobs = [PhotoJob(str(path), work / "out" / path.name) for path in sorted(photos.iterdir())]
        options = {"detector_weights": detector, "upscale": 2, "device": "cpu",
                   "selection": SelectionPolicy(all_sizes=True)}

        torch.set_num_threads(1)
        resolver = FaceSuperResolver.from_pretrained(model, progress=False, **options)
        resolver.load_detector()
        start = time.perf_counter()
        faces = sum(resolver.enhance(Path(job.source)).num_faces for job in jobs)
        serial = len(jobs) / (time.perf_counter() - start)
        del resolver

        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
        DataContext.get_current().enable_progress_bars = False
        rates: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for actors in (1, 2):
                start = time.perf_counter()
                rows = enhance_jobs(jobs, model=model, actors=(actors, actors), cpus_per_actor=0.75,
                                    threads_per_actor=1, overwrite=True, **options).take_all()
                rates[actors].append(len(jobs) / (time.perf_counter() - start))
                assert all(row["error"] is None for row in rows), rows
        ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "date": datetime.date.today().isoformat(), "cpus": args.cpus, "photos": len(jobs), "faces": faces,
        "load_average": os.getloadavg(), "serial_photos_per_s": serial,
        "ray_photos_per_s": {str(n): rates[n] for n in rates},
    }
    load = os.getloadavg()[0]
    print(f"{len(jobs)} photos, {faces} faces, load average {load:.1f} on {os.cpu_count()} CPUs")
    print(f"serial enhance in the driver (1 thread):   {serial:.2f} photos/s")
    for n, values in rates.items():
        print(f"Ray, {n} actor(s), whole job: median {statistics.median(values):.2f} photos/s "
              f"(runs: {', '.join(f'{v:.2f}' for v in values)})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
