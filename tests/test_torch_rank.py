"""rfsweep.from_torch at rank 1 and 3 (issue 19): Conv1d models import as signals, Conv3d models as
volumes, against independent oracles: a real forward (sizes), sum(p.numel()) (params),
torch.utils.flop_counter / 2 (MACs) and the support of the gradient of output units in a
positive float64 copy of the model (RF, jump, start per axis). Random networks mix anisotropic
kernels, strides, dilations, both forms of causal padding, norms and weight-normalised convs.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")  # the torch extra; CI installs it, so this never skips there
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import rfsweep  # noqa: E402
from rfsweep.architectures import arch_path  # noqa: E402
from rfsweep.errors import RfsweepError  # noqa: E402
from rfsweep.torch_import import Unsupported, from_torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_torch_import import _Linearise, _linearised  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning")


# ------------------------------------------------------------------ the oracles

def _axes(value, rank):
    return list(value) if isinstance(value, list) else [value] * rank


def _supports(lin, in_channels, size, units):
    """Per unit, per axis: the first and last input index its gradient reaches."""
    x = torch.ones((1, in_channels, *size), dtype=torch.float64, requires_grad=True)
    with _Linearise():
        y = lin(x)
    out = []
    for unit in units:
        (g,) = torch.autograd.grad(y[(0, slice(None), *unit)].sum(), x, retain_graph=True)
        g = g[0].sum(0)
        per_axis = []
        for a in range(len(size)):
            line = g.abs().sum(dim=[d for d in range(len(size)) if d != a]) if len(size) > 1 else g.abs()
            hits = torch.nonzero(line > 0).flatten()
            per_axis.append((int(hits[0]), int(hits[-1])))
        out.append(per_axis)
    return tuple(y.shape[2:]), out


def _fields_at(lin, in_channels, size):
    """(rf, jump, start per axis, clipped?) from two neighbouring middle units."""
    with torch.no_grad(), _Linearise():
        m = lin(torch.zeros((1, in_channels, *size), dtype=torch.float64)).shape[2:]
    u0 = tuple(max(n // 2 - 1, 0) for n in m)
    u1 = tuple(min(u + 1, n - 1) for u, n in zip(u0, m))
    _, (s0, s1) = _supports(lin, in_channels, size, [u0, u1])
    rf, jump, start, clipped = [], [], [], False
    for a, n in enumerate(size):
        (lo0, hi0), (lo1, hi1) = s0[a], s1[a]
        clipped |= lo0 == 0 or hi1 == n - 1 or u1[a] == u0[a]
        step = ((lo1 + hi1) / 2 - (lo0 + hi0) / 2) / max(u1[a] - u0[a], 1)
        rf.append(hi0 - lo0 + 1)
        jump.append(step)
        start.append((lo0 + hi0) / 2 - u0[a] * step)
    return (rf, jump, start), clipped


def gradient_fields(model, in_channels, size, limit=400):
    """rf, jump, start per axis of the model's output map, unclipped: the same at two input sizes."""
    lin = _linearised(model)
    size = list(size)
    while True:
        first, clipped = _fields_at(lin, in_channels, size)
        if not clipped:
            second, clipped = _fields_at(lin, in_channels, [n + 7 for n in size])
            if not clipped and second == first:
                return first
        if max(size) >= limit:
            raise AssertionError(f"the units' support is still clipped at input {size}")
        size = [min(2 * n, limit) for n in size]


def half_flops(model, x) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(x)
    return counter.get_total_flops() // 2


def numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------ random 1-D and 3-D networks

def _conv(rank, cin, cout, kernel, stride=1, padding=0, dilation=1, groups=1, bias=True, norm=None):
    conv = getattr(nn, f"Conv{rank}d")(cin, cout, kernel, stride, padding, dilation, groups, bias)
    if norm == "new":
        return nn.utils.parametrizations.weight_norm(conv)
    if norm == "old":
        return nn.utils.weight_norm(conv)
    return conv


class Causal(nn.Module):
    """A causal conv along axis 0 (time): F.pad on the left only, or padding on both sides then a
    chomp of the right end (locuslab/TCN's Chomp1d)."""

    def __init__(self, rank, cin, cout, kernel, dilation, chomp, weight_norm=None):
        super().__init__()
        self.rank, self.chomp = rank, chomp
        self.amount = dilation * (kernel[0] - 1)
        rest = [d * (k - 1) // 2 for k, d in zip(kernel[1:], [dilation] * (rank - 1))]
        padding = [self.amount if chomp else 0] + rest
        self.conv = _conv(rank, cin, cout, kernel, 1, padding, dilation, norm=weight_norm)

    def forward(self, x):
        if self.chomp:
            y = self.conv(x)
            return y[:, :, :-self.amount] if self.amount else y
        pad = [0, 0] * (self.rank - 1) + [self.amount, 0]  # F.pad's pairs start at the last dim
        return self.conv(F.pad(x, pad))


class Residual(nn.Module):
    def __init__(self, rank, c, kernel, stride, dilation):
        super().__init__()
        padding = [d * (k - 1) // 2 for k, d in zip(kernel, dilation)]
        self.a = _conv(rank, c, c, kernel, stride, padding, dilation, bias=False)
        self.norm = getattr(nn, f"BatchNorm{rank}d")(c)
        self.b = _conv(rank, c, c, [1] * rank)
        self.short = _conv(rank, c, c, 1, stride) if max(stride) > 1 else nn.Identity()

    def forward(self, x):
        return F.relu(self.b(F.relu(self.norm(self.a(x)))) + self.short(x))


def _norm(rank, c, kind):
    if kind == "batch":
        return getattr(nn, f"BatchNorm{rank}d")(c)
    if kind == "group":
        return nn.GroupNorm(2, c)
    if kind == "group_plain":
        return nn.GroupNorm(2, c, affine=False)
    if kind == "instance":
        return getattr(nn, f"InstanceNorm{rank}d")(c, affine=True)
    return nn.Identity()


def random_net(rank, seed, c=4):
    """(features, model with a global-pool + Linear head, input size): 2 to 5 blocks drawn from seed."""
    rng = random.Random(seed)
    blocks, cin, strides = [], 2, [1] * rank

    def per_axis(choices):
        return [rng.choice(choices) for _ in range(rank)]

    for _ in range(rng.randint(2, 5)):
        kind = rng.choice(["conv", "conv", "causal", "pool", "res"])
        cap = [s >= 8 for s in strides]
        stride = [1 if capped else s for s, capped in zip(per_axis([1, 1, 2]), cap)]
        if kind == "conv":
            kernel, dilation = per_axis([1, 2, 3, 5]), per_axis([1, 1, 2, 3])
            padding = [rng.randint(0, d * (k - 1) // 2 + 1) for k, d in zip(kernel, dilation)]
            groups = 2 if cin % 2 == 0 and rng.random() < 0.3 else 1
            conv = _conv(rank, cin, c, kernel, stride, padding, dilation, groups, rng.random() < 0.5,
                         rng.choice([None, None, "new", "old"]))
            blocks += [conv, _norm(rank, c, rng.choice(["batch", "group", "group_plain", "instance", None])),
                       nn.ReLU()]
            cin = c
        elif kind == "causal":
            kernel, dilation = per_axis([2, 3]), rng.choice([1, 2, 4])
            blocks.append(Causal(rank, cin, c, kernel, dilation, rng.random() < 0.5,
                                 rng.choice([None, "new", "old"])))
            stride = [1] * rank
            cin = c
        elif kind == "pool":
            kernel = per_axis([1, 2, 3])
            stride = [min(s, k) for s, k in zip(stride, kernel)]
            padding = [rng.randint(0, k // 2) for k in kernel]
            pool = rng.choice(["Max", "Avg"])
            blocks.append(getattr(nn, f"{pool}Pool{rank}d")(kernel, stride, padding, ceil_mode=rng.random() < 0.3))
        else:
            if cin != c:
                blocks.append(_conv(rank, cin, c, 1))
                cin = c
            blocks.append(Residual(rank, c, per_axis([1, 3]), stride, per_axis([1, 2])))
        strides = [s * t for s, t in zip(strides, stride)]
    features = nn.Sequential(*blocks)
    head = nn.Sequential(getattr(nn, f"AdaptiveAvgPool{rank}d")(1), nn.Flatten(), nn.Linear(cin, 3))
    size = [rng.randint(24, 40) if rank == 1 else rng.randint(10, 16) for _ in range(rank)]
    model = nn.Sequential(features, head) if seed % 2 else Untraceable(features, head)
    return features, model, size


class Untraceable(nn.Module):
    """Control flow on a shape: torch.fx cannot trace it, so the import takes the meta-device path."""

    def __init__(self, features, head):
        super().__init__()
        self.features, self.head = features, head

    def forward(self, x):
        y = self.features(x)
        if y.shape[-1] > 0:
            y = self.head(y)
        return y


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("seed", range(8))
def test_random_networks_against_torch(rank, seed):
    """Odd seeds trace with torch.fx, even ones on the meta device (control flow on a shape)."""
    torch.manual_seed(seed)
    features, model, size = random_net(rank, seed)
    for _ in range(4):  # a size the network can shrink to at least 2 units per axis
        with torch.no_grad():
            try:
                shape = features.eval()(torch.zeros(1, 2, *size)).shape[2:]
            except RuntimeError:  # too small for the network
                shape = [0]
        if min(shape) >= 2:
            break
        size = [2 * n for n in size]
    graph = from_torch(model, size if rank == 3 else size[0], in_channels=2)
    assert graph["rank"] == rank and graph["input_size"] == size
    result = rfsweep.analyze(graph)
    total = result["total"]
    assert _axes(total["out_size"], rank) == list(shape)
    assert total["params"] == numel(model)
    assert total["macs"] == half_flops(model, torch.zeros(1, 2, *size))
    rf, jump, start = gradient_fields(features, 2, size)
    assert [_axes(total["rf"], rank), _axes(total["jump"], rank), _axes(total["start"], rank)] == [rf, jump, start]


def test_a_causal_stack_sees_only_the_past():
    """Hand-checked: kernel-3 causal convs with dilations 1, 2, 4 (both forms): unit t reads
    t - 14 .. t, so rf 15, jump 1, and the first unit's field is centred 7 before it."""
    model = nn.Sequential(Causal(1, 1, 2, [3], 1, False), Causal(1, 2, 2, [3], 2, True),
                          Causal(1, 2, 2, [3], 4, False))
    total = rfsweep.analyze(from_torch(model, 100, in_channels=1))["total"]
    assert (total["rf"], total["jump"], total["start"], total["out_size"]) == (15, 1, -7.0, 100)
    assert gradient_fields(model, 1, [100]) == ([15], [1.0], [-7.0])


# ------------------------------------------------------------------ layers one by one

def test_transposed_convolutions_at_rank_1_and_3():
    """ConvTranspose1d/3d after a strided conv: every unit of a window (all phases) reads exactly the
    field its phase says; sizes, params and MACs as torch's."""
    for rank, size in ((1, [40]), (3, [10, 12, 14])):
        conv = getattr(nn, f"Conv{rank}d")
        up = getattr(nn, f"ConvTranspose{rank}d")
        kernel = [3, 4, 2][:rank] if rank == 3 else [4]
        model = nn.Sequential(conv(2, 3, 3, 2), up(3, 2, kernel, 2, [1, 1, 0][:rank], [1, 0, 1][:rank]),
                              conv(2, 2, [3, 1, 3][:rank] if rank == 3 else 3, padding=1))
        graph = from_torch(model, size if rank == 3 else size[0], in_channels=2)
        result = rfsweep.analyze(graph)
        total = result["total"]
        with torch.no_grad():
            shape = model(torch.zeros(1, 2, *size)).shape[2:]
        assert _axes(total["out_size"], rank) == list(shape)
        assert total["params"] == numel(model)
        assert total["macs"] == half_flops(model, torch.zeros(1, 2, *size))
        lin = _linearised(model)
        units = [tuple(min(n // 2 + i, n - 1) for n in shape) for i in range(-2, 3)]
        _, supports = _supports(lin, 2, size, units)
        sizes = [max(s[a][1] - s[a][0] + 1 for s in supports) for a in range(rank)]
        assert _axes(total["rf"], rank) == sizes
        period = _axes(total.get("period", 1), rank)
        assert max(period) == 2  # the up-sampling makes two kinds of unit per axis


@pytest.mark.parametrize("rank", [1, 3])
def test_adaptive_pools_a_window_when_the_size_divides_else_refused(rank):
    conv = getattr(nn, f"Conv{rank}d")
    size = [24] if rank == 1 else [8, 12, 16]  # windows of 6; of 2, 3 and 4
    window = nn.Sequential(conv(1, 2, 3, padding=1), getattr(nn, f"AdaptiveAvgPool{rank}d")(4))
    total = rfsweep.analyze(from_torch(window, size if rank == 3 else 24, in_channels=1))["total"]
    (rf, jump, start), clipped = _fields_at(_linearised(window), 1, size)  # its window depends on the size
    assert not clipped
    assert [_axes(total["rf"], rank), _axes(total["jump"], rank), _axes(total["start"], rank)] == [rf, jump, start]
    whole = nn.Sequential(conv(1, 2, 3), getattr(nn, f"AdaptiveMaxPool{rank}d")(1))
    graph = from_torch(whole, size if rank == 3 else 24, in_channels=1)
    assert graph["nodes"][-1]["type"] == "global_pool"
    uneven = nn.Sequential(conv(1, 2, 3, padding=1), getattr(nn, f"AdaptiveAvgPool{rank}d")(5))
    with pytest.raises(Unsupported, match=r"AdaptiveAvgPool.d at '1'.*different sizes"):
        from_torch(uneven, size if rank == 3 else 24, in_channels=1)


def test_norms_count_their_parameters():
    """GroupNorm (2C when affine), InstanceNorm (affine or not), BatchNorm1d/3d, and LayerNorm
    without a bias (issue 17: C parameters, not 2C) against numel."""
    layers = [nn.Conv1d(2, 6, 3), nn.GroupNorm(3, 6), nn.InstanceNorm1d(6, affine=True), nn.InstanceNorm1d(6),
              nn.BatchNorm1d(6), nn.GroupNorm(2, 6, affine=False)]
    model = nn.Sequential(*layers)
    assert rfsweep.analyze(from_torch(model, 30, in_channels=2))["total"]["params"] == numel(model) == 42 + 3 * 12

    class ChannelsLastNorm(nn.Module):
        def __init__(self, bias):
            super().__init__()
            self.conv = nn.Conv3d(2, 4, 1)
            self.norm = nn.LayerNorm(4, bias=bias)

        def forward(self, x):
            return self.norm(self.conv(x).permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)

    for bias in (True, False):
        model = ChannelsLastNorm(bias)
        assert rfsweep.analyze(from_torch(model, 6, in_channels=2))["total"]["params"] == numel(model) \
            == 12 + (8 if bias else 4)


def test_bias_free_layer_norm_functional_and_2d():
    """F.layer_norm with a weight and no bias, and nn.LayerNorm(bias=False) channels-last on an image."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.gamma = nn.Parameter(torch.ones(8))
            self.norm = nn.LayerNorm(8, bias=False)

        def forward(self, x):
            x = self.conv(x).permute(0, 2, 3, 1)
            x = F.layer_norm(x, (8,), self.gamma, None)
            return self.norm(x).permute(0, 3, 1, 2)

    model = Net()
    assert rfsweep.analyze(from_torch(model, 16))["total"]["params"] == numel(model) == 3 * 9 * 8 + 8 + 8 + 8


@pytest.mark.parametrize("how", ["new", "old"])
def test_weight_normalised_convolutions_count_g_and_v(how):
    model = nn.Sequential(_conv(1, 1, 4, 5, norm=how), nn.ReLU(), _conv(1, 4, 4, 3, dilation=2, norm=how))
    total = rfsweep.analyze(from_torch(model, 50, in_channels=1))["total"]
    assert total["params"] == numel(model) == (20 + 4 + 4) + (48 + 4 + 4)
    assert total["macs"] == half_flops(model, torch.zeros(1, 1, 50))
    assert total["rf"] == 9
    node = from_torch(model, 50, in_channels=1)["nodes"][0]
    assert "fixed_weights" not in node  # its weight is learned, through g and v


def test_a_locuslab_tcn_equals_the_catalog_tcn():
    """locuslab/TCN's TemporalBlock (weight_norm, padding then Chomp1d, a 1x1 downsample) imported from
    torch: the catalog's RF and start, and its params plus the weight-norm g vectors it leaves out."""
    k, levels, hidden = 7, 8, 25
    blocks, c_in = [], 1

    class Block(nn.Module):
        def __init__(self, c_in, d):
            super().__init__()
            self.conv1 = nn.utils.weight_norm(nn.Conv1d(c_in, hidden, k, padding=(k - 1) * d, dilation=d))
            self.conv2 = nn.utils.weight_norm(nn.Conv1d(hidden, hidden, k, padding=(k - 1) * d, dilation=d))
            self.downsample = nn.Conv1d(c_in, hidden, 1) if c_in != hidden else None
            self.chomp = (k - 1) * d

        def forward(self, x):
            out = F.relu(self.conv1(x)[:, :, :-self.chomp].contiguous())
            out = F.relu(self.conv2(out)[:, :, :-self.chomp].contiguous())
            return F.relu(out + (x if self.downsample is None else self.downsample(x)))

    for i in range(levels):
        blocks.append(Block(c_in, 2 ** i))
        c_in = hidden
    model = nn.Sequential(*blocks)
    ours = rfsweep.analyze(from_torch(model, 784, in_channels=1))["total"]
    theirs = rfsweep.analyze(arch_path("tcn"), end_point="tcn.network.7.add")["total"]
    for key in ("rf", "jump", "start", "out_size"):
        assert ours[key] == theirs[key], key
    g_count = sum(m.weight_g.numel() for b in blocks for m in (b.conv1, b.conv2))
    assert ours["params"] == numel(model) == theirs["params"] + g_count
    assert ours["macs"] == half_flops(model, torch.zeros(1, 1, 784))


def test_input_size_must_match_the_rank():
    model = nn.Sequential(nn.Conv3d(1, 2, 3))
    with pytest.raises(RfsweepError, match=r"\(d, h, w\) for this 3-D model \(its first layer: 0 \(Conv3d\)\)"):
        from_torch(model, [16, 16], in_channels=1)
    graph = from_torch(model, [4, 8, 16], in_channels=1)
    assert graph["input_size"] == [4, 8, 16] and graph["rank"] == 3
    assert rfsweep.analyze(graph)["total"]["out_size"] == [2, 6, 14]
    with pytest.raises(RfsweepError, match=r"\[length\] for this 1-D model"):
        from_torch(nn.Conv1d(1, 2, 3), [1, 200], in_channels=1)


# ------------------------------------------------------------------ torchvision's video models

@pytest.mark.parametrize("name", ["r3d_18", "r2plus1d_18"])
def test_torchvision_video_models(name):
    from rfsweep.torch_import.targets import torchvision_compatible

    torchvision_compatible()
    video = pytest.importorskip("torchvision.models.video")  # the test extra; CI installs it
    with torch.device("meta"):
        model = getattr(video, name)(weights=None)
    graph = from_torch(model, [16, 112, 112])
    total = rfsweep.analyze(graph)["total"]
    assert total["params"] == numel(model)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.empty(1, 3, 16, 112, 112, device="meta"))
    assert 2 * total["macs"] == counter.get_total_flops()
    catalog = rfsweep.analyze(arch_path("r3d_18"))["total"]
    # R(2+1)D factorises each 3x3x3 conv into 1x3x3 then 3x1x1: the same field as R3D's
    for key in ("rf", "jump", "start", "out_size"):
        assert total[key] == catalog[key], key
    if name == "r3d_18":
        assert (total["params"], total["macs"]) == (catalog["params"], catalog["macs"])


# ------------------------------------------------------------------ padding a channels-last map

def test_padding_a_channels_last_map_pads_its_spatial_axes():
    """F.pad on (B, H, W, C) pads C, then W, then H (its pairs start at the last dim): the same graph
    field as the NCHW pad; a pad of the channels is refused, naming the dim."""
    class Last(nn.Module):
        def __init__(self, pad):
            super().__init__()
            self.pad, self.conv = pad, nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(F.pad(x.permute(0, 2, 3, 1), self.pad).permute(0, 3, 1, 2))

    class First(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(F.pad(x, (1, 2, 3, 0)))

    last, first = Last((0, 0, 1, 2, 3, 0)), First()
    ours = rfsweep.analyze(from_torch(last, [20, 24]))["total"]
    assert ours == rfsweep.analyze(from_torch(first, [20, 24]))["total"]
    assert _axes(ours["out_size"], 2) == list(last(torch.zeros(1, 3, 20, 24)).shape[2:])
    assert (ours["start"], ours["rf"]) == ([-2.0, 0.0], 3)
    with pytest.raises(Unsupported, match="padding dim 3, which holds the channels"):
        from_torch(Last((1, 1)), 20)


@pytest.mark.parametrize("rank, mode", [(1, "nearest"), (1, "linear"), (3, "nearest"), (3, "trilinear")])
def test_upsampling_at_rank_1_and_3(rank, mode):
    """nn.Upsample by 2 between strided convs: sizes as torch's, and the largest field over a window of
    units (both phases) as the gradient's; 2-D-only modes are refused at other ranks (by torch itself)."""
    conv = getattr(nn, f"Conv{rank}d")
    size = [40] if rank == 1 else [12, 14, 16]
    model = nn.Sequential(conv(1, 2, 3, 2), nn.Upsample(scale_factor=2, mode=mode), conv(2, 2, 3, padding=1))
    total = rfsweep.analyze(from_torch(model, size if rank == 3 else size[0], in_channels=1))["total"]
    with torch.no_grad():
        shape = model(torch.zeros(1, 1, *size)).shape[2:]
    assert _axes(total["out_size"], rank) == list(shape)
    units = [tuple(n // 2 + i for n in shape) for i in range(-2, 3)]
    _, supports = _supports(_linearised(model), 1, size, units)
    assert _axes(total["rf"], rank) == [max(s[a][1] - s[a][0] + 1 for s in supports) for a in range(rank)]
    wrong = nn.Sequential(conv(1, 2, 3), nn.Upsample(scale_factor=2, mode="bilinear"))
    with pytest.raises(Unsupported, match=r"Upsample at '1'.*bilinear"):
        from_torch(wrong, size if rank == 3 else size[0], in_channels=1)


def test_cli_explains_torch_models_at_rank_1_and_3(capsys):
    from cli_helpers import run_cli

    nets = Path(__file__).parent / "torch_nets.py"
    code, out, err = run_cli(capsys, "explain", "--torch", f"{nets}:Audio1d", "--in-channels", "1",
                             "--input-size", "16000", "--format", "json")
    assert code == 0, err
    total = json.loads(out)["total"]
    # Audio1d by hand: conv 9/2 (8000 units), pool 3/2 (3999), conv 5 dilated 2, conv 3: rf 9 + 2*2 + 8*4 + 2*4
    assert (total["rf"], total["jump"], total["out_size"]) == (53, 4, 3999)
    code, out, err = run_cli(capsys, "explain", "--torch", f"{nets}:Volume3d", "--in-channels", "1",
                             "--input-size", "8_32_32", "--format", "json")
    assert code == 0, err
    total = json.loads(out)["total"]
    assert (total["rf"], total["jump"], total["out_size"]) == ([3, 5, 5], [1, 4, 4], [6, 8, 8])
    code, out, err = run_cli(capsys, "explain", "--torch", f"{nets}:Volume3d", "--in-channels", "1",
                             "--input-size", "32_32")
    assert code == 2 and err.startswith("error: input_size must be") and "Conv3d" in err
    code, out, err = run_cli(capsys, "explain", "--torch", f"{nets}:Audio1d", "--in-channels", "1", "--rank", "2")
    assert code == 2 and "1-D model" in err and "Traceback" not in err  # not a 2-D reading of its kernels
    code, out, err = run_cli(capsys, "explain", "--torch", f"{nets}:Audio1d", "--in-channels", "1", "--rank", "1",
                             "--format", "json")
    assert code == 0 and json.loads(out)["total"]["rf"] == 53


# ------------------------------------------------------------------ attention over a signal's samples

class Sdpa1d(nn.Module):
    """A strided Conv1d stem, then pre-norm self-attention over the samples (F.sdpa), a residual."""

    def __init__(self, c=8, heads=2):
        super().__init__()
        self.stem, self.norm = nn.Conv1d(1, c, 10, 5), nn.LayerNorm(c)
        self.qkv, self.proj, self.heads = nn.Linear(c, 3 * c), nn.Linear(c, c), heads
        self.post = nn.Conv1d(c, c, 3, padding=1)

    def forward(self, x):
        x = self.stem(x).transpose(1, 2)
        B, N, C = x.shape
        qkv = self.qkv(self.norm(x)).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)
        return self.post((x + self.proj(y)).transpose(1, 2))


class Mha1d(nn.Module):
    """nn.MultiheadAttention over the samples, its output read with [0]."""

    def __init__(self, c=8):
        super().__init__()
        self.stem, self.post = nn.Conv1d(1, c, 10, 5), nn.Conv1d(c, c, 3)
        self.attn = nn.MultiheadAttention(c, 2, batch_first=True)

    def forward(self, x):
        x = self.stem(x).transpose(1, 2)
        return self.post((x + self.attn(x, x, x, need_weights=False)[0]).transpose(1, 2))


class Unpack1d(Mha1d):
    """The same, its output unpacked, after control flow on a shape (the meta-device path)."""

    def forward(self, x):
        x = self.stem(x).transpose(1, 2)
        if x.shape[1] > 0:
            y, _ = self.attn(x, x, x, need_weights=False)
        return self.post((x + y).transpose(1, 2))


class Manual1d(nn.Module):
    """softmax(q^T k) applied as v @ attn^T in the (B, C, L) layout."""

    def __init__(self, c=8):
        super().__init__()
        self.stem, self.q, self.k, self.v = nn.Conv1d(1, c, 10, 5), nn.Conv1d(c, c, 1), nn.Conv1d(c, c, 1), \
            nn.Conv1d(c, c, 1)

    def forward(self, x):
        x = self.stem(x)
        attn = (self.q(x).transpose(1, 2) @ self.k(x)).softmax(-1)
        return x + self.v(x) @ attn.transpose(1, 2)


def _meta_half_flops(model, shape):
    """flop_counter / 2 on the meta device (there it counts scaled_dot_product_attention's matmuls)."""
    import copy

    meta = copy.deepcopy(model).to("meta")
    return half_flops(meta, torch.zeros(shape, device="meta"))


@pytest.mark.parametrize("build", [Sdpa1d, Mha1d, Unpack1d, Manual1d])
def test_attention_over_a_signal(build):
    """A rank-1 map is its own token sequence: F.scaled_dot_product_attention, nn.MultiheadAttention
    (its output indexed or unpacked, as torch returns (output, weights)) and softmax(q^T k) give a
    global node; params are numel (the in- and out-projections counted once), MACs flop_counter's."""
    model = build()
    graph = from_torch(model, 200, in_channels=1)
    total = rfsweep.analyze(graph)["total"]
    assert graph["rank"] == 1 and total["global_from"] is not None
    assert total["params"] == numel(model)
    assert total["macs"] == _meta_half_flops(model, (1, 1, 200))
    with torch.no_grad():
        assert total["out_size"] == model(torch.zeros(1, 1, 200)).shape[-1]
    assert total["rf"] >= 200
