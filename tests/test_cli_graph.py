"""`rfsweep explain GRAPH.json`: bad networks exit 2 with one line naming the node; --format json and --end-point."""

from __future__ import annotations

import json

import pytest

from cli_helpers import run_cli
from naive_graph import Oracle


def conv(name, inputs, **fields):
    return {"name": name, "type": "conv", "kernel": 3, "inputs": inputs, **fields}


def write(tmp_path, nodes, **top):
    path = tmp_path / "net.json"
    path.write_text(json.dumps({"input_size": 16, "in_channels": 4, "nodes": nodes, **top}))
    return path


# (case id, nodes, extra top-level keys, extra CLI arguments, the node the message must name)
BAD = [
    ("misaligned merge", [conv("a", ["input"], stride=2), conv("b", ["input"], kernel=9, padding=0),
                          {"name": "join", "type": "add", "inputs": ["a", "b"]}], {}, [], "join"),
    ("misaligned concat", [conv("a", ["input"], stride=2), conv("b", ["input"], kernel=9, padding=0),
                           {"name": "cat", "type": "concat", "inputs": ["b", "a"]}], {}, [], "cat"),
    ("unknown input", [conv("a", ["input"]), conv("b", ["nowhere"])], {}, [], "b"),
    ("forward reference", [conv("a", ["b"]), conv("b", ["input"])], {}, [], "a"),
    ("self cycle", [conv("a", ["input"]), {"name": "loop", "type": "add", "inputs": ["a", "loop"]}], {}, [], "loop"),
    ("duplicate name", [conv("a", ["input"]), conv("a", ["a"])], {}, [], "a"),
    ("node named input", [conv("input", ["input"])], {}, [], "input"),
    ("add of different channels", [conv("a", ["input"], out_channels=8), conv("b", ["input"], out_channels=4),
                                   {"name": "sum", "type": "add", "inputs": ["a", "b"]}], {}, [], "sum"),
    ("concat of different sizes", [conv("a", ["input"], stride=2), conv("b", ["input"]),
                                   {"name": "cat", "type": "concat", "inputs": ["a", "b"]}], {}, [], "cat"),
    ("linear on a spatial map", [conv("a", ["input"]), {"name": "fc", "type": "linear", "out_features": 10}],
     {}, [], "fc"),
    ("unknown node type", [conv("a", ["input"]), {"name": "weird", "type": "transformer"}], {}, [], "weird"),
    ("unknown field", [conv("a", ["input"], colour="red")], {}, [], "a"),
    ("bad slice bounds", [conv("a", ["input"], out_channels=8),
                          {"name": "part", "type": "slice", "channels": [4, 12]}], {}, [], "part"),
    ("reversed slice", [conv("a", ["input"], out_channels=8),
                        {"name": "part", "type": "slice", "channels": [5, 2]}], {}, [], "part"),
    ("layer node with two inputs", [conv("a", ["input"]), conv("b", ["input", "a"])], {}, [], "b"),
    ("empty map in a branch", [conv("a", ["input"]), conv("big", ["input"], kernel=17, padding=0)], {}, [], "big"),
    ("unknown end-point", [conv("a", ["input"]), conv("b", ["a"])], {}, ["--end-point", "zzz"], "zzz"),
    ("unknown output", [conv("a", ["input"])], {"output": "nope"}, [], "nope"),
]


@pytest.mark.parametrize("nodes, top, args, culprit", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_network_exits_2_with_one_line_naming_the_node(capsys, tmp_path, nodes, top, args, culprit):
    path = write(tmp_path, nodes, **top)
    for fmt in ("table", "json"):
        code, out, err = run_cli(capsys, "explain", path, "--format", fmt, *args)
        assert code == 2, (code, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert "Traceback" not in err
        assert f"'{culprit}'" in lines[0], lines[0]
        assert out == ""


def test_unknown_end_point_names_the_available_nodes(capsys, tmp_path):
    path = write(tmp_path, [conv("first", ["input"]), conv("second", ["first"])])
    code, _, err = run_cli(capsys, "explain", path, "--end-point", "third")
    assert code == 2 and "first" in err and "second" in err


RESIDUAL = [
    {"name": "stem", "type": "conv", "kernel": 7, "stride": 2, "padding": 3, "out_channels": 8, "inputs": ["input"]},
    {"name": "branch1", "type": "conv", "kernel": 3, "padding": 1, "out_channels": 8},
    {"name": "branch2", "type": "conv", "kernel": 3, "padding": 1, "out_channels": 8},
    {"name": "sum", "type": "add", "inputs": ["branch2", "stem"]},
    {"name": "deep1", "type": "conv", "kernel": 3, "padding": 1},
    {"name": "deep2", "type": "conv", "kernel": 3, "padding": 1},
    {"name": "gp", "type": "global_pool"},
    {"name": "fc", "type": "linear", "out_features": 3},
]


def test_json_output_of_a_graph(capsys, tmp_path):
    path = write(tmp_path, RESIDUAL, output="deep2")
    code, out, err = run_cli(capsys, "explain", path, "--format", "json", "--input-size", "14")
    assert code == 0, err
    obj = json.loads(out)  # exactly one JSON document
    assert isinstance(obj, dict)
    assert {"nodes", "total", "input", "unproductive", "critical", "border"} <= set(obj)
    assert [row["name"] for row in obj["nodes"]] == [node["name"] for node in RESIDUAL]
    graph = json.loads(path.read_text())
    oracle = Oracle(graph, input_size=14)
    for row in obj["nodes"]:
        want = oracle.report(row["name"])
        assert (row["rf"], row["rf_min"]) == (want["rf"][0], want["rf_min"][0]), row["name"]
        assert {"name", "type", "inputs", "out_size", "jump", "start", "params", "macs", "flops"} <= set(row)
    assert obj["input"] == {"size": 14, "channels": 4}
    # the output (deep2) describes the total; params count every node, the head too
    assert obj["total"]["rf"] == oracle.report("deep2")["rf"][0]
    assert obj["total"]["params"] == sum(oracle.params.values())
    # at 14 pixels: branch2 (one path, rf 15) is unproductive; after the shortcut deep1 (rf 19,
    # rf_min 11) is only critical; deep2 (rf 23, rf_min 15) is unproductive again
    assert [oracle.report(n)["rf_min"][0] for n in ("branch2", "deep1", "deep2")] == [15, 11, 15]
    assert obj["unproductive"] == ["branch2", "deep2"] and obj["border"] == "branch2"
    assert obj["critical"] == ["deep1"]


def test_end_point_cuts_the_network(capsys, tmp_path):
    path = write(tmp_path, RESIDUAL)
    code, out, err = run_cli(capsys, "explain", path, "--format", "json", "--end-point", "sum")
    assert code == 0, err
    obj = json.loads(out)
    assert [row["name"] for row in obj["nodes"]] == ["stem", "branch1", "branch2", "sum"]
    oracle = Oracle(json.loads(path.read_text()))
    assert obj["total"]["params"] == sum(oracle.params[n] for n in ("stem", "branch1", "branch2", "sum"))
    assert obj["total"]["rf"] == oracle.report("sum")["rf"][0] == 7 + 2 * 2 * 2
    assert obj["total"]["rf_min"] == 7

    code, out, err = run_cli(capsys, "explain", path, "--end-point", "sum")
    assert code == 0, err
    assert "sum" in out and "deep1" not in out and "fc" not in out


def test_table_marks_border_and_names_the_rf_path(capsys, tmp_path):
    path = write(tmp_path, RESIDUAL, output="deep2")
    code, out, err = run_cli(capsys, "explain", path, "--input-size", "14")
    assert code == 0, err
    assert "border" in out and "critical" in out
    for name in ("stem", "branch1", "branch2", "deep1", "deep2"):
        assert name in out
