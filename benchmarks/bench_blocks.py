"""Block-space sweep throughput: kernel alone, end to end into Parquet, NumPy and pure-Python baselines.

    python benchmarks/bench_blocks.py [--ids N] [--threads T]
    python benchmarks/bench_blocks.py --ranks [--ids N] [--rounds R]   # rank 1, 2, 3 kernels compared
    python benchmarks/bench_blocks.py --axes [--ids N] [--rounds R]    # rank 3: isotropic vs per-axis strides

Space: data/resnet_like.toml (268M networks: 4 stages x 2 blocks x 4 repeats x 2 kernels x 4 widths
x 2 expansions). The kernel is compiled (and warmed) before any timing. Rates count enumerated
networks per second (invalid ids included, as the sweep reports them).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from rfsweep.block_sweep import BlockEvaluator
from rfsweep.blocks import BASIC, BOTTLENECK, BlockSpec
from rfsweep.engines import write_range
from rfsweep.grid import load_spec

SPEC = Path(__file__).resolve().parent.parent / "data" / "resnet_like.toml"


def numpy_baseline(spec, lo: int, hi: int) -> int:
    """The same columns computed vectorised over ids (basic/bottleneck blocks): decode, then per stage
    and repeat a few array expressions. Returns the rows kept (valid ids)."""
    ids = np.arange(lo, hi, dtype=np.int64)
    table = spec.choice_table()
    st = spec.stem_state()
    n = np.full(ids.size, st.size, np.int64)
    c = np.full(ids.size, st.channels, np.int64)
    rf = np.full(ids.size, st.rf, np.int64)
    rfmin = rf.copy()
    jump = np.full(ids.size, st.jump, np.int64)
    params = np.full(ids.size, st.params, np.int64)
    macs = np.full(ids.size, st.macs, np.int64)
    var = np.full(ids.size, st.erf_var)
    depth = np.full(ids.size, st.depth, np.int64)
    unprod = np.zeros(ids.size, np.int64)
    ok = np.ones(ids.size, bool)
    rest = ids.copy()
    digits = []
    for radix in reversed(spec.radices):
        digits.append(rest % radix)
        rest //= radix
    digits = digits[::-1]
    size = spec.input_size
    for i, v in enumerate(digits):
        code, reps, k, s0, d, w, e = (table[f][i][v] for f in (
            "block", "repeats", "kernel", "stride", "dilation", "width", "expansion"))
        ok &= table["valid"][i][v].astype(bool)
        for b in range(int(reps.max())):
            live = reps > b
            s = s0 if b == 0 else np.ones_like(s0)
            n2 = (n - 1) // s + 1
            grow = d * (k - 1) * jump
            var_k = var + (k * k - 1) / 12.0 * (d * jump) ** 2
            basic = code == BASIC
            inner = np.where(code == BOTTLENECK, w // np.maximum(e, 1), w)
            p_basic = k * k * c * w + 2 * w + k * k * w * w + 2 * w
            m_basic = (k * k * c * w + k * k * w * w) * n2 * n2
            p_bott = c * inner + 2 * inner + k * k * inner * inner + 2 * inner + inner * w + 2 * w
            m_bott = c * inner * n * n + (k * k * inner * inner + inner * w) * n2 * n2
            proj = (s != 1) | (c != w)
            p = np.where(basic, p_basic, p_bott) + proj * (c * w + 2 * w)
            m = np.where(basic, m_basic, m_bott) + proj * c * w * n2 * n2
            var_main = np.where(basic, var_k + (k * k - 1) / 12.0 * (d * jump * s) ** 2, var_k)
            rf_main = rf + grow + np.where(basic, d * (k - 1) * jump * s, 0)
            u = np.where(basic, (rfmin + grow > size) + (rfmin + grow + d * (k - 1) * jump * s > size),
                         (rfmin > size) + 2 * (rfmin + grow > size)) + proj * (rfmin > size)
            n = np.where(live, n2, n)
            params = np.where(live, params + p, params)
            macs = np.where(live, macs + m, macs)
            rf = np.where(live, rf_main, rf)
            var = np.where(live, (var_main + var) / 2.0, var)
            jump = np.where(live, jump * s, jump)
            depth = np.where(live, depth + np.where(basic, 2, 3), depth)
            unprod = np.where(live, unprod + u, unprod)
            c = np.where(live, w, c)
    std = np.sqrt(var)
    ratio = std / np.sqrt((rf.astype(np.float64) ** 2 - 1) / 12.0)
    flops = 2 * macs
    keep = np.flatnonzero(ok)
    columns = [ids, rf, jump, n, c, params, macs, flops, std, ratio, depth, unprod, rfmin]
    return len([col[keep] for col in columns][0])


def pure_python(spec, lo: int, hi: int) -> int:
    """One network at a time in plain Python (the kernel's functions, uncompiled)."""
    from rfsweep import block_kernel

    block = block_kernel._block.py_func
    table = spec.choice_table()
    st = spec.stem_state()
    kept = 0
    for config_id in range(lo, hi):
        digits = spec.decode(config_id)
        n, c, rf, rfmin, jump, var = st.size, st.channels, st.rf, st.rf, st.jump, st.erf_var
        params, macs, good = st.params, st.macs, True
        for i, v in enumerate(digits):
            if not table["valid"][i][v]:
                good = False
                break
            s = int(table["stride"][i][v])
            for _ in range(int(table["repeats"][i][v])):
                status, n, c, rf, rfmin, jump, p, m, var, _, _ = block(
                    int(table["block"][i][v]), n, c, rf, rfmin, jump, var, int(table["kernel"][i][v]),
                    int(table["kpow"][i][v]), s, int(table["dilation"][i][v]), int(table["width"][i][v]),
                    int(table["expansion"][i][v]), int(table["groups"][i][v]), spec.input_size, (1,) * spec.rank)
                params += p
                macs += m
                s = 1
        kept += good
    return kept


def rate(label: str, ids: int, seconds: float) -> float:
    print(f"{label:<44} {ids / seconds / 1e6:8.2f} M networks/s  ({ids:,} ids in {seconds:.2f} s)")
    return ids / seconds


def kernel_seconds(evaluator, ids: int, buffers) -> float:
    start = time.perf_counter()
    for lo in range(0, ids, 1 << 20):
        evaluator.evaluate(4, 0, lo, min(lo + (1 << 20), ids), buffers)
    return time.perf_counter() - start


def compare_ranks(spec, ids: int, threads: int, rounds: int) -> None:
    """The same space at rank 1, 2 and 3: kernel alone, best of `rounds`, the ranks alternating
    within each round (a loaded machine drifts; alternating spreads the drift over all three)."""
    evaluators = {}
    for rank in (1, 2, 3):
        ranked = BlockSpec.build({**spec.to_dict(), "rank": rank})
        evaluators[rank] = (BlockEvaluator(ranked, threads), ranked)
    buffers = evaluators[2][0].new_buffers(1 << 20)
    for evaluator, _ in evaluators.values():
        evaluator.evaluate(4, 0, 0, 1 << 17, buffers)  # compile (or load the cache) and warm up
    best = {rank: float("inf") for rank in evaluators}
    for _ in range(rounds):
        for rank, (evaluator, _) in evaluators.items():
            best[rank] = min(best[rank], kernel_seconds(evaluator, ids, buffers))
    for rank, seconds in best.items():
        rate(f"kernel alone, rank {rank} (best of {rounds})", ids, seconds)
    for rank in (1, 3):
        print(f"rank {rank} / rank 2: {best[2] / best[rank]:.2f}x")


def compare_axes(spec, ids: int, threads: int, rounds: int) -> None:
    """The space at rank 3, isotropic, against the same space with every stride s as [1, s, s] and a
    16-frame input (a per-axis space: the kernel's per-axis stage), kernel alone, best of `rounds`,
    alternating within each round."""
    base = {**spec.to_dict(), "rank": 3, "input_size": 112}
    per_axis = {**base, "input_size": [16, 112, 112], "stem": "c3_7_7s1_2_2p1_3_3x64nb",
                "stage": [{**s, "stride": [x if x == 1 else [1, x, x] for x in s["stride"]]} for s in base["stage"]]}
    evaluators = {}
    for name, values in (("rank 3, isotropic", base), ("rank 3, per-axis strides [1, s, s]", per_axis)):
        built = BlockSpec.build(values)
        evaluators[name] = BlockEvaluator(built, threads)
    for evaluator in evaluators.values():
        buffers = evaluator.new_buffers(1 << 20)
        evaluator.evaluate(4, 0, 0, 1 << 17, buffers)  # compile (or load the cache) and warm up
    best = {name: float("inf") for name in evaluators}
    for _ in range(rounds):
        for name, evaluator in evaluators.items():
            best[name] = min(best[name], kernel_seconds(evaluator, ids, evaluator.new_buffers(1 << 20)))
    for name, seconds in best.items():
        rate(f"kernel alone, {name} (best of {rounds})", ids, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=1 << 25, help="ids per timed run (default 33.5M)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="also sweep the whole 268M space end to end")
    parser.add_argument("--ranks", action="store_true", help="only compare the kernel at rank 1, 2 and 3")
    parser.add_argument("--axes", action="store_true", help="only compare isotropic and per-axis strides at rank 3")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --ranks or --axes (best of)")
    args = parser.parse_args()
    spec = load_spec(SPEC)
    if args.axes:
        print(f"{spec.summary()} at rank 3; the first {args.ids:,} ids on {args.threads} threads")
        compare_axes(spec, args.ids, args.threads, args.rounds)
        return
    if args.ranks:
        print(f"{spec.summary()} at rank 1, 2, 3; the first {args.ids:,} ids on {args.threads} threads")
        compare_ranks(spec, args.ids, args.threads, args.rounds)
        return
    print(f"{spec.summary()}; timing the first {args.ids:,} ids on {args.threads} threads")
    evaluator = BlockEvaluator(spec, args.threads)
    buffers = evaluator.new_buffers(1 << 20)
    start = time.perf_counter()
    evaluator.evaluate(4, 0, 0, 1 << 17, buffers)  # compile (or load the cache) and warm up
    print(f"compile + warm-up: {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    for lo in range(0, args.ids, 1 << 20):
        evaluator.evaluate(4, 0, lo, min(lo + (1 << 20), args.ids), buffers)
    kernel = rate("kernel alone (+ Arrow tables, no encoding)", args.ids, time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        counts = write_range(spec, Path(tmp) / "one.parquet", 0, args.ids, threads=args.threads)
        one = rate("end to end, one Parquet file", args.ids, time.perf_counter() - start)
        size = (Path(tmp) / "one.parquet").stat().st_size
        print(f"  {counts.written:,} rows written, {size / counts.written:.2f} bytes/row")
        if args.full:
            from rfsweep.distributed import run_local_parts
            start = time.perf_counter()
            run_local_parts(spec, Path(tmp) / "parts", 16, workers=args.threads)
            rate("whole space, --partitions 16 (directory)", spec.total, time.perf_counter() - start)
            start = time.perf_counter()
            write_range(spec, Path(tmp) / "all.parquet", threads=args.threads)
            rate("whole space, one Parquet file", spec.total, time.perf_counter() - start)
    n_np = min(args.ids, 1 << 22)
    start = time.perf_counter()
    for lo in range(0, n_np, 1 << 20):
        numpy_baseline(spec, lo, lo + (1 << 20))
    numpy = rate("NumPy baseline (vectorised, 1 core)", n_np, time.perf_counter() - start)
    n_py = 20_000
    start = time.perf_counter()
    pure_python(spec, 0, n_py)
    python = rate("pure Python (1 core)", n_py, time.perf_counter() - start)
    print(f"kernel {kernel / numpy:.1f}x NumPy, {kernel / python:,.0f}x pure Python; "
          f"end to end {one / numpy:.1f}x NumPy")


if __name__ == "__main__":
    main()
