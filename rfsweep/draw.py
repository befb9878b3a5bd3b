"""`rfsweep draw`: the 2-D picture of how one unit's receptive field grows (the `plot` extra).

Small inputs are drawn as grids of cells, one feature map per level (input at
the bottom), padding cells shaded as padding; one unit of the top map is
highlighted and its footprint traced down to the input: the window it reads
on the map below, the windows those units read, and so on. Large or deep
networks get a schematic instead (one row per layer on the input-pixel axis:
the RF of a traced unit as a bar, the layer's unit centres as ticks spaced
by its jump), because a grid of thousands of cells is unreadable.

The footprint is computed by walking explicit index sets down the layers
(unit o of a layer reads o*s - p + t*d, t = 0..k-1, per axis), not by the RF
formula, so it can be checked against `rfsweep.analyze`. The map sizes come
from `analyze` (the one arithmetic). matplotlib is imported inside functions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RfsweepError

GRID_MAX_CELLS = 32   # grid pictures only when every map (with padding) is at most this many cells a side
GRID_MAX_LAYERS = 8   # ... and at most this many layers
FORMATS = {".png": "png", ".svg": "svg", ".gif": "gif"}
PLOT_INSTALL = 'pip install -e ".[plot]"'

CELL = "#dbe9f6"       # a real cell of a feature map
PAD = "#cfcfcf"        # a padding cell (not part of the map)
FOOT = "#f28e2b"       # a cell in the traced footprint
FOOT_PAD = "#f9d2aa"   # a padding cell a traced window reads (zeros)
UNIT = "#d62728"       # the chosen unit of the top map
EDGE = "#6b7b8c"


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise RfsweepError(f"drawing needs matplotlib: {PLOT_INSTALL}") from None
    return Figure, FigureCanvasAgg


@dataclass
class Drawing:
    """What `draw` drew, for tests and callers.

    sizes: (h, w) of every map, index 0 the input, index l the output of layer l.
    unit: the chosen (row, col) of the top map.
    rows, cols: per map, the sorted row / column indices the traced footprint
        touches on that map, padding included (indices < 0 or >= size).
    cells: per map, the (row, col) cells of the footprint inside the map (chains).
    mode: "grid" or "schematic"; figure: the last matplotlib Figure drawn.
    names: for a multi-path network, the node name of every level ("input" first).
    """

    sizes: list[tuple[int, int]]
    unit: tuple[int, int]
    rows: list[list[int]]
    cols: list[list[int]]
    mode: str
    figure: object = None
    path: Path | None = None
    cells: list[set[tuple[int, int]]] = field(default_factory=list)
    names: list[str] | None = None

    def inside(self, level: int) -> tuple[list[int], list[int]]:
        """Footprint rows and columns of map `level` inside the map (padding dropped)."""
        h, w = self.sizes[level]
        return ([r for r in self.rows[level] if 0 <= r < h], [c for c in self.cols[level] if 0 <= c < w])


def _pair(value, axis: int) -> int:
    return value[axis] if isinstance(value, (list, tuple)) else value


def _pad_before(layer, axis: int) -> int:
    """Padding before the first pixel on `axis` (per-side pairs give their first element)."""
    value = _pair(layer.padding, axis)
    return value[0] if isinstance(value, (list, tuple)) else value


def walk_axis(layers, sizes: list[int], axis: int, top: int) -> list[list[int]]:
    """Index sets of one axis, top map down to the input, by explicit windows.

    sizes[l] is the length of map l on this axis (0 = input). Returns, per map,
    the sorted indices the footprint of unit `top` of the last map touches,
    padding indices included; only indices inside a map read further down.
    """
    depth = len(layers)
    sets: list[set[int]] = [set() for _ in range(depth + 1)]
    sets[depth] = {top}
    for level in range(depth, 0, -1):
        layer = layers[level - 1]
        k, s, d = _pair(layer.kernel, axis), _pair(layer.stride, axis), _pair(layer.dilation, axis)
        p = _pad_before(layer, axis)
        below = sets[level - 1]
        for o in sets[level]:
            if 0 <= o < sizes[level]:
                below.update(o * s - p + t * d for t in range(k))
    return [sorted(s) for s in sets]


def _window_extent(layer, size_in: int, size_out: int, axis: int) -> tuple[int, int]:
    """First and last index (padding included) any window of `layer` reads on its input."""
    k, s, d = _pair(layer.kernel, axis), _pair(layer.stride, axis), _pair(layer.dilation, axis)
    p = _pad_before(layer, axis)
    return min(-p, 0), max((size_out - 1) * s - p + (k - 1) * d, size_in - 1)


def parse_unit(text: str | None) -> tuple[int, int] | None:
    """'I,J' (0-based row, column of the top map) -> (I, J); None stays None."""
    if text is None:
        return None
    parts = [part.strip() for part in str(text).split(",")]
    if len(parts) != 2 or not all(part.lstrip("-").isdigit() and len(part) < 12 for part in parts):
        raise RfsweepError(f"--unit must be I,J (row, column of the top map, 0-based), got {text!r}")
    return int(parts[0]), int(parts[1])


def _resolve(stack, input_size, in_channels):
    from .explain import analyze
    from .layers import load_stack

    resolved = load_stack(stack, input_size, in_channels)
    result = analyze(resolved)
    h0, w0 = resolved.input_size
    sizes = [(h0, w0)]
    for row in result["layers"]:
        size = row["out_size"]
        sizes.append((size[0], size[1]) if isinstance(size, list) else (size, size))
    return resolved, result, sizes


def footprint(stack, unit=None, input_size=None, in_channels=None) -> Drawing:
    """The traced footprint of one top unit (default: the centre), without drawing."""
    resolved, _, sizes = _resolve(stack, input_size, in_channels)
    return _footprint(resolved, sizes, unit)


def _footprint(resolved, sizes, unit) -> Drawing:
    top_h, top_w = sizes[-1]
    if unit is None:
        unit = ((top_h - 1) // 2, (top_w - 1) // 2)
    i, j = unit
    if not (0 <= i < top_h and 0 <= j < top_w):
        raise RfsweepError(f"--unit {i},{j} is outside the top map, which is {top_h}x{top_w} "
                           f"(rows 0..{top_h - 1}, columns 0..{top_w - 1})")
    layers = resolved.layers
    rows = walk_axis(layers, [s[0] for s in sizes], 0, i)
    cols = walk_axis(layers, [s[1] for s in sizes], 1, j)
    cells = []
    for level, (h, w) in enumerate(sizes):
        cells.append({(r, c) for r in rows[level] if 0 <= r < h for c in cols[level] if 0 <= c < w})
    return Drawing(sizes=sizes, unit=(i, j), rows=rows, cols=cols, mode="", cells=cells)


def _graph_of(stack, input_size, in_channels):
    """The Graph when `stack` is a multi-path network (a dict or JSON file with "nodes"), else None."""
    if isinstance(stack, (list, tuple)) or (isinstance(stack, str) and not stack.endswith(".json")
                                            and "/" not in stack and not Path(stack).is_file()):
        return None  # a compact string or a list of layers: a chain
    try:
        from .graph import load_graph
    except ImportError:  # an rfsweep without multi-path networks
        return None
    graph = load_graph(stack, input_size, in_channels)
    return graph if graph.chain is None else None


def walk_graph(graph, facts: dict, end_point: str, unit) -> dict[str, list[list[int]]]:
    """Per node (and "input"), per axis, the sorted indices the footprint of `unit` touches.

    The same explicit windows as `walk_axis`, node by node in reverse order: a
    window node reads o*s - p_before + t*d of its input, a pad node o - p_before,
    merges and pass-through nodes the same indices of every input (a 1x1 input
    broadcast over a larger map: its unit 0), global pooling and flatten the
    whole input map. Only indices inside a node's map read further.
    """
    from types import SimpleNamespace

    from .graph import DECODER_NODES, INPUT, LAYER_NODES, node_reads

    order = [node for node in graph.nodes if node["name"] in facts]
    sizes = {INPUT: tuple(graph.input_size), **{name: tuple(f.n) for name, f in facts.items()}}
    sets = {name: (set(), set()) for name in sizes}
    for a in (0, 1):
        sets[end_point][a].add(unit[a])
    for node in reversed(order):
        name, kind = node["name"], node["type"]
        f = facts[name]
        for a in (0, 1):
            live = {o for o in sets[name][a] if 0 <= o < sizes[name][a]}
            if not live:
                continue
            for source in node["inputs"]:
                n_in = sizes[source][a]
                target = sets[source][a]
                if kind in LAYER_NODES:
                    k, s, d = f.layer.kernel[a], f.layer.stride[a], f.layer.dilation[a]
                    before = f.pads[a][0]
                    target.update(o * s - before + t * d for o in live for t in range(k))
                elif kind == "pad":
                    target.update(o - f.pads[a][0] for o in live)
                elif kind in DECODER_NODES:  # transposed convs, upsampling, shuffles, crops: their taps
                    source_facts = facts.get(source) or SimpleNamespace(n=sizes[source], channels=graph.in_channels)
                    reads = node_reads(node, [source_facts], f, a)
                    target.update(u for o in live for u, _ in reads.taps(o))
                elif kind == "global_pool" or (kind == "flatten" and sizes[source] != (1, 1)):
                    target.update(range(n_in))
                elif n_in == 1 and sizes[name][a] != 1:  # a broadcast gate
                    target.add(0)
                else:
                    target.update(live)
    return {name: [sorted(sets[name][0]), sorted(sets[name][1])] for name in sizes}


def _graph_footprint(graph, unit, end_point):
    """Drawing and schematic rows of a multi-path network: the input, then every node the
    end-point reads from, in the graph's order."""
    from .graph import INPUT, PASS_NODES, evaluate

    end = end_point or graph.output
    if end not in graph.names:
        raise RfsweepError(f"--end-point {end!r} is not a node of the network (nodes: "
                           f"{', '.join(graph.names[:12])}{', ...' if len(graph.names) > 12 else ''})")
    facts = evaluate(graph, end)
    top = facts[end].n
    if unit is None:
        unit = ((top[0] - 1) // 2, (top[1] - 1) // 2)
    if not (0 <= unit[0] < top[0] and 0 <= unit[1] < top[1]):
        raise RfsweepError(f"--unit {unit[0]},{unit[1]} is outside the map of {end!r}, which is {top[0]}x{top[1]} "
                           f"(rows 0..{top[0] - 1}, columns 0..{top[1] - 1})")
    touched = walk_graph(graph, facts, end, unit)
    shown = [node for node in graph.nodes if node["name"] in facts
             and (node["type"] not in PASS_NODES or node["name"] == end)]  # activations, norms: no rows
    names = [INPUT] + [node["name"] for node in shown]
    levels = [{"label": "input", "start": 0.0, "rf": 1, "jump": 1}]
    for node in shown:
        f = facts[node["name"]]
        inputs = node["inputs"]
        label = f"{_short(node['name'], 26)} {node['type']}"
        if len(inputs) > 1:
            label += f" of {len(inputs)}"
        elif inputs[0] != _previous(graph, node):
            label += f" <- {_short(inputs[0], 14)}"
        levels.append({"label": label, "start": f.start[0],
                       "rf": f.rf[0], "jump": f.jump[0]})
    sizes = [tuple(graph.input_size)] + [tuple(facts[name].n) for name in names[1:]]
    drawing = Drawing(sizes=sizes, unit=tuple(unit), rows=[touched[name][0] for name in names],
                      cols=[touched[name][1] for name in names], mode="schematic", names=names)
    return drawing, levels


def _short(name: str, limit: int = 30) -> str:
    return name if len(name) <= limit else "..." + name[-(limit - 3):]


def _previous(graph, node) -> str:
    position = graph.names.index(node["name"])
    return graph.names[position - 1] if position else "input"


def _choose_mode(resolved, sizes, mode: str) -> str:
    if mode != "auto":
        return mode
    if len(resolved.layers) > GRID_MAX_LAYERS:
        return "schematic"
    for level, layer in enumerate(resolved.layers):
        for axis in (0, 1):
            lo, hi = _window_extent(layer, sizes[level][axis], sizes[level + 1][axis], axis)
            if hi - lo + 1 > GRID_MAX_CELLS:
                return "schematic"
    return "grid"


def _check_output(out) -> tuple[Path, str]:
    from .writer import check_output_path

    out = Path(out)
    kind = FORMATS.get(out.suffix.lower())
    if kind is None:
        raise RfsweepError(f"cannot tell the image format of {out}: use .png, .svg or .gif")
    check_output_path(out)
    return out, kind


class _Atomic:
    """A temporary file beside OUT with OUT's extension (Pillow picks the format by name)."""

    def __init__(self, out: Path):
        self.out = out
        self.tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp{out.suffix}")

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, kind, exc, tb):
        try:
            if kind is None:
                os.replace(self.tmp, self.out)
        except OSError as error:
            raise RfsweepError(f"cannot write {self.out}: {error}") from None
        finally:
            self.tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise RfsweepError(f"cannot write {self.out}: {exc}") from None
        return False


def draw(stack, out=None, unit=None, input_size=None, in_channels=None, mode: str = "auto",
         dpi: int = 100, end_point: str | None = None) -> Drawing:
    """Draw the footprint of one top unit of `stack`; write it to `out` (.png, .svg, .gif) if given.

    `stack` is anything `rfsweep.analyze` takes; `unit` is (row, col) of the
    top map (default: its centre); mode "auto" picks "grid" for small maps
    (every map with its padding at most 32 cells a side, at most 8 layers)
    and "schematic" otherwise. A .gif steps layer by layer. Multi-path
    networks (a graph with "nodes") are drawn as a schematic with one row per
    node that the end-point (default: the graph's output) reads from.
    Returns a Drawing with the traced index sets and the figure.
    """
    if mode not in ("auto", "grid", "schematic"):
        raise RfsweepError(f"mode must be auto, grid or schematic, got {mode!r}")
    kind = None
    if out is not None:
        out, kind = _check_output(out)
    Figure, Canvas = _matplotlib()
    graph = _graph_of(stack, input_size, in_channels)
    if graph is not None:
        if mode == "grid":
            raise RfsweepError("multi-path networks are drawn as a schematic: use --mode schematic or auto")
        drawing, levels = _graph_footprint(graph, unit, end_point)
        drawing.mode = "schematic"
        title = graph.name or "network"
        depth = len(drawing.sizes) - 1

        def render(figure, shown):
            _render_schematic(figure, title, levels, drawing, shown)
    else:
        if end_point is not None:
            raise RfsweepError("--end-point names a node of a multi-path network; a stack is drawn whole")
        resolved, result, sizes = _resolve(stack, input_size, in_channels)
        drawing = _footprint(resolved, sizes, unit)
        drawing.mode = _choose_mode(resolved, sizes, mode)
        depth = len(resolved.layers)
        levels = _chain_levels(resolved, result)

        def render(figure, shown):
            if drawing.mode == "grid":
                _render_grid(figure, resolved, result, drawing, shown)
            else:
                _render_schematic(figure, resolved.name or resolved.compact(), levels, drawing, shown)
    figsize = (_grid_size(resolved, sizes) if drawing.mode == "grid"
               else (10, 1.8 + 0.5 * (depth + 1) if depth < 40 else 1.8 + 0.25 * (depth + 1)))

    def figure_for(shown: int):
        figure = Figure(figsize=figsize, dpi=dpi)
        Canvas(figure)
        render(figure, shown)
        return figure

    drawing.figure = figure_for(depth)
    if out is None:
        return drawing
    with _Atomic(out) as tmp:
        if kind == "gif":
            from matplotlib.animation import PillowWriter

            frames = [figure_for(shown) for shown in range(depth)] + [drawing.figure]
            writer = PillowWriter(fps=1)
            writer.setup(frames[0], str(tmp), dpi=dpi)
            for frame in frames:
                writer.fig = frame
                writer.grab_frame(facecolor="white")
            writer.finish()
        else:
            drawing.figure.savefig(tmp, format=kind, dpi=dpi, facecolor="white")
    drawing.path = out
    return drawing


# ---------------------------------------------------------------- grid pictures

SHEAR = 0.55   # oblique projection: a row further back moves right by this much ...
SQUASH = 0.42  # ... and up by this much
GAP = 1.6      # vertical space between maps


def _extents(resolved, sizes):
    """Per map: (row_lo, row_hi, col_lo, col_hi) drawn, padding read by the next layer included."""
    extents = []
    for level, (h, w) in enumerate(sizes):
        if level < len(resolved.layers):
            layer = resolved.layers[level]
            r = _window_extent(layer, h, sizes[level + 1][0], 0)
            c = _window_extent(layer, w, sizes[level + 1][1], 1)
        else:
            r, c = (0, h - 1), (0, w - 1)
        extents.append((r[0], r[1], c[0], c[1]))
    return extents


def _grid_size(resolved, sizes):
    extents = _extents(resolved, sizes)
    width = max(c1 - c0 + 1 + SHEAR * (r1 - r0 + 1) for r0, r1, c0, c1 in extents)
    height = sum(SQUASH * (r1 - r0 + 1) + GAP for r0, r1, *_ in extents)
    scale = min(0.42, 9.0 / max(height, 1.0), 11.0 / max(width + 9, 1.0))
    return (max(7.0, (width + 9) * scale), max(4.0, (height + 1.5) * scale))


def _label(layer) -> str:
    def num(v):
        return str(v[0]) if v[0] == v[1] else f"{v[0]}_{v[1]}"
    kind = {"conv": "conv", "maxpool": "max pool", "avgpool": "avg pool"}.get(layer.type, layer.type)
    text = f"{kind} {layer.kernel[0]}x{layer.kernel[1]}"
    if tuple(layer.stride) != (1, 1):
        text += f" s{num(layer.stride)}"
    text += f" p{num(tuple(_pad_before(layer, a) for a in (0, 1)))}"
    if tuple(layer.dilation) != (1, 1):
        text += f" d{num(layer.dilation)}"
    if getattr(layer, "ceil_mode", False):
        text += " ceil"
    return text


def _size_text(size) -> str:
    return f"{size[0]}x{size[1]}"


def _render_grid(figure, resolved, result, drawing: Drawing, shown: int) -> None:
    """Oblique stacked grids; maps above level depth-shown keep the highlight."""
    from matplotlib.patches import Polygon

    ax = figure.add_axes((0.01, 0.01, 0.98, 0.9))
    ax.set_axis_off()
    ax.set_aspect("equal")
    sizes = drawing.sizes
    depth = len(sizes) - 1
    lowest = depth - shown  # maps below this level are drawn without the trace
    extents = _extents(resolved, sizes)
    base = 0.0
    boxes = {}
    xs, ys = [], []
    for level, ((h, w), (r0, r1, c0, c1)) in enumerate(zip(sizes, extents)):
        rows_deep = r1 - r0 + 1
        centre_r, centre_c = (h - 1) / 2, (w - 1) / 2

        def corner(r, c, base=base, r1=r1, centre_r=centre_r, centre_c=centre_c):
            back = r1 + 0.5 - r  # 0 at the front edge of the drawn block
            return (c - centre_c + SHEAR * (back - (r1 - centre_r + 0.5)), base + SQUASH * back)

        traced = level >= lowest
        foot_rows, foot_cols = set(drawing.rows[level]), set(drawing.cols[level])
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                inside = 0 <= r < h and 0 <= c < w
                hit = traced and r in foot_rows and c in foot_cols
                if level == depth and (r, c) == drawing.unit:
                    state, color = "unit", UNIT
                elif hit:
                    state, color = ("fp", FOOT) if inside else ("fppad", FOOT_PAD)
                else:
                    state, color = ("cell", CELL) if inside else ("pad", PAD)
                pts = [corner(r + 0.5, c - 0.5), corner(r + 0.5, c + 0.5),
                       corner(r - 0.5, c + 0.5), corner(r - 0.5, c - 0.5)]
                patch = Polygon(pts, closed=True, facecolor=color, edgecolor=EDGE if inside else "#9a9a9a",
                                linewidth=0.6, linestyle="-" if inside else (0, (2, 1.5)),
                                hatch="///" if not inside else None, zorder=2 if state in ("cell", "pad") else 3)
                patch.set_gid(f"map{level}:r{r}:c{c}:{state}")
                ax.add_patch(patch)
                xs += [p[0] for p in pts]
                ys += [p[1] for p in pts]
        if traced and drawing.rows[level] and drawing.cols[level]:
            fr, fc = drawing.rows[level], drawing.cols[level]
            boxes[level] = [corner(fr[-1] + 0.5, fc[0] - 0.5), corner(fr[-1] + 0.5, fc[-1] + 0.5),
                            corner(fr[0] - 0.5, fc[-1] + 0.5), corner(fr[0] - 0.5, fc[0] - 0.5)]
        right = max(corner(r, c1 + 0.5)[0] for r in (r0 - 0.5, r1 + 0.5))
        middle = base + SQUASH * rows_deep / 2
        if level == 0:
            text = f"input {_size_text((h, w))}"
        else:
            rf = result["layers"][level - 1]["rf"]
            jump = result["layers"][level - 1]["jump"]
            rf_text = f"{rf[0]}x{rf[1]}" if isinstance(rf, list) else f"{rf}x{rf}"
            jump_text = "x".join(map(str, jump)) if isinstance(jump, list) else str(jump)
            text = (f"layer {level}: {_label(resolved.layers[level - 1])}\n"
                    f"out {_size_text((h, w))}, RF {rf_text}, jump {jump_text}")
        ax.text(right + 0.8, middle, text, va="center", ha="left", fontsize=9)
        xs.append(right + 8.5)
        base += SQUASH * rows_deep + GAP
    for level in range(max(lowest, 1), depth + 1):  # the cone between a traced window and the one below
        if level in boxes and level - 1 in boxes:
            for top_pt, low_pt in zip(boxes[level], boxes[level - 1]):
                ax.plot([top_pt[0], low_pt[0]], [top_pt[1], low_pt[1]], color=FOOT, linewidth=0.8,
                        alpha=0.8, linestyle=(0, (3, 2)), zorder=1)
    ax.set_xlim(min(xs) - 0.5, max(xs))
    ax.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
    i, j = drawing.unit
    r_in, c_in = drawing.inside(0)
    title = f"{resolved.name or resolved.compact()}\nunit ({i}, {j}) of layer {depth} sees input "
    title += f"rows {r_in[0]}..{r_in[-1]}, cols {c_in[0]}..{c_in[-1]}" if r_in and c_in else "only padding"
    figure.suptitle(title, fontsize=10, y=0.985)
    handles = [Polygon([[0, 0]], facecolor=col, edgecolor=EDGE, hatch=h, label=lab) for col, h, lab in (
        (CELL, None, "feature-map cell"), (PAD, "///", "padding"), (FOOT, None, "traced footprint"),
        (FOOT_PAD, "///", "padding read by the trace"), (UNIT, None, "chosen unit"))]
    ax.legend(handles=handles, loc="lower right", fontsize=7, frameon=False)


# ---------------------------------------------------------------- schematic

def _chain_levels(resolved, result) -> list[dict]:
    """Schematic rows of a chain: label, and the height axis's start, rf and jump of each map."""
    def h(value):
        return value[0] if isinstance(value, list) else value

    levels = [{"label": "input", "start": 0.0, "rf": 1, "jump": 1}]
    for index, (layer, row) in enumerate(zip(resolved.layers, result["layers"]), start=1):
        levels.append({"label": f"{index} {_label(layer)}", "start": h(row["start"]), "rf": h(row["rf"]),
                       "jump": h(row["jump"])})
    return levels


def _render_schematic(figure, title: str, levels: list[dict], drawing: Drawing, shown: int) -> None:
    """One row per map on the input-pixel axis (height axis): unit centres as ticks spaced by
    the jump, the traced units marked, and a bar over the RF of the traced unit nearest the centre."""
    from matplotlib.collections import LineCollection

    height = figure.get_size_inches()[1]
    ax = figure.add_axes((0.24, 0.75 / height, 0.73, 1 - 1.6 / height))
    sizes = drawing.sizes
    depth = len(sizes) - 1
    n = sizes[0][0]
    i_top = drawing.unit[0]
    top = levels[-1]
    centre = top["start"] + i_top * top["jump"]
    lo, hi = centre - (top["rf"] - 1) / 2, centre + (top["rf"] - 1) / 2
    left, right = min(lo, -0.5) - 2, max(hi, n - 0.5) + 2
    ax.axvspan(-0.5, n - 0.5, color="0.93", zorder=0)
    for level in range(min(shown, depth) + 1):
        y = level
        start, rf, jump = levels[level]["start"], levels[level]["rf"], levels[level]["jump"]
        units = [u for u in range(sizes[level][0]) if left <= start + u * jump <= right]
        if len(units) > 400:  # a dense map: show its spacing, not every tick
            units = units[:: len(units) // 400 + 1]
        ticks = LineCollection([((start + u * jump, y - 0.18), (start + u * jump, y + 0.18)) for u in units],
                               colors="0.45", linewidths=0.6, zorder=2)
        ax.add_collection(ticks)
        traced = drawing.inside(level)[0]
        if traced:
            mid = traced[len(traced) // 2]
            c = start + mid * jump
            ax.barh(y, rf, left=c - (rf - 1) / 2 - 0.5, height=0.5, color=FOOT, alpha=0.45, zorder=1)
            marks = ax.scatter([start + u * jump for u in traced], [y] * len(traced), s=9,
                               color=UNIT if level == depth else FOOT, zorder=3)
            marks.set_gid(f"trace:{level}")
        if depth < 30:
            ax.text(right, y + 0.3, f"{sizes[level][0]} units, jump {jump}, RF {rf}", ha="right", va="bottom",
                    fontsize=7, color="0.3")
    labels = [level["label"] for level in levels]
    ax.set_yticks(range(depth + 1), labels, fontsize=8 if depth < 16 else 6 if depth < 40 else 4)
    ax.set_ylim(-0.7, depth + 0.8)
    ax.set_xlim(left, right)
    ax.set_xlabel("input pixel (height axis, 0-indexed centres; shaded: the input, outside it padding)")
    r_in = drawing.inside(0)[0]
    figure.suptitle(f"{title[:110]}\nunit row {i_top} of {levels[-1]['label'].split(' ')[0]}: "
                    f"RF {top['rf']} on the height axis, input rows {r_in[0] if r_in else '-'}.."
                    f"{r_in[-1] if r_in else '-'} (ticks: unit centres, spaced by the jump)", fontsize=9)
