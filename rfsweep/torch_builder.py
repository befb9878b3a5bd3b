"""A stack or graph as a runnable torch.nn.Module with exactly the fields rfsweep counts (rfsweep.to_torch).

The one place rfsweep builds torch modules: `bench`/`measure` time them, the
tests check them against `analyze` (shapes, params, flop_counter MACs,
gradient support), and tiled inference runs them. torch is an optional
extra, imported only inside these functions: a missing torch is bad input
(RfsweepError, exit 2) naming the install command.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

from .errors import RfsweepError
from .layers import Stack

INSTALL_HINT = 'pip install -e ".[torch]"'


def require_torch(what: str = "timing"):
    """Import torch or raise the one-line error that names the install command."""
    try:
        import torch
    except ImportError:
        raise RfsweepError(f"{what} needs PyTorch, which is not installed: {INSTALL_HINT}") from None
    return torch


# ------------------------------------------------------------------ the builder

def _nd(nn, name: str, rank: int):
    """torch.nn's class for this rank: _nd(nn, "Conv", 3) is nn.Conv3d."""
    return getattr(nn, f"{name}{rank}d")


def build_module(stack: Stack, relu: bool = True):
    """The stack as a torch.nn.Sequential with exactly its fields (kernel, stride, padding,
    dilation, groups, bias, ceil_mode), a ReLU after each conv when `relu`; Conv1d/2d/3d and
    the pools of the stack's rank."""
    torch = require_torch("building a torch module")
    nn = torch.nn
    modules = []
    c_in = stack.in_channels
    rank = stack.rank
    for layer in stack.layers:
        if layer.is_conv:
            modules.append(_nd(nn, "Conv", rank)(c_in, layer.out_channels, layer.kernel, stride=layer.stride,
                                     padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                                     bias=layer.bias))
            if relu:
                modules.append(nn.ReLU(inplace=True))
            c_in = layer.out_channels
        elif layer.type == "maxpool":
            modules.append(_nd(nn, "MaxPool", rank)(layer.kernel, stride=layer.stride, padding=layer.padding,
                                                    ceil_mode=layer.ceil_mode))
        elif layer.type == "avgpool":
            modules.append(_nd(nn, "AvgPool", rank)(layer.kernel, stride=layer.stride, padding=layer.padding,
                                                    ceil_mode=layer.ceil_mode))
        else:  # the layer model has no other kinds today; graphs will bring merges
            raise RfsweepError(f"cannot build a torch module for layer type {layer.type!r}")
    return nn.Sequential(*modules)


# ------------------------------------------------------------------ graphs as torch modules

def _relu_after(graph) -> set[str]:
    """Where `relu=True` adds a ReLU: after each conv, or after the bn that reads it.

    The catalog graphs and block rows do not write their activations, so one
    ReLU per conv (as for a stack) stands in for them. A graph that writes
    relu nodes gets none added: its activations run where they are written.
    """
    if any(node["type"] == "relu" for node in graph.nodes):
        return set()
    normed = {node["inputs"][0] for node in graph.nodes if node["type"] == "bn"}
    by_name = {node["name"]: node for node in graph.nodes}
    added = set()
    for node in graph.nodes:
        if node["type"] == "conv" and node["name"] not in normed:
            added.add(node["name"])
        elif node["type"] == "bn" and by_name.get(node["inputs"][0], {}).get("type") == "conv":
            added.add(node["name"])
    return added


@functools.lru_cache(maxsize=None)
def _graph_ops():
    """The small nn.Modules a graph runs (defined on first use: torch is an optional import)."""
    torch = require_torch("building a torch module")
    nn, F = torch.nn, torch.nn.functional

    def as_map(x, dims=4):
        """Head outputs are (batch, features); a later map op sees them as features x 1 x 1 (x 1 ...)."""
        return x if x.dim() >= dims else x.reshape(tuple(x.shape) + (1,) * (dims - x.dim()))

    def as_maps(xs):
        dims = max(x.dim() for x in xs)
        return xs if all(x.dim() == dims for x in xs) else [as_map(x, dims) for x in xs]

    class Pad(nn.Module):
        """Per-side padding per axis ((top, bottom), (left, right)) with a constant (-inf before a max pool)."""

        def __init__(self, pads, value=0.0):
            super().__init__()
            self.pads = tuple(tuple(side) for side in pads)
            self.value = value

        def forward(self, x):
            flat = tuple(p for side in reversed(self.pads) for p in side)  # F.pad: the last axis first
            return F.pad(as_map(x, len(self.pads) + 2), flat, value=self.value)

        def extra_repr(self):
            if len(self.pads) == 2:
                (top, bottom), (left, right) = self.pads
                return f"top={top}, bottom={bottom}, left={left}, right={right}, value={self.value}"
            return f"pads={self.pads}, value={self.value}"

    class MapOp(nn.Module):
        """A torch layer that needs a map input (4-D at rank 2)."""

        def __init__(self, inner, rank=2):
            super().__init__()
            self.inner = inner
            self.dims = rank + 2

        def forward(self, x):
            return self.inner(as_map(x, self.dims))

    class Add(nn.Module):
        def forward(self, *xs):
            xs = as_maps(xs)
            out = xs[0] + xs[1]
            for x in xs[2:]:
                out = out + x
            return out

    class Mul(nn.Module):
        def forward(self, *xs):
            xs = as_maps(xs)
            out = xs[0] * xs[1]
            for x in xs[2:]:
                out = out * x
            return out

    class Concat(nn.Module):
        def forward(self, *xs):
            return torch.cat(as_maps(xs), dim=1)

    class Slice(nn.Module):
        def __init__(self, start, stop):
            super().__init__()
            self.start, self.stop = start, stop

        def forward(self, x):
            return x[:, self.start:self.stop]

        def extra_repr(self):
            return f"channels=[{self.start}, {self.stop})"

    class GlobalPool(nn.Module):
        def __init__(self, rank=2):
            super().__init__()
            self.rank = rank

        def forward(self, x):
            return as_map(x, self.rank + 2).mean(tuple(range(2, self.rank + 2)), keepdim=True)

    class Flatten(nn.Module):
        def forward(self, x):
            return x.flatten(1)

    class Head(nn.Module):
        def __init__(self, linear):
            super().__init__()
            self.linear = linear

        def forward(self, x):
            return self.linear(x.flatten(1))

    class GraphModule(nn.Module):
        """Runs a graph's nodes in order; each value is dropped after its last reader."""

        def __init__(self, names, ops, inputs, relus, drops, outputs):
            super().__init__()
            self.ops = nn.ModuleList(ops)
            self.names, self.inputs, self.relus, self.drops = names, inputs, relus, drops
            self.outputs = outputs

        def forward(self, x):
            values = {"input": x}
            for name, op, inputs, relu, drops in zip(self.names, self.ops, self.inputs, self.relus, self.drops):
                y = op(*[values[i] for i in inputs])
                values[name] = F.relu(y, inplace=True) if relu else y
                for item in drops:
                    del values[item]
            outs = tuple(values[name] for name in self.outputs)
            return outs[0] if len(outs) == 1 else outs

    class Upsample(nn.Module):
        """F.interpolate by an integer scale per axis (nearest, bilinear, bicubic; align_corners)."""

        def __init__(self, scale, mode, align_corners):
            super().__init__()
            self.scale, self.mode = tuple(float(s) for s in scale), mode
            self.align_corners = align_corners if mode != "nearest" else None

        def forward(self, x):
            return F.interpolate(as_map(x, len(self.scale) + 2), scale_factor=self.scale, mode=self.mode,
                                 align_corners=self.align_corners)

        def extra_repr(self):
            return f"scale={self.scale}, mode={self.mode}, align_corners={self.align_corners}"

    class Crop(nn.Module):
        """Removes ((top, bottom), (left, right)) pixels (U-Net's copy-and-crop), per axis at any rank."""

        def __init__(self, sides):
            super().__init__()
            self.sides = tuple(tuple(side) for side in sides)

        def forward(self, x):
            sizes = x.shape[-len(self.sides):]
            return x[(Ellipsis, *(slice(before, n - after) for (before, after), n in zip(self.sides, sizes)))]

        def extra_repr(self):
            if len(self.sides) == 2:
                (top, bottom), (left, right) = self.sides
                return f"top={top}, bottom={bottom}, left={left}, right={right}"
            return f"sides={self.sides}"

    return {"Pad": Pad, "MapOp": MapOp, "Add": Add, "Mul": Mul, "Concat": Concat, "Slice": Slice,
            "GlobalPool": GlobalPool, "Flatten": Flatten, "Head": Head, "GraphModule": GraphModule,
            "Upsample": Upsample, "Crop": Crop}


def _window_op(torch, ops, f, c_in, n_in, where):
    """Conv/MaxPool/AvgPool (1d, 2d, 3d) with the node's resolved fields; per-side padding by a Pad first."""
    nn = torch.nn
    layer, pads = f.layer, f.pads
    rank = len(pads)
    symmetric = all(before == after for before, after in pads)
    if layer.is_conv:
        conv = dict(stride=layer.stride, dilation=layer.dilation, groups=layer.groups, bias=layer.bias)
        if symmetric:
            return ops["MapOp"](_nd(nn, "Conv", rank)(c_in, layer.out_channels, layer.kernel,
                                                      padding=tuple(p for p, _ in pads), **conv), rank)
        return nn.Sequential(ops["Pad"](pads), _nd(nn, "Conv", rank)(c_in, layer.out_channels, layer.kernel,
                                                                     padding=0, **conv))
    pool = _nd(nn, "MaxPool" if layer.type == "maxpool" else "AvgPool", rank)
    if symmetric:  # PyTorch's own padding and ceil_mode: the rule rfsweep's arithmetic follows
        return ops["MapOp"](pool(layer.kernel, layer.stride, padding=tuple(p for p, _ in pads),
                                 ceil_mode=layer.ceil_mode), rank)
    # per side: pad (-inf for max, zeros for avg), then a pool without padding in floor mode; a
    # ceil_mode window that rfsweep keeps gets the pixels it lacks as extra padding after
    extra = []
    for a in range(rank):
        padded = n_in[a] + pads[a][0] + pads[a][1]
        need = (f.n[a] - 1) * layer.stride[a] + layer.kernel[a]  # the shortest input giving f.n windows
        if (max(padded, need) - layer.kernel[a]) // layer.stride[a] + 1 != f.n[a]:
            raise RfsweepError(f"{where}: the torch builder cannot reproduce this {layer.type}'s output size "
                               f"{'x'.join(map(str, f.n))} with per-side padding")
        extra.append(max(need - padded, 0))
    value = float("-inf") if layer.type == "maxpool" else 0.0
    grown = tuple((pads[a][0], pads[a][1] + extra[a]) for a in range(rank))
    return nn.Sequential(ops["Pad"](grown, value), pool(layer.kernel, layer.stride, padding=0))


def _axes(value, rank: int = 2):
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * rank


def _conv_transpose_op(torch, node, f, ins):
    """nn.ConvTranspose1d/2d/3d with the node's fields (checked by `analyze` before the builder runs)."""
    rank = len(f.n)
    return _nd(torch.nn, "ConvTranspose", rank)(
        ins[0].channels, f.channels, _axes(node["kernel"], rank), stride=_axes(node.get("stride", 1), rank),
        padding=_axes(node.get("padding", 0), rank), output_padding=_axes(node.get("output_padding", 0), rank),
        groups=node.get("groups", 1), bias=node.get("bias", True), dilation=_axes(node.get("dilation", 1), rank))


def _crop_sides(value, rank: int = 2):
    if isinstance(value, list) and all(isinstance(v, list) for v in value):
        return tuple(tuple(v) for v in value)
    return tuple((v, v) for v in _axes(value, rank))


# node type -> (torch, the _graph_ops classes, node dict, its Facts, its inputs' Facts) -> nn.Module
_NODE_OPS = {
    "conv": lambda torch, ops, node, f, ins: _window_op(torch, ops, f, ins[0].channels, ins[0].n, node["_where"]),
    "maxpool": lambda torch, ops, node, f, ins: _window_op(torch, ops, f, ins[0].channels, ins[0].n, node["_where"]),
    "avgpool": lambda torch, ops, node, f, ins: _window_op(torch, ops, f, ins[0].channels, ins[0].n, node["_where"]),
    "pad": lambda torch, ops, node, f, ins: ops["Pad"](f.pads),
    "bn": lambda torch, ops, node, f, ins: ops["MapOp"](_nd(torch.nn, "BatchNorm", len(f.n))(f.channels), len(f.n)),
    "linear": lambda torch, ops, node, f, ins: ops["Head"](torch.nn.Linear(ins[0].channels, f.channels,
                                                                          bias=node.get("bias", True))),
    "slice": lambda torch, ops, node, f, ins: ops["Slice"](*node["channels"]),
    "add": lambda torch, ops, node, f, ins: ops["Add"](),
    "mul": lambda torch, ops, node, f, ins: ops["Mul"](),
    "concat": lambda torch, ops, node, f, ins: ops["Concat"](),
    "global_pool": lambda torch, ops, node, f, ins: ops["GlobalPool"](len(f.n)),
    "flatten": lambda torch, ops, node, f, ins: ops["Flatten"](),
    "identity": lambda torch, ops, node, f, ins: torch.nn.Identity(),
    # out of place: the input may have other readers, or be a view of another node's tensor
    "relu": lambda torch, ops, node, f, ins: torch.nn.ReLU(),
    "conv_transpose": lambda torch, ops, node, f, ins: ops["MapOp"](_conv_transpose_op(torch, node, f, ins),
                                                                    len(f.n)),
    "upsample": lambda torch, ops, node, f, ins: ops["Upsample"](_axes(node["scale"], len(f.n)),
                                                                 node.get("mode", "nearest"),
                                                                 node.get("align_corners", False)),
    "pixel_shuffle": lambda torch, ops, node, f, ins: ops["MapOp"](torch.nn.PixelShuffle(node["factor"])),
    "pixel_unshuffle": lambda torch, ops, node, f, ins: ops["MapOp"](torch.nn.PixelUnshuffle(node["factor"])),
    "crop": lambda torch, ops, node, f, ins: ops["Crop"](_crop_sides(node["crop"], len(f.n))),
}


def _node_op(torch, ops, node, f, ins, where):
    """The nn.Module that runs one node (RfsweepError for a node type the builder has no rule for)."""
    rule = _NODE_OPS.get(node["type"])
    if rule is None:
        raise RfsweepError(f"{where}: the torch builder cannot run a {node['type']!r} node "
                           f"(it runs: {', '.join(_NODE_OPS)})")
    return rule(torch, ops, {**node, "_where": where}, f, ins)


def build_graph_module(source, relu: bool = True, end_point: str | None = None, input_size=None,
                       in_channels=None):
    """A graph (or any network `rfsweep.load_graph` takes) as a torch.nn.Module that runs its nodes.

    conv -> Conv2d with the node's exact fields, pools -> MaxPool2d/AvgPool2d
    (ceil_mode; count_include_pad=True), bn -> BatchNorm2d, add/mul (1x1 inputs
    broadcast), concat, slice (channels), pad (zeros), identity, relu,
    global_pool (mean), flatten, linear, conv_transpose -> ConvTranspose2d, upsample ->
    F.interpolate (integer scale), pixel_shuffle / pixel_unshuffle, crop (slicing). Padding is the one rfsweep resolves for
    this input size ("same_tf" included): symmetric padding goes to the layer,
    per-side padding to an F.pad before a padding-0 layer (-inf before a max
    pool), so the module is built for one input size. `relu` adds a ReLU where
    `_relu_after` says. With `end_point` only what that node reads runs and
    the module returns its tensor; without, every node runs and it returns the
    graph's sinks (nodes no other node reads; a tuple if several).
    Head outputs are (batch, features) tensors.
    """
    from .graph import evaluate, load_graph

    torch = require_torch("building a torch module")
    graph = load_graph(source, input_size, in_channels)
    names = graph.names
    if end_point is not None and end_point not in names:
        raise RfsweepError(f"unknown end-point {end_point!r} (nodes: {', '.join(names[:12])}"
                           f"{', ...' if len(names) > 12 else ''})")
    facts = evaluate(graph, end_point)
    ops_table = _graph_ops()
    kept = [node for node in graph.nodes if node["name"] in facts]
    readers: dict[str, int] = {}
    for node in kept:
        for item in node["inputs"]:
            readers[item] = readers.get(item, 0) + 1
    outputs = [end_point] if end_point is not None else [n["name"] for n in kept if n["name"] not in readers]
    added = _relu_after(graph) if relu else set()
    last_use = {}
    for position, node in enumerate(kept):
        for item in node["inputs"]:
            last_use[item] = position
    drops: list[list[str]] = [[] for _ in kept]
    for item, position in last_use.items():
        if item not in outputs:
            drops[position].append(item)
    input_facts = SimpleNamespace(n=graph.input_size, channels=graph.in_channels)
    ops = []
    for node in kept:
        ins = [input_facts if item == "input" else facts[item] for item in node["inputs"]]
        ops.append(_node_op(torch, ops_table, node, facts[node["name"]], ins, f"node {node['name']!r}"))
    return ops_table["GraphModule"]([n["name"] for n in kept], ops, [list(n["inputs"]) for n in kept],
                                    [n["name"] in added for n in kept], drops, outputs)


def build_network(graph, relu: bool = True):
    """A chain as build_module's nn.Sequential, any other graph as build_graph_module's module."""
    if graph.chain is not None:
        return build_module(graph.chain, relu=relu)
    return build_graph_module(graph, relu=relu)


def to_torch(source, relu: bool = True, end_point: str | None = None, input_size=None, in_channels=None):
    """Any network `rfsweep.load_graph` takes (compact string, stack or graph JSON, dict, Stack, Graph)
    as a torch.nn.Module: a chain as an nn.Sequential, anything else as a module running its nodes.

    `relu` adds a ReLU after each conv (none where the graph writes its own); `end_point` cuts a
    graph to the nodes that node reads (build_graph_module)."""
    from .graph import load_graph

    graph = load_graph(source, input_size, in_channels)
    if graph.chain is not None and end_point is None:
        return build_module(graph.chain, relu=relu)
    return build_graph_module(graph, relu=relu, end_point=end_point)
