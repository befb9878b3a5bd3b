"""What the tracers and the op table share: a recorded tensor (`Val`: its node and which axis holds
which spatial axis), the node list under construction (`Builder`), refusals (`Unsupported`), and
small helpers on layouts and op arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import RfsweepError

BATCH = 2  # batch size of the meta tensors: keeps BatchNorm's training-mode checks quiet
INPUT = "input"


@dataclass
class Val:
    """A recorded tensor: the graph node that produced it and where its axes are.

    hw: the dims holding the map's spatial axes, in order (one per axis: (2,) for a 1-D
    signal, (2, 3) for an image, (2, 3, 4) for a volume), or None once the map is gone
    (global pooling, flatten, linear head).
    chans: the dims that make up channels (several after a shuffle's view).
    tok: a token layout instead of a map (tokens.py): (dim holding the tokens,
    number of non-spatial rows before the h*w spatial ones (class tokens), h, w).
    batch: the batch dim (attention moves it: qkv.permute(2, 0, 3, 1, 4)).
    pending: attention scores or a context matrix not yet applied to values:
    (source nodes, MACs so far, the dim indexing key tokens or None).
    """

    node: str
    meta: torch.Tensor
    hw: tuple | None
    chans: tuple
    plain: bool = True  # channels in the order `node` produced them (no shuffle since)
    tok: tuple | None = None
    batch: int = 0
    pending: tuple | None = None
    fine: tuple = ()  # ((dim, "h" or "w"), ...): offsets inside f-sized blocks of a space-to-depth view
    merged: "Val | None" = None  # tokens flattened into the batch (LeViT's BatchNorm): the Val before it
    scrambled: tuple | None = None  # a patch unfold under way (patches.py): (index, map Val, channels)
    patches: tuple | None = None  # tokens of one offset per row (patches.py): (period, rows x tokens, map Val)

    @property
    def spatial(self) -> bool:
        return self.hw is not None or self.tok is not None or self.merged is not None or self.scrambled is not None

    @property
    def unusual(self) -> bool:
        """Not a plain NC[H]W-like layout: tokens.py handles it."""
        return self.tok is not None or self.pending is not None or self.batch != 0 or bool(self.fine) \
            or self.merged is not None or self.scrambled is not None


class Builder:
    """The node list under construction, with unique readable names."""

    def __init__(self, input_size, in_channels):
        self.nodes: list[dict] = []
        self.spatial: dict[str, bool] = {INPUT: True}
        self.used: set[str] = {INPUT}
        self.input_size = input_size
        self.in_channels = in_channels
        self.concat_parts: dict[str, list] = {}  # concat node -> [(input node, channels)]
        self.channelwise: dict[str, str] = {}  # pool/relu/identity/pad node -> its input (same channel order)
        self.by_name: dict[str, dict] = {}
        self.params = None  # a ParamUse (params.py), set by from_torch
        self.work = None  # another: MACs computed on constants, set by from_torch

    def slice_source(self, x, start: int, stop: int):
        """(node, [start, stop)) to slice, narrowed to where those channels come from: a slice inside
        one part of a concat reads that part, so its RF is that part's, not the union over the concat
        (exact per channel). Parameter-free per-channel nodes (pools, activations, pads) between the
        concat and the slice are copied onto the narrowed channels (they add no params or MACs)."""
        if not x.plain or len(x.chans) != 1:
            return x.node, [start, stop]
        return self._narrow(x.node, start, stop, int(x.meta.shape[x.chans[0]]))[:2]

    def _narrow(self, node: str, start: int, stop: int, total: int):
        """(source, [a, b], source's channel count) with source[a:b] == node[start:stop]."""
        offset = 0
        for part, channels in self.concat_parts.get(node, ()):
            if offset <= start and stop <= offset + channels:
                return self._narrow(part, start - offset, stop - offset, channels)
            offset += channels
        inner = self.channelwise.get(node)
        if inner is None or (start, stop) == (0, total):
            return node, [start, stop], total
        source, bounds, channels = self._narrow(inner, start, stop, total)
        if source == inner:  # nothing narrower upstream
            return node, [start, stop], total
        if bounds != [0, channels]:
            source = self.emit(f"{source}[{bounds[0]}:{bounds[1]}]", "slice", [source], self.spatial[inner],
                               "channels of a concat part", channels=bounds)
        spec = self.by_name[node]
        fields = {k: v for k, v in spec.items() if k not in ("name", "type", "inputs", "note", "params", "macs")}
        copy = self.emit(f"{node}[{start}:{stop}]", spec["type"], [source], self.spatial[node],
                         f"{node} on channels {start}:{stop}", **fields)
        return copy, [0, stop - start], stop - start

    def unique(self, name: str) -> str:
        name = name or "op"
        if name not in self.used:
            self.used.add(name)
            return name
        i = 1
        while f"{name}_{i}" in self.used:
            i += 1
        self.used.add(f"{name}_{i}")
        return f"{name}_{i}"

    def emit(self, name: str, kind: str, inputs, spatial: bool, note: str | None = None, **fields) -> str:
        name = self.unique(name)
        node = {"name": name, "type": kind, "inputs": list(inputs), **fields}
        if note:
            node["note"] = note
        self.nodes.append(node)
        self.by_name[name] = node
        self.spatial[name] = spatial
        return name

    def per_channel(self, node: str, x) -> str:
        """Record that `node` maps each channel of `x` alone, in order (see slice_source)."""
        if x.plain and len(x.chans) == 1:
            self.channelwise[node] = x.node
        return node


class Unsupported(RfsweepError):
    """An op or module the importer cannot map (bad input: exit 2); `where` is its module path."""

    where: str | None = None
    scopes: list | None = None  # the module paths whose forward was running (set by the tracers)


def _fail(what: str, where: str, why: str = "") -> Unsupported:
    """A refusal naming the op, the module path, why, and a way out (an end-point before it always works:
    from_torch keeps the graph up to an end-point that a later refusal does not reach)."""
    if "end-point" not in why:
        why = f"{why}; pass --end-point a node before it" if why else "pass --end-point a node before it"
    tail = f": {why}"
    exc = Unsupported(f"cannot import {what} at {where!r}{tail}")
    exc.where = where
    return exc


# ------------------------------------------------------------------ helpers on layouts and numbers

def _std_layout(meta: torch.Tensor, spatial: bool) -> tuple:
    """(hw, chans) of a freshly computed NC[D][H]W tensor."""
    if not spatial:
        return None, tuple(range(1, meta.dim()))
    if meta.dim() in (3, 4, 5):
        return tuple(range(2, meta.dim())), (1,)
    raise RfsweepError(f"expected a 1-D, 2-D or 3-D feature map (N, C, ...), got shape {tuple(meta.shape)}")


def _new(b: Builder, node: str, meta, spatial: bool) -> Val:
    hw, chans = _std_layout(meta, spatial)
    return Val(node, meta, hw, chans)


def _axes(value, rank: int) -> tuple:
    """An int or a 1-or-rank sequence -> one int per spatial axis (PyTorch's `_ntuple`)."""
    if isinstance(value, (list, tuple)):
        vals = tuple(int(v) for v in value)
        return vals * rank if len(vals) == 1 else vals
    return (int(value),) * rank


def _field(values):
    """One int when every axis agrees, else one per axis (the graph's per-axis form)."""
    values = tuple(values)
    return values[0] if len(set(values)) == 1 else list(values)


def _padding_field(pads):
    """((before, after) per axis) -> int, one per axis, or per-side pairs."""
    if all(before == after for before, after in pads):
        return _field(before for before, _ in pads)
    return [[before, after] for before, after in pads]


def _bind(args, kwargs, names, defaults=None):
    """Positional + keyword arguments of a functional op as a dict (builtins have no signature)."""
    out = dict(defaults or {})
    for name, value in zip(names, args):
        out[name] = value
    out.update(kwargs)
    return out


def _dims(dim, ndim):
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    return tuple(d % ndim for d in dim)


def _val_of(x, what, where) -> Val:
    if not isinstance(x, Val):
        raise _fail(what, where, "its input is not computed from the network's input")
    return x


def _check_std(x: Val, what: str, where: str):
    """Convolutions and pools need a plain NC[D][H]W map."""
    if x.unusual:
        raise _fail(what, where, "its input is a token layout, not an NCHW map (reshape it back to a map "
                                 "first)")
    nd = x.meta.dim()
    if x.hw is not None and (x.hw, x.chans) != (tuple(range(2, nd)), (1,)):
        raise _fail(what, where, "its input is not in NCHW layout")
