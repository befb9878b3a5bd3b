"""A slow, obviously-correct reference for `rfsweep sweep` (contract sections 2 and 4).

Nothing here imports rfsweep's arithmetic or kernel: the grid is enumerated
with `itertools.product` and every stack is walked layer by layer with the
contract's formulas written out in plain Python integers. Only tiny grids
(a few thousand stacks) are meant to go through it.

Enumeration (config_id). Depth-major: all depth-1 stacks, then depth-2, ...
Within a depth, `itertools.product(choices, repeat=depth)` with layer 1 as
the most significant position, where one layer's `choices` is itself
`product(types, kernel, stride, dilation, padding, channels)` in that order
(channels fastest), each list in the order given. The running counter over
this double product is the config_id.

Layer semantics.
  conv:  padding 'same' = d*(k-1)//2, 'valid' = 0, else the integer;
         out_channels = the channel choice.
  pools: ignore dilation (run with d = 1) and channels (keep the incoming
         count); padding 'same' = (k-1)//2. Only the FIRST dilation position
         and the FIRST channel position of a pool are real; the duplicates at
         other positions are invalid. A pool also needs padding <= k//2.
  k_eff = d*(k-1)+1; n' = floor((n + 2p - k_eff)/s) + 1 (invalid when < 1);
  rf' = rf + (k_eff-1)*jump; jump' = jump*s;
  params += k*k*c_in*c_out + (c_out if bias) for convs; macs += k*k*c_in*c_out*n'*n';
  flops = 2*macs; ERF (uniform weights) variance += (k*k-1)/12 * (d*jump)^2,
  erf_std = sqrt(var), erf_ratio = erf_std / sqrt((rf*rf-1)/12) (1.0 when rf == 1).
  l{i}_dilation is 1 and l{i}_channels the incoming channel count for pools.

Classification (what rfsweep counts). A stack is classified by its FIRST
failing layer, walking layers 1..depth:
  * invalid  if that layer is invalid (pool at a duplicate dilation/channel
             position, pool padding > k//2, output size < 1);
  * pruned   if, after a layer before the last, a monotone constraint fails:
             rf > max_rf, params > max_params, macs > max_macs, or
             out_size < min_out_size -- the last one only when no choice row
             can enlarge the map (2p <= d*(k-1) for every row of the choice
             table, pools with d = 1, all rows including invalid ones);
  * pruned   if, after the last layer, rf > max_rf, params > max_params,
             macs > max_macs, rf < min_rf or out_size < min_out_size;
  * kept     otherwise.
So a stack that would be pruned at layer 1 and is invalid at layer 2 counts
as pruned, and one invalid at layer 1 counts as invalid whatever the limits.
"""

from __future__ import annotations

import itertools
import math

TYPES = ("conv", "maxpool", "avgpool")
LAYER_FIELDS = ("type", "kernel", "stride", "dilation", "padding", "channels")


def resolve_padding(padding, kernel: int, dilation: int) -> int:
    if padding == "same":
        return dilation * (kernel - 1) // 2
    if padding == "valid":
        return 0
    return int(padding)


def layer_choices(spec) -> list[dict]:
    """One layer's choices in digit order: types slowest ... channels fastest."""
    choices = []
    for t, k, s, (di, d), p, (ci, c) in itertools.product(
            spec.types, spec.kernel, spec.stride, enumerate(spec.dilation), spec.padding,
            enumerate(spec.channels)):
        if t == "conv":
            choices.append(dict(type=t, kernel=k, stride=s, dilation=d,
                                padding=resolve_padding(p, k, d), channels=c, valid=True))
        else:
            pad = resolve_padding(p, k, 1)
            choices.append(dict(type=t, kernel=k, stride=s, dilation=1, padding=pad, channels=None,
                                valid=(di == 0 and ci == 0 and pad <= k // 2)))
    return choices


def size_never_grows(choices: list[dict]) -> bool:
    return all(2 * c["padding"] <= c["dilation"] * (c["kernel"] - 1) for c in choices)


def columns(spec) -> list[str]:
    """The column names a sweep file of `spec` has, in the contract's terms."""
    names = ["config_id", "depth", "rf", "jump", "out_size", "out_channels", "params", "macs",
             "flops", "erf_std", "erf_ratio"]
    fields = LAYER_FIELDS if len(spec.types) > 1 else LAYER_FIELDS[1:]
    for i in range(1, max(spec.depth) + 1):
        names += [f"l{i}_{name}" for name in fields]
    return names


def evaluate(spec, layers: list[dict], never_grows: bool) -> tuple[str, dict | None]:
    """Walk one stack; returns ('kept', figures), ('invalid', None) or ('pruned', None)."""
    inf = math.inf
    max_rf = inf if spec.max_rf is None else spec.max_rf
    max_params = inf if spec.max_params is None else spec.max_params
    max_macs = inf if spec.max_macs is None else spec.max_macs
    min_rf = 0 if spec.min_rf is None else spec.min_rf
    min_out = 0 if spec.min_out_size is None else spec.min_out_size
    n, rf, jump, c, params, macs, var = spec.input_size, 1, 1, spec.in_channels, 0, 0, 0.0
    per_layer = []
    for index, layer in enumerate(layers):
        if not layer["valid"]:
            return "invalid", None
        k, s, d, p = layer["kernel"], layer["stride"], layer["dilation"], layer["padding"]
        k_eff = d * (k - 1) + 1
        n_out = (n + 2 * p - k_eff) // s + 1  # Python floors negative numerators too
        if n_out < 1:
            return "invalid", None
        var += (k * k - 1) / 12.0 * (d * jump) ** 2
        rf += (k_eff - 1) * jump
        jump *= s
        if layer["type"] == "conv":
            c_out = layer["channels"]
            weights = k * k * c * c_out
            params += weights + (c_out if spec.bias else 0)
            macs += weights * n_out * n_out
            c = c_out
        n = n_out
        per_layer.append(dict(type=layer["type"], kernel=k, stride=s, dilation=d, padding=p, channels=c))
        last = index == len(layers) - 1
        over = rf > max_rf or params > max_params or macs > max_macs
        if not last and (over or (never_grows and n < min_out)):
            return "pruned", None
        if last and (over or rf < min_rf or n < min_out):
            return "pruned", None
    std = math.sqrt(var)
    ratio = std / math.sqrt((rf * rf - 1) / 12.0) if rf > 1 else 1.0
    return "kept", dict(rf=rf, jump=jump, out_size=n, out_channels=c, params=params, macs=macs,
                        flops=2 * macs, erf_std=std, erf_ratio=ratio, layers=per_layer)


def enumerate_grid(spec):
    """Yield (config_id, depth, digits, layer choice dicts) over the full grid, in id order."""
    choices = layer_choices(spec)
    config_id = 0
    for depth in spec.depth:
        for digits in itertools.product(range(len(choices)), repeat=depth):
            yield config_id, depth, list(digits), [choices[v] for v in digits]
            config_id += 1


def naive_sweep(spec, lo: int = 0, hi: int | None = None) -> tuple[list[dict], dict]:
    """Rows (dicts keyed by the contract's column names) and counts for ids [lo, hi).

    Layer columns past a row's depth are None; `l{i}_type` only when the grid
    mixes types. Counts: enumerated = invalid + pruned + written over [lo, hi).
    """
    choices = layer_choices(spec)
    never_grows = size_never_grows(choices)
    mixed = len(spec.types) > 1
    fields = LAYER_FIELDS if mixed else LAYER_FIELDS[1:]
    max_depth = max(spec.depth)
    counts = dict(enumerated=0, invalid=0, pruned=0, written=0)
    rows = []
    for config_id, depth, _, layers in enumerate_grid(spec):
        if config_id < lo or (hi is not None and config_id >= hi):
            continue
        counts["enumerated"] += 1
        status, figures = evaluate(spec, layers, never_grows)
        if status != "kept":
            counts[status] += 1
            continue
        counts["written"] += 1
        row = dict(config_id=config_id, depth=depth)
        row.update({key: value for key, value in figures.items() if key != "layers"})
        for i in range(max_depth):
            for name in fields:
                row[f"l{i + 1}_{name}"] = figures["layers"][i][name] if i < depth else None
        rows.append(row)
    return rows, counts


def observed_values(spec) -> dict[str, set[int]]:
    """rf, params, macs and out_size after every valid layer of every stack, limits ignored.

    Tests draw constraints from these values so that the limits land exactly on
    (or next to) figures that the grid really reaches, prefixes included.
    """
    seen = {"rf": set(), "params": set(), "macs": set(), "out_size": set()}
    for _, _, _, layers in enumerate_grid(spec):
        n, rf, jump, c, params, macs = spec.input_size, 1, 1, spec.in_channels, 0, 0
        for layer in layers:
            k, s, d, p = layer["kernel"], layer["stride"], layer["dilation"], layer["padding"]
            n = (n + 2 * p - d * (k - 1) - 1) // s + 1
            if not layer["valid"] or n < 1:
                break
            rf += d * (k - 1) * jump
            jump *= s
            if layer["type"] == "conv":
                params += k * k * c * layer["channels"] + (layer["channels"] if spec.bias else 0)
                macs += k * k * c * layer["channels"] * n * n
                c = layer["channels"]
            for key, value in (("rf", rf), ("params", params), ("macs", macs), ("out_size", n)):
                seen[key].add(value)
    return seen
