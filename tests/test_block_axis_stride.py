"""Block spaces with per-axis strides (issue 19): R3D / nnU-Net style [1, 2, 2] downsampling.

Two oracles for every row of small 3-D spaces: `rfsweep.analyze` of the row's
graph (naive_blocks: the choices from itertools.product, prefix by prefix),
and a plain torch 3-D ResNet built from the row's choices alone (Conv3d
BasicBlock / Bottleneck v1.5 with the row's per-axis strides, not from
rfsweep's graph): numel, torch.utils.flop_counter / 2, the output's shape and
the gradient support of a middle unit (float64, positive weights, ReLU and
BatchNorm as identities).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfsweep.blocks import BlockSpec
from rfsweep.errors import RfsweepError

from cli_helpers import run_cli
from naive_blocks import naive_sweep
from test_blocks import sweep_frame

torch = pytest.importorskip("torch")  # the torch extra; CI installs it, so this never skips there
import torch.nn as nn  # noqa: E402

from test_torch_rank import gradient_fields, half_flops, numel  # noqa: E402

INTS = ("config_id", "out_channels", "params", "macs", "flops", "depth", "unproductive")
AXES = ("rf", "jump", "out_size")


def _plain(value):
    """A cell as plain Python: fixed-size-list cells (numpy arrays in pandas) as lists."""
    if isinstance(value, np.ndarray):
        return [v.item() for v in value]
    return value.item() if isinstance(value, np.generic) else value


def assert_axis_rows_equal(df: pd.DataFrame, rows: list[dict], stages: int):
    """The file's rows against the oracle's, list cells and all."""
    assert len(df) == len(rows)
    for got, want in zip(df.to_dict("records"), rows):
        for key in INTS + AXES:
            assert _plain(got[key]) == want[key], (want["config_id"], key, got[key], want[key])
        for key in ("erf_std", "erf_ratio"):
            np.testing.assert_allclose(_plain(got[key]), want[key], rtol=2e-6, err_msg=key)
        for i in range(1, stages + 1):
            for key in ("repeats", "kernel", "stride", "dilation", "width", "expansion"):
                assert _plain(got[f"s{i}_{key}"]) == want[f"s{i}_{key}"], (want["config_id"], i, key)
            assert str(got[f"s{i}_block"]) == want[f"s{i}_block"]


# ------------------------------------------------------------ the graph path, every row

R3D_LIKE = {"stem": "c3_5_5s1_2_2p1_2_2x4nb", "input_size": [6, 20, 20], "in_channels": 2, "stage": [
    {"block": ["basic", "bottleneck"], "repeats": [1, 2], "stride": [1, [1, 2, 2]], "width": [4, 8],
     "expansion": [2]},
    {"block": ["basic", "bottleneck"], "stride": [2, [1, 2, 2], [2, 1, 1]], "width": [8], "expansion": [2]}]}

MIXED = {"stem": "", "rank": 3, "input_size": 9, "in_channels": 3, "stage": [
    {"block": ["conv", "dwsep", "mbconv", "basic", "bottleneck"], "repeats": [1, 2], "kernel": [1, 3],
     "stride": [[1, 2, 2], 1, [3, 1, 2]], "width": [3, 6], "expansion": [1, 3]},
    {"block": ["mbconv", "basic"], "kernel": [3, [1, 3, 3]], "stride": [[1, 1, 2], 1], "dilation": [1, [2, 1, 1]],
     "width": [6],
     "expansion": [2]}]}

RANK2 = {"stem": "c3s1_2x4nb", "input_size": [16, 30], "in_channels": 1, "stage": [
    {"block": ["basic", "bottleneck"], "repeats": [1, 3], "stride": [[1, 2], 2], "width": [4, 8],
     "expansion": [2, 4]}]}

# tiny inputs: unproductive convs (narrowest field past the input on every axis) and empty maps
TINY = {"stem": "c5_3_3s1_2_2x4nb", "input_size": [4, 9, 9], "in_channels": 1, "stage": [
    {"block": ["basic", "bottleneck", "conv"], "repeats": [1, 3], "kernel": [3, [1, 3, 5]],
     "stride": [[1, 2, 2], [2, 1, 1]],
     "width": [4], "expansion": [2]},
    {"block": ["basic", "mbconv"], "stride": [[2, 3, 3], 1], "width": [4, 8], "expansion": [1, 2]}]}


@pytest.mark.parametrize("values", [R3D_LIKE, MIXED, RANK2, TINY], ids=["r3d", "mixed", "rank2", "tiny"])
def test_every_row_equals_the_graph_path(tmp_path, values):
    spec = BlockSpec.build(values)
    assert spec.per_axis
    rows, counts = naive_sweep(spec)
    df, meta = sweep_frame(spec, tmp_path, chunk_ids=7)
    assert_axis_rows_equal(df, rows, spec.stages)
    assert {k: meta["counts"][k] for k in counts} == counts
    assert counts["written"] > 0
    assert any(len(set(row["rf"])) > 1 for row in rows)  # the axes do differ
    if values is TINY:
        assert counts["invalid"] > 0 and max(row["unproductive"] for row in rows) > 0


@pytest.mark.parametrize("limits", [{"max_rf": 30}, {"min_rf": 12}, {"min_out_size": 4},
                                    {"max_macs": 2_000_000, "min_rf": 9}])
def test_limits_hold_on_every_axis(tmp_path, limits):
    spec = BlockSpec.build({**R3D_LIKE, **limits})
    rows, counts = naive_sweep(spec)
    df, meta = sweep_frame(spec, tmp_path, chunk_ids=5)
    assert_axis_rows_equal(df, rows, spec.stages)
    assert {k: meta["counts"][k] for k in counts} == counts
    assert counts["pruned"] > 0 and counts["written"] > 0


def test_sample_rows_are_the_full_sweep_rows(tmp_path):
    full, _ = sweep_frame(BlockSpec.build(MIXED), tmp_path, "full.parquet")
    sampled = BlockSpec.build({**MIXED, "sample": 150, "seed": 3})
    df, _ = sweep_frame(sampled, tmp_path, "sample.parquet", chunk_ids=31)
    expected = full[full.config_id.isin(sampled.sample_ids())].reset_index(drop=True)
    assert len(df) > 0
    assert df.map(_plain).astype(str).equals(expected.map(_plain).astype(str))


def test_one_row_by_hand():
    # stem 3x7x7 stride 1,2,2 pad 1,3,3 on 8x32x32 -> 8x16x16, rf 3/7/7, jump 1/2/2; one basic block
    # 3x3x3 stride 1,2,2, 16 -> 16: rf grows 2*jump, then 2*jump*stride on each axis: 3+2+2 = 7 (time),
    # 7+4+8 = 19 (space); jump 1/4/4; out 8x8x8
    spec = BlockSpec.build({"stem": "c3_7_7s1_2_2p1_3_3x16nb", "input_size": [8, 32, 32], "in_channels": 3,
                            "stage": [{"block": "basic", "stride": [[1, 2, 2]], "width": [16]}]})
    from rfsweep.block_sweep import BlockEvaluator
    evaluator = BlockEvaluator(spec, 1)
    table, _ = evaluator.evaluate(1, 0, 0, 1, evaluator.new_buffers(4))
    row = table.to_pylist()[0]
    assert row["rf"] == [7, 19, 19] and row["jump"] == [1, 4, 4] and row["out_size"] == [8, 8, 8]
    stem = 3 * 7 * 7 * 3 * 16 + 32
    block = 2 * (27 * 16 * 16 + 32) + (16 * 16 + 32)  # two convs + the 1x1 stride-(1,2,2) projection
    assert row["params"] == stem + block
    assert row["macs"] == 3 * 7 * 7 * 3 * 16 * (8 * 16 * 16) + (2 * 27 * 16 * 16 + 16 * 16) * (8 * 8 * 8)
    assert row["s1_stride"] == [1, 2, 2]


# ------------------------------------------------------------ torch: the rows built without rfsweep's graph

class Block3d(nn.Module):
    """torchvision's BasicBlock / Bottleneck (v1.5: the stride on the kxk conv), Conv3d, per-axis kernel and
    stride ('same' padding k//2 on each axis)."""

    def __init__(self, kind, c, w, kernel, stride, e):
        super().__init__()
        conv = nn.Conv3d
        k = kernel
        pad = tuple(x // 2 for x in kernel)
        if kind == "basic":
            self.main = nn.Sequential(conv(c, w, k, stride, pad, bias=False), nn.BatchNorm3d(w), nn.ReLU(),
                                      conv(w, w, k, 1, pad, bias=False), nn.BatchNorm3d(w))
        else:
            inner = w // e
            self.main = nn.Sequential(conv(c, inner, 1, bias=False), nn.BatchNorm3d(inner), nn.ReLU(),
                                      conv(inner, inner, k, stride, pad, bias=False), nn.BatchNorm3d(inner),
                                      nn.ReLU(), conv(inner, w, 1, bias=False), nn.BatchNorm3d(w))
        downsample = tuple(stride) != (1, 1, 1) or c != w
        self.short = (nn.Sequential(conv(c, w, 1, stride, bias=False), nn.BatchNorm3d(w)) if downsample
                      else nn.Identity())
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.main(x) + self.short(x))


def torch_r3d(stem: nn.Module, stage_choices: list[dict], c: int) -> nn.Module:
    """The stem, then per stage its repeats of one block (the first with the stage's stride)."""
    layers = [stem]
    for choice in stage_choices:
        stride = choice["stride"] if isinstance(choice["stride"], list) else [choice["stride"]] * 3
        kernel = tuple(choice["kernel"]) if isinstance(choice["kernel"], list) else (choice["kernel"],) * 3
        for b in range(choice["repeats"]):
            layers.append(Block3d(choice["block"], c, choice["width"], kernel,
                                  tuple(stride) if b == 0 else (1, 1, 1), choice["expansion"]))
            c = choice["width"]
    return nn.Sequential(*layers)


TORCH_SPACE = {"stem": "c3_5_5s1_2_2p1_2_2x4nb", "input_size": [6, 20, 20], "in_channels": 2, "stage": [
    {"block": ["basic", "bottleneck"], "repeats": [2], "kernel": [[1, 3, 3]], "stride": [1, [1, 2, 2]], "width": [4],
     "expansion": [2]},
    {"block": ["basic", "bottleneck"], "kernel": [3, [3, 1, 1]], "stride": [2, [1, 2, 2]], "width": [8],
     "expansion": [2]}]}


def test_every_row_against_a_torch_r3d(tmp_path):
    from naive_blocks import all_choices

    spec = BlockSpec.build(TORCH_SPACE)
    df, _ = sweep_frame(spec, tmp_path)
    choices = all_choices(TORCH_SPACE)  # the documented enumeration order, not blocks.py's tables
    assert len(df) == spec.grid_total == 4 * 8
    for record in df.to_dict("records"):
        torch.manual_seed(0)
        stem = nn.Sequential(nn.Conv3d(2, 4, (3, 5, 5), (1, 2, 2), (1, 2, 2), bias=False), nn.BatchNorm3d(4),
                             nn.ReLU())
        model = torch_r3d(stem, choices[record["config_id"]], 4)
        x = torch.zeros(1, 2, 6, 20, 20)
        with torch.no_grad():
            shape = list(model.eval()(x).shape[2:])
        assert shape == _plain(record["out_size"])
        assert numel(model) == record["params"]
        assert half_flops(model, x) == record["macs"]
        rf, jump, _ = gradient_fields(model, 2, [6, 20, 20])
        assert rf == _plain(record["rf"]), record["config_id"]
        assert jump == _plain(record["jump"]), record["config_id"]


# ------------------------------------------------------------ random anisotropic spaces

stride_choice = st.one_of(st.sampled_from([1, 2]), st.lists(st.integers(1, 3), min_size=3, max_size=3))
kernel_choices = st.sampled_from([[1], [3], [3, 5], [[1, 3, 3]], [3, [3, 1, 5]]])
dilation_choices = st.sampled_from([[1], [1, 2], [[1, 2, 2]], [1, [2, 1, 3]]])


@st.composite
def spaces(draw):
    stages = []
    for _ in range(draw(st.integers(1, 2))):
        strides = draw(st.lists(stride_choice, min_size=1, max_size=3))
        normal = [s[0] if isinstance(s, list) and len(set(s)) == 1 else s for s in strides]
        if any(normal.count(s) > 1 for s in normal):
            strides = [normal[0]]
        stages.append({"block": draw(st.lists(st.sampled_from(["conv", "basic", "bottleneck", "dwsep", "mbconv"]),
                                              min_size=1, max_size=2, unique=True)),
                       "repeats": draw(st.sampled_from([[1], [1, 2]])), "kernel": draw(kernel_choices),
                       "stride": strides, "dilation": draw(dilation_choices),
                       "width": draw(st.sampled_from([[2], [4], [2, 4]])),
                       "expansion": draw(st.sampled_from([[1], [2]]))})
    size = draw(st.lists(st.integers(3, 12), min_size=3, max_size=3))
    stem = draw(st.sampled_from(["", "c3_1_3s1_1_2x2nb", "c1_3_3s2_1_1x4nb"]))
    limits = draw(st.sampled_from([{}, {"max_rf": 12}, {"min_rf": 6}, {"min_out_size": 2}]))
    return {"stem": stem, "input_size": size, "in_channels": 2, "stage": stages, **limits}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=spaces())
def test_random_anisotropic_spaces_equal_the_graph_path(tmp_path, values):
    spec = BlockSpec.build(values)
    rows, counts = naive_sweep(spec)
    df, meta = sweep_frame(spec, tmp_path, "random.parquet", chunk_ids=13)
    assert_axis_rows_equal(df, rows, spec.stages)
    assert {k: meta["counts"][k] for k in counts} == counts


# ------------------------------------------------------------ show, stored spec, isotropic files

def test_show_of_a_row_agrees_with_the_row(tmp_path, capsys):
    out = tmp_path / "r3d.parquet"
    spec = BlockSpec.build(R3D_LIKE)
    from rfsweep.engines import write_range
    write_range(spec, out)
    rows = pq.read_table(out).to_pylist()
    for row in rows[:: max(1, len(rows) // 6)]:
        code, text, err = run_cli(capsys, "show", out, row["config_id"], "--format", "json")
        assert code == 0, err
        total = json.loads(text)["total"]
        for key in AXES:
            value = total[key] if isinstance(total[key], list) else [total[key]] * 3
            assert value == row[key], key
        assert total["params"] == row["params"] and total["macs"] == row["macs"]
    stored = json.loads(pq.read_metadata(out).metadata[b"rfsweep"])["spec"]
    assert BlockSpec.build(stored).to_dict() == spec.to_dict()
    assert stored["stage"][0]["stride"] == [1, [1, 2, 2]]


def test_pareto_takes_a_per_axis_column_as_one_objective_per_axis(tmp_path, capsys):
    out = tmp_path / "r3d.parquet"
    from rfsweep.engines import write_range
    write_range(BlockSpec.build(R3D_LIKE), out)
    rows = pq.read_table(out).to_pylist()

    def key(row):  # minimise params; maximise rf on each axis
        return (row["params"], *(-r for r in row["rf"]))

    def dominates(a, b):
        return all(x <= y for x, y in zip(key(a), key(b))) and key(a) != key(b)
    front = {row["config_id"] for row in rows if not any(dominates(other, row) for other in rows)}
    code, text, err = run_cli(capsys, "pareto", out, "--minimize", "params", "--maximize", "rf", "--format", "json")
    assert code == 0, err
    got = json.loads(text)["rows"]
    assert {row["config_id"] for row in got} == front and len(front) > 1
    assert all(isinstance(row["rf"], list) and len(row["rf"]) == 3 for row in got)
    for argv in (["pareto", out, "--where", "rf>=20"], ["report", out, "-o", tmp_path / "r.html"]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and "column 'rf' holds one value per axis" in err and len(err.strip().splitlines()) == 1


def test_isotropic_lists_stay_isotropic():
    spec = BlockSpec.build({"stem": "c3x4nb", "rank": 3, "input_size": [8, 8, 8],
                            "stage": [{"block": "basic", "stride": [[2, 2, 2], 1], "width": [4]}]})
    assert not spec.per_axis and spec.stage[0]["stride"] == [2, 1] and spec.input_size == 8


# ------------------------------------------------------------ bad input: one line naming the stage and key

@pytest.mark.parametrize("stride, message", [
    ("[[1, 2]]", "stage 2: stride: [1, 2] has 2 values but the space has rank 3"),
    ("[[1, 0, 2]]", "stage 2: stride: 0 is out of range"),
    ("[[1, -2, 2]]", "stage 2: stride: -2 is out of range"),
    ("[2, [2, 2, 2]]", "stage 2: stride: duplicate values"),
    ("[[1, 2.5, 2]]", "stage 2: stride: expected integers"),
])
def test_bad_per_axis_stride_exits_2_naming_stage_and_key(tmp_path, capsys, stride, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'rank = 3\ninput_size = 16\nstem = ""\n[[stage]]\nblock = "basic"\nwidth = [4]\n'
                    f'[[stage]]\nblock = "basic"\nwidth = [8]\nstride = {stride}\n')
    code, out, err = run_cli(capsys, "sweep", "--spec", path, "-o", tmp_path / "x.parquet", "--yes")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.parametrize("values, message", [
    ({"stage": [{"block": "tcn", "width": [4], "kernel": [[1, 3, 3]]}]}, "stage 1: kernel: per-axis values apply"),
    ({"stage": [{"block": "tcn", "width": [4], "stride": [[1, 2, 2]]}]}, "stage 1: stride: per-axis values apply"),
    ({"stage": [{"block": "basic", "width": [4], "kernel": [[1, 2, 3]]}]}, "stage 1: kernel: 2 is even"),
    ({"stage": [{"block": "basic", "width": [4], "dilation": [[1, 2]]}]}, "stage 1: dilation: \\[1, 2\\] has 2"),
    ({"input_size": [8, 16, 16], "stage": [{"block": "tcn", "width": [4]}]}, "tcn and wavenet"),
])
def test_refused_per_axis_choices(values, message):
    with pytest.raises(RfsweepError, match=message):
        BlockSpec.build({"stem": "", "rank": 3, "input_size": 8, **values})


def test_r3d_space_holds_torchvision_r3d_18(tmp_path):
    """data/r3d_space.toml's R3D-18 row (basic x2, widths 64..512, strides 1, 2, 2, 2) against
    torchvision's r3d_18 without its head (avgpool + fc 512 -> 400): numel, flop_counter, the catalog's
    field; the [1, 2, 2] rows keep the clip's 16 frames."""
    from pathlib import Path

    from rfsweep.grid import load_spec
    from rfsweep.torch_import.targets import torchvision_compatible

    from test_torch_rank import _meta_half_flops

    torchvision_compatible()
    video = pytest.importorskip("torchvision.models.video")  # the test extra; CI installs it
    spec = load_spec(Path(__file__).resolve().parent.parent / "data" / "r3d_space.toml")
    assert spec.per_axis and spec.rank == 3
    r3d = spec.config_id_of([{"block": "basic", "repeats": 2, "width": w, "stride": 1 if i == 0 else 2}
                             for i, w in enumerate((64, 128, 256, 512))])
    df, _ = sweep_frame(spec, tmp_path)
    row = {k: _plain(v) for k, v in df[df.config_id == r3d].iloc[0].items()}
    with torch.device("meta"):
        model = video.r3d_18(weights=None)
    head = 512 * 400 + 400
    assert row["params"] == numel(model) - head
    assert row["macs"] == _meta_half_flops(model, (1, 3, 16, 112, 112)) - 512 * 400
    assert row["out_size"] == [2, 7, 7] and row["jump"] == [8, 16, 16]
    frames = df[df.s2_stride.map(_plain).map(tuple) == (1, 2, 2)]  # the clip keeps 16 frames in stage 2
    for out, s3, s4 in zip(frames.out_size, frames.s3_stride, frames.s4_stride):
        assert _plain(out)[0] == 16 // 2 ** ((_plain(s3) == [2, 2, 2]) + (_plain(s4) == [2, 2, 2]))
    assert len(frames)
