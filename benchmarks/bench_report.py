"""`rfsweep report` on the default 5.4M-row sweep: whole-process time, CPU time, HTML size, phases.

    python benchmarks/bench_report.py                       # sweeps the default grid into a temp dir first
    python benchmarks/bench_report.py --sweep /tmp/default.parquet --repeats 5

Targets (issue 12): under 5 s whole process and under 5 MB of HTML. The first
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", help="an existing sweep file [default: sweep the default grid into a temp dir]")
    parser.add_argument("--repeats", type=int, default=3, help="timed report runs")
    args = parser.parse_args()
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
