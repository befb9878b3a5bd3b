"""draw at rank 1 and 3: the traced footprint on the input equals the gradient support in torch.

A 1-D network is drawn as an L x 1 strip, a 3-D one as a plane through the
traced unit (plane.py). The oracle: the same layers as nn.Conv1d / nn.Conv3d
(weights all one, float64, all-ones convs standing in for max pools so that
every window position passes gradient), and the input positions whose gradient
is non-zero for the traced output unit, projected on each drawn axis.
"""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")
nn = torch.nn

from rfsweep.draw import draw  # noqa: E402
from rfsweep.errors import RfsweepError  # noqa: E402


def random_layers(rank: int, rng: random.Random, depth: int):
    layers = []
    for _ in range(depth):
        kind = rng.choice(["conv", "conv", "conv", "maxpool"])
        k = [rng.choice([1, 2, 3, 5]) for _ in range(rank)]
        s = [rng.choice([1, 1, 2]) for _ in range(rank)]
        d = [rng.choice([1, 2]) if kind == "conv" else 1 for _ in range(rank)]
        p = [rng.randint(0, (kk - 1) * dd // 2) if kind == "conv" else rng.randint(0, kk // 2)
             for kk, dd in zip(k, d)]
        layer = {"type": kind, "kernel": k, "stride": s, "padding": p}
        if kind == "conv":
            layer.update(dilation=d, out_channels=1, bias=False)
        layers.append(layer)
    return layers


def torch_net(layers, rank: int):
    """Pools become all-ones convs of their window: every position of the window passes gradient."""
    Conv = {1: nn.Conv1d, 3: nn.Conv3d}[rank]
    mods = []
    for layer in layers:
        k, s, p = (tuple(layer[key]) for key in ("kernel", "stride", "padding"))
        conv = Conv(1, 1, k, s, p, tuple(layer.get("dilation", [1] * rank)), bias=False).double()
        nn.init.ones_(conv.weight)
        mods.append(conv)
    return nn.Sequential(*mods)


def support(net, size, unit):
    x = torch.zeros(1, 1, *size, dtype=torch.float64, requires_grad=True)
    y = net(x)
    y[(0, 0, *unit)].backward()
    return (x.grad[0, 0] != 0).nonzero()


def draw_or_none(layers, rank, size, **kwargs):
    try:
        return draw({"rank": rank, "input_size": list(size), "in_channels": 1, "layers": layers}, **kwargs)
    except RfsweepError:  # the map empties: nothing to draw
        return None


@pytest.mark.parametrize("seed", range(12))
def test_one_d_strip_matches_gradient_support(seed):
    rng = random.Random(seed)
    while True:  # draw again until the map does not empty
        layers = random_layers(1, rng, rng.randint(1, 4))
        size = (rng.randint(12, 30),)
        drawing = draw_or_none(layers, 1, size)
        if drawing is not None:
            break
    i, j = drawing.unit
    assert j == 0 and drawing.sizes[0] == (size[0], 1)
    with torch.no_grad():
        out = torch_net(layers, 1)(torch.zeros(1, 1, *size, dtype=torch.float64))
    assert drawing.sizes[-1] == (out.shape[-1], 1)
    hits = support(torch_net(layers, 1), size, (i,))
    assert drawing.inside(0) == (sorted(set(hits[:, 0].tolist())), [0])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("plane,axes", [("height,width", (1, 2)), ("depth,height", (0, 1)), ("depth,width", (0, 2))])
def test_three_d_plane_matches_gradient_support(seed, plane, axes):
    rng = random.Random(100 + seed)
    while True:
        layers = random_layers(3, rng, rng.randint(1, 3))
        size = tuple(rng.randint(6, 14) for _ in range(3))
        drawing = draw_or_none(layers, 3, size, plane=plane)
        if drawing is not None:
            break
    with torch.no_grad():
        out_size = torch_net(layers, 3)(torch.zeros(1, 1, *size, dtype=torch.float64)).shape[2:]
    assert drawing.sizes[-1] == tuple(out_size[a] for a in axes)
    i, j = drawing.unit
    unit = [(n - 1) // 2 for n in out_size]  # the third axis: any unit, its set is separable
    unit[axes[0]], unit[axes[1]] = i, j
    hits = support(torch_net(layers, 3), size, tuple(unit))
    assert drawing.inside(0) == (sorted(set(hits[:, axes[0]].tolist())), sorted(set(hits[:, axes[1]].tolist())))


def test_one_d_graph_with_causal_padding_and_a_residual():
    """A TCN block: two causal dilated convs (left padding only) and a residual add; dilations 2 and 4
    read only even offsets 0..12 back from the unit."""
    nodes = [{"name": "a", "type": "conv", "inputs": ["input"], "kernel": 3, "dilation": 2, "padding": [[4, 0]],
              "out_channels": 1, "bias": False},
             {"name": "b", "type": "conv", "inputs": ["a"], "kernel": 3, "dilation": 4, "padding": [[8, 0]],
              "out_channels": 1, "bias": False},
             {"name": "sum", "type": "add", "inputs": ["b", "input"]}]
    drawing = draw({"rank": 1, "input_size": 40, "in_channels": 1, "nodes": nodes}, unit=(30,))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv1d(1, 1, 3, dilation=2, bias=False).double()
            self.b = nn.Conv1d(1, 1, 3, dilation=4, bias=False).double()
            nn.init.ones_(self.a.weight)
            nn.init.ones_(self.b.weight)

        def forward(self, x):
            return self.b(nn.functional.pad(self.a(nn.functional.pad(x, (4, 0))), (8, 0))) + x

    hits = support(Block(), (40,), (30,))
    assert drawing.inside(0)[0] == sorted(set(hits[:, 0].tolist())) == list(range(18, 31, 2))  # dilations 2 and 4: even offsets only


def test_cli_draw_rank_and_plane(capsys, tmp_path):
    from cli_helpers import run_cli

    out = tmp_path / "u.png"
    code, text, err = run_cli(capsys, "draw", "--arch", "unet3d", "--plane", "depth,width", "-o", str(out))
    assert code == 0 and out.stat().st_size > 0, err
    code, text, err = run_cli(capsys, "draw", "c3,c3s2", "--rank", "1", "--input-size", "12", "--unit", "2",
                              "-o", str(tmp_path / "s.png"))
    assert code == 0 and "sees input rows 2..6, cols 0..0" in text, err
    for argv, message in ((["--arch", "unet3d", "--plane", "depth,depth"], "plane must be one of"),
                          (["--arch", "resnet18", "--plane", "depth,width"], "rank 2"),
                          (["c3,c3", "--unit", "2"], "--unit must be I,J")):
        code, text, err = run_cli(capsys, "draw", *argv, "-o", str(tmp_path / "bad.png"))
        assert code == 2 and message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "bad.png").exists()
