"""Throughput of the sweep on one grid, in one run, against two baselines.

Measures stacks/s for
  1. the Numba kernel alone (prefix reuse, 2 threads, output columns filled),
  2. end to end: kernel + Arrow + zstd Parquet on disk (`rfsweep.write_range`),
  3. a NumPy-vectorised baseline (decode ids, gather, layer by layer on arrays),
  4. a pure-Python baseline (one stack at a time) on a subset,
prints a table with ratios and the peak RSS, and appends nothing anywhere:
copy the printed table into benchmarks/README.md.

    python benchmarks/bench_sweep.py            # the 5.4M-stack grid of issue 3
    python benchmarks/bench_sweep.py --quick    # a smaller grid, for a smoke run
    python benchmarks/bench_sweep.py --naive    # one file: rfsweep vs a naive loop, both grids of issue 14
    python benchmarks/bench_sweep.py --checksums  # end to end with and without Parquet page checksums
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time

import numba
import numpy as np

from rfsweep.chain_sweep import Buffers, Evaluator
from rfsweep.engines import chunks, write_range
from rfsweep.grid import GridSpec
from rfsweep.kernel import sweep_range

GRID = dict(depth="1-4", kernel="1,3,5,7", stride="1,2", dilation="1,2", channels="16,32,64",
            input_size=224, in_channels=3, padding="same")
QUICK = dict(GRID, depth="1-3")
DEEP = dict(GRID, depth="1-5", channels="16,32")  # 34,636,833 stacks, 29M of them at depth 5


def kernel_only(spec: GridSpec, threads: int, chunk_ids: int = 1 << 20) -> float:
    """Seconds for the kernel over the whole grid, outputs into reused buffers (best of 3)."""
    numba.set_num_threads(threads)
    evaluator = Evaluator(spec, threads)
    buffers = Buffers(spec, chunk_ids)
    t, out, lay = evaluator.table, buffers.totals, buffers.layers
    parts = 4 * threads

    def once():
        counts = np.zeros((parts, 4), np.int64)
        for depth, base, lo, hi in chunks(spec, chunk_ids=chunk_ids):
            sweep_range(depth, spec.radix, len(spec.channels), lo, hi, base, parts, t["type"], t["kernel"],
                        t["stride"], t["dilation"], t["padding"], t["channels"], t["valid"], spec.input_size,
                        spec.in_channels, spec.bias, spec.rank, evaluator.limits, evaluator.size_never_grows,
                        *(out[name] for name in ("config_id", "rf", "jump", "out_size", "out_channels",
                                                 "params", "macs", "flops", "erf_std", "erf_ratio")),
                        *(lay[name] for name in ("type", "kernel", "stride", "dilation", "padding",
                                                 "channels")), counts)

    for _ in range(2):  # JIT and thread-pool warm-up, untimed (the first passes run ~30% slower)
        once()
    return min(_timed(once) for _ in range(5))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def end_to_end(spec: GridSpec, threads: int) -> float:
    """One zstd Parquet file: kernel and Arrow in the main thread, encoding in a writer thread."""
    with tempfile.TemporaryDirectory() as tmp:
        write_range(spec, os.path.join(tmp, "warm.parquet"), 0, min(spec.total, 10_000), threads=threads)
        return min(_timed(lambda: write_range(spec, os.path.join(tmp, "sweep.parquet"), threads=threads))
                   for _ in range(3))


def end_to_end_parts(spec: GridSpec, workers: int, partitions: int) -> float:
    """A directory of parts (`--partitions`): one serial kernel and one encoder per core."""
    import shutil

    from rfsweep.distributed import run_local_parts

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "parts")
        run_local_parts(spec, out, partitions, workers=workers)  # warm-up: serial kernel JIT
        best = float("inf")
        for _ in range(3):
            shutil.rmtree(out)
            best = min(best, _timed(lambda: run_local_parts(spec, out, partitions, workers=workers)))
        return best


def naive_file(spec: GridSpec, path: str, threads: int, chunk_ids: int = 1 << 20) -> None:
    """What a user would write: compute a chunk, then `ParquetWriter.write_table` it (zstd), in turn.

    Same kernel, same Arrow tables and column types as rfsweep; pyarrow's
    default Parquet options apart from the codec; no overlap of computing and writing.
    """
    import pyarrow.parquet as pq

    evaluator = Evaluator(spec, threads)
    buffers = Buffers(spec, chunk_ids)
    with pq.ParquetWriter(path, evaluator.schema, compression="zstd") as writer:
        for depth, base, lo, hi in chunks(spec, chunk_ids=chunk_ids):
            table, _counts = evaluator.evaluate(depth, base, lo, hi, buffers)
            writer.write_table(table)


def one_file_vs_naive(grids: dict[str, dict], threads: int, rounds: int = 2) -> None:
    """rfsweep's one-file sweep and the naive loop side by side, alternating, best of `rounds`.

    Prints wall and CPU seconds (CPU: this process, all threads) and the ratio of wall times.
    """
    import pyarrow.parquet as pq

    print("| grid | stacks | writer | wall s | CPU s | M stacks/s | file MB | vs naive |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, values in grids.items():
            spec = GridSpec.build(values)
            write_range(spec, os.path.join(tmp, "warm.parquet"), 0, min(spec.total, 10_000), threads=threads)
            runs = {"naive loop": lambda path: naive_file(spec, path, threads),
                    "rfsweep": lambda path: write_range(spec, path, threads=threads)}
            best = {name: (float("inf"), 0.0) for name in runs}
            for _ in range(rounds):
                for name, run in runs.items():
                    path = os.path.join(tmp, name.replace(" ", "_") + ".parquet")
                    cpu, wall = time.process_time(), time.perf_counter()
                    run(path)
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                    best[name] = min(best[name], (wall, cpu))
            for name in runs:
                path = os.path.join(tmp, name.replace(" ", "_") + ".parquet")
                assert pq.read_metadata(path).num_rows == pq.read_metadata(
                    os.path.join(tmp, "rfsweep.parquet")).num_rows
                wall, cpu = best[name]
                print(f"| {label} | {spec.total:,} | {name} | {wall:.2f} | {cpu:.2f} | {spec.total / wall / 1e6:.1f} | "
                      f"{os.path.getsize(path) / 1e6:.1f} | {best['naive loop'][0] / wall:.2f}x |", flush=True)


def numpy_baseline(spec: GridSpec, chunk_ids: int = 1 << 20) -> float:
    """The obvious vectorised version: every stack recomputes every layer, in numpy arrays,
    producing the same columns as the kernel (totals, ERF, per-layer fields of kept rows)."""
    table = spec.choice_table()
    k_eff_of = table["dilation"] * (table["kernel"] - 1) + 1

    def once():
        for depth, base, lo, hi in chunks(spec, chunk_ids=chunk_ids):
            rel = np.arange(lo - base, hi - base, dtype=np.int64)
            digits = []
            for _ in range(depth):
                rel, digit = np.divmod(rel, spec.radix)
                digits.append(digit)
            digits.reverse()
            n = np.full(hi - lo, spec.input_size, np.int64)
            rf = np.ones(hi - lo, np.int64)
            jump = np.ones(hi - lo, np.int64)
            var = np.zeros(hi - lo, np.float64)
            c = np.full(hi - lo, spec.in_channels, np.int64)
            params = np.zeros(hi - lo, np.int64)
            macs = np.zeros(hi - lo, np.int64)
            valid = np.ones(hi - lo, bool)
            for digit in digits:
                k_eff = k_eff_of[digit]
                n = (n + 2 * table["padding"][digit] - k_eff) // table["stride"][digit] + 1
                valid &= n >= 1
                rf = rf + (k_eff - 1) * jump
                step = table["dilation"][digit] * jump
                var = var + (table["kernel"][digit] ** 2 - 1) / 12.0 * step * step
                jump = jump * table["stride"][digit]
                c_out = table["channels"][digit]
                weights = table["kernel"][digit] ** 2 * c * c_out
                params = params + weights + c_out
                macs = macs + weights * n * n
                c = c_out
            keep = np.flatnonzero(valid)
            erf_std = np.sqrt(var[keep])
            width = rf[keep].astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                _ = np.where(width > 1, erf_std / np.sqrt((width * width - 1) / 12), 1.0)
            _ = (lo + keep, rf[keep], jump[keep], n[keep], c[keep], params[keep], macs[keep], 2 * macs[keep])
            for digit in digits:
                kept = digit[keep]
                _ = [table[name][kept] for name in ("kernel", "stride", "dilation", "padding", "channels")]

    return _timed(once)


def python_baseline(spec: GridSpec, count: int) -> tuple[float, int]:
    """One stack at a time in plain Python, on the first `count` ids of the deepest depth."""
    table = {name: values.tolist() for name, values in spec.choice_table().items()}
    depth, base, total = spec.depth_blocks()[-1]
    count = min(count, total)

    def once():
        rows = 0
        for config_id in range(base, base + count):
            rel, digits = config_id - base, []
            for _ in range(depth):
                rel, digit = divmod(rel, spec.radix)
                digits.append(digit)
            n, rf, jump, c, params, macs = spec.input_size, 1, 1, spec.in_channels, 0, 0
            for digit in reversed(digits):
                k, s, d, p = (table[key][digit] for key in ("kernel", "stride", "dilation", "padding"))
                k_eff = d * (k - 1) + 1
                n = (n + 2 * p - k_eff) // s + 1
                if n < 1:
                    break
                rf += (k_eff - 1) * jump
                jump *= s
                c_out = table["channels"][digit]
                params += k * k * c * c_out + c_out
                macs += k * k * c * c_out * n * n
                c = c_out
            else:
                rows += 1
        return rows

    return _timed(once), count


def checksum_cost(spec: GridSpec, threads: int, rounds: int = 3) -> None:
    """End to end (one file) and a full read, with page checksums written/verified and without,
    interleaved so that machine load hits both alike; prints best-of-rounds figures."""
    import pyarrow.dataset as ds

    from rfsweep import writer
    from rfsweep.sweep_file import parquet_format

    best = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sweep.parquet")
        write_range(spec, path, 0, min(spec.total, 10_000), threads=threads)  # warm-up
        for _ in range(rounds):
            for on in (False, True):
                writer.WRITE_OPTIONS["write_page_checksum"] = on
                seconds = _timed(lambda: write_range(spec, path, threads=threads))
                best[("write", on)] = min(best.get(("write", on), float("inf")), seconds)
                fmt = parquet_format() if on else "parquet"
                seconds = _timed(lambda: ds.dataset(path, format=fmt).to_table())
                best[("read", on)] = min(best.get(("read", on), float("inf")), seconds)
        writer.WRITE_OPTIONS["write_page_checksum"] = True
        size = os.path.getsize(path)
    print(f"grid: {spec.total:,} stacks; {threads} threads; {size / 1e6:.1f} MB with checksums; best of {rounds}")
    print("| step | without checksums | with checksums | change |")
    print("|---|---:|---:|---:|")
    for step, what in (("write", "end to end, one file (stacks/s)"), ("read", "read every column (rows/s)")):
        off, on = spec.total / best[(step, False)], spec.total / best[(step, True)]
        print(f"| {what} | {off / 1e6:.2f}M | {on / 1e6:.2f}M | {100 * (on / off - 1):+.1f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="depth 1-3 instead of 1-4")
    parser.add_argument("--threads", type=int, default=min(2, numba.config.NUMBA_NUM_THREADS))
    parser.add_argument("--python-subset", type=int, default=200_000)
    parser.add_argument("--naive", action="store_true",
                        help="only one file vs a naive compute-then-write loop, on the default and deep grids")
    parser.add_argument("--checksums", action="store_true",
                        help="only end to end and a full read with and without Parquet page checksums")
    args = parser.parse_args()
    if args.checksums:
        checksum_cost(GridSpec.build(QUICK if args.quick else GRID), args.threads)
        return
    if args.naive:
        one_file_vs_naive({"default (depth 1-4)": GRID, "--depth 1-5 --channels 16,32": DEEP}, args.threads)
        return
    spec = GridSpec.build(QUICK if args.quick else GRID)
    total = spec.total
    results = []
    # the first kernel_only of a process runs ~30% slower whatever its warm-up (not page faults:
    # pre-touched buffers change nothing); report the steady state, best of two rounds
    seconds = min(kernel_only(spec, args.threads) for _ in range(2))
    results.append((f"kernel alone ({args.threads} threads)", total, seconds))
    seconds = kernel_only(spec, 1)
    results.append(("kernel alone (1 thread)", total, seconds))
    results.append((f"end to end, one zstd Parquet file ({args.threads} threads)", total,
                    end_to_end(spec, args.threads)))
    results.append((f"end to end, directory of 4 parts ({args.threads} encoders)", total,
                    end_to_end_parts(spec, args.threads, 4)))
    results.append(("NumPy vectorised baseline", total, numpy_baseline(spec)))
    py_seconds, py_count = python_baseline(spec, args.python_subset)
    results.append((f"pure Python baseline ({py_count:,} stacks)", py_count, py_seconds))
    rates = {name: stacks / secs for name, stacks, secs in results}
    numpy_rate = rates["NumPy vectorised baseline"]
    python_rate = rates[results[-1][0]]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"grid: {total:,} stacks ({spec.radix} choices per layer, depths {spec.depth}); "
          f"{os.cpu_count()} cores, {cpu}; numba {numba.__version__}, numpy {np.__version__}")
    print()
    print("| measurement | stacks | seconds | stacks/s | vs NumPy | vs pure Python |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, stacks, secs in results:
        rate = stacks / secs
        print(f"| {name} | {stacks:,} | {secs:.3f} | {rate / 1e6:.1f}M | {rate / numpy_rate:.1f}x | "
              f"{rate / python_rate:.0f}x |")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print(f"peak RSS of this benchmark process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
