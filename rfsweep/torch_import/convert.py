"""`from_torch`: check the arguments, trace with fx (else a meta-device forward), finish the graph."""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from ..errors import RfsweepError
from ..graph import evaluate, parse_graph
from .fx import _fx_record
from .meta import _hook_record
from .params import ParamUse
from .recorder import _torch_rank
from .targets import _one_line
from .values import BATCH, Builder, Unsupported, _field


_SPATIAL_MODULES = (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                    nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)


def _first_spatial(module):
    """(qualified name, module) of the first convolution or pool, or None."""
    return next(((name, m) for name, m in module.named_modules() if isinstance(m, _SPATIAL_MODULES)), None)


def _input_rank(module) -> int:
    """The spatial rank of the model's input: that of its first convolution or pool (Conv1d: 1,
    Conv3d: 3), 2 when it has none (a functional model)."""
    first = _first_spatial(module)
    return (_torch_rank(type(first[1])) or 2) if first else 2


def from_torch(module, input_size=224, in_channels: int = 3, end_point: str | None = None) -> dict:
    """The graph (contract section 6) of a torch.nn.Module: one node per mapped op.

    input_size: an int (that length on every axis) or one length per axis. The
    graph's rank (1, 2 or 3 spatial axes) is that of the model's first
    convolution or pool: a Conv1d model reads a signal, a Conv3d model a volume.
    Node names are qualified module names (`layer1.0.conv1`)
    and, for functions, the calling module's name plus the op (`layer1.0.add`).
    "output" is the last node whose output is still a spatial feature map; the
    head after it (global pooling, flatten, linear) stays in the graph so its
    params and MACs count. MACs: conv and linear multiply-accumulates, bias adds
    not counted (= torch.utils.flop_counter FLOPs / 2).
    params: sum(p.numel()) of every parameter the forward uses (a node whose op
    uses parameters beyond its formula carries them as `params`).
    The model is traced in eval mode (dropout and stochastic depth are the
    identity; its modes are restored after) with torch.fx; if fx cannot trace
    it, it is run once on the meta device (shapes only). Nothing is computed at
    the real input size.
    end_point: a module path or node name; when an op after it cannot be
    mapped, the graph up to it is returned (its "output"), not the refusal.
    """
    if not isinstance(module, nn.Module):
        raise RfsweepError(f"from_torch needs a torch.nn.Module, got {type(module).__name__}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise RfsweepError(f"in_channels must be a positive integer, got {in_channels!r}")
    rank = _input_rank(module)
    if isinstance(input_size, (list, tuple)):
        if len(input_size) != rank or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                              for v in input_size):
            what = {1: "[length]", 2: "(h, w)", 3: "(d, h, w)"}[rank]
            first = _first_spatial(module)
            first = f"{first[0]} ({type(first[1]).__name__})" if first else "none"
            raise RfsweepError(f"input_size must be a positive int or {what} for this {rank}-D model "
                               f"(its first layer: {first}), got {input_size!r}")
        size = tuple(input_size)
    elif isinstance(input_size, int) and not isinstance(input_size, bool) and input_size >= 1:
        size = (input_size,) * rank
    else:
        raise RfsweepError(f"input_size must be a positive int or one length per axis, got {input_size!r}")
    shape = (BATCH, in_channels, *size)
    qualnames = {id(m): name for name, m in module.named_modules() if name}
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        return _trace(module, shape, _field(size) if rank == 2 else list(size), in_channels, qualnames, rank,
                      end_point)
    finally:
        for m, training in modes:
            m.training = training


def _trace(module, shape, size, in_channels, qualnames, rank, end_point=None) -> dict:
    errors = []
    for record in (_fx_record, _hook_record):
        builder = Builder(size, in_channels)
        builder.params = ParamUse(module)
        builder.work = ParamUse()  # MACs done on constants (recorder.constant_work)
        x = torch.empty(shape, device="meta")
        try:
            with warnings.catch_warnings():  # 'same' padding with even kernels warns about a copy
                warnings.simplefilter("ignore")
                record(module, x, builder, qualnames)
        except Unsupported as exc:
            graph = _up_to(builder, rank, end_point, exc)
            if graph is None:
                raise
            return graph
        except RfsweepError:
            raise
        except Exception as exc:  # fx could not trace it (or the meta forward failed): try the next
            errors.append(f"{type(exc).__name__}: {_one_line(exc)}")
            continue
        return _finish(builder, rank)
    raise RfsweepError(f"cannot trace {type(module).__name__}: torch.fx failed ({errors[0]}); "
                       f"a meta-device forward failed too ({errors[-1]})")


def _up_to(b: Builder, rank: int, end_point: str | None, exc: Unsupported):
    """The graph up to `end_point` when the refused op lies outside it and after it: the end-point's
    nodes were recorded and its forward had returned (no module on the refused op's call stack is
    inside it); ops are recorded in execution order, so every node it needs was recorded. Else None."""
    if end_point is None or exc.where is None:
        return None
    def within(name):
        return name == end_point or name.startswith(end_point + ".")

    inside = [i for i, node in enumerate(b.nodes) if within(node["name"])]
    running = exc.scopes if exc.scopes is not None else [exc.where]  # forwards not finished when refused
    if not inside or within(exc.where) or any(within(scope) for scope in running):
        return None
    last = inside[-1]
    for node in b.nodes[last + 1:]:
        del b.by_name[node["name"]]
    del b.nodes[last + 1:]
    graph = _finish(b, rank)
    graph["output"] = b.nodes[-1]["name"]
    return graph


def _finish(b: Builder, rank: int) -> dict:
    if not b.nodes:
        raise RfsweepError("the model has no layers that rfsweep can see (its output does not depend on "
                           "its input through mapped ops)")
    spatial = [node["name"] for node in b.nodes if b.spatial[node["name"]]]
    if not spatial:
        raise RfsweepError("the model has no spatial feature map (no convolution or pooling on the input)")
    graph = {"input_size": b.input_size, "in_channels": b.in_channels, "nodes": b.nodes, "output": spatial[-1]}
    if rank != 2:
        graph = {"rank": rank, **graph}
    if b.params.consumed:
        try:
            facts = evaluate(parse_graph(graph))
        except RfsweepError:  # analyze will say why; the extras cannot be placed on a broken graph
            return graph
        for node, extra in b.params.extras({name: f.params for name, f in facts.items()}).items():
            if node in b.by_name:  # not cut off after an end-point (_up_to)
                b.by_name[node]["params"] = b.by_name[node].get("params", 0) + extra
    return graph
