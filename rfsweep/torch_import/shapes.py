"""Output shapes by arithmetic: PyTorch's own formulas per op, so that no meta kernel runs.

Running an op on the meta device makes torch import its Python meta kernels, torch._dynamo and
sympy on the first call of a process (about 2 s; issue 10 allows 1 s for the whole import). So
the output shape of every mapped op is computed here from its arguments, and an empty meta tensor
of that shape is made (no kernel runs). A rule returns None when it is not sure (unusual
arguments, or a call torch would reject): the op then runs on meta, which gives the exact shape
or torch's own error. tests/test_torch_import.py checks every rule against the meta result on all
the reference networks.
"""

from __future__ import annotations

import math

import torch

from .ops import _ACTIVATIONS, _DROPOUT, _SAME, _op_key
from .values import _bind


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
    return int(key[-2]) if key[-2:] in ("1d", "2d", "3d") else None


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
    if nd not in (1, 2, 3) or x.dim() != nd + 2 or not isinstance(groups, int) or groups < 1 \
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


def shape_matmul(key, args, kwargs):
    """Batched matrix products of tensors of rank >= 2: broadcast batch dims, (n, k) @ (k, m)."""
    a, c = (list(args) + [kwargs.get("other", kwargs.get("mat2"))])[:2]
    if not isinstance(a, torch.Tensor) or not isinstance(c, torch.Tensor) or a.dim() < 2 or c.dim() < 2 \
            or a.shape[-1] != c.shape[-2] or (key == "bmm" and (a.dim() != 3 or c.dim() != 3)):
        return None
    batch = _broadcast([tuple(a.shape[:-2]), tuple(c.shape[:-2])])
    if batch is None or (key == "bmm" and a.shape[0] != c.shape[0]):
        return None
    return _empty((*batch, a.shape[-2], c.shape[-1]))


def shape_sdpa(key, args, kwargs):
    """scaled_dot_product_attention: the query's shape with the value's last dim."""
    a = _bind(args, kwargs, ("query", "key", "value"))
    q, k, v = a.get("query"), a.get("key"), a.get("value")
    if not all(isinstance(t, torch.Tensor) and t.dim() >= 2 for t in (q, k, v)) or k.shape[-2] != v.shape[-2] \
            or q.shape[-1] != k.shape[-1] or q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        return None
    return _empty((*q.shape[:-1], v.shape[-1]))


def shape_pixel_unshuffle(key, args, kwargs):
    a = _bind(args, kwargs, ("input", "downscale_factor"))
    x, f = a.get("input"), a.get("downscale_factor")
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not isinstance(f, int) or f < 1 \
            or x.shape[2] % f or x.shape[3] % f:
        return None
    return _empty((x.shape[0], x.shape[1] * f * f, x.shape[2] // f, x.shape[3] // f))


_SHAPES = {
    "pixel_unshuffle": shape_pixel_unshuffle,
    "matmul": shape_matmul, "bmm": shape_matmul, "scaled_dot_product_attention": shape_sdpa,
    "conv1d": shape_conv, "conv2d": shape_conv, "conv3d": shape_conv,
    "linear": shape_linear, "cat": shape_cat, "concat": shape_cat, "concatenate": shape_cat,
    "chunk": shape_split, "split": shape_split, "split_with_sizes": shape_split, "unbind": shape_split,
    "getitem": shape_getitem, "pad": shape_pad, "pad_meta": shape_pad,
    "permute": shape_permute, "transpose": shape_permute, "swapaxes": shape_permute, "swapdims": shape_permute,
    "mean": shape_reduce, "sum": shape_reduce, "amax": shape_reduce, "nanmean": shape_reduce,
}
_SHAPES.update({f"{kind}_pool{r}d{tail}": shape_pool for r in (1, 2, 3)
                for kind, tail in (("max", ""), ("max", "_with_indices"), ("avg", ""))})
_SHAPES.update({f"adaptive_{kind}_pool{r}d{tail}": shape_adaptive for r in (1, 2, 3)
                for kind, tail in (("avg", ""), ("max", ""), ("max", "_with_indices"))})
_SHAPES.update({k: shape_reshape for k in ("view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze",
                                            "view_as", "reshape_as")})
_SHAPES.update({k: shape_binary for k in ("add", "sub", "subtract", "rsub", "radd", "mul", "multiply", "rmul",
                                           "div", "divide", "truediv", "true_divide", "rtruediv", "rdiv",
                                           "maximum", "minimum")})
_SHAPES.update({k: shape_same for k in _ACTIVATIONS + _DROPOUT + tuple(s for s in _SAME if s != "type") +
                ("batch_norm", "group_norm", "instance_norm", "layer_norm", "softmax", "log_softmax", "first",
                 "normalize")})


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
