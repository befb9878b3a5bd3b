"""Chain-grid sweeps at rank 1 and 3 (issue 19) against the single-network path and torch.

The oracles: `rfsweep.analyze` of the row's network (the graph walker, one
layer at a time on per-axis tuples: no code shared with the sweep kernel but
the per-axis arithmetic), torch modules built here from the row's layer dicts
(numel = params, torch.utils.flop_counter / 2 = MACs, the output's shape =
out_size, the gradient support = rf), and a few hand-computed rows. Rank 2
must store exactly what it stored before ranks existed.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rfsweep
from rfsweep.engines import write_range
from rfsweep.errors import RfsweepError
from rfsweep.grid import CONVENTIONS, GridSpec

from cli_helpers import run_cli

GRID = dict(depth="1-2", types="conv,maxpool", kernel="1,3", stride="1,2", dilation="1,2",
            padding="same,valid", channels="2,3", input_size=5, in_channels=2)
COLUMNS = ("rf", "jump", "out_size", "out_channels", "params", "macs", "flops")


def _rows(spec: GridSpec, tmp_path, name="sweep.parquet") -> tuple[pd.DataFrame, dict]:
    out = tmp_path / name
    write_range(spec, out, chunk_ids=97)
    return pd.read_parquet(out), json.loads(pq.read_metadata(out).metadata[b"rfsweep"])


def _single(spec: GridSpec, config_id: int) -> dict | None:
    """The single-network path's totals for one id, or None where it refuses the network (invalid)."""
    try:
        return rfsweep.analyze(spec.network(config_id))["total"]
    except RfsweepError:
        return None


@pytest.mark.parametrize("rank", [1, 3])
def test_every_id_of_a_grid_against_the_single_network_path(rank, tmp_path):
    spec = GridSpec.build({**GRID, "rank": rank})
    df, meta = _rows(spec, tmp_path)
    rows = {int(row["config_id"]): row for row in df.to_dict("records")}
    assert meta["spec"]["rank"] == rank and "rank" in meta["conventions"]
    invalid = 0
    for config_id in range(spec.total):
        total = _single(spec, config_id)
        if total is None:
            invalid += 1
            assert config_id not in rows, config_id
            continue
        row = rows[config_id]
        stack = spec.network(config_id)
        assert stack.rank == rank
        for key in COLUMNS:
            assert row[key] == total[key], (config_id, key, row[key], total[key])
        assert row["erf_std"] == pytest.approx(total["erf_std"], rel=1e-6)
        assert row["erf_ratio"] == pytest.approx(total["erf_ratio"], rel=1e-6)
    assert invalid > 0 and len(rows) == spec.total - invalid
    counts = {key: meta["counts"][key] for key in ("enumerated", "invalid", "pruned", "written")}
    assert counts == {"enumerated": spec.total, "invalid": invalid, "pruned": 0, "written": len(rows)}


@pytest.mark.parametrize("rank", [1, 3])
def test_budgets_keep_exactly_the_stacks_within_them(rank, tmp_path):
    """Pruning on k^rank params and n^rank MACs: the kept set is the valid stacks within every limit."""
    free = GridSpec.build({**GRID, "rank": rank})
    totals = {i: t for i in range(free.total) if (t := _single(free, i)) is not None}
    limit_macs = sorted(t["macs"] for t in totals.values())[len(totals) // 2]
    limit_params = sorted(t["params"] for t in totals.values())[2 * len(totals) // 3]
    spec = GridSpec.build({**GRID, "rank": rank, "max_macs": limit_macs, "max_params": limit_params})
    df, _meta = _rows(spec, tmp_path)
    expected = sorted(i for i, t in totals.items() if t["macs"] <= limit_macs and t["params"] <= limit_params)
    assert df.config_id.tolist() == expected and 0 < len(expected) < len(totals)


# ------------------------------------------------------------------ torch, built here from the layer dicts

torch = pytest.importorskip("torch")


def _torch_stack(spec: GridSpec, config_id: int):
    """nn.Conv{r}d / MaxPool{r}d of one row, made from the grid's layer dicts (not rfsweep.to_torch)."""
    nn, rank = torch.nn, spec.rank
    conv, pool = getattr(nn, f"Conv{rank}d"), getattr(nn, f"MaxPool{rank}d")
    modules, c = [], spec.in_channels
    for raw in spec.layers_of(config_id):
        if raw["type"] == "conv":
            modules.append(conv(c, raw["out_channels"], raw["kernel"], stride=raw["stride"],
                                padding=raw["padding"], dilation=raw["dilation"], bias=raw["bias"]))
            c = raw["out_channels"]
        else:
            modules.append(pool(raw["kernel"], stride=raw["stride"], padding=raw["padding"]))
    return nn.Sequential(*modules).double()


def _receptive_field(module, rank: int, size: int, c_in: int) -> tuple[int, list[int]]:
    """(width, indices) of the gradient support of the centre output unit along axis 0, on positive weights
    with max pools read as avg pools (every pixel of a window gets a gradient)."""
    nn = torch.nn
    layers = []
    for layer in module:
        if isinstance(layer, nn.modules.pooling._MaxPoolNd):
            layer = getattr(nn, f"AvgPool{rank}d")(layer.kernel_size, layer.stride, layer.padding,
                                                 count_include_pad=True)
        else:
            with torch.no_grad():
                layer.weight.copy_(torch.rand_like(layer.weight) + 0.1)
        layers.append(layer)
    net = nn.Sequential(*layers).double()
    x = torch.zeros((1, c_in) + (size,) * rank, dtype=torch.float64, requires_grad=True)
    y = net(x)
    centre = tuple(n // 2 for n in y.shape[2:])
    grad, = torch.autograd.grad(y[(0, slice(None), *centre)].sum(), x)
    line = grad[0].abs().sum(0)
    line = line.sum(tuple(range(1, rank))) if rank > 1 else line
    hits = torch.nonzero(line).flatten().tolist()
    return hits[-1] - hits[0] + 1, hits


@pytest.mark.parametrize("rank", [1, 3])
def test_a_sample_of_rows_against_torch(rank, tmp_path):
    from torch.utils.flop_counter import FlopCounterMode

    spec = GridSpec.build({**GRID, "input_size": 19, "rank": rank})
    df, _meta = _rows(spec, tmp_path)
    sample = df.iloc[:: max(1, len(df) // 25)].to_dict("records")
    checked_rf = 0
    for row in sample:
        config_id = int(row["config_id"])
        module = _torch_stack(spec, config_id)
        assert sum(p.numel() for p in module.parameters()) == row["params"], config_id
        x = torch.zeros((1, spec.in_channels) + (spec.input_size,) * rank, dtype=torch.float64)
        with FlopCounterMode(display=False) as counter:
            y = module(x)
        assert counter.get_total_flops() // 2 == row["macs"], config_id
        assert list(y.shape[2:]) == [row["out_size"]] * rank and y.shape[1] == row["out_channels"]
        rf, hits = _receptive_field(module, rank, spec.input_size, spec.in_channels)
        if hits[0] > 0 and hits[-1] < spec.input_size - 1:  # the field lies inside the input: its full width
            assert rf == row["rf"], config_id
            checked_rf += 1
    assert len(sample) > 20 and checked_rf > 10


def test_hand_computed_rows(tmp_path):
    """One 3x3(x3) conv 2 -> 4 channels with bias on a length-5 input, 'same' padding."""
    for rank, params, macs in ((1, 4 * 2 * 3 + 4, 4 * 2 * 3 * 5), (2, 4 * 2 * 9 + 4, 4 * 2 * 9 * 25),
                               (3, 4 * 2 * 27 + 4, 4 * 2 * 27 * 125)):
        spec = GridSpec.build(dict(depth="1", kernel="3", stride="1", dilation="1", channels="4",
                                   input_size=5, in_channels=2, rank=rank))
        df, _meta = _rows(spec, tmp_path, f"r{rank}.parquet")
        assert df[["rf", "out_size", "params", "macs", "flops"]].values.tolist() == [[3, 5, params, macs, 2 * macs]]


# ------------------------------------------------------------------ property: kernel vs single network

@st.composite
def _grids(draw):
    ints = lambda lo, hi, most: st.lists(st.integers(lo, hi), min_size=1, max_size=most, unique=True)  # noqa: E731
    return GridSpec.build(dict(
        depth=",".join(map(str, sorted(draw(ints(1, 3, 2))))),
        types=",".join(draw(st.lists(st.sampled_from(["conv", "maxpool", "avgpool"]), min_size=1, max_size=3,
                                     unique=True))),
        kernel=draw(ints(1, 5, 2)), stride=draw(ints(1, 3, 2)), dilation=draw(ints(1, 3, 2)),
        padding=draw(st.lists(st.sampled_from(["same", "valid", 0, 1, 2]), min_size=1, max_size=2, unique=True)),
        channels=draw(ints(1, 9, 2)), input_size=draw(st.integers(1, 40)), in_channels=draw(st.integers(1, 5)),
        bias=draw(st.booleans()), rank=draw(st.sampled_from([1, 2, 3]))))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=_grids(), picks=st.lists(st.integers(0, 10**9), min_size=1, max_size=4))
def test_kernel_rows_equal_the_single_network_path_at_random_rank(spec, picks):
    evaluator = spec.evaluator(1)
    for pick in picks:
        depth, base, count = spec.depth_blocks()[pick % len(spec.depth)]
        lo = base + pick % count
        hi = min(base + count, lo + 50)
        table, counts = evaluator.evaluate(depth, base, lo, hi, evaluator.new_buffers(hi - lo))
        rows = {int(r["config_id"]): r for r in table.to_pylist()}
        for config_id in range(lo, hi):
            total = _single(spec, config_id)
            assert (total is None) == (config_id not in rows), config_id
            if total is not None:
                assert all(rows[config_id][key] == total[key] for key in COLUMNS), (config_id, spec)
        assert counts.written == len(rows) and counts.enumerated == hi - lo


# ------------------------------------------------------------------ rank 2 unchanged, keys, bad input

def test_rank_two_stores_no_rank_key_and_the_same_rows(tmp_path):
    omitted = GridSpec.build(GRID)
    for explicit in (GridSpec.build({**GRID, "rank": 2}), GridSpec.build({**GRID, "input_size": [5, 5]})):
        assert explicit == omitted and "rank" not in explicit.to_dict()
    assert omitted.conventions is CONVENTIONS and "rank" not in CONVENTIONS
    a, meta_a = _rows(omitted, tmp_path, "a.parquet")
    b, meta_b = _rows(GridSpec.build({**GRID, "rank": 2}), tmp_path, "b.parquet")
    assert a.equals(b) and meta_a == meta_b
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_rank_in_toml_flags_and_per_axis_input(tmp_path, capsys):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text('depth = "1-2"\nkernel = [3]\nchannels = [4]\ninput_size = [8, 8, 8]\n')
    out = tmp_path / "out.parquet"
    code, _out, err = run_cli(capsys, "sweep", "--spec", spec_file, "-q", "-o", out)
    assert code == 0, err
    stored = json.loads(pq.read_metadata(out).metadata[b"rfsweep"])["spec"]
    assert stored["rank"] == 3 and stored["input_size"] == 8
    assert rfsweep.stack_of(out, 0).input_size == (8, 8, 8)
    code, _out, err = run_cli(capsys, "sweep", "--depth", "1", "--kernel", "3", "--stride", "1", "--dilation", "1",
                              "--channels", "4", "--rank", "1", "--input-size", "16000", "-q", "-o", out)
    assert code == 0, err
    df = pd.read_parquet(out)
    assert df[["out_size", "params", "macs"]].values.tolist() == [[16000, 4 * 3 * 3 + 4, 4 * 3 * 3 * 16000]]
    stored = json.loads(pq.read_metadata(out).metadata[b"rfsweep"])["spec"]
    assert stored["rank"] == 1 and rfsweep.stack_of(out, 0).input_size == (16000,)


@pytest.mark.parametrize("argv, words", [
    (["--rank", "4"], "rank must be 1, 2 or 3"),
    (["--rank", "0"], "rank must be 1, 2 or 3"),
    (["--rank", "3", "--input-size", "16_16"], "2 axes but rank is 3"),
    (["--rank", "1", "--input-size", "16_16_16"], "3 axes but rank is 1"),
    (["--input-size", "16_16_32"], "same length on every axis"),
    (["--input-size", "1_2_3_4"], "--input-size"),
])
def test_bad_rank_input_exit_2_with_one_error_line(argv, words, tmp_path, capsys):
    out = tmp_path / "out.parquet"
    code, _out, err = run_cli(capsys, "sweep", "--depth", "1", *argv, "-o", out)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], err
    assert not out.exists()


def test_bad_rank_in_toml_names_the_key(tmp_path, capsys):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text("rank = 5\n")
    code, _out, err = run_cli(capsys, "sweep", "--spec", spec_file, "--dry-run")
    assert code == 2 and err.startswith("error:") and "rank" in err and len(err.strip().splitlines()) == 1


def test_rank_three_overflow_is_refused_and_the_edge_is_exact(tmp_path, capsys):
    """k^3 and n^3 grow fast: a grid safe at rank 2 can overflow at rank 3; just within, values are exact."""
    values = dict(depth="1", kernel="7", stride="1", dilation="1", channels="4096", in_channels=4096,
                  input_size=4096)
    GridSpec.build(values)  # rank 2: within int64
    with pytest.raises(RfsweepError, match="64-bit"):
        GridSpec.build({**values, "rank": 3})
    code, _out, err = run_cli(capsys, "sweep", "--depth", "1", "--kernel", "7", "--channels", "4096",
                              "--in-channels", "4096", "--input-size", "4096", "--rank", "3", "-o",
                              tmp_path / "x.parquet")
    assert code == 2 and "64-bit" in err and len(err.strip().splitlines()) == 1
    edge = GridSpec.build(dict(depth="1-2", kernel="7", stride="1", dilation="1", channels="1024",
                               in_channels=1024, input_size=1024, rank=3))
    df, _meta = _rows(edge, tmp_path)
    layer = 7 ** 3 * 1024 * 1024
    assert df.params.tolist() == [layer + 1024, 2 * (layer + 1024)]
    assert df.macs.tolist() == [layer * 1024 ** 3, 2 * layer * 1024 ** 3]
    assert df.flops.tolist() == [2 * m for m in df.macs.tolist()] and max(df.macs) > 2 ** 53
    assert math.isfinite(df.erf_ratio.max())


# ------------------------------------------------------------------ the commands around sweeps, at rank 1 and 3

def _conv_stack_module(text: str, rank: int, c_in: int):
    """nn.Conv{r}d stack of stride-1 'same' compact strings (c5x8, c3d2x8, c3p1x8), built here."""
    import re

    modules = []
    for k, d, c in re.findall(r"c(\d+)(?:p\d+)?(?:d(\d+))?x(\d+)", text):
        k, d, c = int(k), int(d or 1), int(c)
        modules.append(getattr(torch.nn, f"Conv{rank}d")(c_in, c, k, padding=d * (k - 1) // 2, dilation=d))
        c_in = c
    return torch.nn.Sequential(*modules)


def _torch_costs(module, rank: int, size: int, c_in: int) -> tuple[int, int]:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        module(torch.zeros((1, c_in) + (size,) * rank))
    return sum(p.numel() for p in module.parameters()), counter.get_total_flops() // 2


@pytest.mark.parametrize("rank, size", [(1, 100), (3, 10)])
def test_compare_at_rank_against_torch(rank, size, capsys):
    code, out, err = run_cli(capsys, "compare", "--rf", "7", "--channels", "4", "--rank", rank,
                             "--input-size", size, "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["rank"] == rank and len(result["rows"]) >= 3
    for row in result["rows"]:
        params, macs = _torch_costs(_conv_stack_module(row["stack"], rank, 4), rank, size, 4)
        assert (row["params"], row["macs"]) == (params, macs), row["stack"]
    single = next(row for row in result["rows"] if row["single"])
    assert single["params"] == 7 ** rank * 16 + 4
    code, out, err = run_cli(capsys, "compare", "--rf", "7", "--channels", "4", "--rank", rank, "--input-size", size)
    assert code == 0 and ("one 7-tap conv" if rank == 1 else "one 7x7x7 conv") in out, out
    code, out, _err = run_cli(capsys, "compare", "--rf", "7", "--format", "json")
    assert "rank" not in json.loads(out)  # rank 2: the JSON of before


def test_show_pareto_report_measure_on_a_rank_three_sweep(tmp_path, capsys):
    sweep = tmp_path / "r3.parquet"
    code, _out, err = run_cli(capsys, "sweep", "--rank", "3", "--input-size", "12", "--depth", "1-2", "--kernel", "3",
                              "--stride", "1,2", "--dilation", "1", "--channels", "4", "-q", "-o", sweep)
    assert code == 0, err
    rows = pd.read_parquet(sweep).set_index("config_id")
    spec = GridSpec.build({**json.loads(pq.read_metadata(sweep).metadata[b"rfsweep"])["spec"]})
    for config_id in rows.index[:4]:
        code, out, err = run_cli(capsys, "show", sweep, config_id, "--format", "json")
        assert code == 0, err
        total = json.loads(out)["total"]
        assert all(total[key] == rows.loc[config_id, key] for key in COLUMNS), config_id
        module = _torch_stack(spec, int(config_id))
        assert _torch_costs(module.float(), 3, 12, 3) == (rows.loc[config_id, "params"], rows.loc[config_id, "macs"])
    front = tmp_path / "front.parquet"
    code, _out, err = run_cli(capsys, "pareto", sweep, "--minimize", "macs", "--maximize", "rf", "-o", front)
    assert code == 0, err
    front_ids = pd.read_parquet(front).config_id.tolist()
    code, out, err = run_cli(capsys, "show", front, front_ids[-1], "--format", "json")
    assert code == 0 and json.loads(out)["total"]["macs"] == rows.loc[front_ids[-1], "macs"]
    html_path = tmp_path / "r3.html"
    code, _out, err = run_cli(capsys, "report", sweep, "-o", html_path)
    assert code == 0, err
    page = html_path.read_text()
    assert "one RxRxR conv" in page and "12x12x12 input" in page
    assert f"{rows.loc[front_ids[-1], 'macs']:,}" in page  # the explain table of a front row, at rank 3
    timed = tmp_path / "timed.parquet"
    code, _out, err = run_cli(capsys, "measure", sweep, "-o", timed, "--top", "2", "--min-time", "0.001",
                              "--max-time", "0.01", "--warmup", "1", "-q")
    assert code == 0, err
    table = pq.read_table(timed)
    assert json.loads(table.schema.metadata[b"rfsweep"])["timing"]["input_size"] == [12, 12, 12]
    for row in table.to_pylist():
        assert row["macs"] == rows.loc[row["config_id"], "macs"] and row["latency_ms"] > 0


def test_bench_at_rank_one_builds_conv1d_costs(capsys):
    code, out, err = run_cli(capsys, "bench", "c3x8,c3x8", "c5x8", "--rank", "1", "--input-size", "1000",
                             "--in-channels", "8", "--min-time", "0.001", "--max-time", "0.01", "--warmup", "1",
                             "-q", "--format", "json")
    assert code == 0, err
    for row in json.loads(out)["rows"]:
        params, macs = _torch_costs(_conv_stack_module(row["stack"], 1, 8), 1, 1000, 8)
        assert (row["params"], row["macs"]) == (params, macs), row
    from rfsweep.timing import BenchSetup, as_network, stack_step

    module, x, _step = stack_step(as_network("c3x8,mp2", 1000, 8, 1), BenchSetup())  # what bench times
    assert tuple(x.shape) == (1, 8, 1000)
    assert {type(m).__name__ for m in module.modules()} >= {"Conv1d", "MaxPool1d"}
    code, _out, err = run_cli(capsys, "bench", "c3x8", "--rank", "3", "--input-size", "8_8", "-q")
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_a_directory_of_parts_equals_one_file_at_rank_three(tmp_path):
    from rfsweep.distributed import run_local_parts, spec_of_output

    def plain(df):  # dictionary columns as strings: their categories depend on the file
        return df.assign(**{c: df[c].astype(str) for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)})

    spec = GridSpec.build({**GRID, "rank": 3})
    one, _meta = _rows(spec, tmp_path)
    run_local_parts(spec, tmp_path / "parts", 3, workers=2, chunk_ids=5)
    parts = pd.read_parquet(tmp_path / "parts").reset_index(drop=True)
    assert plain(parts).equals(plain(one))
    assert spec_of_output(tmp_path / "parts") == spec and spec_of_output(tmp_path / "parts").rank == 3
