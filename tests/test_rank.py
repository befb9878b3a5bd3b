"""Rank 1 and 3 (contract section 9) against an independent torch oracle.

The oracle runs each network with torch.nn.functional on weights made here
(positive, float64, no ReLU, max pools read as avg pools so that a gradient
reaches every pixel of a window): the gradient support of an output unit is
its field, projected on each axis; numel of the weights is params;
torch.utils.flop_counter / 2 is MACs; the output's shape is out_size. None of
it goes through rfsweep's own builder. Plus hand-checked cases (a TCN's RF)
and bad input (exit 2 naming the layer).
"""

from __future__ import annotations

import json
import random

import pytest

import rfsweep
from rfsweep.errors import RfsweepError

torch = pytest.importorskip("torch")
F = torch.nn.functional


# ------------------------------------------------------------------ the oracle

def _axes(value, rank):
    return list(value) if isinstance(value, list) else [value] * rank


def _sides(node, rank):
    """Per-axis (before, after) padding of a node as written (int, per axis, or per side)."""
    padding = node.get("padding", 0)
    if isinstance(padding, list) and padding and isinstance(padding[0], list):
        return [tuple(side) for side in padding]
    if "padding" not in node and node["type"] == "conv":
        k, d = _axes(node["kernel"], rank), _axes(node.get("dilation", 1), rank)
        return [(d[a] * (k[a] - 1) // 2,) * 2 for a in range(rank)]
    return [(p, p) for p in _axes(padding, rank)]


class Oracle:
    """A network of conv/pool/add nodes run with F.conv{r}d / F.avg_pool{r}d on its own weights."""

    def __init__(self, nodes, rank, in_channels, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.nodes, self.rank, self.weights, self.channels = nodes, rank, {}, {"input": in_channels}
        for node in nodes:
            c_in = self.channels[node["inputs"][0]]
            if node["type"] == "conv":
                c_out, groups = node.get("out_channels", c_in), node.get("groups", 1)
                shape = (c_out, c_in // groups, *_axes(node["kernel"], rank))
                w = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.1
                b = torch.rand(c_out, generator=gen, dtype=torch.float64) if node.get("bias", True) else None
                self.weights[node["name"]] = (w, b)
                self.channels[node["name"]] = c_out
            else:
                self.channels[node["name"]] = c_in

    def params(self):
        return sum(w.numel() + (0 if b is None else b.numel()) for w, b in self.weights.values())

    def __call__(self, x):
        conv = getattr(F, f"conv{self.rank}d")
        pool = getattr(F, f"avg_pool{self.rank}d")
        values = {"input": x}
        for node in self.nodes:
            ins = [values[name] for name in node["inputs"]]
            if node["type"] == "add":
                values[node["name"]] = sum(ins[1:], ins[0])
                continue
            pads = _sides(node, self.rank)
            flat = [p for side in reversed(pads) for p in side]
            k = _axes(node["kernel"], self.rank)
            if node["type"] == "conv":
                w, b = self.weights[node["name"]]
                y = conv(F.pad(ins[0], flat), w, b, stride=_axes(node.get("stride", 1), self.rank),
                         dilation=_axes(node.get("dilation", 1), self.rank), groups=node.get("groups", 1))
            else:  # a max pool's field is its avg pool's: every pixel of the window gets a gradient
                y = pool(F.pad(ins[0], flat), k, stride=_axes(node.get("stride", node["kernel"]), self.rank))
            values[node["name"]] = y
        return values[self.nodes[-1]["name"]]


def _interval_checks(oracle, size, in_channels, result):
    """Gradient supports of up to 4 units per axis whose field lies inside the input, against rf/jump/start."""
    rank = len(size)
    total = result["total"]
    rf, jump, start = (_axes(total[key], rank) for key in ("rf", "jump", "start"))
    x = torch.zeros((1, in_channels, *size), dtype=torch.float64, requires_grad=True)
    y = oracle(x)
    out = y.shape[2:]
    assert list(out) == _axes(total["out_size"], rank)
    checked = 0
    for a in range(rank):
        inside = [i for i in range(out[a])
                  if start[a] + i * jump[a] - (rf[a] - 1) / 2 >= 0
                  and start[a] + i * jump[a] + (rf[a] - 1) / 2 <= size[a] - 1]
        for i in inside[:2] + inside[-2:]:
            index = [o // 2 for o in out]
            index[a] = i
            grad, = torch.autograd.grad(y[(0, slice(None), *index)].sum(), x, retain_graph=True)
            support = grad[0].abs().sum(0)
            other = tuple(b for b in range(rank) if b != a)
            line = support.sum(other) if other else support
            hits = torch.nonzero(line).flatten().tolist()
            assert hits[0] == start[a] + i * jump[a] - (rf[a] - 1) / 2, (a, i)
            assert hits[-1] - hits[0] + 1 == rf[a], (a, i)
            checked += 1
    return checked


def _macs(oracle, size, in_channels):
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros((1, in_channels, *size), dtype=torch.float64)
    with FlopCounterMode(display=False) as counter:
        oracle(x)
    return counter.get_total_flops() // 2


# ------------------------------------------------------------------ random networks

def _random_layer(rnd, rank, c_in, per_side: bool):
    kind = rnd.choice(["conv", "conv", "conv", "maxpool", "avgpool"])
    if kind == "conv":
        k = [rnd.randint(1, 4) for _ in range(rank)]
        d = [rnd.randint(1, 3) if k[a] > 1 else 1 for a in range(rank)]
        s = [rnd.choice([1, 1, 2]) for _ in range(rank)]
        span = [d[a] * (k[a] - 1) for a in range(rank)]
        if per_side:
            padding = [[rnd.randint(0, span[a]), rnd.randint(0, span[a])] for a in range(rank)]
        else:
            padding = [rnd.randint(0, span[a]) for a in range(rank)]
        c_out = rnd.choice([1, 2, 3, 4])
        groups = rnd.choice([g for g in (1, 2) if c_in % g == 0 and c_out % g == 0])
        layer = {"type": "conv", "kernel": k, "stride": s, "dilation": d, "padding": padding,
                 "out_channels": c_out, "groups": groups, "bias": rnd.random() < 0.7}
        return layer, c_out
    k = [rnd.randint(1, 3) for _ in range(rank)]
    s = [rnd.randint(1, k[a]) for a in range(rank)]
    padding = [rnd.randint(0, k[a] // 2) for a in range(rank)]
    return {"type": kind, "kernel": k, "stride": s, "padding": padding}, c_in


def _simplify(values):
    """Write per-axis lists as one number where all agree, as a user would (both forms must work)."""
    return values[0] if isinstance(values, list) and all(v == values[0] for v in values) and \
        not isinstance(values[0], list) else values


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("seed", range(6))
def test_random_chains_against_torch(rank, seed):
    rnd = random.Random(1000 * rank + seed)
    size = [rnd.randint(60, 90)] if rank == 1 else [rnd.randint(14, 20) for _ in range(3)]
    c_in = rnd.randint(1, 3)
    layers, c = [], c_in
    for _ in range(rnd.randint(2, 5 if rank == 1 else 3)):
        layer, c = _random_layer(rnd, rank, c, per_side=False)
        layers.append({key: _simplify(value) for key, value in layer.items()})
    try:
        result = rfsweep.analyze({"input_size": size, "in_channels": c_in, "layers": layers})
    except RfsweepError as exc:  # a map emptied by the random strides: refused with the layer named
        assert "layer" in str(exc)
        return
    nodes = [{**layer, "name": str(i), "inputs": ["input" if i == 0 else str(i - 1)]}
             for i, layer in enumerate(layers)]
    oracle = Oracle(nodes, rank, c_in, seed)
    assert result["total"]["params"] == oracle.params()
    assert result["total"]["macs"] == _macs(oracle, size, c_in)
    assert _interval_checks(oracle, size, c_in, result) > 0
    # rfsweep's own builder (rfsweep.to_torch) runs the same shapes and params
    module = rfsweep.to_torch({"input_size": size, "in_channels": c_in, "layers": layers}, relu=False)
    out = module(torch.zeros((1, c_in, *size)))
    assert list(out.shape[2:]) == _axes(result["total"]["out_size"], rank)
    assert sum(p.numel() for p in module.parameters()) == oracle.params()


def _random_graph(rnd, rank, c_in):
    """Layers with per-side padding, and residual blocks of two causal dilated convs (causal on axis 0)."""
    nodes, c, last = [], c_in, "input"
    for index in range(rnd.randint(2, 4)):
        if rnd.random() < 0.5:
            layer, c = _random_layer(rnd, rank, c, per_side=True)
            nodes.append({**layer, "name": f"l{index}", "inputs": [last]})
            last = f"l{index}"
            continue
        k = [rnd.randint(2, 3)] + [rnd.choice([1, 3]) for _ in range(rank - 1)]
        d = [rnd.choice([1, 2, 4])] + [1] * (rank - 1)
        pads = [[d[0] * (k[0] - 1), 0]] + [[(k[a] - 1) // 2] * 2 for a in range(1, rank)]
        for j in (1, 2):
            nodes.append({"name": f"b{index}c{j}", "type": "conv", "kernel": _simplify(k), "dilation": _simplify(d),
                          "padding": pads, "out_channels": c, "inputs": [last if j == 1 else f"b{index}c1"]})
        nodes.append({"name": f"b{index}add", "type": "add", "inputs": [f"b{index}c2", last]})
        last = f"b{index}add"
    return nodes


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("seed", range(5))
def test_random_graphs_against_torch(rank, seed):
    rnd = random.Random(7000 + 100 * rank + seed)
    size = [rnd.randint(70, 100)] if rank == 1 else [rnd.randint(16, 22) for _ in range(3)]
    c_in = rnd.randint(1, 3)
    nodes = _random_graph(rnd, rank, c_in)
    graph = {"rank": rank, "input_size": size[0] if rank == 1 else size, "in_channels": c_in, "nodes": nodes}
    try:
        result = rfsweep.analyze(graph)
    except RfsweepError as exc:
        assert "node" in str(exc)
        return
    oracle = Oracle(nodes, rank, c_in, seed)
    assert result["total"]["params"] == oracle.params()
    assert result["total"]["macs"] == _macs(oracle, size, c_in)
    assert _interval_checks(oracle, size, c_in, result) > 0
    module = rfsweep.to_torch(graph, relu=False)
    out = module(torch.zeros((1, c_in, *size)))
    assert list(out.shape[2:]) == _axes(result["total"]["out_size"], rank)
    assert sum(p.numel() for p in module.parameters()) == oracle.params()


# ------------------------------------------------------------------ hand-checked

def _tcn(k, dilations, channels=8):
    """Bai et al. 2018: per block two causal convs of dilation d and a residual."""
    nodes, last = [], "input"
    for i, d in enumerate(dilations):
        for j in (1, 2):
            nodes.append({"name": f"b{i}c{j}", "type": "conv", "kernel": k, "dilation": d,
                          "padding": [[d * (k - 1), 0]], "out_channels": channels,
                          "inputs": [last if j == 1 else f"b{i}c1"]})
        nodes.append({"name": f"b{i}", "type": "add", "inputs": [f"b{i}c2", last]})
        last = f"b{i}"
    return {"rank": 1, "input_size": 16000, "in_channels": channels, "nodes": nodes}


@pytest.mark.parametrize("k, levels", [(2, 8), (3, 4), (7, 6)])
def test_tcn_receptive_field_by_hand(k, levels):
    dilations = [2 ** i for i in range(levels)]
    result = rfsweep.analyze(_tcn(k, dilations))
    total = result["total"]
    assert total["rf"] == 1 + 2 * (k - 1) * (2 ** levels - 1)
    # causal: unit t sees inputs t - rf + 1 .. t, so the field's centre is (rf-1)/2 before unit 0
    assert total["start"] == -(total["rf"] - 1) / 2
    assert total["out_size"] == 16000 and total["jump"] == 1
    assert total["params"] == levels * 2 * (8 * 8 * k + 8)


def test_per_axis_values_and_costs_by_hand():
    # 3x3x3 conv 4->8 on 8x10x12, then a 1x2x2 max pool: params 8*4*27+8, MACs 8*4*27 * 8*10*12
    result = rfsweep.analyze("c3x8,mp1_2_2", input_size=[8, 10, 12], in_channels=4)
    total = result["total"]
    assert total["params"] == 8 * 4 * 27 + 8
    assert total["macs"] == 8 * 4 * 27 * 8 * 10 * 12
    assert total["out_size"] == [8, 5, 6]
    assert total["rf"] == [3, 4, 4] and total["jump"] == [1, 2, 2]
    # one number when every axis agrees, at rank 1 and 3 alike
    cube = rfsweep.analyze("c3x8,mp2", input_size=16, rank=3)["total"]
    assert cube["rf"] == 4 and cube["out_size"] == 8 and cube["macs"] == 8 * 3 * 27 * 16 ** 3
    line = rfsweep.analyze("c5x2,c5s2x2", input_size=100, rank=1)["total"]
    assert line["rf"] == 9 and line["jump"] == 2 and line["out_size"] == 50
    assert line["params"] == (2 * 3 * 5 + 2) + (2 * 2 * 5 + 2)


def test_rank_two_unchanged_by_the_rank_key():
    base = rfsweep.analyze("c7s2p3x64,mp3s2p1,c1_3x64")
    assert rfsweep.analyze("c7s2p3x64,mp3s2p1,c1_3x64", rank=2) == base
    assert rfsweep.analyze("c7s2p3x64,mp3s2p1,c1_3x64", input_size=[224, 224]) == base
    layers = [{"type": "conv", "kernel": 7, "stride": 2, "padding": 3, "out_channels": 64}]
    assert rfsweep.analyze({"rank": 2, "layers": layers}) == rfsweep.analyze(layers)


# ------------------------------------------------------------------ bad input

def test_wrong_length_tuple_names_the_layer():
    with pytest.raises(RfsweepError, match=r"^layer 2: kernel .*\[1, 3, 3\].*rank 1"):
        rfsweep.analyze("c3x8,c1_3_3x8", input_size=100, rank=1)
    with pytest.raises(RfsweepError, match=r"^layer 1: stride"):
        rfsweep.analyze([{"type": "conv", "kernel": 3, "stride": [1, 2]}], input_size=[8, 8, 8])
    with pytest.raises(RfsweepError, match="node 'b'"):
        rfsweep.analyze({"rank": 3, "input_size": 8, "nodes": [
            {"name": "a", "type": "conv", "kernel": 3}, {"name": "b", "type": "conv", "kernel": [1, 3]}]})
    with pytest.raises(RfsweepError, match="rank is 3"):
        rfsweep.analyze("c3", input_size=[8, 8], rank=3)


def test_cli_rank_flag_and_errors(capsys):
    from cli_helpers import run_cli

    code, out, err = run_cli(capsys, "explain", "--rank", "1", "--input-size", "16000", "c3x8,c3d2x8",
                             "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["total"]["rf"] == 7 and result["input"]["size"] == 16000
    code, out, err = run_cli(capsys, "explain", "--input-size", "16_32_32", "c1_3_3x8,mp1_2_2", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["total"]["rf"] == [1, 4, 4]
    code, out, err = run_cli(capsys, "explain", "--rank", "1", "c3x8,c1_3_3x8")
    assert code == 2 and err.startswith("error: layer 2") and "Traceback" not in err
    code, out, err = run_cli(capsys, "explain", "--rank", "3", "--input-size", "16", "c3x4,mp2")
    assert code == 0 and "16x16x16" not in out  # one number where all axes agree
    code, out, err = run_cli(capsys, "explain", "--rank", "4", "c3")
    assert code == 2 and "rank" in err


# ------------------------------------------------------------------ the rank-1 and rank-3 catalog

def test_catalog_tcn_against_a_torch_tcn():
    """The catalog TCN is locuslab/TCN's sequential-MNIST model: RF by hand, params against torch numel
    (less weight norm's g vectors, which the file says it leaves out), and the paper's 70K."""
    from rfsweep.architectures import arch_info, arch_path

    k, levels, hidden = 7, 8, 25
    result = rfsweep.analyze(arch_path("tcn"), input_size=4000, end_point="tcn.network.7.add")
    assert result["total"]["rf"] == 1 + 2 * (k - 1) * (2 ** levels - 1)  # 3061 samples
    # an independent TemporalBlock stack: Conv1d padding (k-1)*d on both sides, then chomp the end
    import warnings

    warnings.filterwarnings("ignore", "`torch.nn.utils.weight_norm` is deprecated", FutureWarning)
    weight_norm = torch.nn.utils.weight_norm  # locuslab/TCN's own (its weight_g, weight_v parameters)
    blocks, c_in = [], 1
    for i in range(levels):
        d = 2 ** i
        convs = [weight_norm(torch.nn.Conv1d(c, hidden, k, padding=(k - 1) * d, dilation=d).double())
                 for c in (c_in, hidden)]
        down = torch.nn.Conv1d(c_in, hidden, 1).double() if c_in != hidden else None
        blocks.append((convs, down, (k - 1) * d))
        c_in = hidden
    linear = torch.nn.Linear(hidden, 10)
    modules = [m for convs, down, _ in blocks for m in convs + ([down] if down else [])] + [linear]
    numel = sum(p.numel() for m in modules for p in m.parameters())
    g_count = sum(m.weight_g.numel() for convs, _, _ in blocks for m in convs)
    full = rfsweep.analyze(arch_path("tcn"))["total"]
    assert full["params"] == numel - g_count
    assert round(full["params"], -4) == arch_info("tcn")["published"]["params_rounded"]
    # gradient support of the last time step of the torch TCN at 4000 samples: rf samples, ending there
    for convs, _, _ in blocks:
        for conv in convs:
            conv.weight_v.data.uniform_(0.1, 1.0)
    x = torch.zeros((1, 1, 4000), dtype=torch.float64, requires_grad=True)
    y = x
    for convs, down, chomp in blocks:
        out = y
        for conv in convs:
            out = conv(out)[:, :, :-chomp]
        y = out + (y if down is None else down(y))
    grad, = torch.autograd.grad(y[0, :, -1].sum(), x)
    hits = torch.nonzero(grad[0, 0]).flatten()
    assert hits[-1].item() == 3999 and hits[-1].item() - hits[0].item() + 1 == result["total"]["rf"]


def test_catalog_wavenet_block_field():
    """van den Oord et al. 2016: each 1, 2, ..., 512 block sees 1024 samples; after the kernel-2 causal
    conv and three blocks the output sees 2 + 3 * 1023 = 3071."""
    from rfsweep.architectures import arch_info, arch_path

    published = arch_info("wavenet")["published"]["block_rf"]
    first = rfsweep.analyze(arch_path("wavenet"), end_point="causal_conv")["total"]["rf"]
    stack = rfsweep.analyze(arch_path("wavenet"), end_point="stack0.layer9.out")["total"]["rf"]
    assert stack - first + 1 == published == 1024
    total = rfsweep.analyze(arch_path("wavenet"))["total"]
    assert total["rf"] == 2 + 3 * 1023 and total["out_size"] == 16000 and total["jump"] == 1


def test_catalog_r3d_18_published_macs():
    from rfsweep.architectures import arch_info, arch_path

    published = arch_info("r3d_18")["published"]
    total = rfsweep.analyze(arch_path("r3d_18"))["total"]
    assert round(total["macs"] / 1e9, 3) == published["gmacs"]
    assert total["jump"] == [8, 16, 16] and total["out_size"] == [2, 7, 7]


def test_readme_rank_examples(capsys):
    """The README's rank-1 and rank-3 commands run and print what the README quotes."""
    from pathlib import Path

    from cli_helpers import run_cli

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code, out, err = run_cli(capsys, "explain", "--arch", "tcn", "--end-point", "tcn.network.7.add",
                             "--format", "json")
    assert code == 0, err
    rf = json.loads(out)["total"]["rf"]
    assert f"{rf} samples" in readme and f"{rf / 16:.1f} ms" in readme
    code, out, err = run_cli(capsys, "explain", "--arch", "unet3d", "--format", "json")
    assert code == 0, err
    rf = json.loads(out)["total"]["rf"]
    assert "x".join(map(str, rf if isinstance(rf, list) else [rf] * 3)) in readme


def test_torch_import_causal_padding_both_ways():
    """Causal Conv1d stacks as TCNs write them: F.pad on the left, or padding then a slice (Chomp1d).
    The importer reads 1-D models as rank-1 graphs (it once read them as (1, L) images, before rank 1
    existed): the field is 1 + 2*2 + 2*4 samples, ending at the unit."""
    nn = torch.nn

    class Chomp(nn.Module):
        def __init__(self, size):
            super().__init__()
            self.size = size

        def forward(self, x):
            return x[:, :, :-self.size]

    class LeftPad(nn.Module):
        def __init__(self, size):
            super().__init__()
            self.size = size

        def forward(self, x):
            return F.pad(x, (self.size, 0))

    chomped = nn.Sequential(nn.Conv1d(1, 8, 3, padding=4, dilation=2), Chomp(4),
                            nn.Conv1d(8, 8, 3, padding=8, dilation=4), Chomp(8))
    padded = nn.Sequential(LeftPad(4), nn.Conv1d(1, 8, 3, dilation=2), LeftPad(8), nn.Conv1d(8, 8, 3, dilation=4))
    for model in (chomped, padded):
        graph = rfsweep.from_torch(model, input_size=100, in_channels=1)
        total = rfsweep.analyze(graph)["total"]
        assert graph["rank"] == 1 and graph["input_size"] == [100]
        assert total["rf"] == 13 and total["start"] == -6.0 and total["out_size"] == 100
        assert total["params"] == sum(p.numel() for p in model.parameters())
        # the oracle: unit 50's gradient support is inputs 38..50
        x = torch.zeros((1, 1, 100), requires_grad=True)
        with torch.no_grad():
            for p in model.parameters():
                p.uniform_(0.1, 1.0)
        grad, = torch.autograd.grad(model(x)[0, :, 50].sum(), x)
        hits = torch.nonzero(grad[0, 0]).flatten().tolist()
        assert (hits[0], hits[-1]) == (50 - 12, 50)


@pytest.mark.parametrize("source", ["c3,c3s2", {"nodes": [{"name": "a", "type": "conv", "kernel": 3},
                                                           {"name": "b", "type": "add", "inputs": ["a", "input"]}]}])
def test_the_json_says_the_rank_where_it_is_not_two(source):
    """A rank-3 input of one number 12 is 12x12x12: the report's input carries the rank (absent at rank 2,
    whose JSON stays as it was)."""
    for rank in (1, 2, 3):
        result = rfsweep.analyze(source, input_size=12, rank=rank)
        assert result["input"]["size"] == 12
        assert result["input"].get("rank", 2) == rank and ("rank" in result["input"]) == (rank != 2)
