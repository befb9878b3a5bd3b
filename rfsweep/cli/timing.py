"""`rfsweep bench` and `rfsweep measure`: parse flags, call rfsweep.timing, print.

Wire them into the main app with `register(app)` (rfsweep/cli/__init__.py). torch is
imported only by rfsweep.timing's functions; without it both commands exit 2
with one line naming `pip install -e ".[torch]"`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from . import app as cli  # the shared consoles and number formatting

FormatChoice = Literal["table", "json"]
DtypeChoice = Literal["float32", "float16", "bfloat16"]

TIMING_NOTE = (
    "Each stack runs as a torch.nn.Sequential (Conv2d/MaxPool2d/AvgPool2d with the exact fields; a ReLU after "
    "every conv unless --no-relu), each graph as a module that runs its nodes in order (a ReLU after each conv "
    "or its BatchNorm unless the graph writes relu nodes or --no-relu), timed with torch.utils.benchmark "
    "(warm-up, cudnn.benchmark on, CUDA synchronised, adaptive_autorange until IQR < 10% of the median or "
    "--max-time). Median and IQR are per step "
    "(one batch); GMAC/s = MACs per image x batch (x3 with --backward) / median. Needs PyTorch: "
    "pip install -e \".[torch]\".")

BENCH_SUMMARY = "Measured time of stacks and networks, next to their MACs."
BENCH_HELP = (
    "STACK is a compact string (c3x64,c3x64,c3x64), a JSON stack file or a graph JSON file; --arch NAME adds a "
    "known network (resnet18, mobilenet_v2, ...: `rfsweep archs`) after them. Ratios are against the first one "
    "(\"0.55x MACs, 0.81x time\"); a graph's MACs are those of every node, head included. The output names "
    "the device, torch/cuDNN versions, threads and load. "
    + TIMING_NOTE)

MEASURE_SUMMARY = "Measured time of a sweep's rows, written as new columns."
MEASURE_HELP = (
    "SWEEP is a sweep file, a front (pareto -o) or a directory of parts. Takes the first --top rows in file order, or the --top smallest by --sort-by (--descending: largest); each "
    "row's stack, or a block space's network of blocks, is rebuilt from the spec stored in the file (or a "
    "'stack' column). -o gets the same rows and "
    "columns plus latency_ms, latency_iqr_ms, gmacs_per_s and the setup in the metadata, so `rfsweep pareto OUT "
    "--minimize latency_ms` and `rfsweep show OUT ID` work. " + TIMING_NOTE)




# options shared by bench, measure and compare --measure
Device = Annotated[str, typer.Option(help="cpu, cuda or cuda:N")]
Batch = Annotated[int, typer.Option(help="images per timed step")]
Dtype = Annotated[DtypeChoice, typer.Option(help="float32, float16 or bfloat16")]
ChannelsLast = Annotated[bool, typer.Option("--channels-last", help="NHWC memory format for input and weights")]
Backward = Annotated[bool, typer.Option("--backward", help="time forward + backward (input and weight grads)")]
Threads = Annotated[Optional[int], typer.Option(help="torch intra-op threads [default: torch's own]")]
Relu = Annotated[bool, typer.Option("--relu/--no-relu", help="a ReLU after every conv")]
Warmup = Annotated[int, typer.Option(help="untimed steps before timing")]
MinTime = Annotated[float, typer.Option(help="seconds of timing per stack before the IQR may stop it")]
MaxTime = Annotated[float, typer.Option(help="seconds of timing per stack at most (one block always completes)")]
Rounds = Annotated[int, typer.Option(help="time every stack once per round, in turn (load drifts hit all alike)")]


def make_setup(device="cpu", batch=1, dtype="float32", channels_last=False, backward=False, threads=None,
               relu=True, warmup=2, min_time=0.2, max_time=2.0, rounds=1):
    """A checked BenchSetup from CLI values (RfsweepError on bad ones or without torch)."""
    from ..timing import BenchSetup, require_torch

    require_torch("timing")
    return BenchSetup(device=device, batch=batch, dtype=dtype, channels_last=channels_last, backward=backward,
                      threads=threads, relu=relu, warmup=warmup, min_run_time=min_time,
                      max_run_time=max_time, rounds=rounds).checked()


def setup_line(env: dict) -> str:
    """One line: where and how the times were measured."""
    extra = f", cuDNN {env['cudnn']}" if env.get("cudnn") else ""
    load = env.get("loadavg")
    load_text = f"; load {load[0]:.2f} before, {env['loadavg_after'][0]:.2f} after" if load and env.get(
        "loadavg_after") else ""
    return (f"{env['device']} ({env['device_name']}), {env['threads']} threads, torch {env['torch']}{extra}; "
            f"{env['dtype']}, batch {env['batch']}, {env['direction']}"
            f"{', channels_last' if env['channels_last'] else ''}{', ReLU after each conv' if env['relu'] else ''}"
            f"{load_text}")


def _progress(quiet: bool):
    if quiet:
        return None
    stderr = cli.stderr

    def show(index: int, count: int, text: str):
        stderr.print(f"timing {index + 1}/{count} {text}", markup=False)

    return show


def bench(
    stacks: Annotated[Optional[list[str]], typer.Argument(
        metavar="STACK", help="compact strings, JSON stack files or graph JSON files", show_default=False)] = None,
    arch: Annotated[Optional[list[str]], typer.Option(
        "--arch", help="a known network (repeatable; see `rfsweep archs`), timed after the STACKs",
        show_default=False)] = None,
    batch: Batch = 1,
    input_size: Annotated[Optional[str], typer.Option(
        help="input length on every axis, or one per axis (64_128_128) [default: the stack's or graph's, 224]")] = None,
    rank: Annotated[Optional[int], typer.Option(
        help="spatial axes of the STACKs: 1 (Conv1d), 2 or 3 (Conv3d) [default: the file's, else 2]")] = None,
    in_channels: Annotated[Optional[int], typer.Option(
        help="input channels [default: the stack's or graph's, 3]")] = None,
    dtype: Dtype = "float32",
    channels_last: ChannelsLast = False,
    backward: Backward = False,
    device: Device = "cpu",
    threads: Threads = None,
    relu: Relu = True,
    warmup: Warmup = 2,
    min_time: MinTime = 0.2,
    max_time: MaxTime = 2.0,
    rounds: Rounds = 1,
    format: Annotated[FormatChoice, typer.Option("--format", help="table for people, json for scripts")] = "table",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress lines")] = False,
):
    from ..timing import bench as run_bench
    from ..timing import ratio_text

    setup = make_setup(device, batch, dtype, channels_last, backward, threads, relu, warmup, min_time, max_time, rounds)
    from ..layers import parse_size

    result = run_bench(stacks or [], setup, parse_size(input_size), in_channels,
                       progress=_progress(quiet or format == "json"), archs=arch or [], rank=rank)
    if format == "json":
        print(json.dumps(result.as_dict()))
        return
    from .tables import Column, fit_table

    columns = [Column("network", text=True), Column("depth", 1), Column("params", 4), Column("MACs/image"),
               Column("median ms"), Column("IQR ms", 2), Column("GMAC/s", 3), Column("x MACs"), Column("x time")]
    table = fit_table(
        f"measured on {setup_line(result.environment)}", columns,
        [[row["stack"], str(row["depth"]), cli._fmt(row["params"]), cli._fmt(row["macs"]), f"{row['latency_ms']:.3f}",
          f"{row['latency_iqr_ms']:.3f}", f"{row['gmacs_per_s']:.1f}", f"{row['macs_ratio']:.2f}",
          f"{row['time_ratio']:.2f}"] for row in result.rows],
        f"x MACs / x time: against {result.rows[0]['stack']}; median and IQR of one step over "
        f"{min(r['steps'] for r in result.rows)}+ steps per network. MACs count one multiply-"
        "accumulate as 1 (bias adds not counted).")
    cli.stdout.print(table)
    for row in result.rows[1:]:
        cli.stdout.print(f"{row['stack']}: {ratio_text(row)} against {result.rows[0]['stack']}", markup=False)


def measure(
    source: Annotated[Path, typer.Argument(metavar="SWEEP", help="a sweep or front Parquet file, or a directory of parts")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the timed Parquet file to write", show_default=False)],
    top: Annotated[int, typer.Option(help="time this many rows (0: all)")] = 20,
    sort_by: Annotated[Optional[str], typer.Option(help="pick the --top smallest by this column [default: file order]")] = None,
    descending: Annotated[bool, typer.Option("--descending", help="with --sort-by: the largest instead")] = False,
    batch: Batch = 1,
    input_size: Annotated[Optional[int], typer.Option(help="time at this input size [default: the sweep's]")] = None,
    in_channels: Annotated[Optional[int], typer.Option(help="input channels [default: the sweep's; 3 for a 'stack' column]")] = None,
    dtype: Dtype = "float32",
    channels_last: ChannelsLast = False,
    backward: Backward = False,
    device: Device = "cpu",
    threads: Threads = None,
    relu: Relu = True,
    warmup: Warmup = 2,
    min_time: MinTime = 0.2,
    max_time: MaxTime = 2.0,
    rounds: Rounds = 1,
    allow_incomplete: Annotated[bool, typer.Option(
        "--allow-incomplete", help="accept a directory without the _rfsweep.json manifest of a finished run")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress lines, no summary")] = False,
):
    from ..errors import RfsweepError
    from ..timing import measure_file

    if top < 0:
        raise RfsweepError(f"--top must be >= 0, got {top}")
    setup = make_setup(device, batch, dtype, channels_last, backward, threads, relu, warmup, min_time, max_time, rounds)
    result = measure_file(source, output, setup, top=top, sort_by=sort_by, descending=descending,
                          input_size=input_size, in_channels=in_channels, allow_incomplete=allow_incomplete,
                          progress=_progress(quiet))
    if not quiet:
        latency = result.table.column("latency_ms").to_pylist()
        cli.stderr.print(f"wrote {result.rows:,} timed rows to {output} (latency {min(latency):.3f}-"
                         f"{max(latency):.3f} ms; {setup_line(result.timing)})", markup=False)


def measure_compare(rows: list[dict], input_size: int, in_channels: int, device="cpu", batch=1, dtype="float32",
                    threads=None, rank: int = 2) -> dict:
    """`compare --measure`: time compare's rows in place; returns the environment."""
    from ..timing import time_compare_rows

    setup = make_setup(device, batch, dtype, threads=threads)
    return time_compare_rows(rows, input_size, in_channels, setup, rank=rank)


def print_compare_timing(rows: list[dict], env: dict) -> None:
    """The measured companion of compare's table: time next to MACs, both against the single conv."""
    from .tables import Column, fit_table

    columns = [Column("", text=True), Column("stack", text=True), Column("MACs", 3), Column("x MACs"),
               Column("median ms"), Column("IQR ms", 1), Column("GMAC/s", 2), Column("x time")]
    table_rows = []
    for row in rows:
        mark = "best" if row.get("best") else "single" if row.get("single") else ""
        table_rows.append([mark, row["stack"], cli._fmt(row["macs"]), f"{row['macs_ratio']:.3f}",
                           f"{row['latency_ms']:.3f}", f"{row['latency_iqr_ms']:.3f}", f"{row['gmacs_per_s']:.1f}",
                           f"{row['time_ratio']:.3f}"])
    table = fit_table(f"measured on {setup_line(env)}", columns, table_rows,
                      "x MACs / x time: against the single conv; median and IQR of one step (one batch).")
    cli.stdout.print(table)
    single = next((row for row in rows if row.get("single")), rows[0])
    for row in rows:
        if row.get("best") and row is not single:
            cli.stdout.print(f"best {row['stack']}: {row['macs_ratio']:.2f}x MACs, {row['time_ratio']:.2f}x time "
                             f"against {single['stack']}", markup=False)


def register(app: typer.Typer) -> None:
    """Add `bench` and `measure` to the rfsweep Typer app."""
    cli.add_command(app, bench, BENCH_SUMMARY, BENCH_HELP, [
        "rfsweep bench c7x32 c3x32,c3x32,c3x32 --input-size 56",
        "rfsweep bench --arch resnet18 --arch mobilenet_v2 --threads 1",
        "rfsweep bench c3x64,c3x64 --device cuda --dtype float16 --batch 32"])
    cli.add_command(app, measure, MEASURE_SUMMARY, MEASURE_HELP, [
        "rfsweep measure front.parquet --top 10 -o timed.parquet",
        "rfsweep measure sweep.parquet --top 50 --sort-by macs --batch 8 -o timed.parquet"])
