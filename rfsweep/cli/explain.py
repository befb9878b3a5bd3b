"""`rfsweep explain` and `rfsweep archs`: one network, layer by layer or node by node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..layers import COMPACT_GRAMMAR
from .app import Format, InputSizeOption, RankOption, _fmt, add_command, network_source, stdout
from .tables import Column, _explain_table, _graph_table, fit_table

EXPLAIN_SUMMARY = "RF, jump, params and MACs of a stack, network or model, per layer."
EXPLAIN_HELP = ("STACK is a compact string, or a JSON file: a list of layers, or a graph with \"nodes\" "
                "(residual, inception, dense: see docs/reference.md). Graphs also report rf_min (the narrowest "
                "path) and the layers that are unproductive for the input size.\n\n"
                "\b\n" + COMPACT_GRAMMAR)  # \b: click keeps the grammar's lines as written


def explain(
    stack: Annotated[Optional[str], typer.Argument(
        metavar="STACK", help="compact string (e.g. c3x64,c3x64,c3x64) or a JSON stack/graph file", show_default=False)] = None,
    input_size: InputSizeOption = None,
    rank: RankOption = None,
    in_channels: Annotated[Optional[int], typer.Option(help="input channels [default: 3]")] = None,
    arch: Annotated[Optional[str], typer.Option(help="a known network instead of STACK (see `rfsweep archs`)")] = None,
    torch_target: Annotated[Optional[str], typer.Option(
        "--torch", help="your PyTorch model instead of STACK: package.module:callable or path/to/file.py:callable "
                        "(the callable returns an nn.Module; needs the torch extra: pip install -e \".[torch]\")")] = None,
    end_point: Annotated[Optional[str], typer.Option(
        help="explain up to this node (a graph node name, or a stack's layer number) [default: the output]")] = None,
    format: Annotated[Format, typer.Option("--format", help="table for people, json for scripts")] = Format.table,
    plot: Annotated[Optional[Path], typer.Option(help="also draw the RF growth to this PNG (needs the plot extra)")] = None,
):
    from ..explain import analyze, story
    from ..graph import load_graph
    from ..graph_report import graph_story
    from ..layers import parse_size

    input_size = parse_size(input_size)
    source, _ = network_source(stack, arch, torch_target, input_size, in_channels, rank, end_point)
    graph = (load_graph(source, rank=rank) if torch_target is not None
             else load_graph(source, input_size, in_channels, rank))
    result = analyze(graph, end_point=end_point)
    if plot is not None:
        from ..plots import plot_rf_growth
        plot_rf_growth(graph.chain, result, plot)
    if format is Format.json:
        print(json.dumps(result))
        return
    if graph.chain is not None:
        from ..layers import Stack

        chain = graph.chain  # cut to the end-point's layers
        shown = Stack(chain.layers[:len(result["layers"])], chain.input_size, chain.in_channels, chain.name)
        stdout.print(_explain_table(shown, result))
        for line in story(shown, result):
            stdout.print(line, markup=False)
        return
    stdout.print(_graph_table(graph, result))
    for line in graph_story(result):
        stdout.print(line, markup=False)


def archs(
    format: Annotated[Format, typer.Option("--format", help="table or json")] = Format.table,
):
    from ..arch_summary import summary_rows

    rows = summary_rows()
    if format is Format.json:
        print(json.dumps(rows))
        return
    columns = [Column("name", text=True), Column("title", 1, text=True), Column("RF"), Column("jump", 3),
               Column("eff. padding", 2), Column("params"), Column("MACs")]
    stdout.print(fit_table("known networks (at their JSON's input size)", columns, [
        [row["name"], row["title"], *(_fmt(row[key]) for key in ("rf", "jump", "eff_padding", "params", "macs"))]
        for row in rows]))


def register(app: typer.Typer) -> None:
    """Add explain and archs to `app`."""
    add_command(app, explain, EXPLAIN_SUMMARY, EXPLAIN_HELP, [
        "rfsweep explain c7s2p3x64,mp3s2p1,c3x64,c3x64",
        "rfsweep explain c3x64,c3x64,c3x64 --in-channels 64 --format json",
        "rfsweep explain --arch resnet18 --end-point layer3",
        "rfsweep explain --torch examples/residual_model.py:build"])
    add_command(app, archs, "The known networks, with their RF, jump, params and MACs.",
                "Every network of Google's published receptive-field table, torchvision's ResNet-18/50 and "
                "MobileNet v2, decoders (U-Nets, FCN-8s, DeepLab v3, FPN) and 1-D/3-D networks (TCN, WaveNet, "
                "3-D U-Net, R3D-18), as graphs: `rfsweep explain --arch NAME` explains one.",
                ["rfsweep archs", "rfsweep archs --format json"])
