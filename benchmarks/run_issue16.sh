#!/usr/bin/env bash
# Re-run every number of docs/performance.md's issue 16 sections with one command (needs ../shared).
# About 1.5 h on a quiet 2-core machine; each script records the load average it ran under.
#   bash benchmarks/run_issue16.sh            # everything
#   QUICK=1 bash benchmarks/run_issue16.sh    # fewer rounds (~25 min), for a look on a busy machine
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
results=benchmarks/results/issue16
mkdir -p "$results"
if [[ -n "${QUICK:-}" ]]; then rounds=3; else rounds=7; fi

python benchmarks/bench_roofline.py --rounds "$((rounds + 2))" --json "$results/roofline.json" \
    > "$results/roofline.md"
# DIC against its eager reference, every path and engine, batch 1 and 16.
python benchmarks/bench_networks.py --networks dic --batches 1 --repeats "$rounds" --no-memory \
    --json "$results/networks_dic_b1.json" > "$results/networks_dic_b1.md"
python benchmarks/bench_networks.py --networks dic --batches 16 --repeats 3 --no-memory \
    --paths eager-reference,fp32,fp32-cl,bf16-cl --json "$results/networks_dic_b16.json" \
    > "$results/networks_dic_b16.md"
# SPARNet and SPARNet-Light against their eager reference, batch 1 and 16; SPARNetHD batch 1.
python benchmarks/bench_networks.py --networks sparnet,sparnet-light --batches 1,16 --repeats "$rounds" \
    --large-batch-repeats 3 --no-memory --json "$results/networks_sparnet.json" \
    > "$results/networks_sparnet.md"
python benchmarks/bench_networks.py --networks sparnet-hd --hd-paths eager-reference,fp32,fp32-cl,bf16-cl \
    --repeats 2 --no-memory --json "$results/networks_sparnethd.json" > "$results/networks_sparnethd.md"
python benchmarks/bench_startup.py --runs "$((rounds - 2))" --json "$results/startup.json" \
    > "$results/startup.md"
