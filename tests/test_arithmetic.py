"""The arithmetic of `rfsweep.analyze` against a network built with NumPy (tests/naive.py).

Property tests draw hundreds of random stacks and compare every per-layer and
total figure; hand cases pin well-known numbers that were worked out on paper.
"""

from __future__ import annotations

import json
import math
from math import gcd

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import rfsweep
from rfsweep import RfsweepError, analyze, load_stack

from naive import count_windows, oracle_stack

# ------------------------------------------------------------------ helpers

PER_AXIS_LAYER = ("kernel", "stride", "padding", "dilation", "out_size", "rf", "jump", "start")
PER_AXIS_TOTAL = ("rf", "jump", "start", "out_size", "eff_padding", "erf_std", "erf_ratio")


def torch_out_size(n, k, s, p, d, ceil_mode):
    """PyTorch's aten/src/ATen/native/Pool.h pooling_output_shape_pad_lr, transcribed.

    (For convolutions, ceil_mode is False and this is conv's formula too.)
    """
    def div_rtn(x, y):  # C division rounded toward negative infinity
        return x // y

    out = div_rtn(n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0), s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def pair(value, square):
    """An analyze() per-axis figure as (h, w), checking its shape: scalar iff square."""
    if square:
        assert not isinstance(value, (list, tuple)), f"square stack gave a per-axis list {value!r}"
        return (value, value)
    assert isinstance(value, list) and len(value) == 2, f"non-square stack gave {value!r}"
    return tuple(value)


def is_square(layers, hw):
    """Square iff the input and every spatial field of every (resolved) layer are."""
    if hw[0] != hw[1]:
        return False
    return all(row[key][0] == row[key][1] for row in layers for key in ("kernel", "stride", "padding", "dilation"))


def assert_matches_oracle(result, oracle, hw, in_channels):
    """Every figure of analyze()'s object equals what the NumPy network measured."""
    square = is_square(oracle["layers"], hw)
    assert pair(result["input"]["size"], square) == tuple(hw)
    assert result["input"]["channels"] == in_channels
    assert len(result["layers"]) == len(oracle["layers"])
    for i, (got, want) in enumerate(zip(result["layers"], oracle["layers"]), start=1):
        where = f"layer {i}"
        assert got["index"] == i, where
        assert got["type"] == want["type"], where
        for key in PER_AXIS_LAYER:
            g = pair(got[key], square)
            if key == "start":
                assert g == pytest.approx(want[key], abs=1e-9), (where, key, g, want[key])
            else:
                assert g == want[key], (where, key, g, want[key])
        for key in ("out_channels", "groups", "params", "macs", "flops"):
            assert got[key] == want[key], (where, key, got[key], want[key])
            assert isinstance(got[key], int), (where, key)
    total, want = result["total"], oracle["total"]
    for key in ("rf", "jump", "out_size"):
        assert pair(total[key], square) == want[key], (key, total[key], want[key])
    for key in ("start", "eff_padding"):
        assert pair(total[key], square) == pytest.approx(want[key], abs=1e-9), key
    for key in ("out_channels", "params", "macs", "flops"):
        assert total[key] == want[key], (key, total[key], want[key])
    assert pair(total["erf_std"], square) == pytest.approx(want["erf_std"], rel=1e-9, abs=1e-9)
    # erf_ratio: the ERF std over the std of a uniform box as wide as the RF (1 when rf == 1)
    ratio = tuple(std / np.std(np.arange(rf)) if rf > 1 else 1.0
                  for std, rf in zip(want["erf_std"], want["rf"]))
    assert pair(total["erf_ratio"], square) == pytest.approx(ratio, rel=1e-9)
    json.dumps(result)  # the object is plain JSON


# ------------------------------------------------------------- strategies

def divisors(n):
    return [g for g in range(1, n + 1) if n % g == 0]


@st.composite
def spatial(draw, values, rect):
    """An int, or (for rectangular layers) sometimes an [h, w] pair."""
    first = draw(values)
    if rect and draw(st.booleans()):
        return [first, draw(values)]
    return first


def as_hw(value):
    return tuple(value) if isinstance(value, list) else (value, value)


@st.composite
def random_stack(draw):
    """(layers, (h, w), in_channels, compact) with JSON-style layers, some fields left to defaults."""
    depth = draw(st.integers(1, 6))
    h = draw(st.integers(1, 64))
    w = draw(st.integers(1, 64)) if draw(st.booleans()) else h
    in_channels = draw(st.integers(1, 64))
    rect = draw(st.booleans())
    layers, tokens = [], []
    c_in = in_channels
    for _ in range(depth):
        kind = draw(st.sampled_from(["conv", "conv", "maxpool", "avgpool"]))
        layer = {"type": kind}
        if kind == "conv":
            layer["kernel"] = draw(spatial(st.integers(1, 7), rect))
            for key, values in (("stride", st.integers(1, 3)), ("padding", st.integers(0, 4)),
                                ("dilation", st.integers(1, 3))):
                if draw(st.integers(0, 3)):  # 1 in 4 left to the default
                    layer[key] = draw(spatial(values, rect))
            if draw(st.integers(0, 4)):
                c_out = draw(st.integers(1, 64))
                groups = draw(st.sampled_from(divisors(gcd(c_in, c_out))))
            else:  # depthwise, possibly with a channel multiplier
                c_out = c_in * draw(st.sampled_from([1, 1, 2] if c_in <= 32 else [1]))
                groups = c_in
            if c_out != c_in or draw(st.booleans()):
                layer["out_channels"] = c_out
            depthwise = groups == c_in and c_in > 1 and draw(st.booleans())
            if groups != 1 or draw(st.booleans()):
                layer["groups"] = groups
            if draw(st.integers(0, 3)) == 0:
                layer["bias"] = False
            elif draw(st.booleans()):
                layer["bias"] = True
            c_in = c_out
        else:
            kh, kw = as_hw(draw(spatial(st.integers(1, 5), rect)))
            layer["kernel"] = kh if kh == kw else [kh, kw]
            if draw(st.integers(0, 3)):
                layer["stride"] = draw(spatial(st.integers(1, 3), rect))
            if draw(st.integers(0, 3)):
                ph = draw(st.integers(0, kh // 2))
                pw = draw(st.integers(0, kw // 2)) if rect else ph
                layer["padding"] = ph if ph == pw else [ph, pw]
            if draw(st.booleans()):
                layer["ceil_mode"] = draw(st.booleans())
            depthwise = False
        layers.append(layer)
        tokens.append(compact_token(layer, depthwise))
    return layers, (h, w), in_channels, ",".join(tokens)


def compact_token(layer, depthwise=False):
    """The same layer in the compact grammar, written independently of rfsweep."""
    def num(value):
        return f"{value[0]}_{value[1]}" if isinstance(value, list) else str(value)

    if layer["type"] == "conv":
        text = ("dw" if depthwise else "c") + num(layer["kernel"])
    else:
        text = ("mp" if layer["type"] == "maxpool" else "ap") + num(layer["kernel"])
    for key, letter in (("stride", "s"), ("padding", "p"), ("dilation", "d"), ("out_channels", "x")):
        if key in layer:
            text += letter + num(layer[key])
    if "groups" in layer and not depthwise:
        text += f"g{layer['groups']}"
    if layer.get("bias") is False:
        text += "nb"
    if layer.get("ceil_mode"):
        text += "ceil"
    return text


def input_arg(hw):
    return hw[0] if hw[0] == hw[1] else list(hw)


# ---------------------------------------------------------- property tests

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_stack())
@example(([{"type": "maxpool", "kernel": 3, "stride": 3, "ceil_mode": True}], (2, 2), 1, "mp3s3ceil"))
@example(([{"type": "maxpool", "kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True}], (5, 5), 1,
          "mp2s2p1ceil"))
@example(([{"type": "conv", "kernel": 3, "padding": 0}, {"type": "conv", "kernel": 7, "padding": 0}],
          (5, 5), 1, "c3p0,c7p0"))
def test_random_stacks_match_numpy_network(case):
    layers, hw, in_channels, compact = case
    oracle = oracle_stack(layers, hw, in_channels)

    # the NumPy network's window counts agree with PyTorch's own formula, layer by layer
    n_h, n_w = hw
    for i, layer in enumerate(oracle["layers"]):
        for axis, n in enumerate((n_h, n_w)):
            args = (n, layer["kernel"][axis], layer["stride"][axis], layer["padding"][axis],
                    layer["dilation"][axis], layer["type"] != "conv" and bool(layers[i].get("ceil_mode")))
            assert layer["out_size"][axis] == torch_out_size(*args)
        n_h, n_w = layer["out_size"]
    if oracle["valid"]:
        assert oracle["total"]["erf_support"] == oracle["total"]["rf"]

    for source in (layers, compact):
        if not oracle["valid"]:
            with pytest.raises(RfsweepError, match=rf"\blayer {oracle['bad_layer']}\b"):
                analyze(source, input_arg(hw), in_channels)
            continue
        result = analyze(source, input_arg(hw), in_channels)
        assert_matches_oracle(result, oracle, hw, in_channels)

    if oracle["valid"]:
        # the resolved Stack round-trips through its own compact form
        stack = load_stack(layers, input_arg(hw), in_channels)
        again = load_stack(stack.compact(), input_arg(hw), in_channels)
        assert analyze(again) == analyze(stack)


@st.composite
def valid_stack(draw):
    """Stacks biased towards staying valid: big inputs, mostly stride 1, 'same' padding."""
    depth = draw(st.integers(1, 6))
    h = draw(st.integers(24, 64))
    w = draw(st.sampled_from([h, draw(st.integers(24, 64))]))
    in_channels = draw(st.integers(1, 16))
    layers = []
    c_in = in_channels
    for _ in range(depth):
        kind = draw(st.sampled_from(["conv", "conv", "conv", "maxpool", "avgpool"]))
        if kind == "conv":
            kh, kw = draw(st.integers(1, 7)), draw(st.sampled_from([None, *range(1, 8)]))
            kw = kh if kw is None else kw
            d = draw(st.integers(1, 3))
            c_out = draw(st.integers(1, 32))
            layers.append({"type": "conv", "kernel": [kh, kw], "stride": draw(st.sampled_from([1, 1, 2, 3])),
                           "dilation": d, "out_channels": c_out,
                           "groups": draw(st.sampled_from(divisors(gcd(c_in, c_out)))),
                           "bias": draw(st.booleans())})
            c_in = c_out
        else:
            k = draw(st.integers(1, 5))
            layers.append({"type": kind, "kernel": k, "stride": draw(st.integers(1, 3)),
                           "padding": draw(st.integers(0, k // 2)), "ceil_mode": draw(st.booleans())})
    return layers, (h, w), in_channels


@settings(max_examples=150, deadline=None)
@given(valid_stack())
def test_mostly_valid_stacks_match_numpy_network(case):
    layers, hw, in_channels = case
    oracle = oracle_stack(layers, hw, in_channels)
    if not oracle["valid"]:
        with pytest.raises(RfsweepError, match=rf"\blayer {oracle['bad_layer']}\b"):
            analyze(layers, input_arg(hw), in_channels)
        return
    assert_matches_oracle(analyze(layers, input_arg(hw), in_channels), oracle, hw, in_channels)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 80), k=st.integers(1, 7), s=st.integers(1, 4), d=st.integers(1, 3),
       p=st.integers(0, 4), kind=st.sampled_from(["conv", "maxpool", "avgpool"]), ceil=st.booleans())
def test_single_layer_out_size(n, k, s, d, p, kind, ceil):
    """One layer, one axis: analyze == sliding-window count == PyTorch's formula."""
    if kind != "conv":
        d, p = 1, min(p, k // 2)
    else:
        ceil = False
    layer = {"type": kind, "kernel": k, "stride": s, "padding": p}
    if kind == "conv":
        layer["dilation"] = d
    else:
        layer["ceil_mode"] = ceil
    want = count_windows(n, k, s, p, d, ceil)
    assert want == max(0, torch_out_size(n, k, s, p, d, ceil))
    if want < 1:
        with pytest.raises(RfsweepError, match=r"\blayer 1\b"):
            analyze([layer], n, 1)
    else:
        total = analyze([layer], n, 1)["total"]
        assert total["out_size"] == want
        assert total["rf"] == d * (k - 1) + 1
        assert total["jump"] == s


# ------------------------------------------------------------- hand cases

VGG16 = ("c3x64,c3x64,mp2,c3x128,c3x128,mp2,c3x256,c3x256,c3x256,mp2,"
         "c3x512,c3x512,c3x512,mp2,c3x512,c3x512,c3x512,mp2")


def test_three_3x3_vs_one_7x7():
    three = analyze("c3x64,c3x64,c3x64", 224, 64)["total"]
    one = analyze("c7x64", 224, 64)["total"]
    # 3x3 conv, 64 -> 64: 9*64*64 = 36,864 weights + 64 biases = 36,928; three of them: 110,784
    assert three["rf"] == 7 == one["rf"]            # 3 + 2 + 2 = 7
    assert three["params"] == 110_784
    # 7x7 conv, 64 -> 64: 49*64*64 = 200,704 + 64 = 200,768
    assert one["params"] == 200_768
    assert three["params"] / one["params"] == pytest.approx(0.5518, abs=1e-4)
    # 'same' padding keeps 224: MACs = weights * 224*224
    assert three["macs"] == 3 * 36_864 * 224 * 224 == 5_549_064_192
    assert one["macs"] == 200_704 * 224 * 224 == 10_070_523_904
    assert three["jump"] == 1 and three["start"] == 0 and three["eff_padding"] == 3
    # ERF: three boxes of 3, variance 3 * (9-1)/12 = 2, std sqrt(2); one box of 7: (49-1)/12 = 4, std 2
    assert three["erf_std"] == pytest.approx(math.sqrt(2))
    assert one["erf_std"] == pytest.approx(2.0)
    assert three["erf_ratio"] == pytest.approx(math.sqrt(2) / 2)


def test_vgg16_features_at_224():
    result = analyze(VGG16, 224, 3)
    total = result["total"]
    # RF: 3,5 | pool +1 -> 6 (jump 2) | +4,+4 -> 14 | +2 -> 16 (jump 4) | +8*3 -> 40 | +4 -> 44 (jump 8)
    #     | +16*3 -> 92 | +8 -> 100 (jump 16) | +32*3 -> 196 | +16 -> 212 (jump 32)
    assert total["rf"] == 212
    assert total["jump"] == 32
    # start: 'same' convs do not move it; each 2x2 pool moves it by 0.5*jump: 0.5+1+2+4+8 = 15.5
    assert total["start"] == 15.5
    assert total["eff_padding"] == 90          # (212-1)/2 - 15.5 = 90 (Distill 2019)
    assert total["out_size"] == 7              # 224 / 2**5
    assert total["out_channels"] == 512
    assert total["params"] == 14_714_688       # torchvision vgg16().features
    assert total["macs"] == 15_346_630_656     # the well-known 15.35 GMACs of VGG-16's convs
    assert total["flops"] == 2 * 15_346_630_656
    assert [row["rf"] for row in result["layers"]][:6] == [3, 5, 6, 10, 14, 16]
    assert [row["out_size"] for row in result["layers"] if row["type"] == "maxpool"] == [112, 56, 28, 14, 7]


def test_contract_worked_example():
    result = analyze("c7s2p3x64", 224, 3)
    layer = result["layers"][0]
    assert result["input"] == {"size": 224, "channels": 3}
    # out = floor((224 + 6 - 7) / 2) + 1 = 111 + 1 = 112
    expected = {"index": 1, "type": "conv", "kernel": 7, "stride": 2, "padding": 3, "dilation": 1,
                "groups": 1, "out_channels": 64, "out_size": 112, "rf": 7, "jump": 2, "start": 0.0,
                # 7*7*3*64 = 9,408 weights + 64 biases; MACs 9,408 * 112*112 = 118,013,952
                "params": 9472, "macs": 118_013_952, "flops": 236_027_904}
    assert {key: layer[key] for key in expected} == expected
    assert result["total"]["eff_padding"] == 3.0
    same = analyze([{"type": "conv", "kernel": 7, "stride": 2, "padding": 3, "out_channels": 64}], 224, 3)
    assert same == result


def test_dilated_stack():
    result = analyze("c3,c3d2,c3d4", 32, 8)
    # default padding d*(k-1)//2 = 1, 2, 4 keeps 32; RF 3, 3 + 2*2 = 7, 7 + 2*4 = 15
    assert [row["rf"] for row in result["layers"]] == [3, 7, 15]
    assert [row["padding"] for row in result["layers"]] == [1, 2, 4]
    assert [row["out_size"] for row in result["layers"]] == [32, 32, 32]
    total = result["total"]
    assert total["start"] == 0 and total["jump"] == 1 and total["eff_padding"] == 7
    # 3x3 conv 8 -> 8: 9*8*8 + 8 = 584 each
    assert total["params"] == 3 * 584
    # ERF variance: (9-1)/12 * (1^2 + 2^2 + 4^2) = 2/3 * 21 = 14
    assert total["erf_std"] == pytest.approx(math.sqrt(14))


def test_dilated_unpadded():
    total = analyze("c3d2p0", 10, 1)["total"]
    # k_eff = 2*2 + 1 = 5; out = 10 - 5 + 1 = 6; first unit sees pixels 0..4, centre 2
    assert total["out_size"] == 6
    assert total["rf"] == 5
    assert total["start"] == 2.0
    assert total["eff_padding"] == 0.0


@pytest.mark.parametrize("stack, n, k, s, p, out", [
    ("mp2s2", 5, 2, 2, 0, 2),          # floor(3/2) + 1 = 2
    ("mp2s2ceil", 5, 2, 2, 0, 3),      # ceil(3/2) + 1 = 3: the last window starts at 4, inside the input
    ("mp3s2p1", 112, 3, 2, 1, 56),     # ResNet stem: floor(111/2) + 1
    ("mp3s2p1ceil", 112, 3, 2, 1, 57),  # ceil(111/2) + 1 = 57; window 56 starts at 112 < 112 + 1: kept
    ("mp3s2ceil", 112, 3, 2, 0, 56),   # GoogLeNet: ceil(109/2) + 1 = 56 (floor mode gives 55)
    ("mp3s2", 112, 3, 2, 0, 55),
    ("mp2s2p1ceil", 5, 2, 2, 1, 3),    # ceil(5/2) + 1 = 4, but window 3 would start at 6 >= 5 + 1: dropped
    ("ap3s2p1ceil", 6, 3, 2, 1, 4),    # ceil(5/2) + 1 = 4; window 3 starts at 6 < 6 + 1: kept
    ("mp3s3ceil", 2, 3, 3, 0, 1),      # PyTorch: div_rtn(2 - 2 - 1 + 2, 3) + 1 = 1; the window overhangs
    ("mp2ceil", 1, 2, 2, 0, 1),        # nn.MaxPool2d(2, ceil_mode=True) on a 1x1 map gives 1x1
    ("mp3s3", 2, 3, 3, 0, 0),          # ... but in floor mode it is an error
])
def test_ceil_mode_pools(stack, n, k, s, p, out):
    ceil = stack.endswith("ceil")
    assert torch_out_size(n, k, s, p, 1, ceil) == out
    assert count_windows(n, k, s, p, 1, ceil) == out
    if out < 1:
        with pytest.raises(RfsweepError, match=r"\blayer 1\b"):
            analyze(stack, n, 3)
        return
    result = analyze(stack, n, 3)
    assert result["total"]["out_size"] == out
    assert result["total"]["rf"] == k
    assert result["total"]["jump"] == s
    assert result["total"]["params"] == 0 and result["total"]["macs"] == 0


def test_pool_defaults_follow_pytorch():
    layer = analyze("mp3", 9, 4)["layers"][0]
    assert layer["stride"] == 3 and layer["padding"] == 0 and layer["out_channels"] == 4
    assert layer["out_size"] == 3 and layer["jump"] == 3 and layer["start"] == 1.0


def test_rectangular_inception_kernel():
    result = analyze("c1_7p0_3x192", 17, 192)
    layer = result["layers"][0]
    assert layer["kernel"] == [1, 7] and layer["padding"] == [0, 3]
    assert layer["out_size"] == [17, 17]
    assert layer["rf"] == [1, 7]
    # 1*7*192*192 = 258,048 weights + 192 biases; MACs 258,048 * 17*17
    assert layer["params"] == 258_240
    assert layer["macs"] == 258_048 * 289 == 74_575_872
    assert result["total"]["erf_ratio"][0] == 1.0


def test_rectangular_input():
    result = analyze("c3s2", [32, 16], 3)
    assert result["input"]["size"] == [32, 16]
    # floor((32 + 2 - 3)/2) + 1 = 16, floor((16 + 2 - 3)/2) + 1 = 8
    assert result["total"]["out_size"] == [16, 8]
    assert result["total"]["rf"] == [3, 3]
    assert result["total"]["macs"] == 9 * 3 * 3 * 16 * 8


def test_depthwise_grouped_and_no_bias():
    # depthwise 3x3 on 32 channels: 9*1*32 + 32 = 320; MACs 288 * 56*56
    dw = analyze("dw3", 56, 32)["total"]
    assert dw["params"] == 320 and dw["macs"] == 288 * 56 * 56 == 903_168
    assert analyze("dw3", 56, 32)["layers"][0]["groups"] == 32
    # groups 4, 32 -> 64: 9*(32/4)*64 + 64 = 4,672
    assert analyze("c3x64g4", 56, 32)["total"]["params"] == 4_672
    # no bias: 9*3*64 = 1,728
    assert analyze("c3x64nb", 56, 3)["total"]["params"] == 1_728
    # pointwise after depthwise: MobileNet block 32 -> 64 at 112: 320 + (32*64 + 64) = 2,432
    assert analyze("dw3,c1x64", 112, 32)["total"]["params"] == 2_432


def test_shrinking_layer_is_named():
    # 5 -> c3p0 -> 3 -> c7p0 -> 3 - 7 + 1 < 1
    with pytest.raises(RfsweepError, match=r"\blayer 2\b"):
        analyze("c3p0,c7p0", 5, 1)
    with pytest.raises(RfsweepError, match=r"\blayer 1\b"):
        analyze("mp4", 3, 1)


def test_public_api_accepts_stack_and_json_path(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(json.dumps({"input_size": 224, "in_channels": 3,
                                "layers": [{"type": "conv", "kernel": 7, "stride": 2, "padding": 3,
                                            "out_channels": 64}]}))
    stack = rfsweep.load_stack(str(path))
    assert isinstance(stack, rfsweep.Stack)
    assert analyze(stack) == analyze(path) == analyze("c7s2p3x64", 224, 3)
    # explicit arguments override the file's input_size
    assert analyze(str(path), input_size=112)["total"]["out_size"] == 56
