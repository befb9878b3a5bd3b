"""Exact tiled inference: which halo do my tiles need so that stitched == whole?

A network is translation-equivariant on its own grid: shifting the input by a
multiple of every node's step per period (`multiple`, the alignment of every
downsampling) shifts each node's map by whole periods, so a unit computed
inside a tile equals the whole-image unit whenever everything it depends on
lies inside the tile (or the tile's edge is the image's edge, where the
network's own padding applies to both alike). The per-phase fields of the
end-point (`periodic.py`) say exactly which input pixels each output unit
reads, so the plan cuts the output into blocks, one per tile core, and reads
around each core the smallest aligned halo that holds the fields of every
unit it keeps. Read sizes stay congruent to the input size modulo
`multiple`, so every tile runs the network as the whole image does (valid
U-Nets need 572 = 12 mod 16, not a multiple of 16).

Refused, naming the node: what reads a size-dependent grid (TF 'SAME'
padding whose split changes with the tile, align_corners upsampling) or the
whole map (global pooling, gates, heads before the end-point).
"""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction

from .errors import RfsweepError
from .graph import INPUT, Graph, ancestors, axis_value, evaluate, load_graph, node_reads, size_text

GLOBAL_NODES = ("global", "global_pool", "flatten", "linear")
AXIS_NAMES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}
DTYPE_BYTES = {"float16": 2, "half": 2, "bfloat16": 2, "float32": 4, "float": 4, "float64": 8, "double": 8,
               "int8": 1, "uint8": 1}
_UNITS = {"": 1, "b": 1, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "tb": 10 ** 12,
          "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}


def parse_bytes(text) -> int:
    """'8GB' (decimal), '8GiB' (binary), '512MB' or a plain number of bytes."""
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        return text
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _UNITS:
        raise RfsweepError(f"max-memory must be a size such as 8GB, 512MiB or 1000000 bytes, got {text!r}")
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value <= 0:
        raise RfsweepError(f"max-memory must be positive, got {text!r}")
    return value


def _graph_of(source, input_size, in_channels) -> Graph:
    if hasattr(source, "forward") and hasattr(source, "parameters"):  # a torch.nn.Module
        from .torch_import import from_torch

        return load_graph(from_torch(source, input_size=input_size or 224, in_channels=in_channels or 3))
    return load_graph(source, input_size, in_channels)


def _refuse_size_dependent(graph: Graph, needed: set, facts: dict) -> None:
    for node in graph.nodes:
        if node["name"] not in needed:
            continue
        where = f"node {node['name']!r}"
        kind = node["type"]
        if kind == "global" and "window" in node:
            raise RfsweepError(f"{where}: window attention cuts each tile's map into windows from the tile's own "
                               "origin (and models pad the map to whole windows), so a tile is not exact in "
                               "general; choose an end-point before it")
        if kind in GLOBAL_NODES:
            raise RfsweepError(f"{where}: a {kind} reads the whole map, so no tile equals the whole image "
                               "(choose an end-point before it)")
        if kind == "upsample" and node.get("align_corners", False):
            raise RfsweepError(f"{where}: align_corners upsampling maps units by the map's size, so a tile's "
                               "output differs from the whole image's; use align_corners=false to tile")
        if any(side is not None for side in facts[node["name"]].fixed):
            raise RfsweepError(f"{where}: a broadcast gate (global context) makes every unit depend on the "
                               "whole image; it cannot be tiled exactly")


def _pads_signature(graph: Graph, facts: dict) -> dict:
    return {name: f.pads for name, f in facts.items() if f.depends_on_input}


def _balanced_cores(n: int, core: int, multiple: int) -> list[tuple[int, int]]:
    """ceil(n / core) input cores [c0, c1) covering [0, n), aligned to `multiple`, as equal as alignment allows.

    Cutting n = 1000 into 256-pixel cores gives 256+256+256+232 rather than leaving a thin last core:
    the tiles' work stays even, and no tile is so small that its halo dominates.
    """
    count = max(1, -(-n // core))
    blocks = -(-n // multiple)  # aligned blocks of input; the last may be partial
    count = min(count, blocks)
    edges = [min(n, multiple * (blocks * i // count)) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _axis_cores(n: int, m_out: int, ratio: Fraction, core: int, multiple: int):
    """The output blocks [o0, o1) that partition the output, one per core [c0, c1) of the input."""
    blocks = []
    for c0, c1 in _balanced_cores(n, core, multiple):
        o0 = int(c0 * ratio)
        o1 = m_out if c1 == n else min(int(c1 * ratio), m_out)
        if o0 < o1:
            blocks.append((c0, c1, o0, o1))
        if o1 >= m_out:
            break
    return blocks


class _Exactness:
    """Which output units of a tile equal the whole image's, per axis, by following the tile's maps.

    A tile's unit is exact when every unit it reads is exact; units beyond the
    tile's map are padding (or clamped reads): exact only on a side where the
    tile's edge is the image's edge. A unit that exists in the whole map may be
    missing from the tile's (transposed convs and crops cut maps), which is why
    a field inside the tile is not enough.
    """

    def __init__(self, graph: Graph, end: str):
        self.graph, self.end = graph, end
        self._facts = {}

    def facts(self, size):
        if size not in self._facts:
            self._facts[size] = evaluate(Graph(self.graph.nodes, size, self.graph.in_channels, self.graph.output),
                                         self.end)
        return self._facts[size]

    def exact(self, size, a: int, left_edge: bool, right_edge: bool) -> list:
        facts = self.facts(size)
        exact = {INPUT: [True] * size[a]}
        by_name = {INPUT: None}
        for node in self.graph.nodes:
            name = node["name"]
            if name not in facts:
                continue
            f = facts[name]
            by_name[name] = f
            ins = [exact[item] for item in node["inputs"]]
            reads = node_reads(node, [facts.get(item) or _input(self.graph, size) for item in node["inputs"]], f, a)
            m = f.n[a]
            if reads is None:
                exact[name] = [all(column[j] for column in ins if len(column) == m) for j in range(m)]
                continue
            source = ins[0]

            def ok(u):
                if u < 0:
                    return left_edge and (not source or source[0])
                if u >= len(source):
                    return right_edge and (not source or source[-1])
                return source[u]
            exact[name] = [all(ok(u) for u, _ in reads.taps(j)) for j in range(m)]
        return exact[self.end]


def _input(graph: Graph, size):
    from types import SimpleNamespace

    return SimpleNamespace(n=size, channels=graph.in_channels)


def _axis_plan(field, n: int, m_out: int, multiple: int, tile: int, name: str, halo=None, setter=None):
    """Per axis: (lower bounds of the halo from the fields, the largest core, output blocks)."""
    if tile < multiple:
        raise RfsweepError(f"node {setter!r}: its units step {multiple} input pixels, so tile sizes must be "
                           f"multiples of {multiple}; tile {tile} is smaller ({name} axis)")
    core = multiple * max(1, round(tile / multiple))
    step = field.step
    spans = [(lo, hi) for lo, hi in zip(field.lo, field.hi) if lo is not None]
    need_top = max(0, -min(lo for lo, _ in spans))
    need_bottom = max(0, max(hi for _, hi in spans) + 1 - step)
    ratio = Fraction(field.period, field.step)  # output units per input pixel
    deficit = max(0, math.ceil(n - m_out / ratio))  # the tile's map must reach its last kept unit
    top = -(-need_top // multiple) * multiple
    bottom = max(need_bottom, deficit)
    bottom += (n - bottom) % multiple  # read sizes stay = n (mod multiple)
    if halo is not None:
        top, bottom = halo
    blocks = _axis_cores(n, m_out, ratio, core, multiple)
    return [top, bottom], max(c1 - c0 for c0, c1, _, _ in blocks), blocks, ratio


def _axis_tiles(n, halo, blocks, ratio):
    pieces = []
    for c0, c1, o0, o1 in blocks:
        y0, y1 = max(0, c0 - halo[0]), min(n, c1 + halo[1])
        shift = int(y0 * ratio)
        pieces.append(((y0, y1), (o0 - shift, o1 - shift), (o0, o1)))
    return pieces


def _grow_halo(exactness, n_pair, a, n, halo, blocks, ratio, multiple, fixed: bool):
    """Raise the halo side by side, one multiple at a time, until every kept unit is exact."""
    for _ in range(4096):
        short = [False, False]
        for (y0, y1), (k0, k1), _ in _axis_tiles(n, halo, blocks, ratio):
            size = list(n_pair)
            size[a] = y1 - y0
            exact = exactness.exact(tuple(size), a, y0 == 0, y1 == n)
            if k1 > len(exact):
                short[1] = True
                continue
            bad = [j for j in range(k0, k1) if not exact[j]]
            if bad:
                middle = (k0 + k1) / 2
                short[0] |= any(j < middle for j in bad)
                short[1] |= any(j >= middle for j in bad)
        if not any(short):
            return halo
        if fixed:
            raise RfsweepError(f"the halo {halo} is too small: some kept units differ from the whole image's")
        halo = [halo[0] + multiple * short[0], halo[1] + multiple * short[1]]
    raise RfsweepError("no halo makes the tiles exact")


def _check_tile_sizes(graph: Graph, end: str, whole_facts: dict, reads: set) -> dict:
    """Each distinct read size must run like the whole image: valid, same size-dependent padding, big enough."""
    signature = _pads_signature(graph, whole_facts)
    outputs = {}
    for size in reads:
        try:
            facts = evaluate(Graph(graph.nodes, size, graph.in_channels, graph.output), end)
        except RfsweepError as exc:
            raise RfsweepError(f"a {size_text(size)} tile does not run: {exc}") from None
        for name, pads in _pads_signature(graph, facts).items():
            if pads != signature.get(name):
                raise RfsweepError(f"node {name!r}: TF 'SAME' padding splits differently on a {size_text(size)} "
                                   f"tile ({pads}) than on the whole image ({signature.get(name)}); "
                                   "this network cannot be tiled exactly")
        outputs[size] = facts[end].n
    return outputs


def peak_bytes(graph: Graph, end: str, size, bytes_per_element: int) -> int:
    """Peak memory of the live activations (batch 1) when the graph runs node by node at `size`.

    A node's output is live from its computation to its last reader (the
    end-point's to the end); while a node runs, its inputs and its output are live.
    """
    facts = evaluate(Graph(graph.nodes, tuple(size), graph.in_channels, graph.output), end)
    order = [node for node in graph.nodes if node["name"] in facts]
    last = {INPUT: -1}
    for i, node in enumerate(order):
        for item in node["inputs"]:
            last[item] = i
    last[end] = len(order)
    elements = {INPUT: graph.in_channels * math.prod(size)}
    live = {INPUT: elements[INPUT]}
    peak = sum(live.values())
    for i, node in enumerate(order):
        f = facts[node["name"]]
        elements[node["name"]] = f.channels * math.prod(f.n)
        live[node["name"]] = elements[node["name"]]
        peak = max(peak, sum(live.values()))
        for item in list(live):
            if last.get(item, -1) <= i:
                del live[item]
    return peak * bytes_per_element


def tile_plan(source, tile=None, input_size=None, in_channels=None, end_point=None, max_memory=None,
              dtype="float32", halo=None) -> dict:
    """The plan for cutting the input into tiles of about `tile` pixels per axis (contract section 8).

    `source`: a stack, graph (dict, file, Graph) or torch.nn.Module, of any
    rank. Returns {"input_size", "output_size", "scale", "scale_fraction",
    "rf", "multiple", "halo", "tile", "tiles": [{"read", "keep", "into"}, ...]}
    (half-open ranges, one [start, end) per axis: [[rows], [cols]] in 2-D;
    `into` partitions the output). With `max_memory` (bytes or '8GB') the
    tile is the largest whose peak activation memory at `dtype` fits,
    reported as "peak_bytes". `halo` forces [[before, after], ...] per axis
    ([[top, bottom], [left, right]] in 2-D), to see that a smaller one breaks
    exactness.
    """
    graph = _graph_of(source, input_size, in_channels)
    rank = len(graph.input_size)
    end = end_point or graph.output
    if end not in graph.names:
        raise RfsweepError(f"unknown end-point {end!r}")
    facts = evaluate(graph, end)
    _refuse_size_dependent(graph, ancestors(graph, end), facts)
    f_end = facts[end]
    if not f_end.spatial:
        raise RfsweepError(f"node {end!r}: the end-point is not a feature map; tiling needs a spatial output")
    fields = [f_end.field(a) for a in range(rank)]
    multiple = [math.lcm(*(f.field(a).step for f in facts.values() if f.spatial) or [1]) for a in range(rank)]
    setters = [next((name for name, f in facts.items() if f.spatial and f.field(a).step == multiple[a]), INPUT)
               for a in range(rank)]
    n = tuple(graph.input_size)
    if dtype not in DTYPE_BYTES:
        raise RfsweepError(f"unknown dtype {dtype!r} (one of {', '.join(DTYPE_BYTES)})")
    width = DTYPE_BYTES[dtype]
    budget = None if max_memory is None else parse_bytes(max_memory)
    if tile is None and budget is None:
        raise RfsweepError("give a tile size (--tile) or a memory budget (--max-memory)")
    halos = None if halo is None else [tuple(side) for side in halo]

    exactness = _Exactness(graph, end)

    def plan_for(t):
        """Per axis (halo, core, pieces) for a tile of about t = (th, tw)."""
        axes = []
        for a in range(rank):
            halo_a, core, blocks, ratio = _axis_plan(fields[a], n[a], f_end.n[a], multiple[a], int(t[a]),
                                                     AXIS_NAMES[rank][a], None if halos is None else halos[a],
                                                     setters[a])
            if halos is None:
                halo_a = _grow_halo(exactness, n, a, n[a], halo_a, blocks, ratio, multiple[a], False)
            axes.append((halo_a, core, _axis_tiles(n[a], halo_a, blocks, ratio)))
        return axes

    peak = None
    if budget is not None:
        unit = max(multiple)
        best = None
        lo, hi = 1, max(1, -(-max(n) // unit))
        while lo <= hi:  # the peak grows with the tile: binary search the largest that fits
            mid = (lo + hi) // 2
            t = mid * unit
            axes = plan_for((t,) * rank)
            read = tuple(max(p[0][1] - p[0][0] for p in axes[a][2]) for a in range(rank))
            value = peak_bytes(graph, end, read, width)
            if value <= budget:
                best, peak = (t,) * rank, value
                lo = mid + 1
            else:
                hi = mid - 1
        if best is None:
            raise RfsweepError(f"even the smallest tile ({unit} px plus its halo) needs more than "
                               f"{budget:,} bytes of activations at {dtype}")
        tile = best if tile is None else tuple(min(a, b) for a, b in zip(best, _per_axis(tile, rank)))
    axes = plan_for(_per_axis(tile, rank))
    tiles = [{key: [list(piece[i]) for piece in pieces] for i, key in enumerate(("read", "keep", "into"))}
             for pieces in itertools.product(*(axis[2] for axis in axes))]
    if halos is None:
        reads = {tuple(y1 - y0 for y0, y1 in t["read"]) for t in tiles}
        _check_tile_sizes(graph, end, facts, reads)
    scale = [Fraction(fields[a].period, fields[a].step) for a in range(rank)]
    plan = {"input_size": axis_value(n), "output_size": axis_value(f_end.n), "end_point": end,
            "scale": axis_value(tuple(int(s) if s.denominator == 1 else float(s) for s in scale)),
            "scale_fraction": axis_value(tuple(str(s) for s in scale)),
            "rf": axis_value(tuple(f.rf for f in fields)), "multiple": list(multiple),
            "halo": [list(axis[0]) for axis in axes], "tile": [axis[1] for axis in axes], "tiles": tiles}
    if budget is not None:
        plan.update(dtype=dtype, max_memory=budget, peak_bytes=peak)
    return plan


def _per_axis(value, rank: int) -> tuple:
    """One tile size for every axis, or one per axis."""
    if isinstance(value, (list, tuple)):
        if len(value) != rank:
            raise RfsweepError(f"tile must be one size or {rank} sizes (one per axis), got {value!r}")
        return tuple(value)
    return (value,) * rank


def tiled_predict(module, x, plan: dict):
    """Run `module` tile by tile as `plan` says and stitch the kept parts: equals module(x) exactly.

    x: a (batch, channels, *spatial) tensor of the plan's input size, at the plan's rank
    ((B, C, H, W) in 2-D, (B, C, L) in 1-D, (B, C, D, H, W) in 3-D).
    """
    rank = len(plan["halo"])
    size = _per_axis(plan["input_size"], rank)
    if tuple(x.shape[-rank:]) != size or x.dim() != rank + 2:
        raise RfsweepError(f"the plan is for a (batch, channels, {', '.join(map(str, size))}) input, "
                           f"got {tuple(x.shape)}")
    out_size = _per_axis(plan["output_size"], rank)
    out = None
    for t in plan["tiles"]:
        y = module(x[(..., *(slice(*r) for r in t["read"]))])
        if any(have < k1 for have, (_, k1) in zip(y.shape[-rank:], t["keep"])):
            raise RfsweepError(f"tile {t['read']} gave a {tuple(y.shape[-rank:])} output, smaller than its keep "
                               f"region {t['keep']}")
        if out is None:
            out = y.new_zeros(*y.shape[:-rank], *out_size)
        out[(..., *(slice(*r) for r in t["into"]))] = y[(..., *(slice(*r) for r in t["keep"]))]
    return out
