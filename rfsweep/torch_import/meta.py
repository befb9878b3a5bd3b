"""Tracer 2, when fx cannot trace the module (Python control flow, shape unpacking): a forward on
the *meta* device (shapes only: no memory, no compute) under a TorchFunctionMode that sees every
torch op, plus module hooks that name them; leaf modules of known types are mapped whole.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .ops import _op_key
from .recorder import COSTLY, Recorder, _has_val, _meta, is_leaf
from .values import INPUT, Builder, Unsupported, Val, _new



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
                key = getattr(func, "__name__", "")
                if key in COSTLY and isinstance(out, torch.Tensor):  # a conv on a positional grid
                    scope = scopes[-1] if scopes else ""
                    busy[0] = True
                    try:
                        rec.constant_work(f"{scope}.{key}" if scope else key, lambda: func(*args, **kwargs), out)
                    finally:
                        busy[0] = False
                b.params.propagate((args, kwargs), out)  # arithmetic on parameters (a gain on a weight)
                b.work.propagate((args, kwargs), out)  # and on work done on constants
                return out
            key = getattr(func, "__name__", str(func))
            if key == "__get__":  # x.shape, x.dtype ...
                return out
            scope = scopes[-1] if scopes else ""
            name = f"{scope}.{_op_key(key)}" if scope else _op_key(key)
            busy[0] = True
            try:
                result = rec.function_call(name, key, func, wargs, wkwargs, out=out, run=False)
            except Unsupported as exc:
                exc.scopes = list(scopes)  # the modules whose forward was running (convert._up_to)
                raise
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
        wargs = wrap(args)
        if is_leaf(mod) and _has_val(wargs):  # a leaf on constants (a positional encoding) runs as ops
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
        except Unsupported as exc:
            exc.scopes = [*scopes, q]
            raise
        finally:
            leaf_depth[0] -= 1
        remember(result, output)

    state = {name: _meta(t) for name, t in list(module.named_parameters()) + list(module.named_buffers())}
    for name, _ in module.named_parameters():
        b.params.mark(state[name], [name])
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
