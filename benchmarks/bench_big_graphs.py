"""`explain` and `draw` on big graphs: chains, deep residual nets and wide fan-in concats.

Issue 22 (item 3): both must stay near-linear in nodes. Each case runs as its
own whole process (`rfsweep explain FILE`, table to /dev/null; `rfsweep draw
FILE -o x.png`, the schematic), so the time includes start-up and the peak
memory is that process's maximum RSS (from wait4).

    python benchmarks/bench_big_graphs.py [--sizes 1000 10000 20000] [--gif]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def chain(n: int) -> dict:
    """n 3x3 convs in a row, as a graph (named like a module tree)."""
    return {"name": f"chain of {n:,}", "input_size": 64, "in_channels": 8, "nodes": [
        {"name": f"stage{i // 100}.block{i % 100}.conv", "type": "conv", "kernel": 3, "padding": 1,
         "out_channels": 8} for i in range(n)]}


def residual(n: int) -> dict:
    """n // 3 blocks of conv, conv, add (with the block's input): n // 3 * 3 nodes, as deep as it gets."""
    nodes, previous = [], "input"
    for b in range(n // 3):
        nodes += [{"name": f"layer{b}.conv1", "type": "conv", "kernel": 3, "padding": 1, "out_channels": 8,
                   "inputs": [previous]},
                  {"name": f"layer{b}.conv2", "type": "conv", "kernel": 3, "padding": 1, "out_channels": 8},
                  {"name": f"layer{b}.add", "type": "add", "inputs": [f"layer{b}.conv2", previous]}]
        previous = f"layer{b}.add"
    return {"name": f"residual of {n:,}", "input_size": 64, "in_channels": 8, "nodes": nodes}


def fan_in(n: int) -> dict:
    """n - 1 branches (1x1 to 7x7 convs) off the input, concatenated by one node."""
    nodes = [{"name": f"branch{i}", "type": "conv", "kernel": 1 + 2 * (i % 4), "padding": i % 4,
              "out_channels": 1, "inputs": ["input"]} for i in range(n - 1)]
    nodes.append({"name": "cat", "type": "concat", "inputs": [f"branch{i}" for i in range(n - 1)]})
    return {"name": f"fan-in of {n:,}", "input_size": 64, "in_channels": 8, "nodes": nodes}


def run(args: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one whole process; it must exit 0."""
    rfsweep = Path(sys.executable).with_name("rfsweep")
    command = [str(rfsweep) if rfsweep.exists() else shutil.which("rfsweep"), *args]
    t0 = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed: {process.stderr.read().decode()}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 20_000])
    parser.add_argument("--gif", action="store_true", help="also time a GIF of each drawing")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print("| graph | nodes | explain s | explain MB | draw s | draw MB |" + (" gif s | gif MB |" if args.gif else ""))
    print("|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if args.gif else ""))
    with tempfile.TemporaryDirectory() as tmp:
        for build in (chain, residual, fan_in):
            for n in args.sizes:
                graph = build(n)
                path = Path(tmp) / f"{build.__name__}-{n}.json"
                path.write_text(json.dumps(graph))
                figures = [*run(["explain", str(path)]), *run(["draw", str(path), "-o", f"{tmp}/x.png"])]
                if args.gif:
                    figures += run(["draw", str(path), "-o", f"{tmp}/x.gif"])
                cells = " | ".join(f"{value:.2f}" if i % 2 == 0 else f"{value:.0f}" for i, value in enumerate(figures))
                print(f"| {build.__name__} | {len(graph['nodes']):,} | {cells} |", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
