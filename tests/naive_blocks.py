"""Slow, obviously-correct reference for block-space sweeps.

The choices of every config_id come from itertools.product in the documented
order (not from blocks.py's tables); each row's network is the graph of
`block_graph` walked by `rfsweep.analyze` (graph.py), prefix by prefix for
the invalid/pruned classification. Nothing here uses the block kernel.
"""

from __future__ import annotations

import itertools

import rfsweep
from rfsweep.blocks import block_graph
from rfsweep.errors import RfsweepError

ORDER = ("block", "repeats", "kernel", "stride", "dilation", "width", "expansion")
DEFAULTS = {"repeats": [1], "kernel": [3], "stride": [1], "dilation": [1], "expansion": [1]}


def stage_choices(stage: dict) -> list[dict]:
    """One stage's choices in digit order; 'ignored' marks positions that are invalid ids."""
    lists = [stage[key] if stage.get(key) is not None else DEFAULTS[key] for key in ORDER]
    if isinstance(lists[0], str):
        lists[0] = [lists[0]]
    gkey = "groups" if stage.get("groups") else "group_width" if stage.get("group_width") else None
    glist = stage[gkey] if gkey else [1]
    out = []
    for values in itertools.product(*[list(enumerate(v)) for v in lists], list(enumerate(glist))):
        choice = {key: v for key, (_, v) in zip(ORDER, values)}
        (e_index, _), (g_index, g) = values[6], values[7]
        uses_expansion = choice["block"] in ("bottleneck", "mbconv", "wavenet")
        uses_groups = choice["block"] in ("conv", "basic", "bottleneck")
        choice["ignored"] = (e_index > 0 and not uses_expansion) or (g_index > 0 and not uses_groups)
        if not uses_expansion:
            choice["expansion"] = 1
        inner = choice["width"] // choice["expansion"] if choice["block"] == "bottleneck" else choice["width"]
        if not uses_groups:
            choice["groups"] = 1
        elif gkey == "group_width":
            choice["groups"] = inner // g if inner % g == 0 else None
        else:
            choice["groups"] = g
        out.append(choice)
    return out


def all_choices(spec_dict: dict) -> list[list[dict]]:
    """Every network of the space in config_id order (stage 1 slowest)."""
    return [list(row) for row in itertools.product(*[stage_choices(s) for s in spec_dict["stage"]])]


def longest_conv_path(graph: dict) -> int:
    """Conv layers on the longest path from the input to the output."""
    best = {"input": 0}
    for node in graph["nodes"]:
        best[node["name"]] = max(best[i] for i in node["inputs"]) + (node["type"] == "conv")
    return best[graph["output"]]


AXIS_KEYS = ("rf", "jump", "out_size", "erf_std", "erf_ratio")


def _each(value, rank: int) -> list:
    """A per-axis figure as a list of rank values (analyze gives one number where the axes agree)."""
    return list(value) if isinstance(value, (list, tuple)) else [value] * rank


def _over(total: dict, spec) -> bool:
    """A limit fails on some axis: max_rf, max_params, max_macs, min_out_size hold on every axis."""
    def over(value, limit, larger_is_worse=True):
        values = _each(value, 1)
        return limit is not None and any(v > limit if larger_is_worse else v < limit for v in values)
    return (over(total["rf"], spec.max_rf) or over(total["params"], spec.max_params)
            or over(total["macs"], spec.max_macs) or over(total["out_size"], spec.min_out_size, False))


def naive_row(spec, config_id: int, choices: list[dict]):
    """('invalid' | 'pruned' | 'ok', row dict or None) for one network, as the contract classifies it."""
    if _over(rfsweep.analyze(block_graph(spec, config_id, stages=0))["total"], spec):
        return "pruned", None
    result = None
    for i, choice in enumerate(choices, start=1):
        if choice["ignored"] or choice["groups"] is None:
            return "invalid", None
        if choice["block"] in ("bottleneck", "wavenet") and choice["width"] % choice["expansion"]:
            return "invalid", None
        if choice["block"] == "wavenet" and choice["stride"] != 1:  # a wavenet stage keeps its length
            return "invalid", None
        try:  # block_graph refuses a row its own tables call invalid; analyze finds the rest
            graph = block_graph(spec, config_id, stages=i)
            result = rfsweep.analyze(graph)
        except RfsweepError:
            return "invalid", None
        if _over(result["total"], spec):
            return "pruned", None
    total = result["total"]
    if spec.min_rf is not None and min(_each(total["rf"], 1)) < spec.min_rf:
        return "pruned", None
    convs = {node["name"] for node in graph["nodes"] if node["type"] == "conv"}
    row = {"config_id": config_id, **{key: total[key] for key in (
        "rf", "jump", "out_size", "out_channels", "params", "macs", "flops", "erf_std", "erf_ratio")},
        "depth": longest_conv_path(graph), "unproductive": len(convs & set(result["unproductive"]))}
    for i, choice in enumerate(choices, start=1):
        for key in ORDER:
            row[f"s{i}_{key}"] = choice[key]
        row[f"s{i}_groups"] = choice["groups"]
        if spec.per_axis:  # per-axis spaces: every kernel, stride and dilation a list, as the file's columns
            row.update({f"s{i}_{key}": _each(choice[key], spec.rank) for key in ("kernel", "stride", "dilation")})
    if spec.per_axis:
        row.update({key: _each(row[key], spec.rank) for key in AXIS_KEYS})
    return "ok", row


def naive_sweep(spec, ids=None):
    """(rows, counts) over the whole space or the given ids, in ascending config_id."""
    table = all_choices(spec.to_dict())
    ids = range(len(table)) if ids is None else sorted(ids)
    rows, counts = [], {"enumerated": 0, "invalid": 0, "pruned": 0, "written": 0}
    for config_id in ids:
        status, row = naive_row(spec, config_id, table[config_id])
        counts["enumerated"] += 1
        counts["written" if status == "ok" else status] += 1
        if row is not None:
            rows.append(row)
    return rows, counts
