"""What a graph's evaluation means to people: the report dict of `analyze`, the RF path, border layers, the story.

`graph.evaluate` gives per-node facts; this module turns them into the
contract's report (totals, per-layer rows, phases past a decoder) and the
sentences `explain` prints. Kept apart from graph.py so that the arithmetic
reads alone.
"""

from __future__ import annotations

import math

from .errors import RfsweepError
from .graph import (DECODER_NODES, INPUT, LAYER_NODES, Facts, Graph, _padding_value, axis_value, erf_ratio,
                    evaluate)

def input_facts(size_per_axis, channels: int, size) -> dict:
    """The report's "input": size and channels, and the rank where it is not 2 (a rank-3 input of
    one number 12 is 12x12x12; the JSON must say so)."""
    facts = {"size": size, "channels": channels}
    if len(size_per_axis) != 2:
        facts["rank"] = len(size_per_axis)
    return facts

def border_layers(graph: Graph, facts: dict[str, Facts]) -> tuple[list[str], list[str]]:
    """(unproductive, critical) layer nodes for the graph's input size (Richter et al. 2021).

    Unproductive: even the narrowest path already sees more than the input on
    every axis, so the layer adds no new context; critical: the widest path
    does somewhere, the narrowest does not.
    """
    unproductive, critical = [], []
    size = graph.input_size
    for node in graph.nodes:
        f = facts.get(node["name"])
        if f is None or node["type"] not in LAYER_NODES or not f.spatial:
            continue
        if all(f.narrowest(a) > size[a] for a in range(len(size))):
            unproductive.append(node["name"])
        elif any(f.seen(a)[0] > size[a] for a in range(len(size))):
            critical.append(node["name"])
    return unproductive, critical


def rf_path(graph: Graph, facts: dict[str, Facts], end_point: str, widest: bool = True,
            every_node: bool = False) -> list[str]:
    """The layer nodes (or, with `every_node`, all nodes) of the path that sets the end-point's
    rf (or rf_min), input first."""
    by_name = {node["name"]: node for node in graph.nodes}
    path, name = [], end_point
    while name != INPUT:
        node = by_name[name]
        if every_node or node["type"] in LAYER_NODES or node["type"] in DECODER_NODES:
            path.append(name)
        inputs = node["inputs"]
        if len(inputs) == 1:
            name = inputs[0]
            continue

        def size(item):
            if item == INPUT:
                return 1
            f = facts[item]
            axes = range(len(f.n))
            return math.prod(f.seen(a)[0] for a in axes) if widest else math.prod(f.narrowest(a) for a in axes)
        name = max(inputs, key=size) if widest else min(inputs, key=size)
    return path[::-1]


def module_paths(graph: Graph, depth: int = 1) -> list[str]:
    """The module paths of an imported model's nodes (`layer1.0.conv1` -> `layer1`), in order."""
    paths = {}
    for name in graph.names:
        parts = name.split(".")
        for k in range(1, min(depth, len(parts) - 1) + 1):
            paths.setdefault(".".join(parts[:k]), None)
    return list(paths)


def resolve_end_point(graph: Graph, name: str) -> str:
    """A node's name, or a module path of an imported model (`layer3`, `features.4`): the output of
    that module, i.e. the last node inside it (as torchvision's feature extraction names nodes)."""
    if name in graph.names:
        return name
    inside = [node for node in graph.names if node.startswith(f"{name}.")]
    if inside:
        return inside[-1]
    known = graph.names
    shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    paths = module_paths(graph)
    modules = f"; module paths: {', '.join(paths[:12])}{', ...' if len(paths) > 12 else ''}" if paths else ""
    raise RfsweepError(f"unknown end-point {name!r} (nodes: {shown}{modules})")


def analyze_graph(graph: Graph, end_point: str | None = None) -> dict:
    """The contract's section-6 object: one entry per node, totals at the end-point.

    Without `end_point` every node is evaluated (the head counts in params and
    MACs) and the total describes the graph's `output`; with it, the network is
    cut to what that node reads, so the sums are the cost of that feature map.
    """
    output = graph.output if end_point is None else resolve_end_point(graph, end_point)
    facts = evaluate(graph, None if end_point is None else output)
    rows = []
    for index, node in enumerate(graph.nodes, start=1):
        f = facts.get(node["name"])
        if f is None:
            continue
        row = {"index": index, "name": node["name"], "type": node["type"], "inputs": list(node["inputs"])}
        if f.layer is not None:
            layer = f.layer
            row.update(kernel=axis_value(layer.kernel), stride=axis_value(layer.stride),
                       padding=_padding_value(f.pads), dilation=axis_value(layer.dilation),
                       groups=layer.groups)
        elif node["type"] == "pad":
            row["padding"] = _padding_value(f.pads)
        elif node["type"] == "slice":
            row["channels"] = list(node["channels"])
        if f.depends_on_input:
            row["padding_depends_on_input"] = True
        elif node["type"] in DECODER_NODES:
            row.update(_decoder_keys(node))
        rf, start = f.seen_pair()
        row.update(out_size=axis_value(f.n), out_channels=f.channels, rf=axis_value(rf),
                   rf_min=axis_value(tuple(f.narrowest(a) for a in range(len(f.n)))), jump=axis_value(f.jump),
                   start=axis_value(start),
                   params=f.params, macs=f.macs, flops=2 * f.macs, spatial=f.spatial)
        row.update(phase_keys(f))
        rows.append(row)
    end = facts[output]
    macs = sum(f.macs for f in facts.values())
    erf_std = tuple(math.sqrt(v) for v in end.var)
    unproductive, critical = border_layers(graph, facts)
    end_rf, end_start = end.seen_pair()
    total = {"rf": axis_value(end_rf), "rf_min": axis_value(tuple(end.narrowest(a) for a in range(len(end.n)))),
             "jump": axis_value(end.jump),
             "start": axis_value(end_start), "out_size": axis_value(end.n), "out_channels": end.channels,
             "eff_padding": axis_value(tuple((r - 1) / 2 - s for r, s in zip(end_rf, end_start))),
             "params": sum(f.params for f in facts.values()), "macs": macs, "flops": 2 * macs,
             "erf_std": axis_value(erf_std),
             "erf_ratio": axis_value(tuple(erf_ratio(s, r) for s, r in zip(erf_std, end_rf)))}
    if end.global_from is not None:  # only then: outputs of networks without one stay byte-identical
        total["global_from"] = end.global_from
    if end.patch is not None:  # attention across patches at one offset, not yet mixed: unit 0's field
        total["offset_period"] = axis_value(tuple(1 if axis is None else axis[0] for axis in end.patch))
    if end.fields is not None:  # unit 0's ERF and padding, against unit 0's own field
        unit0 = [field.sizes[0] or field.rf for field in end.fields]
        total["eff_padding"] = axis_value(tuple((r - 1) / 2 - s for r, s in zip(unit0, end_start)))
        total["erf_ratio"] = axis_value(tuple(erf_ratio(s, r) for s, r in zip(erf_std, unit0)))
        total.update(phase_keys(end))
    return {"input": input_facts(graph.input_size, graph.in_channels, axis_value(graph.input_size)),
            "output": output, "nodes": rows, "total": total,
            "unproductive": unproductive, "critical": critical,
            "border": unproductive[0] if unproductive else None,
            "rf_path": rf_path(graph, facts, output, widest=True),
            "rf_min_path": rf_path(graph, facts, output, widest=False),
            "input_dependent_padding": [row["name"] for row in rows if row.get("padding_depends_on_input")]}


def phase_keys(f: Facts) -> dict:
    """Past a decoder node: the exact jump, the period and each phase's start and size (per axis)."""
    if f.fields is None:
        return {}
    phases = tuple(tuple({"start": field.start(r), "size": size} for r, size in enumerate(field.sizes))
                   for field in f.fields)  # sizes once per field: it is a tuple over every phase
    return {"jump_fraction": axis_value(tuple(str(field.jump) for field in f.fields)),
            "period": axis_value(tuple(field.period for field in f.fields)),
            "phases": list(phases[0]) if all(p == phases[0] for p in phases) else [list(p) for p in phases],
            "periodic_from": f.origin}


def _decoder_keys(node: dict) -> dict:
    """The decoder node's own settings, as given (defaults filled), for the report."""
    kind = node["type"]
    if kind == "conv_transpose":
        keys = {"kernel": None, "stride": 1, "padding": 0, "output_padding": 0, "dilation": 1, "groups": 1}
    elif kind == "upsample":
        keys = {"scale": None, "mode": "nearest", "align_corners": False}
    elif kind == "crop":
        keys = {"crop": None}
    else:
        keys = {"factor": None}
    return {key: node.get(key, default) for key, default in keys.items()}


def graph_story(result: dict) -> list[str]:
    """Plain sentences: which path sets the RF, which is narrowest, what is wasted."""
    total = result["total"]

    def show(path):
        if not path:
            return "no layer (the input itself)"
        names = path if len(path) <= 6 else path[:3] + ["..."] + path[-2:]
        return " -> ".join(names) + f" ({len(path)} layer{'s' if len(path) > 1 else ''})"

    lines = [f"{result['output']} sees rf {_text(total['rf'])} (jump {_text(total.get('jump_fraction', total['jump']))}): "
             f"the widest path is {show(result['rf_path'])}."]
    if total["rf_min"] != total["rf"]:
        lines.append(f"The narrowest path sees only {_text(total['rf_min'])}: {show(result['rf_min_path'])}.")
    if total.get("global_from"):
        lines.append(f"From `{total['global_from']}` on every unit sees the whole input (a global node: "
                     "attention, token mixing, or a gate that pools the whole map); params and MACs still "
                     "count every node after it.")
    size = _text(result["input"]["size"])
    if result["unproductive"]:
        lines.append(f"At input size {size}, {len(result['unproductive'])} layers are unproductive (even their "
                     f"narrowest path sees more than the input), from the border layer {result['border']} on; "
                     f"{len(result['critical'])} are critical.")
    elif result["critical"]:
        lines.append(f"At input size {size}, {len(result['critical'])} layers are critical (their widest path "
                     "sees more than the input, their narrowest does not); none is unproductive.")
    if "period" in total:
        lines.append(_phase_sentence(total))
    if "offset_period" in total:
        lines.append(f"Each unit sees the units at its own offset modulo {_text(total['offset_period'])} (attention "
                     "across patches, as MobileViT's): rf and start are unit 0's, and unit i's field is unit 0's "
                     "moved by (i mod the period) jumps, until a window reads every offset.")
    dependent = result["input_dependent_padding"]
    if dependent:
        lines.append(f"TF 'SAME' padding on stride-2 layers ({', '.join(dependent[:4])}"
                     f"{', ...' if len(dependent) > 4 else ''}) depends on the input size: "
                     "start and effective padding hold for this size only.")
    return lines


def _text(value) -> str:
    return "x".join(map(_text, value)) if isinstance(value, list) else f"{value:,}" if isinstance(value, int) \
        else str(value)


def _phase_sentence(total: dict) -> str:
    """'after `up2` each unit reads one of 2 input patterns: 13 or 14 pixels' (per axis where they differ)."""
    phases = total["phases"]
    per_axis = [phases] if isinstance(phases[0], dict) else phases
    parts = []
    labels = {1: ("",), 2: (" (height)", " (width)"), 3: (" (depth)", " (height)", " (width)")}[len(per_axis)]
    for axis, items in zip(labels, per_axis):
        sizes = sorted({item["size"] for item in items})
        words = ", ".join(map(str, sizes[:-1])) + (" or " if len(sizes) > 1 else "") + str(sizes[-1])
        parts.append(f"{len(items)} input patterns{axis}: {words} pixels")
    jump = total["jump_fraction"]
    jump = "x".join(jump) if isinstance(jump, list) else jump
    return (f"After `{total['periodic_from']}` each unit reads one of " + "; ".join(parts)
            + f" (the field repeats every {_text(total['period'])} units, {jump} input pixels per unit).")
