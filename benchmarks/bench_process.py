"""Whole-process figures of `rfsweep sweep`: start-up (cold and warm JIT cache) and peak RSS.

    python benchmarks/bench_process.py              # default grid start-up + 105M-stack memory run
    python benchmarks/bench_process.py --no-memory  # start-up only

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-memory", action="store_true", help="skip the 105M-stack run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "sweep.parquet")
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "numba-cache"))
        cold, _ = run(["sweep", "-q", "-o", out], env)
        warm = min(run(["sweep", "-q", "-o", out], env)[0] for _ in range(3))
        print("| rfsweep sweep, default grid (5.4M stacks), whole process | seconds |")
        print("|---|---:|")
        print(f"| first run ever (empty numba cache: compiling) | {cold:.2f} |")
        print(f"| warm cache (best of 3) | {warm:.2f} |")
        if not args.no_memory:
            wall, peak = run(["sweep", "-q", "-o", out, *BIG])
            size = os.path.getsize(out) / 1e6
            print()
            print(f"105,025,640-stack sweep ({' '.join(BIG)}): {wall:.1f} s, "
                  f"{105_025_640 / wall / 1e6:.1f}M stacks/s, peak RSS {peak:.0f} MB, file {size:.0f} MB")


if __name__ == "__main__":
    main()
