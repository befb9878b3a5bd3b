"""The `global` node and per-node extra `params`/`macs` (contract sections 6-8), on hand-checked graphs.

A global node's output unit reads every unit of its input map, so its field is the union of all input
units' fields: for n units of field rf, jump j and first centre s, the interval
[s - (rf-1)/2, s + (n-1)j + (rf-1)/2]. It does not move with the unit; a later layer adds nothing to it,
and a path around it (a residual) keeps its own moving field beside it. The torch oracles for whole
models (attention, token mixing) are in tests/test_torch_import.py and tests/test_torch_timm.py.
"""

from __future__ import annotations

import pytest

from rfsweep import analyze
from rfsweep.graph_report import graph_story
from rfsweep.errors import RfsweepError


def _graph(*nodes, size=32):
    return {"input_size": size, "in_channels": 3, "nodes": list(nodes)}


PATCH = {"name": "patch", "type": "conv", "kernel": 4, "stride": 4, "padding": 0, "out_channels": 8}


def _row(result, name):
    return next(row for row in result["nodes"] if row["name"] == name)


def test_global_field_is_the_whole_reachable_input():
    # patches of 4 with stride 4 on 32: 8 units, rf 4, jump 4, first centre 1.5; the union of all
    # units' fields is [0, 31]: rf 32, centre 15.5, on every path (rf_min too)
    result = analyze(_graph(PATCH, {"name": "blocks.0.attn", "type": "global"}))
    row = _row(result, "blocks.0.attn")
    assert (row["out_size"], row["jump"], row["rf"], row["rf_min"], row["start"]) == (8, 4, 32, 32, 15.5)
    assert result["total"]["global_from"] == "blocks.0.attn"


def test_padding_reaches_beyond_the_border():
    # conv 3x3 pad 1 on 10: units 0..9 see [-1, 1] .. [8, 10]: the union [-1, 10] is 12 wide
    conv = {"name": "c", "type": "conv", "kernel": 3, "padding": 1, "out_channels": 4}
    row = _row(analyze(_graph(conv, {"name": "g", "type": "global"}, size=10)), "g")
    assert (row["rf"], row["start"]) == (12, 4.5)


def test_a_layer_after_a_global_node_adds_nothing_a_residual_keeps_its_path():
    conv = {"name": "c", "type": "conv", "kernel": 3, "padding": 1, "out_channels": 8}
    after = analyze(_graph(PATCH, {"name": "g", "type": "global"}, {**conv, "inputs": ["g"]}))
    assert (after["total"]["rf"], after["total"]["rf_min"], after["total"]["out_size"]) == (32, 32, 8)
    residual = analyze(_graph(PATCH, {"name": "g", "type": "global"},
                              {"name": "sum", "type": "add", "inputs": ["patch", "g"]},
                              {**conv, "inputs": ["sum"]}))
    # the moving part (the patch path: rf 4 + 2*4 = 12 around centre 1.5, i.e. [-4, 7]) reaches past
    # the global interval [0, 31] on the padded side: [-4, 31], rf 36; the narrowest path is the
    # patch path's 12
    total = residual["total"]
    assert (total["rf"], total["rf_min"]) == (36, 12)
    assert total["global_from"] == "g"


def test_global_pool_after_global_and_global_of_global():
    result = analyze(_graph(PATCH, {"name": "g", "type": "global"}, {"name": "g2", "type": "global"},
                            {"name": "pool", "type": "global_pool"}))
    assert _row(result, "g2")["rf"] == 32 and _row(result, "pool")["rf"] == 32
    assert result["total"]["global_from"] == "g"


def test_extra_params_and_macs_add_to_any_node():
    conv = {**PATCH, "params": 7, "macs": 11}
    base = analyze(_graph(PATCH))["total"]
    result = analyze(_graph(conv, {"name": "g", "type": "global", "params": 5, "macs": 100}))
    assert result["total"]["params"] == base["params"] + 12
    assert result["total"]["macs"] == base["macs"] + 111
    assert _row(result, "g")["params"] == 5


@pytest.mark.parametrize("value", [-1, 1.5, "3", True])
def test_extra_counts_must_be_non_negative_integers(value):
    with pytest.raises(RfsweepError, match="params"):
        analyze(_graph({**PATCH, "params": value}))


def test_networks_without_a_global_node_report_no_global_from():
    assert "global_from" not in analyze(_graph(PATCH))["total"]


def _se(gate_source: dict, size=32):
    return {"input_size": size, "in_channels": 3, "nodes": [
        {"name": "a", "type": "conv", "kernel": 3, "out_channels": 8},
        gate_source,
        {"name": "g", "type": "linear", "inputs": ["p"], "out_features": 8},
        {"name": "m", "type": "mul", "inputs": ["a", "g"]},
        {"name": "b", "type": "conv", "kernel": 3, "inputs": ["m"], "out_channels": 8}]}


def test_a_squeeze_excitation_gate_makes_the_field_global():
    """Every unit of m reads the gate, which pooled the whole map: every unit sees the whole input, so the
    report says global from m (start + i*jump would misplace a unit's window). Checked in torch: the
    gradient of any unit of b reaches every input pixel."""
    torch = pytest.importorskip("torch")
    result = analyze(_se({"name": "p", "type": "global_pool", "inputs": ["a"]}))
    assert result["total"]["global_from"] == "m" and result["total"]["rf_min"] == 5
    assert any("From `m` on every unit sees the whole input" in line
               for line in __import__("rfsweep.graph_report", fromlist=["x"]).graph_story(result))
    nn = torch.nn
    torch.manual_seed(0)
    a, b, g = nn.Conv2d(3, 8, 3, padding=1).double(), nn.Conv2d(8, 8, 3, padding=1).double(), nn.Linear(8, 8).double()
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    ya = a(x)
    out = b(ya * torch.sigmoid(g(ya.mean((2, 3))))[:, :, None, None])
    for i, j in ((0, 0), (16, 9), (31, 31)):
        (grad,) = torch.autograd.grad(out[0, 0, i, j], x, retain_graph=True)
        assert bool((grad[0].abs().sum(0) != 0).all())


def test_a_gate_that_sees_part_of_the_map_is_not_global():
    """A 1x1 map from a strided 3x3 conv sees 3 pixels of 32: broadcast over the map it is no global view."""
    result = analyze(_se({"name": "p", "type": "conv", "kernel": 3, "stride": 32, "padding": 0, "inputs": ["a"]}))
    assert "global_from" not in result["total"]


def test_a_period_reads_the_units_at_the_same_offset():
    # patches of 4 on 32: 8 units, rf 4, jump 4, first centre 1.5. With period 2 unit 0 reads units
    # 0, 2, 4, 6: [0, 27] (rf 28, centre 13.5), unit 1 reads 1, 3, 5, 7: [4, 31]. A 1x1 conv keeps that;
    # a 3x3 conv (pad 1) reads both offsets from every unit: [0, 31] for all, global from it on
    nodes = [PATCH, {"name": "attn", "type": "global", "period": 2},
             {"name": "proj", "type": "conv", "kernel": 1, "out_channels": 8},
             {"name": "fuse", "type": "conv", "kernel": 3, "padding": 1, "out_channels": 8}]
    result = analyze(_graph(*nodes))
    for name in ("attn", "proj"):
        row = _row(result, name)
        assert (row["rf"], row["rf_min"], row["start"], row["jump"]) == (28, 28, 13.5, 4)
    row = _row(result, "fuse")
    assert (row["rf"], row["start"]) == (32, 15.5)
    assert result["total"]["global_from"] == "fuse" and "offset_period" not in result["total"]
    inner = analyze(_graph(*nodes), end_point="proj")
    assert inner["total"]["offset_period"] == 2
    assert any("own offset modulo 2" in line for line in graph_story(inner))
    rect = analyze(_graph(PATCH, {"name": "attn", "type": "global", "period": [1, 2]}))["total"]
    assert (rect["rf"], rect["start"]) == ([32, 28], [15.5, 13.5])


@pytest.mark.parametrize("period, words", [
    (3, "period 3 does not divide the map's 8 units"), ([2, 2, 2], "one per axis"), (0, "positive int"),
    ("2", "positive int")])
def test_bad_periods_name_the_node(period, words):
    with pytest.raises(RfsweepError, match=words):
        analyze(_graph(PATCH, {"name": "attn", "type": "global", "period": period}))


def test_a_window_reading_some_offsets_is_refused():
    nodes = [PATCH, {"name": "attn", "type": "global", "period": 2},
             {"name": "down", "type": "maxpool", "kernel": 1, "stride": 2}]
    with pytest.raises(RfsweepError, match="'down'.*unit 0 reads only some offsets"):
        analyze(_graph(*nodes))


def test_window_attention_reads_its_tile():
    # patches of 4 on 32: 8 units (rf 4, jump 4); windows of 2 units: unit 0 and 1 read units 0-1,
    # pixels [0, 7]; unit 2 reads units 2-3, pixels [8, 15]. Every unit's field is 8 wide, and unit 1's
    # centre is unit 0's (3.5): no longer start + i*jump. A 3x3 conv after it (pad 1): unit 1 reads
    # units 0..2 -> [0, 15]; unit 0 reads -1..1, and padding counts with the field it would have (as for
    # any conv: test_padding_reaches_beyond_the_border), unit -1's tile [-8, -1]: [-8, 7]. A global
    # node then reads units 0..7: [-8, 39] (unit 7 reads the padding unit 8: [32, 39])
    nodes = [PATCH, {"name": "attn", "type": "global", "window": 2},
             {"name": "conv", "type": "conv", "kernel": 3, "padding": 1, "out_channels": 8},
             {"name": "mix", "type": "global"}]
    result = analyze(_graph(*nodes))
    row = _row(result, "attn")
    assert (row["rf"], row["jump"], row["start"], row["out_size"]) == (8, 4, 3.5, 8)
    assert _row(result, "conv")["rf"] == 16
    row = _row(result, "mix")
    assert (row["rf"], row["start"]) == (48, 15.5)
    assert result["total"]["global_from"] == "mix"


@pytest.mark.parametrize("window, words", [(3, "window 3 does not divide the map's 8 units"),
                                           ([2, 2, 2], "one per axis")])
def test_bad_windows_name_the_node(window, words):
    with pytest.raises(RfsweepError, match=words):
        analyze(_graph(PATCH, {"name": "attn", "type": "global", "window": window}))
