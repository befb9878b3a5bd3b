"""An independent reference for the catalog tests: absolute intervals, not rf/start.

For every node and axis it tracks the map size, the jump, and the closed
interval [lo, hi] of input pixels (0-indexed centres) that the FIRST output
unit of the node can see, taking the union over paths at a merge. Google's
effective padding is then -lo and the RF is hi - lo + 1 (their definitions:
receptive_field_computation.py). TF 'SAME' padding is resolved here the way
parse_layer_parameters.py does it (total = max(k - (n % s or s), 0), the
smaller half before), which is written differently from the contract's
formula on purpose. Written for the catalog's node types only; not rfsweep code.
"""

from __future__ import annotations

import json
from pathlib import Path


def _pair(value):
    return list(value) if isinstance(value, (list, tuple)) else [value, value]


def _sides(padding, kernel, stride, dilation, size, axis):
    """(before, after) padding on one axis."""
    if padding == "same_tf":
        k_eff = dilation * (kernel - 1) + 1
        total = max(k_eff - (size % stride if size % stride else stride), 0)
        return total // 2, total - total // 2
    if isinstance(padding, (list, tuple)):
        item = padding[axis]
        if isinstance(item, (list, tuple)):
            return item[0], item[1]
        return item, item
    return padding, padding


def reference(graph: dict, input_size, end_point: str) -> dict:
    """{'rf': [h, w], 'jump': [h, w], 'eff_padding': [h, w], 'size': [h, w]} at end_point."""
    size0 = _pair(input_size)
    state = {"input": [(size0[a], 1, 0, 0) for a in range(2)]}  # per axis: (size, jump, lo, hi)
    previous = "input"
    for node in graph["nodes"]:
        inputs = node.get("inputs", [previous])
        kind = node["type"]
        if kind in ("conv", "maxpool", "avgpool"):
            (src,) = inputs
            per_axis = []
            for a in range(2):
                size, jump, lo, hi = state[src][a]
                k, s = _pair(node["kernel"])[a], _pair(node.get("stride", 1))[a]
                d = _pair(node.get("dilation", 1))[a]
                before, after = _sides(node["padding"], k, s, d, size, a)
                extent = d * (k - 1)  # k_eff - 1
                out = (size + before + after - extent - 1) // s + 1
                assert out >= 1, (node["name"], out)
                per_axis.append((out, jump * s, lo - before * jump, hi + (extent - before) * jump))
            state[node["name"]] = per_axis
        elif kind in ("add", "concat"):
            per_axis = []
            for a in range(2):
                sizes = {state[i][a][0] for i in inputs}
                jumps = {state[i][a][1] for i in inputs}
                assert len(sizes) == 1 and len(jumps) == 1, (node["name"], sizes, jumps)
                per_axis.append((sizes.pop(), jumps.pop(), min(state[i][a][2] for i in inputs),
                                 max(state[i][a][3] for i in inputs)))
            state[node["name"]] = per_axis
        elif kind in ("bn", "relu", "identity"):
            state[node["name"]] = state[inputs[0]]
        else:  # global_pool, flatten, linear: past the spatial part
            state[node["name"]] = None
        previous = node["name"]
        if node["name"] == end_point:
            break
    final = state[end_point]
    return {"rf": [hi - lo + 1 for _, _, lo, hi in final], "jump": [j for _, j, _, _ in final],
            "eff_padding": [-lo for _, _, lo, _ in final], "size": [n for n, _, _, _ in final]}


def load(path) -> dict:
    return json.loads(Path(path).read_text())
