"""Does the allocator cause DIC's system time? Page faults and CPU time per forward under
different allocator settings (docs/specs/dic.md §5: about a third of DIC's CPU time is system time).

Reproduce::

    python benchmarks/bench_allocator.py --rounds 4

Each setting runs in its own fresh process (allocator settings are process-wide and must be made
before the big allocations); the settings are alternated round by round so background load hits
them alike. Per forward (after ``--warmup`` untimed ones) the worker records wall time, user and
system CPU time and minor page faults (``ru_minflt``, a count that does not depend on load).

Settings:

* ``default``: glibc malloc as the process starts.
* ``mallopt``: ``mallopt(M_MMAP_THRESHOLD, 32 MiB)`` (glibc's maximum) and
  ``mallopt(M_TRIM_THRESHOLD, 1 GiB)`` via ctypes: freed blocks below 32 MiB stay in the heap
  instead of being unmapped and faulted in again. DIC's largest temporaries (the 256x256
  concatenations, up to 75 MB per image) are above any settable threshold and are still mmapped.
* ``thp``: ``THP_MEM_ALLOC_ENABLE=1``, PyTorch's own switch to back CPU tensors >= 2 MiB with
  transparent huge pages (one fault per 2 MiB instead of per 4 KiB); needs THP in ``madvise`` or
  ``always`` mode (``/sys/kernel/mm/transparent_hugepage/enabled``).
* ``mallopt+thp``: both.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = ("default", "mallopt", "thp", "mallopt+thp")
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DICSR_SHARED_DIR", REPO.parent / "shared"))


def tune_glibc_malloc() -> bool:
    libc = ctypes.CDLL("libc.so.6")
    ok = libc.mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1
    return ok and libc.mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024) == 1


def worker(setting: str, model: str, batch: int, warmup: int, runs: int, threads: int) -> None:
    if "mallopt" in setting and not tune_glibc_malloc():
        raise SystemExit("mallopt refused the settings")
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eager_reference_dic import load_reference

    from dicsr.weights import convert_official_checkpoint

    torch.set_num_threads(threads)
    network = convert_official_checkpoint(SHARED / "golden" / "DIC_CelebA_ckp.pth").adapter.network
    x = torch.randn(batch, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.2
    if model == "reference":
        reference = load_reference(network.state_dict())

        def run() -> None:
            with torch.no_grad():
                reference(x)

    else:

        def run() -> None:
            with torch.inference_mode():
                network(x, all_steps=False)

    for _ in range(warmup):
        run()
    rows = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        rows.append(
            {
                "wall": wall,
                "user": after.ru_utime - before.ru_utime,
                "sys": after.ru_stime - before.ru_stime,
                "minflt": after.ru_minflt - before.ru_minflt,
            }
        )
    print(json.dumps({"rows": rows, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--models", default="dicsr,reference", help="dicsr and/or the eager reference")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="alternating subprocess rounds")
    parser.add_argument("--runs", type=int, default=3, help="timed forwards per subprocess")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", nargs=2, metavar=("SETTING", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], args.batch, args.warmup, args.runs, args.threads)
        return

    settings = args.settings.split(",")
    models = args.models.split(",")
    collected: dict[tuple[str, str], list[dict[str, float]]] = {(m, s): [] for m in models for s in settings}
    maxrss: dict[tuple[str, str], list[float]] = {key: [] for key in collected}
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    print(f"# allocator effects on DIC, batch {args.batch}, threads {args.threads}\n")
    print(
        f"THP: {thp.read_text().strip() if thp.exists() else 'n/a'}; command: python {' '.join(sys.argv)}\n"
    )
    for round_index in range(args.rounds):
        order = settings[round_index % len(settings) :] + settings[: round_index % len(settings)]
        for model in models:
            for setting in order:
                env = dict(os.environ)
                if "thp" in setting:
                    env["THP_MEM_ALLOC_ENABLE"] = "1"
                else:
                    env.pop("THP_MEM_ALLOC_ENABLE", None)
                cmd = [sys.executable, __file__, "--worker", setting, model, "--batch", str(args.batch)]
                cmd += [
                    "--runs",
                    str(args.runs),
                    "--warmup",
                    str(args.warmup),
                    "--threads",
                    str(args.threads),
                ]
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                data = json.loads(done.stdout.strip().splitlines()[-1])
                collected[(model, setting)] += data["rows"]
                maxrss[(model, setting)].append(data["maxrss_mb"])
                print(f"round {round_index + 1} {model} {setting} done", file=sys.stderr, flush=True)

    print(
        "| model | setting | wall s (median) | user s | sys s | sys % of CPU | minor faults / forward "
        "| CPU vs default | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for model in models:
        base_cpu = None
        for setting in settings:
            rows = collected[(model, setting)]
            med = {k: statistics.median(r[k] for r in rows) for k in ("wall", "user", "sys", "minflt")}
            cpu = med["user"] + med["sys"]
            base_cpu = cpu if base_cpu is None else base_cpu
            print(
                f"| {model} | {setting} | {med['wall']:.2f} ({min(r['wall'] for r in rows):.2f}–"
                f"{max(r['wall'] for r in rows):.2f}) | {med['user']:.2f} | {med['sys']:.2f} | "
                f"{100 * med['sys'] / cpu:.0f} | {med['minflt']:.0f} | {base_cpu / cpu:.2f}× | "
                f"{statistics.median(maxrss[(model, setting)]):.0f} |"
            )
    if args.json:
        args.json.write_text(json.dumps({f"{m}/{s}": v for (m, s), v in collected.items()}, indent=2))


if __name__ == "__main__":
    main()
