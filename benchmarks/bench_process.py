"""Whole-process figures of `rfsweep sweep`: start-up (cold and warm JIT cache) and peak RSS.

    python benchmarks/bench_process.py              # default grid start-up + 105M-stack memory run
    python benchmarks/bench_process.py --no-memory  # start-up only
    python benchmarks/bench_process.py --never-seen # only: first sweep of a spec never seen before
    python benchmarks/bench_process.py --startup    # only: commands that must answer in a blink

Each run is a real subprocess of the `rfsweep` console script next to this
Python; peak RSS is the child's ru_maxrss (as /usr/bin/time -v reports it).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RFSWEEP = str(Path(sys.executable).with_name("rfsweep"))
# 40 choices per layer, depth 1-5: 105,025,640 stacks, every one written (no constraints)
BIG = ["--depth", "1-5", "--kernel", "1,3,5,7,9", "--stride", "1,2", "--dilation", "1,2", "--channels", "16,32"]


def run(args: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one `rfsweep` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run([RFSWEEP, *args], check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


# a small grid (113k stacks), so that the figures are start-up and compiling, not sweeping
SMALL = ["--depth", "1-3"]
# each gives other narrow file columns than the last (channels uint8 -> uint16, params uint32 -> uint64)
NEW_CHANNELS = [["--channels", "24,48"], ["--channels", "128,256,512"], ["--channels", "3000"]]


def timed(args: list[str], env: dict) -> tuple[float, float, bool]:
    """(wall s, CPU s, compiled?) of one `rfsweep sweep` process (not quiet: it says when it compiles).

    CPU (user + sys) is steadier than wall time on a shared machine.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([RFSWEEP, *args], check=True, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, "compiling the kernel" in proc.stderr


def never_seen_spec(rounds: int = 3) -> None:
    """The first sweep of a spec never run before: fresh numba cache, warm cache, new --channels.

    Before issue 14 the kernel compiled once per combination of column types, so a new
    --channels could mean a 4-8 s compile; now one signature serves them all. The last
    column guards it: a never-seen spec on a warm cache must not say it compiles.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "sweep.parquet")
        fresh = []
        for i in range(rounds):  # each round its own empty cache: a fresh install
            env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, f"numba-cache-{i}"))
            fresh.append(timed(["sweep", "-o", out, *SMALL], env))
        warm = min(timed(["sweep", "-o", out, *SMALL], env) for _ in range(rounds))
        new = [timed(["sweep", "-o", out, *SMALL, *channels], env) for channels in NEW_CHANNELS]
    print(f"| rfsweep sweep {' '.join(SMALL)} (113k stacks), whole process | wall s | CPU s | compiled |")
    print("|---|---:|---:|---|")
    rows = [(f"fresh install (empty NUMBA_CACHE_DIR; best of {rounds})", min(fresh)),
            (f"warm cache, same spec (best of {rounds})", warm)]
    rows += [(f"warm cache, never-seen spec: {' '.join(channels)}", result)
             for channels, result in zip(NEW_CHANNELS, new)]
    for label, (wall, cpu, compiled) in rows:
        print(f"| {label} | {wall:.2f} | {cpu:.2f} | {'yes' if compiled else 'no'} |")
    if any(compiled for _wall, _cpu, compiled in new):
        raise SystemExit("a never-seen spec recompiled the kernel on a warm cache")


# issue 14: these answer without numba, pandas or pyarrow, in under 0.35 s whole-process (warm);
# the last, a 130-node table, is shown for scale and has no target
STARTUP = [["--help"], ["explain", "c3x64,c3x64,c3x64"], ["archs"], ["compare", "--rf", "7"]]
STARTUP_EXTRA = [["explain", "--arch", "resnet_v1_50", "--end-point", "block4"]]
STARTUP_TARGET = 0.35
HEAVY = ("numba", "pandas", "pyarrow")


def startup(rounds: int = 5) -> bool:
    """Best-of-N wall time, peak RSS and heavy modules loaded, per command; False if one misses the target.

    A guard, not a test: timings belong here, and the exit code says whether the target held.
    """
    probe = ("import runpy, sys; sys.argv = ['rfsweep', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('rfsweep.cli', run_name='__main__')\n"
             "finally:\n    sys.stderr.write('HEAVY ' + ','.join(m for m in %r if m in sys.modules))\n" % (HEAVY,))
    ok = True
    print(f"| command (warm, best of {rounds}) | seconds | peak RSS MB | heavy modules loaded |")
    print("|---|---:|---:|---|")
    for args in STARTUP + STARTUP_EXTRA:
        run(args)  # warm the OS file cache and any JIT cache
        wall = min(run(args)[0] for _ in range(rounds))
        _, peak = run(args)
        proc = subprocess.run([sys.executable, "-c", probe, *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        heavy = proc.stderr.rsplit("HEAVY ", 1)[-1].strip() or "none"
        over = args in STARTUP and wall >= STARTUP_TARGET
        mark = f" (over {STARTUP_TARGET} s)" if over else ""
        ok = ok and not over
        print(f"| `rfsweep {' '.join(args)}` | {wall:.2f}{mark} | {peak:.0f} | {heavy} |")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-memory", action="store_true", help="skip the 105M-stack run")
    parser.add_argument("--never-seen", action="store_true", help="only the never-seen-spec figures")
    parser.add_argument("--startup", action="store_true", help="only the start-up of explain, archs, compare, --help")
    args = parser.parse_args()
    if args.startup:
        sys.exit(0 if startup() else 1)
    if args.never_seen:
        never_seen_spec()
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "sweep.parquet")
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "numba-cache"))
        cold, _ = run(["sweep", "-q", "-o", out], env)
        warm = min(run(["sweep", "-q", "-o", out], env)[0] for _ in range(3))
        print("| rfsweep sweep, default grid (5.4M stacks), whole process | seconds |")
        print("|---|---:|")
        print(f"| first run ever (empty numba cache: compiling) | {cold:.2f} |")
        print(f"| warm cache (best of 3) | {warm:.2f} |")
        print()
        never_seen_spec()
        if not args.no_memory:
            wall, peak = run(["sweep", "-q", "-o", out, *BIG])
            size = os.path.getsize(out) / 1e6
            print()
            print(f"105,025,640-stack sweep ({' '.join(BIG)}): {wall:.1f} s, "
                  f"{105_025_640 / wall / 1e6:.1f}M stacks/s, peak RSS {peak:.0f} MB, file {size:.0f} MB")


if __name__ == "__main__":
    main()
