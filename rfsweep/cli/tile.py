"""`rfsweep tile`: the tiles, halo and alignment that make tiled inference equal whole-image inference."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from .app import Format, _fail, add_command, stdout

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
    input_size: Annotated[Optional[int], typer.Option(help="input height = width N [default: the network's]")] = None,
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
    from ..tile import tile_plan

    if sum(item is not None for item in (stack, arch, torch_target)) != 1:
        _fail("give exactly one of STACK, --arch NAME or --torch TARGET")
    if tile_size is None and max_memory is None:
        _fail("give --tile T (and/or --max-memory)")
    if arch is not None:
        from ..architectures import arch_path
        stack = str(arch_path(arch))
    if torch_target is not None:
        try:
            import torch  # noqa: F401 - only to say how to get it
        except ImportError:
            _fail('--torch needs PyTorch: pip install -e ".[torch]"')
        from ..torch_import import from_torch, load_target
        source = load_graph(from_torch(load_target(torch_target), input_size=input_size or 224,
                                       in_channels=in_channels or 3))
    else:
        source = load_graph(stack, input_size, in_channels)
    plan = tile_plan(source, tile=tile_size, end_point=end_point, max_memory=max_memory, dtype=dtype)
    if format is Format.json:
        print(json.dumps(plan))
        return
    for line in plan_lines(plan):
        stdout.print(line, markup=False)


def _axes(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, list) else f"{value}x{value}"


def plan_lines(plan: dict) -> list[str]:
    """The plan in a few lines and a short table of its tiles."""
    (top, bottom), (left, right) = plan["halo"]
    tiles = plan["tiles"]
    lines = [f"input {_axes(plan['input_size'])} -> output {_axes(plan['output_size'])} "
             f"(scale {_axes(plan['scale_fraction'])}, rf {_axes(plan['rf'])})",
             f"multiple {_axes(plan['multiple'])}: tile origins and sizes are multiples of it",
             f"halo: top {top}, bottom {bottom}, left {left}, right {right} input pixels around each "
             f"{_axes(plan['tile'])} tile",
             f"{len(tiles)} tiles; stitched, they equal the whole-image output exactly"]
    if "peak_bytes" in plan:
        lines.append(f"peak activation memory per tile: {plan['peak_bytes']:,} bytes at {plan['dtype']} "
                     f"(budget {plan['max_memory']:,})")
    lines.append(f"{'read rows':>14} {'read cols':>14} {'keep rows':>14} {'keep cols':>14} "
                 f"{'into rows':>14} {'into cols':>14}")
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
