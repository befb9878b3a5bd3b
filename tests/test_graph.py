"""Graph arithmetic against tests/naive_graph.py (supports built unit by unit) on random DAGs.

The networks are drawn the way real ones are built: chains, residual blocks
(a branch of 1-3 convs against an identity or a strided 1x1 projection),
inception-like concat blocks, dense blocks, channel splits, squeeze-excitation
gates and classifier heads, with strides, dilations, rectangular kernels and
asymmetric, per-side and TF 'SAME' padding. Branches pad 'same'-style (total
d*(k-1), split anyhow) so that sizes agree and the merge intervals are offset.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfsweep import RfsweepError, analyze
from naive_graph import LAYERS, Oracle, OracleInvalid

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pair(value):
    return tuple(value) if isinstance(value, list) else (value, value)


def field(h, w):
    return h if h == w else [h, w]


# ---------------------------------------------------------------- drawing networks

class Net:
    """Appends nodes with unique names; sometimes leaves 'inputs' to its default."""

    def __init__(self, draw, channels):
        self.draw, self.nodes, self.channels = draw, [], {"input": channels}

    def add(self, kind, inputs, width, **fields):
        name = f"{kind}_{len(self.nodes)}"
        node = {"name": name, "type": kind}
        previous = self.nodes[-1]["name"] if self.nodes else "input"
        if not (list(inputs) == [previous] and self.draw(st.booleans())):
            node["inputs"] = list(inputs)
        node.update(fields)
        self.nodes.append(node)
        self.channels[name] = width
        return name


def kernel_pair(draw, low=1, high=5):
    h = draw(st.integers(low, high))
    return h, (h if draw(st.booleans()) else draw(st.integers(low, high)))


def same_padding(draw, kernel, dilation, pool=False):
    """Padding whose total is d*(k-1) on each axis (the size becomes ceil(n/s)), in one of the forms."""
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    if pool:  # both sides <= k//2 (PyTorch)
        sides = []
        for k, total in zip(kernel, totals):
            before = draw(st.sampled_from(sorted({total // 2, total - total // 2})))
            sides.append((before, total - before))
    else:
        sides = [(b, t - b) for t in totals for b in [draw(st.integers(0, t))]]
    form = draw(st.sampled_from(["sides", "same_tf", "sym"]))
    if form == "same_tf":
        return "same_tf"
    if form == "sym" and all(b == a for b, a in sides):
        if not pool and all(t % 2 == 0 for t in totals) and draw(st.booleans()):
            return None  # conv default d*(k-1)//2
        return field(sides[0][0], sides[1][0])
    return [list(sides[0]), list(sides[1])]


def same_conv(net, source, out_channels, stride=(1, 1)):
    draw = net.draw
    kernel = kernel_pair(draw)
    dilation = (1, 1) if max(kernel) == 1 else kernel_pair(draw, 1, 3)
    fields = {"kernel": field(*kernel), "out_channels": out_channels}
    if stride != (1, 1) or draw(st.booleans()):
        fields["stride"] = field(*stride)
    if dilation != (1, 1):
        fields["dilation"] = field(*dilation)
    padding = same_padding(draw, kernel, dilation)
    if padding is not None:
        fields["padding"] = padding
    if draw(st.booleans()):
        fields["bias"] = False
    return net.add("conv", [source], out_channels, **fields)


def maybe_pass(net, source):
    kind = net.draw(st.sampled_from(["none", "relu", "bn", "identity"]))
    return source if kind == "none" else net.add(kind, [source], net.channels[source])


def chain_layer(net, source):
    draw = net.draw
    c = net.channels[source]
    kind = draw(st.sampled_from(["conv", "conv", "maxpool", "avgpool", "pad", "pass"]))
    if kind == "pass":
        return maybe_pass(net, source)
    if kind == "pad":
        sides = [[draw(st.integers(0, 2)) for _ in range(2)] for _ in range(2)]
        padded = net.add("pad", [source], c, padding=sides)
        return net.add("conv", [padded], c, kernel=field(*kernel_pair(draw, 1, 4)), padding=0)
    kernel = kernel_pair(draw, 1, 5 if kind == "conv" else 4)
    fields = {"kernel": field(*kernel)}
    if kind == "conv":
        if draw(st.booleans()):
            fields["stride"] = field(*kernel_pair(draw, 1, 3))
        if max(kernel) > 1 and draw(st.booleans()):
            fields["dilation"] = field(*kernel_pair(draw, 1, 3))
        form = draw(st.sampled_from(["default", "int", "pair", "sides", "same_tf"]))
        if form == "int":
            fields["padding"] = draw(st.integers(0, 3))
        elif form == "pair":
            fields["padding"] = [draw(st.integers(0, 3)), draw(st.integers(0, 3))]
        elif form == "sides":
            fields["padding"] = [[draw(st.integers(0, 3)) for _ in range(2)] for _ in range(2)]
        elif form == "same_tf":
            fields["padding"] = "same_tf"
        if draw(st.booleans()) and c > 1:  # depthwise, with a channel multiplier
            out = c * draw(st.integers(1, 2))
            fields.update(groups=c, out_channels=out)
        else:
            out = draw(st.integers(1, 6))
            fields["out_channels"] = out
        return net.add("conv", [source], out, **fields)
    if draw(st.booleans()):
        fields["stride"] = field(*kernel_pair(draw, 1, 3))
    form = draw(st.sampled_from(["default", "sym", "sides", "same_tf", "ceil", "ceil"]))
    limit = [k // 2 for k in kernel]
    if form in ("sym", "ceil"):
        fields["padding"] = field(draw(st.integers(0, limit[0])), draw(st.integers(0, limit[1])))
        if form == "ceil":
            fields["ceil_mode"] = True
    elif form == "sides":
        fields["padding"] = [[draw(st.integers(0, m)) for _ in range(2)] for m in limit]
    elif form == "same_tf":
        fields["padding"] = "same_tf"
    return net.add(kind, [source], c, **fields)


def stride_pair(draw):
    s = draw(st.integers(1, 3))
    return (s, s) if draw(st.integers(0, 3)) else (s, draw(st.integers(1, 3)))


def residual_block(net, source):
    draw = net.draw
    c = net.channels[source]
    stride = stride_pair(draw)
    length = draw(st.integers(1, 3))
    at = draw(st.integers(0, length - 1))
    c_out = c if draw(st.booleans()) else draw(st.integers(1, 6))
    x = source
    for i in range(length):
        x = same_conv(net, x, c_out if i == length - 1 else draw(st.integers(1, 6)),
                      stride if i == at else (1, 1))
        if i < length - 1:
            x = maybe_pass(net, x)
    if stride == (1, 1) and c_out == c and draw(st.booleans()):
        shortcut = source if draw(st.booleans()) else net.add("identity", [source], c)
    else:
        shortcut = net.add("conv", [source], c_out, kernel=1, stride=field(*stride), padding=0,
                           out_channels=c_out, bias=False)
    inputs = [x, shortcut] if draw(st.booleans()) else [shortcut, x]
    out = net.add(draw(st.sampled_from(["add", "add", "add", "mul"])), inputs, c_out)  # mul: a gated block
    return maybe_pass(net, out)


def pool_branch(net, source, stride):
    draw = net.draw
    kind = draw(st.sampled_from(["maxpool", "avgpool"]))
    kernel = kernel_pair(draw, 1, 4)
    padding = same_padding(draw, kernel, (1, 1), pool=True)
    fields = {"kernel": field(*kernel), "stride": field(*stride)}
    if padding is not None:
        fields["padding"] = padding
    return net.add(kind, [source], net.channels[source], **fields)


def inception_block(net, source):
    draw = net.draw
    stride = stride_pair(draw)
    branches = []
    for _ in range(draw(st.integers(2, 4))):
        kind = draw(st.sampled_from(["conv", "conv2", "pool", "identity"]))
        if kind == "identity" and stride == (1, 1):
            branches.append(source)
        elif kind == "pool":
            x = pool_branch(net, source, stride)
            if draw(st.booleans()):
                x = net.add("conv", [x], 2, kernel=1, out_channels=2)
            branches.append(x)
        else:
            x = same_conv(net, source, draw(st.integers(1, 4)), stride)
            if kind == "conv2":
                x = same_conv(net, x, draw(st.integers(1, 4)))
            branches.append(x)
    order = draw(st.permutations(branches))
    return net.add("concat", order, sum(net.channels[b] for b in order))


def dense_block(net, source):
    draw = net.draw
    maps = [source]
    for _ in range(draw(st.integers(2, 3))):
        x = maps[0] if len(maps) == 1 else net.add("concat", maps, sum(net.channels[m] for m in maps))
        maps.append(same_conv(net, x, draw(st.integers(1, 3))))
    return net.add("concat", maps, sum(net.channels[m] for m in maps))


def split_block(net, source):
    draw = net.draw
    c = net.channels[source]
    if c < 2:
        return chain_layer(net, source)
    m = draw(st.integers(1, c - 1))
    a = net.add("slice", [source], m, channels=[0, m])
    b = net.add("slice", [source], c - m, channels=[m, c])
    a = same_conv(net, a, draw(st.integers(1, 3)))
    if draw(st.booleans()):
        b = same_conv(net, b, draw(st.integers(1, 3)))
    order = [a, b] if draw(st.booleans()) else [b, a]
    return net.add("concat", order, sum(net.channels[x] for x in order))


def se_block(net, source):
    draw = net.draw
    c = net.channels[source]
    pooled = net.add("global_pool", [source], c)
    r = draw(st.integers(1, 3))
    x = net.add("conv", [pooled], r, kernel=1, out_channels=r)
    x = net.add("relu", [x], r)
    gate_channels = c if draw(st.integers(0, 3)) else 1
    gate = net.add("conv", [x], gate_channels, kernel=1, out_channels=gate_channels)
    order = [source, gate] if draw(st.booleans()) else [gate, source]
    return net.add("mul", order, c)


def head(net, source):
    draw = net.draw
    c = net.channels[source]
    kind = draw(st.sampled_from(["gp", "gp_flat", "flat"]))
    if kind == "flat":
        x = net.add("flatten", [source], None)
    else:
        x = net.add("global_pool", [source], c)
        if kind == "gp_flat":
            x = net.add("flatten", [x], c)
    return net.add("linear", [x], None, out_features=draw(st.integers(1, 5)), bias=draw(st.booleans()))


BLOCKS = {"chain": chain_layer, "residual": residual_block, "inception": inception_block,
          "dense": dense_block, "split": split_block}


@st.composite
def networks(draw, blocks=tuple(BLOCKS), se=False, max_blocks=4):
    """(graph dict, an end-point name) of a random aligned network."""
    in_channels = draw(st.integers(1, 4))
    net = Net(draw, in_channels)
    x = "input"
    kinds = list(blocks) + (["se"] if se else [])
    for _ in range(draw(st.integers(1, max_blocks))):
        kind = draw(st.sampled_from(kinds))
        x = se_block(net, x) if kind == "se" else BLOCKS[kind](net, x)
    if x == "input":  # an inception/residual block may have returned its input; make a node
        x = net.add("relu", ["input"], in_channels)
    spatial_names = [node["name"] for node in net.nodes]
    if draw(st.booleans()):
        head(net, x)
    graph = {"input_size": field(*kernel_pair(draw, 4, 24)), "in_channels": in_channels, "nodes": net.nodes}
    if draw(st.integers(0, 4)) == 0:
        graph["output"] = draw(st.sampled_from(spatial_names))
    return graph, draw(st.sampled_from([node["name"] for node in net.nodes]))


# ---------------------------------------------------------------- comparing

def oracle_or_error(graph):
    """The oracle, or (after checking rfsweep refuses the network naming the node) None."""
    try:
        oracle = Oracle(graph)
        oracle.check_alignment()
    except OracleInvalid as exc:
        with pytest.raises(RfsweepError) as info:
            analyze(graph)
        assert repr(exc.name) in str(info.value), (exc, str(info.value))
        return None
    return oracle


def check_node(oracle, row):
    name = row["name"]
    want = oracle.report(name)
    got = {key: pair(row[key]) for key in ("out_size", "rf", "rf_min", "jump", "start")}
    assert got["out_size"] == want["out_size"], (name, "out_size", got, want)
    assert row["out_channels"] == want["out_channels"], (name, "out_channels", row["out_channels"], want)
    assert got["rf"] == want["rf"], (name, "rf", got, want)
    assert got["start"] == pytest.approx(want["start"]), (name, "start", got, want)
    assert got["rf_min"] == want["rf_min"], (name, "rf_min", got, want)
    if oracle.spatial(name):
        for a in range(2):
            if want["out_size"][a] >= 2:
                assert got["jump"][a] == want["jump"][a], (name, "jump", a, got, want)
    assert (row["params"], row["macs"], row["flops"]) == (want["params"], want["macs"], want["flops"]), \
        (name, "costs", row, want)


def check_network(graph, end_point, erf=True):
    oracle = oracle_or_error(graph)
    if oracle is None:
        return
    result = analyze(graph)
    names = [node["name"] for node in oracle.nodes]
    assert [row["name"] for row in result["nodes"]] == names
    for row in result["nodes"]:
        check_node(oracle, row)
    total, end = result["total"], oracle.output
    assert result["output"] == end
    assert total["params"] == sum(oracle.params.values())
    assert total["macs"] == sum(oracle.macs.values()) and total["flops"] == 2 * total["macs"]
    want = oracle.report(end)
    assert pair(total["rf"]) == want["rf"] and pair(total["rf_min"]) == want["rf_min"]
    assert pair(total["start"]) == pytest.approx(want["start"])
    assert pair(total["out_size"]) == want["out_size"] and total["out_channels"] == want["out_channels"]
    assert pair(total["eff_padding"]) == pytest.approx(
        tuple((r - 1) / 2 - s for r, s in zip(want["rf"], want["start"])))
    if erf and not any(node["type"] == "mul" for node in oracle.nodes):
        std = tuple(oracle.erf_std(end, a) for a in range(2))
        assert pair(total["erf_std"]) == pytest.approx(std, rel=1e-9, abs=1e-9), (end, total["erf_std"], std)
    check_border(oracle, result)

    # the network cut at an end-point: only what it reads is listed and summed
    cut = analyze(graph, end_point=end_point)
    keep = oracle.ancestors(end_point)
    assert [row["name"] for row in cut["nodes"]] == [n for n in names if n in keep]
    assert cut["output"] == end_point
    assert cut["total"]["params"] == sum(oracle.params[n] for n in keep)
    assert cut["total"]["macs"] == sum(oracle.macs[n] for n in keep)
    assert pair(cut["total"]["rf"]) == oracle.report(end_point)["rf"]
    check_border(oracle, cut, keep)


def check_border(oracle, result, keep=None):
    """Richter et al.'s definitions, from the oracle's rf_min/rf and the input size."""
    size = oracle.input_size
    unproductive, critical = [], []
    for node in oracle.nodes:
        name = node["name"]
        if node["type"] not in LAYERS or not oracle.spatial(name) or (keep is not None and name not in keep):
            continue
        rf_min = [oracle.rf_min(name, a) for a in range(2)]
        rf = [oracle.rf_start(name, a)[0] for a in range(2)]
        if all(rf_min[a] > size[a] for a in range(2)):
            unproductive.append(name)
        elif any(rf[a] > size[a] for a in range(2)):
            critical.append(name)
    assert result["unproductive"] == unproductive
    assert result["critical"] == critical
    assert result["border"] == (unproductive[0] if unproductive else None)


# ---------------------------------------------------------------- random networks

@SETTINGS
@given(networks())
def test_random_networks_match_the_oracle(case):
    check_network(*case)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(blocks=("residual", "inception")))
def test_random_residual_and_inception_blocks(case):
    check_network(*case)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(se=True, max_blocks=3))
def test_random_networks_with_squeeze_excitation(case):
    check_network(*case, erf=False)


@st.composite
def chains(draw):
    net = Net(draw, draw(st.integers(1, 4)))
    layers = []
    x = "input"
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["conv", "maxpool", "avgpool"]))
        kernel = kernel_pair(draw, 1, 4)
        layer = {"type": kind, "kernel": field(*kernel)}
        if kind == "conv":
            if max(kernel) > 1 and draw(st.booleans()):
                layer["dilation"] = draw(st.integers(1, 3))
            layer["stride"] = draw(st.integers(1, 3))
            layer["padding"] = field(draw(st.integers(0, 3)), draw(st.integers(0, 3)))
            layer["out_channels"] = draw(st.integers(1, 5))
        else:
            if draw(st.booleans()):
                layer["stride"] = draw(st.integers(1, 3))
            layer["padding"] = field(*(draw(st.integers(0, k // 2)) for k in kernel))
            if draw(st.booleans()):
                layer["ceil_mode"] = True
        layers.append(layer)
        x = net.add(kind, [x], None, **{k: v for k, v in layer.items() if k != "type"})
    size = draw(st.integers(6, 30))
    return ({"input_size": size, "in_channels": net.channels["input"], "layers": layers},
            {"input_size": size, "in_channels": net.channels["input"], "nodes": net.nodes})


@settings(max_examples=80, deadline=None)
@given(chains())
def test_a_chain_as_layers_and_as_nodes_agree(case):
    as_layers, as_nodes = case
    try:
        Oracle(as_nodes)
    except OracleInvalid:
        for source in case:
            with pytest.raises(RfsweepError):
                analyze(source)
        return
    chain, graph = analyze(as_layers), analyze(as_nodes)
    assert len(chain["layers"]) == len(graph["nodes"])
    for layer, node in zip(chain["layers"], graph["nodes"]):
        for key in ("out_size", "rf", "jump", "start", "params", "macs", "flops", "out_channels"):
            assert pair(layer[key]) == pair(node[key]), (key, layer, node)
        assert node["rf_min"] == node["rf"]  # one path
    for key in ("rf", "jump", "start", "out_size", "params", "macs", "eff_padding"):
        assert pair(chain["total"][key]) == pair(graph["total"][key]), key
    assert pair(chain["total"]["erf_std"]) == pytest.approx(pair(graph["total"]["erf_std"]))
    check_network(as_nodes, graph["nodes"][0]["name"])


# ---------------------------------------------------------------- by hand

def by_name(result):
    return {row["name"]: row for row in result["nodes"]}


def test_resnet_basic_block_by_hand():
    """rf of the sum is the main path's (two 3x3: 5), rf_min the identity shortcut's (1)."""
    graph = {"input_size": 56, "in_channels": 64, "nodes": [
        {"name": "conv1", "type": "conv", "kernel": 3, "padding": 1, "out_channels": 64, "bias": False,
         "inputs": ["input"]},
        {"name": "bn1", "type": "bn"}, {"name": "relu1", "type": "relu"},
        {"name": "conv2", "type": "conv", "kernel": 3, "padding": 1, "out_channels": 64, "bias": False},
        {"name": "bn2", "type": "bn"},
        {"name": "sum", "type": "add", "inputs": ["bn2", "input"]},
        {"name": "relu", "type": "relu"}]}
    result = analyze(graph)
    total = result["total"]
    assert (total["rf"], total["rf_min"], total["jump"], total["start"], total["out_size"]) == (5, 1, 1, 0, 56)
    assert total["params"] == 2 * 3 * 3 * 64 * 64 + 2 * (2 * 64)  # two convs, two bn (weight, bias)
    assert total["macs"] == 2 * 3 * 3 * 64 * 64 * 56 * 56
    assert by_name(result)["conv2"]["rf"] == by_name(result)["conv2"]["rf_min"] == 5
    assert result["unproductive"] == [] and result["critical"] == []


def test_resnet_downsampling_block_by_hand():
    """Main path c3s2p1 -> c3p1: unit 0 reads conv1 units -1..1 (centres -2, 0, 2) -> pixels -3..3."""
    graph = {"input_size": 56, "in_channels": 64, "nodes": [
        {"name": "conv1", "type": "conv", "kernel": 3, "stride": 2, "padding": 1, "out_channels": 128},
        {"name": "conv2", "type": "conv", "kernel": 3, "padding": 1, "out_channels": 128},
        {"name": "down", "type": "conv", "kernel": 1, "stride": 2, "padding": 0, "out_channels": 128,
         "inputs": ["input"]},
        {"name": "sum", "type": "add", "inputs": ["conv2", "down"]}]}
    total = analyze(graph)["total"]
    assert (total["rf"], total["rf_min"], total["jump"], total["start"], total["out_size"]) == (7, 1, 2, 0, 28)
    assert total["params"] == (9 * 64 * 128 + 128) + (9 * 128 * 128 + 128) + (64 * 128 + 128)


def test_offset_branches_union_is_wider_than_either():
    """k2 padded (1, 0) sees pixels -1..0, k2 padded (0, 1) sees 0..1: the sum sees -1..1."""
    graph = {"input_size": 8, "in_channels": 1, "nodes": [
        {"name": "left", "type": "conv", "kernel": 2, "padding": [[1, 0], [1, 0]], "inputs": ["input"]},
        {"name": "right", "type": "conv", "kernel": 2, "padding": [[0, 1], [0, 1]], "inputs": ["input"]},
        {"name": "sum", "type": "add", "inputs": ["left", "right"]}]}
    result = analyze(graph)
    rows = by_name(result)
    assert (rows["left"]["rf"], rows["left"]["start"]) == (2, -0.5)
    assert (rows["right"]["rf"], rows["right"]["start"]) == (2, 0.5)
    assert (rows["sum"]["rf"], rows["sum"]["start"], rows["sum"]["rf_min"], rows["sum"]["out_size"]) == (3, 0, 2, 8)


def test_tf_same_branches_by_hand():
    """Input 7, stride 2, TF SAME: k3 pads 1+1 (pixels -1..1), k2 pads 0+1 (pixels 0..1); concat: -1..1."""
    graph = {"input_size": 7, "in_channels": 2, "nodes": [
        {"name": "a", "type": "conv", "kernel": 3, "stride": 2, "padding": "same_tf", "out_channels": 3,
         "inputs": ["input"]},
        {"name": "b", "type": "conv", "kernel": 2, "stride": 2, "padding": "same_tf", "out_channels": 5,
         "inputs": ["input"]},
        {"name": "cat", "type": "concat", "inputs": ["a", "b"]}]}
    rows = by_name(analyze(graph))
    assert (rows["a"]["out_size"], rows["a"]["rf"], rows["a"]["start"], rows["a"]["padding"]) == (4, 3, 0, 1)
    assert (rows["b"]["out_size"], rows["b"]["rf"], rows["b"]["start"]) == (4, 2, 0.5)
    assert rows["b"]["padding"] == [[0, 1], [0, 1]]
    cat = rows["cat"]
    assert (cat["rf"], cat["rf_min"], cat["start"], cat["jump"], cat["out_channels"]) == (3, 2, 0, 2, 8)


def test_squeeze_excitation_gate_by_hand():
    """Input 8, c3 (pixels -1..1 for unit 0, -1..8 for the map); the gate sees the whole map.

    mul: unit 0 sees -1..1 and the gate's -1..8: rf 10, start 3.5, rf_min 3 (the main path).
    A c3 after it: units -1, 0, 1 of the mul see -2..0, -1..1, 0..2 and, each, the gate's -1..8:
    pixels -2..8, rf 11, start 3 (the gate is the same for every unit: it does not grow).
    """
    graph = {"input_size": 8, "in_channels": 4, "nodes": [
        {"name": "c", "type": "conv", "kernel": 3, "padding": 1},
        {"name": "gp", "type": "global_pool"},
        {"name": "fc1", "type": "conv", "kernel": 1, "out_channels": 2},
        {"name": "fc2", "type": "conv", "kernel": 1, "out_channels": 4},
        {"name": "gate", "type": "mul", "inputs": ["c", "fc2"]},
        {"name": "after", "type": "conv", "kernel": 3, "padding": 1}]}
    rows = by_name(analyze(graph))
    assert (rows["gp"]["rf"], rows["gp"]["start"], rows["gp"]["out_size"]) == (10, 3.5, 1)
    assert (rows["gate"]["rf"], rows["gate"]["start"], rows["gate"]["rf_min"], rows["gate"]["jump"]) == (10, 3.5, 3, 1)
    assert (rows["after"]["rf"], rows["after"]["start"], rows["after"]["rf_min"]) == (11, 3, 5)
    check_network(graph, "after", erf=False)


def test_unproductive_and_critical_by_hand():
    """Input 10: a k5 path and an identity; c5 x3 on top; rf_min > 10 only from the third c5."""
    graph = {"input_size": 10, "in_channels": 1, "nodes": [
        {"name": "wide", "type": "conv", "kernel": 9, "padding": 4, "inputs": ["input"]},
        {"name": "sum", "type": "add", "inputs": ["wide", "input"]},   # rf 9, rf_min 1
        {"name": "c1", "type": "conv", "kernel": 5, "padding": 2},      # rf 13, rf_min 5
        {"name": "c2", "type": "conv", "kernel": 5, "padding": 2},      # rf 17, rf_min 9
        {"name": "c3", "type": "conv", "kernel": 5, "padding": 2},      # rf 21, rf_min 13
        {"name": "c4", "type": "conv", "kernel": 5, "padding": 2}]}     # rf 25, rf_min 17
    result = analyze(graph)
    rows = by_name(result)
    assert [(rows[n]["rf"], rows[n]["rf_min"]) for n in ("sum", "c1", "c2", "c3", "c4")] == \
        [(9, 1), (13, 5), (17, 9), (21, 13), (25, 17)]
    assert result["unproductive"] == ["c3", "c4"]
    assert result["critical"] == ["c1", "c2"]
    assert result["border"] == "c3"


def test_head_costs_and_flatten_channels():
    """flatten of a 3x2 map with 4 channels: 24 features; linear 24 -> 5 with bias: 125 params, 120 MACs."""
    graph = {"input_size": [6, 4], "in_channels": 4, "nodes": [
        {"name": "pool", "type": "maxpool", "kernel": 2},
        {"name": "flat", "type": "flatten"},
        {"name": "fc", "type": "linear", "out_features": 5}]}
    result = analyze(graph)
    rows = by_name(result)
    assert rows["flat"]["out_channels"] == 24
    assert (rows["fc"]["params"], rows["fc"]["macs"]) == (125, 120)
    assert rows["fc"]["spatial"] is False and rows["pool"]["spatial"] is True
    assert pair(rows["flat"]["rf"]) == (6, 4)  # the whole map: pixels 0..5 x 0..3
    check_network(graph, "fc")


def test_invalid_networks_are_refused_naming_the_node():
    """A layer that empties the map deep in a branch is refused naming that node."""
    graph = {"input_size": 5, "in_channels": 1, "nodes": [
        {"name": "a", "type": "conv", "kernel": 3, "padding": 1, "inputs": ["input"]},
        {"name": "big", "type": "conv", "kernel": 7, "padding": 0, "inputs": ["input"]}]}
    with pytest.raises(RfsweepError, match="'big'"):
        analyze(graph)
    assert oracle_or_error(graph) is None


def test_gate_then_global_pool_stays_inside_an_unpadded_image():
    """Nothing pads, the image is 4 pixels: no unit can see more than pixels 0..3 (rf <= 4).

    x * gate(x) sees pixels 0..3 at every unit (the gate is global); pooling that map again
    still sees 0..3. (Hypothesis' shrunk counterexample of the squeeze-excitation test.)
    """
    graph = {"input_size": 4, "in_channels": 1, "nodes": [
        {"name": "gp", "type": "global_pool", "inputs": ["input"]},
        {"name": "fc", "type": "conv", "kernel": 1, "padding": 0},
        {"name": "scaled", "type": "mul", "inputs": ["fc", "input"]},
        {"name": "gp2", "type": "global_pool"}]}
    rows = by_name(analyze(graph))
    assert (rows["scaled"]["rf"], rows["scaled"]["start"]) == (4, 1.5)
    assert (rows["gp2"]["rf"], rows["gp2"]["start"]) == (4, 1.5)
