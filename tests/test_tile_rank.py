"""tile_plan / tiled_predict at rank 1 and 3: stitched tiles equal the whole output, the halo is needed.

The oracle is torch itself: small U-Nets (anisotropic kernels, per-axis pooling as
nnU-Net plans 3-D volumes, transposed or nearest upsampling, concatenated skips)
built twice from the same choices -- once as rfsweep graph JSON, once directly
from nn.Conv1d/Conv3d modules, never through rfsweep.to_torch.
"""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from rfsweep import tile_plan, tiled_predict  # noqa: E402
from rfsweep.tile import _balanced_cores  # noqa: E402
from tile_checks import check_halo_is_needed  # noqa: E402


def _choices(rank: int, rng: random.Random) -> dict:
    kernel = [rng.choice([1, 3, 5]) if rank == 3 and a == 0 else rng.choice([3, 5]) for a in range(rank)]
    pool = [rng.choice([1, 2]) if rank == 3 and a == 0 else 2 for a in range(rank)]
    return dict(rank=rank, levels=rng.choice([1, 2]), kernel=kernel, pool=pool,
                up=rng.choice(["transposed", "nearest"]), dilation=rng.choice([1, 2]))


def unet_graph(c: dict, size, width: int = 2) -> dict:
    """The U-Net of `c` as graph JSON (same padding: every conv keeps its map's size)."""
    nodes, src, skips = [], "input", []
    pad = [d * (k // 2) for k, d in zip(c["kernel"], [c["dilation"]] * c["rank"])]

    def conv(name, inp, out, kernel=None, padding=None):
        nodes.append({"name": name, "type": "conv", "inputs": [inp], "kernel": kernel or c["kernel"],
                      "dilation": 1 if kernel else c["dilation"], "padding": pad if padding is None else padding,
                      "out_channels": out, "bias": True})
        return name

    for level in range(c["levels"]):
        src = conv(f"enc{level}", src, width)
        skips.append(src)
        nodes.append({"name": f"pool{level}", "type": "maxpool", "inputs": [src], "kernel": c["pool"],
                      "stride": c["pool"]})
        src = f"pool{level}"
    src = conv("bottom", src, width)
    for level in reversed(range(c["levels"])):
        if c["up"] == "transposed":
            nodes.append({"name": f"up{level}", "type": "conv_transpose", "inputs": [src], "kernel": c["pool"],
                          "stride": c["pool"], "out_channels": width, "bias": True})
        else:
            nodes.append({"name": f"up{level}", "type": "upsample", "inputs": [src], "scale": c["pool"],
                          "mode": "nearest"})
        nodes.append({"name": f"cat{level}", "type": "concat", "inputs": [skips[level], f"up{level}"]})
        src = conv(f"dec{level}", f"cat{level}", width)
    conv("head", src, 1, kernel=[1] * c["rank"], padding=0)
    return {"rank": c["rank"], "input_size": list(size), "in_channels": 1, "nodes": nodes, "output": "head"}


class TorchUNet(nn.Module):
    """The same U-Net written directly in torch."""

    def __init__(self, c: dict, width: int = 2):
        super().__init__()
        r = c["rank"]
        Conv, ConvT, Pool = ({1: nn.Conv1d, 3: nn.Conv3d}[r], {1: nn.ConvTranspose1d, 3: nn.ConvTranspose3d}[r],
                             {1: nn.MaxPool1d, 3: nn.MaxPool3d}[r])
        pad = tuple(c["dilation"] * (k // 2) for k in c["kernel"])

        def conv(cin, cout):
            return Conv(cin, cout, tuple(c["kernel"]), padding=pad, dilation=c["dilation"])

        self.levels, self.up_kind = c["levels"], c["up"]
        self.enc = nn.ModuleList(conv(1 if i == 0 else width, width) for i in range(c["levels"]))
        self.pool = Pool(tuple(c["pool"]), tuple(c["pool"]))
        self.bottom = conv(width, width)
        self.scale = tuple(float(p) for p in c["pool"])
        self.ups = nn.ModuleList(ConvT(width, width, tuple(c["pool"]), tuple(c["pool"])) if c["up"] == "transposed"
                                 else nn.Identity() for _ in range(c["levels"]))
        self.dec = nn.ModuleList(conv(2 * width, width) for _ in range(c["levels"]))
        self.head = Conv(width, 1, 1)
        torch.manual_seed(0)
        for p in self.parameters():
            nn.init.normal_(p)
        self.double()

    def forward(self, x):
        skips = []
        for enc in self.enc:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for level in reversed(range(self.levels)):
            up = (self.ups[level](x) if self.up_kind == "transposed"
                  else nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest"))
            x = self.dec[level](torch.cat([skips[level], up], 1))
        return self.head(x)


def _stitch(net, plan, size):
    torch.manual_seed(1)
    x = torch.randn(1, 1, *size, dtype=torch.float64)
    with torch.no_grad():
        whole = net(x)
        try:
            return whole, tiled_predict(net, x, plan)
        except Exception:  # noqa: BLE001 - a tile too small for what it must keep: not equal
            return whole, None


CASES = [(1, seed, (96,), 24) for seed in range(6)] + [(1, 6, (104,), 17)] + \
        [(3, seed, (8, 20, 16), (4, 8, 8)) for seed in range(4)]


@pytest.mark.parametrize("rank,seed,size,tile", CASES)
def test_tiled_equals_whole_at_rank(rank, seed, size, tile):
    c = _choices(rank, random.Random(seed))
    graph, net = unet_graph(c, size), TorchUNet(c)
    plan = tile_plan(graph, tile=tile)
    assert len(plan["halo"]) == rank and len(plan["multiple"]) == rank
    for m, p in zip(plan["multiple"], plan["tiles"][0]["read"]):
        assert p[0] % m == 0
    whole, tiled = _stitch(net, plan, size)
    assert tuple(whole.shape[2:]) == tuple(size)  # same padding: output = input size
    assert len(plan["tiles"]) > 1
    assert tiled is not None and (whole - tiled).abs().max().item() < 1e-9
    # the into regions partition the output
    cover = torch.zeros(*size, dtype=torch.int64)
    for t in plan["tiles"]:
        cover[tuple(slice(*r) for r in t["into"])] += 1
    assert bool((cover == 1).all())
    check_halo_is_needed(graph, plan, tile, lambda smaller: _stitch(net, smaller, size))


def test_one_d_halo_by_hand():
    """Five same-padded 3-convs then 1x1: the field is 11 wide, centred, so each tile needs 5 on each side."""
    nodes = [{"name": f"c{i}", "type": "conv", "inputs": [f"c{i - 1}" if i else "input"], "kernel": 3,
              "padding": 1, "out_channels": 1} for i in range(5)]
    plan = tile_plan({"rank": 1, "input_size": 100, "in_channels": 1, "nodes": nodes}, tile=25)
    assert plan["halo"] == [[5, 5]] and plan["multiple"] == [1] and plan["rf"] == 11
    assert [t["into"] for t in plan["tiles"]] == [[[0, 25]], [[25, 50]], [[50, 75]], [[75, 100]]]
    assert plan["tiles"][1]["read"] == [[20, 55]] and plan["tiles"][1]["keep"] == [[5, 30]]


@pytest.mark.parametrize("n,core,multiple", [(1000, 256, 16), (100, 30, 1), (17, 4, 4), (64, 64, 16), (5, 8, 4),
                                             (513, 256, 16)])
def test_cores_balanced(n, core, multiple):
    """ceil(n / core) aligned cores covering [0, n), sizes differing by at most one multiple (not a thin last one)."""
    cores = _balanced_cores(n, core, multiple)
    assert cores[0][0] == 0 and cores[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(cores, cores[1:]))
    assert all(c0 % multiple == 0 for c0, _ in cores)
    assert len(cores) == min(-(-n // core), -(-n // multiple))
    inner = [c1 - c0 for c0, c1 in cores[:-1]]
    if inner:
        assert max(inner) - min(inner) <= multiple
        assert cores[-1][1] - cores[-1][0] >= min(inner) - multiple


def test_cli_tile_rank_3(capsys):
    from cli_helpers import run_cli

    code, out, err = run_cli(capsys, "tile", "--arch", "unet3d", "--tile", "64", "--format", "json")
    assert code == 0, err
    import json
    plan = json.loads(out)
    assert len(plan["halo"]) == 3 and plan["multiple"] == [8, 8, 8]
    code, out, err = run_cli(capsys, "tile", "c3,c3", "--rank", "1", "--input-size", "50", "--tile", "10")
    assert code == 0, err
    assert "halo: left 2, right 2" in out
