"""Per-face CPU latency, throughput, accuracy and peak memory of dicsr's networks (issue 5).

Reproduce (full run, ~1 h on a 2-core VM)::

    python benchmarks/bench_networks.py --json benchmarks/results/networks.json

Development run (batch 1 and 4, 2 repeats, no memory subprocesses)::

    python benchmarks/bench_networks.py --quick --no-memory

For every network (DIC, SPARNet, SPARNet-Light, optionally SPARNetHD) and batch size, every
execution path is prepared once and then timed **interleaved**: each round runs every path once, in
an order rotated per round, so load from other processes on a shared machine hits all paths alike.
Reported per path: median wall time per face with min-max range, median process CPU time (user +
system, all threads) per face, faces/s, ratios against the eager reference (DIC) and against dicsr
fp32, the max abs error of the final image against dicsr fp32 in [0, 1] image units, and the peak
RSS of one steady-state forward, measured in a fresh subprocess per configuration.

Paths:

* ``eager-reference``: :mod:`eager_reference_dic` / :mod:`eager_reference_sparnet`, the official
  structure, fp32, ``torch.no_grad``; the baseline of the issues' targets. Its outputs are checked
  against dicsr's network in every run (DIC: all four steps, SR and heatmaps; <= 1e-5).
* ``fp32``: dicsr's network, ``torch.inference_mode``, final step only.
* ``fp32-cl``: the same in channels-last memory format.
* ``bf16`` / ``bf16-cl``: bfloat16 weights and activations (contiguous / channels-last).
* ``bf16-autocast``: fp32 weights under ``torch.autocast("cpu", torch.bfloat16)``.
* ``compile``: ``torch.compile`` (inductor, fp32) with weight freezing, as ``dicsr.engines``
  compiles (``freezing=True``: weights pre-packed for oneDNN, convolutions fused with their
  activations); compile time reported separately.
* ``onnxruntime``: the network exported as :func:`dicsr.engines.export_onnx` does it (TorchScript
  exporter, opset 17, dynamic batch; DIC traces its official concatenating formulation and unrolls
  its recurrent loop), run with onnxruntime's CPU provider and the benchmark's thread count.

Network inputs are the golden fixtures' inputs (DIC: 16x16 mean-subtracted; SPARNet: 128x128 in
[-1, 1]) tiled to the batch size; DIC and SPARNet use the golden checkpoints, SPARNet-Light and
SPARNetHD seeded random weights (the cost does not depend on the values). Timings cover the network
only; pre/post-processing and the rest of the photo pipeline are in ``bench_pipeline.py``.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eager_reference_dic import load_reference
from eager_reference_sparnet import load_reference as load_sparnet_reference

logger = logging.getLogger("bench_networks")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DICSR_SHARED_DIR", REPO.parent / "shared"))
GOLDEN = SHARED / "golden"
CELEBA_MEAN = (0.509, 0.424, 0.378)

ALL_PATHS = (
    "eager-reference",
    "fp32",
    "fp32-cl",
    "bf16",
    "bf16-cl",
    "bf16-autocast",
    "compile",
    "onnxruntime",
)
ALL_NETWORKS = ("dic", "sparnet", "sparnet-light", "sparnet-hd")

Runner = Callable[[torch.Tensor], torch.Tensor]


# --- networks ------------------------------------------------------------------------------------


@dataclass
class Network:
    name: str
    module: torch.nn.Module
    base_input: torch.Tensor  # N x 3 x H x W network-space input, tiled to the batch
    image_scale: float  # network-space difference -> [0, 1] image difference
    is_dic: bool

    def batch(self, size: int) -> torch.Tensor:
        reps = -(-size // self.base_input.shape[0])
        return self.base_input.repeat(reps, 1, 1, 1)[:size].contiguous()


def build_network(name: str) -> Network:
    from dicsr.families.sparnet import SPARNet
    from dicsr.families.sparnet._network import SPARNET_PRESETS
    from dicsr.weights import convert_official_checkpoint

    if name == "dic":
        adapter = convert_official_checkpoint(GOLDEN / "DIC_CelebA_ckp.pth").adapter
        lr = torch.from_numpy(np.load(GOLDEN / "DIC_CelebA.npz")["lr"]).float()
        return Network(name, adapter.network.eval(), lr, 1.0, True)
    sparnet_input = torch.from_numpy(np.load(GOLDEN / "SPARNet.npz")["input"]).float()
    if name == "sparnet":
        adapter = convert_official_checkpoint(GOLDEN / "SPARNet.pth").adapter
        return Network(name, adapter.network.eval(), sparnet_input, 0.5, False)
    torch.manual_seed(0)
    if name == "sparnet-light":
        return Network(name, SPARNet(SPARNET_PRESETS["sparnet-light"]).eval(), sparnet_input, 0.5, False)
    if name == "sparnet-hd":
        hd_input = torch.nn.functional.interpolate(sparnet_input, size=512, mode="bicubic").clamp(-1, 1)
        return Network(name, SPARNet(SPARNET_PRESETS["sparnethd-2d"]).eval(), hd_input, 0.5, False)
    raise SystemExit(f"unknown network {name!r}; known: {', '.join(ALL_NETWORKS)}")


def load_eager_reference(net: Network) -> torch.nn.Module:
    """The official-structure eager module of ``net`` with the same weights."""
    if net.is_dic:
        return load_reference(net.module.state_dict())
    config = net.module.config
    return load_sparnet_reference(
        net.module.state_dict(),
        min_ch=config.min_channels,
        max_ch=config.max_channels,
        in_size=config.in_size,
        out_size=config.out_size,
        min_feat_size=config.min_feat_size,
        res_depth=config.res_depth,
        norm_type=config.norm,
        att_name="spar" if config.attention == "2d" else "spar3d",
        bottleneck_size=config.bottleneck_size,
    )


def final_output(net: Network, module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    if net.is_dic:
        return module(x, all_steps=False).sr[-1]
    return module(x)


class _FinalImage(torch.nn.Module):
    """Export wrapper: the final image only."""

    def __init__(self, module: torch.nn.Module, is_dic: bool, reference: bool) -> None:
        super().__init__()
        self.module, self.is_dic, self.reference = module, is_dic, reference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reference:
            return self.module(x)[0][-1]
        if self.is_dic:
            return self.module(x, all_steps=False).sr[-1]
        return self.module(x)


# --- execution paths -----------------------------------------------------------------------------


@dataclass
class Prepared:
    run: Runner
    setup_s: float  # preparation time (export, session creation); compile time is in first_call_s
    note: str = ""
    first_call_s: float = float("nan")


def onnx_cache_dir() -> Path:
    path = Path(os.environ.get("DICSR_BENCH_CACHE", Path(tempfile.gettempdir()) / "dicsr-bench-onnx"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def export_onnx(net: Network, threads: int) -> Prepared:
    import onnxruntime as ort

    start = time.perf_counter()
    # dicsr's own network, as dicsr.engines exports it (DIC traces its concatenating formulation).
    module: torch.nn.Module = _FinalImage(copy.deepcopy(net.module), net.is_dic, False)
    dynamic = True
    # eval(): the TorchScript exporter restores the exported module's training flag recursively
    # after the export, so a wrapper left in training mode would switch the wrapped network's
    # BatchNorm to batch statistics for every later PyTorch path of this process (this made
    # SPARNet's torch paths, not ONNX Runtime, wrong at batch 16; benchmarks/repro_onnx_train_mode.py).
    module.eval()
    path = onnx_cache_dir() / f"{net.name}-dynamic-opset17.onnx"
    if not path.exists():
        example = net.batch(1)
        tmp = path.with_suffix(".tmp")
        with torch.no_grad():
            torch.onnx.export(
                module,
                (example,),
                str(tmp),
                dynamo=False,
                opset_version=17,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}} if dynamic else None,
            )
        tmp.replace(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    setup = time.perf_counter() - start

    def run(x: torch.Tensor) -> torch.Tensor:
        if dynamic:
            return torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
        return torch.cat([torch.from_numpy(session.run(None, {"x": xi.numpy()})[0]) for xi in x.split(1)])

    return Prepared(run, setup, f"onnx {path.stat().st_size / 1e6:.0f} MB")


def prepare(net: Network, path: str, threads: int) -> Prepared | None:
    start = time.perf_counter()
    module = net.module
    if path == "eager-reference":
        reference = load_eager_reference(net)

        def run_reference(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                out = reference(x)
                return out[0][-1] if net.is_dic else out

        return Prepared(run_reference, time.perf_counter() - start)
    if path in ("fp32", "fp32-cl", "bf16", "bf16-cl"):
        dtype = torch.bfloat16 if path.startswith("bf16") else torch.float32
        layout = torch.channels_last if path.endswith("-cl") else torch.contiguous_format
        copy_ = module if path == "fp32" else copy.deepcopy(module).to(dtype=dtype, memory_format=layout)

        def run_eager(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                y = final_output(net, copy_, x.to(dtype).contiguous(memory_format=layout))
                return y.float()

        return Prepared(run_eager, time.perf_counter() - start)
    if path == "bf16-autocast":

        def run_autocast(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                return final_output(net, module, x).float()

        return Prepared(run_autocast, 0.0)
    if path == "compile":
        compiled = torch.compile(module, dynamic=False, options={"freezing": True})

        def run_compiled(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return final_output(net, compiled, x).float()

        return Prepared(run_compiled, 0.0, "inductor, freezing, fp32")
    if path == "onnxruntime":
        return export_onnx(net, threads)
    raise SystemExit(f"unknown path {path!r}; known: {', '.join(ALL_PATHS)}")


# --- measurement ---------------------------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(run: Runner, x: torch.Tensor) -> tuple[float, float, float, torch.Tensor]:
    """(wall s, user+system CPU s, system CPU s, output) of one call."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    out = run(x)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    system = after.ru_stime - before.ru_stime
    return wall, after.ru_utime - before.ru_utime + system, system, out


@dataclass
class PathResult:
    network: str
    batch: int
    path: str
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    sys_s: list[float] = field(default_factory=list)
    first_call_s: float = float("nan")
    setup_s: float = 0.0
    max_abs_err: float = float("nan")  # final image vs dicsr fp32, [0, 1] units
    note: str = ""
    peak_rss_mb: float | None = None
    forward_rss_growth_mb: float | None = None
    lifetime_maxrss_mb: float | None = None

    def per_face(self, values: list[float]) -> float:
        return statistics.median(values) / self.batch


def check_reference_parity(net: Network) -> float:
    """Max abs difference of the eager reference and dicsr's network (DIC: every step's SR and heatmaps)."""
    reference = load_eager_reference(net)
    x = net.batch(2)
    if not net.is_dic:
        with torch.no_grad():
            expected = reference(x)
        with torch.inference_mode():
            return (net.module(x) - expected).abs().max().item()
    with torch.no_grad():
        ref_sr, ref_heat = reference(x)
    with torch.inference_mode():
        out = net.module(x, all_steps=True)
    diffs = [(a - b).abs().max().item() for a, b in zip(ref_sr, out.sr, strict=True)]
    diffs += [(a - b).abs().max().item() for a, b in zip(ref_heat, out.heatmaps, strict=True)]
    return max(diffs)


def bench_network(
    net: Network, batch: int, paths: list[str], *, warmup: int, repeats: int, threads: int
) -> list[PathResult]:
    x = net.batch(batch)
    with torch.inference_mode():
        expected = final_output(net, net.module, x).float()
    prepared: dict[str, Prepared] = {}
    results: dict[str, PathResult] = {}
    for path in paths:
        try:
            p = prepare(net, path, threads)
        except Exception as exc:  # a fast path that does not work here is reported, not fatal
            logger.warning("%s batch %d: %s failed to prepare: %s", net.name, batch, path, exc)
            results[path] = PathResult(net.name, batch, path, note=f"failed: {type(exc).__name__}: {exc}")
            continue
        if p is None:
            continue
        result = PathResult(net.name, batch, path, setup_s=p.setup_s, note=p.note)
        try:
            wall, _, _, out = timed(p.run, x)
        except Exception as exc:
            logger.warning("%s batch %d: %s failed: %s", net.name, batch, path, exc)
            result.note = f"failed: {type(exc).__name__}: {exc}"
            results[path] = result
            continue
        result.first_call_s = wall
        result.max_abs_err = (out - expected).abs().max().item() * net.image_scale
        for _ in range(warmup - 1):
            p.run(x)
        prepared[path] = p
        results[path] = result
        logger.info("%s b%d %-16s prepared (first call %.1f s)", net.name, batch, path, wall)
    order = list(prepared)
    for round_index in range(repeats):
        shift = round_index % len(order)
        for path in order[shift:] + order[:shift]:
            wall, cpu, system, _ = timed(prepared[path].run, x)
            r = results[path]
            r.wall_s.append(wall)
            r.cpu_s.append(cpu)
            r.sys_s.append(system)
        logger.info("%s b%d round %d/%d done", net.name, batch, round_index + 1, repeats)
    return [results[p] for p in paths if p in results]


# --- memory subprocess ---------------------------------------------------------------------------


def _status_kb(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def memory_worker(network: str, path: str, batch: int, threads: int) -> None:
    """Run in a fresh process: one warm-up, reset the RSS high-water mark, one measured forward."""
    torch.set_num_threads(threads)
    net = build_network(network)
    p = prepare(net, path, threads)
    if p is None:
        print(json.dumps(None))
        return
    x = net.batch(batch)
    p.run(x)  # warm-up (and compilation)
    lifetime = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reset = False
    try:
        # "5" resets the peak-RSS counter (VmHWM) of this process (Linux >= 4.0, proc(5)).
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        pass
    before = _status_kb("VmRSS")
    p.run(x)
    peak = _status_kb("VmHWM") if reset else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "peak_rss_mb": peak / 1024,
                "forward_rss_growth_mb": (peak - before) / 1024 if before is not None else None,
                "lifetime_maxrss_mb": lifetime,
                "hwm_reset": reset,
            }
        )
    )


def measure_memory(result: PathResult, threads: int, timeout: float) -> None:
    cmd = [
        sys.executable,
        __file__,
        "--memory-worker",
        result.network,
        result.path,
        str(result.batch),
        "--threads",
        str(threads),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except (subprocess.SubprocessError, OSError) as exc:
        logger.warning("memory of %s/%s/b%d failed: %s", result.network, result.path, result.batch, exc)
        return
    data = json.loads(done.stdout.strip().splitlines()[-1])
    if data:
        result.peak_rss_mb = data["peak_rss_mb"]
        result.forward_rss_growth_mb = data["forward_rss_growth_mb"]
        result.lifetime_maxrss_mb = data["lifetime_maxrss_mb"]


# --- report --------------------------------------------------------------------------------------


def machine_info(threads: int) -> dict[str, str]:
    model = platform.processor()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpu": model,
        "logical_cpus": str(os.cpu_count()),
        "threads": str(threads),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None or value != value else format(value, spec)


def markdown(results: list[PathResult]) -> str:
    lines = [
        "| network | batch | path | wall ms/face (median) | range ms/face | CPU s/face | sys % | faces/s "
        "| × vs eager ref (wall) | × vs eager ref (CPU) | × vs fp32 (wall) | max abs err | "
        "peak RSS MB | forward growth MB | notes |",
        "|" + "---|" * 15,
    ]
    baselines: dict[tuple[str, int, str], PathResult] = {(r.network, r.batch, r.path): r for r in results}
    for r in results:
        if not r.wall_s:
            lines.append(f"| {r.network} | {r.batch} | {r.path} |" + " – |" * 11 + f" {r.note} |")
            continue
        wall, cpu = r.per_face(r.wall_s), r.per_face(r.cpu_s)
        ref = baselines.get((r.network, r.batch, "eager-reference"))
        fp32 = baselines.get((r.network, r.batch, "fp32"))

        def ratio(base: PathResult | None, values: str, mine: float) -> str:
            if base is None or not base.wall_s:
                return "–"
            return f"{base.per_face(getattr(base, values)) / mine:.2f}"

        notes = [r.note] if r.note else []
        if r.path == "compile":
            notes.append(f"compile {r.first_call_s:.0f} s")
        if r.path == "onnxruntime":
            notes.append(f"export+session {r.setup_s:.0f} s")
        lines.append(
            f"| {r.network} | {r.batch} | {r.path} | {wall * 1e3:.0f} | "
            f"{min(r.wall_s) / r.batch * 1e3:.0f}–{max(r.wall_s) / r.batch * 1e3:.0f} | {cpu:.2f} | "
            f"{100 * sum(r.sys_s) / max(sum(r.cpu_s), 1e-9):.0f} | {1 / wall:.2f} | "
            f"{ratio(ref, 'wall_s', wall)} | {ratio(ref, 'cpu_s', cpu)} | {ratio(fp32, 'wall_s', wall)} | "
            f"{fmt(r.max_abs_err, '.1e')} | {fmt(r.peak_rss_mb, '.0f')} | "
            f"{fmt(r.forward_rss_growth_mb, '.0f')} | {'; '.join(notes)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", default="dic,sparnet,sparnet-light", help="comma list or 'all'")
    parser.add_argument("--paths", default=",".join(ALL_PATHS), help="comma list of execution paths")
    parser.add_argument("--batches", default=None, help="comma list (default 1,16; --quick 1,4)")
    parser.add_argument("--hd-batches", default="1", help="batches for sparnet-hd (~0.7 TMAC per face)")
    parser.add_argument("--hd-paths", default="fp32,fp32-cl,bf16-cl")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5; --quick 2)")
    parser.add_argument("--large-batch-repeats", type=int, default=3, help="timed rounds for batch >= 8")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per path (>= 1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="batch 1 and 4, 2 rounds")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    parser.add_argument("--memory-batches", default=None, help="batches measured for memory (default all)")
    parser.add_argument("--memory-timeout", type=float, default=1800.0)
    parser.add_argument("--json", type=Path, default=None, help="also write all raw numbers here")
    parser.add_argument(
        "--memory-worker", nargs=3, metavar=("NETWORK", "PATH", "BATCH"), help=argparse.SUPPRESS
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()

    if args.memory_worker:
        network, path, batch = args.memory_worker
        memory_worker(network, path, int(batch), args.threads)
        return

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(message)s",
        stream=sys.stderr,
    )
    logger.setLevel(logging.INFO)
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in (args.batches or ("1,4" if args.quick else "1,16")).split(",")]
    repeats = args.repeats or (2 if args.quick else 5)
    networks = list(ALL_NETWORKS) if args.networks == "all" else args.networks.split(",")
    paths = args.paths.split(",")

    info = machine_info(args.threads)
    print("# dicsr network benchmark\n")
    print(" · ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"\ncommand: python {' '.join(sys.argv)}\n")

    results: list[PathResult] = []
    parity = None
    for name in networks:
        net = build_network(name)
        if "eager-reference" in paths and (name != "sparnet-hd" or "eager-reference" in args.hd_paths):
            parity = check_reference_parity(net)
            what = "all 4 steps, SR and heatmaps" if net.is_dic else "output"
            print(
                f"eager reference vs dicsr {name}, {what}: max abs diff {parity:.2e} "
                f"({'OK' if parity <= 1e-5 else 'MISMATCH'}, tolerance 1e-5)\n"
            )
        if name == "sparnet-hd":
            net_batches = [int(b) for b in args.hd_batches.split(",")]
            net_paths = [p for p in args.hd_paths.split(",") if p in paths]
        else:
            net_batches, net_paths = batches, paths
        for batch in net_batches:
            rounds = args.large_batch_repeats if batch >= 8 else repeats
            results += bench_network(
                net, batch, net_paths, warmup=max(1, args.warmup), repeats=rounds, threads=args.threads
            )
        del net
    if not args.no_memory:
        memory_batches = {int(b) for b in args.memory_batches.split(",")} if args.memory_batches else None
        for r in results:
            if r.wall_s and (memory_batches is None or r.batch in memory_batches):
                measure_memory(r, args.threads, args.memory_timeout)
                logger.info("memory %s b%d %s: %s MB", r.network, r.batch, r.path, fmt(r.peak_rss_mb, ".0f"))
    print(markdown(results))
    print(
        "\nwall/CPU: medians per face over interleaved rounds; CPU = user + system time of the whole "
        "process; sys % = system share of CPU time; max abs err: final image vs dicsr fp32 in [0, 1] "
        "units (1/255 = 3.9e-3); peak RSS: a steady-state forward in a fresh process (includes weights "
        "and the Python runtime); forward growth: peak minus RSS just before that forward."
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": info,
            "command": sys.argv,
            "reference_parity_max_abs": parity,
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
