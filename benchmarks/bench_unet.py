"""U-Net space throughput: kernel alone, end to end into Parquet, and the graph path it replaces.

    python benchmarks/bench_unet.py [--threads T] [--rounds R]

Space (`SPEC` below, 3,538,944 networks at 256 x 256): levels 1-6, convs 1-4, kernel 3,5,7, valid and
same, all three upsamplings, width_multiplier 1,2, base_width 1-4096. Rates count enumerated networks
per second (invalid ids included, as the sweep reports them) and, separately, rows written.
The kernel is compiled (and warmed) before any timing; each figure is the best of `--rounds`.

The baseline is the graph path the tests use as the oracle, per id: `UNetSpec.network` (the graph),
`rfsweep.analyze` (rf, params, MACs), `tile_plan` (halo, multiple, reads) and `tile.peak_bytes`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import rfsweep
from rfsweep.distributed import run_local_parts
from rfsweep.engines import CHUNK_IDS, write_range
from rfsweep.errors import RfsweepError
from rfsweep.graph import load_graph
from rfsweep.tile import peak_bytes
from rfsweep.unet_space import UNetSpec

SPEC = {"input_size": 256, "in_channels": 1, "out_channels": 2, "tile": 128,
        "unet": {"levels": "1-6", "convs": "1-4", "kernel": [3, 5, 7], "padding": ["same", "valid"],
                 "upsampling": ["transposed", "nearest", "bilinear"], "width_multiplier": [1, 2],
                 "base_width": "1-4096"}}


CPU = {}  # measurement -> process CPU seconds (all threads) of its fastest round


def best(rounds, func, name=None):
    """(wall seconds, result) of the fastest of `rounds` calls; its CPU seconds go to CPU[name]."""
    times = []
    result = None
    for _ in range(rounds):
        start, cpu = time.perf_counter(), time.process_time()
        result = func()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    wall, cpu = min(times)
    CPU[name] = cpu
    return wall, result


def kernel_alone(spec, threads):
    evaluator = spec.evaluator(threads)
    buffers = evaluator.new_buffers(CHUNK_IDS)
    written = 0
    for lo in range(0, spec.total, CHUNK_IDS):
        table, counts = evaluator.evaluate(0, 0, lo, min(spec.total, lo + CHUNK_IDS), buffers)
        written += counts.written
    return written


def graph_path(spec, ids):
    for config_id in ids:
        try:
            graph = spec.network(config_id)
            rfsweep.analyze(graph)
            plan = rfsweep.tile_plan(graph, tile=spec.tile)
        except RfsweepError:
            continue
        read = max(t["read"][0][1] - t["read"][0][0] for t in plan["tiles"])
        peak_bytes(load_graph(graph), graph["output"], (read, read), 4)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-ids", type=int, default=60)
    args = parser.parse_args()
    spec = UNetSpec.build(SPEC)
    total = spec.total
    print(f"{spec.summary()}; load average {os.getloadavg()[0]:.2f}")
    spec.evaluator(args.threads).warm_up()
    kernel_alone(spec, args.threads)  # load the parallel kernel and touch the buffers once
    rows = []
    seconds, written = best(args.rounds, lambda: kernel_alone(spec, args.threads), "kernel alone")
    rows.append(("kernel alone", total, seconds, written))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "unet.parquet"
        seconds, counts = best(args.rounds, lambda: write_range(spec, out, threads=args.threads),
                               "end to end, one Parquet file")
        rows.append(("end to end, one Parquet file", total, seconds, counts.written))
        size = out.stat().st_size
        fresh = iter(range(args.rounds))  # a new directory each round: a complete one would be reused
        seconds, counts = best(args.rounds, lambda: run_local_parts(spec, Path(tmp) / f"parts{next(fresh)}", 4,
                                                                    workers=args.threads),
                               "end to end, directory of 4 parts")
        rows.append(("end to end, directory of 4 parts", total, seconds, counts.written))
    rng = np.random.default_rng(0)
    ids = sorted(int(i) for i in rng.choice(total, args.baseline_ids, replace=False))
    name = "graph path (analyze + tile_plan + peak_bytes)"
    seconds, _ = best(1, lambda: graph_path(spec, ids), name)  # seconds per network: one round is plenty
    rows.append((name, len(ids), seconds, None))
    base_rate = len(ids) / seconds
    print("| measurement | networks | seconds | networks/s | rows written/s | CPU s | networks per CPU s "
          "| vs graph path |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, count, seconds, kept in rows:
        rate = count / seconds
        kept_rate = f"{kept / seconds / 1e6:.1f}M" if kept is not None else ""
        cpu = CPU[name]
        print(f"| {name} | {count:,} | {seconds:.3f} | {rate / 1e6:.2f}M | {kept_rate} | {cpu:.3f} "
              f"| {count / cpu / 1e6:.2f}M | {rate / base_rate:,.0f}x |")
    print(f"file size: {size / 1e6:.1f} MB for {rows[1][3]:,} rows ({size / max(rows[1][3], 1):.2f} B/row); "
          f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
