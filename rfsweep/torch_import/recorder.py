"""The shared dispatcher: a leaf module in its functional form, or a recorded torch call, -> its
output shape (shapes.py) -> the op table (ops.py). Both tracers (fx.py, meta.py) record through it.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import RfsweepError
from . import patches, tokens
from .ops import _OPS, _op_key, op_pad, op_pass, op_softmax
from .shapes import _compute
from .targets import _one_line
from .values import BATCH, Builder, Unsupported, Val, _fail


def _meta(t):
    return None if t is None else torch.empty(t.shape, dtype=t.dtype, device="meta")


COSTLY = ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "linear",
          "matmul", "mm", "bmm", "addmm", "baddbmm", "einsum", "scaled_dot_product_attention", "__matmul__")


def _library_forward(m: nn.Module) -> bool:
    """Whether m computes what its torch.nn class computes: its forward (and a conv's _conv_forward)
    is torch's own. A subclass that overrides them (TF-'SAME' padding computed in forward, a weight
    standardised on the fly) is traced inside instead of being read as one layer with its attributes."""
    for method in ("forward", "_conv_forward"):
        fn = getattr(type(m), method, None)
        if fn is not None and not getattr(fn, "__module__", "").startswith("torch.nn."):
            return False
    return True


def _torch_rank(cls) -> int | None:
    """1, 2 or 3 for torch.nn's Conv1d ... AdaptiveMaxPool3d (and subclasses), from the class name."""
    for base in cls.__mro__:
        if base.__module__.startswith("torch.nn.modules.") and base.__name__[-2:] in ("1d", "2d", "3d"):
            return int(base.__name__[-2])
    return None


def _module_call(module: nn.Module):
    """(op key, function for meta shapes, extra args after the input) for a leaf module, or None
    (then the module is traced inside)."""
    m = module
    if not _library_forward(m):
        return None
    if isinstance(m, nn.modules.lazy.LazyModuleMixin) and m.has_uninitialized_params():
        raise RfsweepError("uninitialized lazy module")
    rank = _torch_rank(type(m))
    if isinstance(m, nn.modules.conv._ConvTransposeNd):
        return f"conv_transpose{rank}d", getattr(F, f"conv_transpose{rank}d"), (
            _meta(m.weight), _meta(m.bias), m.stride, m.padding, m.output_padding, m.groups, m.dilation)
    if isinstance(m, nn.modules.conv._ConvNd):
        return f"conv{rank}d", getattr(F, f"conv{rank}d"), (_meta(m.weight), _meta(m.bias), m.stride, m.padding,
                                                            m.dilation, m.groups)
    if isinstance(m, nn.Upsample):
        return "interpolate", F.interpolate, (m.size, m.scale_factor, m.mode, m.align_corners)
    if isinstance(m, nn.PixelShuffle):
        return "pixel_shuffle", F.pixel_shuffle, (m.upscale_factor,)
    if isinstance(m, nn.PixelUnshuffle):
        return "pixel_unshuffle", F.pixel_unshuffle, (m.downscale_factor,)
    if isinstance(m, nn.modules.pooling._MaxPoolNd):
        return "max_pool2d", getattr(F, f"max_pool{rank}d"), (m.kernel_size, m.stride, m.padding, m.dilation,
                                                               m.ceil_mode, m.return_indices)
    if isinstance(m, nn.modules.pooling._AvgPoolNd):
        return "avg_pool2d", getattr(F, f"avg_pool{rank}d"), (m.kernel_size, m.stride, m.padding, m.ceil_mode)
    if isinstance(m, nn.modules.pooling._AdaptiveAvgPoolNd):
        return "adaptive_avg_pool2d", getattr(F, f"adaptive_avg_pool{rank}d"), (m.output_size,)
    if isinstance(m, nn.modules.pooling._AdaptiveMaxPoolNd):
        return "adaptive_max_pool2d", getattr(F, f"adaptive_max_pool{rank}d"), (m.output_size, m.return_indices)
    if isinstance(m, nn.modules.batchnorm._NormBase) and not isinstance(m, nn.modules.instancenorm._InstanceNorm):
        return "batch_norm", _first, (None, None, m.weight, m.bias)
    if isinstance(m, nn.modules.instancenorm._InstanceNorm):
        return "instance_norm", _first, (None, None, m.weight, m.bias)
    if isinstance(m, nn.GroupNorm):
        return "group_norm", _first, (m.num_groups, m.weight, m.bias)
    if isinstance(m, nn.LayerNorm):  # bias=False: weight only (C parameters, not 2C)
        return "layer_norm", _first, (m.normalized_shape, m.weight, m.bias)
    if isinstance(m, nn.LocalResponseNorm):
        return "dropout", _first, ()
    if isinstance(m, nn.Linear):
        return "linear", F.linear, (_meta(m.weight), _meta(m.bias))
    if isinstance(m, nn.MultiheadAttention):
        return "multihead_attention", None, ()
    if isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                      nn.FeatureAlphaDropout, nn.Identity, nn.ChannelShuffle)):
        return "dropout", _first, ()
    if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
        return "softmax", _first, (m.dim,)
    if isinstance(m, nn.Flatten):
        return "flatten", torch.flatten, (m.start_dim, m.end_dim)
    if isinstance(m, nn.Unflatten):
        return "unflatten", torch.unflatten, (m.dim, m.unflattened_size)
    if isinstance(m, (nn.modules.padding._ConstantPadNd, nn.modules.padding._ReflectionPadNd,
                      nn.modules.padding._ReplicationPadNd, nn.modules.padding._CircularPadNd)):
        return "pad", _pad_meta, (tuple(m.padding),)
    if isinstance(m, nn.PReLU):
        return None
    if type(m).__module__ == "torch.nn.modules.activation" and type(m).__name__ in _ACTIVATION_MODULES:
        return "relu", _first, ()
    return None


_MAPPED: dict = {}  # module type -> whether the op table maps it whole (a type-level fact)


def is_leaf(m: nn.Module) -> bool:
    """Read m as one unit: the op table maps it whole, or it is a torch.nn layer (torch's own forward)
    that the op table does not map, which is then refused by its type name rather than by the ops
    inside it (`module Upsample at 'up'`)."""
    lazy = isinstance(m, nn.modules.lazy.LazyModuleMixin)
    mapped = _MAPPED.get(type(m)) if not lazy else None
    if mapped is None:
        mapped = _module_call_safe(m) is not None
        if not lazy:
            _MAPPED[type(m)] = mapped
    if mapped:
        return True
    library = type(m).__module__.startswith("torch.nn.") and _library_forward(m)
    return library and not isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict))


def _module_call_safe(mod):
    try:
        return _module_call(mod)
    except RfsweepError:
        return ("error",)


_UPSAMPLING = ("interpolate", "upsample", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d",
               "upsample_nearest2d", "upsample_bilinear2d", "ConvTranspose1d", "ConvTranspose2d",
               "conv_transpose1d", "conv_transpose2d", "PixelShuffle", "pixel_shuffle")


def _why_not(what: str) -> str:
    """The refusal's second half: why, and what would make it work."""
    if what in _UPSAMPLING:
        return ("upsampling is not mapped yet (a decoder); pass --end-point a node before it to "
                "analyse the encoder")
    return ("no mapping for it (supported: docs/torch.md); pass --end-point a node before it, or "
            "rewrite it with supported ops")


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
            raise _fail(f"module {type(mod).__name__}", qual, _why_not(type(mod).__name__))
        key, fn, extra = call
        before = len(self.b.nodes)
        names = [f"{qual}.{n}" for n, _ in mod.named_parameters(remove_duplicate=False)]
        return self._charge(self._module_call(mod, qual, key, fn, extra, args, kwargs), names, qual, before)

    def _module_call(self, mod, qual, key, fn, extra, args, kwargs):
        if key == "multihead_attention":
            query = args[0] if args else kwargs.get("query")
            if not isinstance(query, Val):
                raise _fail(f"module {type(mod).__name__}", qual, "its query is not computed from the input")
            out = (torch.empty(query.meta.shape, device="meta"), None)
            return tokens.multihead_attention(self.b, qual, mod, args, kwargs, out, type(mod).__name__)
        if len(args) != 1 or kwargs:
            raise _fail(f"module {type(mod).__name__}", qual, "called with more than one tensor argument")
        if key.startswith("conv") or key == "linear":  # the functional form's weight and bias: the module's
            # parameters; a weight-normalised weight comes from weight_g/weight_v or parametrizations.weight.*
            weight = [f"{qual}.{n}" for n, _ in mod.named_parameters(remove_duplicate=False) if n != "bias"]
            self.b.params.mark(extra[0], weight)
            self.b.params.mark(extra[1], [f"{qual}.bias"])
        x = args[0]
        if not isinstance(x, Val):
            raise _fail(f"module {type(mod).__name__}", qual, "its input is not computed from the network's input")
        patches.check(args, key, f"module {type(mod).__name__}", qual)
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

    def constant(self, key: str, func, args, kwargs):
        """An op none of whose arguments comes from the network's input: its value (shape rules first),
        which carries the parameters it was computed from and the work done on the way."""
        if key in COSTLY:
            out = self.constant_work(key, lambda: func(*_unwrap(args), **_unwrap(kwargs)))
        else:
            out = _compute(key, func, _unwrap(args), _unwrap(kwargs))
        self.b.params.propagate((args, kwargs), out)
        self.b.work.propagate((args, kwargs), out)
        return out

    def constant_module(self, mod: nn.Module, qual: str, args, kwargs):
        """A module applied to constants only (a conv on a Fourier positional grid): its value on
        meta, which carries its parameters, its inputs' and its MACs to where the network uses it."""
        state = {n: _meta(t) for n, t in list(mod.named_parameters()) + list(mod.named_buffers())}
        try:
            out = self.constant_work(qual, lambda: torch.func.functional_call(mod, state, _unwrap(args),
                                                                               _unwrap(kwargs)))
        except Exception as exc:
            raise _fail(f"module {type(mod).__name__}", qual, f"{type(exc).__name__}: {_one_line(exc)}") from None
        self.b.params.propagate((args, kwargs), out)
        self.b.work.propagate((args, kwargs), out)
        for t in out if isinstance(out, (list, tuple)) else (out,):
            self.b.params.mark(t, [f"{qual}.{n}" for n, _ in mod.named_parameters()])
        return out

    def constant_work(self, name: str, run, result=None):
        """run() on meta tensors, its MACs (flop_counter's FLOPs / 2) an item of work carried by its
        output. A result whose first dim is the meta batch was computed once per image (a grid built
        from x.shape: EdgeNeXt's positional encoding): per image it costs 1/BATCH of that. `result`:
        the value already computed (the meta tracer's), to carry the item instead of run()'s."""
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            out = run()
        out = out if result is None else result
        macs = counter.get_total_flops() // 2
        if macs:
            first = out[0] if isinstance(out, (list, tuple)) else out
            if isinstance(first, torch.Tensor) and first.dim() and first.shape[0] == BATCH:
                macs //= BATCH
            item = self.b.work.add(name, macs)
            for t in out if isinstance(out, (list, tuple)) else (out,):
                self.b.work.mark(t, [item])
        return out

    def _charge(self, result, names, name: str, before: int, work=frozenset()):
        """Charge the parameters (and the work on constants) a call used first to the last node it
        emitted, or to an identity node that carries them (x * gamma, x + pos_embed: no spatial
        change, but parameters)."""
        fresh, fresh_work = self.b.params.fresh(names), self.b.work.fresh(work)
        if not fresh and not fresh_work:
            return result
        if len(self.b.nodes) > before:
            node = self.b.nodes[-1]["name"]
        elif isinstance(result, Val):
            node = self.b.emit(name, "identity", [result.node], result.spatial, "uses parameters")
            result = replace(result, node=node)
        else:
            return result
        self.b.params.charge(node, fresh)
        self.b.work.charge_to(self.b.by_name[node], fresh_work)
        return result

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
            raise _fail(f"op {key!r}", name, _why_not(_op_key(key)))
        patches.check((args, kwargs), _op_key(key), _op_key(key), name)
        before = len(self.b.nodes)
        result = handler(self.b, name, args, kwargs, out, _op_key(key))
        return self._charge(result, self.b.params.sources((args, kwargs)), name, before,
                            self.b.work.sources((args, kwargs)))
