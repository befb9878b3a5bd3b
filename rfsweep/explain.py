"""`analyze`: the contract's explain object for a stack or a graph, and the plain-words story.

Chains and graphs are walked by the same code (`graph.evaluate`, on the
arithmetic of `arithmetic.py` that the sweep kernel compiles); a chain keeps
its layer-by-layer report ("layers"), a graph reports one entry per node.
Nothing here imports numba, pandas or pyarrow: one answer takes milliseconds.
"""

from __future__ import annotations

import math

from .errors import RfsweepError
from .graph import chain_graph, erf_ratio, evaluate, load_graph
from .graph_report import analyze_graph, input_facts
from .layers import Layer, Stack

INT64_SAFE = 1 << 62  # headroom below 2**63 so FLOPs = 2*MACs cannot wrap either


def _check_no_overflow(stack: Stack) -> None:
    """Refuse stacks whose totals could exceed int64, using exact Python-int bounds.

    Output sizes never exceed n + 2p, so k*k*c_in*c_out*(n+2p)^2 bounds MACs.
    The sweep shares this bound; explain alone would compute exactly anyway.
    """
    n = list(stack.input_size)
    c_in = stack.in_channels
    jump = 1
    rf_bound = 1
    macs_bound = 0
    for index, layer in enumerate(stack.layers, start=1):
        n = [size + 2 * p for size, p in zip(n, layer.padding)]
        if layer.is_conv:
            macs_bound += (math.prod(layer.kernel) * (c_in // layer.groups) * layer.out_channels * math.prod(n))
            c_in = layer.out_channels
        rf_bound += max(d * (k - 1) for k, d in zip(layer.kernel, layer.dilation)) * jump
        jump *= max(layer.stride)
        if 2 * macs_bound > INT64_SAFE or rf_bound > INT64_SAFE or jump > INT64_SAFE:
            raise RfsweepError(f"layer {index}: totals could exceed 64-bit integers "
                               "(huge channels, input or strides); reduce them")


def _axis(*values, square: bool):
    """A per-axis figure: one number for square stacks, one per axis ([h, w] at rank 2) otherwise."""
    return values[0] if square else list(values)


def _layer_figures(layer: Layer) -> dict:
    return {"type": layer.type, "kernel": layer.kernel, "stride": layer.stride,
            "padding": layer.padding, "dilation": layer.dilation, "groups": layer.groups,
            "out_channels": layer.out_channels}


def analyze(source, input_size=None, in_channels=None, end_point=None, rank=None) -> dict:
    """Per-layer (or per-node) and total RF, jump, start, output size, params, MACs, FLOPs.

    `source` is a compact string, a JSON path (a list of layers, a stack
    object or a graph with "nodes"), a list/dict, a Stack or a Graph. Stacks
    return the contract's section-3 object ("layers"), graphs section 6's
    ("nodes", plus rf_min, the unproductive/critical layers and the paths
    that set the RF). `end_point` names the node to explain up to (a chain's
    nodes are its 1-based layer numbers). MACs count one multiply-accumulate
    as 1 (bias adds not counted, as fvcore); FLOPs = 2 * MACs. `rank` (1, 2
    or 3 spatial axes) defaults to the source's, else the length of an
    `input_size` list, else 2. Raises RfsweepError naming the layer or node
    at fault.
    """
    graph = load_graph(source, input_size, in_channels, rank)
    if graph.chain is None:
        return analyze_graph(graph, end_point)
    stack = graph.chain
    if end_point is not None:
        depth = len(stack.layers)
        if str(end_point) not in {str(i) for i in range(1, depth + 1)}:
            raise RfsweepError(f"unknown end-point {end_point!r}: a stack's end-points are its layer "
                               f"numbers 1..{depth}")
        stack = Stack(stack.layers[:int(end_point)], stack.input_size, stack.in_channels, stack.name)
    return analyze_stack(stack)


def analyze_stack(stack: Stack) -> dict:
    """The section-3 object of one resolved stack (see `analyze`)."""
    _check_no_overflow(stack)
    facts = list(evaluate(chain_graph(stack),
                          where=lambda node: f"layer {node['name']} ({node['layer'].compact()})").values())
    square = stack.is_square
    rows = []
    for i, (layer, f) in enumerate(zip(stack.layers, facts)):
        figures = {key: (_axis(*value, square=square) if isinstance(value, tuple) else value)
                   for key, value in _layer_figures(layer).items()}
        rows.append({"index": i + 1, **figures, "out_size": _axis(*f.n, square=square),
                     "rf": _axis(*f.rf, square=square), "jump": _axis(*f.jump, square=square),
                     "start": _axis(*map(float, f.start), square=square),
                     "params": f.params, "macs": f.macs, "flops": 2 * f.macs})
    end = facts[-1]
    eff_padding = tuple((rf - 1) / 2 - start for rf, start in zip(end.rf, end.start))
    erf_std = tuple(v ** 0.5 for v in end.var)
    ratio = tuple(float(erf_ratio(std, rf)) for std, rf in zip(erf_std, end.rf))
    total_macs = sum(f.macs for f in facts)
    total = {"rf": _axis(*end.rf, square=square), "jump": _axis(*end.jump, square=square),
             "start": _axis(*map(float, end.start), square=square), "out_size": _axis(*end.n, square=square),
             "out_channels": stack.layers[-1].out_channels, "eff_padding": _axis(*eff_padding, square=square),
             "params": sum(f.params for f in facts), "macs": total_macs, "flops": 2 * total_macs,
             "erf_std": _axis(*erf_std, square=square), "erf_ratio": _axis(*ratio, square=square)}
    return {"input": input_facts(stack.input_size, stack.in_channels, _axis(*stack.input_size, square=square)),
            "layers": rows, "total": total}



def _first(value):
    return value[0] if isinstance(value, list) else value


def single_kernel_equivalent(stack: Stack, result: dict) -> dict | None:
    """The one conv whose kernel equals the stack's RF, same channels in and out.

    This is the "three 3x3 vs one 7x7" comparison; None when the stack
    changes resolution (a single kernel would then need the stride too).
    """
    if not stack.is_square or not all(layer.is_conv and layer.groups == 1 for layer in stack.layers):
        return None
    rf = result["total"]["rf"]
    jump = result["total"]["jump"]
    c_in, c_out = stack.in_channels, stack.layers[-1].out_channels
    bias = stack.layers[-1].bias
    single = [{"type": "conv", "kernel": rf, "stride": jump, "padding": (rf - 1) // 2,
               "out_channels": c_out, "bias": bias}]
    try:
        return analyze(single, list(stack.input_size), c_in)
    except RfsweepError:
        return None


def story(stack: Stack, result: dict) -> list[str]:
    """One or two plain sentences on how the receptive field grew."""
    lines = []
    rows = result["layers"]
    growing = [row for row in rows if _first(row["rf"]) > 1]
    parts = []
    prev_rf, prev_jump = 1, 1
    for row in rows:
        k = _first(row["kernel"])
        d = _first(row["dilation"])
        rf = _first(row["rf"])
        if rf != prev_rf:
            spacing = d * prev_jump
            if row["index"] == 1:
                parts.append(f"layer 1 sees {rf:,} input pixels")
            else:
                parts.append(f"layer {row['index']} looks at {k} outputs of layer {row['index'] - 1} "
                             f"spaced {spacing:,} apart, so it sees {prev_rf:,} + {k - 1}*{spacing:,} = {rf:,}")
        prev_rf, prev_jump = rf, _first(row["jump"])
    if growing:
        if len(parts) > 4:  # one or two sentences, not a paragraph per layer
            parts = parts[:2] + [f"... ({len(parts) - 3} more layers) ..."] + parts[-1:]
        axis = "" if stack.is_square else {1: "", 2: " (height axis)", 3: " (depth axis)"}[stack.rank]
        lines.append("; ".join(parts) + axis + ".")
    total = result["total"]
    single = single_kernel_equivalent(stack, result)
    if single is not None and len(rows) > 1:
        rf = total["rf"]
        p_ratio = total["params"] / single["total"]["params"]
        m_ratio = total["macs"] / single["total"]["macs"] if single["total"]["macs"] else float("nan")
        box = "x".join([str(rf)] * stack.rank)
        lines.append(f"One {box} conv sees the same {box} with {single['total']['params']:,} params "
                     f"and {single['total']['macs']:,} MACs; this stack needs {p_ratio:.2f}x the params, "
                     f"{m_ratio:.2f}x the MACs, and has {len(rows)} nonlinearities instead of 1.")
    return lines
