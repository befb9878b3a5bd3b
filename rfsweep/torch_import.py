"""Import a torch.nn.Module as an rfsweep graph (contract section 7). The only module that imports torch.

`from_torch(module)` records the module's computation and maps every op to a
node of the graph model (contract section 6), through one table of
`op -> node builder` (`_OPS`, keyed by a normalised op name, as fvcore and
torch.utils.flop_counter do). Two recorders feed that table:

1. torch.fx symbolic tracing (no forward pass at all), node names from the
   qualified module names (`layer1.0.conv1`, `layer1.0.add`);
2. when fx cannot trace the module (Python control flow, shape unpacking),
   a forward pass on the *meta* device (shapes only: no memory, no compute)
   under a TorchFunctionMode that sees every torch op, plus module hooks
   that name them.

Shapes are carried by empty meta tensors, so the real model is never run and
its weights are never copied. With fx, each op's output shape is computed by
PyTorch's own formulas (`_SHAPES`), not by running the op on meta: the first
meta kernel of a process imports torch._dynamo and sympy (~1-2 s), which
issue 10's 1 s budget cannot afford; a rule that is unsure falls back to the
op on meta. Batch size 2 on meta keeps BatchNorm's training-mode checks quiet.
Tensor layouts (NCHW, channels-last, a channel shuffle's 5-D view) are
tracked so that reshapes, permutes and the channels-last Linear of
ConvNeXt-style blocks map to the right nodes.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import RfsweepError

BATCH = 2
INPUT = "input"


# ------------------------------------------------------------------ loading a user's model

def load_target(text: str) -> nn.Module:
    """`package.module:callable` or `path/to/file.py:callable` -> the Module it returns (no arguments).

    Every failure is an RfsweepError with one line: missing file or module,
    no such attribute, an exception inside the user's code, not a Module.
    """
    if not isinstance(text, str) or text.count(":") < 1:
        raise RfsweepError(f"--torch target must be 'package.module:callable' or 'path/to/file.py:callable', "
                           f"got {text!r}")
    where, _, attr = text.rpartition(":")
    if not where or not attr:
        raise RfsweepError(f"--torch target must be 'package.module:callable' or 'path/to/file.py:callable', "
                           f"got {text!r}")
    module = _import_target(where)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise RfsweepError(f"{where} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise RfsweepError(f"{where}:{attr} is neither callable nor a torch.nn.Module")
    try:
        model = obj()
    except Exception as exc:  # the user's code: report it in one line
        raise RfsweepError(f"calling {where}:{attr}() failed: {type(exc).__name__}: {_one_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise RfsweepError(f"{where}:{attr}() returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _one_line(exc) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def _import_target(where: str):
    is_file = where.endswith(".py") or "/" in where or "\\" in where
    try:
        if is_file:
            path = Path(where)
            if not path.is_file():
                raise RfsweepError(f"model file not found: {where}")
            name = f"_rfsweep_model_{abs(hash(str(path.resolve())))}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses and pickling look modules up here
            parent = str(path.resolve().parent)
            sys.path.insert(0, parent)  # so the file can import its neighbours
            try:
                spec.loader.exec_module(module)
            finally:
                if sys.path and sys.path[0] == parent:
                    sys.path.pop(0)
            return module
        return importlib.import_module(where)
    except RfsweepError:
        raise
    except ModuleNotFoundError as exc:
        if not is_file and exc.name and where.startswith(exc.name):
            raise RfsweepError(f"no module named {where!r} (is it installed, or on PYTHONPATH?)") from None
        raise RfsweepError(f"importing {where} failed: {type(exc).__name__}: {_one_line(exc)}") from None
    except BaseException as exc:  # SyntaxError, SystemExit in a script, anything at import time
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise RfsweepError(f"importing {where} failed: {type(exc).__name__}: {_one_line(exc)}") from None


# ------------------------------------------------------------------ values and the graph being built

@dataclass
class Val:
    """A recorded tensor: the graph node that produced it and where its axes are.

    hw: (h_dim or None, w_dim) of a spatial map (None for 1-D signals' H), or
    None once the map is gone (global pooling, flatten, linear head).
    chans: the dims that make up channels (several after a shuffle's view).
    """

    node: str
    meta: torch.Tensor
    hw: tuple | None
    chans: tuple
    plain: bool = True  # channels in the order `node` produced them (no shuffle since)

    @property
    def spatial(self) -> bool:
        return self.hw is not None


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
        fields = {k: v for k, v in spec.items() if k not in ("name", "type", "inputs", "note")}
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
    """An op or module the importer cannot map (bad input: exit 2)."""


def _fail(what: str, where: str, why: str = "") -> Unsupported:
    tail = f": {why}" if why else ""
    return Unsupported(f"cannot import {what} at {where!r}{tail}")


# ------------------------------------------------------------------ helpers on layouts and numbers

def _std_layout(meta: torch.Tensor, spatial: bool) -> tuple:
    """(hw, chans) of a freshly computed NC[H]W tensor."""
    if not spatial:
        return None, tuple(range(1, meta.dim()))
    if meta.dim() == 4:
        return (2, 3), (1,)
    if meta.dim() == 3:
        return (None, 2), (1,)
    raise RfsweepError(f"expected a 3-D or 4-D feature map, got shape {tuple(meta.shape)}")


def _new(b: Builder, node: str, meta, spatial: bool) -> Val:
    hw, chans = _std_layout(meta, spatial)
    return Val(node, meta, hw, chans)


def _pair(value, one_d: bool, what: str, where: str):
    """An int or tuple field of a 1-D/2-D op as (h, w); 1-D ops get h = 1 (or 0 for padding)."""
    if isinstance(value, (list, tuple)):
        value = tuple(int(v) for v in value)
        if one_d and len(value) == 1:
            value = value[0]
        elif not one_d and len(value) == 1:
            value = (value[0], value[0])
        elif len(value) != (1 if one_d else 2):
            raise _fail(what, where, f"expected {1 if one_d else 2} values, got {value}")
    if isinstance(value, int):
        return value if not one_d else value
    return value


def _hw(value, one_d: bool, neutral: int):
    """(h, w) from an int or pair; on a 1-D signal H takes the neutral value."""
    if isinstance(value, (list, tuple)):
        vals = [int(v) for v in value]
        if len(vals) == 1:
            vals = vals * (1 if one_d else 2)
        if one_d:
            return (neutral, vals[-1])
        return (vals[0], vals[1])
    return (neutral, int(value)) if one_d else (int(value), int(value))


def _field(pair):
    """One int when both axes agree, else [h, w] (the graph's per-axis form)."""
    return pair[0] if pair[0] == pair[1] else [pair[0], pair[1]]


def _padding_field(pads):
    """((top, bottom), (left, right)) -> int, [h, w] or per-side pairs."""
    (t, bo), (le, r) = pads
    if t == bo and le == r:
        return _field((t, le))
    return [[t, bo], [le, r]]


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
    """Convolutions and pools need a plain NCHW (or NCL) map."""
    nd = x.meta.dim()
    want = ((2, 3), (1,)) if nd == 4 else ((None, 2), (1,)) if nd == 3 else None
    if x.hw is not None and (x.hw, x.chans) != want:
        raise _fail(what, where, "its input is not in NCHW layout")


# ------------------------------------------------------------------ node builders (the op table)

def op_conv(b, name, args, kwargs, out, note):
    a = _bind(args, kwargs, ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
              {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1})
    x = _val_of(a["input"], note, name)
    _check_std(x, note, name)
    weight = a["weight"]
    if isinstance(weight, Val):
        raise _fail(note, name, "weights computed from the input (dynamic convolution) are not supported")
    one_d = weight.dim() == 3
    if weight.dim() not in (3, 4):
        raise _fail(note, name, f"only 1-D and 2-D convolutions are supported (weight {tuple(weight.shape)})")
    kernel = (1, weight.shape[2]) if one_d else (weight.shape[2], weight.shape[3])
    stride = _hw(a["stride"], one_d, 1)
    dilation = _hw(a["dilation"], one_d, 1)
    padding = a["padding"]
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        elif padding == "same":  # PyTorch: total d*(k-1), the odd pixel after (bottom/right)
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            pads = tuple(pads)
        else:
            raise _fail(note, name, f"unknown padding {padding!r}")
    else:
        p = _hw(padding, one_d, 0)
        pads = ((p[0], p[0]), (p[1], p[1]))
    bias = a["bias"] is not None
    fields = {"kernel": _field(kernel), "stride": _field(stride), "padding": _padding_field(pads),
              "dilation": _field(dilation), "groups": int(a["groups"]), "out_channels": int(weight.shape[0]),
              "bias": bias}
    node = b.emit(name, "conv", [x.node], x.spatial, note, **fields)
    return _new(b, node, out, x.spatial)


def _pool(kind):
    def op(b, name, args, kwargs, out, note):
        names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices") \
            if kind == "maxpool" else ("input", "kernel_size", "stride", "padding", "ceil_mode")
        a = _bind(args, kwargs, names, {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False,
                                        "return_indices": False})
        x = _val_of(a["input"], note, name)
        _check_std(x, note, name)
        if a.get("return_indices"):
            raise _fail(note, name, "return_indices=True (unpooling) is not supported")
        one_d = x.meta.dim() == 3
        kernel = _hw(a["kernel_size"], one_d, 1)
        stride = a["stride"]
        stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) \
            else _hw(stride, one_d, 1)
        if _hw(a["dilation"], one_d, 1) != (1, 1):
            raise _fail(note, name, "pools with dilation > 1 are not supported")
        p = _hw(a["padding"], one_d, 0)
        fields = {"kernel": _field(kernel), "stride": _field(stride), "padding": _field(p)}
        if a["ceil_mode"]:
            fields["ceil_mode"] = True
        node = b.per_channel(b.emit(name, kind, [x.node], x.spatial, note, **fields), x)
        return _new(b, node, out[0] if isinstance(out, tuple) else out, x.spatial)
    return op


def _global(b, name, x: Val, out, note, keep_spatial=False):
    node = b.emit(name, "global_pool", [x.node], False, note)
    return _new(b, node, out, False)


def _adaptive(kind):
    def op(b, name, args, kwargs, out, note):
        a = _bind(args, kwargs, ("input", "output_size", "return_indices"), {"return_indices": False})
        x = _val_of(a["input"], note, name)
        if isinstance(out, tuple):
            out = out[0]
        if not x.spatial:
            return Val(x.node, out, None, tuple(range(1, out.dim())))
        _check_std(x, note, name)
        n_in = [1 if d is None else x.meta.shape[d] for d in x.hw]
        n_out = [1 if d is None else out.shape[d] for d in x.hw]
        if n_out == [1, 1]:
            return _global(b, name, x, out, note)
        if n_out == n_in:
            node = b.emit(name, "identity", [x.node], True, note)
            return _new(b, node, out, True)
        if all(i % o == 0 for i, o in zip(n_in, n_out)):  # equal windows: a plain pool
            kernel = tuple(i // o for i, o in zip(n_in, n_out))
            node = b.emit(name, kind, [x.node], True, note, kernel=_field(kernel), stride=_field(kernel),
                          padding=0)
            return _new(b, node, out, True)
        raise _fail(note, name, f"adaptive pooling from {n_in[0]}x{n_in[1]} to {n_out[0]}x{n_out[1]} "
                                "has overlapping windows of different sizes")
    return op


def _reduce(b, name, args, kwargs, out, note):
    """mean/sum/amax over the spatial axes: global pooling (SE blocks, timm heads)."""
    a = _bind(args, kwargs, ("input", "dim", "keepdim"), {"dim": None, "keepdim": False})
    x = _val_of(a["input"], note, name)
    if not isinstance(out, torch.Tensor):
        raise _fail(note, name, "reductions returning several tensors are not supported")
    if not x.spatial:
        return Val(x.node, out, None, tuple(range(1, out.dim()))) if out.dim() >= 1 and out.shape[0] == BATCH \
            else _raise(_fail(note, name, "a reduction over the batch"))
    dims = set(_dims(a["dim"], x.meta.dim()))
    spatial_dims = {d for d in x.hw if d is not None}
    if dims == spatial_dims or (dims >= spatial_dims and dims <= spatial_dims | {d for d in x.hw if d is None}):
        return _global(b, name, x, out, note)
    raise _fail(note, name, f"reduction over dims {sorted(dims)} (only global pooling over the spatial dims "
                            f"{sorted(spatial_dims)} is supported)")


def _raise(exc):
    raise exc


def op_norm(b, name, x, affine: bool, note):
    kind = "bn" if affine else "identity"
    node = b.emit(name, kind, [x.node], x.spatial, note)
    return Val(node, x.meta, x.hw, x.chans)


def _per_channel_norm(params: tuple):
    """F.batch_norm / group_norm / instance_norm: a bn node when affine, else identity."""
    def op(b, name, args, kwargs, out, note):
        a = _bind(args, kwargs, params, {"weight": None})
        x = _val_of(a["input"], note, name)
        return op_norm(b, name, x, a["weight"] is not None, note)
    return op


op_batch_norm = _per_channel_norm(("input", "running_mean", "running_var", "weight", "bias"))
op_group_norm = _per_channel_norm(("input", "num_groups", "weight", "bias"))
op_instance_norm = _per_channel_norm(("input", "running_mean", "running_var", "weight", "bias"))


def op_layer_norm(b, name, args, kwargs, out, note):
    a = _bind(args, kwargs, ("input", "normalized_shape", "weight", "bias"), {"weight": None})
    x = _val_of(a["input"], note, name)
    shape = a["normalized_shape"]
    count = 1 if isinstance(shape, int) else len(shape)
    dims = set(range(x.meta.dim() - count, x.meta.dim()))
    if x.spatial and not dims <= set(x.chans):
        raise _fail(note, name, "LayerNorm over spatial dims (only over channels, as LayerNorm2d or "
                                "channels-last, is supported)")
    return op_norm(b, name, x, a["weight"] is not None, note)


def op_pass(kind):
    """Element-wise ops with one input: activations ('relu'), dropout/identity ('identity')."""
    def op(b, name, args, kwargs, out, note):
        x = args[0] if args else kwargs.get("input")
        x = _val_of(x, note, name)
        if isinstance(out, torch.Tensor) and out.shape != x.meta.shape:
            raise _fail(note, name, f"it changes the shape {tuple(x.meta.shape)} -> {tuple(out.shape)}")
        node = b.per_channel(b.emit(name, kind, [x.node], x.spatial, note), x)
        return Val(node, out, x.hw, x.chans)
    return op


def op_softmax(b, name, args, kwargs, out, note):
    a = _bind(args, kwargs, ("input", "dim"), {"dim": None})
    x = _val_of(a["input"], note, name)
    if x.spatial and a["dim"] is not None and (a["dim"] % x.meta.dim()) not in x.chans:
        raise _fail(note, name, "softmax over a spatial dim (each unit would see the whole map)")
    node = b.emit(name, "relu", [x.node], x.spatial, note)
    return Val(node, out, x.hw, x.chans)


def op_same(b, name, args, kwargs, out, note):
    """Layout-preserving no-ops (contiguous, clone, dtype casts): no node."""
    x = _val_of(args[0] if args else kwargs.get("input", kwargs.get("self")), note, name)
    if isinstance(out, torch.Tensor) and out.shape != x.meta.shape:
        raise _fail(note, name, "it changes the shape")
    return Val(x.node, out, x.hw, x.chans, x.plain)


def op_linear(b, name, args, kwargs, out, note):
    a = _bind(args, kwargs, ("input", "weight", "bias"), {"bias": None})
    x = _val_of(a["input"], note, name)
    weight = a["weight"]
    if isinstance(weight, Val):
        raise _fail(note, name, "weights computed from the input are not supported")
    bias = a["bias"] is not None
    last = x.meta.dim() - 1
    if x.spatial:  # channels-last Linear on a map (ConvNeXt's pointwise layers): a 1x1 conv
        if x.chans != (last,):
            raise _fail(note, name, "Linear over a spatial axis (only over channels, channels-last)")
        node = b.emit(name, "conv", [x.node], True, note, kernel=1, stride=1, padding=0, dilation=1, groups=1,
                      out_channels=int(weight.shape[0]), bias=bias)
        return Val(node, out, x.hw, x.chans)
    if x.meta.dim() != 2:
        raise _fail(note, name, f"Linear on a {x.meta.dim()}-D tensor after the spatial part")
    node = b.emit(name, "linear", [x.node], False, note, out_features=int(weight.shape[0]), bias=bias)
    return Val(node, out, None, (1,))


def _binary(kind_same):
    """add/sub (kind 'add') and mul/div (kind 'mul'); a constant or number operand changes nothing."""
    def op(b, name, args, kwargs, out, note):
        operands = list(args[:2]) + [kwargs[k] for k in ("other",) if k in kwargs]
        vals = [v for v in operands if isinstance(v, Val)]
        if not vals:
            return out
        if not isinstance(out, torch.Tensor):
            raise _fail(note, name, "unexpected result")
        ref = max(vals, key=lambda v: (v.spatial, v.meta.numel()))
        if out.shape != ref.meta.shape:
            raise _fail(note, name, f"broadcasting {' and '.join(str(tuple(v.meta.shape)) for v in vals)} "
                                    "grows the map")
        unique = list(dict.fromkeys(v.node for v in vals))
        if len(unique) == 1:
            # x * x, x + 3, x * scale: nothing spatial changes; keep the value, no node
            return Val(ref.node, out, ref.hw, ref.chans)
        for v in vals:
            if v is not ref and v.meta.shape != ref.meta.shape:
                if v.spatial and ref.spatial and v.hw is not None and \
                        [v.meta.shape[d] for d in v.hw if d is not None] != \
                        [ref.meta.shape[d] for d in ref.hw if d is not None]:
                    raise _fail(note, name, "broadcast between maps of different spatial sizes")
        kind = kind_same
        shapes = {tuple(v.meta.shape) for v in vals}
        if len(shapes) > 1:
            kind = "mul"  # a broadcast gate (SE, CBAM): the graph's mul broadcasts 1x1 maps and 1 channel
        node = b.emit(name, kind, unique, any(v.spatial for v in vals), note)
        return Val(node, out, ref.hw, ref.chans)
    return op


def op_cat(b, name, args, kwargs, out, note):
    a = _bind(args, kwargs, ("tensors", "dim"), {"dim": 0})
    tensors = a["tensors"]
    vals = [_val_of(t, note, name) for t in tensors]
    ref = vals[0]
    dim = a["dim"] % ref.meta.dim()
    for v in vals:
        if (v.hw, v.chans) != (ref.hw, ref.chans) or dim not in v.chans or len(v.chans) != 1:
            raise _fail(note, name, f"concatenation along dim {a['dim']}, not the channels")
    node = b.emit(name, "concat", [v.node for v in vals], any(v.spatial for v in vals), note)
    if all(v.plain for v in vals):
        b.concat_parts[node] = [(v.node, int(v.meta.shape[dim])) for v in vals]
    return Val(node, out, ref.hw, ref.chans)


def op_split(b, name, args, kwargs, out, note):
    """chunk / split / tensor_split / unbind along channels: one slice node per piece."""
    x = _val_of(args[0] if args else kwargs.get("input"), note, name)
    dim = kwargs.get("dim", None)
    if dim is None:
        dim = args[2] if len(args) > 2 else (0 if note not in ("unbind",) else 0)
    if note == "unbind":
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    dim = dim % x.meta.dim()
    if dim not in x.chans or len(x.chans) != 1:
        raise _fail(note, name, f"splitting along dim {dim}, not the channels")
    pieces, start = [], 0
    for i, piece in enumerate(out):
        size = piece.shape[dim] if piece.dim() == x.meta.dim() else 1
        if size == 0:
            raise _fail(note, name, "an empty piece")
        source, bounds = b.slice_source(x, start, start + size)
        node = b.emit(f"{name}.{i}", "slice", [source], x.spatial, note, channels=bounds)
        if piece.dim() == x.meta.dim():
            pieces.append(Val(node, piece, x.hw, x.chans))
        else:  # unbind drops the dim
            pieces.append(_squeezed(x, dim, node, piece))
        start += size
    return tuple(pieces)


def _squeezed(x: Val, dim: int, node: str, meta) -> Val:
    def shift(d):
        return None if d is None else d - (d > dim)
    hw = None if x.hw is None else tuple(shift(d) for d in x.hw)
    chans = tuple(shift(d) for d in x.chans if d != dim)
    return Val(node, meta, hw, chans)


def op_getitem(b, name, args, kwargs, out, note):
    x, index = args[0], args[1]
    if isinstance(x, (tuple, list)):
        return x[index]
    x = _val_of(x, "indexing", name)
    if not isinstance(index, tuple):
        index = (index,)
    if any(i is Ellipsis for i in index):
        at = [i is Ellipsis for i in index].index(True)
        fill = x.meta.dim() - (len(index) - 1 - sum(i is None for i in index))
        index = index[:at] + (slice(None),) * fill + index[at + 1:]
    if any(i is None or isinstance(i, (torch.Tensor, Val, list, bool)) for i in index):
        raise _fail("indexing", name, "only slices along channels (or plain spatial strides) are supported")
    index = index + (slice(None),) * (x.meta.dim() - len(index))
    cur_val = x
    for dim, item in enumerate(index):
        full = isinstance(item, slice) and item == slice(None)
        if full:
            continue
        size = x.meta.shape[dim]
        if dim == 0:
            raise _fail("indexing", name, "indexing the batch dim")
        if dim in x.chans and len(x.chans) == 1 and (isinstance(item, int) or item.step in (None, 1)):
            start, stop = (item % size, item % size + 1) if isinstance(item, int) else item.indices(size)[:2]
            if stop <= start:
                raise _fail("indexing", name, "an empty channel slice")
            if (start, stop) == (0, size):
                continue
            source, bounds = b.slice_source(cur_val, start, stop)
            node = b.emit(name, "slice", [source], x.spatial, "getitem", channels=bounds)
            cur_val = Val(node, out, x.hw, x.chans)
            continue
        if x.hw is not None and dim in x.hw and isinstance(item, slice) and item.start in (None, 0) \
                and item.stop is None and (item.step or 1) > 1:
            step = item.step
            stride = (step, 1) if dim == x.hw[0] else (1, step)
            node = b.emit(name, "avgpool", [cur_val.node], True, "strided slice", kernel=1,
                          stride=_field(stride), padding=0)
            cur_val = Val(node, out, x.hw, x.chans)
            continue
        raise _fail("indexing", name, f"index {item!r} on dim {dim} (only slices along channels, or "
                                      "[::s] strides over the whole map, are supported)")
    if isinstance(index[1], int) or any(isinstance(i, int) for i in index):
        if out.dim() != x.meta.dim():
            drop = [d for d, i in enumerate(index) if isinstance(i, int)]
            if len(drop) == 1 and drop[0] in x.chans and x.chans != (drop[0],):
                return _squeezed(cur_val, drop[0], cur_val.node, out)
            if not x.spatial:
                return Val(cur_val.node, out, None, tuple(range(1, out.dim())))
            raise _fail("indexing", name, "an integer index that drops the channel dim of a map")
    return Val(cur_val.node, out, cur_val.hw, cur_val.chans)


def op_reshape(b, name, args, kwargs, out, note):
    """view / reshape / flatten / squeeze / unsqueeze / unflatten: layout only, or a flatten head."""
    x = _val_of(args[0] if args else kwargs.get("input"), note, name)
    return _reshaped(b, name, x, out, note)


def _reshaped(b, name, x: Val, out, note):
    s, t = tuple(x.meta.shape), tuple(out.shape)
    if not x.spatial:
        if t and t[0] == s[0]:
            return Val(x.node, out, None, tuple(range(1, len(t))))
        raise _fail(note, name, f"reshape {s} -> {t} mixes the batch dim")
    if t == s:
        return Val(x.node, out, x.hw, x.chans)
    hw_sizes = [1 if d is None else s[d] for d in x.hw]
    stride_in = _strides(s)
    stride_out = _strides(t)

    def find(d):
        """The output dim that is input dim d unchanged (same size and contiguous stride), else None."""
        for j in range(len(t)):
            if t[j] == s[d] and stride_out[j] == stride_in[d]:
                return j
        return None

    batch_ok = len(t) >= 1 and t[0] == s[0] and stride_out[0] == stride_in[0]
    new_hw = tuple(None if d is None else find(d) for d in x.hw)
    keeps = batch_ok and all((d is None) == (j is None) for d, j in zip(x.hw, new_hw)) and \
        all(s[d] > 1 for d in x.hw if d is not None)
    if keeps:
        chans = tuple(j for j in range(1, len(t)) if j not in new_hw)
        return Val(x.node, out, new_hw, chans, x.plain and len(chans) == 1 and len(x.chans) == 1)
    if hw_sizes == [1, 1] and batch_ok and len(t) >= 2 and t[-2:] == (1, 1) and len(t) in (3, 4):
        return Val(x.node, out, (None, len(t) - 1) if len(t) == 3 else (len(t) - 2, len(t) - 1), (1,))
    if batch_ok and len(t) == 2:  # the map becomes a vector: a flatten head
        node = b.emit(name, "flatten", [x.node], False, note)
        return Val(node, out, None, (1,))
    raise _fail(note, name, f"reshape {s} -> {t} mixes spatial and other dims")


def _strides(shape):
    out, acc = [], 1
    for size in reversed(shape):
        out.append(acc)
        acc *= size
    return list(reversed(out))


def op_permute(b, name, args, kwargs, out, note):
    x = _val_of(args[0] if args else kwargs.get("input"), note, name)
    nd = x.meta.dim()
    if note in ("transpose", "swapaxes", "swapdims"):
        d0 = (args[1] if len(args) > 1 else kwargs.get("dim0")) % nd
        d1 = (args[2] if len(args) > 2 else kwargs.get("dim1")) % nd
        perm = list(range(nd))
        perm[d0], perm[d1] = perm[d1], perm[d0]
    else:
        dims = args[1:] if len(args) > 1 else (kwargs.get("dims"),)
        if len(dims) == 1 and isinstance(dims[0], (list, tuple, torch.Size)):
            dims = tuple(dims[0])
        perm = [d % nd for d in dims]
    if perm[0] != 0:
        raise _fail(note, name, "permuting the batch dim")
    where_now = {old: new for new, old in enumerate(perm)}
    if x.hw is None:
        return Val(x.node, out, None, tuple(range(1, nd)))
    hw = tuple(None if d is None else where_now[d] for d in x.hw)
    chans = tuple(sorted(where_now[d] for d in x.chans))
    return Val(x.node, out, hw, chans, x.plain and len(chans) == 1)


def op_pad(b, name, args, kwargs, out, note):
    a = _bind(args, kwargs, ("input", "pad", "mode", "value"), {"mode": "constant"})
    x = _val_of(a["input"], note, name)
    pad = list(a["pad"])
    nd = x.meta.dim()
    if not x.spatial or x.hw[-1] != nd - 1 or (x.hw[0] is not None and x.hw[0] != nd - 2):
        raise _fail(note, name, "padding a map that is not in NCHW layout")
    sides = [(0, 0), (0, 0)]
    sides[1] = (pad[0], pad[1])
    if len(pad) >= 4:
        if x.hw[0] is None and any(pad[2:]):
            raise _fail(note, name, "padding channels")
        if x.hw[0] is not None:
            sides[0] = (pad[2], pad[3])
    if any(pad[4:]) or (x.hw[0] is None and any(pad[2:])):
        raise _fail(note, name, "padding the channel or batch dims")
    if min(sides[0] + sides[1]) < 0:
        raise _fail(note, name, "negative padding (cropping)")
    node = b.per_channel(b.emit(name, "pad", [x.node], True, note, padding=_padding_field(tuple(sides))), x)
    return _new(b, node, out, True)


def op_flatten(b, name, args, kwargs, out, note):
    x = _val_of(args[0] if args else kwargs.get("input"), note, name)
    return _reshaped(b, name, x, out, note)


_ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "sigmoid",
                "tanh", "hardswish", "hardsigmoid", "hardtanh", "softplus", "softsign", "tanhshrink",
                "logsigmoid", "threshold", "rrelu", "clamp", "clip", "clamp_min", "clamp_max", "abs", "neg",
                "exp", "sqrt", "rsqrt", "square", "erf", "swish", "hard_sigmoid", "hard_swish")
_DROPOUT = ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout")
_SAME = ("contiguous", "clone", "detach", "to", "float", "double", "half", "bfloat16", "type", "type_as",
         "requires_grad", "cpu", "cuda")

_OPS = {
    "conv1d": op_conv, "conv2d": op_conv,
    "max_pool1d": _pool("maxpool"), "max_pool2d": _pool("maxpool"),
    "max_pool1d_with_indices": _pool("maxpool"), "max_pool2d_with_indices": _pool("maxpool"),
    "avg_pool1d": _pool("avgpool"), "avg_pool2d": _pool("avgpool"),
    "adaptive_avg_pool1d": _adaptive("avgpool"), "adaptive_avg_pool2d": _adaptive("avgpool"),
    "adaptive_max_pool1d": _adaptive("maxpool"), "adaptive_max_pool2d": _adaptive("maxpool"),
    "adaptive_max_pool2d_with_indices": _adaptive("maxpool"),
    "mean": _reduce, "sum": _reduce, "amax": _reduce, "nanmean": _reduce,
    "batch_norm": op_batch_norm, "group_norm": op_group_norm, "instance_norm": op_instance_norm,
    "layer_norm": op_layer_norm,
    "softmax": op_softmax, "log_softmax": op_softmax,
    "linear": op_linear,
    "add": _binary("add"), "sub": _binary("add"), "subtract": _binary("add"), "rsub": _binary("add"),
    "radd": _binary("add"),
    "mul": _binary("mul"), "multiply": _binary("mul"), "rmul": _binary("mul"), "div": _binary("mul"),
    "divide": _binary("mul"), "truediv": _binary("mul"), "true_divide": _binary("mul"),
    "rtruediv": _binary("mul"), "rdiv": _binary("mul"), "maximum": _binary("mul"), "minimum": _binary("mul"),
    "cat": op_cat, "concat": op_cat, "concatenate": op_cat,
    "chunk": op_split, "split": op_split, "tensor_split": op_split, "unbind": op_split,
    "split_with_sizes": op_split,
    "getitem": op_getitem,
    "view": op_reshape, "reshape": op_reshape, "flatten": op_flatten, "unflatten": op_reshape,
    "squeeze": op_reshape, "unsqueeze": op_reshape, "view_as": op_reshape, "reshape_as": op_reshape,
    "permute": op_permute, "transpose": op_permute, "swapaxes": op_permute, "swapdims": op_permute,
    "pad": op_pad,
}
_OPS.update({name: op_pass("relu") for name in _ACTIVATIONS})
_OPS.update({name: op_pass("identity") for name in _DROPOUT})
_OPS.update({name: op_same for name in _SAME})
_ALIASES = {"iadd": "add", "isub": "sub", "imul": "mul", "itruediv": "truediv", "idiv": "div",
            "concatenate": "cat", "pad_circular": "pad"}


def _op_key(name: str) -> str:
    key = name.strip("_")
    return _ALIASES.get(key, key)


# ------------------------------------------------------------------ output shapes by arithmetic

# Running an op on the meta device makes torch import its Python meta kernels, torch._dynamo and
# sympy on the first call of a process (about 2 s; issue 10 allows 1 s for the whole import). So
# the output shape of every mapped op is computed here from its arguments with PyTorch's own
# formulas, and an empty meta tensor of that shape is made (no kernel runs). A rule returns None
# when it is not sure (unusual arguments, or a call torch would reject): the op then runs on meta,
# which gives the exact shape or torch's own error. tests/test_torch_import.py checks every rule
# against the meta result on all the reference networks.

def _empty(shape):
    return torch.empty(tuple(int(s) for s in shape), device="meta")


def _ints(value, n: int):
    """An int or a 1-or-n sequence of ints as an n-tuple, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value,) * n
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        if len(value) == n:
            return tuple(value)
        if len(value) == 1:
            return (value[0],) * n
    return None


def _spatial_rank(key: str):
    return 1 if key.endswith("1d") else 2 if key.endswith("2d") else None


def _tensor_in(args, kwargs, name="input"):
    x = args[0] if args else kwargs.get(name, kwargs.get("self"))
    return x if isinstance(x, torch.Tensor) else None


def shape_conv(key, args, kwargs):
    """PyTorch: out = floor((n + 2p - d(k - 1) - 1) / s) + 1; 'same' keeps n (stride 1 only)."""
    a = _bind(args, kwargs, ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
              {"stride": 1, "padding": 0, "dilation": 1, "groups": 1})
    x, w = a["input"], a["weight"]
    if not isinstance(x, torch.Tensor) or not isinstance(w, torch.Tensor):
        return None
    nd = w.dim() - 2
    groups = a["groups"]
    if nd not in (1, 2) or x.dim() != nd + 2 or not isinstance(groups, int) or groups < 1 \
            or x.shape[1] != w.shape[1] * groups or w.shape[0] % groups:
        return None
    stride, dilation = _ints(a["stride"], nd), _ints(a["dilation"], nd)
    if stride is None or dilation is None or min(stride + dilation) < 1:
        return None
    padding = a["padding"]
    if padding == "same":
        if stride != (1,) * nd:
            return None
        sizes = tuple(x.shape[2:])
    else:
        pads = (0,) * nd if padding == "valid" else _ints(padding, nd)
        if pads is None or min(pads) < 0:
            return None
        sizes = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                      for n, k, s, p, d in zip(x.shape[2:], w.shape[2:], stride, pads, dilation))
    if min(sizes) < 1:
        return None
    return _empty((x.shape[0], w.shape[0], *sizes))


def shape_pool(key, args, kwargs):
    """PyTorch's pooling_output_shape: floor or ceil of (n + 2p - d(k - 1) - 1) / s, plus 1; in
    ceil mode the last window must start inside the input or its left padding."""
    nd = _spatial_rank(key.replace("_with_indices", ""))
    if key.startswith("max"):
        names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    else:
        names = ("input", "kernel_size", "stride", "padding", "ceil_mode")
    a = _bind(args, kwargs, names, {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False,
                                    "return_indices": key.endswith("_with_indices")})
    x = a["input"]
    if nd is None or not isinstance(x, torch.Tensor) or x.dim() != nd + 2:
        return None
    kernel = _ints(a["kernel_size"], nd)
    stride = a["stride"]
    stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and not stride) else _ints(stride, nd)
    pads, dilation = _ints(a["padding"], nd), _ints(a["dilation"], nd)
    if kernel is None or stride is None or pads is None or dilation != (1,) * nd or min(kernel + stride) < 1 \
            or min(pads) < 0 or any(2 * p > k for p, k in zip(pads, kernel)):
        return None  # dilated pools, padding over half the window: let torch answer (or refuse)
    sizes = []
    for n, k, s, p in zip(x.shape[2:], kernel, stride, pads):
        out = (n + 2 * p - (k - 1) - 1 + (s - 1 if a["ceil_mode"] else 0)) // s + 1
        if a["ceil_mode"] and (out - 1) * s >= n + p:
            out -= 1
        sizes.append(out)
    if min(sizes) < 1:
        return None
    out = _empty((*x.shape[:2], *sizes))
    return (out, _empty(out.shape)) if a["return_indices"] else out


def shape_adaptive(key, args, kwargs):
    nd = _spatial_rank(key.replace("_with_indices", ""))
    a = _bind(args, kwargs, ("input", "output_size", "return_indices"),
              {"return_indices": key.endswith("_with_indices")})
    x = a["input"]
    if nd is None or not isinstance(x, torch.Tensor) or x.dim() != nd + 2:
        return None
    size = a["output_size"]
    size = (size,) * nd if isinstance(size, int) or size is None else tuple(size)
    if len(size) == 1:
        size = size * nd
    if len(size) != nd or not all((s is None and nd == 2) or (isinstance(s, int) and s >= 1) for s in size):
        return None  # None (keep the input's size) is a 2-D-only convenience of F.adaptive_*_pool2d
    out = _empty((*x.shape[:2], *(n if s is None else s for n, s in zip(x.shape[2:], size))))
    return (out, _empty(out.shape)) if key.startswith("adaptive_max") and a["return_indices"] else out


def shape_linear(key, args, kwargs):
    a = _bind(args, kwargs, ("input", "weight", "bias"))
    x, w = a.get("input"), a.get("weight")
    if not isinstance(x, torch.Tensor) or not isinstance(w, torch.Tensor) or w.dim() != 2 or x.dim() < 1 \
            or x.shape[-1] != w.shape[1]:
        return None
    return _empty((*x.shape[:-1], w.shape[0]))


def shape_same(key, args, kwargs):
    """Element-wise ops, norms, dropout, softmax, copies: the input's shape (the input itself)."""
    return _tensor_in(args, kwargs)


def _broadcast(shapes):
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        sizes = {s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0} - {1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def shape_binary(key, args, kwargs):
    operands = list(args[:2]) + [kwargs[k] for k in ("input", "other") if k in kwargs]
    if not any(isinstance(v, torch.Tensor) for v in operands) or \
            not all(isinstance(v, (torch.Tensor, int, float, bool)) for v in operands):
        return None
    shape = _broadcast([tuple(v.shape) if isinstance(v, torch.Tensor) else () for v in operands])
    if shape is None:
        return None
    return _empty(shape)


def shape_cat(key, args, kwargs):
    a = _bind(args, kwargs, ("tensors", "dim"), {"dim": 0})
    tensors, dim = a["tensors"], a["dim"]
    if not isinstance(tensors, (list, tuple)) or not tensors or not isinstance(dim, int) or \
            not all(isinstance(t, torch.Tensor) and t.dim() == tensors[0].dim() >= 1 for t in tensors):
        return None
    rank = tensors[0].dim()
    if not -rank <= dim < rank:
        return None
    dim %= rank
    shape = list(tensors[0].shape)
    if any(list(t.shape[:dim]) + list(t.shape[dim + 1:]) != shape[:dim] + shape[dim + 1:] for t in tensors):
        return None
    shape[dim] = sum(t.shape[dim] for t in tensors)
    return _empty(shape)


def _dim_of(dim, rank, extra=0):
    """A dim index in range (rank + extra for unsqueeze) as a non-negative int, else None."""
    if isinstance(dim, bool) or not isinstance(dim, int) or not -(rank + extra) <= dim < rank + extra:
        return None
    return dim % (rank + extra)


def shape_split(key, args, kwargs):
    """chunk (ceil(n / chunks)-sized pieces, maybe fewer), split / split_with_sizes, unbind."""
    x = _tensor_in(args, kwargs)
    if x is None or x.dim() < 1:
        return None
    if key == "unbind":
        dim = _dim_of(args[1] if len(args) > 1 else kwargs.get("dim", 0), x.dim())
        if dim is None:
            return None
        piece = [s for i, s in enumerate(x.shape) if i != dim]
        return tuple(_empty(piece) for _ in range(x.shape[dim]))
    second = args[1] if len(args) > 1 else kwargs.get("chunks", kwargs.get("split_size_or_sections",
                                                                            kwargs.get("split_size")))
    dim = _dim_of(args[2] if len(args) > 2 else kwargs.get("dim", 0), x.dim())
    if dim is None:
        return None
    n = x.shape[dim]
    if key == "chunk":
        if isinstance(second, bool) or not isinstance(second, int) or second < 1 or n < 1:
            return None
        size = -(-n // second)
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    elif key in ("split", "split_with_sizes") and isinstance(second, int) and not isinstance(second, bool):
        if second < 1 or n < 1:
            return None
        sizes = [second] * (n // second) + ([n % second] if n % second else [])
    elif key in ("split", "split_with_sizes") and isinstance(second, (list, tuple)):
        sizes = list(second)
        if not all(isinstance(s, int) and s >= 0 for s in sizes) or sum(sizes) != n:
            return None
    else:
        return None
    shape = list(x.shape)
    return tuple(_empty(shape[:dim] + [s] + shape[dim + 1:]) for s in sizes)


def _sizes_arg(args, kwargs, name="shape"):
    """view(2, -1) / view((2, -1)) / reshape(x, shape=...) -> a list of ints, else None."""
    rest = args[1:] if len(args) > 1 else (kwargs.get(name, kwargs.get("size")),)
    if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
        rest = tuple(rest[0])
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in rest):
        return None
    return list(rest)


def _infer(sizes, numel):
    """Fill one -1 so that the product is numel (as view does), else None."""
    if sizes is None or sizes.count(-1) > 1 or any(s < -1 for s in sizes):
        return None
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if known == 0 or numel % known:
            return None
        sizes = [numel // known if s == -1 else s for s in sizes]
    return sizes if math.prod(sizes) == numel else None


def shape_reshape(key, args, kwargs):
    x = _tensor_in(args, kwargs)
    if x is None:
        return None
    rank = x.dim()
    if key in ("view_as", "reshape_as"):
        other = args[1] if len(args) > 1 else kwargs.get("other")
        return _empty(other.shape) if isinstance(other, torch.Tensor) and other.numel() == x.numel() else None
    if key in ("view", "reshape"):
        sizes = _infer(_sizes_arg(args, kwargs), x.numel())
        return None if sizes is None else _empty(sizes)
    shape = list(x.shape)
    if key == "flatten":
        start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
        end = args[2] if len(args) > 2 else kwargs.get("end_dim", -1)
        if rank == 0:
            return _empty((1,))
        start, end = _dim_of(start, rank), _dim_of(end, rank)
        if start is None or end is None or start > end:
            return None
        return _empty(shape[:start] + [math.prod(shape[start:end + 1])] + shape[end + 1:])
    if key == "unflatten":
        dim = _dim_of(args[1] if len(args) > 1 else kwargs.get("dim"), rank)
        sizes = args[2] if len(args) > 2 else kwargs.get("sizes")
        if dim is None or not isinstance(sizes, (list, tuple)) or not sizes:
            return None
        sizes = _infer([s for s in sizes] if all(isinstance(s, int) for s in sizes) else None, shape[dim])
        return None if sizes is None else _empty(shape[:dim] + sizes + shape[dim + 1:])
    if key == "squeeze":
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        if dim is None:
            return _empty([s for s in shape if s != 1])
        dims = _dims_list(dim, rank)
        return None if dims is None else _empty([s for i, s in enumerate(shape) if not (i in dims and s == 1)])
    if key == "unsqueeze":
        dim = _dim_of(args[1] if len(args) > 1 else kwargs.get("dim"), rank, extra=1)
        return None if dim is None else _empty(shape[:dim] + [1] + shape[dim:])
    return None


def _dims_list(dim, rank):
    dims = dim if isinstance(dim, (list, tuple)) else (dim,)
    out = [_dim_of(d, max(rank, 1)) for d in dims]
    return None if any(d is None for d in out) else set(out)


def shape_permute(key, args, kwargs):
    x = _tensor_in(args, kwargs)
    if x is None:
        return None
    rank, shape = x.dim(), list(x.shape)
    if key == "permute":
        dims = _sizes_arg(args, kwargs, "dims")
        dims = None if dims is None or len(dims) != rank else [_dim_of(d, rank) for d in dims]
        if dims is None or sorted(d for d in dims if d is not None) != list(range(rank)):
            return None
        return _empty([shape[d] for d in dims])
    d0 = _dim_of(args[1] if len(args) > 1 else kwargs.get("dim0", kwargs.get("axis0")), rank)
    d1 = _dim_of(args[2] if len(args) > 2 else kwargs.get("dim1", kwargs.get("axis1")), rank)
    if d0 is None or d1 is None:
        return None
    shape[d0], shape[d1] = shape[d1], shape[d0]
    return _empty(shape)


def shape_reduce(key, args, kwargs):
    """mean / sum / amax / nanmean over dims (None or () for amax: every dim), keepdim."""
    x = _tensor_in(args, kwargs)
    if x is None:
        return None
    dim = args[1] if len(args) > 1 else kwargs.get("dim", kwargs.get("axis"))
    keep = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    rank = x.dim()
    if dim is None or (isinstance(dim, (list, tuple)) and not dim):
        dims = set(range(rank))
    else:
        dims = _dims_list(dim, rank)
    if dims is None or not isinstance(keep, bool):
        return None
    return _empty([1 if i in dims else s for i, s in enumerate(x.shape) if keep or i not in dims])


def shape_getitem(key, args, kwargs):
    """Basic indexing only (ints, slices with a positive step, None, ...)."""
    x, index = (args + (None, None))[:2]
    if not isinstance(x, torch.Tensor):
        return None
    index = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, bool) or not (i is None or i is Ellipsis or isinstance(i, (int, slice))) for i in index) \
            or sum(i is Ellipsis for i in index) > 1:
        return None
    used = sum(i is not None and i is not Ellipsis for i in index)
    if used > x.dim():
        return None
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (x.dim() - used) + index[at + 1:]
    else:
        index = index + (slice(None),) * (x.dim() - used)
    shape, dim = [], 0
    for item in index:
        if item is None:
            shape.append(1)
            continue
        n = x.shape[dim]
        dim += 1
        if isinstance(item, int):
            if not -n <= item < n:
                return None
            continue
        if not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in
                   (item.start, item.stop, item.step)) or (item.step is not None and item.step < 1):
            return None
        shape.append(len(range(*item.indices(n))))
    return _empty(shape)


def shape_pad(key, args, kwargs):
    a = _bind(args, kwargs, ("input", "pad", "mode", "value"), {"mode": "constant"})
    x, pad = a["input"], a["pad"]
    if not isinstance(x, torch.Tensor) or not isinstance(pad, (list, tuple)) or len(pad) % 2 or \
            len(pad) > 2 * x.dim() or not all(isinstance(p, int) and not isinstance(p, bool) for p in pad):
        return None
    shape = list(x.shape)
    if min(pad, default=0) < 0:
        return None  # cropping: the importer refuses it anyway (op_pad), torch says why
    if a["mode"] != "constant":  # reflect/replicate/circular: pads the last 1-3 dims of a (un)batched map
        limit = {"reflect": 1, "circular": 0, "replicate": None}.get(a["mode"], -1)
        if limit == -1 or not pad or not len(pad) // 2 + 1 <= x.dim() <= len(pad) // 2 + 2 or \
                (limit is not None and any(p > shape[-1 - i // 2] - limit for i, p in enumerate(pad))):
            return None
    for i in range(len(pad) // 2):
        shape[-1 - i] += pad[2 * i] + pad[2 * i + 1]
    if min(shape) < 1:
        return None
    return _empty(shape)


_SHAPES = {
    "conv1d": shape_conv, "conv2d": shape_conv,
    "linear": shape_linear, "cat": shape_cat, "concat": shape_cat, "concatenate": shape_cat,
    "chunk": shape_split, "split": shape_split, "split_with_sizes": shape_split, "unbind": shape_split,
    "getitem": shape_getitem, "pad": shape_pad, "pad_meta": shape_pad,
    "permute": shape_permute, "transpose": shape_permute, "swapaxes": shape_permute, "swapdims": shape_permute,
    "mean": shape_reduce, "sum": shape_reduce, "amax": shape_reduce, "nanmean": shape_reduce,
}
_SHAPES.update({k: shape_pool for k in ("max_pool1d", "max_pool2d", "max_pool1d_with_indices",
                                         "max_pool2d_with_indices", "avg_pool1d", "avg_pool2d")})
_SHAPES.update({k: shape_adaptive for k in ("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d",
                                             "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices")})
_SHAPES.update({k: shape_reshape for k in ("view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze",
                                            "view_as", "reshape_as")})
_SHAPES.update({k: shape_binary for k in ("add", "sub", "subtract", "rsub", "radd", "mul", "multiply", "rmul",
                                           "div", "divide", "truediv", "true_divide", "rtruediv", "rdiv",
                                           "maximum", "minimum")})
_SHAPES.update({k: shape_same for k in _ACTIVATIONS + _DROPOUT + tuple(s for s in _SAME if s != "type") +
                ("batch_norm", "group_norm", "instance_norm", "layer_norm", "softmax", "log_softmax", "first")})


_INPLACE = ("iadd", "isub", "imul", "itruediv", "idiv", "ifloordiv")


def _rule_shape(key: str, args, kwargs):
    """The output of op `key` (a function's or method's name) by a shape rule, or None if unsure."""
    norm = _op_key(key)
    rule = _SHAPES.get(norm)
    out = rule(norm, args, kwargs) if rule is not None else None
    inplace = key.strip("_") in _INPLACE or (key.endswith("_") and not key.endswith("__"))
    if inplace and isinstance(out, torch.Tensor):  # x += y, x.add_(y): y may not grow x
        first = _tensor_in(args, kwargs)
        if first is None or first.shape != out.shape:
            return None
    return out


def _compute(key: str, func, args, kwargs):
    """func(*args, **kwargs)'s output: the shape rule's empty meta tensor(s) when it is sure, else
    the op itself run on the (meta) arguments."""
    out = _rule_shape(key, args, kwargs)
    return out if out is not None else func(*args, **kwargs)


# ------------------------------------------------------------------ modules -> functional form

def _meta(t):
    return None if t is None else torch.empty(t.shape, dtype=t.dtype, device="meta")


def _module_call(module: nn.Module):
    """(op key, function for meta shapes, extra args after the input) for a leaf module, or None."""
    m = module
    if isinstance(m, nn.modules.lazy.LazyModuleMixin) and m.has_uninitialized_params():
        raise RfsweepError("uninitialized lazy module")
    if isinstance(m, (nn.Conv1d, nn.Conv2d)) and not isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d)):
        fn = F.conv1d if isinstance(m, nn.Conv1d) else F.conv2d
        return "conv2d", fn, (_meta(m.weight), _meta(m.bias), m.stride, m.padding, m.dilation, m.groups)
    if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)):
        fn = F.max_pool1d if isinstance(m, nn.MaxPool1d) else F.max_pool2d
        return "max_pool2d", fn, (m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, m.return_indices)
    if isinstance(m, (nn.AvgPool1d, nn.AvgPool2d)):
        fn = F.avg_pool1d if isinstance(m, nn.AvgPool1d) else F.avg_pool2d
        return "avg_pool2d", fn, (m.kernel_size, m.stride, m.padding, m.ceil_mode)
    if isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        fn = F.adaptive_avg_pool1d if isinstance(m, nn.AdaptiveAvgPool1d) else F.adaptive_avg_pool2d
        return "adaptive_avg_pool2d", fn, (m.output_size,)
    if isinstance(m, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)):
        fn = F.adaptive_max_pool1d if isinstance(m, nn.AdaptiveMaxPool1d) else F.adaptive_max_pool2d
        return "adaptive_max_pool2d", fn, (m.output_size, m.return_indices)
    if isinstance(m, nn.modules.batchnorm._NormBase) and not isinstance(m, nn.modules.instancenorm._InstanceNorm):
        return "batch_norm", _first, (None, None, m.weight if m.affine else None, None)
    if isinstance(m, nn.modules.instancenorm._InstanceNorm):
        return "instance_norm", _first, (None, None, m.weight if m.affine else None, None)
    if isinstance(m, nn.GroupNorm):
        return "group_norm", _first, (m.num_groups, m.weight if m.affine else None, None)
    if isinstance(m, nn.LayerNorm):
        return "layer_norm", _first, (m.normalized_shape, m.weight if m.elementwise_affine else None, None)
    if isinstance(m, nn.LocalResponseNorm):
        return "dropout", _first, ()
    if isinstance(m, nn.Linear):
        return "linear", F.linear, (_meta(m.weight), _meta(m.bias))
    if isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                      nn.FeatureAlphaDropout, nn.Identity, nn.ChannelShuffle)):
        return "dropout", _first, ()
    if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
        return "softmax", _first, (m.dim,)
    if isinstance(m, nn.Flatten):
        return "flatten", torch.flatten, (m.start_dim, m.end_dim)
    if isinstance(m, nn.Unflatten):
        return "unflatten", torch.unflatten, (m.dim, m.unflattened_size)
    if isinstance(m, (nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ReflectionPad1d, nn.ReflectionPad2d,
                      nn.ReplicationPad1d, nn.ReplicationPad2d, nn.CircularPad1d, nn.CircularPad2d)):
        return "pad", _pad_meta, (tuple(m.padding),)
    if isinstance(m, nn.PReLU):
        return None
    if type(m).__module__ == "torch.nn.modules.activation" and type(m).__name__ in _ACTIVATION_MODULES:
        return "relu", _first, ()
    return None


_ACTIVATION_MODULES = {"ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid",
                       "Tanh", "Hardswish", "Hardsigmoid", "Hardtanh", "Softplus", "Softsign", "Tanhshrink",
                       "LogSigmoid", "Threshold", "RReLU"}


def _first(x, *args, **kwargs):
    return x


def _pad_meta(x, pad, *args, **kwargs):
    return F.pad(x, pad)


def _unwrap(obj):
    if isinstance(obj, Val):
        return obj.meta
    if isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
        items = [_unwrap(o) for o in obj]
        return type(obj)(items) if isinstance(obj, list) else tuple(items)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _has_val(obj) -> bool:
    if isinstance(obj, Val):
        return True
    if isinstance(obj, (list, tuple)):
        return any(_has_val(o) for o in obj)
    if isinstance(obj, dict):
        return any(_has_val(o) for o in obj.values())
    return False


def _has_tensor(obj) -> bool:
    if isinstance(obj, torch.Tensor):
        return True
    if isinstance(obj, (list, tuple)):
        return any(_has_tensor(o) for o in obj)
    return False


# ------------------------------------------------------------------ the shared dispatcher

class Recorder:
    """Maps each recorded call to nodes through _OPS; used by both the fx and the hook recorder."""

    def __init__(self, module, builder: Builder, qualnames: dict):
        self.module = module
        self.b = builder
        self.qualnames = qualnames

    def module_call(self, mod: nn.Module, qual: str, args, kwargs):
        """A leaf module called on recorded values: its functional form, then the op table."""
        try:
            call = _module_call(mod)
        except RfsweepError as exc:
            raise _fail(f"{type(mod).__name__}", qual, str(exc)) from None
        if call is None:
            raise _fail(f"module {type(mod).__name__}", qual, "no mapping for this module type")
        key, fn, extra = call
        if len(args) != 1 or kwargs:
            raise _fail(f"module {type(mod).__name__}", qual, "called with more than one tensor argument")
        x = args[0]
        if not isinstance(x, Val):
            raise _fail(f"module {type(mod).__name__}", qual, "its input is not computed from the network's input")
        try:
            out = _compute(getattr(fn, "__name__", key), fn, (x.meta, *extra), {})
        except Exception as exc:
            raise _fail(f"module {type(mod).__name__}", qual, f"{type(exc).__name__}: {_one_line(exc)}") from None
        if key == "relu":
            return op_pass("relu")(self.b, qual, (x,), {}, out, type(mod).__name__)
        if key == "dropout":
            return op_pass("identity")(self.b, qual, (x,), {}, out, type(mod).__name__)
        if key == "pad":
            pad = extra[0]
            return op_pad(self.b, qual, (x, pad), {}, out, type(mod).__name__)
        if key == "softmax":
            return op_softmax(self.b, qual, (x, extra[0]), {}, out, type(mod).__name__)
        return _OPS[key](self.b, qual, (x, *extra), {}, out, type(mod).__name__)

    def function_call(self, name: str, key: str, func, args, kwargs, out=None, run=True):
        """A torch function or tensor method on recorded values; `out` is computed on meta if not given."""
        handler = _OPS.get(_op_key(key))
        if run:
            try:
                out = _compute(key, func, _unwrap(args), _unwrap(kwargs))
            except Unsupported:
                raise
            except Exception as exc:
                raise _fail(f"op {key!r}", name, f"{type(exc).__name__}: {_one_line(exc)}") from None
        if not _has_tensor(out) and _op_key(key) != "getitem":
            return out  # sizes, dims, shapes: plain Python values
        if handler is None:
            raise _fail(f"op {key!r}", name, "no mapping for this operation")
        return handler(self.b, name, args, kwargs, out, _op_key(key))


# ------------------------------------------------------------------ recorder 1: torch.fx

def _fx_record(module, x_meta, b: Builder, qualnames):
    import torch.fx as fx

    graph_module = fx.symbolic_trace(module)
    rec = Recorder(module, b, qualnames)
    env: dict = {}
    placeholders = 0

    def load(arg):
        return fx.node.map_arg(arg, lambda n: env[n.name])

    for node in graph_module.graph.nodes:
        scope = _fx_scope(node)
        if node.op == "placeholder":
            placeholders += 1
            if placeholders > 1:
                if node.args:  # a default value
                    env[node.name] = node.args[0]
                    continue
                raise RfsweepError(f"the model's forward takes more than one input ({node.target!r}); "
                                   "rfsweep feeds it one image tensor")
            env[node.name] = _new(b, INPUT, x_meta, True)
        elif node.op == "get_attr":
            value = _attr(graph_module, node.target)
            env[node.name] = _meta(value) if isinstance(value, torch.Tensor) else value
        elif node.op == "call_module":
            mod = graph_module.get_submodule(node.target)
            args, kwargs = load(node.args), load(node.kwargs)
            if not _has_val(args) and not _has_val(kwargs):
                raise _fail(f"module {type(mod).__name__}", node.target, "its input is not computed from the "
                                                                        "network's input")
            env[node.name] = rec.module_call(mod, node.target, args, kwargs)
        elif node.op in ("call_function", "call_method"):
            args, kwargs = load(node.args), load(node.kwargs)
            if node.op == "call_method":
                key = node.target
                func = _method(node.target)
            else:
                func = node.target
                key = getattr(func, "__name__", str(func))
            base = _fx_base(node.name)
            name = f"{scope}.{base}" if scope else base
            if not _has_val(args) and not _has_val(kwargs):
                env[node.name] = _compute(key, func, _unwrap(args), _unwrap(kwargs))  # constants
                continue
            env[node.name] = rec.function_call(name, key, func, args, kwargs)
        elif node.op == "output":
            pass
    return placeholders


def _method(name):
    def call(self, *args, **kwargs):
        return getattr(self, name)(*args, **kwargs)
    return call


def _attr(root, target: str):
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _fx_scope(node) -> str:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ""
    last = list(stack.values())[-1]
    return last[0] if isinstance(last, tuple) else str(last)


def _fx_base(name: str) -> str:
    """fx's 'add_3' -> 'add' (the Builder numbers names again, per scope)."""
    head, _, tail = name.rpartition("_")
    return head if head and tail.isdigit() else name


# ------------------------------------------------------------------ recorder 2: a meta-device forward

def _hook_record(module, x_meta, b: Builder, qualnames):
    """A forward on meta tensors under a TorchFunctionMode; module hooks name the ops and
    leaf modules of known types are mapped whole (their inner ops are not recorded)."""
    from torch.overrides import TorchFunctionMode

    rec = Recorder(module, b, qualnames)
    vals: dict[int, Val] = {}
    scopes: list[str] = []
    leaf_depth = [0]
    busy = [False]  # the recorder's own meta computations are not the model's ops
    pending: list = []

    def wrap(obj):
        """Real meta tensors -> recorded Vals where known."""
        if isinstance(obj, torch.Tensor):
            return vals.get(id(obj), obj)
        if isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
            items = [wrap(o) for o in obj]
            return items if isinstance(obj, list) else tuple(items)
        if isinstance(obj, dict):
            return {k: wrap(v) for k, v in obj.items()}
        return obj

    def remember(val_out, real_out):
        if isinstance(val_out, Val) and isinstance(real_out, torch.Tensor):
            val_out.meta = real_out
            vals[id(real_out)] = val_out
        elif isinstance(val_out, (tuple, list)) and isinstance(real_out, (tuple, list)):
            for v, r in zip(val_out, real_out):
                remember(v, r)

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if leaf_depth[0] or busy[0]:
                return out
            wargs, wkwargs = wrap(args), wrap(kwargs)
            if not _has_val(wargs) and not _has_val(wkwargs):
                return out
            key = getattr(func, "__name__", str(func))
            if key == "__get__":  # x.shape, x.dtype ...
                return out
            scope = scopes[-1] if scopes else ""
            name = f"{scope}.{_op_key(key)}" if scope else _op_key(key)
            busy[0] = True
            try:
                result = rec.function_call(name, key, func, wargs, wkwargs, out=out, run=False)
            finally:
                busy[0] = False
            remember(result, out)
            return out

    def pre(mod, args):
        qual = qualnames.get(id(mod))
        if qual is None or mod is module:
            return
        if leaf_depth[0]:
            leaf_depth[0] += 1
            pending.append(None)
            return
        if _module_call_safe(mod) is not None:
            wargs = wrap(args)
            pending.append(("leaf", mod, qual, wargs))
            leaf_depth[0] += 1
        else:
            pending.append(("scope",))
            scopes.append(qual)

    def post(mod, args, output):
        qual = qualnames.get(id(mod))
        if qual is None or mod is module:
            return
        entry = pending.pop()
        if entry is None:
            leaf_depth[0] -= 1
            return
        if entry[0] == "scope":
            scopes.pop()
            return
        _, m, q, wargs = entry
        try:
            result = rec.module_call(m, q, wargs, {})
        finally:
            leaf_depth[0] -= 1
        remember(result, output)

    state = {name: _meta(t) for name, t in list(module.named_parameters()) + list(module.named_buffers())}
    h1 = nn.modules.module.register_module_forward_pre_hook(pre)
    h2 = nn.modules.module.register_module_forward_hook(post)
    try:
        x = x_meta
        vals[id(x)] = _new(b, INPUT, x, True)
        with Mode():
            torch.func.functional_call(module, state, (x,))
    finally:
        h1.remove()
        h2.remove()


def _module_call_safe(mod):
    try:
        return _module_call(mod)
    except RfsweepError:
        return ("error",)


# ------------------------------------------------------------------ the public entry point

def _input_rank(module) -> int:
    """3 (N, C, L) when the model's first convolution or pool is 1-D, else 4 (N, C, H, W)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.MaxPool1d, nn.AvgPool1d)) and not isinstance(m, nn.ConvTranspose1d):
            return 3
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.Conv3d)):
            return 4
    return 4


def from_torch(module, input_size=224, in_channels: int = 3) -> dict:
    """The graph (contract section 6) of a torch.nn.Module: one node per mapped op.

    input_size: an int or (h, w); for a 1-D model (its first conv or pool is
    1-D) the length. Node names are qualified module names (`layer1.0.conv1`)
    and, for functions, the calling module's name plus the op (`layer1.0.add`).
    "output" is the last node whose output is still a spatial feature map; the
    head after it (global pooling, flatten, linear) stays in the graph so its
    params and MACs count. MACs: conv and linear multiply-accumulates, bias adds
    not counted (= torch.utils.flop_counter FLOPs / 2).
    The model is traced with torch.fx; if fx cannot trace it, it is run once on
    the meta device (shapes only). Nothing is computed at the real input size.
    """
    if not isinstance(module, nn.Module):
        raise RfsweepError(f"from_torch needs a torch.nn.Module, got {type(module).__name__}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise RfsweepError(f"in_channels must be a positive integer, got {in_channels!r}")
    rank = _input_rank(module)
    if isinstance(input_size, (list, tuple)):
        if len(input_size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                           for v in input_size):
            raise RfsweepError(f"input_size must be a positive int or (h, w), got {input_size!r}")
        h, w = input_size
    elif isinstance(input_size, int) and not isinstance(input_size, bool) and input_size >= 1:
        h, w = (1, input_size) if rank == 3 else (input_size, input_size)
    else:
        raise RfsweepError(f"input_size must be a positive int or (h, w), got {input_size!r}")
    if rank == 3 and h != 1:
        raise RfsweepError(f"this model is 1-D (its first layer is {_first_layer(module)}); give the "
                           "signal length as input_size")
    shape = (BATCH, in_channels, w) if rank == 3 else (BATCH, in_channels, h, w)
    qualnames = {id(m): name for name, m in module.named_modules() if name}
    errors = []
    for record in (_fx_record, _hook_record):
        builder = Builder(_field((h, w)), in_channels)
        x = torch.empty(shape, device="meta")
        try:
            with warnings.catch_warnings():  # 'same' padding with even kernels warns about a copy
                warnings.simplefilter("ignore")
                record(module, x, builder, qualnames)
        except Unsupported:
            raise
        except RfsweepError:
            raise
        except Exception as exc:  # fx could not trace it (or the meta forward failed): try the next
            errors.append(f"{type(exc).__name__}: {_one_line(exc)}")
            continue
        return _finish(builder)
    raise RfsweepError(f"cannot trace {type(module).__name__}: torch.fx failed ({errors[0]}); "
                       f"a meta-device forward failed too ({errors[-1]})")


def _first_layer(module) -> str:
    for name, m in module.named_modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.MaxPool1d, nn.AvgPool1d, nn.MaxPool2d, nn.AvgPool2d)):
            return f"{name} ({type(m).__name__})"
    return "?"


def _finish(b: Builder) -> dict:
    if not b.nodes:
        raise RfsweepError("the model has no layers that rfsweep can see (its output does not depend on "
                           "its input through mapped ops)")
    spatial = [node["name"] for node in b.nodes if b.spatial[node["name"]]]
    if not spatial:
        raise RfsweepError("the model has no spatial feature map (no convolution or pooling on the input)")
    return {"input_size": b.input_size, "in_channels": b.in_channels, "nodes": b.nodes, "output": spatial[-1]}
