"""Block spaces at rank 1 and 3 (and causal tcn/wavenet blocks): every row against the graph path.

The oracle is `rfsweep.analyze` of the row's graph (`block_graph` with the
spec's rank), walked by naive_blocks prefix by prefix; the graph path is
itself checked against torch at every rank (tests/test_rank.py). Rank 2
keeps its files byte for byte (test_blocks.py's published networks; the
`rank` key is left out of the stored spec at 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rfsweep
from rfsweep.blocks import BlockSpec, block_graph
from rfsweep.errors import RfsweepError

from cli_helpers import run_cli
from naive_blocks import naive_sweep
from test_blocks import assert_rows_equal, plain, sweep_frame

DATA = Path(__file__).resolve().parent.parent / "data"

CENTRED = [
    {"block": ["conv", "basic", "bottleneck"], "repeats": [1, 2], "kernel": [1, 3], "stride": [1, 2],
     "width": [4, 8], "expansion": [1, 2]},
    {"block": ["dwsep", "mbconv"], "repeats": [1, 2], "kernel": [3, 5], "dilation": [1, 2], "width": [8],
     "expansion": [1, 3]},
]


@pytest.mark.parametrize("rank, size, stem", [(1, 50, "c3s2x4nb"), (3, 12, "c3x4nb"), (1, [30], ""),
                                              (3, [9, 9, 9], "")])
def test_centred_blocks_at_rank_1_and_3_equal_the_graph_path(tmp_path, rank, size, stem):
    values = {"stem": stem, "input_size": size, "in_channels": 2, "stage": CENTRED}
    if not isinstance(size, list):
        values["rank"] = rank
    spec = BlockSpec.build(values)
    assert spec.rank == rank and spec.grid_total == (3 * 2 * 2 * 2 * 2 * 2) * (2 * 2 * 2 * 2 * 1 * 2)
    rows, counts = naive_sweep(spec)
    df, meta = sweep_frame(spec, tmp_path, chunk_ids=97)
    assert_rows_equal(df, rows, spec.stages)
    assert {k: meta["counts"][k] for k in counts} == counts
    assert counts["written"] > 0 and meta["spec"]["rank"] == rank


def test_rank_3_costs_by_hand():
    # one basic block, 3x3x3 convs, 4 -> 8 channels on a 6^3 map (no stem): conv1 3^3*4*8 + BN 16,
    # conv2 3^3*8*8 + 16, projection 1x1x1 4*8 + 16; MACs: every weight once per output voxel (6^3)
    spec = BlockSpec.build({"stem": "", "rank": 3, "input_size": 6, "in_channels": 4,
                            "stage": [{"block": "basic", "width": [8]}]})
    total = rfsweep.analyze(block_graph(spec, 0))["total"]
    weights = 27 * 4 * 8 + 27 * 8 * 8 + 4 * 8
    assert total["params"] == weights + 3 * 16
    assert total["macs"] == weights * 6 ** 3
    assert total["rf"] == 5 and total["out_size"] == 6


def test_rank_2_spec_keeps_its_stored_form():
    values = {"stem": "", "input_size": 8, "stage": [{"block": "basic", "width": [8]}]}
    assert "rank" not in BlockSpec.build(values).to_dict()
    assert "rank" not in BlockSpec.build({**values, "rank": 2}).to_dict()
    stored = BlockSpec.build({**values, "rank": 3}).to_dict()
    assert stored["rank"] == 3 and BlockSpec.build(stored).rank == 3


@pytest.mark.parametrize("values, message", [
    ({"rank": 4}, "rank must be 1, 2 or 3"),
    ({"input_size": [8, 16, 4, 4]}, "does not fit rank"),  # ([8, 16] is a per-axis space: test_block_axis_stride)
    ({"rank": 1, "input_size": [8, 16]}, "does not fit rank 1"),
    ({"rank": 1, "stem": "c1_3x4"}, "stem"),
])
def test_bad_rank_input(values, message):
    base = {"stem": "", "input_size": 8, "stage": [{"block": "basic", "width": [8]}]}
    with pytest.raises(RfsweepError, match=message):
        BlockSpec.build({**base, **values})


def test_graph_has_the_spec_rank():
    spec = BlockSpec.build({"stem": "c3x4nb", "rank": 1, "input_size": 40, "stage": [{"block": "basic", "width": [4]}]})
    graph = block_graph(spec, 0)
    assert graph["rank"] == 1
    result = rfsweep.analyze(graph)
    assert result["total"]["out_size"] == 40 and result["total"]["rf"] == 7
    assert np.isscalar(result["total"]["rf"])


# ------------------------------------------------------------ causal blocks: tcn and wavenet

CAUSAL_SPACES = {
    "rank1": {"stem": "c3x4nb", "rank": 1, "input_size": 60, "in_channels": 2, "stage": [
        {"block": ["tcn", "wavenet"], "repeats": [1, 3], "kernel": [2, 3], "stride": [1, 2], "dilation": [1, 2],
         "width": [4, 8], "expansion": [1, 2]},
        {"block": ["basic", "tcn"], "repeats": [1, 2], "kernel": [3], "stride": [1, 2], "width": [8]},
        {"block": ["wavenet"], "repeats": [2, 4], "kernel": [2], "width": [8, 12], "expansion": [2, 4],
         "dilation_cycle": 2}]},
    "tiny": {"stem": "c5s2x4nb", "rank": 1, "input_size": 10, "in_channels": 1, "stage": [  # unproductive convs
        {"block": ["tcn", "wavenet"], "repeats": [1, 3], "kernel": [2, 3], "dilation": [1, 3], "width": [4],
         "stride": [1, 2]},
        {"block": ["wavenet", "tcn"], "repeats": [1, 2], "kernel": [3], "dilation": [2], "width": [4, 8],
         "expansion": [1, 2], "dilation_cycle": 1}]},
    "rank3": {"stem": "", "rank": 3, "input_size": 9, "in_channels": 1, "max_params": 20_000, "stage": [
        {"block": ["tcn", "wavenet", "bottleneck"], "repeats": [1, 2], "kernel": [3], "stride": [1, 2],
         "width": [4, 8], "expansion": [1, 2]},
        {"block": ["wavenet", "tcn"], "repeats": [1, 2], "kernel": [2], "width": [4], "expansion": [1, 2]}]},
}


@pytest.mark.parametrize("name", sorted(CAUSAL_SPACES))
def test_causal_blocks_equal_the_graph_path(tmp_path, name):
    spec = BlockSpec.build(CAUSAL_SPACES[name])
    rows, counts = naive_sweep(spec)
    df, meta = sweep_frame(spec, tmp_path, chunk_ids=53)
    assert_rows_equal(df, rows, spec.stages)
    assert {k: meta["counts"][k] for k in counts} == counts
    assert counts["written"] > 0 and counts["invalid"] > 0  # wavenet at stride 2 or an odd split: invalid
    assert set(df.s1_block.astype(str)) >= {"tcn", "wavenet"}
    if name == "tiny":
        assert df.unproductive.max() > 0


def test_causal_sample_rows_are_the_full_sweep_rows(tmp_path):
    values = CAUSAL_SPACES["rank1"]
    full, _ = sweep_frame(BlockSpec.build(values), tmp_path, "full.parquet")
    sampled = BlockSpec.build({**values, "sample": 300, "seed": 5})
    df, meta = sweep_frame(sampled, tmp_path, "sample.parquet", chunk_ids=41)
    expected = full[full.config_id.isin(sampled.sample_ids())].reset_index(drop=True)
    pd.testing.assert_frame_equal(plain(df), plain(expected))
    assert meta["counts"]["enumerated"] == 300 and len(df) > 0


# ------------------------------------------------------------ torch: an independent build of the rows

def _torch_causal_network(spec, config_id):
    """The row's network in plain torch (Conv1d + F.pad on the left), built from its choices, not its graph.

    Returns (forward, modules). wavenet's tanh * sigmoid gate as the paper; tcn's ReLUs are left out,
    since a ReLU zeroes the gradient wherever its unit is negative (holes in the support).
    """
    import torch
    import torch.nn.functional as F

    torch.manual_seed(config_id)
    stages, c = [], spec.in_channels
    for row in spec.choices(config_id):
        blocks = []
        for b in range(row["repeats"]):
            k, d = row["kernel"], row["dilation"] * 2 ** (b % row["cycle"])
            s = row["stride"] if b == 0 else 1
            if row["block"] == 5:  # tcn
                w = row["width"]
                parts = {"conv1": torch.nn.Conv1d(c, w, k, stride=s, dilation=d),
                         "conv2": torch.nn.Conv1d(w, w, k, dilation=d)}
                if s != 1 or c != w:
                    parts["down"] = torch.nn.Conv1d(c, w, 1, stride=s)
            else:  # wavenet
                inner, w = row["width"] // row["expansion"], row["width"]
                parts = {"filter": torch.nn.Conv1d(c, inner, k, dilation=d), "gate": torch.nn.Conv1d(c, inner, k, dilation=d),
                         "residual": torch.nn.Conv1d(inner, inner, 1), "skip": torch.nn.Conv1d(inner, w, 1)}
                if c != inner:
                    parts["down"] = torch.nn.Conv1d(c, inner, 1)
                w = inner
            blocks.append((row["block"], (k - 1) * d, {n: m.double() for n, m in parts.items()}))
            c = w
        if blocks[0][0] == 6:
            c = row["width"]  # a wavenet stage outputs its skip sum
        stages.append(blocks)

    def forward(x):
        for blocks in stages:
            skips = []
            for kind, pad, m in blocks:
                short = m["down"](x) if "down" in m else x
                if kind == 5:
                    y = m["conv1"](F.pad(x, (pad, 0)))
                    x = m["conv2"](F.pad(y, (pad, 0))) + short
                else:
                    z = torch.tanh(m["filter"](F.pad(x, (pad, 0)))) * torch.sigmoid(m["gate"](F.pad(x, (pad, 0))))
                    skips.append(m["skip"](z))
                    x = m["residual"](z) + short
            if skips:
                x = sum(skips)
        return x

    return forward, [m for blocks in stages for _, _, parts in blocks for m in parts.values()]


TORCH_SPACE = {"stem": "", "rank": 1, "input_size": 150, "in_channels": 3, "stage": [
    {"block": ["tcn", "wavenet"], "repeats": [1, 3], "kernel": [2, 3], "stride": [1, 2], "width": [4, 8],
     "expansion": [2]},
    {"block": ["wavenet", "tcn"], "repeats": [2, 5], "kernel": [2], "width": [6], "expansion": [1, 3],
     "dilation_cycle": 3}]}


def test_causal_rows_against_torch(tmp_path):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    spec = BlockSpec.build(TORCH_SPACE)
    df, _ = sweep_frame(spec, tmp_path)
    rows = df.set_index("config_id")
    checked = 0
    groups = plain(df).groupby(["s1_block", "s1_stride", "s2_block", "s2_repeats"]).config_id
    for config_id in sorted(set(groups.first()) | set(groups.last())):  # every kind of row, twice
        forward, modules = _torch_causal_network(spec, int(config_id))
        row = rows.loc[config_id]
        assert int(row.params) == sum(p.numel() for m in modules for p in m.parameters())
        x = torch.randn((1, 3, 150), dtype=torch.float64, requires_grad=True)
        with FlopCounterMode(display=False) as counter:
            y = forward(x)
        assert int(row.macs) == counter.get_total_flops() // 2
        assert y.shape[1:] == (int(row.out_channels), int(row.out_size))
        grad, = torch.autograd.grad(y[0, :, -1].sum(), x)
        hits = torch.nonzero(grad[0].abs().sum(0)).flatten().tolist()
        last = (int(row.out_size) - 1) * int(row.jump)  # a causal field ends at the unit itself
        assert hits[-1] == last and hits[-1] - hits[0] + 1 == int(row.rf), config_id
        checked += 1
    assert checked == 24  # tcn at strides 1 and 2 or wavenet, then wavenet or tcn, 2 or 5 blocks; x2


# ------------------------------------------------------------ by hand and the catalog

def test_tcn_rf_by_hand(tmp_path):
    # Bai et al. 2018: n blocks of two causal convs of kernel k, dilations 1, 2, ..., 2^(n-1):
    # rf = 1 + 2 (k-1) (1 + 2 + ... + 2^(n-1)) = 1 + 2 (k-1) (2^n - 1); the map keeps its length
    spec = BlockSpec.build({"stem": "", "rank": 1, "input_size": 5000, "in_channels": 4, "stage": [
        {"block": "tcn", "repeats": [1, 4, 8], "kernel": [2, 3, 7], "width": [4]}]})
    df, _ = sweep_frame(spec, tmp_path)
    assert len(df) == 9
    for _, row in df.iterrows():
        k, n = int(row.s1_kernel), int(row.s1_repeats)
        assert int(row.rf) == 1 + 2 * (k - 1) * (2 ** n - 1)
        assert int(row.out_size) == 5000 and int(row.jump) == 1 and int(row.depth) == 2 * n
        # per block: two k-tap convs 4 -> 4 with bias, no BatchNorm, no projection (4 == 4)
        assert int(row.params) == n * 2 * (k * 4 * 4 + 4)


def test_catalog_tcn_is_a_row():
    # the catalog's locuslab/TCN sequential-MNIST model (k 7, 8 levels, 25 channels) minus its Linear(25, 10)
    from rfsweep.architectures import arch_path

    spec = BlockSpec.build({"stem": "", "rank": 1, "input_size": 784, "in_channels": 1, "stage": [
        {"block": "tcn", "repeats": [8], "kernel": [7], "width": [25]}]})
    catalog = rfsweep.analyze(arch_path("tcn"), end_point="tcn.network.7.add")["total"]
    mine = rfsweep.analyze(block_graph(spec, 0))["total"]
    assert mine["rf"] == catalog["rf"] == 1 + 2 * 6 * 255
    assert mine["params"] == rfsweep.analyze(arch_path("tcn"))["total"]["params"] - (25 * 10 + 10)
    assert mine["erf_std"] == pytest.approx(catalog["erf_std"])


def test_wavenet_rf_by_hand_and_the_catalog():
    # van den Oord et al. 2016, Sec. 2.1 and Fig. 3: kernel 2, dilations 1, 2, ..., 512: one stack sees
    # 1 + (1 + 2 + ... + 512) = 1024 samples; three stacks (the default dilation_cycle of 10) 1 + 3 * 1023.
    # The catalog's wavenet also has the kernel-2 causal input conv of Fig. 4: one sample more, 3071.
    from rfsweep.architectures import arch_path

    values = {"stem": "", "rank": 1, "input_size": 16000, "in_channels": 32, "stage": [
        {"block": "wavenet", "repeats": [10, 30], "kernel": [2], "width": [512], "expansion": [16]}]}
    spec = BlockSpec.build(values)
    one, three = (rfsweep.analyze(block_graph(spec, i))["total"] for i in (0, 1))
    assert one["rf"] == 1024 and three["rf"] == 3070
    assert one["rf_min"] == 2  # the first block's skip: one kernel-2 conv
    catalog = rfsweep.analyze(arch_path("wavenet"))
    assert catalog["total"]["rf"] == three["rf"] + 1
    # params: the catalog (residual 32 = gate, skip 512) less its input conv and the two 1x1 post convs
    head = sum(n["params"] for n in catalog["nodes"] if n["name"] in ("causal_conv", "post1", "post2"))
    assert three["params"] == catalog["total"]["params"] - head
    df_spec = BlockSpec.build({**values, "stage": [{**values["stage"][0], "dilation_cycle": 5}]})
    assert rfsweep.analyze(block_graph(df_spec, 0))["total"]["rf"] == 1 + 2 * 31  # 1..16, twice


# ------------------------------------------------------------ the CLI

def test_cli_fewest_params_that_see_16000_samples(tmp_path, capsys):
    out = tmp_path / "audio.parquet"
    code, _, err = run_cli(capsys, "sweep", "--spec", str(DATA / "audio_rf.toml"), "--min-rf", "16000", "-o", str(out))
    assert code == 0, err
    df = pd.read_parquet(out)
    assert len(df) > 0 and int(df.rf.min()) >= 16000
    code, text, err = run_cli(capsys, "pareto", str(out), "--minimize", "params", "--maximize", "rf", "--format", "json")
    assert code == 0, err
    best = min(json.loads(text)["rows"], key=lambda row: row["params"])
    assert best["params"] == int(df.params.min())
    # the smallest network that sees a second of 16 kHz audio, checked by hand: wavenet, 14 blocks of
    # kernel 2 (dilations 1..8192: rf 1 + 16383), skip width 16, residual width 16/4 = 4, in 1 channel:
    # block 1: filter + gate 2*(2*1*4 + 4), residual 4*4 + 4, skip 4*16 + 16, projection 1 -> 4: 1*4 + 4;
    # blocks 2..14 the same with 4 input channels: 2*(2*4*4 + 4)
    first = 2 * (2 * 1 * 4 + 4) + (4 * 4 + 4) + (4 * 16 + 16) + (1 * 4 + 4)
    rest = 2 * (2 * 4 * 4 + 4) + (4 * 4 + 4) + (4 * 16 + 16)
    assert best["params"] == first + 13 * rest and best["rf"] == 16384
    assert "wavenet x14 k2" in best["stack"]


BAD_CAUSAL = [
    ({"block": ["basic", "tcn"], "width": [8], "kernel": [2]}, "stage 1: kernel: 2 is even"),
    ({"block": ["basic"], "width": [8], "dilation_cycle": 4}, "stage 1: dilation_cycle applies to tcn and wavenet"),
    ({"block": ["tcn"], "width": [8], "dilation_cycle": 0}, "stage 1: dilation_cycle: expected one integer"),
    ({"block": ["tcnn"], "width": [8]}, "stage 1: block: unknown block 'tcnn'"),
    ({"block": ["basic"], "width": [8], "stride": [[1, 2, 2]]}, "stage 1: stride: [1, 2, 2] has 3 values but the space has rank 1"),
    ({"block": ["tcn"], "width": [8], "repeats": [70]}, "spec: rf could exceed 64-bit integers (a tcn or wavenet"),
]


@pytest.mark.parametrize("stage, message", BAD_CAUSAL, ids=[m.split(": ")[1] for _, m in BAD_CAUSAL])
def test_bad_causal_specs_exit_2_with_one_line(tmp_path, capsys, stage, message):
    lines = ["rank = 1", 'stem = ""', "input_size = 100", "[[stage]]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in stage.items()]
    path = tmp_path / "bad.toml"
    path.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(capsys, "sweep", "--spec", str(path), "-o", str(tmp_path / "x.parquet"))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err


def test_docs_show_the_audio_spec_as_it_is():
    docs = (DATA.parent / "docs" / "blocks.md").read_text()
    shown = docs.split("`data/audio_rf.toml`:\n\n```toml\n", 1)[1].split("```", 1)[0]
    assert shown == (DATA / "audio_rf.toml").read_text()
