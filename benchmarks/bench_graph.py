"""Compute time of `rfsweep.analyze` on graphs: the catalog networks and synthetic deep ones.

Issue 9's target: a 200-node graph explains in under 50 ms of compute. Loading
and analysing are timed together (what `explain` does after start-up), best of
`--repeat` runs in one process, plus one whole `rfsweep explain --format json`
process for the largest catalog network (start-up included).

    python benchmarks/bench_graph.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import rfsweep
from rfsweep.architectures import arch_path, list_archs


def residual_graph(blocks: int) -> dict:
    """A synthetic ResNet-like chain of `blocks` basic blocks: 7 nodes each (conv, bn, relu, conv, bn, add, relu)."""
    nodes, previous = [], "input"
    for b in range(blocks):
        stride = 2 if b and b % (blocks // 4 or 1) == 0 and b // (blocks // 4 or 1) < 4 else 1
        nodes += [{"name": f"b{b}.conv1", "type": "conv", "kernel": 3, "stride": stride, "out_channels": 64,
                   "bias": False, "inputs": [previous]},
                  {"name": f"b{b}.bn1", "type": "bn"}, {"name": f"b{b}.relu1", "type": "relu"},
                  {"name": f"b{b}.conv2", "type": "conv", "kernel": 3, "out_channels": 64, "bias": False},
                  {"name": f"b{b}.bn2", "type": "bn"}]
        shortcut = previous
        if stride > 1:
            nodes.append({"name": f"b{b}.down", "type": "conv", "kernel": 1, "stride": stride, "padding": 0,
                          "out_channels": 64, "bias": False, "inputs": [previous]})
            shortcut = f"b{b}.down"
        nodes += [{"name": f"b{b}.add", "type": "add", "inputs": [f"b{b}.bn2", shortcut]},
                  {"name": f"b{b}.relu2", "type": "relu"}]
        previous = f"b{b}.relu2"
    return {"input_size": 224, "in_channels": 64, "nodes": nodes}


def best_ms(source, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        rfsweep.analyze(source)
        times.append(time.perf_counter() - t0)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, rfsweep {rfsweep.__version__}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}")
    print("| network | nodes | load + analyze, best ms |")
    print("|---|---:|---:|")
    largest, largest_nodes = None, 0
    for name in list_archs():
        path = arch_path(name)
        nodes = len(json.loads(path.read_text()).get("nodes", []))
        if nodes > largest_nodes:
            largest, largest_nodes = name, nodes
        print(f"| {name} | {nodes} | {best_ms(str(path), args.repeat):.1f} |")
    for blocks in (29, 100):
        graph = residual_graph(blocks)
        print(f"| synthetic residual, {blocks} blocks | {len(graph['nodes'])} | {best_ms(graph, args.repeat):.1f} |")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rfsweep.cli", "explain", "--arch", largest, "--format", "json"],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"\nwhole process `rfsweep explain --arch {largest} --format json` ({largest_nodes} nodes): "
          f"{time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
