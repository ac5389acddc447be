"""Where DIC's limit is on this CPU: peak matmul and convolution throughput, and a per-stage profile.

Reproduce (~4 min on a 2-core VM)::

    python benchmarks/bench_roofline.py --json benchmarks/results/roofline.json \\
        > benchmarks/results/roofline.md

Three parts, every measurement interleaved over rounds (each round runs every variant once), best
and median reported:

1. **Peaks.** A 2048^3 matrix product in float32 (PyTorch's BLAS, MKL, and oneDNN's matmul) and
   bfloat16 (oneDNN), and a large copy (memory bandwidth).
2. **DIC's shapes.** Each operation DIC spends its time in, at its own shape, in float32 NCHW,
   float32 channels-last and bfloat16 channels-last: the hourglass 3x3 convolution, the fusion's
   grouped 3x3, the projection units' 12x12 stride-8 convolution and transposed convolution at
   32x32 <-> 256x256, and the 1x1 projection at 256x256 (as dicsr computes it: a matrix product on a
   strided channel prefix; and as a convolution on a contiguous copy).
3. **Per-stage profile of dicsr's DIC** (the golden checkpoint, batch 1): wall time of each stage
   (projection units, attentive fusion, hourglass, reconstruction) from forward hooks, its FLOPs
   (``torch.utils.flop_counter``), the throughput it reaches and its fraction of the measured peak,
   and minor page faults per forward (memory the allocator maps afresh).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_networks import GOLDEN, machine_info

CL = torch.channels_last
MKLDNN = torch.ops.mkldnn


def interleaved(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each variant, ``rounds`` interleaved rounds after two warm-up calls each."""
    for run in variants.values():
        run()
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for index in range(rounds):
        names = list(variants)
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
    return times


def rate_row(label: str, flops: float, seconds: list[float]) -> dict[str, float | str]:
    return {
        "what": label,
        "gflop": flops / 1e9,
        "best_ms": min(seconds) * 1e3,
        "median_ms": statistics.median(seconds) * 1e3,
        "best_gflops": flops / min(seconds) / 1e9,
        "median_gflops": flops / statistics.median(seconds) / 1e9,
    }


# --- 1. peaks -----------------------------------------------------------------------------------


def peaks(rounds: int) -> tuple[list[dict], float]:
    n = 2048
    a32, b32 = torch.randn(n, n), torch.randn(n, n)
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    big = torch.empty(64 * 2**20 // 4)  # 64 MB, far beyond the caches
    big_out = torch.empty_like(big)
    big.normal_()
    variants = {
        "GEMM 2048^3 fp32 (torch.mm: MKL)": lambda: torch.mm(a32, b32),
        "GEMM 2048^3 fp32 (oneDNN matmul)": lambda: MKLDNN._linear_pointwise(a32, b32, None, "none", [], ""),
        "GEMM 2048^3 bf16 (torch.mm: oneDNN)": lambda: torch.mm(a16, b16),
        "copy 64 MB": lambda: big_out.copy_(big),
    }
    with torch.inference_mode():
        times = interleaved(variants, rounds)
    rows = [rate_row(name, 2 * n**3, times[name]) for name in variants if name.startswith("GEMM")]
    copy_s = times["copy 64 MB"]
    bandwidth = 2 * big.numel() * 4 / min(copy_s) / 1e9  # read + write
    return rows, bandwidth


# --- 2. DIC's shapes ----------------------------------------------------------------------------


def dic_shapes(rounds: int) -> list[dict]:
    rows = []
    generator = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * 0.05

    cases = []
    # (label, flops, builder(dtype, layout) -> callable)
    x_hg, w_hg, b_hg = rand(1, 256, 32, 32), rand(256, 256, 3, 3), rand(256)
    cases.append(
        ("hourglass 3x3 256->256 @32x32", 2 * 32 * 32 * 256 * 256 * 9, (x_hg, w_hg, b_hg, {"padding": 1}))
    )
    x_fu, w_fu, b_fu = rand(1, 240, 32, 32), rand(240, 48, 3, 3), rand(240)
    cases.append(
        (
            "fusion 3x3 240->240 groups 5 @32x32",
            2 * 32 * 32 * 240 * 48 * 9,
            (x_fu, w_fu, b_fu, {"padding": 1, "groups": 5}),
        )
    )
    x_dn, w_pr, b_pr = rand(1, 48, 256, 256), rand(48, 48, 12, 12), rand(48)
    projection_flops = 2 * 32 * 32 * 48 * 48 * 144
    cases.append(
        (
            "projection conv 12x12/8 48->48 256->32",
            projection_flops,
            (x_dn, w_pr, b_pr, {"stride": 8, "padding": 2}),
        )
    )
    x_up = rand(1, 48, 32, 32)

    for label, flops, (x, w, b, kwargs) in cases:
        variants = {}
        for tag, dtype, layout in (
            ("fp32 NCHW", torch.float32, torch.contiguous_format),
            ("fp32 CL", torch.float32, CL),
            ("bf16 CL", torch.bfloat16, CL),
        ):
            xx = x.to(dtype).contiguous(memory_format=layout)
            ww, bb = w.to(dtype).contiguous(memory_format=layout), b.to(dtype)
            variants[tag] = lambda xx=xx, ww=ww, bb=bb, kw=kwargs: F.conv2d(xx, ww, bb, **kw)
        with torch.inference_mode():
            times = interleaved(variants, rounds)
        rows += [rate_row(f"{label}, {tag}", flops, times[tag]) for tag in variants]

    variants = {}
    for tag, dtype, layout in (
        ("fp32 NCHW", torch.float32, torch.contiguous_format),
        ("fp32 CL", torch.float32, CL),
        ("bf16 CL", torch.bfloat16, CL),
    ):
        xx = x_up.to(dtype).contiguous(memory_format=layout)
        ww, bb = w_pr.to(dtype).contiguous(memory_format=layout), b_pr.to(dtype)
        variants[tag] = lambda xx=xx, ww=ww, bb=bb: F.conv_transpose2d(xx, ww, bb, stride=8, padding=2)
    with torch.inference_mode():
        times = interleaved(variants, rounds)
    rows += [
        rate_row(f"projection deconv 12x12/8 48->48 32->256, {tag}", projection_flops, times[tag])
        for tag in variants
    ]

    # The widest 1x1 projection at 256x256: 288 channels (cat(H0..H5)) -> 48.
    channels = 288
    stack = rand(1, channels + 48, 256, 256).contiguous(memory_format=CL)
    # (a prefix of a wider stack, as in dicsr)
    w1, b1 = rand(48, channels), rand(48)
    flops = 2 * 256 * 256 * channels * 48
    variants = {}
    for tag, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        st, ww, bb = stack.to(dtype), w1.to(dtype), b1.to(dtype)
        prefix = st[:, :channels]
        pixels = torch.as_strided(st, (256 * 256, channels), (channels + 48, 1))
        contiguous = prefix.contiguous(memory_format=CL)
        w4 = ww.view(48, channels, 1, 1).contiguous(memory_format=CL)
        variants[f"{tag} addmm on the strided prefix (dicsr)"] = lambda pixels=pixels, ww=ww, bb=bb: (
            torch.addmm(bb, pixels, ww.t())
        )
        variants[f"{tag} 1x1 conv on a contiguous CL copy (copy not timed)"] = (
            lambda c=contiguous, w4=w4, bb=bb: F.conv2d(c, w4, bb)
        )
    with torch.inference_mode():
        times = interleaved(variants, rounds)
    rows += [rate_row(f"1x1 288->48 @256x256, {tag}", flops, times[tag]) for tag in variants]
    return rows


# --- 3. per-stage profile -----------------------------------------------------------------------

STAGES = {
    "projection units (256x256)": ("first_block", "block"),
    "attentive fusion": ("block.fusion_block",),
    "hourglass": ("HG",),
    "reconstruction (G2)": ("out", "conv_out"),
}


def stage_profile(rounds: int, paths: list[str]) -> list[dict]:
    from torch.utils.flop_counter import FlopCounterMode

    from dicsr.weights import convert_official_checkpoint

    base = convert_official_checkpoint(GOLDEN / "DIC_CelebA_ckp.pth").adapter.network.eval()
    lr = torch.from_numpy(np.load(GOLDEN / "DIC_CelebA.npz")["lr"]).float()[:1]
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        base(lr, all_steps=False)
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}

    def module_flops(path: str) -> float:
        return float(counts.get(f"DIC.{path}", 0))

    stage_flops = {stage: sum(module_flops(p) for p in paths_) for stage, paths_ in STAGES.items()}
    stage_flops["projection units (256x256)"] -= stage_flops["attentive fusion"]
    total_flops = float(counts.get("Global", sum(stage_flops.values())))

    rows = []
    import copy

    for path in paths:
        dtype = torch.bfloat16 if path.startswith("bf16") else torch.float32
        layout = CL if path.endswith("-cl") else torch.contiguous_format
        network = copy.deepcopy(base).to(dtype=dtype, memory_format=layout)
        x = lr.to(dtype).contiguous(memory_format=layout)
        spent: dict[str, float] = {}
        started: dict[str, float] = {}

        def pre(name: str, started: dict[str, float] = started) -> Callable:
            def hook(*_: object) -> None:
                started[name] = time.perf_counter()

            return hook

        def post(name: str, started: dict[str, float] = started, spent: dict[str, float] = spent) -> Callable:
            def hook(*_: object) -> None:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - started[name]

            return hook

        handles = []
        for module_path in {p for paths_ in STAGES.values() for p in paths_}:
            module = network.get_submodule(module_path)
            handles.append(module.register_forward_pre_hook(pre(module_path)))
            handles.append(module.register_forward_hook(post(module_path)))
        per_round: list[dict[str, float]] = []
        faults: list[int] = []
        with torch.inference_mode():
            network(x, all_steps=False)
            for _ in range(rounds):
                spent.clear()
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = time.perf_counter()
                network(x, all_steps=False)
                total = time.perf_counter() - start
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
                times = {stage: sum(spent.get(p, 0.0) for p in paths_) for stage, paths_ in STAGES.items()}
                times["projection units (256x256)"] -= times["attentive fusion"]
                times["total"] = total
                per_round.append(times)
        for handle in handles:
            handle.remove()
        # The round with the smallest total: the least disturbed by other processes.
        best = min(per_round, key=lambda t: t["total"])
        for stage in [*STAGES, "total"]:
            flops = total_flops if stage == "total" else stage_flops[stage]
            rows.append(
                {
                    "path": path,
                    "stage": stage,
                    "gflop": flops / 1e9,
                    "ms": best[stage] * 1e3,
                    "median_ms": statistics.median(t[stage] for t in per_round) * 1e3,
                    "gflops": flops / best[stage] / 1e9 if best[stage] else float("nan"),
                    "share": best[stage] / best["total"],
                    "minor_faults": statistics.median(faults),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--profile-rounds", type=int, default=5)
    parser.add_argument("--paths", default="fp32,fp32-cl,bf16-cl")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = machine_info(args.threads)
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        flags = []
    info["bf16_isa"] = ",".join(f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags) or "none"

    peak_rows, bandwidth = peaks(args.rounds)
    shape_rows = dic_shapes(args.rounds)
    profile_rows = stage_profile(args.profile_rounds, args.paths.split(","))
    info["load_average_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())

    fp32_peak = max(r["best_gflops"] for r in peak_rows + shape_rows if "fp32" in r["what"])
    bf16_peak = max(r["best_gflops"] for r in peak_rows + shape_rows if "bf16" in r["what"])
    print("# Roofline: peak throughput and DIC's stages on this CPU\n")
    print(" · ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"\ncommand: python {' '.join(sys.argv)}\n")
    print("## Peaks (best of the interleaved rounds; median in brackets)\n")
    print("| what | GFLOP | best ms | GFLOP/s best (median) |\n|---|---|---|---|")
    for r in peak_rows + shape_rows:
        rates = f"{r['best_gflops']:.0f} ({r['median_gflops']:.0f})"
        print(f"| {r['what']} | {r['gflop']:.2f} | {r['best_ms']:.2f} | {rates} |")
    print(f"\nmemory bandwidth (64 MB copy, read + write): {bandwidth:.1f} GB/s")
    print(f"measured peak: fp32 {fp32_peak:.0f} GFLOP/s, bf16 {bf16_peak:.0f} GFLOP/s (best row above)\n")
    print("## dicsr DIC per stage (batch 1, fastest of the rounds; median total in brackets)\n")
    print("| path | stage | GFLOP | ms | share | GFLOP/s | % of peak | minor faults / forward |")
    print("|---|---|---|---|---|---|---|---|")
    for r in profile_rows:
        peak = bf16_peak if r["path"].startswith("bf16") else fp32_peak
        ms = f"{r['ms']:.0f}" + (f" ({r['median_ms']:.0f})" if r["stage"] == "total" else "")
        print(
            f"| {r['path']} | {r['stage']} | {r['gflop']:.1f} | {ms} | {100 * r['share']:.0f}% | "
            f"{r['gflops']:.0f} | {100 * r['gflops'] / peak:.0f}% | {r['minor_faults']:.0f} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": info,
            "command": sys.argv,
            "peaks": peak_rows,
            "dic_shapes": shape_rows,
            "bandwidth_gbs": bandwidth,
            "fp32_peak": fp32_peak,
            "bf16_peak": bf16_peak,
            "profile": profile_rows,
        }
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
