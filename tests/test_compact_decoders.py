"""Decoder layers in the compact grammar: t (transposed conv), up (upsample), ps/pu (pixel (un)shuffle), cr (crop).

Oracles: the same network written as graph JSON by hand (every field spelled
out) must analyse identically, and torch's own modules must give the same
output size and parameter count.
"""

from __future__ import annotations

import pytest

import rfsweep
from rfsweep.errors import RfsweepError
from rfsweep.graph import load_graph

torch = pytest.importorskip("torch")
nn = torch.nn


def chain(*nodes):
    return {"nodes": [{"name": str(i), "inputs": ["input" if i == 1 else str(i - 1)], **node}
                      for i, node in enumerate(nodes, start=1)]}


CASES = [
    ("c3x16,mp2,c3x32,t2x16,c3x16",
     chain({"type": "conv", "kernel": 3, "out_channels": 16}, {"type": "maxpool", "kernel": 2},
           {"type": "conv", "kernel": 3, "out_channels": 32},
           {"type": "conv_transpose", "kernel": 2, "stride": 2, "out_channels": 16},
           {"type": "conv", "kernel": 3, "out_channels": 16}),
     lambda: nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                           nn.ConvTranspose2d(32, 16, 2, 2), nn.Conv2d(16, 16, 3, padding=1))),
    ("c3x8,t3s2p1o1d1x4nb,up2bl,c1x4",
     chain({"type": "conv", "kernel": 3, "out_channels": 8},
           {"type": "conv_transpose", "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1, "dilation": 1,
            "out_channels": 4, "bias": False},
           {"type": "upsample", "scale": 2, "mode": "bilinear"}, {"type": "conv", "kernel": 1, "out_channels": 4}),
     lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ConvTranspose2d(8, 4, 3, 2, 1, 1, bias=False),
                           nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(4, 4, 1))),
    ("c3x16,ps2,cr1_2,pu2,up3bcac,up2",
     chain({"type": "conv", "kernel": 3, "out_channels": 16}, {"type": "pixel_shuffle", "factor": 2},
           {"type": "crop", "crop": [1, 2]}, {"type": "pixel_unshuffle", "factor": 2},
           {"type": "upsample", "scale": 3, "mode": "bicubic", "align_corners": True},
           {"type": "upsample", "scale": 2, "mode": "nearest"}),
     None),
]


@pytest.mark.parametrize("text,graph,_", CASES)
def test_compact_equals_the_graph_written_out(text, graph, _):
    for size in (20, 32):
        assert rfsweep.analyze(text, input_size=size) == rfsweep.analyze({**graph, "input_size": size})


@pytest.mark.parametrize("text,_,module", [case for case in CASES if case[2] is not None])
def test_compact_decoders_against_torch(text, _, module):
    net = module()
    result = rfsweep.analyze(text, input_size=24)
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 24, 24))
    assert result["total"]["out_size"] == out.shape[-1]
    assert result["total"]["params"] == sum(p.numel() for p in net.parameters())


def test_a_decoder_string_is_a_graph_and_a_plain_one_stays_a_chain():
    assert load_graph("c3,t2").chain is None
    assert load_graph("c3,mp2").chain is not None


@pytest.mark.parametrize("text,message", [
    ("c3,t2o3", "node '2': output_padding 3 must be smaller than stride 2"),
    ("c3,up2q", "layer 2: cannot parse 'up2q'"),
    ("c3,t2s2s2", "gives stride twice"),
    ("c3x5,ps2", "node '2'"),
    ("c3,cr20", "node '2': crop"),
])
def test_bad_decoder_tokens_name_the_layer(text, message):
    with pytest.raises(RfsweepError, match=message):
        rfsweep.analyze(text, input_size=16)


def test_cli_explain_a_decoder_string(capsys):
    from cli_helpers import run_cli

    code, out, err = run_cli(capsys, "explain", "c3x16,mp2,c3x32,t2x16,c3x16", "--input-size", "64")
    assert code == 0 and "each unit reads one of 2 input patterns" in out, err
    code, out, err = run_cli(capsys, "tile", "c3x16,mp2,c3x32,t2x16,c3x16", "--input-size", "64", "--tile", "32",
                             "--format", "json")
    assert code == 0, err
