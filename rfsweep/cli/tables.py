"""Tables for people: fitted to the terminal, numbers never cut; the explain tables built on them.

Every command's table goes through `print_table`: number columns never wrap
and are never shortened (no `1,849…`); text columns (names, stacks, titles)
wrap; when the terminal is too narrow even so, the least important columns
are left out and the caption says which. Output to a pipe or file is not
narrowed (unless COLUMNS is set).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rich.markup import escape
from rich.table import Table

from .app import _fmt, _fmt_field, round_pair, stdout

TABLE_ROWS = 400  # a longer table shows its first and last 200 rows (rich renders ~1 ms a row)
WRAP_MIN = 12  # the narrowest a wrapping text column gets before columns are dropped


@dataclass(frozen=True)
class Column:
    """One table column: `drop` 0 = always shown; 1, 2, ... = left out in that order when space is short."""

    header: str
    drop: int = 0
    text: bool = False  # names, stacks, titles: left-aligned, may wrap; numbers: right-aligned, never wrap


def _needed(column: Column, cells: list[str]) -> int:
    longest = max((len(c) for c in cells), default=0)
    header = len(column.header)
    if column.text:
        return max(min(longest, WRAP_MIN), max((len(w) for w in column.header.split()), default=0))
    return max(longest, header)


def _width(widths: list[int]) -> int:
    return sum(widths) + 3 * len(widths) + 1  # padding 1 + 1 either side, one rule between, two borders


def terminal_width() -> int | None:
    """The width to fit: the terminal's, or COLUMNS; None (no limit) for a pipe or a file."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return stdout.width if stdout.is_terminal else None


def fit_table(title: str, columns: list[Column], rows: list[list[str] | None], caption: str = "",
              width: int | None = -1) -> Table:
    """A rich Table of `rows` (None = a section rule) that fits `width` (default: terminal_width())."""
    width = terminal_width() if width == -1 else width
    cells = [[row[i] for row in rows if row is not None] for i in range(len(columns))]
    needed = [_needed(c, col) for c, col in zip(columns, cells)]
    keep = list(range(len(columns)))
    dropped: list[str] = []
    if width is not None:
        for column in sorted((c for c in columns if c.drop), key=lambda c: c.drop):
            if _width([needed[i] for i in keep]) <= width:
                break
            keep.remove(columns.index(column))
            dropped.append(column.header or "marks")
    table = Table(title=title, title_justify="left", caption_justify="left")
    for i in keep:
        if columns[i].text:
            table.add_column(columns[i].header, justify="left", overflow="fold", min_width=needed[i])
        else:
            table.add_column(columns[i].header, justify="right", no_wrap=True, min_width=needed[i])
    for row in rows:
        if row is None:
            table.add_section()
        else:
            table.add_row(*(row[i] for i in keep))
    if dropped:
        caption = (caption.rstrip(".") + ". " if caption else "") + (
            f"Left out to fit {width} columns: {', '.join(dropped)} (a wider terminal or --format json shows them).")
    table.caption = caption or None
    if width is not None and _width([needed[i] for i in keep]) <= width:
        natural = _width([max((len(c) for c in cells[i]), default=0) if columns[i].text else needed[i]
                          for i in keep])
        if natural > width:
            table.width = width  # text columns wrap to make room; numbers keep theirs
    return table


def _elided(rows: list) -> list:
    """`rows`, or its first and last TABLE_ROWS // 2 with None standing for the rest."""
    if len(rows) <= TABLE_ROWS:
        return rows
    half = TABLE_ROWS // 2
    return rows[:half] + [None] + rows[-half:]


def _gap_row(hidden: int, columns: int) -> list[str]:
    return ["", f"... {hidden:,} rows not shown (--format json lists every one)", *[""] * (columns - 2)]


# Left out first when a terminal is too narrow: what the layer string already says (k, s, p, d),
# then start; a graph's inputs list and its layer fields, then the rest in this order.
_STACK_COLUMNS = [Column("#", 8), Column("layer", text=True), Column("k", 4), Column("s", 3), Column("p", 2),
                  Column("d", 1), Column("out"), Column("ch"), Column("jump"), Column("RF"), Column("start", 5),
                  Column("params"), Column("MACs")]
_GRAPH_COLUMNS = [Column("#", 7), Column("node", text=True), Column("type", 8, text=True),
                  Column("inputs", 1, text=True), Column("k", 5), Column("s", 4), Column("p", 3), Column("d", 2),
                  Column("out", 10), Column("ch", 11), Column("jump", 12), Column("RF"), Column("RF min", 13),
                  Column("start", 6), Column("params", 14), Column("MACs"), Column("", 9, text=True)]


def _explain_table(stack, result) -> Table:
    title = f"{escape(stack.name or stack.compact())} on {_fmt(result['input']['size'])} x {result['input']['channels']}ch"
    rows: list[list[str] | None] = []
    for pair in _elided(list(zip(stack.layers, result["layers"]))):
        if pair is None:
            rows.append(_gap_row(len(result["layers"]) - TABLE_ROWS, len(_STACK_COLUMNS)))
            continue
        layer, row = pair
        rows.append([str(row["index"]), layer.compact(), *(_fmt(row[key]) for key in (
            "kernel", "stride", "padding", "dilation", "out_size", "out_channels", "jump", "rf",
            "start", "params", "macs"))])
    total = result["total"]
    rows.append(None)
    rows.append(["", "total", "", "", "", "", *(_fmt(total[key]) for key in (
        "out_size", "out_channels", "jump", "rf", "start", "params", "macs"))])
    caption = (f"effective padding {_fmt(total['eff_padding'])}, FLOPs {_fmt(total['flops'])}, "
               f"ERF std {_fmt(round_pair(total['erf_std']))} px (ratio {_fmt(round_pair(total['erf_ratio']))})")
    return fit_table(title, _STACK_COLUMNS, rows, caption)


def _graph_table(graph, result) -> Table:
    """One row per node; rf_min beside rf; the border layer and where the spatial part ends marked."""
    title = f"{escape(graph.name or 'network')} on {_fmt(result['input']['size'])} x {result['input']['channels']}ch"
    unproductive = set(result["unproductive"])
    critical = set(result["critical"])
    spatial_seen = False
    rows: list[list[str] | None] = []
    for row in _elided(result["nodes"]):
        if row is None:
            rows.append(_gap_row(len(result["nodes"]) - TABLE_ROWS, len(_GRAPH_COLUMNS)))
            continue
        if spatial_seen and not row["spatial"]:
            rows.append(None)  # the head: no longer a feature map
            spatial_seen = False
        spatial_seen = spatial_seen or row["spatial"]
        mark = ("border, unproductive" if row["name"] == result["border"] else "unproductive"
                if row["name"] in unproductive else "critical" if row["name"] in critical else "")
        if row["name"] == result["output"]:
            mark = (mark + ", " if mark else "") + "end-point"
        if row.get("padding_depends_on_input"):
            mark = (mark + ", " if mark else "") + "SAME pad depends on size"
        rows.append([str(row["index"]), escape(row["name"]), row["type"], escape(", ".join(row["inputs"])),
                     *(_fmt_field(row.get(key)) for key in ("kernel", "stride", "padding", "dilation")),
                     *(_fmt(row[key]) for key in ("out_size", "out_channels", "jump", "rf", "rf_min", "start",
                                                  "params", "macs")), mark])
    total = result["total"]
    rows.append(None)
    rows.append(["", "total", "", "", "", "", "", "", *(_fmt(total[key]) for key in (
        "out_size", "out_channels", "jump", "rf", "rf_min", "start", "params", "macs")), ""])
    caption = (f"effective padding {_fmt(total['eff_padding'])}, FLOPs {_fmt(total['flops'])}, "
               f"ERF std {_fmt(round_pair(total['erf_std']))} px (ratio {_fmt(round_pair(total['erf_ratio']))}); "
               "params and MACs summed over every node shown")
    return fit_table(title + f", up to {escape(result['output'])}", _GRAPH_COLUMNS, rows, caption)
