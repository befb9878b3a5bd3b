"""The op table: `op name -> node builder` (`_OPS`, keyed by a normalised op name, as fvcore and
torch.utils.flop_counter do). A builder gets the recorded inputs (`Val`s) and the op's output
shape, emits graph nodes and returns the output's `Val`; what it cannot map it refuses (`_fail`).
Both tracers (fx.py, meta.py) feed this one table, through recorder.py.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from . import tokens
from .values import (BATCH, Val, _axes, _bind, _check_std, _dims, _fail, _field, _new, _padding_field,
                     _val_of)


def op_conv(b, name, args, kwargs, out, note):
    a = _bind(args, kwargs, ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
              {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1})
    x = _val_of(a["input"], note, name)
    weight = a["weight"]
    if isinstance(weight, Val):
        raise _fail(note, name, "weights computed from the input (dynamic convolution) are not supported")
    if not x.spatial and any(n > 1 for n in x.meta.shape[2:]):  # sliding along a vector's channels
        return _conv_on_a_vector(b, name, x, weight, out, note)
    _check_std(x, note, name)
    rank = weight.dim() - 2
    if rank not in (1, 2, 3) or x.meta.dim() != rank + 2:
        raise _fail(note, name, f"a convolution with weight {tuple(weight.shape)} on input {tuple(x.meta.shape)} "
                                "(supported: 1-D, 2-D and 3-D convolutions of a batched map)")
    kernel = tuple(int(k) for k in weight.shape[2:])
    stride = _axes(a["stride"], rank)
    dilation = _axes(a["dilation"], rank)
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
        pads = tuple((p, p) for p in _axes(padding, rank))
    bias = _learned_bias(b, a["bias"])
    fields = {"kernel": _field(kernel), "stride": _field(stride), "padding": _padding_field(pads),
              "dilation": _field(dilation), "groups": int(a["groups"]), "out_channels": int(weight.shape[0]),
              "bias": bias}
    if not b.params.sources(weight):  # a buffer (a fixed blur filter): MACs, but no learned weights
        fields["fixed_weights"] = True
    node = b.emit(name, "conv", [x.node], x.spatial, note, **fields)
    return _new(b, node, out, x.spatial)


def _conv_on_a_vector(b, name, x: Val, weight, out, note) -> Val:
    """A conv along the channels of a pooled vector (ECA's gate: conv1d over the C means): no field
    (the vector is 1x1 already), so an identity node with the conv's MACs; the recorder charges its
    parameters to it. The vector must keep its length (its channel count in the graph)."""
    if out.numel() != x.meta.numel():
        raise _fail(note, name, f"a convolution on a vector {tuple(x.meta.shape)} -> {tuple(out.shape)} "
                                "that changes its length (only a same-length conv along the channels)")
    macs = out.numel() // BATCH * math.prod(weight.shape[1:])
    node = b.emit(name, "identity", [x.node], False, f"{note} along the channels of a vector", macs=int(macs))
    return Val(node, out, None, x.chans)


def op_conv_transpose(b, name, args, kwargs, out, note):
    """F.conv_transpose{1,2,3}d / nn.ConvTranspose{1,2,3}d: a conv_transpose node (weight: in, out/groups,
    kernel per axis)."""
    a = _bind(args, kwargs, ("input", "weight", "bias", "stride", "padding", "output_padding", "groups",
                             "dilation"), {"bias": None, "stride": 1, "padding": 0, "output_padding": 0,
                                           "groups": 1, "dilation": 1})
    x = _val_of(a["input"], note, name)
    _check_std(x, note, name)
    weight = a["weight"]
    rank = x.meta.dim() - 2
    if isinstance(weight, Val) or weight.dim() != rank + 2:
        raise _fail(note, name, "only transposed convolutions with fixed weights of the input's rank are "
                                "supported")
    groups = int(a["groups"])
    fields = {"kernel": _field(int(k) for k in weight.shape[2:]), "stride": _field(_axes(a["stride"], rank)),
              "padding": _field(_axes(a["padding"], rank)),
              "output_padding": _field(_axes(a["output_padding"], rank)),
              "dilation": _field(_axes(a["dilation"], rank)), "groups": groups,
              "out_channels": int(weight.shape[1]) * groups, "bias": a["bias"] is not None}
    node = b.emit(name, "conv_transpose", [x.node], x.spatial, note, **fields)
    return _new(b, node, out, x.spatial)


_UPSAMPLE_MODES = {1: ("nearest", "linear"), 2: ("nearest", "bilinear", "bicubic"), 3: ("nearest", "trilinear")}


def op_interpolate(b, name, args, kwargs, out, note):
    """F.interpolate / nn.Upsample by an integer factor per axis (scale_factor, or a size that is a multiple)."""
    a = _bind(args, kwargs, ("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor",
                             "antialias"), {"size": None, "scale_factor": None, "mode": "nearest",
                                            "align_corners": None, "recompute_scale_factor": None,
                                            "antialias": False})
    x = _val_of(a["input"], note, name)
    _check_std(x, note, name)
    mode = a["mode"]
    rank = x.meta.dim() - 2
    modes = _UPSAMPLE_MODES.get(rank, ())
    if mode not in modes:
        raise _fail(note, name, f"mode {mode!r} on a {rank}-D map (supported there: {', '.join(modes)})")
    if a["antialias"]:
        raise _fail(note, name, "antialias=True is not supported")
    factors = a["scale_factor"]
    if factors is not None:
        for f in (factors if isinstance(factors, (list, tuple)) else (factors,)):
            if float(f) != int(f) or f < 1:
                raise _fail(note, name, f"scale_factor {factors!r} is not an integer >= 1 (no exact per-unit field)")
    scale = []
    for d in range(2, x.meta.dim()):
        n_in, n_out = x.meta.shape[d], out.shape[d]
        if n_out % n_in:
            raise _fail(note, name, f"output size {tuple(out.shape[2:])} is not an integer multiple of the "
                                    f"input {tuple(x.meta.shape[2:])}")
        scale.append(n_out // n_in)
    fields = {"scale": _field(tuple(scale)), "mode": mode}
    if mode != "nearest":
        fields["align_corners"] = bool(a["align_corners"])
    node = b.emit(name, "upsample", [x.node], x.spatial, note, **fields)
    return _new(b, node, out, x.spatial)


def _shuffle(kind):
    def op(b, name, args, kwargs, out, note):
        x = _val_of(args[0] if args else kwargs.get("input"), note, name)
        _check_std(x, note, name)
        if x.meta.dim() != 4:
            raise _fail(note, name, f"{kind} of a {x.meta.dim() - 2}-D map (PyTorch's shuffles rearrange the "
                                    "last two dims: 2-D maps only)")
        factor = args[1] if len(args) > 1 else kwargs.get("upscale_factor", kwargs.get("downscale_factor"))
        node = b.emit(name, kind, [x.node], x.spatial, note, factor=int(factor))
        return _new(b, node, out, x.spatial)
    return op


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
        rank = x.meta.dim() - 2
        kernel = _axes(a["kernel_size"], rank)
        stride = a["stride"]
        stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) \
            else _axes(stride, rank)
        if _axes(a["dilation"], rank) != (1,) * rank:
            raise _fail(note, name, "pools with dilation > 1 are not supported")
        p = _axes(a["padding"], rank)
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
        if x.unusual:
            return tokens.adaptive(b, name, x, out, note)
        if not x.spatial:
            return Val(x.node, out, None, tuple(range(1, out.dim())))
        _check_std(x, note, name)
        n_in = [int(x.meta.shape[d]) for d in x.hw]
        n_out = [int(out.shape[d]) for d in x.hw]
        if n_out == [1] * len(n_out):
            return _global(b, name, x, out, note)
        if n_out == n_in:
            node = b.emit(name, "identity", [x.node], True, note)
            return _new(b, node, out, True)
        if all(i % o == 0 for i, o in zip(n_in, n_out)):  # equal windows: a plain pool
            kernel = tuple(i // o for i, o in zip(n_in, n_out))
            node = b.emit(name, kind, [x.node], True, note, kernel=_field(kernel), stride=_field(kernel),
                          padding=0)
            return _new(b, node, out, True)
        size = "x".join  # 56x56, 16x56x56
        raise _fail(note, name, f"adaptive pooling from {size(map(str, n_in))} to {size(map(str, n_out))} has "
                                "overlapping windows of different sizes")
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
    if x.unusual:
        return tokens.reduce(b, name, x, dims, out, note)
    spatial_dims = set(x.hw)
    if dims == spatial_dims:
        return _global(b, name, x, out, note)
    if dims <= set(x.chans):  # ResNeSt's sum over its radix dim: per position, fewer channels
        return tokens.reduce(b, name, x, dims, out, note)
    raise _fail(note, name, f"reduction over dims {sorted(dims)} (only global pooling over the spatial dims "
                            f"{sorted(spatial_dims)} is supported)")


def _raise(exc):
    raise exc


def op_vector_norm(b, name, args, kwargs, out, note):
    """x.norm(p, dim) / torch.linalg.vector_norm(x, ord, dim): a reduction like mean (ConvNeXt V2's
    global response norm: over the spatial dims, every unit of the map)."""
    keys = ("input", "ord", "dim", "keepdim") if note == "vector_norm" else ("input", "p", "dim", "keepdim")
    a = _bind(args, kwargs, keys, {keys[1]: 2, "dim": None, "keepdim": False})
    if a["dim"] is None:
        raise _fail(note, name, "a norm over every dim (batch included)")
    return _reduce(b, name, (a["input"], a["dim"], a["keepdim"]), {}, out, note)


def op_roll(b, name, args, kwargs, out, note):
    raise _fail(note, name, "a cyclic shift of the map (Swin's shifted windows): the windows at the border "
                            "then join opposite edges of the map, so a unit's field there is neither a window "
                            "nor global; pass --end-point a node before it")


def op_expand(b, name, args, kwargs, out, note):
    """gate.expand_as(x) / gate.expand(...) of a vector (ECA's channel gate) before x * gate: the
    graph's mul broadcasts a 1x1 input, so the gate stays what it is; a map cannot grow."""
    x = _val_of(args[0] if args else kwargs.get("input"), note, name)
    if x.spatial and tuple(out.shape) != tuple(x.meta.shape):
        raise _fail(note, name, f"expanding {tuple(x.meta.shape)} to {tuple(out.shape)} grows the map")
    if x.spatial:
        return replace(x, meta=out)
    return Val(x.node, out, None, tuple(range(1, out.dim())))


def op_addcmul(b, name, args, kwargs, out, note):
    """torch.addcmul(input, t1, t2, value=v) = input + v * t1 * t2 (ResMLP's affine, ConvNeXt V2's GRN
    with learned weight and bias): a product, then a sum, as the two ops."""
    a = _bind(args, kwargs, ("input", "tensor1", "tensor2"), {})
    t1, t2 = a["tensor1"], a["tensor2"]
    shape = torch.broadcast_shapes(*(t.meta.shape if isinstance(t, Val) else t.shape for t in (t1, t2)))
    product = _binary("mul")(b, f"{name}.mul", (t1, t2), {}, torch.empty(shape, device="meta"), note)
    return _binary("add")(b, name, (a["input"], product), {}, out, note)


def op_norm(b, name, x, affine: bool, note):
    """A bn node (2C parameters) when it has both a weight and a bias; else an identity node, to which
    the recorder charges the parameters it does use (a bias-free LayerNorm's C weights)."""
    kind = "bn" if affine else "identity"
    if x.pending is not None:
        raise _fail(note, name, "normalising attention scores")
    node = b.emit(name, kind, [x.node], x.spatial, note)
    return replace(x, node=node)


def _per_channel_norm(params: tuple):
    """F.batch_norm / group_norm / instance_norm: per position, a bn node when affine, else identity."""
    def op(b, name, args, kwargs, out, note):
        a = _bind(args, kwargs, params, {"weight": None, "bias": None})
        x = _val_of(a["input"], note, name)
        return op_norm(b, name, x, a["weight"] is not None and a["bias"] is not None, note)
    return op


op_batch_norm = _per_channel_norm(("input", "running_mean", "running_var", "weight", "bias"))
op_group_norm = _per_channel_norm(("input", "num_groups", "weight", "bias"))
op_instance_norm = _per_channel_norm(("input", "running_mean", "running_var", "weight", "bias"))


def op_layer_norm(b, name, args, kwargs, out, note):
    a = _bind(args, kwargs, ("input", "normalized_shape", "weight", "bias"), {"weight": None, "bias": None})
    x = _val_of(a["input"], note, name)
    shape = a["normalized_shape"]
    count = 1 if isinstance(shape, int) else len(shape)
    dims = set(range(x.meta.dim() - count, x.meta.dim()))
    if x.spatial and not dims <= set(x.chans):
        raise _fail(note, name, "LayerNorm over spatial dims (only over channels, as LayerNorm2d or "
                                "channels-last, is supported)")
    return op_norm(b, name, x, a["weight"] is not None and a["bias"] is not None, note)


def op_pass(kind):
    """Element-wise ops with one input: activations ('relu'), dropout/identity ('identity')."""
    def op(b, name, args, kwargs, out, note):
        x = args[0] if args else kwargs.get("input")
        x = _val_of(x, note, name)
        if isinstance(out, torch.Tensor) and out.shape != x.meta.shape:
            raise _fail(note, name, f"it changes the shape {tuple(x.meta.shape)} -> {tuple(out.shape)}")
        if x.pending is not None:  # dropout or an activation on attention scores: still pending
            return replace(x, meta=out)
        node = b.per_channel(b.emit(name, kind, [x.node], x.spatial, note), x)
        return replace(x, node=node, meta=out)
    return op


def op_softmax(b, name, args, kwargs, out, note):
    a = _bind(args, kwargs, ("input", "dim"), {"dim": None})
    x = _val_of(a["input"], note, name)
    if x.unusual and a["dim"] is not None:
        return tokens.softmax(b, name, x, a["dim"] % x.meta.dim(), out, note)
    if x.spatial and a["dim"] is not None and (a["dim"] % x.meta.dim()) not in x.chans:
        raise _fail(note, name, "softmax over a spatial dim (each unit would see the whole map)")
    node = b.emit(name, "relu", [x.node], x.spatial, note)
    return replace(x, node=node, meta=out)


def op_same(b, name, args, kwargs, out, note):
    """Layout-preserving no-ops (contiguous, clone, dtype casts): no node."""
    x = _val_of(args[0] if args else kwargs.get("input", kwargs.get("self")), note, name)
    if isinstance(out, torch.Tensor) and out.shape != x.meta.shape:
        raise _fail(note, name, "it changes the shape")
    return replace(x, meta=out)


def _learned_bias(b, bias) -> bool:
    """Whether the node's formula should count a bias: one learned value per output. A bias built
    from parameters and buffers (BEiT's cat(q_bias, zeros, v_bias)) or from a buffer is not: its
    parameters, if any, reach the node as extras (params.py), so each is counted once."""
    if bias is None:
        return False
    names = b.params.sources(bias)
    return sum(b.params.numel[n] for n in names) == bias.numel()


def op_linear(b, name, args, kwargs, out, note):
    a = _bind(args, kwargs, ("input", "weight", "bias"), {"bias": None})
    x = _val_of(a["input"], note, name)
    weight = a["weight"]
    if isinstance(weight, Val):
        raise _fail(note, name, "weights computed from the input are not supported")
    bias = _learned_bias(b, a["bias"])
    last = x.meta.dim() - 1
    if x.pending is not None:
        raise _fail(note, name, "Linear over attention scores")
    if x.spatial:  # channels-last Linear on a map (ConvNeXt's pointwise layers) or per token: a 1x1 conv
        if x.chans != (last,):
            raise _fail(note, name, "Linear over a spatial axis (only over channels, channels-last)")
        per_token = int(weight.shape[0]) * int(weight.shape[1])
        node = b.emit(name, "conv", [x.node], True, note, kernel=1, stride=1, padding=0, dilation=1, groups=1,
                      out_channels=int(weight.shape[0]), bias=bias, **tokens.extra_token_macs(x, per_token))
        return replace(x, node=node, meta=out)
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
        if any(v.pending is not None for v in vals):
            return tokens.binary(b, name, vals, out, note)
        ref = max(vals, key=lambda v: (v.spatial, v.meta.numel()))
        if out.shape != ref.meta.shape:
            raise _fail(note, name, f"broadcasting {' and '.join(str(tuple(v.meta.shape)) for v in vals)} "
                                    "grows the map")
        unique = list(dict.fromkeys(v.node for v in vals))
        if len(unique) == 1:
            # x * x, x + 3, x * scale: nothing spatial changes; keep the value, no node
            return replace(ref, meta=out, plain=ref.plain)
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
        if ref.unusual and any(tokens.roles(v) != tokens.roles(ref) for v in vals):
            raise _fail(note, name, "arithmetic between values of different token layouts")
        node = b.emit(name, kind, unique, any(v.spatial for v in vals), note)
        return replace(ref, node=node, meta=out)
    return op


def op_cat(b, name, args, kwargs, out, note):
    a = _bind(args, kwargs, ("tensors", "dim"), {"dim": 0})
    tensors = a["tensors"]
    unusual = [t for t in tensors if isinstance(t, Val) and t.unusual]
    if unusual:
        return tokens.cat(b, name, list(tensors), a["dim"] % unusual[0].meta.dim(), out, note)
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
    if x.unusual or (dim in x.chans and len(x.chans) > 1):
        return tokens.split(b, name, x, dim, out, note)
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
            pieces.append(replace(x, node=node, meta=piece))
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
    if x.unusual:
        return tokens.getitem(b, name, x, index, out)
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
            cur_val = replace(x, node=node, meta=out)
            continue
        if x.hw is not None and dim in x.hw and isinstance(item, slice) and item.step in (None, 1) \
                and x.meta.dim() in (3, 4, 5):  # a spatial slice (a causal 1-D chomp too): a crop
            start, stop = item.indices(size)[:2]
            if stop <= start:
                raise _fail("indexing", name, "an empty spatial slice")
            sides = [[0, 0] for _ in x.hw]
            sides[x.hw.index(dim)] = [start, size - stop]
            node = b.emit(name, "crop", [cur_val.node], True, "spatial slice", crop=sides)
            cur_val = Val(node, out, x.hw, x.chans)
            continue
        if x.hw is not None and dim in x.hw and isinstance(item, slice) and item.start in (None, 0) \
                and item.stop is None and (item.step or 1) > 1:
            step = item.step
            stride = tuple(step if d == dim else 1 for d in x.hw)
            node = b.emit(name, "avgpool", [cur_val.node], True, "strided slice", kernel=1,
                          stride=_field(stride), padding=0)
            cur_val = replace(x, node=node, meta=out)
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
    return replace(cur_val, meta=out)


def op_reshape(b, name, args, kwargs, out, note):
    """view / reshape / flatten / squeeze / unsqueeze / unflatten: layout only, or a flatten head."""
    x = _val_of(args[0] if args else kwargs.get("input"), note, name)
    return _reshaped(b, name, x, out, note)


def _reshaped(b, name, x: Val, out, note):
    s, t = tuple(x.meta.shape), tuple(out.shape)
    if x.unusual:
        return tokens.reshape(b, name, x, out, note)
    if not x.spatial:
        if t and t[0] == s[0]:
            return Val(x.node, out, None, tuple(range(1, len(t))))
        raise _fail(note, name, f"reshape {s} -> {t} mixes the batch dim")
    if t == s:
        return replace(x, meta=out)
    hw_sizes = [s[d] for d in x.hw]
    stride_in = _strides(s)
    stride_out = _strides(t)

    def find(d):
        """The output dim that is input dim d unchanged (same size and contiguous stride), else None."""
        for j in range(len(t)):
            if t[j] == s[d] and stride_out[j] == stride_in[d]:
                return j
        return None

    batch_ok = len(t) >= 1 and t[0] == s[0] and stride_out[0] == stride_in[0]
    new_hw = tuple(find(d) for d in x.hw)
    keeps = batch_ok and None not in new_hw and all(s[d] > 1 for d in x.hw)
    if keeps:
        chans = tuple(j for j in range(1, len(t)) if j not in new_hw)
        return Val(x.node, out, new_hw, chans, x.plain and len(chans) == 1 and len(x.chans) == 1)
    if set(hw_sizes) == {1} and batch_ok and len(t) == len(x.hw) + 2 and set(t[2:]) == {1}:  # a 1x1 map
        return Val(x.node, out, tuple(range(2, len(t))), (1,))
    if batch_ok and len(t) == 2:  # the map becomes a vector: a flatten head
        node = b.emit(name, "flatten", [x.node], False, note)
        return Val(node, out, None, (1,))
    return tokens.reshape(b, name, x, out, note)  # to tokens (flatten(2)), or its refusal


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
    if perm[0] != 0 or x.unusual:
        return tokens.permute(b, name, x, perm, out, note)
    where_now = {old: new for new, old in enumerate(perm)}
    if x.hw is None:
        return Val(x.node, out, None, tuple(range(1, nd)))
    hw = tuple(where_now[d] for d in x.hw)
    chans = tuple(sorted(where_now[d] for d in x.chans))
    return Val(x.node, out, hw, chans, x.plain and len(chans) == 1)


def op_pad(b, name, args, kwargs, out, note):
    a = _bind(args, kwargs, ("input", "pad", "mode", "value"), {"mode": "constant"})
    x = _val_of(a["input"], note, name)
    pad = list(a["pad"])
    nd = x.meta.dim()
    if x.unusual:
        raise _fail(note, name, "padding a token layout (reshape it back to a map first)")
    if x.hw is None:
        raise _fail(note, name, "padding a tensor that is no longer a map")
    pairs = [tuple(pad[i:i + 2]) + (0,) * (2 - len(pad[i:i + 2])) for i in range(0, len(pad), 2)]
    sides = [(0, 0)] * len(x.hw)
    for i, pair in enumerate(pairs):  # F.pad's pairs start at the last dim: (left, right, top, bottom, ...)
        dim = nd - 1 - i
        if dim in x.hw:
            sides[x.hw.index(dim)] = pair
        elif any(pair):
            raise _fail(note, name, f"padding dim {dim}, which holds the channels or the batch")
    flat = [p for side in sides for p in side]
    if min(flat) < 0:
        if max(flat) > 0 or a["mode"] != "constant":
            raise _fail(note, name, "padding that crops on one side and pads on another")
        crop = [[-before, -after] for before, after in sides]
        node = b.emit(name, "crop", [x.node], True, note, crop=crop)
        return replace(x, node=node, meta=out)
    node = b.per_channel(b.emit(name, "pad", [x.node], True, note, padding=_padding_field(tuple(sides))), x)
    return replace(x, node=node, meta=out)


def op_flatten(b, name, args, kwargs, out, note):
    x = _val_of(args[0] if args else kwargs.get("input"), note, name)
    return _reshaped(b, name, x, out, note)


_ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "sigmoid",
                "tanh", "hardswish", "hardsigmoid", "hardtanh", "softplus", "softsign", "tanhshrink",
                "logsigmoid", "threshold", "rrelu", "clamp", "clip", "clamp_min", "clamp_max", "abs", "neg",
                "exp", "sqrt", "rsqrt", "square", "erf", "swish", "hard_sigmoid", "hard_swish")
_DROPOUT = ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
            "stochastic_depth", "drop_path", "drop_block_2d", "drop_block_fast_2d")  # all the identity in eval
_SAME = ("contiguous", "clone", "detach", "to", "float", "double", "half", "bfloat16", "type", "type_as",
         "requires_grad", "cpu", "cuda")

_OPS = {
    **{f"conv{r}d": op_conv for r in (1, 2, 3)},
    **{f"conv_transpose{r}d": op_conv_transpose for r in (1, 2, 3)},
    **{f"max_pool{r}d{tail}": _pool("maxpool") for r in (1, 2, 3) for tail in ("", "_with_indices")},
    **{f"avg_pool{r}d": _pool("avgpool") for r in (1, 2, 3)},
    **{f"adaptive_avg_pool{r}d": _adaptive("avgpool") for r in (1, 2, 3)},
    **{f"adaptive_max_pool{r}d{tail}": _adaptive("maxpool") for r in (1, 2, 3) for tail in ("", "_with_indices")},
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
    "norm": op_vector_norm, "vector_norm": op_vector_norm, "expand": op_expand, "expand_as": op_expand,
    "addcmul": op_addcmul, "roll": op_roll,
    "view": op_reshape, "reshape": op_reshape, "flatten": op_flatten, "unflatten": op_reshape,
    "squeeze": op_reshape, "unsqueeze": op_reshape, "view_as": op_reshape, "reshape_as": op_reshape,
    "permute": op_permute, "transpose": op_permute, "swapaxes": op_permute, "swapdims": op_permute,
    "pad": op_pad,
    "matmul": tokens.matmul, "bmm": tokens.matmul,
    "scaled_dot_product_attention": tokens.sdpa, "normalize": tokens.normalize,
    "interpolate": op_interpolate, "upsample": op_interpolate,
    "pixel_shuffle": _shuffle("pixel_shuffle"), "pixel_unshuffle": _shuffle("pixel_unshuffle"),
}
_OPS.update({name: op_pass("relu") for name in _ACTIVATIONS})
_OPS.update({name: op_pass("identity") for name in _DROPOUT})
_OPS.update({name: op_same for name in _SAME})
_ALIASES = {"iadd": "add", "isub": "sub", "imul": "mul", "itruediv": "truediv", "idiv": "div",
            "concatenate": "cat", "pad_circular": "pad"}


def _op_key(name: str) -> str:
    key = name.strip("_")
    return _ALIASES.get(key, key)
