"""Slow, obviously-correct reference implementations for the test-suite.

Nothing here imports rfsweep, and nothing uses the closed-form recurrences of
rfsweep/arithmetic.py.  Instead the network is *built* with NumPy:

* Receptive field, jump, start, effective padding: every position of every
  feature map carries the [lowest, highest] input coordinate that it depends
  on.  Layers are applied with real sliding windows
  (``numpy.lib.stride_tricks.sliding_window_view``), dilation by slicing the
  window, stride by keeping every s-th window.  Padding positions are
  *virtual* units: the maps live on a plane that extends far beyond the real
  image on both sides (the input plane's virtual pixel at -3 has coordinate
  -3), so a padded position of any layer is just one more unit of that plane
  with its own, honest coordinates.  The RF of the first output unit is then
  measured as ``max - min + 1`` of the coordinates it reaches, its centre
  (``start``) as ``(max + min) / 2``, the jump as the distance between the
  centres of output units 0 and 1, and the effective padding as ``-min`` (how
  far to the left of pixel 0 the first unit reaches).

* Output sizes: count the windows that fit in the real, padded map.  For
  ceil_mode pools (PyTorch) the padded map is extended on the right by s-1
  more virtual positions so a partial last window fits, and any window that
  would start beyond the input plus the left padding is dropped.

* Params / MACs: build the weight tensor ``(c_out, c_in // groups, kh, kw)``
  and the output tensor ``(c_out, out_h, out_w)`` with NumPy and count their
  elements.

* ERF (uniform weights, no nonlinearity, Luo et al. 2016): convolve a delta
  with each layer's footprint in input coordinates -- k ones spaced
  dilation * jump apart -- and take the standard deviation of the result.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SPATIAL = ("kernel", "stride", "padding", "dilation")


# --------------------------------------------------------------- layer dicts

def _pair(value):
    if isinstance(value, (list, tuple)):
        h, w = value
        return int(h), int(w)
    return int(value), int(value)


def normalise_layers(layers, in_channels):
    """Fill the contract's section-1 defaults into JSON-style layer dicts.

    Returns a list of dicts with (h, w) tuples for the spatial fields and
    explicit c_in / c_out / groups / bias / ceil_mode.
    """
    out = []
    c_in = in_channels
    for raw in layers:
        kind = raw["type"]
        kernel = _pair(raw["kernel"])
        dilation = _pair(raw.get("dilation", 1))
        if kind == "conv":
            stride = _pair(raw.get("stride", 1))
            if "padding" in raw:
                padding = _pair(raw["padding"])
            else:
                padding = (dilation[0] * (kernel[0] - 1) // 2, dilation[1] * (kernel[1] - 1) // 2)
            c_out = raw.get("out_channels", c_in)
            groups = raw.get("groups", 1)
            bias = raw.get("bias", True)
            ceil_mode = False
        else:
            stride = _pair(raw.get("stride", raw["kernel"]))
            padding = _pair(raw.get("padding", 0))
            c_out = c_in
            groups = 1
            bias = False
            ceil_mode = raw.get("ceil_mode", False)
        out.append(dict(type=kind, kernel=kernel, stride=stride, padding=padding,
                        dilation=dilation, c_in=c_in, c_out=c_out, groups=groups,
                        bias=bias, ceil_mode=ceil_mode))
        c_in = c_out
    return out


# ----------------------------------------------------------- one spatial axis

def count_windows(n, k, s, p, d, ceil_mode):
    """Number of output positions: windows that really fit in the padded map."""
    k_eff = d * (k - 1) + 1
    positions = np.arange(n + 2 * p + (s - 1 if ceil_mode else 0))  # padded (and ceil-extended) map
    if len(positions) < k_eff:
        return 0
    window_starts = sliding_window_view(positions, k_eff)[::s, 0]
    if ceil_mode:
        # PyTorch: the last pooling window must start inside the input or the left padding
        window_starts = window_starts[window_starts < n + p]
    return len(window_starts)


def _axis(n, axis_layers):
    """Walk one axis. axis_layers: list of (k, s, p, d, ceil_mode).

    Returns a list with one dict per layer (out, rf, jump, start, eff_padding);
    the list stops at the first layer whose output is empty, whose dict has
    out == 0 only.
    """
    depth = len(axis_layers)
    # How many virtual units each map needs on either side so that every padded
    # position the next layer reads, and the final units 0 and 1, exist.
    margin = [0] * (depth + 1)
    margin[depth] = 2
    for i in reversed(range(depth)):
        k, s, p, d, _ = axis_layers[i]
        margin[i] = margin[i + 1] * s + p + d * (k - 1) + 1 + s

    first = -margin[0]                     # map coordinate of array element 0
    lo = np.arange(first, n + margin[0])   # input plane: pixel x depends on x only
    hi = lo.copy()
    n_real = n
    rows = []
    for i, (k, s, p, d, ceil_mode) in enumerate(axis_layers):
        k_eff = d * (k - 1) + 1
        n_out = count_windows(n_real, k, s, p, d, ceil_mode)
        if n_out < 1:
            rows.append({"out": 0})
            return rows
        # Every window of the extended map: element j of the window arrays starts
        # at map position first + j and reads positions first + j + t*d, t < k.
        win_lo = sliding_window_view(lo, k_eff)[:, ::d].min(axis=1)
        win_hi = sliding_window_view(hi, k_eff)[:, ::d].max(axis=1)
        window_start = first + np.arange(len(win_lo))
        # Output unit u reads its window from position u*s - p of the incoming map.
        keep = (window_start + p) % s == 0
        units = (window_start[keep] + p) // s
        lo, hi = win_lo[keep], win_hi[keep]
        first = int(units[0])
        assert np.array_equal(units, np.arange(first, first + len(units)))
        assert first <= -margin[i + 1] and units[-1] >= n_out - 1 + margin[i + 1], "margin too small"
        u0, u1 = -first, -first + 1        # array elements of output units 0 and 1
        rf = int(hi[u0] - lo[u0] + 1)
        start = (hi[u0] + lo[u0]) / 2
        jump = (hi[u1] + lo[u1]) / 2 - start
        assert jump == int(jump)
        rows.append({"out": n_out, "rf": rf, "jump": int(jump), "start": float(start),
                     "eff_padding": float(-lo[u0])})
        n_real = n_out
    return rows


def axis_erf_std(axis_layers):
    """Std (px) of the uniform-weight ERF along one axis, by convolving a delta."""
    dist = np.array([1.0])
    jump = 1
    for k, s, p, d, _ in axis_layers:
        spacing = d * jump
        footprint = np.zeros((k - 1) * spacing + 1)
        footprint[::spacing] = 1.0
        dist = np.convolve(dist, footprint)
        dist /= dist.sum()
        jump *= s
    x = np.arange(len(dist), dtype=np.float64)
    mean = float((x * dist).sum())
    return math.sqrt(float(((x - mean) ** 2 * dist).sum()))


def erf_support(axis_layers):
    """Width of the ERF's support (first to last non-zero tap) along one axis."""
    dist = np.array([1.0])
    jump = 1
    for k, s, p, d, _ in axis_layers:
        footprint = np.zeros((k - 1) * d * jump + 1)
        footprint[:: d * jump] = 1.0
        dist = np.convolve(dist, footprint)
        jump *= s
    nonzero = np.flatnonzero(dist)
    return int(nonzero[-1] - nonzero[0] + 1)


# ------------------------------------------------------------------ the stack

def oracle_stack(layers, input_hw, in_channels):
    """Build the stack and measure it.

    layers: JSON-style dicts (defaults allowed); input_hw: int or (h, w).
    Returns {"valid": bool, "bad_layer": 1-based index or None,
             "layers": [per-layer dict], "total": dict or None}; every
    per-axis figure is an (h, w) tuple.
    """
    h, w = _pair(input_hw)
    resolved = normalise_layers(layers, in_channels)
    per_axis = []
    for axis, n in enumerate((h, w)):
        spec = [(L["kernel"][axis], L["stride"][axis], L["padding"][axis], L["dilation"][axis],
                 L["ceil_mode"]) for L in resolved]
        per_axis.append((_axis(n, spec), spec))
    (rows_h, spec_h), (rows_w, spec_w) = per_axis

    result_layers = []
    for i, L in enumerate(resolved):
        rh, rw = rows_h[i], rows_w[i]
        if rh["out"] < 1 or rw["out"] < 1:
            return {"valid": False, "bad_layer": i + 1, "layers": result_layers, "total": None}
        if L["type"] == "conv":
            weight = np.empty((L["c_out"], L["c_in"] // L["groups"], L["kernel"][0], L["kernel"][1]),
                              dtype=np.int8)
            bias = np.empty(L["c_out"] if L["bias"] else 0, dtype=np.int8)
            output = np.empty((L["c_out"], rh["out"], rw["out"]), dtype=np.int8)
            # each output element: one multiply-accumulate per weight of its filter
            macs = output.size * (weight.size // L["c_out"])
            params = weight.size + bias.size
        else:
            macs = params = 0
        result_layers.append({
            "type": L["type"], "out_channels": L["c_out"], "groups": L["groups"],
            "kernel": L["kernel"], "stride": L["stride"], "padding": L["padding"],
            "dilation": L["dilation"],
            "out_size": (rh["out"], rw["out"]), "rf": (rh["rf"], rw["rf"]),
            "jump": (rh["jump"], rw["jump"]), "start": (rh["start"], rw["start"]),
            "eff_padding": (rh["eff_padding"], rw["eff_padding"]),
            "params": params, "macs": macs, "flops": 2 * macs,
        })
    last = result_layers[-1]
    total = {key: last[key] for key in ("rf", "jump", "start", "out_size", "out_channels", "eff_padding")}
    total["params"] = sum(row["params"] for row in result_layers)
    total["macs"] = sum(row["macs"] for row in result_layers)
    total["flops"] = sum(row["flops"] for row in result_layers)
    total["erf_std"] = (axis_erf_std(spec_h), axis_erf_std(spec_w))
    total["erf_support"] = (erf_support(spec_h), erf_support(spec_w))
    return {"valid": True, "bad_layer": None, "layers": result_layers, "total": total}
