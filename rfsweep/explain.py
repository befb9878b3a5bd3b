"""Single-stack analysis: `analyze` (the contract's JSON) and the plain-words story.

`analyze` packs a resolved Stack into small int64 arrays and hands them to
`arithmetic.evaluate_stack`, the same arithmetic the sweep kernel uses.
"""

from __future__ import annotations

import numpy as np

from .arithmetic import LAYER_TYPES, erf_ratio, evaluate_stack
from .errors import RfsweepError
from .layers import Layer, Stack, load_stack

INT64_SAFE = 1 << 62  # headroom below 2**63 so FLOPs = 2*MACs cannot wrap either


def _check_no_overflow(stack: Stack) -> None:
    """Refuse stacks whose totals could exceed int64, using exact Python-int bounds.

    Output sizes never exceed n + 2p, so k*k*c_in*c_out*(n+2p)^2 bounds MACs.
    """
    n_h, n_w = stack.input_size
    c_in = stack.in_channels
    jump = 1
    rf_bound = 1
    macs_bound = 0
    for index, layer in enumerate(stack.layers, start=1):
        n_h += 2 * layer.padding[0]
        n_w += 2 * layer.padding[1]
        if layer.is_conv:
            macs_bound += (layer.kernel[0] * layer.kernel[1] * (c_in // layer.groups)
                           * layer.out_channels * n_h * n_w)
            c_in = layer.out_channels
        rf_bound += max(d * (k - 1) for k, d in zip(layer.kernel, layer.dilation)) * jump
        jump *= max(layer.stride)
        if 2 * macs_bound > INT64_SAFE or rf_bound > INT64_SAFE or jump > INT64_SAFE:
            raise RfsweepError(f"layer {index}: totals could exceed 64-bit integers "
                               "(huge channels, input or strides); reduce them")


def _columns(stack: Stack) -> dict[str, np.ndarray]:
    layers = stack.layers

    def col(values):
        return np.array(values, dtype=np.int64)

    return dict(
        kind=col([LAYER_TYPES.index(layer.type) for layer in layers]),
        kh=col([layer.kernel[0] for layer in layers]), kw=col([layer.kernel[1] for layer in layers]),
        sh=col([layer.stride[0] for layer in layers]), sw=col([layer.stride[1] for layer in layers]),
        ph=col([layer.padding[0] for layer in layers]), pw=col([layer.padding[1] for layer in layers]),
        dh=col([layer.dilation[0] for layer in layers]), dw=col([layer.dilation[1] for layer in layers]),
        c_out=col([layer.out_channels for layer in layers]), groups=col([layer.groups for layer in layers]),
        bias=col([layer.bias for layer in layers]), ceil_mode=col([layer.ceil_mode for layer in layers]),
    )


def _axis(h, w, square: bool):
    """A per-axis figure: one number for square stacks, [h, w] otherwise."""
    return h if square else [h, w]


def _layer_figures(layer: Layer) -> dict:
    return {"type": layer.type, "kernel": layer.kernel, "stride": layer.stride,
            "padding": layer.padding, "dilation": layer.dilation, "groups": layer.groups,
            "out_channels": layer.out_channels}


def analyze(stack, input_size=None, in_channels=None) -> dict:
    """Per-layer and total RF, jump, start, output size, params, MACs, FLOPs.

    `stack` is a Stack, a compact string, a JSON path, or a list of layer
    dicts. Returns the contract's `explain --format json` object. MACs count
    one multiply-accumulate as 1 (bias adds not counted, as fvcore); FLOPs =
    2 * MACs. Per-axis figures are [h, w] lists for non-square stacks.
    Raises RfsweepError naming the layer that empties the map.
    """
    stack = load_stack(stack, input_size, in_channels)
    _check_no_overflow(stack)
    cols = _columns(stack)
    depth = len(stack.layers)
    ints = {name: np.zeros(depth, np.int64) for name in
            ("n_h", "n_w", "rf_h", "rf_w", "jump_h", "jump_w", "params", "macs")}
    floats = {name: np.zeros(depth, np.float64) for name in ("start_h", "start_w", "var_h", "var_w")}
    bad = evaluate_stack(cols["kind"], cols["kh"], cols["kw"], cols["sh"], cols["sw"], cols["ph"],
                         cols["pw"], cols["dh"], cols["dw"], cols["c_out"], cols["groups"],
                         cols["bias"], cols["ceil_mode"], stack.input_size[0], stack.input_size[1],
                         stack.in_channels, ints["n_h"], ints["n_w"], ints["rf_h"], ints["rf_w"],
                         ints["jump_h"], ints["jump_w"], floats["start_h"], floats["start_w"],
                         floats["var_h"], floats["var_w"], ints["params"], ints["macs"])
    if bad >= 0:
        layer = stack.layers[bad]
        incoming = stack.input_size if bad == 0 else (int(ints["n_h"][bad - 1]), int(ints["n_w"][bad - 1]))
        size = incoming[0] if incoming[0] == incoming[1] else f"{incoming[0]}x{incoming[1]}"
        raise RfsweepError(f"layer {bad + 1} ({layer.compact()}): output size < 1 pixel "
                           f"(input to this layer is {size})")
    square = stack.is_square
    rows = []
    for i, layer in enumerate(stack.layers):
        figures = {key: (_axis(*value, square) if isinstance(value, tuple) else value)
                   for key, value in _layer_figures(layer).items()}
        macs = int(ints["macs"][i])
        rows.append({"index": i + 1, **figures,
                     "out_size": _axis(int(ints["n_h"][i]), int(ints["n_w"][i]), square),
                     "rf": _axis(int(ints["rf_h"][i]), int(ints["rf_w"][i]), square),
                     "jump": _axis(int(ints["jump_h"][i]), int(ints["jump_w"][i]), square),
                     "start": _axis(float(floats["start_h"][i]), float(floats["start_w"][i]), square),
                     "params": int(ints["params"][i]), "macs": macs, "flops": 2 * macs})
    last = depth - 1
    rf_pair = (int(ints["rf_h"][last]), int(ints["rf_w"][last]))
    start_pair = (float(floats["start_h"][last]), float(floats["start_w"][last]))
    eff_padding = tuple((rf - 1) / 2 - start for rf, start in zip(rf_pair, start_pair))
    erf_std = tuple(float(np.sqrt(floats[name][last])) for name in ("var_h", "var_w"))
    ratio = tuple(float(erf_ratio(std, rf)) for std, rf in zip(erf_std, rf_pair))
    total_macs = int(ints["macs"].sum())
    total = {"rf": _axis(*rf_pair, square),
             "jump": _axis(int(ints["jump_h"][last]), int(ints["jump_w"][last]), square),
             "start": _axis(*start_pair, square),
             "out_size": _axis(int(ints["n_h"][last]), int(ints["n_w"][last]), square),
             "out_channels": stack.layers[last].out_channels,
             "eff_padding": _axis(*eff_padding, square),
             "params": int(ints["params"].sum()), "macs": total_macs, "flops": 2 * total_macs,
             "erf_std": _axis(*erf_std, square), "erf_ratio": _axis(*ratio, square)}
    h, w = stack.input_size
    return {"input": {"size": _axis(h, w, square), "channels": stack.in_channels},
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
                parts.append(f"layer 1 sees {rf} input pixels")
            else:
                parts.append(f"layer {row['index']} looks at {k} outputs of layer {row['index'] - 1} "
                             f"spaced {spacing} apart, so it sees {prev_rf} + {k - 1}*{spacing} = {rf}")
        prev_rf, prev_jump = rf, _first(row["jump"])
    if growing:
        if len(parts) > 4:  # one or two sentences, not a paragraph per layer
            parts = parts[:2] + [f"... ({len(parts) - 3} more layers) ..."] + parts[-1:]
        axis = "" if stack.is_square else " (height axis)"
        lines.append("; ".join(parts) + axis + ".")
    total = result["total"]
    single = single_kernel_equivalent(stack, result)
    if single is not None and len(rows) > 1:
        rf = total["rf"]
        p_ratio = total["params"] / single["total"]["params"]
        m_ratio = total["macs"] / single["total"]["macs"] if single["total"]["macs"] else float("nan")
        lines.append(f"One {rf}x{rf} conv sees the same {rf}x{rf} with {single['total']['params']:,} params "
                     f"and {single['total']['macs']:,} MACs; this stack needs {p_ratio:.2f}x the params, "
                     f"{m_ratio:.2f}x the MACs, and has {len(rows)} nonlinearities instead of 1.")
    return lines
