"""Block/stage design spaces: published networks, the naive reference, order, counts, engines, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rfsweep
from rfsweep.blocks import BlockSpec, block_graph
from rfsweep.engines import write_range
from rfsweep.errors import RfsweepError
from rfsweep.grid import load_spec

from cli_helpers import run_cli
from naive_blocks import all_choices, naive_sweep

DATA = Path(__file__).resolve().parent.parent / "data"
INT_COLUMNS = ("config_id", "rf", "jump", "out_size", "out_channels", "params", "macs", "flops", "depth",
               "unproductive")


def sweep_frame(spec, tmp_path, name="out.parquet", **kwargs) -> tuple[pd.DataFrame, dict]:
    out = tmp_path / name
    write_range(spec, out, **kwargs)
    meta = json.loads(pq.read_metadata(out).metadata[b"rfsweep"])
    return pd.read_parquet(out), meta


def plain(df: pd.DataFrame) -> pd.DataFrame:
    """Block columns as strings: pandas' categories depend on which blocks a file happens to hold."""
    return df.assign(**{c: df[c].astype(str) for c in df.columns if c.endswith("_block")})


def assert_rows_equal(df: pd.DataFrame, rows: list[dict], stages: int):
    assert len(df) == len(rows)
    if not rows:
        return
    expected = pd.DataFrame(rows)
    for column in INT_COLUMNS:
        assert df[column].astype(np.int64).tolist() == expected[column].tolist(), column
    for column in ("erf_std", "erf_ratio"):
        np.testing.assert_allclose(df[column].to_numpy(np.float64), expected[column], rtol=2e-6, err_msg=column)
    for i in range(1, stages + 1):
        for key in ("repeats", "kernel", "stride", "dilation", "width", "expansion"):
            assert df[f"s{i}_{key}"].astype(np.int64).tolist() == expected[f"s{i}_{key}"].tolist(), (i, key)
        assert df[f"s{i}_block"].astype(str).tolist() == expected[f"s{i}_block"].tolist()
        if f"s{i}_groups" in df:
            assert df[f"s{i}_groups"].astype(np.int64).tolist() == expected[f"s{i}_groups"].tolist()


# ------------------------------------------------------------ published networks

RESNET = dict(
    # torchvision's totals minus the fc head (512*1000 + 1000 or 2048*1000 + 1000), and its GMACs
    resnet18=dict(block="basic", repeats=(2, 2, 2, 2), widths=(64, 128, 256, 512),
                  params=11_689_512 - 513_000, gmacs=1.81),
    resnet34=dict(block="basic", repeats=(3, 4, 6, 3), widths=(64, 128, 256, 512),
                  params=21_797_672 - 513_000, gmacs=3.66),
    resnet50=dict(block="bottleneck", repeats=(3, 4, 6, 3), widths=(256, 512, 1024, 2048),
                  params=25_557_032 - 2_049_000, gmacs=4.09),
)


def resnet_id(spec, net):
    return spec.config_id_of([dict(block=net["block"], repeats=r, kernel=3, width=w, expansion=4)
                              for r, w in zip(net["repeats"], net["widths"])])


def mobilenet_v2_id(spec):
    repeats = (1, 2, 3, 4, 3, 3, 1, 1)
    return spec.config_id_of([dict(repeats=r, kernel=min(spec.stage[i]["kernel"]),
                                   expansion=1 if i in (0, 7) else 6) for i, r in enumerate(repeats)])


@pytest.fixture(scope="module")
def resnet_space(tmp_path_factory):
    spec = load_spec(DATA / "resnet18_space.toml")
    out = tmp_path_factory.mktemp("resnet") / "space.parquet"
    ids = sorted(resnet_id(spec, net) for net in RESNET.values())
    # a three-id sample is enough to evaluate the rows through the kernel
    sampled = BlockSpec.build({**spec.to_dict(), "sample": 3})
    sampled._cache["sample"] = np.array(ids, np.uint64)
    write_range(sampled, out)
    return spec, pd.read_parquet(out).set_index("config_id")


@pytest.mark.parametrize("name", sorted(RESNET))
def test_resnets_are_rows_equal_to_analyze_and_torchvision(resnet_space, name):
    spec, frame = resnet_space
    net = RESNET[name]
    config_id = resnet_id(spec, net)
    row = frame.loc[config_id]
    total = rfsweep.analyze(block_graph(spec, config_id))["total"]
    for key in ("params", "macs", "rf", "jump", "out_size", "out_channels"):
        assert int(row[key]) == total[key], key
    assert total["params"] == net["params"]
    assert round(total["macs"] / 1e9, 2) == net["gmacs"]
    assert total["jump"] == 32 and total["out_size"] == 7


def test_resnet18_rf_by_hand(resnet_space):
    spec, frame = resnet_space
    # stem: 7x7/2 -> 7, maxpool 3x3/2 at jump 2 -> 11 (jump 4); layer1: four 3x3 at jump 4 -> 43;
    # layer2: 3x3/2 at jump 4 (+8), three 3x3 at jump 8 (+48) -> 99; layer3: +16 +3*32 -> 211;
    # layer4: +32 +3*64 -> 435. The narrowest path: stem and the 1x1 projections only -> 11.
    row = frame.loc[resnet_id(spec, RESNET["resnet18"])]
    assert int(row["rf"]) == 435
    result = rfsweep.analyze(block_graph(spec, resnet_id(spec, RESNET["resnet18"])))
    assert result["total"]["rf_min"] == 11
    assert int(row["depth"]) == 17  # the stem conv + 16 block convs: "ResNet-18" without its fc


def test_mobilenet_v2_is_a_row(tmp_path):
    spec = load_spec(DATA / "mobilenet_v2_space.toml")
    config_id = mobilenet_v2_id(spec)
    sampled = BlockSpec.build({**spec.to_dict(), "sample": 1})
    sampled._cache["sample"] = np.array([config_id], np.uint64)
    df, _ = sweep_frame(sampled, tmp_path)
    total = rfsweep.analyze(block_graph(spec, config_id))["total"]
    assert int(df.config_id[0]) == config_id
    for key in ("params", "macs", "rf", "jump"):
        assert int(df[key][0]) == total[key], key
    assert total["params"] == 3_504_872 - 1_281_000  # torchvision minus Linear(1280, 1000)
    assert round(total["macs"] / 1e9, 2) == 0.30
    assert int(df["depth"][0]) == 52  # 1 + (2 + 16*3) + 1 conv layers on the main path


# ------------------------------------------------------------ against the naive reference

STEMS = ["", "c3x8nb", "c3s2x8nb,mp3s2p1", "c5s2p2x4"]


@st.composite
def small_specs(draw):
    stages = []
    for _ in range(draw(st.integers(1, 3))):
        def pick(values, most=2):
            return draw(st.lists(st.sampled_from(values), min_size=1, max_size=most, unique=True))
        stage = {"block": pick(["conv", "basic", "bottleneck", "dwsep", "mbconv"]), "repeats": pick([1, 2, 3]),
                 "kernel": pick([1, 3, 5]), "stride": pick([1, 2]), "dilation": pick([1, 2], 1),
                 "width": pick([4, 8, 12]), "expansion": pick([1, 2, 4])}
        extra = draw(st.sampled_from([None, "groups", "group_width"]))
        if extra == "groups":
            stage["groups"] = pick([1, 2])
        elif extra == "group_width":
            stage["group_width"] = pick([2, 4], 1)
            stage["width"] = [w for w in stage["width"] if w % stage["group_width"][0] == 0] or [8]
        stages.append(stage)
    values = {"stem": draw(st.sampled_from(STEMS)), "input_size": draw(st.integers(6, 40)),
              "in_channels": draw(st.integers(1, 4)), "stage": stages}
    for key, limit in (("max_params", st.integers(200, 20_000)), ("max_macs", st.integers(10_000, 2_000_000)),
                       ("min_rf", st.integers(3, 60)), ("max_rf", st.integers(5, 80)),
                       ("min_out_size", st.integers(1, 6))):
        if draw(st.booleans()) and draw(st.booleans()):
            values[key] = draw(limit)
    return values


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_specs(), st.sampled_from([1, 2]), st.sampled_from([7, 64, 1 << 20]))
def test_rows_and_counts_equal_the_naive_reference(tmp_path_factory, values, threads, chunk):
    try:
        spec = BlockSpec.build(values)
    except RfsweepError:
        return  # e.g. a stem that empties a tiny input: a bad spec, tested below
    if spec.grid_total > 400:
        spec = BlockSpec.build({**values, "sample": 60, "seed": 3})
        ids = [int(i) for i in spec.sample_ids()]
    else:
        ids = None
    rows, counts = naive_sweep(spec, ids)
    df, meta = sweep_frame(spec, tmp_path_factory.mktemp("naive"), threads=threads, chunk_ids=chunk)
    assert_rows_equal(df, rows, spec.stages)
    assert {k: meta["counts"][k] for k in counts} == counts


def test_config_id_order_and_ignored_positions(tmp_path):
    values = {"stem": "c3x8nb", "input_size": 16, "stage": [
        {"block": ["conv", "bottleneck", "dwsep"], "kernel": [3, 5], "width": [8, 16], "expansion": [2, 4],
         "groups": [1, 2]},
        {"block": ["basic", "mbconv"], "repeats": [1, 2], "stride": [1, 2], "width": [8], "expansion": [1, 3]}]}
    spec = BlockSpec.build(values)
    table = all_choices(spec.to_dict())
    assert spec.grid_total == len(table) == (3 * 2 * 2 * 2 * 2) * (2 * 2 * 2 * 2)
    for config_id in range(spec.grid_total):
        mine = spec.choices(config_id)
        for stage, (got, want) in enumerate(zip(mine, table[config_id])):
            assert bool(got["valid"]) == (not want["ignored"]), (config_id, stage)
            if got["valid"]:
                assert (got["kernel"], got["stride"], got["width"], got["expansion"], got["groups"]) == (
                    want["kernel"], want["stride"], want["width"], want["expansion"], want["groups"])
        assert spec.decode(config_id) == [config_id // 16, config_id % 16]
    df, meta = sweep_frame(spec, tmp_path, chunk_ids=5)
    assert df.config_id.is_monotonic_increasing and df.config_id.is_unique
    rows, counts = naive_sweep(spec)
    assert_rows_equal(df, rows, 2)
    assert meta["counts"]["invalid"] == counts["invalid"] > 0


def test_block_skipping_counts_without_visiting(tmp_path):
    spec = load_spec(DATA / "resnet18_space.toml", {"max_macs": 1_000_000_000})
    df, meta = sweep_frame(spec, tmp_path)
    counts = meta["counts"]
    assert counts["enumerated"] == spec.grid_total == counts["invalid"] + counts["pruned"] + counts["written"]
    assert counts["skipped"] > counts["pruned"] // 2  # most pruned ids were never visited
    assert int(df.macs.max()) <= 1_000_000_000
    # every pruned id really is over budget: check a sample of the ids not written
    rng = np.random.default_rng(1)
    missing = np.setdiff1d(np.arange(spec.grid_total), df.config_id.to_numpy(np.int64))
    for config_id in rng.choice(missing, 20, replace=False):
        assert rfsweep.analyze(block_graph(spec, int(config_id)))["total"]["macs"] > 1_000_000_000


# ------------------------------------------------------------ sampling, engines, shards

SMALL = {"stem": "c3s2x16nb", "input_size": 64, "max_macs": 40_000_000, "stage": [
    {"block": ["basic", "bottleneck", "mbconv"], "repeats": [1, 2], "kernel": [3, 5], "width": [16, 32],
     "expansion": [1, 4]},
    {"block": ["basic", "dwsep"], "repeats": [1, 3], "stride": [2], "width": [32, 64], "expansion": [1, 2]},
    {"block": ["conv", "bottleneck"], "kernel": [3, 5], "stride": [1, 2], "dilation": [1, 2], "width": [64, 128],
     "expansion": [2, 4]}]}


def test_identical_rows_whatever_threads_chunks_shards_and_engine(tmp_path):
    from rfsweep.distributed import run_dask, run_local_parts, run_shard

    spec = BlockSpec.build(SMALL)
    base, meta = sweep_frame(spec, tmp_path, "one.parquet", threads=1)
    for name, kwargs in (("t2.parquet", dict(threads=2, chunk_ids=1000)), ("c1.parquet", dict(chunk_ids=37))):
        other, other_meta = sweep_frame(spec, tmp_path, name, **kwargs)
        pd.testing.assert_frame_equal(plain(base), plain(other))
        assert other_meta["counts"] == meta["counts"] or {
            k: other_meta["counts"][k] for k in ("enumerated", "invalid", "pruned", "written")} == {
            k: meta["counts"][k] for k in ("enumerated", "invalid", "pruned", "written")}
    for i in range(3):
        run_shard(spec, tmp_path / "shards", i, 3, threads=1)
    run_local_parts(spec, tmp_path / "parts", 4, workers=2)
    run_dask(spec, tmp_path / "dask", 2, n_workers=1)
    for directory in ("shards", "parts", "dask"):
        pd.testing.assert_frame_equal(plain(base), plain(pd.read_parquet(tmp_path / directory)))


def test_sample_is_reproducible_sorted_and_a_subset(tmp_path):
    spec = BlockSpec.build(SMALL)
    full, _ = sweep_frame(spec, tmp_path, "full.parquet")
    sampled_spec = BlockSpec.build({**SMALL, "sample": 500, "seed": 7})
    ids = sampled_spec.sample_ids()
    assert len(set(ids.tolist())) == 500 and np.all(np.diff(ids.astype(np.int64)) > 0)
    assert np.array_equal(ids, BlockSpec.build({**SMALL, "sample": 500, "seed": 7}).sample_ids())
    assert not np.array_equal(ids, BlockSpec.build({**SMALL, "sample": 500, "seed": 8}).sample_ids())
    df, meta = sweep_frame(sampled_spec, tmp_path, "sample.parquet", chunk_ids=64)
    expected = full[full.config_id.isin(ids)].reset_index(drop=True)
    pd.testing.assert_frame_equal(plain(df), plain(expected))
    assert meta["counts"]["enumerated"] == 500 and meta["spec"]["sample"] == 500
    rows, counts = naive_sweep(sampled_spec, ids.tolist())
    assert {k: meta["counts"][k] for k in counts} == counts


# ------------------------------------------------------------ the CLI

def test_cli_sweep_pareto_show(tmp_path, capsys):
    out = tmp_path / "r.parquet"
    code, _, err = run_cli(capsys, *["sweep", "--spec", str(DATA / "resnet18_space.toml"), "--max-macs", "1900000000",
                            "--sample", "3000", "--seed", "1", "-o", str(out)])
    assert code == 0, err
    df = pd.read_parquet(out)
    assert len(df) > 0 and df.macs.max() <= 1_900_000_000 and df.config_id.is_monotonic_increasing
    code, text, err = run_cli(capsys, *["pareto", str(out), "--minimize", "params", "--maximize", "rf", "--format", "json"])
    assert code == 0, err
    front = json.loads(text)
    assert front["rows"] and all("|" in row["stack"] for row in front["rows"])
    config_id = front["rows"][0]["config_id"]
    code, text, err = run_cli(capsys, *["show", str(out), str(config_id), "--format", "json"])
    assert code == 0, err
    shown = json.loads(text)
    assert shown["total"]["params"] == int(df.set_index("config_id").loc[config_id, "params"])


BAD = [
    ({"block": ["resnet"], "width": [8]}, "stage 1: block: unknown block 'resnet'"),
    ({"block": ["basic"], "width": []}, "stage 1: width: needs at least one value"),
    ({"block": ["basic"]}, "stage 1: width is required"),
    ({"block": ["conv"], "width": [6], "groups": [4]}, "stage 1: groups: width 6 is not divisible by groups 4"),
    ({"block": ["conv"], "width": [8], "colour": [1]}, "stage 1: unknown key 'colour'"),
    ({"block": ["conv"], "width": [8], "kernel": [2]}, "stage 1: kernel: 2 is even"),
]


@pytest.mark.parametrize("stage, message", BAD, ids=[m.split(": ")[1] for _, m in BAD])
def test_bad_specs_exit_2_with_one_line(tmp_path, capsys, stage, message):
    lines = ['stem = "c3x8nb"', "[[stage]]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in stage.items()]
    path = tmp_path / "bad.toml"
    path.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(capsys, *["sweep", "--spec", str(path), "-o", str(tmp_path / "x.parquet")])
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err


def test_bad_flags_for_block_specs(tmp_path, capsys):
    code, _, err = run_cli(capsys, *["sweep", "--spec", str(DATA / "resnet18_space.toml"), "--kernel", "3",
                            "-o", str(tmp_path / "x.parquet")])
    assert code == 2 and "--kernel" in err
    code, _, err = run_cli(capsys, *["sweep", "--sample", "10", "-o", str(tmp_path / "x.parquet")])
    assert code == 2 and "block spec" in err
