"""PNG figures (the `plot` extra): RF growth of one stack, a Pareto front, a compare table.

matplotlib is imported inside the functions, so rfsweep works without it.
Figures are drawn on the Agg canvas directly (no pyplot, no global backend
switch) at a fixed size of 800x500 pixels, and written atomically: a
temporary file beside PATH renamed into place. Every function returns PATH.
"""

from __future__ import annotations

import math
from pathlib import Path

from .errors import RfsweepError

FIGSIZE = (8, 5)
DPI = 100  # -> 800 x 500 pixels
FRONT_COLOR = "#d62728"
BAR_COLOR = "#1f77b4"
BEST_COLOR = "#2ca02c"
SINGLE_COLOR = "#7f7f7f"


def _figure():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise RfsweepError('plots need matplotlib: pip install -e ".[plot]"') from None
    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path) -> Path:
    from .writer import atomic_output

    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def _h(value):
    """The h axis of a per-axis figure (a number for square stacks, [h, w] otherwise)."""
    return value[0] if isinstance(value, (list, tuple)) else value


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plot_rf_growth(stack, result, path) -> Path:
    """Which input pixels the first output unit of each layer sees.

    One row per layer (layer 1 at the bottom, just above the input): a bar
    over the pixel interval [start - (rf-1)/2, start + (rf-1)/2] with its
    centre `start` marked, on the input pixel axis (0-indexed pixel centres);
    the bottom row is the input's pixel grid and the shaded band the real
    input (outside it: padding). `stack` is a resolved Stack, `result` its
    `analyze` object. Rectangular stacks: the h axis. For a graph (`stack`
    None, `result` with "nodes") the rows are the layers of the widest path.
    """
    figure = _figure()
    ax = figure.add_subplot()
    if stack is None:
        by_name = {row["name"]: row for row in result["nodes"]}
        rows = [by_name[name] for name in result["rf_path"]] or [by_name[result["output"]]]
        names = [row["name"] for row in rows]
        title = f"widest path to {result['output']}"
    else:
        rows = result["layers"]
        names = [layer.compact() for layer in stack.layers]
        title = stack.name or stack.compact()
    n = _h(result["input"]["size"])
    spans = []
    for row in rows:
        rf, start = _h(row["rf"]), _h(row["start"])
        spans.append((start - (rf - 1) / 2, start + (rf - 1) / 2, start, rf, _h(row["jump"])))
    low = min(lo for lo, *_ in spans)
    high = max(hi for _, hi, *_ in spans)
    widest = max(rf for *_, rf, _ in spans)
    right = max(high, n - 1 if n <= 2 * widest else high)
    left = min(low, 0)
    ax.set_xlim(left - 1.5, right + 1.5)
    ax.axvspan(-0.5, n - 0.5, color="0.92", zorder=0, label="input (outside: padding)")

    first, last = math.floor(left) - 1, math.ceil(right) + 1
    pixels = range(max(0, first), min(n, last + 1))
    padding = [x for x in range(first, last + 1) if x < 0 or x >= n]
    size = 8 if last - first <= 120 else 2
    ax.scatter(pixels, [0] * len(pixels), s=size, color="0.3", marker="s", zorder=2)
    ax.scatter(padding, [0] * len(padding), s=size, facecolors="none", edgecolors="0.5", marker="s", zorder=2)
    labels = ["input"]
    for y, ((lo, hi, start, rf, jump), name) in enumerate(zip(spans, names), start=1):
        ax.barh(y, hi - lo + 1, left=lo - 0.5, height=0.6, color=BAR_COLOR, alpha=0.55, zorder=2)
        ax.plot([start], [y], marker="|", markersize=12, color="black", zorder=3)
        if len(spans) <= 30:
            ax.annotate(f"rf {rf}, jump {jump}", (hi + 0.5, y), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=7)
        labels.append(f"{y} {name}")
    step = max(1, len(labels) // 30)
    ticks = list(range(0, len(labels), step))
    ax.set_yticks(ticks, [labels[t] for t in ticks], fontsize=7 if len(labels) > 12 else 9)
    ax.set_ylim(-0.8, len(labels) - 0.2)
    ax.set_xlabel("input pixel (0-indexed centres; | marks each RF's centre)")
    ax.set_title(_short(title), fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    return _save(figure, path)


def _scale(ax, values, axis: str):
    positive = len(values) and min(values) > 0
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log" if positive else "symlog")


def plot_front(df_all_sample, front, path, x="params", y: str = "rf") -> Path:
    """A sample of all rows (grey) with the Pareto front highlighted, one panel per column of
    `x` (a name or a list: each minimised objective) against `y`; log x axes.

    The front's rows are drawn in every panel; the step line joins them only where the panel
    shows every objective (two of them), since a projection of a wider front is not a staircase.
    """
    xs_names = [x] if isinstance(x, str) else list(x)
    for frame, what in ((df_all_sample, "sample"), (front, "front")):
        for column in (*xs_names, y):
            if frame is not None and column not in frame.columns:
                raise RfsweepError(f"plot_front: the {what} has no column {column!r}")
    figure = _figure()
    panels = len(xs_names)
    if panels > 1:
        figure.set_size_inches(min(4.2 * panels, 16), 4.6)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    for ax, column in zip(axes, xs_names):
        xs = []
        if df_all_sample is not None and len(df_all_sample):
            ax.scatter(df_all_sample[column], df_all_sample[y], s=3, color="0.6", alpha=0.35,
                       label=f"random sample of {len(df_all_sample):,} rows", rasterized=True)
            xs += list(df_all_sample[column])
        ordered = front.sort_values([column, y])
        ax.scatter(ordered[column], ordered[y], s=14, color=FRONT_COLOR, zorder=3, label=f"front ({len(front):,} rows)")
        if panels == 1:
            ax.step(ordered[column], ordered[y], where="post", color=FRONT_COLOR, linewidth=0.8, zorder=2)
        xs += list(ordered[column])
        _scale(ax, [float(v) for v in xs], "x")
        ax.set_xlabel(column)
        ax.set_ylabel(y)
        ax.set_title(f"{y} vs {column}", fontsize=10)
        ax.legend(loc="best", fontsize=7)
    if panels > 1:
        figure.suptitle(f"Pareto front of {', '.join(xs_names)} against {y}: one panel per objective", fontsize=10)
    return _save(figure, path)


def plot_compare(rows, path) -> Path:
    """Bars of params ratio (vs the single kernel) per candidate from `analysis.compare`."""
    if not rows:
        raise RfsweepError("plot_compare: no rows to draw")
    figure = _figure()
    ax = figure.add_subplot()
    labels = [_short(row["stack"], 40) for row in rows]
    ratios = [row["params_ratio"] for row in rows]
    colors = [BEST_COLOR if row.get("best") else SINGLE_COLOR if row.get("single") else BAR_COLOR for row in rows]
    positions = list(range(len(rows)))[::-1]  # cheapest at the top
    ax.barh(positions, ratios, color=colors, height=0.7)
    ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    if len(rows) <= 30:
        for pos, row in zip(positions, rows):
            ax.annotate(f"{row['params_ratio']:.2f}x, depth {row['depth']}", (row["params_ratio"], pos),
                        xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    step = max(1, len(rows) // 30)
    ax.set_yticks(positions[::step], labels[::step], fontsize=7 if len(rows) > 12 else 9)
    ax.set_xlim(0, max(ratios) * 1.25)
    ax.set_xlabel("params / params of the single kernel (green: cheapest, grey: the single kernel)")
    ax.set_title(f"same RF {rows[0]['rf']}: params against one {rows[0]['rf']}x{rows[0]['rf']} conv", fontsize=10)
    return _save(figure, path)
