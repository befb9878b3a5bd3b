"""The explain tables: one row per layer of a stack, or per node of a graph."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from .app import _fmt, _fmt_field, round_pair


def _explain_table(stack, result) -> Table:
    title = f"{escape(stack.name or stack.compact())} on {_fmt(result['input']['size'])} x {result['input']['channels']}ch"
    table = Table(title=title, title_justify="left")
    for name in ("#", "layer", "k", "s", "p", "d", "out", "ch", "jump", "RF", "start", "params", "MACs"):
        table.add_column(name, justify="left" if name == "layer" else "right")
    for layer, row in zip(stack.layers, result["layers"]):
        table.add_row(str(row["index"]), layer.compact(), *(_fmt(row[key]) for key in (
            "kernel", "stride", "padding", "dilation", "out_size", "out_channels", "jump", "rf",
            "start", "params", "macs")))
    total = result["total"]
    table.add_section()
    table.add_row("", "total", "", "", "", "", *(_fmt(total[key]) for key in (
        "out_size", "out_channels", "jump", "rf", "start", "params", "macs")))
    table.caption = (f"effective padding {_fmt(total['eff_padding'])}, FLOPs {_fmt(total['flops'])}, "
                     f"ERF std {_fmt(round_pair(total['erf_std']))} px (ratio {_fmt(round_pair(total['erf_ratio']))})")
    table.caption_justify = "left"
    return table


def _graph_table(graph, result) -> Table:
    """One row per node; rf_min beside rf; the border layer and where the spatial part ends marked."""
    title = f"{escape(graph.name or 'network')} on {_fmt(result['input']['size'])} x {result['input']['channels']}ch"
    table = Table(title=title + f", up to {escape(result['output'])}", title_justify="left")
    for name in ("#", "node", "type", "inputs", "k", "s", "p", "d", "out", "ch", "jump", "RF", "RF min",
                 "start", "params", "MACs", ""):
        table.add_column(name, justify="left" if name in ("node", "type", "inputs", "") else "right")
    unproductive = set(result["unproductive"])
    critical = set(result["critical"])
    spatial_seen = False
    for row in result["nodes"]:
        if spatial_seen and not row["spatial"]:
            table.add_section()  # the head: no longer a feature map
            spatial_seen = False
        spatial_seen = spatial_seen or row["spatial"]
        mark = ("border, unproductive" if row["name"] == result["border"] else "unproductive"
                if row["name"] in unproductive else "critical" if row["name"] in critical else "")
        if row["name"] == result["output"]:
            mark = (mark + ", " if mark else "") + "end-point"
        if row.get("padding_depends_on_input"):
            mark = (mark + ", " if mark else "") + "SAME pad depends on size"
        inputs = ",".join(row["inputs"])
        table.add_row(str(row["index"]), escape(row["name"]), row["type"],
                      escape(inputs if len(inputs) <= 24 else inputs[:21] + "..."),
                      *(_fmt_field(row.get(key)) for key in ("kernel", "stride", "padding", "dilation")),
                      *(_fmt(row[key]) for key in ("out_size", "out_channels", "jump", "rf", "rf_min", "start",
                                                   "params", "macs")), mark)
    total = result["total"]
    table.add_section()
    table.add_row("", "total", "", "", "", "", "", "", *(_fmt(total[key]) for key in (
        "out_size", "out_channels", "jump", "rf", "rf_min", "start", "params", "macs")), "")
    table.caption = (f"effective padding {_fmt(total['eff_padding'])}, FLOPs {_fmt(total['flops'])}, "
                     f"ERF std {_fmt(round_pair(total['erf_std']))} px (ratio {_fmt(round_pair(total['erf_ratio']))}); "
                     "params and MACs summed over every node shown")
    table.caption_justify = "left"
    return table
