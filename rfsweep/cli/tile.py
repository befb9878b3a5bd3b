"""`rfsweep tile`: the tiles, halo and alignment that make tiled inference equal whole-image inference."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from .app import Format, InputSizeOption, RankOption, _fail, add_command, network_source, stdout

TILE_SUMMARY = "Tiles and halo that make tiled inference equal the whole image."
TILE_HELP = ("Cuts an N x N input into tiles of about T x T so that running the network "
             "on each tile and stitching the kept parts equals running it on the whole image. Prints the alignment every tile origin and size follows (multiple), the halo of input pixels added "
             "around each tile (the smallest that is sufficient and aligned) and, per tile, the input rows/cols to "
             "read, the rows/cols of its output to keep and where they go in the whole output (half-open ranges). "
             "With --max-memory the tile is the largest whose peak activation memory (batch 1, at --dtype) fits.")


def tile(
    stack: Annotated[Optional[str], typer.Argument(
        metavar="STACK", help="compact string or a JSON stack/graph file", show_default=False)] = None,
    tile_size: Annotated[Optional[int], typer.Option("--tile", help="tile size T in input pixels (about; rounded "
                                                     "to the network's multiple)")] = None,
    input_size: InputSizeOption = None,
    rank: RankOption = None,
    in_channels: Annotated[Optional[int], typer.Option(help="input channels [default: the network's]")] = None,
    arch: Annotated[Optional[str], typer.Option(help="a known network instead of STACK (see `rfsweep archs`)")] = None,
    torch_target: Annotated[Optional[str], typer.Option(
        "--torch", help="your PyTorch model: package.module:callable or path/to/file.py:callable")] = None,
    end_point: Annotated[Optional[str], typer.Option(help="tile up to this node [default: the output]")] = None,
    max_memory: Annotated[Optional[str], typer.Option(
        help="largest tile whose peak activation memory fits, e.g. 8GB or 512MiB")] = None,
    dtype: Annotated[str, typer.Option(help="activation dtype for --max-memory: float16, bfloat16, float32, "
                                            "float64")] = "float32",
    format: Annotated[Format, typer.Option("--format", help="table for people, json for scripts")] = Format.table,
):
    from ..graph import load_graph
    from ..layers import parse_size
    from ..tile import tile_plan

    if tile_size is None and max_memory is None:
        _fail("give --tile T (and/or --max-memory)")
    input_size = parse_size(input_size)
    source, _ = network_source(stack, arch, torch_target, input_size, in_channels, rank, end_point)
    source = (load_graph(source, rank=rank) if torch_target is not None
              else load_graph(source, input_size, in_channels, rank))
    plan = tile_plan(source, tile=tile_size, end_point=end_point, max_memory=max_memory, dtype=dtype)
    if format is Format.json:
        print(json.dumps(plan))
        return
    for line in plan_lines(plan):
        stdout.print(line, markup=False)


def _axes(value, rank: int) -> str:
    return "x".join(map(str, value)) if isinstance(value, list) else "x".join([str(value)] * rank)


def plan_lines(plan: dict) -> list[str]:
    """The plan in a few lines and a short table of its tiles."""
    halo = plan["halo"]
    names = {1: ("left", "right"), 2: ("top", "bottom", "left", "right"),
             3: ("front", "back", "top", "bottom", "left", "right")}[len(halo)]
    sides = ", ".join(f"{name} {value}" for name, value in zip(names, (v for pair in halo for v in pair)))
    tiles = plan["tiles"]
    rank = len(halo)
    lines = [f"input {_axes(plan['input_size'], rank)} -> output {_axes(plan['output_size'], rank)} "
             f"(scale {_axes(plan['scale_fraction'], rank)}, rf {_axes(plan['rf'], rank)})",
             f"multiple {_axes(plan['multiple'], rank)}: tile origins and sizes are multiples of it",
             f"halo: {sides} input pixels around each {_axes(plan['tile'], rank)} tile",
             f"{len(tiles)} tiles; stitched, they equal the whole-image output exactly"]
    if "peak_bytes" in plan:
        lines.append(f"peak activation memory per tile: {plan['peak_bytes']:,} bytes at {plan['dtype']} "
                     f"(budget {plan['max_memory']:,})")
    axes = {1: ("",), 2: (" rows", " cols"), 3: (" depth", " rows", " cols")}[rank]
    lines.append(" ".join(f"{key + axis:>14}" for key in ("read", "keep", "into") for axis in axes))
    shown = tiles if len(tiles) <= 12 else tiles[:6] + [None] + tiles[-5:]
    for t in shown:
        if t is None:
            lines.append(f"{'...':>14}")
            continue
        cells = [f"{a}:{b}" for key in ("read", "keep", "into") for a, b in t[key]]
        lines.append(" ".join(f"{cell:>14}" for cell in cells))
    return lines


def register(app: typer.Typer) -> None:
    """Add `tile` to `app`."""
    add_command(app, tile, TILE_SUMMARY, TILE_HELP, [
        "rfsweep tile --arch unet_same --input-size 512 --tile 256",
        "rfsweep tile --torch examples/unet.py:unet --input-size 1024 --in-channels 1 --tile 512",
        "rfsweep tile --arch unet --max-memory 8GB --dtype float16 --format json"])
