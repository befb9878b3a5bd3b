"""Local engine vs the Dask engine on one machine: wall time and stacks/s.

    python benchmarks/bench_dask.py                 # 16.9M-stack grid, writes benchmarks/dask_results.md
    python benchmarks/bench_dask.py --repeat 1 --partitions 2,8

The local engine is `write_range` (one process, 2 Numba threads). The Dask
engine is `run_dask` on a LocalCluster of 2 worker processes x 1 thread,
started once and warmed up (Numba's cached kernel loaded in every worker), so
the table measures the sweep, not process start-up; one extra row times the
embedded default (`scheduler=None`: start a cluster, run, shut it down), what
`rfsweep sweep --engine dask` pays on a laptop. Configurations run
round-robin; each figure is the best of --repeat rounds (all runs listed).
Outputs go to a temporary directory (--tmp) and are deleted after each run.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numba

import rfsweep
from rfsweep import GridSpec, write_range
from rfsweep import distributed as D

GRID = dict(depth="1-4", kernel="1,3,5,7", stride="1,2", dilation="1,2", channels="16,32,64,128")
HERE = Path(__file__).resolve().parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    import dask
    import distributed
    import numpy
    import pandas
    import pyarrow

    return {"python": platform.python_version(), "rfsweep": rfsweep.__version__, "numba": numba.__version__,
            "numpy": numpy.__version__, "pyarrow": pyarrow.__version__, "pandas": pandas.__version__,
            "dask": dask.__version__, "distributed": distributed.__version__}


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def _warm(spec_dict: dict, workdir: str) -> None:
    out = Path(workdir) / f"warm-{os.getpid()}.parquet"
    write_range(GridSpec.build(spec_dict), out, 0, 100_000, threads=1)
    out.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", default="2,4,8,16,32")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tmp", default=None, help="directory for the outputs [default: system temp]")
    parser.add_argument("--quick", action="store_true", help="depth 1-3 grid (265k stacks) for a smoke test")
    parser.add_argument("--results", type=Path, default=HERE / "dask_results.md")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    grid = dict(GRID, depth="1-3") if args.quick else GRID
    spec = GridSpec.build(grid)
    partitions = [int(p) for p in args.partitions.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="rfsweep-bench-", dir=args.tmp))
    counter = iter(range(10**6))

    def fresh(suffix: str) -> Path:
        return workdir / f"run{next(counter)}{suffix}"

    load_before = os.getloadavg()
    print(f"grid: {spec.total:,} stacks ({grid}); nproc {os.cpu_count()}; {cpu_model()}", flush=True)
    # warm the kernel (Numba compiles per column dtypes, so with this spec) in this process
    write_range(spec, workdir / "warm.parquet", 0, 100_000, threads=2)

    # configurations run round-robin, one run each per round, so that drifting background load
    # (a shared machine) hits every configuration alike; each figure is the best of --repeat rounds
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(cluster)
    client.run(_warm, spec.to_dict(), str(workdir))  # every worker loads the kernel for this spec
    default_n = D.default_partitions(spec)
    configs = [("local (write_range, 2 threads)", "1 file", ".parquet",
                lambda out: write_range(spec, out, threads=2))]
    for n in partitions:
        configs.append((f"dask, warm LocalCluster {args.workers}x1", str(n), "",
                        lambda out, n=n: D.run_dask(spec, out, partitions=n, scheduler=client)))
    configs.append((f"dask, embedded (cluster start + stop), {args.workers}x1", f"{default_n} (default)", "",
                    lambda out: D.run_dask(spec, out, n_workers=args.workers)))
    times: dict[int, list[float]] = {i: [] for i in range(len(configs))}
    sizes: dict[int, int] = {}
    counts = None
    for round_ in range(args.repeat):
        for i, (engine, parts, suffix, fn) in enumerate(configs):
            out = fresh(suffix)
            start = time.perf_counter()
            result = fn(out)
            times[i].append(time.perf_counter() - start)
            sizes[i] = size_of(out)
            shutil.rmtree(out) if out.is_dir() else out.unlink()
            counts = counts or result
            assert result == counts, (engine, parts, result, counts)
            print(f"round {round_ + 1}: {engine}, partitions {parts}: {times[i][-1]:.2f} s "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
    client.close()
    cluster.close()
    shutil.rmtree(workdir, ignore_errors=True)
    rows = [(engine, parts, min(times[i]), times[i], sizes[i]) for i, (engine, parts, _, _) in enumerate(configs)]
    local_best = rows[0][2]

    header = ("| engine | partitions | wall s (best) | runs | M stacks/s | speed vs local | output MB |\n"
              "|---|---|---:|---|---:|---:|---:|")
    lines = [header]
    for engine, parts, best, times, nbytes in rows:
        lines.append(f"| {engine} | {parts} | {best:.2f} | {' / '.join(f'{t:.2f}' for t in times)} | "
                     f"{spec.total / best / 1e6:.2f} | {local_best / best:.2f}x | {nbytes / 1e6:.0f} |")
    table = "\n".join(lines)
    info = versions()
    machine = (f"- grid: `{' '.join(f'--{k} {v}' for k, v in grid.items())}` = {spec.total:,} stacks "
               f"({counts.written:,} rows written)\n"
               f"- machine: nproc {os.cpu_count()}, {cpu_model()}, {platform.system()} {platform.release()}\n"
               f"- numba threading layer: {numba.threading_layer()}, NUMBA_NUM_THREADS "
               f"{numba.config.NUMBA_NUM_THREADS}\n"
               f"- versions: {', '.join(f'{k} {v}' for k, v in info.items())}\n"
               f"- best of {args.repeat} runs; median local {statistics.median(rows[0][3]):.2f} s\n"
               f"- load average (1 min) before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
               "(other processes on the machine disturb the timings when it is above ~0.5)\n")
    text = (f"# Dask engine vs local engine\n\nMeasured by `python benchmarks/bench_dask.py` on "
            f"{time.strftime('%Y-%m-%d')}.\n\n{machine}\n{table}\n\n"
            "speed vs local = local wall time / this wall time (>1 is faster). The warm rows reuse one "
            "started cluster; the embedded row includes starting and stopping it. All configurations "
            "write the same rows (counts asserted equal).\n")
    print()
    print(table)
    if not args.quick:
        args.results.write_text(text)
        print(f"\nwrote {args.results}")


if __name__ == "__main__":
    sys.exit(main())
