"""`rfsweep draw` and `rfsweep report`: parse flags, call rfsweep.draw / rfsweep.report.

Wire them into the main app with `register(app)` (rfsweep/cli/__init__.py). Both need
the `plot` extra; without it they exit 2 with the install command. Bad input
is RfsweepError: one line on stderr, exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from .app import InputSizeOption, RankOption

ModeChoice = Literal["auto", "grid", "schematic"]

DRAW_SUMMARY = "A picture of how one unit's receptive field grows, layer by layer."
DRAW_HELP = (
    "Every feature map as a grid of cells (input at the "
    "bottom, padding cells shaded), one unit of the top map highlighted and its footprint traced down "
    "to the input, window by window, with stride and dilation gaps.\n\n"
    "OUT is .png, .svg or .gif (the .gif steps layer by layer). Small inputs (every map with its "
    "padding at most 32 cells a side, at most 8 layers) are drawn as grids; larger or deeper "
    "networks as a schematic: one row per layer on the input-pixel axis, the RF of a traced unit as "
    "a bar and the layer's unit centres as ticks spaced by its jump. Multi-path networks (a JSON graph "
    "with \"nodes\") are drawn as a schematic with one row per node that --end-point reads from. "
    "Needs the plot extra: pip install -e \".[plot]\".")

REPORT_SUMMARY = "One offline HTML page about a sweep: fronts, histograms, top rows."
REPORT_HELP = (
    "SWEEP is a sweep file or a directory of parts. The page has counts and spec, the "
    "exact Pareto fronts of params and of MACs against RF (hover: the stack; click: its explain "
    "table), RF and params distributions by depth, stack-vs-large-kernel comparisons for RFs in "
    "the sweep, and the top rows as a sortable table.\n\n"
    "Everything (plotly.js included) is inlined: the page opens offline. Background clouds are "
    "sampled; fronts and distributions are exact. Needs the plot extra: pip install -e \".[plot]\". MACs count one "
    "multiply-accumulate as 1 (bias adds not counted); FLOPs = 2*MACs.")


def draw(
    output: Annotated[Path, typer.Option("-o", "--output", help="image to write: .png, .svg or .gif",
                                         show_default=False)],
    stack: Annotated[Optional[str], typer.Argument(
        metavar="STACK", help="compact string (e.g. c3x8,c3x8,c3x8), a JSON stack file or a JSON graph file",
        show_default=False)] = None,
    arch: Annotated[Optional[str], typer.Option(help="a known network instead of STACK (see `rfsweep archs`)")] = None,
    torch_target: Annotated[Optional[str], typer.Option(
        "--torch", help="your PyTorch model instead of STACK: package.module:callable or path/to/file.py:callable "
                        "(the callable returns an nn.Module; needs the torch extra)")] = None,
    input_size: InputSizeOption = None,
    rank: RankOption = None,
    plane: Annotated[Optional[str], typer.Option(
        help="3-D networks: the plane drawn, height,width | depth,height | depth,width [default: height,width]",
        show_default=False)] = None,
    in_channels: Annotated[Optional[int], typer.Option(help="input channels [default: 3]")] = None,
    unit: Annotated[Optional[str], typer.Option(help="row,column of the traced unit in the top map, 0-based "
                                                     "[default: the centre]")] = None,
    mode: Annotated[ModeChoice, typer.Option(help="grid, schematic, or auto (grid for small maps)")] = "auto",
    end_point: Annotated[Optional[str], typer.Option(
        help="multi-path networks: trace a unit of this node [default: the network's output]")] = None,
):
    from ..draw import draw as draw_picture, parse_unit
    from ..layers import parse_size
    from .app import network_source

    input_size = parse_size(input_size)
    source, name = network_source(stack, arch, torch_target, input_size, in_channels, rank, end_point)
    if torch_target is not None:  # traced at that size already
        input_size = in_channels = None
    drawing = draw_picture(source, output, unit=parse_unit(unit), input_size=input_size,
                           in_channels=in_channels, mode=mode, end_point=end_point, name=name, rank=rank,
                           plane=plane)
    rows, cols = drawing.inside(0)
    seen = (f"input rows {rows[0]}..{rows[-1]}, cols {cols[0]}..{cols[-1]}" if rows and cols
            else "only padding")
    i, j = drawing.unit
    where = f"node {drawing.names[-1]!r}" if drawing.names else f"layer {len(drawing.sizes) - 1}"
    print(f"wrote {output} ({drawing.mode}): unit ({i}, {j}) of {where} sees {seen}")


def report(
    sweep_file: Annotated[Path, typer.Argument(metavar="SWEEP", help="a sweep Parquet file, or a directory of parts")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write", show_default=False)],
    top: Annotated[int, typer.Option(min=1, max=10_000, help="rows in the sortable table")] = 50,
    sample: Annotated[int, typer.Option(min=0, max=20_000, help="background points per front plot")] = 1500,
    allow_incomplete: Annotated[bool, typer.Option(
        "--allow-incomplete", help="accept a directory without the manifest of a finished run")] = False,
):
    from ..report import write_report

    info = write_report(sweep_file, output, top=top, sample=sample, allow_incomplete=allow_incomplete)
    print(f"wrote {output} ({info['bytes'] / 1e6:.2f} MB): {info['rows']:,} rows, fronts of "
          f"{info['front_params']} (params) and {info['front_macs']} (MACs) rows")


def register(app: typer.Typer) -> None:
    """Add `draw` and `report` to the rfsweep Typer app."""
    from .app import add_command

    add_command(app, draw, DRAW_SUMMARY, DRAW_HELP, [
        "rfsweep draw c3x8,c3x8,c3x8 --input-size 7 -o rf.png",
        "rfsweep draw c3d2x8,c3d2x8 --input-size 9 -o dilated.gif",
        "rfsweep draw --arch resnet18 -o resnet18.svg",
        "rfsweep draw --arch unet3d --plane depth,height -o unet3d.png"])
    add_command(app, report, REPORT_SUMMARY, REPORT_HELP, ["rfsweep report sweep.parquet -o report.html"])
