"""Tracer 1: torch.fx symbolic tracing (no forward pass at all); node names from the qualified
module names (`layer1.0.conv1`, `layer1.0.add`). Shapes come from shapes.py, so no meta kernel runs.
"""

from __future__ import annotations

import torch

from ..errors import RfsweepError
from .recorder import Recorder, _has_val, _meta, is_leaf
from .values import INPUT, Builder, Unsupported, _new


def _fx_record(module, x_meta, b: Builder, qualnames):
    import torch.fx as fx

    class Tracer(fx.Tracer):
        """Leaves are exactly the modules the op table maps whole (torch's own forward, recorder.py);
        everything else, a torch.nn subclass that overrides forward included, is traced inside."""

        def is_leaf_module(self, m, qualname):
            return is_leaf(m)

        def getattr(self, attr, attr_val, parameter_proxy_cache):
            """A parameter by identity (fx searches all of the root's parameters per access)."""
            name = param_names.get(id(attr_val)) if isinstance(attr_val, torch.nn.Parameter) else None
            if name is None:
                return super().getattr(attr, attr_val, parameter_proxy_cache)
            if name not in parameter_proxy_cache:
                parameter_proxy_cache[name] = self.create_proxy("get_attr", name, (), {})
            return parameter_proxy_cache[name]

        def create_arg(self, a):
            """Parameters and buffers by identity, as getattr (fx again searches them all per use)."""
            if isinstance(a, torch.Tensor):
                name = param_names.get(id(a)) or buffer_names.get(id(a))
                if name is not None:
                    return self.create_node("get_attr", name, (), {})
            return super().create_arg(a)

    param_names = {id(p): name for name, p in module.named_parameters()}
    buffer_names = {id(t): name for name, t in module.named_buffers()}

    tracer = Tracer()
    graph = tracer.trace(module)
    graph_module = tracer.root  # the traced module itself: its qualified names are the graph's targets
    rec = Recorder(module, b, qualnames)
    env: dict = {}
    placeholders = 0

    def load(arg):
        return fx.node.map_arg(arg, lambda n: env[n.name])

    node = None
    try:
        for node in graph.nodes:
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
                b.params.mark(env[node.name], [node.target])
            elif node.op == "call_module":
                mod = graph_module.get_submodule(node.target)
                args, kwargs = load(node.args), load(node.kwargs)
                if not _has_val(args) and not _has_val(kwargs):  # on constants: a positional encoding
                    env[node.name] = rec.constant_module(mod, node.target, args, kwargs)
                    continue
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
                    env[node.name] = rec.constant(key, func, args, kwargs)
                    continue
                env[node.name] = rec.function_call(name, key, func, args, kwargs)
            elif node.op == "output":
                pass
    except Unsupported as exc:
        exc.scopes = _fx_scopes(node)  # the modules whose forward was running (convert._up_to)
        raise
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


def _fx_scopes(node) -> list:
    """Every module whose forward contains the node (outermost first)."""
    stack = (node.meta.get("nn_module_stack") or {}) if node is not None else {}
    return [entry[0] if isinstance(entry, tuple) else str(entry) for entry in stack.values()]


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
