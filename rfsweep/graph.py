"""Multi-path networks: the graph model, its loader and its arithmetic.

A network is a list of named nodes, each reading the outputs of earlier
nodes (`inputs`). Layer nodes (conv, pools, pad) apply the chain step of
`arithmetic.py` -- the same functions the sweep kernel compiles -- to their
one input. Where paths meet (add, mul, concat) a unit sees every pixel that
any input sees: the union of the inputs' intervals (Araujo, Norris & Sim,
Distill 2019, "arbitrary computation graphs"); beside it, `rf_min` follows
the narrowest input (Richter et al. 2021), which tells which layers can no
longer add context for a given input size. A chain is the graph whose nodes
form one path, so `analyze` of a stack walks exactly this code too.

Node types: conv, maxpool, avgpool (section-1 fields; padding may also be
per side, [[top, bottom], [left, right]], or "same_tf"), pad, add, mul,
concat, slice, identity, relu, bn, global_pool, flatten, linear, and the
decoder nodes conv_transpose, upsample, pixel_shuffle, pixel_unshuffle,
crop. Past a decoder node a unit's field depends on its phase; such nodes
carry per-axis periodic fields (`periodic.py`) and report the largest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from . import arithmetic, periodic
from .errors import RfsweepError, read_user_json
from .layers import (DEFAULT_IN_CHANNELS, DEFAULT_INPUT_SIZE, Layer, Stack, _as_pair, _check_int,
                     _looks_like_path, load_stack, parse_json, resolve_layer)


def _python(func):
    """The plain-Python arithmetic even after a kernel compiled the module (exact ints)."""
    return getattr(func, "py_func", func)


axis_step = _python(arithmetic.axis_step)
shift_start = _python(arithmetic.shift_start)
grow_rf = _python(arithmetic.grow_rf)
conv_cost = _python(arithmetic.conv_cost)
same_tf_padding = _python(arithmetic.same_tf_padding)
union_interval = _python(arithmetic.union_interval)
erf_ratio = _python(arithmetic.erf_ratio)
transpose_out_size = _python(arithmetic.transpose_out_size)
upsample_out_size = _python(arithmetic.upsample_out_size)

LAYER_NODES = ("conv", "maxpool", "avgpool")
MERGE_NODES = ("add", "mul", "concat")
PASS_NODES = ("identity", "relu", "bn")
HEAD_NODES = ("global_pool", "flatten", "linear")  # their outputs are no longer feature maps
DECODER_NODES = ("conv_transpose", "upsample", "pixel_shuffle", "pixel_unshuffle", "crop")
NODE_TYPES = LAYER_NODES + ("pad",) + MERGE_NODES + ("slice",) + PASS_NODES + HEAD_NODES + DECODER_NODES
UPSAMPLE_MODES = ("nearest", "bilinear", "bicubic")
INPUT = "input"
INT64_SAFE = 1 << 62

_NODE_KEYS = {"name", "type", "inputs", "note"}
_EXTRA_KEYS = {"pad": {"padding"}, "slice": {"channels"}, "linear": {"out_features", "bias"},
               "conv_transpose": {"kernel", "stride", "padding", "output_padding", "dilation", "out_channels",
                                  "groups", "bias"},
               "upsample": {"scale", "mode", "align_corners"}, "pixel_shuffle": {"factor"},
               "pixel_unshuffle": {"factor"}, "crop": {"crop"}}
_GRAPH_KEYS = {"nodes", "input_size", "in_channels", "output"}
_METADATA_KEYS = {"name", "title", "source", "notes", "published", "reference", "license", "aliases"}


@dataclass(frozen=True)
class Graph:
    """A validated network: node dicts in order, input geometry and the end-point.

    `chain` is the Stack when the network came as a list of layers (a chain
    keeps its layer-by-layer report); layer fields are resolved when the
    graph is analysed, since defaults depend on the incoming channels.
    """

    nodes: tuple[dict, ...]
    input_size: tuple[int, int] = (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE)
    in_channels: int = DEFAULT_IN_CHANNELS
    output: str = ""
    name: str | None = field(default=None, compare=False)
    chain: Stack | None = field(default=None, compare=False)

    @property
    def names(self) -> list[str]:
        return [node["name"] for node in self.nodes]


# ------------------------------------------------------------------ loading

def load_graph(source, input_size=None, in_channels=None) -> Graph:
    """A graph (dict with "nodes", JSON path) or any chain that `load_stack` takes.

    Explicit `input_size`/`in_channels` override the file's. Structure is
    checked here (names, inputs, types, fields); layer fields are checked
    against channel counts by `evaluate`.
    """
    if isinstance(source, Graph):
        if input_size is None and in_channels is None:
            return source
        if source.chain is not None:
            return chain_graph(load_stack(source.chain, input_size, in_channels))
        return _replace_input(source, input_size, in_channels)
    data = source
    name = None
    if isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
        path = Path(source)
        data = read_user_json(path, "network")
        name = path.stem
        if not (isinstance(data, dict) and "nodes" in data):
            return chain_graph(parse_json(data, input_size, in_channels, name))
    if isinstance(data, dict) and "nodes" in data:
        return parse_graph(data, input_size, in_channels, name)
    return chain_graph(load_stack(source, input_size, in_channels))


def chain_graph(stack: Stack) -> Graph:
    """The graph of a stack: node i reads node i-1; names are the layers' 1-based indices."""
    nodes = tuple({"name": str(i), "type": layer.type, "inputs": [INPUT if i == 1 else str(i - 1)],
                   "layer": layer} for i, layer in enumerate(stack.layers, start=1))
    return Graph(nodes, stack.input_size, stack.in_channels, str(len(nodes)), stack.name, stack)


def _replace_input(graph: Graph, input_size, in_channels) -> Graph:
    size = graph.input_size if input_size is None else _as_pair(input_size, "input_size", None, 1)
    c_in = graph.in_channels if in_channels is None else _check_int(in_channels, "in_channels", None, 1)
    return Graph(graph.nodes, size, c_in, graph.output, graph.name)


def parse_graph(data: dict, input_size=None, in_channels=None, name=None) -> Graph:
    """Validate the structure of a graph object (contract section 6)."""
    unknown = sorted(set(data) - _GRAPH_KEYS - _METADATA_KEYS)
    if unknown:
        raise RfsweepError(f"unknown key {unknown[0]!r} in graph object "
                           f"(allowed: {', '.join(sorted(_GRAPH_KEYS | _METADATA_KEYS))})")
    raw_nodes = data["nodes"]
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise RfsweepError("'nodes' must be a non-empty list")
    size = _as_pair(data.get("input_size", DEFAULT_INPUT_SIZE) if input_size is None else input_size,
                    "input_size", None, 1)
    c_in = _check_int(data.get("in_channels", DEFAULT_IN_CHANNELS) if in_channels is None else in_channels,
                      "in_channels", None, 1)
    seen: set[str] = set()
    nodes = []
    previous = INPUT
    for position, raw in enumerate(raw_nodes, start=1):
        node = _parse_node(raw, position, previous, seen)
        seen.add(node["name"])
        nodes.append(node)
        previous = node["name"]
    output = data.get("output", previous)
    if not isinstance(output, str) or output not in seen:
        raise RfsweepError(f"output {output!r} is not a node of the graph")
    title = data.get("name", name)
    return Graph(tuple(nodes), size, c_in, output, title if isinstance(title, str) else name)


def _parse_node(raw, position: int, previous: str, seen: set[str]) -> dict:
    if not isinstance(raw, dict):
        raise RfsweepError(f"node {position}: expected an object with 'name' and 'type', got {raw!r:.80}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise RfsweepError(f"node {position}: needs a 'name' (a non-empty string)")
    where = f"node {name!r}"
    if name == INPUT:
        raise RfsweepError(f"{where}: 'input' names the network's input; choose another name")
    if name in seen:
        raise RfsweepError(f"{where}: duplicate name (node {position})")
    kind = raw.get("type")
    if kind not in NODE_TYPES:
        raise RfsweepError(f"{where}: unknown node type {kind!r} (allowed: {', '.join(NODE_TYPES)})")
    inputs = raw.get("inputs", [previous])
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(item, str) for item in inputs):
        raise RfsweepError(f"{where}: 'inputs' must be a non-empty list of node names")
    for item in inputs:
        if item != INPUT and item not in seen:
            hint = " (itself: a cycle)" if item == name else " (nodes must come after their inputs; no cycles)"
            raise RfsweepError(f"{where}: unknown input {item!r}{hint}")
    if kind not in MERGE_NODES and len(inputs) != 1:
        raise RfsweepError(f"{where}: a {kind} node takes exactly one input, got {len(inputs)}")
    allowed = _NODE_KEYS | _EXTRA_KEYS.get(kind, set())
    if kind in LAYER_NODES:
        allowed = allowed | {"kernel", "stride", "padding", "dilation", "out_channels", "groups", "bias",
                             "ceil_mode"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise RfsweepError(f"{where}: unknown field {unknown[0]!r} for a {kind} node "
                           f"(allowed: {', '.join(sorted(allowed))})")
    node = {key: value for key, value in raw.items() if key != "note"}
    node["inputs"] = list(inputs)
    return node


# ------------------------------------------------------------------ arithmetic

@dataclass
class Facts:
    """What one node's output map is: per-axis (h, w) tuples, then channels and costs.

    `rf`/`start` describe the part of the field that moves with the unit
    (unit i sees it shifted by i*jump). A broadcast input (a squeeze-excitation
    gate: one vector for every unit) adds a part that does not move: `fixed`,
    per axis an interval (lo, hi) of input pixels or None, passed on unchanged
    by later layers. What a unit sees is the union of both (`seen`). Likewise
    `rf_min` is the narrowest moving path and `fixed_min` the narrowest path
    through a gate (a width that no later layer grows); `narrowest` is the smaller.
    """

    n: tuple
    rf: tuple
    rf_min: tuple
    jump: tuple
    start: tuple
    start_min: tuple
    var: tuple  # ERF variance (uniform weights)
    mean: tuple  # ERF centre: equals start on a chain, differs after unequal merges
    channels: int
    params: int = 0
    macs: int = 0
    spatial: bool = True
    layer: Layer | None = None
    pads: tuple | None = None  # ((top, bottom), (left, right)) as resolved for this input size
    depends_on_input: bool = False  # TF 'SAME' padding that changes with the input size
    fixed: tuple = (None, None)
    fixed_min: tuple = (None, None)
    fields: tuple | None = None  # per axis a periodic.Field once a decoder node is upstream, else None
    paths: tuple | None = None  # per axis the narrowest paths' Fields (rf_min), with `fields`
    origin: str | None = None  # the decoder node that first made a unit's field depend on its phase

    def seen(self, a: int) -> tuple:
        """(rf, start) of everything unit 0 sees along axis a: the moving and the fixed part."""
        if self.fixed[a] is None:
            return self.rf[a], self.start[a]
        lo, hi = self.fixed[a]
        return union_interval(self.start[a], self.rf[a], (lo + hi) / 2.0, hi - lo + 1)

    def narrowest(self, a: int) -> int:
        """rf_min along axis a over every path, gated ones included."""
        gate = self.fixed_min[a]
        return self.rf_min[a] if gate is None else min(self.rf_min[a], gate)

    def seen_pair(self) -> tuple:
        return tuple(zip(*(self.seen(a) for a in range(2))))  # ((rf_h, rf_w), (start_h, start_w))

    def carried(self) -> dict:
        """The fields a layer or pass-through node hands on unchanged (the fixed parts)."""
        return {"fixed": self.fixed, "fixed_min": self.fixed_min, "origin": self.origin,
                "fields": self.fields, "paths": self.paths}

    def field(self, a: int) -> periodic.Field:
        """The moving field along axis a, as a periodic Field (one phase on ordinary maps)."""
        if self.fields is not None:
            return self.fields[a]
        return periodic.ordinary(self.rf[a], self.start[a], self.jump[a], self.mean[a], self.var[a])

    def path_fields(self, a: int) -> list:
        if self.paths is not None:
            return list(self.paths[a])
        return [periodic.ordinary(self.rf_min[a], self.start_min[a], self.jump[a])]


def _input_facts(graph: Graph) -> Facts:
    return Facts(n=graph.input_size, rf=(1, 1), rf_min=(1, 1), jump=(1, 1), start=(0.0, 0.0),
                 start_min=(0.0, 0.0), var=(0.0, 0.0), mean=(0.0, 0.0), channels=graph.in_channels)


def _pads(value, where: str):
    """Explicit padding as ((top, bottom), (left, right))."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, list) for v in value):
        return tuple(_as_pair(side, "padding", None, 0) for side in value)
    try:
        p_h, p_w = _as_pair(value, "padding", None, 0)
    except RfsweepError as exc:
        raise RfsweepError(f"{where}: {exc} (or [[top, bottom], [left, right]], or \"same_tf\")") from None
    return (p_h, p_h), (p_w, p_w)


def _resolve(node: dict, c_in: int, where: str):
    """(Layer, pads or None for same_tf) of a conv/pool node against its incoming channels."""
    if "layer" in node:  # a chain's already-resolved layer
        layer = node["layer"]
        return layer, tuple((p, p) for p in layer.padding)
    raw = {key: value for key, value in node.items() if key not in ("name", "inputs")}
    if raw.get("groups") == "depthwise":
        raw["groups"] = c_in
    padding = raw.get("padding")
    pads = None
    if padding == "same_tf":
        raw["padding"] = 0
    elif padding is not None:
        pads = _pads(padding, where)
        raw["padding"] = [max(pads[0]), max(pads[1])]  # PyTorch's pool rule, checked per side
    try:
        layer = resolve_layer(raw, 0, c_in)
    except RfsweepError as exc:
        raise RfsweepError(f"{where}: {str(exc).removeprefix('layer 0: ')}") from None
    if padding is None:
        pads = tuple((p, p) for p in layer.padding)
    return layer, pads


_WINDOW_KEYS = ("n", "rf", "jump", "var", "rf_min", "start", "start_min", "mean")
arithmetic_out_size = _python(arithmetic.out_size)


def _check_size(n, f: Facts, where: str) -> None:
    if min(n) < 1:
        size = f.n[0] if f.n[0] == f.n[1] else f"{f.n[0]}x{f.n[1]}"
        raise RfsweepError(f"{where}: output size < 1 pixel (input to this layer is {size})")


def _jump_value(jump):
    """An exact jump as a plain number: int where it is one, else float (the fraction is reported beside)."""
    return int(jump) if jump.denominator == 1 else float(jump)


def _periodic_facts(n, fields, paths, origin) -> dict:
    """Facts' per-axis figures from periodic fields: rf the largest field, start/ERF of unit 0.

    Where every axis is back to one phase the fields are dropped (the ordinary
    arithmetic then takes over, exactly: with one phase the narrowest path
    field fits, translated, inside every other).
    """
    out = {key: [] for key in ("rf", "jump", "var", "rf_min", "start", "start_min", "mean")}
    for field, candidates in zip(fields, paths):
        first = next(r for r, lo in enumerate(field.lo) if lo is not None)
        narrow = min(candidates, key=lambda c: c.rf)
        narrow_first = next(r for r, lo in enumerate(narrow.lo) if lo is not None)
        for key, value in (("rf", field.rf), ("jump", _jump_value(field.jump)), ("var", field.var[first]),
                           ("rf_min", narrow.rf), ("start", field.start(first)),
                           ("start_min", narrow.start(narrow_first)), ("mean", field.mean[first])):
            out[key].append(value)
    ordinary = all(f.period == 1 and f.lo[0] is not None for f in fields) and all(
        len(c) == 1 for c in paths)
    return {"n": tuple(n), **{key: tuple(values) for key, values in out.items()},
            "fields": None if ordinary else tuple(fields),
            "paths": None if ordinary else tuple(tuple(c) for c in paths),
            "origin": None if ordinary else origin}


def _periodic_step(f: Facts, n, reads, where: str, name) -> dict:
    """Apply per-axis `periodic.Reads` to the field of every path (rf) and of each narrowest path."""
    try:
        fields = tuple(periodic.apply(f.field(a), reads[a]) for a in range(2))
        paths = tuple(periodic.prune([periodic.apply(p, reads[a]) for p in f.path_fields(a)]) for a in range(2))
    except periodic.PeriodError as exc:
        raise RfsweepError(f"{where}: {exc}") from None
    origin = f.origin if f.origin is not None else name
    return {**_periodic_facts(n, fields, paths, origin), "fixed": f.fixed, "fixed_min": f.fixed_min}


def _apply_window(f: Facts, where: str, kernel, stride, dilation, pads, ceil_mode) -> dict:
    """The chain step on both axes (arithmetic.py), for rf and rf_min alike."""
    if f.fields is not None:  # past a decoder node: the same window on the periodic fields
        n = tuple(arithmetic_out_size(f.n[a], kernel[a], stride[a], pads[a][0], pads[a][1], dilation[a], ceil_mode)
                  for a in range(2))
        _check_size(n, f, where)
        reads = [periodic.window(kernel[a], stride[a], pads[a][0], dilation[a]) for a in range(2)]
        return _periodic_step(f, n, reads, where, None)
    axes = []
    for a in (0, 1):
        k, s, d = kernel[a], stride[a], dilation[a]
        p_before, p_after = pads[a]
        jump_in = f.jump[a]
        n, rf, jump, var = axis_step(f.n[a], f.rf[a], jump_in, f.var[a], k, s, p_before, p_after, d, ceil_mode)
        if n < 1:
            _check_size((n,), f, where)
        axes.append((n, rf, jump, var, grow_rf(f.rf_min[a], jump_in, k, d),
                     shift_start(f.start[a], jump_in, k, p_before, d),
                     shift_start(f.start_min[a], jump_in, k, p_before, d),
                     shift_start(f.mean[a], jump_in, k, p_before, d)))
    return {**dict(zip(_WINDOW_KEYS, zip(*axes))), **f.carried()}


def _layer_node(node: dict, f: Facts, where: str) -> Facts:
    layer, pads = _resolve(node, f.channels, where)
    depends = False
    if pads is None:  # TF 'SAME': resolved against this input's size, per axis
        pads = tuple(same_tf_padding(f.n[a], layer.kernel[a], layer.stride[a], layer.dilation[a]) for a in range(2))
        depends = any(s > 1 for s in layer.stride)
    geometry = _apply_window(f, where, layer.kernel, layer.stride, layer.dilation, pads, layer.ceil_mode)
    params = macs = 0
    if layer.is_conv:
        params, macs = conv_cost(layer.kernel[0], layer.kernel[1], f.channels, layer.out_channels,
                                 layer.groups, layer.bias, geometry["n"][0], geometry["n"][1])
    return Facts(**geometry, channels=layer.out_channels, params=params, macs=macs, spatial=f.spatial,
                 layer=layer, pads=pads, depends_on_input=depends)


def _whole_map(f: Facts, where: str) -> dict:
    """A window over the whole map (global pooling, flatten): the unit sees everything."""
    return _apply_window(f, where, f.n, f.n, (1, 1), ((0, 0), (0, 0)), False)


def _merge_node(node: dict, ins: list[Facts], names: list[str], where: str) -> Facts:
    kind = node["type"]
    sizes = {f.n for f in ins}
    if kind == "concat":
        if len(sizes) > 1:
            raise RfsweepError(f"{where}: concat of different spatial sizes "
                               + ", ".join(f"{name} {f.n[0]}x{f.n[1]}" for name, f in zip(names, ins)))
        channels = sum(f.channels for f in ins)
    else:  # add, mul: 1x1 inputs (a squeeze-excitation gate) broadcast over the map
        maps = {n for n in sizes if n != (1, 1)}
        if len(maps) > 1:
            raise RfsweepError(f"{where}: {kind} of different spatial sizes "
                               + ", ".join(f"{name} {f.n[0]}x{f.n[1]}" for name, f in zip(names, ins)))
        counts = {f.channels for f in ins}
        if kind == "add" and len(counts) > 1 or kind == "mul" and len(counts - {1}) > 1:
            raise RfsweepError(f"{where}: {kind} of different channel counts "
                               + ", ".join(f"{name} {f.channels}" for name, f in zip(names, ins)))
        channels = max(counts)
    main = max(ins, key=lambda f: f.n[0] * f.n[1])
    for a in range(2):
        if main.n[a] > 1:
            jumps = {f.field(a).jump if f.fields is not None else f.jump[a] for f in ins if f.n[a] > 1}
            if len(jumps) > 1:
                raise RfsweepError(f"{where}: inputs are not aligned: jumps differ ("
                                   + ", ".join(f"{name} {_jump_text(f, a)}" for name, f in zip(names, ins)
                                               if f.n[a] > 1) + "); the network is not aligned")
    # a 1x1 input on a larger map is one vector for every unit: its whole field stays put
    broadcast = [f.n == (1, 1) and main.n != (1, 1) for f in ins]
    moving = [f for f, fixed in zip(ins, broadcast) if not fixed]
    weights = [f.channels for f in ins] if kind == "concat" else [1] * len(ins)
    total = sum(weights)
    out = {key: [] for key in ("rf", "rf_min", "start", "start_min", "var", "mean", "fixed", "fixed_min")}
    for a in range(2):
        rf, start = moving[0].rf[a], moving[0].start[a]
        for f in moving[1:]:
            rf, start = union_interval(start, rf, f.start[a], f.rf[a])
        fixed = [f.fixed[a] for f in moving if f.fixed[a] is not None]
        for f, gate in zip(ins, broadcast):
            if gate:
                seen_rf, seen_start = f.seen(a)
                fixed.append((seen_start - (seen_rf - 1) / 2.0, seen_start + (seen_rf - 1) / 2.0))
        fixed_part = (min(lo for lo, _ in fixed), max(hi for _, hi in fixed)) if fixed else None
        narrow = min(moving, key=lambda f: f.rf_min[a])
        gated = [f.fixed_min[a] for f in moving if f.fixed_min[a] is not None]
        gated += [f.narrowest(a) for f, gate in zip(ins, broadcast) if gate]
        mean = sum(w * f.mean[a] for w, f in zip(weights, ins)) / total
        var = sum(w * (f.var[a] + (f.mean[a] - mean) ** 2) for w, f in zip(weights, ins)) / total
        for key, value in (("rf", rf), ("start", start), ("rf_min", narrow.rf_min[a]),
                           ("start_min", narrow.start_min[a]), ("var", var), ("mean", mean),
                           ("fixed", fixed_part), ("fixed_min", min(gated) if gated else None)):
            out[key].append(value)
    merged = {key: tuple(values) for key, values in out.items()}
    if any(f.fields is not None for f in moving):  # past a decoder: union per phase
        moving_weights = [w for w, fixed in zip(weights, broadcast) if not fixed]
        try:
            fields = tuple(periodic.union([f.field(a) for f in moving], moving_weights) for a in range(2))
            paths = tuple(periodic.prune([p for f in moving for p in f.path_fields(a)]) for a in range(2))
        except periodic.PeriodError as exc:
            raise RfsweepError(f"{where}: {exc}") from None
        origin = next((f.origin for f in moving if f.origin is not None), None)
        merged.update(_periodic_facts(main.n, fields, paths, origin))
        return Facts(channels=channels, spatial=any(f.spatial for f in ins), **merged)
    return Facts(n=main.n, jump=main.jump, channels=channels, spatial=any(f.spatial for f in ins), **merged)


def _jump_text(f: Facts, a: int) -> str:
    return str(f.field(a).jump) if f.fields is not None else str(f.jump[a])


def _pair_field(node: dict, key: str, where: str, default, minimum: int) -> tuple[int, int]:
    try:
        return _as_pair(node.get(key, default), key, None, minimum)
    except RfsweepError as exc:
        raise RfsweepError(f"{where}: {exc}") from None


def _flag(node: dict, key: str, where: str, default: bool) -> bool:
    value = node.get(key, default)
    if not isinstance(value, bool):
        raise RfsweepError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def _conv_transpose(node: dict, f: Facts, where: str):
    """(out sizes, reads, out channels, params, MACs) of a transposed conv, checked as PyTorch does."""
    if "kernel" not in node:
        raise RfsweepError(f"{where}: a conv_transpose node needs 'kernel'")
    kernel = _pair_field(node, "kernel", where, None, 1)
    stride = _pair_field(node, "stride", where, 1, 1)
    padding = _pair_field(node, "padding", where, 0, 0)
    extra = _pair_field(node, "output_padding", where, 0, 0)
    dilation = _pair_field(node, "dilation", where, 1, 1)
    for a in range(2):
        if extra[a] >= stride[a] and extra[a] >= dilation[a]:
            raise RfsweepError(f"{where}: output_padding {extra[a]} must be smaller than stride {stride[a]} "
                               f"or dilation {dilation[a]} (PyTorch's rule)")
    c_out = node.get("out_channels", f.channels)
    groups = node.get("groups", 1)
    for key, value in (("out_channels", c_out), ("groups", groups)):
        _check_int(value, f"{where}: {key}", None, 1)
    if f.channels % groups or c_out % groups:
        raise RfsweepError(f"{where}: groups {groups} must divide in_channels {f.channels} and "
                           f"out_channels {c_out}")
    bias = _flag(node, "bias", where, True)
    n = tuple(transpose_out_size(f.n[a], kernel[a], stride[a], padding[a], dilation[a], extra[a]) for a in range(2))
    reads = [periodic.transposed(kernel[a], stride[a], padding[a], dilation[a]) for a in range(2)]
    # weights (c_in, c_out/groups, kh, kw); one MAC per weight per *input* unit (torch.utils.flop_counter)
    params, macs = conv_cost(kernel[0], kernel[1], f.channels, c_out, groups, bias, f.n[0], f.n[1])
    return n, reads, c_out, params, macs


def _upsample(node: dict, f: Facts, where: str):
    scale = node.get("scale")
    if scale is None:
        raise RfsweepError(f"{where}: an upsample node needs 'scale' (an integer per axis)")
    values = scale if isinstance(scale, list) else [scale]
    if any(isinstance(v, float) or isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise RfsweepError(f"{where}: scale must be an integer or [h, w] integers, got {scale!r} "
                           "(a non-integer scale has no exact per-unit field)")
    scale = _pair_field(node, "scale", where, None, 1)
    mode = node.get("mode", "nearest")
    if mode not in UPSAMPLE_MODES:
        raise RfsweepError(f"{where}: mode must be one of {', '.join(UPSAMPLE_MODES)}, got {mode!r}")
    corners = _flag(node, "align_corners", where, False)
    if corners and mode == "nearest":
        raise RfsweepError(f"{where}: align_corners applies to bilinear and bicubic only (as F.interpolate)")
    n = tuple(upsample_out_size(f.n[a], scale[a]) for a in range(2))
    if mode == "nearest":
        reads = [periodic.nearest(scale[a]) for a in range(2)]
    else:
        reads = [periodic.interpolate(scale[a], mode == "bicubic", corners, f.n[a], n[a]) for a in range(2)]
    return n, reads, f.channels, 0, 0


def _shuffle(node: dict, f: Facts, where: str):
    r = node.get("factor")
    _check_int(r, f"{where}: factor", None, 1)
    if node["type"] == "pixel_shuffle":
        if f.channels % (r * r):
            raise RfsweepError(f"{where}: pixel_shuffle by {r} needs channels divisible by {r * r}, "
                               f"got {f.channels}")
        return tuple(x * r for x in f.n), [periodic.nearest(r)] * 2, f.channels // (r * r), 0, 0
    if f.n[0] % r or f.n[1] % r:
        raise RfsweepError(f"{where}: pixel_unshuffle by {r} needs a size divisible by {r}, "
                           f"got {f.n[0]}x{f.n[1]}")
    return tuple(x // r for x in f.n), [periodic.gather(r)] * 2, f.channels * r * r, 0, 0


def _crop(node: dict, f: Facts, where: str):
    if "crop" not in node:
        raise RfsweepError(f"{where}: a crop node needs 'crop' ([[top, bottom], [left, right]] removed)")
    sides = _pads(node["crop"], where)
    n = tuple(f.n[a] - sides[a][0] - sides[a][1] for a in range(2))
    if min(n) < 1:
        raise RfsweepError(f"{where}: crop {_padding_value(sides)} leaves nothing of a "
                           f"{f.n[0]}x{f.n[1]} map")
    return n, [periodic.window(1, 1, -sides[a][0], 1) for a in range(2)], f.channels, 0, 0


_DECODERS = {"conv_transpose": _conv_transpose, "upsample": _upsample, "pixel_shuffle": _shuffle,
             "pixel_unshuffle": _shuffle, "crop": _crop}


def _decoder_node(node: dict, f: Facts, where: str) -> Facts:
    """A node that reads its input through per-phase taps (`periodic.py`)."""
    n, reads, channels, params, macs = _DECODERS[node["type"]](node, f, where)
    _check_size(n, f, where)
    geometry = _periodic_step(f, n, reads, where, node["name"])
    return Facts(**geometry, channels=channels, params=params, macs=macs, spatial=f.spatial)


def node_reads(node: dict, ins: list, f: Facts, a: int):
    """Along axis a, which input units each output unit of a window or decoder node reads
    (`periodic.Reads`), from its evaluated Facts; None for merges and pass-through nodes
    (a unit reads the same unit of every input). Used to follow units through a network
    (tiling, drawing)."""
    kind = node["type"]
    if kind in LAYER_NODES:
        return periodic.window(f.layer.kernel[a], f.layer.stride[a], f.pads[a][0], f.layer.dilation[a])
    if kind == "pad":
        return periodic.window(1, 1, f.pads[a][0], 1)
    if kind in DECODER_NODES:
        return _DECODERS[kind](node, ins[0], f"node {node['name']!r}")[1][a]
    return None


def _node_facts(node: dict, ins: list[Facts], names: list[str], where: str) -> Facts:
    kind = node["type"]
    if kind in LAYER_NODES:
        return _layer_node(node, ins[0], where)
    if kind in DECODER_NODES:
        return _decoder_node(node, ins[0], where)
    if kind in MERGE_NODES:
        return _merge_node(node, ins, names, where)
    f = ins[0]
    same = dict(n=f.n, rf=f.rf, rf_min=f.rf_min, jump=f.jump, start=f.start, start_min=f.start_min,
                var=f.var, mean=f.mean, **f.carried())
    if kind in ("identity", "relu"):
        return Facts(**same, channels=f.channels, spatial=f.spatial)
    if kind == "bn":
        return Facts(**same, channels=f.channels, params=2 * f.channels, spatial=f.spatial)
    if kind == "pad":
        if "padding" not in node:
            raise RfsweepError(f"{where}: a pad node needs 'padding'")
        pads = _pads(node["padding"], where)
        return Facts(**_apply_window(f, where, (1, 1), (1, 1), (1, 1), pads, False), channels=f.channels,
                     spatial=f.spatial, pads=pads)
    if kind == "slice":
        bounds = node.get("channels")
        if (not isinstance(bounds, list) or len(bounds) != 2 or not all(isinstance(b, int) and not isinstance(b, bool)
                                                                      for b in bounds)
                or not 0 <= bounds[0] < bounds[1] <= f.channels):
            raise RfsweepError(f"{where}: 'channels' must be [start, stop) with 0 <= start < stop <= "
                               f"{f.channels} (the input's channels), got {bounds!r}")
        return Facts(**same, channels=bounds[1] - bounds[0], spatial=f.spatial)
    if kind == "global_pool":
        return Facts(**_whole_map(f, where), channels=f.channels, spatial=False)
    if kind == "flatten":
        geometry = same if f.n == (1, 1) else _whole_map(f, where)
        return Facts(**geometry, channels=f.channels * f.n[0] * f.n[1], spatial=False)
    # linear
    if f.n != (1, 1):
        raise RfsweepError(f"{where}: linear needs a flattened input (1x1), got {f.n[0]}x{f.n[1]}; "
                           "add a flatten or global_pool node before it")
    out_features = _check_int(node.get("out_features"), f"{where}: out_features", None, 1)
    bias = node.get("bias", True)
    if not isinstance(bias, bool):
        raise RfsweepError(f"{where}: bias must be true or false, got {bias!r}")
    macs = f.channels * out_features
    return Facts(**same, channels=out_features, params=macs + (out_features if bias else 0), macs=macs,
                 spatial=False)


def ancestors(graph: Graph, end_point: str) -> set[str]:
    """The end-point and every node it reads from, directly or not."""
    by_name = {node["name"]: node for node in graph.nodes}
    todo, seen = [end_point], {end_point}
    while todo:
        for item in by_name[todo.pop()]["inputs"]:
            if item != INPUT and item not in seen:
                seen.add(item)
                todo.append(item)
    return seen


def evaluate(graph: Graph, end_point: str | None = None, where=None) -> dict[str, Facts]:
    """Facts of every node needed for `end_point` (all nodes when None), in order.

    `where(node)` names a node in error messages (graphs: "node 'name'",
    chains: "layer 3 (c3x64)").
    """
    where = where or (lambda node: f"node {node['name']!r}")
    needed = None if end_point is None else ancestors(graph, end_point)
    facts: dict[str, Facts] = {INPUT: _input_facts(graph)}
    for node in graph.nodes:
        if needed is not None and node["name"] not in needed:
            continue
        names = node["inputs"]
        label = where(node)
        f = _node_facts(node, [facts[name] for name in names], names, label)
        if (f.params > INT64_SAFE or 2 * f.macs > INT64_SAFE
                or max(f.rf) > INT64_SAFE or max(f.jump) > INT64_SAFE):
            raise RfsweepError(f"{label}: totals could exceed 64-bit integers (huge channels, input or "
                               "strides); reduce them")
        facts[node["name"]] = f
    del facts[INPUT]
    return facts


# ------------------------------------------------------------------ reports

def axis_value(pair):
    """One number where both axes agree, [h, w] where they differ."""
    h, w = pair
    return h if h == w else [h, w]


def _padding_value(pads):
    (top, bottom), (left, right) = pads
    if top == bottom and left == right:
        return axis_value((top, left))
    return [[top, bottom], [left, right]]


def border_layers(graph: Graph, facts: dict[str, Facts]) -> tuple[list[str], list[str]]:
    """(unproductive, critical) layer nodes for the graph's input size (Richter et al. 2021).

    Unproductive: even the narrowest path already sees more than the input on
    every axis, so the layer adds no new context; critical: the widest path
    does somewhere, the narrowest does not.
    """
    unproductive, critical = [], []
    size = graph.input_size
    for node in graph.nodes:
        f = facts.get(node["name"])
        if f is None or node["type"] not in LAYER_NODES or not f.spatial:
            continue
        if all(f.narrowest(a) > size[a] for a in range(2)):
            unproductive.append(node["name"])
        elif any(f.seen(a)[0] > size[a] for a in range(2)):
            critical.append(node["name"])
    return unproductive, critical


def rf_path(graph: Graph, facts: dict[str, Facts], end_point: str, widest: bool = True) -> list[str]:
    """The layer nodes of the path that sets the end-point's rf (or rf_min), input first."""
    by_name = {node["name"]: node for node in graph.nodes}
    path, name = [], end_point
    while name != INPUT:
        node = by_name[name]
        if node["type"] in LAYER_NODES or node["type"] in DECODER_NODES:
            path.append(name)
        inputs = node["inputs"]
        if len(inputs) == 1:
            name = inputs[0]
            continue

        def size(item):
            if item == INPUT:
                return 1
            f = facts[item]
            return (f.seen(0)[0] * f.seen(1)[0]) if widest else (f.narrowest(0) * f.narrowest(1))
        name = max(inputs, key=size) if widest else min(inputs, key=size)
    return path[::-1]


def analyze_graph(graph: Graph, end_point: str | None = None) -> dict:
    """The contract's section-6 object: one entry per node, totals at the end-point.

    Without `end_point` every node is evaluated (the head counts in params and
    MACs) and the total describes the graph's `output`; with it, the network is
    cut to what that node reads, so the sums are the cost of that feature map.
    """
    output = graph.output if end_point is None else end_point
    if output not in graph.names:
        known = graph.names
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        raise RfsweepError(f"unknown end-point {output!r} (nodes: {shown})")
    facts = evaluate(graph, None if end_point is None else output)
    rows = []
    for index, node in enumerate(graph.nodes, start=1):
        f = facts.get(node["name"])
        if f is None:
            continue
        row = {"index": index, "name": node["name"], "type": node["type"], "inputs": list(node["inputs"])}
        if f.layer is not None:
            layer = f.layer
            row.update(kernel=axis_value(layer.kernel), stride=axis_value(layer.stride),
                       padding=_padding_value(f.pads), dilation=axis_value(layer.dilation),
                       groups=layer.groups)
        elif node["type"] == "pad":
            row["padding"] = _padding_value(f.pads)
        elif node["type"] == "slice":
            row["channels"] = list(node["channels"])
        if f.depends_on_input:
            row["padding_depends_on_input"] = True
        elif node["type"] in DECODER_NODES:
            row.update(_decoder_keys(node))
        rf, start = f.seen_pair()
        row.update(out_size=axis_value(f.n), out_channels=f.channels, rf=axis_value(rf),
                   rf_min=axis_value((f.narrowest(0), f.narrowest(1))), jump=axis_value(f.jump),
                   start=axis_value(start),
                   params=f.params, macs=f.macs, flops=2 * f.macs, spatial=f.spatial)
        row.update(phase_keys(f))
        rows.append(row)
    end = facts[output]
    macs = sum(f.macs for f in facts.values())
    erf_std = tuple(math.sqrt(v) for v in end.var)
    unproductive, critical = border_layers(graph, facts)
    end_rf, end_start = end.seen_pair()
    total = {"rf": axis_value(end_rf), "rf_min": axis_value((end.narrowest(0), end.narrowest(1))),
             "jump": axis_value(end.jump),
             "start": axis_value(end_start), "out_size": axis_value(end.n), "out_channels": end.channels,
             "eff_padding": axis_value(tuple((r - 1) / 2 - s for r, s in zip(end_rf, end_start))),
             "params": sum(f.params for f in facts.values()), "macs": macs, "flops": 2 * macs,
             "erf_std": axis_value(erf_std),
             "erf_ratio": axis_value(tuple(erf_ratio(s, r) for s, r in zip(erf_std, end_rf)))}
    if end.fields is not None:  # unit 0's ERF and padding, against unit 0's own field
        unit0 = [field.sizes[0] or field.rf for field in end.fields]
        total["eff_padding"] = axis_value(tuple((r - 1) / 2 - s for r, s in zip(unit0, end_start)))
        total["erf_ratio"] = axis_value(tuple(erf_ratio(s, r) for s, r in zip(erf_std, unit0)))
        total.update(phase_keys(end))
    return {"input": {"size": axis_value(graph.input_size), "channels": graph.in_channels},
            "output": output, "nodes": rows, "total": total,
            "unproductive": unproductive, "critical": critical,
            "border": unproductive[0] if unproductive else None,
            "rf_path": rf_path(graph, facts, output, widest=True),
            "rf_min_path": rf_path(graph, facts, output, widest=False),
            "input_dependent_padding": [row["name"] for row in rows if row.get("padding_depends_on_input")]}


def phase_keys(f: Facts) -> dict:
    """Past a decoder node: the exact jump, the period and each phase's start and size (per axis)."""
    if f.fields is None:
        return {}
    phases = tuple(tuple({"start": field.start(r), "size": field.sizes[r]} for r in range(field.period))
                   for field in f.fields)
    return {"jump_fraction": axis_value(tuple(str(field.jump) for field in f.fields)),
            "period": axis_value(tuple(field.period for field in f.fields)),
            "phases": list(phases[0]) if phases[0] == phases[1] else [list(p) for p in phases],
            "periodic_from": f.origin}


def _decoder_keys(node: dict) -> dict:
    """The decoder node's own settings, as given (defaults filled), for the report."""
    kind = node["type"]
    if kind == "conv_transpose":
        keys = {"kernel": None, "stride": 1, "padding": 0, "output_padding": 0, "dilation": 1, "groups": 1}
    elif kind == "upsample":
        keys = {"scale": None, "mode": "nearest", "align_corners": False}
    elif kind == "crop":
        keys = {"crop": None}
    else:
        keys = {"factor": None}
    return {key: node.get(key, default) for key, default in keys.items()}


def graph_story(result: dict) -> list[str]:
    """Plain sentences: which path sets the RF, which is narrowest, what is wasted."""
    total = result["total"]

    def show(path):
        if not path:
            return "no layer (the input itself)"
        names = path if len(path) <= 6 else path[:3] + ["..."] + path[-2:]
        return " -> ".join(names) + f" ({len(path)} layer{'s' if len(path) > 1 else ''})"

    lines = [f"{result['output']} sees rf {_text(total['rf'])} (jump {_text(total.get('jump_fraction', total['jump']))}): "
             f"the widest path is {show(result['rf_path'])}."]
    if total["rf_min"] != total["rf"]:
        lines.append(f"The narrowest path sees only {_text(total['rf_min'])}: {show(result['rf_min_path'])}.")
    size = _text(result["input"]["size"])
    if result["unproductive"]:
        lines.append(f"At input size {size}, {len(result['unproductive'])} layers are unproductive (even their "
                     f"narrowest path sees more than the input), from the border layer {result['border']} on; "
                     f"{len(result['critical'])} are critical.")
    elif result["critical"]:
        lines.append(f"At input size {size}, {len(result['critical'])} layers are critical (their widest path "
                     "sees more than the input, their narrowest does not); none is unproductive.")
    if "period" in total:
        lines.append(_phase_sentence(total))
    dependent = result["input_dependent_padding"]
    if dependent:
        lines.append(f"TF 'SAME' padding on stride-2 layers ({', '.join(dependent[:4])}"
                     f"{', ...' if len(dependent) > 4 else ''}) depends on the input size: "
                     "start and effective padding hold for this size only.")
    return lines


def _text(value) -> str:
    return "x".join(map(_text, value)) if isinstance(value, list) else f"{value:,}" if isinstance(value, int) \
        else str(value)


def _phase_sentence(total: dict) -> str:
    """'after `up2` each unit reads one of 2 input patterns: 13 or 14 pixels' (per axis where they differ)."""
    phases = total["phases"]
    per_axis = [phases] if isinstance(phases[0], dict) else phases
    parts = []
    for axis, items in zip(("", " (height)", " (width)")[0 if len(per_axis) == 1 else 1:], per_axis):
        sizes = sorted({item["size"] for item in items})
        words = ", ".join(map(str, sizes[:-1])) + (" or " if len(sizes) > 1 else "") + str(sizes[-1])
        parts.append(f"{len(items)} input patterns{axis}: {words} pixels")
    jump = total["jump_fraction"]
    jump = "x".join(jump) if isinstance(jump, list) else jump
    return (f"After `{total['periodic_from']}` each unit reads one of " + "; ".join(parts)
            + f" (the field repeats every {_text(total['period'])} units, {jump} input pixels per unit).")
