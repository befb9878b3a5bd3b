"""`rfsweep report` on the default 5.4M-row sweep: whole-process time, CPU time, HTML size, phases.

    python benchmarks/bench_report.py                       # sweeps the default grid into a temp dir first
    python benchmarks/bench_report.py --sweep /tmp/default.parquet --repeats 5
    python benchmarks/bench_report.py --big                 # report and pareto on a 105M-row sweep (then deleted)

Targets (issue 12): under 5 s whole process and under 5 MB of HTML. `--big` (issue 22):
`report` and `pareto` read a 105,025,640-row sweep (depth 1-5, 40 choices a layer, ~0.7 GB)
in batches, so their peak RSS stays bounded like the sweep's; it prints wall time and peak RSS
of each whole process and deletes the file. The first
report run warms numba's cache (the Pareto kernels) and is not counted. Wall
time on a shared machine swings with the load; CPU time (user + system of the
child) is the steadier figure, and both are printed. The phase breakdown is
measured in this process, after one warm-up call.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RFSWEEP = str(Path(sys.executable).with_name("rfsweep"))


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one `rfsweep` process."""
    cpu = child_cpu()
    start = time.perf_counter()
    subprocess.run([RFSWEEP, *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, child_cpu() - cpu


def phases(sweep: str) -> list[tuple[str, float]]:
    """Seconds per phase of build_report, in this process (after a warm-up call)."""
    import plotly.io as pio

    from rfsweep import report

    report.build_report(sweep)
    out = []
    start = time.perf_counter()
    scan = report._scan(sweep, False, 1500)
    out.append(("read 9 columns, both exact fronts, sample, histograms", time.perf_counter() - start))
    start = time.perf_counter()
    spec = report._spec_of(scan.metadata)
    ids = list(dict.fromkeys([*scan.fronts["params"]["config_id"].tolist(),
                              *scan.fronts["macs"]["config_id"].tolist()]))
    stacks = report._stacks(spec, ids)
    from rfsweep.explain import analyze

    for stack in stacks.values():
        report._explain_rows(stack, analyze(stack))
    out.append((f"explain tables of the {len(stacks)} front rows", time.perf_counter() - start))
    start = time.perf_counter()
    compared = report._compare_rows(spec, scan.dist["rf_values"])
    out.append((f"compare for RFs {[c['rf'] for c in compared]}", time.perf_counter() - start))
    start = time.perf_counter()
    go = report._plotly()
    figure = report._front_figure(go, scan.sample, scan.fronts["params"], "params", stacks, "params")
    pio.to_html(figure, include_plotlyjs=True, full_html=False)
    out.append(("one front figure to HTML (plotly.js inlined)", time.perf_counter() - start))
    return out


# 40 choices per layer, depth 1-5: 105,025,640 stacks (as benchmarks/bench_process.py)
BIG = ["--depth", "1-5", "--kernel", "1,3,5,7,9", "--stride", "1,2", "--dilation", "1,2", "--channels", "16,32"]


def run_peak(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one `rfsweep` process, from wait4."""
    start = time.perf_counter()
    process = subprocess.Popen([RFSWEEP, *args], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"rfsweep {' '.join(args)} failed")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def big(directory: str) -> None:
    """Sweep the 105M-row grid, then time report and pareto on it (peak RSS of each process)."""
    sweep = os.path.join(directory, "big.parquet")
    wall, peak = run_peak(["sweep", "-q", "-o", sweep, *BIG])
    size = os.path.getsize(sweep) / 1e6
    print(f"| 105,025,640-row sweep ({' '.join(BIG)}), {size:.0f} MB | seconds | peak RSS MB |")
    print("|---|---:|---:|")
    print(f"| rfsweep sweep | {wall:.1f} | {peak:.0f} |")
    for name, args in (("rfsweep report", ["report", sweep, "-o", os.path.join(directory, "r.html")]),
                       ("rfsweep pareto (params, macs vs rf)", ["pareto", sweep, "--top", "5"]),
                       ("rfsweep pareto --plot", ["pareto", sweep, "--top", "5", "--plot",
                                                  os.path.join(directory, "front.png")])):
        wall, peak = run_peak(args)
        print(f"| {name} | {wall:.1f} | {peak:.0f} |", flush=True)
    print(f"| load average (1 min) at the end | {os.getloadavg()[0]:.2f} | |")
    os.remove(sweep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", help="an existing sweep file [default: sweep the default grid into a temp dir]")
    parser.add_argument("--repeats", type=int, default=3, help="timed report runs")
    parser.add_argument("--big", action="store_true", help="only the 105M-row report/pareto memory run")
    args = parser.parse_args()
    if args.big:
        with tempfile.TemporaryDirectory() as tmp:
            big(tmp)
        return
    with tempfile.TemporaryDirectory() as tmp:
        sweep = args.sweep
        if sweep is None:
            sweep = os.path.join(tmp, "default.parquet")
            subprocess.run([RFSWEEP, "sweep", "-q", "-o", sweep], check=True)
        out = os.path.join(tmp, "report.html")
        run(["report", sweep, "-o", out])  # warm-up: numba cache, page cache
        runs = [run(["report", sweep, "-o", out]) for _ in range(args.repeats)]
        size = os.path.getsize(out)
        walls = [wall for wall, _ in runs]
        cpus = [cpu for _, cpu in runs]
        rows = subprocess.run([sys.executable, "-c", "import pyarrow.parquet as pq, sys; "
                               "print(pq.read_metadata(sys.argv[1]).num_rows)", sweep],
                              capture_output=True, text=True, check=True).stdout.strip()
        print(f"| rfsweep report, {int(rows):,}-row sweep, whole process | value |")
        print("|---|---:|")
        print(f"| wall seconds, median of {len(walls)} (min {min(walls):.2f}, max {max(walls):.2f}) "
              f"| {statistics.median(walls):.2f} |")
        print(f"| CPU seconds (user + system), median | {statistics.median(cpus):.2f} |")
        print(f"| HTML bytes (plotly.js alone: {plotly_js_bytes():,}) | {size:,} |")
        print(f"| load average (1 min) at the end | {os.getloadavg()[0]:.2f} |")
        print()
        print("| phase (in process, warm) | seconds |")
        print("|---|---:|")
        for name, seconds in phases(sweep):
            print(f"| {name} | {seconds:.3f} |")


def plotly_js_bytes() -> int:
    import plotly

    return (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").stat().st_size


if __name__ == "__main__":
    main()
