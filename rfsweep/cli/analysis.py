"""`rfsweep compare` and `rfsweep pareto`: parse flags, call rfsweep.analysis, print.

Wire them into the main app with `register(app)` (rfsweep/cli/__init__.py). Errors are
RfsweepError, which the entry point turns into one line on stderr and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from . import app as cli  # the shared consoles and number formatting

from .timing import Batch, Device, Dtype, Threads
from ..errors import RfsweepError

FormatChoice = Literal["table", "json"]
COST_NOTE = "MACs count one multiply-accumulate as 1 (bias adds not counted); FLOPs = 2*MACs."

COMPARE_HELP = (
    "One RxR conv against every stack of smaller convs with the same receptive field R.\n\n"
    "All convs: stride 1, 'same' padding, C channels in and out (the first takes --in-channels). "
    "Candidates use kernels from --kernels and dilations from --dilation, at most --max-depth layers; "
    "layer order does not change RF or params at stride 1, so each multiset appears once. "
    "Shows params and MACs (also as ratios to the single conv), depth (= nonlinearities) and the "
    "uniform-weight ERF std and ratio; the cheapest row is marked. " + COST_NOTE)

PARETO_HELP = (
    "Exact Pareto front of a sweep file (or a directory of parts): the rows that no other row beats "
    "in every objective.\n\n"
    "Reads only config_id and the objective columns, optionally filtered with --where "
    "(e.g. \"out_size>=7, rf<=100\"; clauses 'column OP number' joined by ',' or 'and', OP one of "
    ">= <= > < == !=), then the full rows of the front. Rows with identical objectives are all kept. "
    "-o writes the whole front (same columns and spec metadata as the sweep, so `rfsweep show` "
    "works on it); --top limits only what is printed. " + COST_NOTE)




def compare(
    rf: Annotated[int, typer.Option("--rf", help="target receptive field R in pixels", show_default=False)],
    channels: Annotated[int, typer.Option(help="channels C of every conv")] = 64,
    in_channels: Annotated[Optional[int], typer.Option(help="channels into the first conv [default: C]")] = None,
    max_depth: Annotated[int, typer.Option(help="most layers in a candidate stack")] = 4,
    kernels: Annotated[Optional[str], typer.Option(help="kernel sizes to stack, e.g. 3,5 or 2-5 "
                                                   "[default: 3,5,7 where smaller than R]")] = None,
    dilation: Annotated[str, typer.Option(help="dilations to try, e.g. 1,2")] = "1",
    input_size: Annotated[int, typer.Option(help="input height = width, for MACs")] = 56,
    format: Annotated[FormatChoice, typer.Option("--format", help="table for people, json for scripts")] = "table",
    plot: Annotated[Optional[Path], typer.Option(help="also draw params ratios to this PNG (needs rfsweep[plot])")] = None,
    measure: Annotated[bool, typer.Option("--measure", help="also time every row with torch (see `rfsweep bench`)")] = False,
    device: Device = "cpu",
    batch: Batch = 1,
    dtype: Dtype = "float32",
    threads: Threads = None,
):
    from ..analysis import compare as compare_stacks
    from ..analysis import default_kernels
    from ..grid import parse_int_list

    kernel_list = default_kernels(rf) if kernels is None else parse_int_list(kernels, "--kernels")
    dilation_list = parse_int_list(dilation, "--dilation")
    rows = compare_stacks(rf, channels, max_depth, kernel_list, dilation_list, input_size, in_channels)
    timing = None
    if measure:
        from .timing import measure_compare
        timing = measure_compare(rows, input_size, channels if in_channels is None else in_channels,
                                 device, batch, dtype, threads)
    if plot is not None:
        from ..plots import plot_compare
        plot_compare(rows, plot)
    if format == "json":
        print(json.dumps({"rf": rf, "channels": channels,
                          "in_channels": channels if in_channels is None else in_channels,
                          "input_size": input_size, "max_depth": max_depth, "kernels": kernel_list,
                          "dilations": dilation_list, "rows": rows, **({"timing": timing} if timing else {})}))
        return
    from rich.table import Table

    c_in = channels if in_channels is None else in_channels
    table = Table(title=f"RF {rf}: one {rf}x{rf} conv vs stacks of at most {max_depth} smaller convs "
                        f"(--max-depth {max_depth}; kernels {','.join(map(str, kernel_list))}; "
                        f"{c_in}->{channels} ch, {input_size}x{input_size} input, stride 1)",
                  title_justify="left")
    for name in ("", "stack", "depth", "params", "x params", "MACs", "x MACs", "ERF std", "ERF ratio"):
        table.add_column(name, justify="left" if name in ("", "stack") else "right")
    for row in rows:
        mark = "best" if row["best"] else "single" if row["single"] else ""
        table.add_row(mark, row["stack"], str(row["depth"]), cli._fmt(row["params"]), f"{row['params_ratio']:.3f}",
                      cli._fmt(row["macs"]), f"{row['macs_ratio']:.3f}", f"{row['erf_std']:.3f}",
                      f"{row['erf_ratio']:.3f}")
    table.caption = ("x params / x MACs: against the single conv; depth = nonlinearities; ERF: uniform weights, "
                     "no nonlinearity (std in pixels, ratio to a uniform RF). " + COST_NOTE
                     + ("" if len(rows) > 1 or rf <= 3 else f" No stack of at most {max_depth} of these kernels reaches RF "
                        f"{rf}: raise --max-depth or give --kernels."))
    table.caption_justify = "left"
    cli.stdout.print(table)
    if timing is not None:
        from .timing import print_compare_timing
        print_compare_timing(rows, timing)


def _stack_strings(metadata: dict | None, ids) -> list[str] | None:
    """Compact strings of config_ids, rebuilt from the spec in the sweep's metadata."""
    if not metadata or not isinstance(metadata.get("spec"), dict):
        return None
    if "stage" in metadata["spec"]:  # a block space (blocks.py): one short line per network
        from ..blocks import BlockSpec
        spec = BlockSpec.build(metadata["spec"])
        return [spec.describe(int(i)) for i in ids]
    from ..grid import GridSpec
    from ..layers import build_stack

    spec = GridSpec.build(metadata["spec"])
    return [build_stack(spec.layers_of(int(i)), spec.input_size, spec.in_channels).compact() for i in ids]


def pareto(
    sweep_file: Annotated[Path, typer.Argument(metavar="SWEEP", help="a sweep Parquet file, or a directory of Parquet parts")],
    minimize: Annotated[str, typer.Option(help="columns to minimize, comma separated")] = "params,macs",
    maximize: Annotated[str, typer.Option(help="columns to maximize, comma separated ('' for none)")] = "rf",
    where: Annotated[Optional[str], typer.Option(help="filter first, e.g. \"out_size>=7, rf<=100\"")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="write the whole front to this Parquet file")] = None,
    top: Annotated[int, typer.Option(help="print the best N rows of the front (0: all)")] = 20,
    plot: Annotated[Optional[Path], typer.Option(help="also draw the front over a sample of all rows to this PNG")] = None,
    allow_incomplete: Annotated[bool, typer.Option(
        "--allow-incomplete", help="accept a directory without the _rfsweep.json manifest of a finished run")] = False,
    format: Annotated[FormatChoice, typer.Option("--format", help="table for people, json for scripts")] = "table",
):
    from ..analysis import column_names, pareto_scan, write_front

    if top < 0:
        raise RfsweepError(f"--top must be >= 0, got {top}")
    names = column_names(minimize, "--minimize") + column_names(maximize, "--maximize")
    plot_columns: tuple[str, ...] = ()
    if plot is not None and names:
        maxima = column_names(maximize, "--maximize")
        x = names[0]
        y = maxima[0] if maxima and maxima[0] != x else (names[1] if len(names) > 1 else x)
        plot_columns = (x, y)
    result = pareto_scan(sweep_file, minimize, maximize, where, allow_incomplete=allow_incomplete,
                         sample=20_000 if plot_columns else 0, plot_columns=plot_columns)
    front = result.front
    if output is not None:
        write_front(front, output)
    if plot_columns:
        from ..plots import plot_front
        plot_front(result.sample, front, plot, *plot_columns)
    shown = front.head(top) if top else front
    stacks = _stack_strings(result.metadata, shown["config_id"])
    pareto_meta = result.metadata["pareto"]
    if format == "json":
        records = json.loads(shown.to_json(orient="records"))
        for record, text in zip(records, stacks or []):
            record["stack"] = text
        print(json.dumps({**{k: pareto_meta[k] for k in ("source", "minimize", "maximize", "where",
                                                          "rows_considered", "front_rows")},
                          "shown": len(records), "rows": records}))
        return
    from rich.table import Table

    objectives = ", ".join([f"min {n}" for n in pareto_meta["minimize"]] + [f"max {n}" for n in pareto_meta["maximize"]])
    table = Table(title=f"Pareto front of {sweep_file} ({objectives})", title_justify="left")
    columns = list(dict.fromkeys(["config_id", "depth", *names, "rf", "jump", "out_size", "params", "macs"]))
    columns = [c for c in columns if c in front.columns]
    for name in columns:
        table.add_column(name, justify="right")
    if stacks is not None:
        table.add_column("stack", justify="left")
    values = {c: shown[c].tolist() for c in columns}  # per column: integers stay integers
    for i in range(len(shown)):
        cells = [cli._fmt(_plain(values[c][i])) for c in columns]
        table.add_row(*cells, *([stacks[i]] if stacks is not None else []))
    table.caption = (f"{pareto_meta['front_rows']:,} of {pareto_meta['rows_considered']:,} rows are on the front"
                     + (f" (where {where})" if where else "")
                     + (f"; showing the first {len(shown):,} (--top)" if len(shown) < len(front) else "")
                     + (f"; written to {output}" if output is not None else ""))
    table.caption_justify = "left"
    cli.stdout.print(table)


def _plain(value):
    """Floats (erf columns) to 4 decimals for the table."""
    return round(value, 4) if isinstance(value, float) else value


def register(app: typer.Typer) -> None:
    """Add `compare` and `pareto` to the rfsweep Typer app."""
    app.command(help=COMPARE_HELP)(compare)
    app.command(help=PARETO_HELP)(pareto)
