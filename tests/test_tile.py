"""tile_plan / tiled_predict: stitched tiles equal the whole-image output, and the halo is not larger than needed.

The networks run in torch (float64, random weights, built without rfsweep by
tests/torch_decoders.py): random encoder-decoders and the catalog U-Nets
(channels divided by 32 to keep the test fast; the geometry is the catalog's).
"""

from __future__ import annotations

import json
import random

import pytest

torch = pytest.importorskip("torch")

from rfsweep import RfsweepError, analyze, tile_plan, tiled_predict  # noqa: E402
from rfsweep.architectures import arch_path  # noqa: E402
from rfsweep.tile import parse_bytes, peak_bytes  # noqa: E402
from tile_checks import check_halo_is_needed  # noqa: E402
from torch_decoders import GraphNet, add_skips, random_decoder  # noqa: E402


def draw(seed):
    rng = random.Random(seed)
    while True:
        graph = random_decoder(rng, corners=False)
        try:
            analyze(graph)
        except RfsweepError:
            continue
        return add_skips(graph, analyze, rng)


def run(graph, plan, net, seed=0):
    size = plan["input_size"]
    h, w = size if isinstance(size, list) else (size, size)
    torch.manual_seed(seed)
    x = torch.randn(1, graph["in_channels"], h, w, dtype=torch.float64)
    with torch.no_grad():
        whole = net(x)
        try:
            tiled = tiled_predict(net, x, plan)
        except RfsweepError:  # a tile's output too small for what it must keep: not equal
            return whole, None
    return whole, tiled


def assert_partition(plan):
    out = plan["output_size"]
    h, w = out if isinstance(out, list) else (out, out)
    cover = torch.zeros(h, w, dtype=torch.int64)
    for t in plan["tiles"]:
        (o0, o1), (p0, p1) = t["into"]
        cover[o0:o1, p0:p1] += 1
        (a0, a1), (b0, b1) = t["keep"]
        assert (a1 - a0, b1 - b0) == (o1 - o0, p1 - p0)
        for (y0, y1), m in zip(t["read"], plan["multiple"]):
            assert y0 % m == 0
    assert bool((cover == 1).all())


@pytest.mark.parametrize("seed", range(16))
def test_random_decoders_tiled_equals_whole(seed):
    graph = draw(seed)
    net = GraphNet(graph, seed=seed).eval()
    for tile in (8, 16, 24):
        plan = tile_plan(graph, tile=tile)
        assert_partition(plan)
        whole, tiled = run(graph, plan, net, seed)
        assert tiled is not None and (whole - tiled).abs().max().item() < 1e-9
    check_halo_is_needed(graph, tile_plan(graph, tile=8), 8, lambda p: run(graph, p, net))


def small_catalog(name, divide=32):
    graph = json.loads(arch_path(name).read_text())
    for node in graph["nodes"]:
        if "out_channels" in node and node["name"] != "final":
            node["out_channels"] //= divide
    return graph


@pytest.mark.parametrize("name, sizes", [("unet", (316,)), ("unet_same", (256,))])
def test_catalog_unets_tiled_equals_whole(name, sizes):
    base = small_catalog(name)
    for size in sizes:
        graph = dict(base, input_size=size)
        net = GraphNet(graph).eval()
        for tile in (64, 100):
            plan = tile_plan(graph, tile=tile)
            assert plan["multiple"] == [16, 16]
            assert_partition(plan)
            whole, tiled = run(graph, plan, net)
            assert tiled is not None and (whole - tiled).abs().max().item() < 1e-9
        if size == sizes[-1]:
            check_halo_is_needed(graph, tile_plan(graph, tile=64), 64, lambda p: run(graph, p, net))


def test_unet_halo_by_hand():
    # valid U-Net: output unit o reads input o .. o + 184 at most (572 -> 388 shrinks by 184), so a
    # tile needs no halo above and at least 184 below, = 572 (mod 16) to keep the U-Net runnable: 188
    plan = tile_plan(str(arch_path("unet")), tile=128)
    assert plan["output_size"] == 388 and plan["scale"] == 1
    assert plan["halo"] == [[0, 188], [0, 188]]
    same = tile_plan(str(arch_path("unet_same")), tile=128, input_size=512)
    assert same["output_size"] == 512 and len(same["tiles"]) == 16


@pytest.mark.parametrize("graph, message", [
    ({"input_size": 32, "in_channels": 1, "nodes": [
        {"name": "up", "type": "upsample", "scale": 2, "mode": "bilinear", "align_corners": True}]}, "node 'up'"),
    ({"input_size": 32, "in_channels": 2, "nodes": [
        {"name": "c", "type": "conv", "kernel": 3},
        {"name": "gp", "type": "global_pool", "inputs": ["c"]},
        {"name": "gate", "type": "mul", "inputs": ["c", "gp"]}]}, "node 'gp'"),
    ({"input_size": 32, "in_channels": 2, "nodes": [
        {"name": "c", "type": "conv", "kernel": 4, "stride": 4},
        {"name": "attn", "type": "global", "window": 2}]}, "node 'attn': window attention"),
])
def test_size_dependent_networks_are_refused(graph, message):
    with pytest.raises(RfsweepError, match=message):
        tile_plan(graph, tile=8)


def test_tf_same_is_planned_with_sizes_that_keep_its_padding():
    # TF 'SAME' on stride 2 pads 1+1 on odd sizes, 0+1 on even ones: every tile read stays odd like 33
    graph = {"input_size": 33, "in_channels": 1, "nodes": [
        {"name": "s", "type": "conv", "kernel": 3, "stride": 2, "padding": "same_tf"}]}
    plan = tile_plan(graph, tile=8)
    assert len(plan["tiles"]) > 4
    assert all((y1 - y0) % 2 == 1 for t in plan["tiles"] for y0, y1 in t["read"])


def test_tile_smaller_than_the_multiple():
    graph = {"input_size": 64, "in_channels": 1, "nodes": [{"name": "p", "type": "avgpool", "kernel": 8}]}
    with pytest.raises(RfsweepError, match="node .p.: its units step 8 input pixels"):
        tile_plan(graph, tile=4)


def test_peak_memory_by_hand():
    from rfsweep.graph import load_graph

    # input 3x10x10, conv -> 8 ch, conv -> 4 ch: peaks (3 + 8)*100 while the first conv runs,
    # then (8 + 4)*100 while the second does (the input is freed): 1200 elements
    graph = load_graph({"input_size": 10, "in_channels": 3, "nodes": [
        {"name": "a", "type": "conv", "kernel": 3, "out_channels": 8},
        {"name": "b", "type": "conv", "kernel": 3, "out_channels": 4}]})
    assert peak_bytes(graph, "b", (10, 10), 2) == 1200 * 2
    # a skip keeps the input alive: (3 + 8 + 4)*100 while b runs
    skip = load_graph({"input_size": 10, "in_channels": 3, "nodes": [
        {"name": "a", "type": "conv", "kernel": 3, "out_channels": 8},
        {"name": "b", "type": "conv", "kernel": 3, "out_channels": 4},
        {"name": "c", "type": "concat", "inputs": ["b", "input"]}]})
    assert peak_bytes(skip, "c", (10, 10), 1) == (3 + 8 + 4) * 100


def test_max_memory_picks_the_largest_tile_that_fits():
    graph = {"input_size": 256, "in_channels": 1, "nodes": [
        {"name": "a", "type": "conv", "kernel": 3, "out_channels": 4},
        {"name": "b", "type": "conv", "kernel": 3, "out_channels": 4}]}
    # rf 5: a tile of t reads (t + 4) x (t + 4) (halo 2 each side); while b runs a and b are live:
    # 8 channels at float16 = 16 (t + 4)^2 bytes
    plan = tile_plan(graph, max_memory=16 * 68 * 68, dtype="float16")
    assert plan["halo"] == [[2, 2], [2, 2]]
    assert plan["tile"] == [64, 64] and plan["peak_bytes"] == 16 * 68 * 68
    # one byte less: 64 no longer fits, so 256 needs 5 tiles per axis, cut evenly (51+51+51+51+52),
    # never four of 63 and a thin last one of 4; the largest read is an inner 51 + 2 + 2
    smaller = tile_plan(graph, max_memory=16 * 68 * 68 - 1, dtype="float16")
    assert smaller["tile"] == [52, 52] and smaller["peak_bytes"] == 16 * 55 * 55 and len(smaller["tiles"]) == 25
    assert sorted({t["into"][0][1] - t["into"][0][0] for t in smaller["tiles"]}) == [51, 52]
    assert parse_bytes("8GB") == 8 * 10 ** 9 and parse_bytes("1GiB") == 2 ** 30


# ---------------------------------------------------------------- the command

def test_cli_tile_json_and_table(capsys, tmp_path):
    from cli_helpers import run_cli

    code, out, err = run_cli(capsys, "tile", "--arch", "unet_same", "--input-size", "256", "--tile", "128",
                             "--format", "json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["input_size"] == 256 and plan["multiple"] == [16, 16] and len(plan["tiles"]) == 4
    assert plan == tile_plan(str(arch_path("unet_same")), tile=128, input_size=256)
    code, out, err = run_cli(capsys, "tile", "--arch", "unet", "--tile", "128")
    assert code == 0 and "halo: top 0, bottom 188" in out


@pytest.mark.parametrize("graph, argv, message", [
    ({"input_size": 64, "in_channels": 1, "nodes": [{"name": "pool", "type": "avgpool", "kernel": 8}]},
     ["--tile", "4"], "node 'pool'"),
    ({"input_size": 16, "in_channels": 1, "nodes": [
        {"name": "up", "type": "conv_transpose", "kernel": 3, "stride": 2, "output_padding": 2}]},
     ["--tile", "8"], "node 'up': output_padding 2 must be smaller than stride 2 or dilation 1"),
    ({"input_size": 16, "in_channels": 1, "nodes": [{"name": "up", "type": "upsample", "scale": 2.5}]},
     ["--tile", "8"], "node 'up': scale must be an integer"),
])
def test_cli_bad_input_exit_2_naming_the_node(capsys, tmp_path, graph, argv, message):
    from cli_helpers import run_cli

    path = tmp_path / "net.json"
    path.write_text(json.dumps(graph))
    code, out, err = run_cli(capsys, "tile", path, *argv)
    assert code == 2 and message in err and err.startswith("error:"), err
    if "pool" not in message:
        code, out, err = run_cli(capsys, "explain", path)
        assert code == 2 and message in err
