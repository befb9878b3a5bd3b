"""Chain-sweep speed by spatial rank (issue 19): stacks/s at rank 1, 2 and 3 on one grid, in one run.

The grid is bench_sweep.py's default (5,421,360 stacks) at each rank: the same
geometry, only the costs change (k^rank params, n^rank MACs), so the ratios
show what the rank argument costs the kernel. Rounds alternate the ranks so
that machine load hits them alike; each figure is the best over the rounds.
"Kernel alone, 1 thread" is CPU time (process_time): on a loaded machine it
moves far less than wall time, which is what the other rows report.

    python benchmarks/bench_rank.py                  # kernel alone (1 and 2 threads) and end to end
    python benchmarks/bench_rank.py --against DIR    # also: rank 2 here against another checkout
                                                     # (e.g. `git archive` of the commit before a change),
                                                     # alternating processes, best of --rounds

Copy the printed tables into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numba

import bench_sweep
from bench_sweep import GRID, kernel_only
from rfsweep.engines import write_range
from rfsweep.grid import GridSpec

RANKS = (1, 2, 3)
# one process of another checkout: its own bench_sweep.kernel_only on its own default grid (rank 2)
OTHER = """
import importlib.util, sys
root = sys.argv[1]
sys.path.insert(0, root)
spec = importlib.util.spec_from_file_location("bench_sweep", root + "/benchmarks/bench_sweep.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
import time
bench._timed = lambda fn: (lambda start: (fn(), time.process_time() - start)[1])(time.process_time())
import rfsweep
assert rfsweep.__file__.startswith(root), rfsweep.__file__
grid = bench.GridSpec.build(bench.GRID)
print(min(bench.kernel_only(grid, 1) for _ in range(2)))
"""


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_kernel_only(spec: GridSpec) -> float:
    """bench_sweep.kernel_only on one thread, timed in CPU seconds of this process."""
    wall = bench_sweep._timed
    bench_sweep._timed = lambda fn: (lambda start: (fn(), time.process_time() - start)[1])(time.process_time())
    try:
        return kernel_only(spec, 1)
    finally:
        bench_sweep._timed = wall


def by_rank(threads: int, rounds: int) -> None:
    specs = {rank: GridSpec.build({**GRID, "rank": rank}) for rank in RANKS}
    best = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sweep.parquet")
        for spec in specs.values():  # warm-up: JIT and the writer
            write_range(spec, path, 0, 10_000, threads=threads)
        for _ in range(rounds):
            for rank, spec in specs.items():
                for label, seconds in (
                        (f"kernel alone ({threads} threads)", kernel_only(spec, threads)),
                        ("kernel alone (1 thread, CPU time)", cpu_kernel_only(spec)),
                        (f"end to end, one zstd Parquet file ({threads} threads)",
                         _timed(lambda: write_range(spec, path, threads=threads)))):
                    best[label, rank] = min(best.get((label, rank), float("inf")), seconds)
    total = specs[2].total
    print(f"grid: {total:,} stacks per rank; best of {rounds} alternating rounds; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print()
    print("| measurement | rank | seconds | stacks/s | vs rank 2 |")
    print("|---|---:|---:|---:|---:|")
    for label in dict.fromkeys(label for label, _ in best):
        for rank in RANKS:
            seconds = best[label, rank]
            print(f"| {label} | {rank} | {seconds:.3f} | {total / seconds / 1e6:.1f}M | "
                  f"{best[label, 2] / seconds:.2f}x |")


def against(other: str, rounds: int) -> None:
    """Rank 2, kernel alone on one thread (CPU time): this checkout and `other`, alternating processes."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    roots = {"this checkout": here, f"other ({other})": os.path.abspath(other)}
    best = {name: float("inf") for name in roots}
    for _ in range(rounds):
        for name, root in roots.items():
            out = subprocess.run([sys.executable, "-c", OTHER, root], check=True, cwd=root,
                                 capture_output=True, text=True).stdout
            best[name] = min(best[name], float(out.strip().splitlines()[-1]))
    total = GridSpec.build(GRID).total
    print()
    print(f"rank 2, kernel alone (1 thread, CPU time), best of {rounds} alternating processes")
    print()
    print("| code | seconds | stacks/s |")
    print("|---|---:|---:|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.4f} | {total / seconds / 1e6:.1f}M |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=min(2, numba.config.NUMBA_NUM_THREADS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", metavar="DIR", help="another checkout: time its rank-2 kernel against this one")
    args = parser.parse_args()
    by_rank(args.threads, args.rounds)
    if args.against:
        against(args.against, args.rounds)


if __name__ == "__main__":
    main()
