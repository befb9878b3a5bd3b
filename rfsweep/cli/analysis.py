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

from .tables import Column, fit_table
from .timing import Batch, Device, Dtype, Threads
from ..errors import RfsweepError

FormatChoice = Literal["table", "json"]
COST_NOTE = "MACs count one multiply-accumulate as 1 (bias adds not counted); FLOPs = 2*MACs."

COMPARE_SUMMARY = "One RxR conv against stacks of smaller convs with the same RF."
COMPARE_HELP = (
    "All convs: stride 1, 'same' padding, C channels in and out (the first takes --in-channels). "
    "Candidates use kernels from --kernels and dilations from --dilation, at most --max-depth layers; "
    "layer order does not change RF or params at stride 1, so each multiset appears once. "
    "Shows params and MACs (also as ratios to the single conv), depth (= nonlinearities) and the "
    "uniform-weight ERF std and ratio; the cheapest row is marked. " + COST_NOTE)

PARETO_SUMMARY = "The exact Pareto front of a sweep file."
PARETO_HELP = (
    "The rows that no other row beats in every objective. SWEEP is a sweep file, a front, or a directory of parts. Reads only config_id and the objective columns, optionally filtered with --where "
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
    input_size: Annotated[int, typer.Option(help="input length on every axis, for MACs")] = 56,
    rank: Annotated[int, typer.Option(help="spatial axes: 1 (an R-tap conv), 2 (RxR) or 3 (RxRxR)")] = 2,
    format: Annotated[FormatChoice, typer.Option("--format", help="table for people, json for scripts")] = "table",
    plot: Annotated[Optional[Path], typer.Option(help="also draw params ratios to this PNG (needs the plot extra)")] = None,
    measure: Annotated[bool, typer.Option("--measure", help="also time every row with torch (see `rfsweep bench`)")] = False,
    device: Device = "cpu",
    batch: Batch = 1,
    dtype: Dtype = "float32",
    threads: Threads = None,
):
    from ..compare import compare as compare_stacks
    from ..compare import default_kernels
    from ..grid import parse_int_list

    kernel_list = default_kernels(rf) if kernels is None else parse_int_list(kernels, "--kernels")
    dilation_list = parse_int_list(dilation, "--dilation")
    rows = compare_stacks(rf, channels, max_depth, kernel_list, dilation_list, input_size, in_channels, rank)
    timing = None
    if measure:
        from .timing import measure_compare
        timing = measure_compare(rows, input_size, channels if in_channels is None else in_channels,
                                 device, batch, dtype, threads, rank)
    if plot is not None:
        from ..plots import plot_compare
        plot_compare(rows, plot)
    if format == "json":
        print(json.dumps({"rf": rf, "channels": channels,
                          "in_channels": channels if in_channels is None else in_channels,
                          "input_size": input_size, **({"rank": rank} if rank != 2 else {}),
                          "max_depth": max_depth, "kernels": kernel_list,
                          "dilations": dilation_list, "rows": rows, **({"timing": timing} if timing else {})}))
        return
    c_in = channels if in_channels is None else in_channels
    columns = [Column("", text=True), Column("stack", text=True), Column("depth", 4), Column("params", 3),
               Column("x params", 2), Column("MACs", 5), Column("x MACs"), Column("ERF std", 1),
               Column("ERF ratio", 6)]
    table_rows = []
    for row in rows:
        mark = "best" if row["best"] else "single" if row["single"] else ""
        table_rows.append([mark, row["stack"], str(row["depth"]), cli._fmt(row["params"]),
                           f"{row['params_ratio']:.3f}", cli._fmt(row["macs"]), f"{row['macs_ratio']:.3f}",
                           f"{row['erf_std']:.3f}", f"{row['erf_ratio']:.3f}"])
    caption = ("x params / x MACs: against the single conv; depth = nonlinearities; ERF: uniform weights, "
               "no nonlinearity (std in pixels, ratio to a uniform RF). " + COST_NOTE
               + ("" if len(rows) > 1 or rf <= 3 else " " + _unreachable(rf, max_depth, kernel_list, dilation_list)))
    single = f"{rf}-tap" if rank == 1 else "x".join([str(rf)] * rank)
    table = fit_table(f"RF {rf}: one {single} conv vs stacks of at most {max_depth} smaller convs "
                      f"(--max-depth {max_depth}; kernels {','.join(map(str, kernel_list))}; "
                      f"{c_in}->{channels} ch, {'x'.join([str(input_size)] * rank)} input, stride 1)",
                      columns, table_rows, caption)
    cli.stdout.print(table)
    if timing is not None:
        from .timing import print_compare_timing
        print_compare_timing(rows, timing)


def _unreachable(rf: int, max_depth: int, kernels: list[int], dilations: list[int]) -> str:
    """Why compare found no stack: the kernels can never sum to R, or only with more layers."""
    from math import gcd

    need = rf - 1  # each stride-1 layer adds d*(k-1) to the RF
    steps = sorted({d * (k - 1) for k in kernels for d in dilations if k > 1 and (k, d) != (rf, 1)})
    if not steps:
        return f"No kernel in --kernels is larger than 1 (besides {rf} itself): give smaller kernels, e.g. 3,5."
    step_gcd = 0
    for step in steps:
        step_gcd = gcd(step_gcd, step)
    if need % step_gcd:
        hint = " (e.g. --kernels 2,3)" if step_gcd == 2 else ""
        return (f"No stack of these kernels reaches RF {rf} at any depth: each layer adds d*(k-1), a multiple "
                f"of {step_gcd}, so they reach only RFs 1 + {step_gcd}n; give other kernels{hint}.")
    fewest = [0] + [need + 1] * need  # fewest layers summing to each RF - 1 (exact change)
    for total in range(1, need + 1):
        fewest[total] = min((fewest[total - step] + 1 for step in steps if step <= total), default=need + 1)
    if fewest[need] > max_depth:
        return (f"No stack of at most {max_depth} of these kernels reaches RF {rf}: "
                f"raise --max-depth to {fewest[need]}.")
    return f"No stack of at most {max_depth} of these kernels reaches RF {rf}."


def _stack_strings(metadata: dict | None, ids) -> list[str] | None:
    """Compact strings of config_ids, rebuilt from the spec in the sweep's metadata."""
    if not metadata or not isinstance(metadata.get("spec"), dict):
        return None
    from ..space import spec_from_dict

    spec = spec_from_dict(metadata["spec"])  # a chain's compact string, a block space's short line
    return [spec.describe(int(i)) for i in ids]


def pareto(
    sweep_file: Annotated[Path, typer.Argument(metavar="SWEEP", help="a sweep Parquet file, or a directory of Parquet parts")],
    minimize: Annotated[str, typer.Option(help="columns to minimize, comma separated")] = "params,macs",
    maximize: Annotated[str, typer.Option(help="columns to maximize, comma separated ('' for none)")] = "rf",
    where: Annotated[Optional[str], typer.Option(help="filter first, e.g. \"out_size>=7, rf<=100\"; text columns "
                                                               "take == or != a word: \"padding==valid\"")] = None,
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
    if plot is not None and names:  # one panel per minimised objective against the first maximised one
        maxima = column_names(maximize, "--maximize")
        minima = column_names(minimize, "--minimize")
        y = maxima[0] if maxima else minima[-1]
        panels = [name for name in minima if name != y] or [name for name in names if name != y][:1] or [y]
        plot_columns = (*panels, y)
    result = pareto_scan(sweep_file, minimize, maximize, where, allow_incomplete=allow_incomplete,
                         sample=20_000 if plot_columns else 0, plot_columns=plot_columns)
    front = result.front
    if output is not None:
        write_front(front, output)
    if plot_columns:
        from ..plots import plot_front
        plot_front(result.sample, front, plot, list(plot_columns[:-1]), plot_columns[-1])
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
    objectives = ", ".join([f"min {n}" for n in pareto_meta["minimize"]] + [f"max {n}" for n in pareto_meta["maximize"]])
    names_set = set(names)
    columns = list(dict.fromkeys(["config_id", "depth", *names, "rf", "jump", "out_size", "params", "macs"]))
    columns = [c for c in columns if c in front.columns]
    # left out first when the terminal is narrow: what is not an objective (jump, out size, depth, ...)
    spare = [c for c in ("jump", "out_size", "depth", "macs", "params", "rf") if c in columns and c not in names_set]
    spec = [Column(c, spare.index(c) + 1 if c in spare else 0) for c in columns]
    if stacks is not None:
        spec.append(Column("stack", text=True))
    values = {c: shown[c].tolist() for c in columns}  # per column: integers stay integers
    table_rows = [[cli._fmt(_plain(values[c][i])) for c in columns] + ([stacks[i]] if stacks is not None else [])
                  for i in range(len(shown))]
    caption = (f"{pareto_meta['front_rows']:,} of {pareto_meta['rows_considered']:,} rows are on the front"
               + (f" (where {where})" if where else "")
               + (f"; showing the first {len(shown):,} (--top)" if len(shown) < len(front) else "")
               + (f"; written to {output}" if output is not None else ""))
    table = fit_table(f"Pareto front of {sweep_file} ({objectives})", spec, table_rows, caption)
    cli.stdout.print(table)


def _plain(value):
    """Floats (erf columns) to 4 decimals for the table; a per-axis cell as explain writes it (19x39x39)."""
    if hasattr(value, "tolist") and not isinstance(value, (int, float)):
        return "x".join(str(_plain(v)) for v in value.tolist())
    return round(value, 4) if isinstance(value, float) else value


def register(app: typer.Typer) -> None:
    """Add `compare` and `pareto` to the rfsweep Typer app."""
    cli.add_command(app, compare, COMPARE_SUMMARY, COMPARE_HELP, [
        "rfsweep compare --rf 7 --channels 64",
        "rfsweep compare --rf 9 --kernels 3,5 --dilation 1,2 --format json",
        "rfsweep compare --rf 7 --measure --threads 1"])
    cli.add_command(app, pareto, PARETO_SUMMARY, PARETO_HELP, [
        "rfsweep pareto sweep.parquet",
        "rfsweep pareto sweep.parquet --minimize params --maximize rf --where \"out_size>=7\" -o front.parquet",
        "rfsweep pareto timed.parquet --minimize latency_ms --maximize rf --plot front.png"])
