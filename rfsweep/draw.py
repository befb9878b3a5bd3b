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

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import RfsweepError

GRID_MAX_CELLS = 32   # grid pictures only when every map (with padding) is at most this many cells a side
GRID_MAX_LAYERS = 8   # ... and at most this many layers
GRID_CELL_LIMIT = 12_000   # cells one grid picture may draw (auto's largest grid: 9 maps of 32x32)
GIF_CELL_LIMIT = 40_000    # cells all frames of a grid GIF may draw together
MAX_ROWS = 40         # schematic rows (maps) beyond which rows are picked (the widest path, evenly spaced)
LABEL_CHARS = 30      # a row label's node name at most this long (abbreviate)
GIF_FRAMES = 12       # a GIF of more steps shows this many, evenly spaced, the last one whole
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
    cells: per map, the (row, col) cells of the footprint inside the map.
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
    names: list[str] | None = None
    axis: str = "height"  # the network's axis drawn as rows ("length" in 1-D; a 3-D plane's first axis)

    @property
    def cells(self) -> list[set[tuple[int, int]]]:
        """Per map, the (row, col) cells of the footprint inside the map (built on demand: a
        large footprint has rf^2 of them)."""
        out = []
        for level, (h, w) in enumerate(self.sizes):
            rows, cols = self.inside(level)
            out.append({(r, c) for r in rows for c in cols})
        return out

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
    Index sets are numpy arrays while walking: the cost is the footprint's
    size per layer, never the map's.
    """
    import numpy as np

    depth = len(layers)
    sets = [None] * (depth + 1)
    sets[depth] = np.array([top], dtype=np.int64)
    for level in range(depth, 0, -1):
        layer = layers[level - 1]
        k, s, d = _pair(layer.kernel, axis), _pair(layer.stride, axis), _pair(layer.dilation, axis)
        p = _pad_before(layer, axis)
        live = sets[level][(sets[level] >= 0) & (sets[level] < sizes[level])]
        sets[level - 1] = _windows(live, k, s, d, p)
    return [found.tolist() for found in sets]


def _windows(live, k: int, s: int, d: int, before: int):
    """Sorted distinct indices o*s - before + t*d (t < k) read by the units `live`."""
    import numpy as np

    taps = np.arange(k, dtype=np.int64) * d - before
    return np.unique((live[:, None] * s + taps[None, :]).ravel())


def _window_extent(layer, size_in: int, size_out: int, axis: int) -> tuple[int, int]:
    """First and last index (padding included) any window of `layer` reads on its input."""
    k, s, d = _pair(layer.kernel, axis), _pair(layer.stride, axis), _pair(layer.dilation, axis)
    p = _pad_before(layer, axis)
    return min(-p, 0), max((size_out - 1) * s - p + (k - 1) * d, size_in - 1)


def parse_unit(text: str | None) -> tuple[int, int] | None:
    """'I,J' (0-based row, column of the top map) -> (I, J); 'I' -> (I,) for a 1-D network; None stays None."""
    if text is None:
        return None
    parts = [part.strip() for part in str(text).split(",")]
    if len(parts) not in (1, 2) or not all(part.lstrip("-").isdigit() and len(part) < 12 for part in parts):
        raise RfsweepError(f"--unit must be I,J (row, column of the top map, 0-based; one index I for a 1-D "
                           f"network), got {text!r}")
    return tuple(int(part) for part in parts)


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
    return Drawing(sizes=sizes, unit=(i, j), rows=rows, cols=cols, mode="")


def _graph_of(stack, input_size, in_channels):
    """The Graph when `stack` is a multi-path network (a dict or JSON file with "nodes"), else None."""
    from .layers import looks_like_path

    if isinstance(stack, (list, tuple)) or (isinstance(stack, str) and not looks_like_path(stack)):
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
    broadcast over a larger map: its unit 0), global pooling, flatten and
    attention the whole input map (a windowed one the unit's tile, one with a
    period the units at its offset). Only indices inside a node's map read further. Each node's
    reads are collected as arrays and merged once, when the walk reaches it, so
    the walk is linear in nodes and edges (a 5,000-way concat included).
    """
    from types import SimpleNamespace

    import numpy as np

    from .graph import DECODER_NODES, INPUT, LAYER_NODES, node_reads

    sizes = {INPUT: tuple(graph.input_size), **{name: tuple(f.n) for name, f in facts.items()}}
    pending: dict[str, tuple[list, list]] = {name: ([], []) for name in sizes}
    for a in (0, 1):
        pending[end_point][a].append(np.array([unit[a]], dtype=np.int64))
    found: dict[str, list] = {}

    def merge(name):  # each part is sorted and distinct already: only several need a union
        return [np.zeros(0, np.int64) if not parts else parts[0] if len(parts) == 1
                else np.unique(np.concatenate(parts)) for parts in pending.pop(name)]

    for node in reversed(graph.nodes):
        name, kind = node["name"], node["type"]
        if name not in facts:
            continue
        found[name] = touched = merge(name)
        f = facts[name]
        for a in (0, 1):
            live = touched[a][(touched[a] >= 0) & (touched[a] < sizes[name][a])]
            if not live.size:
                continue
            for source in node["inputs"]:
                n_in = sizes[source][a]
                if kind in LAYER_NODES:
                    reads = _windows(live, f.layer.kernel[a], f.layer.stride[a], f.layer.dilation[a], f.pads[a][0])
                elif kind == "pad":
                    reads = live - f.pads[a][0]
                elif kind in DECODER_NODES:  # transposed convs, upsampling, shuffles, crops: their taps
                    source_facts = facts.get(source) or SimpleNamespace(n=sizes[source], channels=graph.in_channels)
                    taps = node_reads(node, [source_facts], f, a)
                    reads = np.unique(np.fromiter((u for o in live.tolist() for u, _ in taps.taps(o)), np.int64))
                elif kind == "global":  # attention: the whole map, the unit's tile, or its offset class
                    reads = _global_reads(node, a, live, n_in)
                elif kind == "global_pool" or (kind == "flatten" and sizes[source] != (1, 1)):
                    reads = np.arange(n_in, dtype=np.int64)
                elif n_in == 1 and sizes[name][a] != 1:  # a broadcast gate
                    reads = np.zeros(1, np.int64)
                else:
                    reads = live
                pending[source][a].append(reads)
    found[INPUT] = merge(INPUT)
    return {name: [found[name][0].tolist(), found[name][1].tolist()] for name in sizes}


def _global_reads(node: dict, a: int, live, n_in: int):
    """The input units a global node's units `live` read along axis a (graph.py's `global`)."""
    import numpy as np

    every = np.arange(n_in, dtype=np.int64)
    for key in ("window", "period"):
        if key in node:
            size = node[key][a] if isinstance(node[key], list) else node[key]
            if key == "window":
                return np.unique((live // size * size)[:, None] + np.arange(size)).astype(np.int64)
            return every[np.isin(every % size, live % size)]
    return every


def _graph_footprint(graph, unit, end_point):
    """Drawing and schematic rows of a multi-path network.

    Rows: the input, then every node the end-point reads from, in the graph's
    order, when they fit in MAX_ROWS; otherwise only the widest path (the one
    that sets the RF), sampled evenly down to MAX_ROWS rows. Returns the
    Drawing, the rows' levels and a note saying what was left out ("" if nothing).
    """
    from .graph import INPUT, PASS_NODES, evaluate
    from .graph_report import rf_path

    end = end_point or graph.output
    names = graph.names
    if end not in set(names):
        raise RfsweepError(f"--end-point {end!r} is not a node of the network (nodes: "
                           f"{', '.join(names[:12])}{', ...' if len(names) > 12 else ''})")
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
    note = ""
    if len(shown) + 1 > MAX_ROWS:
        path = set(rf_path(graph, facts, end, every_node=True))
        on_path = [node for node in shown if node["name"] in path]
        note = f"the widest path: {len(on_path):,} of {len(shown):,} nodes"
        shown = on_path
        if len(shown) + 1 > MAX_ROWS:
            shown = [shown[i - 1] for i in _pick_rows(len(shown) + 1)[1:]]
            note += f", {len(shown)} rows evenly spaced"
    position = {name: index for index, name in enumerate(names)}
    row_names = [INPUT] + [node["name"] for node in shown]
    levels = [{"label": "input", "start": 0.0, "rf": 1, "jump": 1}]
    for node in shown:
        f = facts[node["name"]]
        inputs = node["inputs"]
        label = abbreviate(node["name"])
        if re.split(r"[/.]", node["name"])[-1] != node["type"]:  # "block3.add add" says add once
            label += f" {node['type']}"
        if len(inputs) > 1:
            label += f" of {len(inputs):,}"
        elif not note and inputs[0] != (names[position[node['name']] - 1] if position[node["name"]] else INPUT):
            label += f" <- {abbreviate(inputs[0], 14)}"
        levels.append({"label": label, "start": f.start[0], "rf": f.rf[0], "jump": f.jump[0]})
    sizes = [tuple(graph.input_size)] + [tuple(facts[name].n) for name in row_names[1:]]
    drawing = Drawing(sizes=sizes, unit=tuple(unit), rows=[touched[name][0] for name in row_names],
                      cols=[touched[name][1] for name in row_names], mode="schematic", names=row_names)
    return drawing, levels, note


def _pick_rows(count: int, limit: int | None = None) -> list[int]:
    """Which of `count` schematic rows to draw: all when they fit, else `limit` evenly spaced
    ones, the first and the last always among them."""
    limit = limit or MAX_ROWS
    if count <= limit:
        return list(range(count))
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)})


def abbreviate(name: str, limit: int = LABEL_CHARS) -> str:
    """A module path shortened from the right: its leading parts (the block and unit numbers
    that say where it is) and its last part (the layer) stay, the middle parts go
    ("block3/unit_6/bottleneck_v1/conv1" -> "block3/unit_6/…/conv1")."""
    if len(name) <= limit:
        return name
    parts = re.split(r"([/.])", name)  # names at even positions, separators at odd ones
    last = parts[-1]
    if len(parts) < 3 or len(last) + 2 >= limit:
        return name[:limit - 1] + "…"
    head = parts[0]
    for index in range(1, len(parts) - 2, 2):
        longer = head + parts[index] + parts[index + 1]
        if len(longer) + len(parts[-2]) + len(last) + 2 > limit:
            break
        head = longer
    if len(head) + len(last) + 3 > limit:
        head = head[:max(limit - len(last) - 3, 1)]
    return f"{head}{parts[1]}…{parts[-2]}{last}"


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


def _grid_cells(resolved, sizes) -> int:
    """How many cells a grid picture draws (every map with the padding its next layer reads)."""
    return sum((r1 - r0 + 1) * (c1 - c0 + 1) for r0, r1, c0, c1 in _extents(resolved, sizes))


def _grid_fits(resolved, sizes, gif: bool) -> bool:
    """Whether a grid picture (every frame of a GIF) stays within the cell limits."""
    frames = len(resolved.layers) + 1 if gif else 1
    return _grid_cells(resolved, sizes) * frames <= (GIF_CELL_LIMIT if gif else GRID_CELL_LIMIT)


def _refuse_grid(stack, resolved, sizes, in_channels, gif: bool) -> None:
    """Refuse a grid picture too big to draw in reasonable time and memory, before drawing
    anything: say the largest square input size that fits, or that none does."""
    frames = len(resolved.layers) + 1 if gif else 1
    limit = GIF_CELL_LIMIT if gif else GRID_CELL_LIMIT

    def fits(n: int) -> bool:
        try:
            candidate, _, candidate_sizes = _resolve(stack, n, in_channels)
        except RfsweepError:
            return True  # too small to be valid: bisect past it, checked below
        return _grid_fits(candidate, candidate_sizes, gif)

    lo, hi = 1, max(sizes[0])  # fits(lo) assumed, fits(hi) is false
    while hi - lo > 1:
        middle = (lo + hi) // 2
        lo, hi = (middle, hi) if fits(middle) else (lo, middle)
    cells = _grid_cells(resolved, sizes) * frames
    what = (f"a grid {'GIF' if gif else 'picture'} would draw {cells:,} cells"
            f"{f' over {frames} frames' if gif else ''} (at most {limit:,})")
    try:
        _resolve(stack, lo, in_channels)
    except RfsweepError:
        raise RfsweepError(f"{what} at any input size: use --mode schematic") from None
    raise RfsweepError(f"{what}: the largest input size that fits is --input-size {lo}; "
                       "or use --mode schematic (auto picks it)")


def _on_a_plane(stack, input_size, in_channels, rank, plane):
    """(network, input_size, in_channels, words, axis): a 1-D or 3-D network as the 2-D network drawn
    (plane.py); axis names the network's axis the schematic's rows run along."""
    from .graph import evaluate, load_graph
    from .plane import plane_network

    if rank == 2 and plane is None:
        return stack, input_size, in_channels, "", "height"
    loaded = load_graph(stack, input_size, in_channels, rank)
    if loaded.rank == 2 and plane is None:
        return stack, input_size, in_channels, "", "height"  # as given: a chain stays a chain
    evaluate(loaded)  # the axes the picture leaves out must be valid too (a map that empties there)
    network, words, axis = plane_network(loaded, plane)
    return network, None, None, words, axis


def draw(stack, out=None, unit=None, input_size=None, in_channels=None, mode: str = "auto",
         dpi: int = 100, end_point: str | None = None, name: str | None = None, rank: int | None = None,
         plane: str | None = None) -> Drawing:
    """Draw the footprint of one top unit of `stack`; write it to `out` (.png, .svg, .gif) if given.

    `stack` is anything `rfsweep.analyze` takes; `unit` is (row, col) of the
    top map (default: its centre); mode "auto" picks "grid" for small maps
    (every map with its padding at most 32 cells a side, at most 8 layers)
    and "schematic" otherwise; a grid larger than GRID_CELL_LIMIT cells
    (GIF_CELL_LIMIT over all frames of a GIF) is refused before drawing, with
    the largest input size that fits. A .gif steps layer by layer. Multi-path
    networks (a graph with "nodes") are drawn as a schematic with one row per
    node that the end-point (default: the graph's output) reads from, or, past
    MAX_ROWS rows, the widest path sampled evenly. `name` titles the picture
    (default: the network's own name). A 1-D network is drawn as an L x 1
    strip and a 3-D one as the `plane` ("height,width", "depth,height" or
    "depth,width") through the traced unit: fields are per axis, so both are
    exact. Returns a Drawing with the traced index sets and the figure.
    """
    if mode not in ("auto", "grid", "schematic"):
        raise RfsweepError(f"mode must be auto, grid or schematic, got {mode!r}")
    kind = None
    if out is not None:
        out, kind = _check_output(out)
    stack, input_size, in_channels, words, axis = _on_a_plane(stack, input_size, in_channels, rank, plane)
    if unit is not None and len(unit) == 1:
        if not words.startswith("1-D"):
            raise RfsweepError(f"--unit must be I,J (row, column of the top map) for a 2-D or 3-D network; "
                               f"{unit[0]} names one axis")
        unit = (unit[0], 0)
    graph = _graph_of(stack, input_size, in_channels)
    if graph is not None:
        if mode == "grid":
            raise RfsweepError("multi-path networks are drawn as a schematic: use --mode schematic or auto")
        Figure, Canvas = _matplotlib()
        drawing, levels, note = _graph_footprint(graph, unit, end_point)
        drawing.mode = "schematic"
        drawing.axis = axis
        title = name or graph.name or "network"
        title += f" ({words})" if words else ""
        picked = list(range(len(levels)))

        def render(figure, shown):
            _render_schematic(figure, title, levels, picked, drawing, shown, note)
    else:
        if end_point is not None:
            raise RfsweepError("--end-point names a node of a multi-path network; a stack is drawn whole")
        resolved, result, sizes = _resolve(stack, input_size, in_channels)
        drawing = _footprint(resolved, sizes, unit)
        drawing.mode = _choose_mode(resolved, sizes, mode)
        drawing.axis = axis
        if drawing.mode == "grid" and not _grid_fits(resolved, sizes, kind == "gif"):
            if mode == "grid":
                _refuse_grid(stack, resolved, sizes, in_channels, kind == "gif")
            drawing.mode = "schematic"  # auto: too many cells for a grid
        Figure, Canvas = _matplotlib()
        title = name or resolved.name or resolved.compact()
        title += f" ({words})" if words else ""
        picked = _pick_rows(len(sizes))
        every = _chain_levels(resolved, result)
        levels = [every[level] for level in picked]
        note = "" if len(picked) == len(sizes) else f"{len(picked)} of {len(sizes)} maps, evenly spaced"

        def render(figure, shown):
            if drawing.mode == "grid":
                _render_grid(figure, resolved, result, drawing, shown, title)
            else:
                _render_schematic(figure, title, levels, picked, drawing, shown, note)
    steps = len(drawing.sizes) - 1 if drawing.mode == "grid" else len(levels) - 1
    figsize = (_grid_size(resolved, sizes) if drawing.mode == "grid" else (10, 2.3 + 0.34 * len(levels)))

    def figure_for(shown: int):
        figure = Figure(figsize=figsize, dpi=dpi)
        Canvas(figure)
        render(figure, shown)
        return figure

    drawing.figure = figure_for(steps)
    if out is None:
        return drawing
    from .output import atomic_output

    with atomic_output(out, suffix=out.suffix) as tmp:  # Pillow picks the format by name
        if kind == "gif":
            shown = _pick_rows(steps + 1, GIF_FRAMES)
            _write_gif(tmp, (drawing.figure if step == steps else figure_for(step) for step in shown), dpi)
        else:
            drawing.figure.savefig(tmp, format=kind, dpi=dpi, facecolor="white")
    drawing.path = out
    return drawing


def _write_gif(path: Path, figures, dpi: int) -> None:
    """One frame per figure (an iterable: each is rendered, then let go), one second each, all
    quantized to the last frame's palette (it holds every colour), so a colour looks the same
    in every frame: legend swatches included."""
    from PIL import Image

    images = []
    for figure in figures:
        figure.set_dpi(dpi)
        figure.canvas.draw()
        images.append(Image.frombuffer("RGBA", figure.canvas.get_width_height(), figure.canvas.buffer_rgba(),
                                       "raw", "RGBA", 0, 1).convert("RGB"))
    palette = images[-1].quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    frames = [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=1000, loop=0)


# ---------------------------------------------------------------- grid pictures

SHEAR = 0.55   # oblique projection: a row further back moves right by this much ...
SQUASH = 0.42  # ... and up by this much
GAP = 1.6      # vertical space between maps
LABEL_CELLS = 15  # room right of the maps for their labels, in cells


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
    scale = min(0.42, 9.0 / max(height, 1.0), 12.0 / max(width + LABEL_CELLS, 1.0))
    return (max(7.0, (width + LABEL_CELLS + 0.5) * scale), max(4.0, (height + 3) * scale))


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


def _render_grid(figure, resolved, result, drawing: Drawing, shown: int, title: str) -> None:
    """Oblique stacked grids; maps above level depth-shown keep the highlight.

    Each map's label says how large the traced patch is on that map (what the eye sees
    there) and, separately, how much of the input each of its units sees; the dashed
    projection lines are drawn over the maps; the legend sits below the maps.
    """
    from matplotlib.patches import Polygon

    ax = figure.add_axes((0.01, 0.1, 0.98, 0.8))
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
        rows_here, cols_here = drawing.rows[level], drawing.cols[level]
        patch = (f"{rows_here[-1] - rows_here[0] + 1}x{cols_here[-1] - cols_here[0] + 1}"
                 if traced and rows_here and cols_here else "")
        if level == 0:
            text = f"input {_size_text((h, w))}"
            if patch:
                text += f"\ntraced: {patch} pixels (the unit's RF)"
        else:
            rf = result["layers"][level - 1]["rf"]
            jump = result["layers"][level - 1]["jump"]
            rf_text = f"{rf[0]}x{rf[1]}" if isinstance(rf, list) else f"{rf}x{rf}"
            jump_text = "x".join(map(str, jump)) if isinstance(jump, list) else str(jump)
            text = f"layer {level}: {_label(resolved.layers[level - 1])}, out {_size_text((h, w))}, jump {jump_text}\n"
            if level == depth:
                text += f"chosen unit: sees {rf_text} input pixels"
            elif patch:
                text += f"traced: {patch} units (each sees {rf_text} input pixels)"
            else:
                text += f"each unit sees {rf_text} input pixels"
        ax.text(right + 0.8, middle, text, va="center", ha="left", fontsize=9)
        xs.append(right + LABEL_CELLS)
        base += SQUASH * rows_deep + GAP
    for level in range(max(lowest, 1), depth + 1):  # the cone between a traced window and the one below
        if level in boxes and level - 1 in boxes:
            for top_pt, low_pt in zip(boxes[level], boxes[level - 1]):
                ax.plot([top_pt[0], low_pt[0]], [top_pt[1], low_pt[1]], color=FOOT, linewidth=0.8,
                        alpha=0.8, linestyle=(0, (3, 2)), zorder=4, gid="projection")
    ax.set_xlim(min(xs) - 0.5, max(xs))
    ax.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
    i, j = drawing.unit
    r_in, c_in = drawing.inside(0)
    title = f"{title}\nunit ({i}, {j}) of layer {depth} sees input "
    title += f"rows {r_in[0]}..{r_in[-1]}, cols {c_in[0]}..{c_in[-1]}" if r_in and c_in else "only padding"
    figure.suptitle(title, fontsize=10, y=0.985)
    handles = [Polygon([[0, 0]], facecolor=col, edgecolor=EDGE, hatch=h, label=lab) for col, h, lab in (
        (CELL, None, "feature-map cell"), (PAD, "///", "padding"), (FOOT, None, "traced footprint"),
        (FOOT_PAD, "///", "padding read by the trace"), (UNIT, None, "chosen unit"))]
    legend = figure.legend(handles=handles, loc="lower center", ncol=5, fontsize=7.5, frameon=False,
                           bbox_to_anchor=(0.5, 0.005))
    legend.set_gid("legend")


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


def _render_schematic(figure, title: str, levels: list[dict], picked: list[int], drawing: Drawing,
                      shown: int, note: str = "") -> None:
    """One row per drawn map on the input-pixel axis (height axis): unit centres as ticks spaced
    by the jump, the traced units marked, and a bar over the RF of the unit whose centre is
    nearest the traced unit's (so every bar is centred on the same input pixel).

    `picked[row]` is the map (index into the drawing's sizes/rows) of schematic row `row`;
    rows above `shown` are left empty (GIF frames). Labels sit left of the axes, the
    per-row figures right of it and the legend above it: nothing is drawn over the data.
    """
    import numpy as np
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    width, height = figure.get_size_inches()
    label_width = (max(len(level["label"]) for level in levels) * 0.065 + 0.25) / width
    right_width = 1.5 / width
    top_space = 1.0 / height
    ax = figure.add_axes((label_width, 0.7 / height, 1 - label_width - right_width - 0.01,
                          1 - top_space - 0.7 / height))
    sizes = drawing.sizes
    top_level = picked[-1]
    i_top = drawing.unit[0]
    top = levels[-1]
    centre = top["start"] + i_top * top["jump"]
    n = sizes[0][0]
    lo, hi = centre - (top["rf"] - 1) / 2, centre + (top["rf"] - 1) / 2
    left, right = min(lo, -0.5) - 2, max(hi, n - 0.5) + 2
    ax.axvspan(-0.5, n - 0.5, color="0.93", zorder=0)
    for row, level in enumerate(picked):
        if row > shown:
            break
        start, rf, jump = levels[row]["start"], levels[row]["rf"], levels[row]["jump"]
        units = sizes[level][0]
        first = max(0, int(np.ceil((left - start) / jump)))
        last = min(units - 1, int(np.floor((right - start) / jump)))
        positions = start + np.arange(first, last + 1, max(1, (last - first + 1) // 400 + 1)) * jump
        ax.add_collection(LineCollection([((x, row - 0.18), (x, row + 0.18)) for x in positions],
                                         colors="0.45", linewidths=0.6, zorder=2))
        nearest = min(max(round((centre - start) / jump), 0), units - 1)  # the unit under the trace
        c = start + nearest * jump
        bar = ax.barh(row, rf, left=c - (rf - 1) / 2 - 0.5, height=0.5, color=FOOT, alpha=0.45, zorder=1)
        bar.patches[0].set_gid(f"bar:{level}")
        traced = drawing.inside(level)[0]
        if traced:
            xs = start + np.asarray(traced, dtype=float) * jump
            marks = ax.scatter(xs, np.full(len(xs), row), s=9, color=UNIT if level == top_level else FOOT,
                               zorder=3)
            marks.set_gid(f"trace:{level}")
        if len(picked) <= MAX_ROWS:
            ax.text(1.01, row, f"{units:,} units, jump {jump:,}\nRF {rf:,}", transform=ax.get_yaxis_transform(),
                    ha="left", va="center", fontsize=6.5 if len(picked) > 20 else 7.5, color="0.3")
    ax.set_yticks(range(len(picked)), [level["label"] for level in levels],
                  fontsize=8 if len(picked) <= 20 else 6.5)
    ax.set_ylim(-0.7, len(picked) - 0.3)
    ax.set_xlim(left, right)
    ax.set_xlabel(f"input pixel ({drawing.axis} axis, 0-indexed centres; shaded: the input, outside it padding)",
                  fontsize=8)
    r_in = drawing.inside(0)[0]
    end = drawing.names[-1] if drawing.names else f"layer {len(sizes) - 1}"
    lines = [title if len(title) <= 100 else title[:99] + "…",
             f"unit ({i_top}, {drawing.unit[1]}) of {end}: RF {top['rf']:,} on the {drawing.axis} axis, input rows "
             f"{r_in[0] if r_in else '-'}..{r_in[-1] if r_in else '-'}" + (f"; rows: {note}" if note else "")]
    figure.suptitle("\n".join(lines), fontsize=9, y=1 - 0.08 / height, va="top")
    handles = [Line2D([], [], color="0.45", marker="|", linestyle="none", markersize=8, label="unit centres (jump apart)"),
               Patch(facecolor=FOOT, alpha=0.45, label="RF of the unit under the trace"),
               Line2D([], [], color=FOOT, marker="o", linestyle="none", markersize=4, label="units the trace reads"),
               Line2D([], [], color=UNIT, marker="o", linestyle="none", markersize=4, label="traced unit")]
    legend = figure.legend(handles=handles, loc="lower center", ncol=4, fontsize=7.5, frameon=False,
                           bbox_to_anchor=(0.5, 1 - top_space + 0.05 / height))
    legend.set_gid("legend")
