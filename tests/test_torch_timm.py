"""Real model code: timm's CNNs, ViTs and hybrids through rfsweep.from_torch, against numel (params),
torch.utils.flop_counter on the meta device (MACs = FLOPs / 2; on the meta device it counts
scaled_dot_product_attention's matmuls, which the CPU kernel does not report) and the gradient
support of a middle unit (float64, positive weights, activations, norms and max pools neutralised).

timm is in the test extra (CI installs it). Models are built on the meta device where only shapes
matter (no weight init: fast); the gradient checks build small real ones.
"""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from rfsweep.torch_import.targets import torchvision_compatible  # noqa: E402

torchvision_compatible()  # a CUDA-built torchvision wheel beside the CPU torch: see targets.py
timm = pytest.importorskip("timm")  # the test extra; CI installs it, so this never skips there
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import rfsweep  # noqa: E402
from rfsweep.errors import RfsweepError  # noqa: E402
from rfsweep.torch_import import from_torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_torch_import import _Linearise, _linearised  # noqa: E402

# name: (input size, timm kwargs, what it checks)
EXACT = {
    "resnet10t": (64, {}, "ResNet-D: deep stem, average-pool shortcut"),
    "regnetx_002": (64, {}, "RegNet: grouped convs"),
    "efficientnet_b0": (64, {}, "EfficientNet: depthwise, SE, drop path"),
    "tf_efficientnet_b0": (67, {}, "TF 'SAME' padding computed in forward (Conv2dSame)"),
    "mixnet_s": (64, {}, "MixNet: mixed kernel sizes (split, concat)"),
    "rexnet_100": (64, {}, "ReXNet: channel-padded residuals"),
    "nf_regnet_b0": (64, {}, "NF: scaled weight standardisation with a learned gain"),
    "convnext_atto": (64, {}, "ConvNeXt: layer scale, channels-last LayerNorm and Linear"),
    "fastvit_t8": (64, {}, "FastViT: reparameterisable branches, layer scale"),
    "tresnet_m": (64, {}, "TResNet: space-to-depth by view/permute, blur-pool buffers"),
    "resnest14d": (64, {}, "ResNeSt: split attention summed over its radix dim"),
    "vit_tiny_patch16_224": (64, {"img_size": 64}, "ViT: patch embedding, class token, attention"),
    "coatnet_nano_rw_224": (64, {"img_size": 64}, "CoAtNet: conv stages, then attention with a relative "
                                                  "position bias"),
    "hrnet_w18_small": (64, {}, "HRNet: parallel resolutions fused by upsampling (decoder nodes)"),
    "levit_128s": (128, {"img_size": 128}, "LeViT: BatchNorm over x.flatten(0, 1), attention with learned "
                                           "biases, subsampling attention"),
    "levit_conv_128s": (128, {"img_size": 128}, "LeViT in its conv layout: v @ attn^T"),
    "convnextv2_atto": (64, {}, "ConvNeXt V2: global response norm (x.norm over the map, addcmul)"),
    "eca_nfnet_l0": (64, {}, "ECA-NFNet: a conv1d along the pooled channels, gate.expand_as(x)"),
    "beit_base_patch16_224": (64, {"img_size": 64}, "BEiT: a qkv bias of cat(q_bias, zero buffer, v_bias)"),
    "davit_tiny": (112, {}, "DaViT: window attention (padded to whole windows), then channel attention"),
    "tiny_vit_5m_224": (112, {}, "TinyViT: window attention (7x7 windows of a padded 14x14 map), then global"),
    "mobilevit_xxs": (128, {}, "MobileViT: patch unfold into the batch, attention across patches at one "
                               "offset, fold (global from the fusion conv on)"),
    "edgenext_xx_small": (64, {}, "EdgeNeXt: a positional encoding computed from x.shape (a conv on a "
                                  "Fourier grid: MACs per image), cross-covariance attention"),
}


def _meta_model(name):
    size, kwargs, _ = EXACT[name]
    with torch.device("meta"):
        return timm.create_model(name, pretrained=False, num_classes=10, **kwargs), size


@pytest.mark.parametrize("name", list(EXACT))
def test_params_equal_numel_and_macs_equal_flop_counter(name):
    model, size = _meta_model(name)
    result = rfsweep.analyze(from_torch(model, size))
    assert result["total"]["params"] == sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.empty(1, 3, size, size, device="meta"))
    assert 2 * result["total"]["macs"] == counter.get_total_flops()


def _support(g, axis):
    line = g.abs().sum(dim=1 - axis)
    nz = torch.nonzero(line > 0).flatten()
    return int(nz[0]), int(nz[-1])


def _gradient_support(model, size):
    """The end-point map (forward_features) and the input support of its middle unit."""
    lin = _linearised(model)
    x = torch.ones((1, 3, size, size), dtype=torch.float64, requires_grad=True)
    with _Linearise():
        out = lin.forward_features(x)
    i, j = out.shape[2] // 2, out.shape[3] // 2
    (g,) = torch.autograd.grad(out[0, :, i, j].sum(), x)
    g = g[0].sum(0)
    return out.shape[2:], (i, j), (_support(g, 0), _support(g, 1))


@pytest.mark.parametrize("name", ["resnet10t", "resnest14d", "tresnet_m"])  # no SE gates: x * gate overflows
def test_field_of_a_middle_unit_equals_the_gradient_support(name):
    """The unit's field [start + i*jump - (rf-1)/2, start + i*jump + (rf-1)/2], clipped to the input,
    is exactly where the gradient is non-zero (every pixel in the window is reached)."""
    size = EXACT[name][0]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10)
    total = rfsweep.analyze(from_torch(model, size))["total"]
    shape, unit, support = _gradient_support(model, size)
    assert [total["out_size"]] * 2 == list(shape) or total["out_size"] == list(shape)
    for a in range(2):
        rf, jump, start = (v if not isinstance(v, list) else v[a] for v in (total["rf"], total["jump"],
                                                                            total["start"]))
        centre = start + unit[a] * jump
        lo, hi = max(0, math.ceil(centre - (rf - 1) / 2)), min(size - 1, math.floor(centre + (rf - 1) / 2))
        assert support[a] == (lo, hi), (name, a)


class _ConstantGate(torch.nn.Module):
    """A squeeze-excite gate fixed at 1: x * gate is x, and no gradient flows through the gate."""

    def forward(self, x):
        return torch.ones_like(x)


class _UnitGate(torch.nn.Module):
    """A gate whose value is 1 but whose gradient is the gate's own, relative: the gradient still
    reaches every pixel the gate reads, and no product of positive gates overflows float64 (in the
    positive copy a sigmoid is the identity, so x * gate squares the scale at every SE block)."""

    def forward(self, x):
        return x / x.detach()


def _set_gates(model, gate):
    for m in model.modules():
        if hasattr(m, "gate") and hasattr(m, "conv_expand" if hasattr(m, "conv_expand") else "fc2"):
            m.gate = gate()
    return model


def _without_gates(graph):
    """The graph with every squeeze-excite product reading its map only (the gate cut off): the field
    of the conv paths, which the constant-gate copy's gradient measures."""
    facts = rfsweep.analyze(graph)["nodes"]
    gates = {node["name"] for node in facts if not node.get("spatial", True)}
    cut = {**graph, "nodes": [dict(node) for node in graph["nodes"]]}
    for node in cut["nodes"]:
        if node["type"] == "mul" and gates & set(node["inputs"]):
            node["inputs"] = [name for name in node["inputs"] if name not in gates]
            node["type"] = "mul" if len(node["inputs"]) > 1 else "identity"
    return cut


def _support_at(model, module, size):
    """(output shape, middle unit, per-axis support) of the output of submodule `module`."""
    lin = _linearised(model)
    box = {}
    lin.get_submodule(module).register_forward_hook(lambda m, a, o: box.setdefault("out", o))
    x = torch.ones((1, 3, size, size), dtype=torch.float64, requires_grad=True)
    with _Linearise():
        lin.forward_features(x)
    out = box["out"]
    assert torch.isfinite(out).all()
    i, j = out.shape[2] // 2, out.shape[3] // 2
    (g,) = torch.autograd.grad(out[0, :, i, j].sum(), x)
    g = g[0].sum(0)
    return out.shape[2:], (i, j), (_support(g, 0), _support(g, 1))


@pytest.mark.parametrize("name, module, size", [
    ("efficientnet_b0", "blocks.2", 112), ("tf_efficientnet_b0", "blocks.2", 115),
    ("mixnet_s", "blocks.2", 176), ("rexnet_100", "features.5", 112)])
def test_squeeze_excite_networks_against_the_gradient_support(name, module, size):
    """EfficientNet-family fields (issue 17). With the SE gates held at 1 the gradient of a middle
    unit reaches exactly the conv paths' field (the graph with the gates cut off). With the gates
    live (value 1, gradient kept) it reaches every input pixel: the gate's global pool makes the
    field global, and the graph's field (which includes the pool's whole map) covers the input."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10)
    graph = from_torch(model, size)
    cut = rfsweep.analyze(_without_gates(graph), end_point=module)["total"]
    full = rfsweep.analyze(graph, end_point=module)["total"]
    assert _axes(full["rf"])[0] > _axes(cut["rf"])[0]  # some SE gate lies before the end-point
    shape, unit, support = _support_at(_set_gates(copy.deepcopy(model), _ConstantGate), module, size)
    assert _axes(cut["out_size"]) == list(shape)
    for a in range(2):
        rf, jump, start = (_axes(cut[key])[a] for key in ("rf", "jump", "start"))
        centre = start + unit[a] * jump
        window = (max(0, math.ceil(centre - (rf - 1) / 2)), min(size - 1, math.floor(centre + (rf - 1) / 2)))
        assert support[a] == window != (0, size - 1), (name, a)
    _, _, support = _support_at(_set_gates(copy.deepcopy(model), _UnitGate), module, size)
    assert support == ((0, size - 1), (0, size - 1))
    for a in range(2):  # unit 0's field as the graph gives it (a gated field does not move with the unit)
        rf, start = _axes(full["rf"])[a], _axes(full["start"])[a]
        assert start - (rf - 1) / 2 <= 0 and start + (rf - 1) / 2 >= size - 1


def _axes(value):
    return list(value) if isinstance(value, list) else [value, value]


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "coatnet_nano_rw_224", "edgenext_xx_small",
                                  "mobilevit_xxs", "davit_tiny"])
def test_attention_makes_the_field_global(name):
    """After the first attention every unit sees the whole input: the gradient of one output token
    reaches every pixel, and rfsweep says from which node on."""
    size, kwargs, _ = EXACT[name]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10, **kwargs)
    result = rfsweep.analyze(from_torch(model, size))
    total = result["total"]
    # CoAtNet's MBConv stages gate with squeeze-excitation (a pool of the whole map) before any attention:
    # every unit sees the whole input from its first gate on
    first = {"vit_tiny_patch16_224": "scaled_dot_product_attention", "coatnet_nano_rw_224": "stages.0.blocks.0.se.mul",
             "edgenext_xx_small": "stages.1.blocks.1.xca.matmul",  # k^T v over all tokens
             "mobilevit_xxs": "stages.2.1.conv_fusion.conv",
             "davit_tiny": "stages.0.blocks.0.1.attn.matmul"}  # the first channel attention (k^T v)  # the first conv that mixes the patch offsets
    assert total["global_from"].endswith(first[name])
    assert total["rf"] >= size
    if name == "vit_tiny_patch16_224":  # 16x16 patches, stride 16: the whole 64 pixels, and the skip
        assert (total["rf"], total["jump"], total["rf_min"]) == (64, 16, 16)  # path around every attention
    lin = _linearised(model)
    x = torch.ones((1, 3, size, size), dtype=torch.float64, requires_grad=True)
    with _Linearise():
        out = lin.forward_features(x)
    token = out[0, out.shape[1] // 2].sum() if out.dim() == 3 else out[0, :, 0, 0].sum()
    (g,) = torch.autograd.grad(token, x)
    assert bool((g[0].sum(0) != 0).all())


@pytest.mark.parametrize("name, words", [
    ("mobilevit_xxs", ["stages.4.1.transformer.0.attn.reshape", "1-unit axis"]),  # 64 px: one 2x2 patch
])
def test_refusals_name_the_op_the_module_path_and_a_way_out(name, words):
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, num_classes=10)
    with pytest.raises(RfsweepError) as info:
        from_torch(model, 64)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_shifted_windows_are_refused_not_read_as_global():
    """Swin's first block (plain windows) is exact; the second shifts the map cyclically (torch.roll)
    before its windows, so the windows at the border join opposite edges of the map: not a window
    and not global, so it is refused there, naming the op and a way out (issue 17)."""
    with torch.device("meta"):
        model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=10, img_size=112)
    with pytest.raises(RfsweepError) as info:
        from_torch(model, 112)
    message = str(info.value)
    for word in ("layers.0.blocks.1.roll", "cyclic shift", "opposite edges", "--end-point"):
        assert word in message


@pytest.mark.parametrize("name", ["levit_128s", "levit_conv_128s"])
def test_levit_is_global_from_its_first_attention(name):
    model, size = _meta_model(name)
    total = rfsweep.analyze(from_torch(model, size))["total"]
    assert total["global_from"] == "stages.0.blocks.0.attn.matmul"
    assert total["jump"] == 64 and total["rf"] >= size


def test_end_point_by_module_path():
    """`--end-point stages.1` is the output of module stages.1: the last node inside it."""
    model, size = _meta_model("convnext_atto")
    graph = from_torch(model, size)
    result = rfsweep.analyze(graph, end_point="stages.1")
    inside = [node["name"] for node in graph["nodes"] if node["name"].startswith("stages.1.")]
    assert result["output"] == inside[-1]
    assert result["total"]["out_size"] == size // 8


def test_window_attention_fields_against_the_gradient_support():
    """TinyViT's first attention stage: 7x7 windows (at 112 px its 14x14 map is two windows a side). Every unit of a middle row and column of `stages.1`'s output: its field
    from analyze's phases equals the gradient support; the field is not global there."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_torch_import import _unit_interval

    size = 112
    torch.manual_seed(0)
    model = timm.create_model("tiny_vit_5m_224", pretrained=False, num_classes=10)
    part = rfsweep.analyze(from_torch(model, size), end_point="stages.1")["total"]
    assert "global_from" not in part and part["period"] == 7
    lin = _linearised(model)
    box = {}
    lin.get_submodule("stages.1").register_forward_hook(lambda m, a, o: box.setdefault("out", o))
    x = torch.ones((1, 3, size, size), dtype=torch.float64, requires_grad=True)
    with _Linearise():
        lin.forward_features(x)
    out = box["out"]
    n = out.shape[2]
    for i, j in [(u, n // 2) for u in range(n)] + [(n // 2, u) for u in range(n)]:
        (g,) = torch.autograd.grad(out[0, :, i, j].sum(), x, retain_graph=True)
        g = g[0].sum(0)
        for axis, unit in enumerate((i, j)):
            lo, hi = _unit_interval(part, unit, axis)
            assert _support(g, axis) == (max(0, math.ceil(lo)), min(size - 1, math.floor(hi))), ((i, j), axis)


def test_swin_up_to_its_first_shifted_block():
    """`--end-point layers.0.blocks.0`: the refusal comes after it, so the graph up to it is returned.
    Params and MACs equal numel and flop_counter of patch_embed + that block run alone; the window
    fields (7x7 windows of a 28x28 channels-last map, partitioned by view/permute) equal the gradient
    support of every unit of a middle row."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_torch_import import _unit_interval

    torch.manual_seed(0)
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=10, img_size=112)
    graph = from_torch(model, 112, end_point="layers.0.blocks.0")
    part = rfsweep.analyze(graph, end_point="layers.0.blocks.0")["total"]
    head = torch.nn.Sequential(model.patch_embed, model.layers[0].blocks[0])
    assert part["params"] == sum(p.numel() for p in head.parameters())
    meta = copy.deepcopy(head).to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta.eval()(torch.empty(1, 3, 112, 112, device="meta"))
    assert 2 * part["macs"] == counter.get_total_flops()
    assert part["period"] == 7 and "global_from" not in part
    lin = _linearised(head)
    x = torch.ones((1, 3, 112, 112), dtype=torch.float64, requires_grad=True)
    with _Linearise():
        out = lin(x)  # (1, 28, 28, C): channels-last
    for j in range(28):
        (g,) = torch.autograd.grad(out[0, 14, j].sum(), x, retain_graph=True)
        g = g[0].sum(0)
        for axis, unit in ((0, 14), (1, j)):
            lo, hi = _unit_interval(part, unit, axis)
            assert _support(g, axis) == (max(0, math.ceil(lo)), min(111, math.floor(hi))), (j, axis)
    with pytest.raises(RfsweepError, match="roll"):  # an end-point past the shift is still refused
        from_torch(model, 112, end_point="layers.0.blocks.1")
