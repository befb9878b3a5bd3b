"""The shared dispatcher: a leaf module in its functional form, or a recorded torch call, -> its
output shape (shapes.py) -> the op table (ops.py). Both tracers (fx.py, meta.py) record through it.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import RfsweepError
from .ops import _OPS, _op_key, op_pad, op_pass, op_softmax
from .shapes import _compute
from .targets import _one_line
from .values import Builder, Unsupported, Val, _fail


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
    if isinstance(m, nn.ConvTranspose2d):
        return "conv_transpose2d", F.conv_transpose2d, (_meta(m.weight), _meta(m.bias), m.stride, m.padding,
                                                         m.output_padding, m.groups, m.dilation)
    if isinstance(m, nn.Upsample):
        return "interpolate", F.interpolate, (m.size, m.scale_factor, m.mode, m.align_corners)
    if isinstance(m, nn.PixelShuffle):
        return "pixel_shuffle", F.pixel_shuffle, (m.upscale_factor,)
    if isinstance(m, nn.PixelUnshuffle):
        return "pixel_unshuffle", F.pixel_unshuffle, (m.downscale_factor,)
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

    def constant(self, key: str, func, args, kwargs):
        """An op none of whose arguments comes from the network's input: its value (shape rules first)."""
        return _compute(key, func, _unwrap(args), _unwrap(kwargs))

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
