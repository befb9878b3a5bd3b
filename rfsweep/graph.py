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
concat, slice, identity, relu, bn, global (every unit reads the whole input
map: attention, token mixing), global_pool, flatten, linear, and the
decoder nodes conv_transpose, upsample, pixel_shuffle, pixel_unshuffle,
crop. Past a decoder node a unit's field depends on its phase; such nodes
carry per-axis periodic fields (`periodic.py`) and report the largest. Any
node may carry `params`: learned parameters its op uses beyond its own
formula (a gain on a conv weight, layer scale, positional embeddings), and
`macs`: work beyond it (attention's matmuls, a class token's rows); both add
to its counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import arithmetic, periodic
from .errors import RfsweepError, read_user_json
from .facts import (WINDOW_KEYS, Facts, axes_product, check_size, periodic_facts, periodic_step, size_text,
                    union_interval)
from .jit import plain_python
from .layers import (DEFAULT_IN_CHANNELS, DEFAULT_INPUT_SIZE, Stack, _as_axes, _check_int, decoder_token,
                     explicit_rank, has_decoder_tokens, input_axes, _looks_like_path, load_stack,
                     parse_compact_layers, parse_json, resolve_layer)
from .mixing import first_global, gate_sees_everything, global_merge, global_node, merged_patch, settle_patch


axis_step = plain_python(arithmetic.axis_step)
shift_start = plain_python(arithmetic.shift_start)
grow_rf = plain_python(arithmetic.grow_rf)
conv_cost = plain_python(arithmetic.conv_cost)
same_tf_padding = plain_python(arithmetic.same_tf_padding)
erf_ratio = plain_python(arithmetic.erf_ratio)
transpose_out_size = plain_python(arithmetic.transpose_out_size)
upsample_out_size = plain_python(arithmetic.upsample_out_size)

LAYER_NODES = ("conv", "maxpool", "avgpool")
MERGE_NODES = ("add", "mul", "concat")
PASS_NODES = ("identity", "relu", "bn")
MIXING_NODES = ("global",)  # every output unit reads every unit of the input map
HEAD_NODES = ("global_pool", "flatten", "linear")  # their outputs are no longer feature maps
DECODER_NODES = ("conv_transpose", "upsample", "pixel_shuffle", "pixel_unshuffle", "crop")
NODE_TYPES = (LAYER_NODES + ("pad",) + MERGE_NODES + ("slice",) + PASS_NODES + MIXING_NODES + HEAD_NODES
              + DECODER_NODES)
UPSAMPLE_MODES = ("nearest", "bilinear", "bicubic")
_LINEAR_MODE = {1: "linear", 3: "trilinear"}  # F.interpolate's names at rank 1 and 3
INPUT = "input"
INT64_SAFE = 1 << 62

_NODE_KEYS = {"name", "type", "inputs", "note", "params", "macs"}
_EXTRA_KEYS = {"pad": {"padding"}, "slice": {"channels"}, "linear": {"out_features", "bias"},
               "global": {"out_channels", "period", "window"},
               "conv_transpose": {"kernel", "stride", "padding", "output_padding", "dilation", "out_channels",
                                  "groups", "bias"},
               "upsample": {"scale", "mode", "align_corners"}, "pixel_shuffle": {"factor"},
               "pixel_unshuffle": {"factor"}, "crop": {"crop"}}
_GRAPH_KEYS = {"nodes", "input_size", "in_channels", "output", "rank"}
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
    def rank(self) -> int:
        """The number of spatial axes (1, 2 or 3)."""
        return len(self.input_size)

    @property
    def names(self) -> list[str]:
        return [node["name"] for node in self.nodes]


# ------------------------------------------------------------------ loading

def load_graph(source, input_size=None, in_channels=None, rank=None) -> Graph:
    """A graph (dict with "nodes", JSON path) or any chain that `load_stack` takes.

    Explicit `input_size`/`in_channels` override the file's. Structure is
    checked here (names, inputs, types, fields); layer fields are checked
    against channel counts by `evaluate`.
    """
    if isinstance(source, Graph):
        if input_size is None and in_channels is None and rank in (None, source.rank):
            return source
        if source.chain is not None:
            return chain_graph(load_stack(source.chain, input_size, in_channels, rank))
        return _replace_input(source, input_size, in_channels, rank)
    data = source
    name = None
    if isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
        path = Path(source)
        data = read_user_json(path, "network")
        name = path.stem
        if not (isinstance(data, dict) and "nodes" in data):
            return chain_graph(parse_json(data, input_size, in_channels, name, rank))
    if isinstance(data, dict) and "nodes" in data:
        return parse_graph(data, input_size, in_channels, name, rank)
    if has_decoder_tokens(source):
        return parse_graph({"nodes": compact_nodes(source)}, input_size, in_channels, None, rank)
    return chain_graph(load_stack(source, input_size, in_channels, rank))


def compact_nodes(text: str) -> list[dict]:
    """A compact string with decoder tokens as graph nodes named 1, 2, ... (a chain of nodes).

    Chain layers keep the chain grammar (parse_compact_layers names a bad token
    with its position); decoder tokens become conv_transpose, upsample,
    pixel_shuffle / pixel_unshuffle and crop nodes.
    """
    nodes = []
    for index, token in enumerate(text.split(","), start=1):
        node = decoder_token(token)
        if node is None:
            try:
                (node,) = parse_compact_layers(token)
            except RfsweepError as exc:
                raise RfsweepError(str(exc).replace("layer 1:", f"layer {index}:", 1)) from None
        nodes.append({"name": str(index), "inputs": [INPUT if index == 1 else str(index - 1)], **node})
    return nodes


def chain_graph(stack: Stack) -> Graph:
    """The graph of a stack: node i reads node i-1; names are the layers' 1-based indices."""
    nodes = tuple({"name": str(i), "type": layer.type, "inputs": [INPUT if i == 1 else str(i - 1)],
                   "layer": layer} for i, layer in enumerate(stack.layers, start=1))
    return Graph(nodes, stack.input_size, stack.in_channels, str(len(nodes)), stack.name, stack)


def _replace_input(graph: Graph, input_size, in_channels, rank=None) -> Graph:
    if rank is None and not isinstance(input_size, (list, tuple)):
        rank = graph.rank  # one number: that length on each of the graph's axes
    size = input_axes(list(graph.input_size) if input_size is None else input_size, rank)
    c_in = graph.in_channels if in_channels is None else _check_int(in_channels, "in_channels", None, 1)
    return Graph(graph.nodes, size, c_in, graph.output, graph.name)


def parse_graph(data: dict, input_size=None, in_channels=None, name=None, rank=None) -> Graph:
    """Validate the structure of a graph object (contract section 6)."""
    unknown = sorted(set(data) - _GRAPH_KEYS - _METADATA_KEYS)
    if unknown:
        raise RfsweepError(f"unknown key {unknown[0]!r} in graph object "
                           f"(allowed: {', '.join(sorted(_GRAPH_KEYS | _METADATA_KEYS))})")
    raw_nodes = data["nodes"]
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise RfsweepError("'nodes' must be a non-empty list")
    rank, input_size = explicit_rank(data, input_size, rank)
    size = input_axes(input_size, rank)
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
    if kind not in MERGE_NODES + MIXING_NODES and len(inputs) != 1:
        raise RfsweepError(f"{where}: a {kind} node takes exactly one input, got {len(inputs)}")
    allowed = _NODE_KEYS | _EXTRA_KEYS.get(kind, set())
    if kind in LAYER_NODES:
        allowed = allowed | {"kernel", "stride", "padding", "dilation", "out_channels", "groups", "bias",
                             "ceil_mode", "fixed_weights"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise RfsweepError(f"{where}: unknown field {unknown[0]!r} for a {kind} node "
                           f"(allowed: {', '.join(sorted(allowed))})")
    for extra in ("params", "macs"):
        value = raw.get(extra, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_SAFE:
            raise RfsweepError(f"{where}: {extra} must be a non-negative integer, got {value!r}")
    node = {key: value for key, value in raw.items() if key != "note"}
    node["inputs"] = list(inputs)
    return node


# ------------------------------------------------------------------ arithmetic

def _input_facts(graph: Graph) -> Facts:
    ones, zeros, nones = (1,) * graph.rank, (0.0,) * graph.rank, (None,) * graph.rank
    return Facts(n=graph.input_size, rf=ones, rf_min=ones, jump=ones, start=zeros, start_min=zeros, var=zeros,
                 mean=zeros, channels=graph.in_channels, fixed=nones, fixed_min=nones)


def _pads(value, where: str, rank: int = 2):
    """Explicit padding per axis as (before, after): ((top, bottom), (left, right)) at rank 2."""
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        if len(value) != rank:
            raise RfsweepError(f"{where}: per-side padding needs one [before, after] pair per axis "
                               f"({rank}), got {value!r}")
        try:
            return tuple(_as_axes(side, "padding", None, 0, 2) for side in value)
        except RfsweepError as exc:
            raise RfsweepError(f"{where}: {exc}") from None
    try:
        values = _as_axes(value, "padding", None, 0, rank)
    except RfsweepError as exc:
        sides = "[[top, bottom], [left, right]]" if rank == 2 else "one [before, after] pair per axis"
        raise RfsweepError(f"{where}: {exc} (or {sides}, or \"same_tf\")") from None
    return tuple((p, p) for p in values)


def _resolve(node: dict, c_in: int, where: str, rank: int = 2):
    """(Layer, pads or None for same_tf) of a conv/pool node against its incoming channels."""
    if "layer" in node:  # a chain's already-resolved layer
        layer = node["layer"]
        return layer, tuple((p, p) for p in layer.padding)
    raw = {key: value for key, value in node.items()
           if key not in ("name", "inputs", "params", "macs", "fixed_weights")}
    if raw.get("groups") == "depthwise":
        raw["groups"] = c_in
    padding = raw.get("padding")
    pads = None
    if padding == "same_tf":
        raw["padding"] = 0
    elif padding is not None:
        pads = _pads(padding, where, rank)
        raw["padding"] = [max(side) for side in pads]  # PyTorch's pool rule, checked per side
    try:
        layer = resolve_layer(raw, 0, c_in, rank)
    except RfsweepError as exc:
        raise RfsweepError(f"{where}: {str(exc).removeprefix('layer 0: ')}") from None
    if padding is None:
        pads = tuple((p, p) for p in layer.padding)
    return layer, pads


arithmetic_out_size = plain_python(arithmetic.out_size)


def _apply_window(f: Facts, where: str, kernel, stride, dilation, pads, ceil_mode) -> dict:
    """The chain step on both axes (arithmetic.py), for rf and rf_min alike."""
    if f.fields is not None:  # past a decoder node: the same window on the periodic fields
        n = tuple(arithmetic_out_size(f.n[a], kernel[a], stride[a], pads[a][0], pads[a][1], dilation[a], ceil_mode)
                  for a in range(len(f.n)))
        check_size(n, f, where)
        reads = [periodic.window(kernel[a], stride[a], pads[a][0], dilation[a]) for a in range(len(f.n))]
        return periodic_step(f, n, reads, where, None)
    axes = []
    for a in range(len(f.n)):
        k, s, d = kernel[a], stride[a], dilation[a]
        p_before, p_after = pads[a]
        jump_in = f.jump[a]
        n, rf, jump, var = axis_step(f.n[a], f.rf[a], jump_in, f.var[a], k, s, p_before, p_after, d, ceil_mode)
        if n < 1:
            check_size((n,), f, where)
        axes.append((n, rf, jump, var, grow_rf(f.rf_min[a], jump_in, k, d),
                     shift_start(f.start[a], jump_in, k, p_before, d),
                     shift_start(f.start_min[a], jump_in, k, p_before, d),
                     shift_start(f.mean[a], jump_in, k, p_before, d)))
    geometry = dict(zip(WINDOW_KEYS, zip(*axes)))
    if not f.moving:  # after a global node nothing moves: the window adds no new pixels
        geometry.update(rf=f.rf, rf_min=f.rf_min, start=f.start, start_min=f.start_min, var=f.var, mean=f.mean)
    carried = f.carried()
    if f.patch is not None:
        carried.update(settle_patch(f, where, kernel, stride, dilation, pads))
    return {**geometry, **carried}


def _layer_node(node: dict, f: Facts, where: str) -> Facts:
    layer, pads = _resolve(node, f.channels, where, len(f.n))
    depends = False
    if pads is None:  # TF 'SAME': resolved against this input's size, per axis
        pads = tuple(same_tf_padding(f.n[a], layer.kernel[a], layer.stride[a], layer.dilation[a])
                     for a in range(len(f.n)))
        depends = any(s > 1 for s in layer.stride)
    geometry = _apply_window(f, where, layer.kernel, layer.stride, layer.dilation, pads, layer.ceil_mode)
    params = macs = 0
    if layer.is_conv:
        params, macs = _conv_cost(layer.kernel, f.channels, layer.out_channels, layer.groups, layer.bias,
                                  geometry["n"])
        if node.get("fixed_weights") is True:  # weights from a buffer (a blur filter): not learned
            params = layer.out_channels if layer.bias else 0
    return Facts(**geometry, channels=layer.out_channels, params=params, macs=macs, spatial=f.spatial,
                 layer=layer, pads=pads, depends_on_input=depends)


def _conv_cost(kernel, c_in, c_out, groups, bias, n) -> tuple:
    """(params, MACs) at any rank: the kernel's and the map's axes multiplied (conv_cost at rank 2)."""
    if len(kernel) == 2:
        return conv_cost(kernel[0], kernel[1], c_in, c_out, groups, bias, n[0], n[1])
    return conv_cost(axes_product(kernel), 1, c_in, c_out, groups, bias, axes_product(n), 1)


def _whole_map(f: Facts, where: str) -> dict:
    """A window over the whole map (global pooling, flatten): the unit sees everything."""
    rank = len(f.n)
    return _apply_window(f, where, f.n, f.n, (1,) * rank, ((0, 0),) * rank, False)


def _merge_node(node: dict, ins: list[Facts], names: list[str], where: str) -> Facts:
    kind = node["type"]
    sizes = {f.n for f in ins}
    if kind == "concat":
        if len(sizes) > 1:
            raise RfsweepError(f"{where}: concat of different spatial sizes "
                               + ", ".join(f"{name} {size_text(f.n)}" for name, f in zip(names, ins)))
        channels = sum(f.channels for f in ins)
    else:  # add, mul: 1x1 inputs (a squeeze-excitation gate) broadcast over the map
        maps = {n for n in sizes if axes_product(n) != 1}
        if len(maps) > 1:
            raise RfsweepError(f"{where}: {kind} of different spatial sizes "
                               + ", ".join(f"{name} {size_text(f.n)}" for name, f in zip(names, ins)))
        counts = {f.channels for f in ins}
        if kind == "add" and len(counts) > 1 or kind == "mul" and len(counts - {1}) > 1:
            raise RfsweepError(f"{where}: {kind} of different channel counts "
                               + ", ".join(f"{name} {f.channels}" for name, f in zip(names, ins)))
        channels = max(counts)
    main = max(ins, key=lambda f: axes_product(f.n))
    rank = len(main.n)
    for a in range(rank):
        if main.n[a] > 1:
            jumps = {f.field(a).jump if f.fields is not None else f.jump[a] for f in ins if f.n[a] > 1}
            if len(jumps) > 1:
                raise RfsweepError(f"{where}: inputs are not aligned: jumps differ ("
                                   + ", ".join(f"{name} {_jump_text(f, a)}" for name, f in zip(names, ins)
                                               if f.n[a] > 1) + "); the network is not aligned")
    # a 1x1 input on a larger map is one vector for every unit: its whole field stays put
    # a global node's output (no moving part) likewise: every unit sees the same interval
    broadcast = [(axes_product(f.n) == 1 and axes_product(main.n) != 1) or not f.moving for f in ins]
    moving = [f for f, fixed in zip(ins, broadcast) if not fixed]
    if not moving:  # every input is global: the merge is too
        return global_merge(ins, main, channels)
    weights = [f.channels for f in ins] if kind == "concat" else [1] * len(ins)
    total = sum(weights)
    out = {key: [] for key in ("rf", "rf_min", "start", "start_min", "var", "mean", "fixed", "fixed_min")}
    for a in range(rank):
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
    global_from = first_global(ins) or (node["name"] if gate_sees_everything(ins, broadcast, moving) else None)
    if any(f.fields is not None for f in moving):  # past a decoder: union per phase
        if any(f.patch is not None for f in ins):
            raise RfsweepError(f"{where}: a merge of a decoder's per-phase fields with attention across "
                               "patches at one offset is not supported")
        moving_weights = [w for w, fixed in zip(weights, broadcast) if not fixed]
        try:
            fields = tuple(periodic.union([f.field(a) for f in moving], moving_weights) for a in range(rank))
            paths = tuple(periodic.prune([p for f in moving for p in f.path_fields(a)]) for a in range(rank))
        except periodic.PeriodError as exc:
            raise RfsweepError(f"{where}: {exc}") from None
        origin = next((f.origin for f in moving if f.origin is not None), None)
        merged.update(periodic_facts(main.n, fields, paths, origin))
        return Facts(channels=channels, spatial=any(f.spatial for f in ins), global_from=global_from, **merged)
    return Facts(n=main.n, jump=main.jump, channels=channels, spatial=any(f.spatial for f in ins),
                 global_from=global_from, patch=merged_patch(ins), **merged)


def _jump_text(f: Facts, a: int) -> str:
    return str(f.field(a).jump) if f.fields is not None else str(f.jump[a])


def _pair_field(node: dict, key: str, where: str, default, minimum: int, rank: int = 2) -> tuple:
    try:
        return _as_axes(node.get(key, default), key, None, minimum, rank)
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
    rank = len(f.n)
    kernel = _pair_field(node, "kernel", where, None, 1, rank)
    stride = _pair_field(node, "stride", where, 1, 1, rank)
    padding = _pair_field(node, "padding", where, 0, 0, rank)
    extra = _pair_field(node, "output_padding", where, 0, 0, rank)
    dilation = _pair_field(node, "dilation", where, 1, 1, rank)
    for a in range(rank):
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
    n = tuple(transpose_out_size(f.n[a], kernel[a], stride[a], padding[a], dilation[a], extra[a])
              for a in range(rank))
    reads = [periodic.transposed(kernel[a], stride[a], padding[a], dilation[a]) for a in range(rank)]
    # weights (c_in, c_out/groups, kh, kw); one MAC per weight per *input* unit (torch.utils.flop_counter)
    params, macs = _conv_cost(kernel, f.channels, c_out, groups, bias, f.n)
    return n, reads, c_out, params, macs


def _upsample(node: dict, f: Facts, where: str):
    scale = node.get("scale")
    if scale is None:
        raise RfsweepError(f"{where}: an upsample node needs 'scale' (an integer per axis)")
    values = scale if isinstance(scale, list) else [scale]
    if any(isinstance(v, float) or isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise RfsweepError(f"{where}: scale must be an integer or [h, w] integers, got {scale!r} "
                           "(a non-integer scale has no exact per-unit field)")
    rank = len(f.n)
    scale = _pair_field(node, "scale", where, None, 1, rank)
    mode = node.get("mode", "nearest")
    modes = UPSAMPLE_MODES if rank == 2 else ("nearest", _LINEAR_MODE[rank])
    if mode not in modes:
        raise RfsweepError(f"{where}: mode must be one of {', '.join(modes)}, got {mode!r}")
    corners = _flag(node, "align_corners", where, False)
    if corners and mode == "nearest":
        raise RfsweepError(f"{where}: align_corners applies to bilinear and bicubic only (as F.interpolate)")
    n = tuple(upsample_out_size(f.n[a], scale[a]) for a in range(rank))
    if mode == "nearest":
        reads = [periodic.nearest(scale[a]) for a in range(rank)]
    else:  # linear, bilinear, trilinear interpolate each axis separately
        reads = [periodic.interpolate(scale[a], mode == "bicubic", corners, f.n[a], n[a]) for a in range(rank)]
    return n, reads, f.channels, 0, 0


def _shuffle(node: dict, f: Facts, where: str):
    r = node.get("factor")
    _check_int(r, f"{where}: factor", None, 1)
    if len(f.n) != 2:
        raise RfsweepError(f"{where}: {node['type']} works on 2-D maps only (as PyTorch's), "
                           f"this network has rank {len(f.n)}")
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
    sides = _pads(node["crop"], where, len(f.n))
    n = tuple(f.n[a] - sides[a][0] - sides[a][1] for a in range(len(f.n)))
    if min(n) < 1:
        raise RfsweepError(f"{where}: crop {_padding_value(sides)} leaves nothing of a "
                           f"{size_text(f.n)} map")
    return n, [periodic.window(1, 1, -sides[a][0], 1) for a in range(len(f.n))], f.channels, 0, 0


_DECODERS = {"conv_transpose": _conv_transpose, "upsample": _upsample, "pixel_shuffle": _shuffle,
             "pixel_unshuffle": _shuffle, "crop": _crop}


def _decoder_node(node: dict, f: Facts, where: str) -> Facts:
    """A node that reads its input through per-phase taps (`periodic.py`)."""
    if f.patch is not None:
        raise RfsweepError(f"{where}: a decoder node after attention across patches at one offset (before a "
                           "window mixes the offsets) is not supported")
    n, reads, channels, params, macs = _DECODERS[node["type"]](node, f, where)
    check_size(n, f, where)
    geometry = periodic_step(f, n, reads, where, node["name"])
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
        pads = _pads(node["padding"], where, len(f.n))
        ones = (1,) * len(f.n)
        return Facts(**_apply_window(f, where, ones, ones, ones, pads, False), channels=f.channels,
                     spatial=f.spatial, pads=pads)
    if kind == "slice":
        bounds = node.get("channels")
        if (not isinstance(bounds, list) or len(bounds) != 2 or not all(isinstance(b, int) and not isinstance(b, bool)
                                                                      for b in bounds)
                or not 0 <= bounds[0] < bounds[1] <= f.channels):
            raise RfsweepError(f"{where}: 'channels' must be [start, stop) with 0 <= start < stop <= "
                               f"{f.channels} (the input's channels), got {bounds!r}")
        return Facts(**same, channels=bounds[1] - bounds[0], spatial=f.spatial)
    if kind == "global":
        return global_node(node, ins, where)
    if kind == "global_pool":
        return Facts(**_whole_map(f, where), channels=f.channels, spatial=False)
    if kind == "flatten":
        geometry = same if axes_product(f.n) == 1 else _whole_map(f, where)
        return Facts(**geometry, channels=f.channels * axes_product(f.n), spatial=False)
    # linear
    if axes_product(f.n) != 1:
        raise RfsweepError(f"{where}: linear needs a flattened input ({size_text((1,) * len(f.n))}), "
                           f"got {size_text(f.n)}; "
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
        if f.patch is None and f.global_from is None and any(facts[name].patch is not None for name in names):
            f.global_from = node["name"]  # a window mixed every offset after attention across patches
        f.params += node.get("params", 0)  # beyond the formula: a gain, layer scale, embeddings
        f.macs += node.get("macs", 0)  # attention's matmuls, a class token's rows
        if (f.params > INT64_SAFE or 2 * f.macs > INT64_SAFE
                or max(f.rf) > INT64_SAFE or max(f.jump) > INT64_SAFE):
            raise RfsweepError(f"{label}: totals could exceed 64-bit integers (huge channels, input or "
                               "strides); reduce them")
        facts[node["name"]] = f
    del facts[INPUT]
    return facts


def axis_value(values):
    """One number where all axes agree, a list ([h, w] at rank 2) where they differ."""
    values = tuple(values)
    return values[0] if all(v == values[0] for v in values) else list(values)


def _padding_value(pads):
    if all(before == after for before, after in pads):
        return axis_value(tuple(before for before, _ in pads))
    return [list(side) for side in pads]


