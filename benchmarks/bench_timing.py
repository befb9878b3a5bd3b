"""Stack of small kernels vs one large kernel: MAC ratio next to the measured time ratio.

For every R in --rf and C in --channels (C -> C channels, stride 1, 'same'
padding, --size x --size input, --batch images), times three stacks with
rfsweep.timing.bench, interleaved over --rounds so load drifts hit all alike:

    single  one RxR conv
    best    rfsweep compare's cheapest stack (kernels 3,5, at most 4 layers)
    3x3     (R-1)/2 stacked 3x3 convs (the CS231n argument), when it is not `best`

and prints a Markdown table (MACs ratio, time ratio, GMAC/s, median and IQR)
plus the environment line (device, torch, threads, load before/after).

    python benchmarks/bench_timing.py                              # the full grid, fp32, CPU
    python benchmarks/bench_timing.py --rf 5,7 --channels 32 --batch 8   # a quick look
    python benchmarks/bench_timing.py --device cuda --dtype float16

Needs the torch extra (pip install -e ".[torch]"). Writes nothing unless --json PATH.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from rfsweep.analysis import compare
from rfsweep.timing import BenchSetup, bench


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def candidates(rf: int, channels: int, size: int) -> list[tuple[str, str]]:
    rows = compare(rf, channels=channels, max_depth=4, kernels=(3, 5), input_size=size)
    single = next(r["stack"] for r in rows if r["single"])
    best = next(r["stack"] for r in rows if r["best"])
    out = [("single", single), ("best", best)]
    threes = ",".join([f"c3x{channels}"] * ((rf - 1) // 2))
    if rf % 2 == 1 and threes != best and threes != single:
        out.append(("3x3", threes))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rf", default="5,7,9,11,15")
    parser.add_argument("--channels", default="32,64,128")
    parser.add_argument("--size", type=int, default=56)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per stack and round before stopping")
    parser.add_argument("--max-time", type=float, default=3.0, help="seconds per stack and round at most")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write every row and the environments here")
    args = parser.parse_args(argv)

    setup = BenchSetup(device=args.device, batch=args.batch, dtype=args.dtype, threads=args.threads,
                       warmup=args.warmup, min_run_time=args.min_time, max_run_time=args.max_time,
                       rounds=args.rounds)
    print("| R | C | stack | role | depth | x MACs | x time | GMAC/s | median ms | IQR ms | steps |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    records, started = [], time.perf_counter()
    env = None
    for rf in _ints(args.rf):
        for channels in _ints(args.channels):
            roles = candidates(rf, channels, args.size)
            result = bench([text for _, text in roles], setup, input_size=args.size, in_channels=channels)
            env = result.environment
            for (role, text), row in zip(roles, result.rows):
                print(f"| {rf} | {channels} | {text} | {role} | {row['depth']} | {row['macs_ratio']:.2f} | "
                      f"{row['time_ratio']:.2f} | {row['gmacs_per_s']:.1f} | {row['latency_ms']:.1f} | "
                      f"{row['latency_iqr_ms']:.1f} | {row['steps']} |", flush=True)
                records.append({"rf": rf, "channels": channels, "role": role, **row,
                                "loadavg": env["loadavg"], "loadavg_after": env["loadavg_after"]})
    elapsed = time.perf_counter() - started
    if env is not None:
        print(f"\n{env['device']} ({env['device_name']}), {env['threads']} threads of {env['cpu_count']} cores, "
              f"torch {env['torch']}, cuDNN {env['cudnn']}, {env['dtype']}, batch {env['batch']}, "
              f"{args.size}x{args.size}, {env['direction']}, ReLU after each conv; warm-up {args.warmup}, "
              f"adaptive_autorange {args.min_time}-{args.max_time} s x {args.rounds} rounds per stack; "
              f"load {env['loadavg']} at the last start, {env['loadavg_after']} at the end; {elapsed:.0f} s in all")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "environment": env, "rows": records}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
