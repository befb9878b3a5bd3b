"""rfsweep.analysis: compare (one RxR conv vs stacks of small ones) and exact Pareto fronts.

Fronts are checked against an O(n^2) brute force on random tables with ties
and duplicates, and on real sweep files; the CLI commands through a Typer app
that `register(app)` fills, run by the real entry point `rfsweep.cli.main`.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import typer

import cli_helpers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rfsweep
from rfsweep import RfsweepError, analysis
from rfsweep.errors import OutputError
from rfsweep.analysis import compare, pareto_file, pareto_front, write_front

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ brute force

def brute_front(X: np.ndarray) -> set[int]:
    """Positions of rows of X (n, m; minimise all) that no other row dominates: O(n^2)."""
    X = np.asarray(X, dtype=np.float64)
    keep = set()
    for start in range(0, len(X), 512):
        block = X[start:start + 512]
        le = (X[None, :, :] <= block[:, None, :]).all(axis=2)
        lt = (X[None, :, :] < block[:, None, :]).any(axis=2)
        dominated = (le & lt).any(axis=1)
        keep.update(int(i) + start for i in np.flatnonzero(~dominated))
    return keep


def brute_df_front(df: pd.DataFrame, minimize, maximize) -> set:
    X = np.column_stack([df[c].to_numpy(np.float64) for c in minimize]
                        + [-df[c].to_numpy(np.float64) for c in maximize])
    return {df.index[i] for i in brute_front(X)}


# ------------------------------------------------------------------ compare

def test_compare_rf7_is_cs231n_three_3x3_against_one_7x7():
    rows = compare(7, channels=64)
    by_stack = {row["stack"]: row for row in rows}
    assert set(by_stack) == {"c3x64,c3x64,c3x64", "c5x64,c3x64", "c7x64"}
    best = rows[0]
    assert best["best"] and best["stack"] == "c3x64,c3x64,c3x64" and best["depth"] == 3
    assert best["params"] == 3 * (9 * 64 * 64 + 64) == 110_784
    single = by_stack["c7x64"]
    assert single["single"] and not single["best"] and single["params"] == 49 * 64 * 64 + 64 == 200_768
    assert best["params_ratio"] == pytest.approx(110_784 / 200_768)
    assert round(best["params_ratio"], 2) == 0.55
    assert best["macs"] == 3 * 9 * 64 * 64 * 56 * 56 and single["macs"] == 49 * 64 * 64 * 56 * 56
    assert best["erf_ratio"] == pytest.approx(np.sqrt(2) / 2) and single["erf_ratio"] == 1.0
    assert [row["best"] for row in rows].count(True) == 1


@pytest.mark.parametrize("channels", [1, 3, 16, 64, 512])
def test_compare_rf5_is_vgg_two_3x3_against_one_5x5(channels):
    rows = compare(5, channels=channels)
    C = channels
    assert [(row["stack"], row["params"]) for row in rows] == [
        (f"c3x{C},c3x{C}", 18 * C * C + 2 * C), (f"c5x{C}", 25 * C * C + C)]
    assert rows[0]["best"] and rows[1]["single"]
    assert rows[0]["params_ratio"] == pytest.approx((18 * C * C + 2 * C) / (25 * C * C + C))


def _layers_of(text: str) -> tuple:
    """'c5d2x8,c3x8' -> ((5, 2), (3, 1))"""
    out = []
    for token in text.split(","):
        kernel, _, rest = token[1:].partition("x")
        k, _, d = kernel.partition("d")
        out.append((int(k), int(d or 1)))
    return tuple(out)


@FAST
@given(rf=st.integers(1, 13), max_depth=st.integers(1, 4),
       kernels=st.sets(st.integers(1, 7), min_size=1, max_size=4),
       dilations=st.sets(st.integers(1, 3), min_size=1, max_size=2))
def test_compare_lists_every_multiset_once(rf, max_depth, kernels, dilations):
    rows = compare(rf, channels=8, max_depth=max_depth, kernels=sorted(kernels), dilations=sorted(dilations),
                   input_size=64)
    single = [row for row in rows if row["single"]]
    assert len(single) == 1 and single[0]["stack"] == f"c{rf}x8"
    got = [tuple(sorted(_layers_of(row["stack"]))) for row in rows if not row["single"]]
    assert len(got) == len(set(got)), "a multiset appears twice"
    options = [(k, d) for k in kernels for d in dilations if k > 1]
    want = {tuple(sorted(combo)) for depth in range(1, max_depth + 1)
            for combo in itertools.product(options, repeat=depth)
            if sum(d * (k - 1) for k, d in combo) == rf - 1} - {((rf, 1),)}
    assert set(got) == want
    for row in rows:
        assert row["rf"] == rf
        assert row["depth"] == len(_layers_of(row["stack"]))
        assert row["params_ratio"] == pytest.approx(row["params"] / single[0]["params"])
        assert row["params"] == rfsweep.analyze(row["stack"], 64, 8)["total"]["params"]
    assert [(r["params"], r["depth"]) for r in rows] == sorted((r["params"], r["depth"]) for r in rows)
    assert rows[0]["best"] and sum(row["best"] for row in rows) == 1


def test_compare_with_other_input_channels_varies_the_first_layer():
    rows = compare(7, channels=64, in_channels=3)
    stacks = {row["stack"]: row["params"] for row in rows}
    assert stacks["c5x64,c3x64"] == 25 * 3 * 64 + 64 + 9 * 64 * 64 + 64
    assert stacks["c3x64,c5x64"] == 9 * 3 * 64 + 64 + 25 * 64 * 64 + 64
    assert stacks["c7x64"] == 49 * 3 * 64 + 64
    assert rows[0]["stack"] == "c7x64" and rows[0]["best"] and rows[0]["single"]


@pytest.mark.parametrize("kwargs, word", [
    (dict(rf=0), "rf"), (dict(rf=7, channels=0), "channels"), (dict(rf=7, max_depth=0), "max_depth"),
    (dict(rf=7, max_depth=99), "max_depth"), (dict(rf=7, kernels=()), "kernel"),
    (dict(rf=7, dilations=(0,)), "dilations"), (dict(rf=7, input_size=0), "input_size"),
])
def test_compare_rejects_bad_input(kwargs, word):
    with pytest.raises(RfsweepError, match=word):
        compare(**kwargs)


# ------------------------------------------------------------------ pareto_front

@st.composite
def tables(draw, max_rows=40):
    m = draw(st.integers(1, 4))
    n = draw(st.integers(0, max_rows))
    spread = draw(st.integers(1, 6))  # few distinct values: many ties and duplicate rows
    data = {}
    for c in range(m):
        kind = draw(st.sampled_from(["int", "uint", "float"]))
        values = draw(st.lists(st.integers(0, spread), min_size=n, max_size=n))
        data[f"o{c}"] = np.array(values, {"int": np.int64, "uint": np.uint32, "float": np.float32}[kind])
    data["payload"] = np.arange(n)
    df = pd.DataFrame(data, index=np.arange(n) * 3 + 7)  # labels != positions
    flips = draw(st.lists(st.booleans(), min_size=m, max_size=m))
    minimize = [f"o{c}" for c in range(m) if not flips[c]]
    maximize = [f"o{c}" for c in range(m) if flips[c]]
    return df, minimize, maximize


def _check_front(df, minimize, maximize):
    front = pareto_front(df, minimize=minimize, maximize=maximize)
    assert set(front.index) == brute_df_front(df, minimize, maximize)
    assert list(front.columns) == list(df.columns)
    # best first: sorted by the objectives in the order given (maximised ones descending)
    keys = [tuple(row) for row in np.column_stack(
        [front[c].to_numpy(np.float64) for c in minimize] + [-front[c].to_numpy(np.float64) for c in maximize])]
    assert keys == sorted(keys)
    return front


@FAST
@given(tables())
def test_pareto_front_equals_brute_force(case):
    _check_front(*case)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(max_rows=200), st.integers(1, 8))
def test_pareto_front_with_the_sample_prefilter_equals_brute_force(case, filter_points):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(analysis, "SAMPLE_ROWS", 8)  # the prefilter runs from 33 rows on
        patch.setattr(analysis, "FILTER_POINTS", filter_points)
        patch.setattr(analysis, "FILTER_POINTS_WIDE", filter_points)
        _check_front(*case)


def test_pareto_front_keeps_identical_rows_and_exact_large_integers():
    big = np.iinfo(np.uint64).max
    df = pd.DataFrame({"a": np.array([big, big - 1, big - 1, 5], np.uint64),
                       "b": np.array([0, 0, 0, 2], np.int64),
                       "c": np.array([np.iinfo(np.int64).min, 0, 0, 1], np.int64)})
    # big - 1 and big are the same float64: only an exact comparison drops row 0
    assert list(pareto_front(df, ["a", "b"], []).index) == [3, 1, 2]
    assert list(pareto_front(df, ["b", "a"], ["c"]).index) == [1, 2, 3]
    assert list(pareto_front(df, [], ["c", "a"]).index) == [3, 1, 2, 0]
    assert list(pareto_front(df, [], ["c"]).index) == [3]  # negating int64's minimum does not wrap
    assert list(pareto_front(df, ["a"], ["c"]).index) == [3]
    dup = pd.DataFrame({"x": [1, 1, 2], "y": [5, 5, 5]})
    assert list(pareto_front(dup, ["x"], ["y"]).index) == [0, 1]


def test_pareto_front_validates_columns():
    df = pd.DataFrame({"a": [1, 2], "b": [1.0, np.nan], "s": ["x", "y"]})
    with pytest.raises(RfsweepError, match="'nope'"):
        pareto_front(df, ["nope"], [])
    with pytest.raises(RfsweepError, match="missing"):
        pareto_front(df, ["b"], [])
    with pytest.raises(RfsweepError, match="not numeric"):
        pareto_front(df, ["s"], [])
    with pytest.raises(RfsweepError, match="twice"):
        pareto_front(df, ["a"], ["a"])
    with pytest.raises(RfsweepError, match="at least one"):
        pareto_front(df, [], [])


def test_pareto_front_on_a_million_rows_is_fast_and_exact():
    rng = np.random.default_rng(7)
    n = 1_000_000
    df = pd.DataFrame({"params": rng.integers(0, 1 << 40, n), "macs": rng.integers(0, 1 << 50, n),
                       "rf": rng.integers(1, 300, n)})
    df["macs"] = df["macs"] // 1000 + df["params"] // 3  # correlated, like real sweeps
    front = pareto_front(df)
    # exact: every front row is undominated by every row; every other row is dominated by a front row
    X = df[["params", "macs"]].to_numpy(np.int64)
    rf = df["rf"].to_numpy()
    F = front.index.to_numpy()
    for i in F[:50]:
        le = (X[:, 0] <= X[i, 0]) & (X[:, 1] <= X[i, 1]) & (rf >= rf[i])
        lt = (X[:, 0] < X[i, 0]) | (X[:, 1] < X[i, 1]) | (rf > rf[i])
        assert not (le & lt).any()
    others = rng.choice(np.setdiff1d(np.arange(n), F), 200, replace=False)
    for i in others:
        assert ((X[F, 0] <= X[i, 0]) & (X[F, 1] <= X[i, 1]) & (rf[F] >= rf[i])).any()


# ------------------------------------------------------------------ sweep files

SMALL = {"depth": "1-3", "kernel": [1, 3, 5], "stride": [1, 2], "dilation": [1, 2], "channels": [8],
         "input_size": 32}


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "small.parquet"
    counts = rfsweep.write_range(rfsweep.GridSpec.build(SMALL), path)
    assert counts.written > 1000
    return path


def _front_ids(df, minimize, maximize):
    return set(df.loc[sorted(brute_df_front(df, minimize, maximize)), "config_id"])


@pytest.mark.parametrize("minimize, maximize", [
    (("params", "macs"), ("rf",)), (("params",), ("rf",)), (("macs",), ()),
    (("params", "erf_std"), ("rf", "out_size")), ((), ("erf_ratio", "jump")),
])
def test_pareto_file_equals_brute_force_on_the_whole_file(sweep_file, minimize, maximize, monkeypatch):
    monkeypatch.setattr(analysis, "SAMPLE_ROWS", 64)  # a 2k-row file goes through the prefilter too
    full = pd.read_parquet(sweep_file)
    front = pareto_file(sweep_file, minimize, maximize)
    assert set(front["config_id"]) == _front_ids(full, list(minimize), list(maximize))
    assert list(front.columns) == list(full.columns)
    expected = full.set_index("config_id").loc[front["config_id"]].reset_index()
    pd.testing.assert_frame_equal(front, expected[front.columns], check_dtype=False)
    assert front.attrs["rfsweep"]["pareto"]["rows_considered"] == len(full)


@pytest.mark.parametrize("where, query", [
    ("out_size>=7", "out_size >= 7"),
    ("out_size>=7, depth==2", "out_size >= 7 and depth == 2"),
    ("out_size >= 7 and rf<=9 AND params != 584", "out_size >= 7 and rf <= 9 and params != 584"),
    ("erf_ratio<0.9,jump>1", "erf_ratio < 0.9 and jump > 1"),
    ("rf>2.5", "rf > 2.5"),
    ("rf<9", "rf < 9"), ("rf<=9", "rf <= 9"), ("rf>9", "rf > 9"), ("rf>=9", "rf >= 9"),
    ("rf==9", "rf == 9"), ("rf!=9", "rf != 9"),
    ("l3_kernel==3", "l3_kernel == 3"),  # rows without a layer 3 never match
    ("rf>=-1e9, out_size<=8", "rf >= -1e9 and out_size <= 8"),
])
def test_pareto_file_where(sweep_file, where, query):
    full = pd.read_parquet(sweep_file)
    subset = full.query(query)
    assert 0 < len(subset) < len(full)
    front = pareto_file(sweep_file, ("params", "macs"), ("rf",), where=where)
    assert set(front["config_id"]) == _front_ids(subset, ["params", "macs"], ["rf"])
    assert front.attrs["rfsweep"]["pareto"]["rows_considered"] == len(subset)


@pytest.mark.parametrize("where, word", [
    ("out_size=>7", "cannot read"), ("out_size>=", "cannot read"), ("out_size>=seven", "cannot read"),
    ("foo>3", "'foo'"), ("rf>1,,rf<9", "empty clause"), ("rf>1 and", "empty clause"),
    ("rf>99999999999999999999999", "64-bit"), ("rf = 3", "cannot read"),
])
def test_pareto_file_bad_where(sweep_file, where, word):
    with pytest.raises(RfsweepError, match=word):
        pareto_file(sweep_file, where=where)


def test_pareto_file_rejects_bad_columns_and_paths(sweep_file, tmp_path):
    with pytest.raises(RfsweepError, match="'size'"):
        pareto_file(sweep_file, ("size",), ())
    with pytest.raises(RfsweepError, match="not found"):
        pareto_file(tmp_path / "none.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(RfsweepError, match="not a readable"):
        pareto_file(tmp_path / "junk.parquet")


def test_pareto_file_rejects_a_string_where_column(tmp_path):
    path = tmp_path / "typed.parquet"
    rfsweep.write_range(rfsweep.GridSpec.build({"depth": "1-2", "types": "conv,maxpool", "kernel": [2, 3],
                                                "stride": [1, 2], "dilation": [1], "channels": [4],
                                                "input_size": 16}), path)
    with pytest.raises(RfsweepError, match="not numeric"):
        pareto_file(path, where="l1_type==0")
    with pytest.raises(RfsweepError, match="not numeric"):
        pareto_file(path, ("l1_type",), ())
    front = pareto_file(path, where="l1_kernel==3")
    assert set(front["l1_type"].astype(str)) <= {"conv", "maxpool"}


@pytest.mark.parametrize("where, keep", [
    ("l1_type==maxpool", lambda df: df.l1_type.astype(str) == "maxpool"),
    ("l1_type != 'maxpool', rf>=3", lambda df: (df.l1_type.astype(str) != "maxpool") & (df.rf >= 3)),
    ('l2_type=="conv"', lambda df: df.l2_type.astype(str) == "conv"),  # no layer 2: never matches
])
def test_pareto_file_where_on_a_text_column(tmp_path, where, keep):
    path = tmp_path / "typed.parquet"
    rfsweep.write_range(rfsweep.GridSpec.build({"depth": "1-2", "types": "conv,maxpool", "kernel": [2, 3],
                                                "stride": [1, 2], "dilation": [1], "channels": [4],
                                                "input_size": 16}), path)
    full = pd.read_parquet(path)
    subset = full[keep(full).fillna(False).astype(bool)]
    assert 0 < len(subset) < len(full)
    front = pareto_file(path, ("params", "macs"), ("rf",), where=where)
    assert set(front["config_id"]) == _front_ids(subset, ["params", "macs"], ["rf"])
    with pytest.raises(RfsweepError, match="not text"):
        pareto_file(path, where="rf==conv")
    with pytest.raises(RfsweepError, match="cannot read"):
        pareto_file(path, where="l1_type>conv")


@pytest.mark.parametrize("where, query", [("macs < 3e7", "macs < 3e7"), ("macs < 2.99e7", "macs < 2.99e7"),
                                          ("macs <= 30000000.5", "macs <= 30000000.5")])
def test_pareto_file_where_a_float_on_a_large_integer_column(tmp_path, where, query):
    """Arrow casts an integer column to float32 against a float literal and fails past 2**24: compared exactly."""
    path = tmp_path / "large.parquet"
    rfsweep.write_range(rfsweep.GridSpec.build({"depth": "1-2", "kernel": [3, 5], "stride": [1, 2], "dilation": [1],
                                                "channels": [16, 64], "input_size": 224}), path)
    full = pd.read_parquet(path)
    subset = full.query(query)
    assert full.macs.max() > 2 ** 24 and 0 < len(subset) < len(full)
    front = pareto_file(path, ("params", "macs"), ("rf",), where=where)
    assert set(front["config_id"]) == _front_ids(subset, ["params", "macs"], ["rf"])


def test_pareto_file_top(sweep_file):
    front = pareto_file(sweep_file)
    top = pareto_file(sweep_file, top=3)
    pd.testing.assert_frame_equal(top, front.head(3))


def test_pareto_on_a_sharded_directory_needs_the_manifest(sweep_file, tmp_path):
    from rfsweep.distributed import MANIFEST, run_shard

    spec = rfsweep.GridSpec.build(SMALL)
    parts = tmp_path / "parts"
    run_shard(spec, parts, 0, 3)
    run_shard(spec, parts, 2, 3)
    (parts / ".part-00001-of-00003.parquet.123.tmp").write_text("half-written")  # a live shard's temp file
    with pytest.raises(RfsweepError, match="incomplete run"):
        pareto_file(parts)
    present = pd.read_parquet(parts)
    loose = pareto_file(parts, allow_incomplete=True)
    assert set(loose["config_id"]) == _front_ids(present, ["params", "macs"], ["rf"])
    run_shard(spec, parts, 1, 3)  # the last shard writes the manifest
    assert (parts / MANIFEST).is_file()
    whole = pareto_file(sweep_file)
    done = pareto_file(parts)
    pd.testing.assert_frame_equal(done, whole)
    assert done.attrs["rfsweep"]["pareto"]["source_counts"] == json.loads(
        pq.read_metadata(sweep_file).metadata[b"rfsweep"])["counts"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RfsweepError, match="incomplete run"):
        pareto_file(empty)
    with pytest.raises(RfsweepError, match="no Parquet parts"):
        pareto_file(empty, allow_incomplete=True)


def test_write_front_is_atomic_and_keeps_the_sweep_schema(sweep_file, tmp_path):
    front = pareto_file(sweep_file)
    out = tmp_path / "front.parquet"
    assert write_front(front, out) == out
    assert [p.name for p in tmp_path.iterdir()] == ["front.parquet"]
    assert pq.read_schema(out).remove_metadata() == pq.read_schema(sweep_file).remove_metadata()
    back = pd.read_parquet(out)
    pd.testing.assert_frame_equal(back, front)
    meta = json.loads(pq.read_metadata(out).metadata[b"rfsweep"])
    assert meta["pareto"]["minimize"] == ["params", "macs"] and meta["spec"]["kernel"] == [1, 3, 5]
    cid = int(front["config_id"].iloc[-1])
    assert rfsweep.stack_of(out, cid) == rfsweep.stack_of(sweep_file, cid)
    with pytest.raises(RfsweepError, match="does not exist"):
        write_front(front, tmp_path / "missing" / "front.parquet")


def test_write_front_failure_leaves_the_old_file(sweep_file, tmp_path, monkeypatch):
    front = pareto_file(sweep_file)
    out = tmp_path / "front.parquet"
    write_front(front.head(2), out)
    before = out.read_bytes()

    def disk_full(table, where, **kwargs):
        with open(where, "wb") as handle:
            handle.write(b"PAR1 half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", disk_full)
    with pytest.raises(OutputError, match="No space left"):  # the machine's fault, not bad input: exit 1
        write_front(front, out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["front.parquet"]
    monkeypatch.undo()
    plain = pd.DataFrame({"a": [1, 2]})
    write_front(plain, tmp_path / "plain.parquet")
    assert pd.read_parquet(tmp_path / "plain.parquet").equals(plain)


# ------------------------------------------------------------------ CLI

@pytest.fixture
def run_cli(capsys):
    """Run argv through rfsweep.cli.main in-process: (code, out, err)."""
    return lambda *argv: cli_helpers.run_cli(capsys, *argv)


def test_register_adds_both_commands():
    from rfsweep.cli.analysis import register

    app = typer.Typer()
    register(app)
    assert [c.callback.__name__ for c in app.registered_commands] == ["compare", "pareto"]
    assert all(c.help for c in app.registered_commands)


def test_cli_compare_table_and_json(run_cli, tmp_path):
    code, out, err = run_cli("compare", "--rf", "7", "--channels", "64")
    assert code == 0, err
    lines = {line.split()[1 if "best" in line or "single" in line else 0].strip("│ "): line
             for line in out.splitlines() if "x64 " in line}
    best = next(line for line in out.splitlines() if "c3x64,c3x64,c3x64" in line)
    single = next(line for line in out.splitlines() if "c7x64 " in line)
    assert "best" in best and "110,784" in best and "0.552" in best and "0.707" in best
    assert "single" in single and "200,768" in single and "1.000" in single
    assert len(lines) == 3
    code, out, err = run_cli("compare", "--rf", "7", "--kernels", "3,5", "--dilation", "1,2", "--format", "json",
                             "--plot", tmp_path / "c.png")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["rows"] == compare(7, 64, 4, (3, 5), (1, 2), 56)
    assert (tmp_path / "c.png").stat().st_size > 0


@pytest.mark.parametrize("argv, word", [
    (["compare", "--rf", "0"], "rf"), (["compare", "--rf", "7", "--kernels", "3,x"], "--kernels"),
    (["compare", "--rf", "7", "--format", "xml"], "format"), (["compare"], "--rf"),
])
def test_cli_compare_errors_exit_2(run_cli, argv, word):
    code, out, err = run_cli(*argv)
    assert code == 2 and out == ""
    assert err.startswith("error:") and word in err and "Traceback" not in err


def test_cli_pareto(run_cli, sweep_file, tmp_path):
    out_file, png = tmp_path / "front.parquet", tmp_path / "front.png"
    code, out, err = run_cli("pareto", sweep_file, "--where", "out_size>=7", "--top", "4", "-o", out_file,
                             "--plot", png, "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    front = pareto_file(sweep_file, where="out_size>=7")
    assert doc["front_rows"] == len(front) and doc["shown"] == 4 == len(doc["rows"])
    assert [row["config_id"] for row in doc["rows"]] == front["config_id"].head(4).tolist()
    first = doc["rows"][0]
    assert first["stack"] == rfsweep.stack_of(sweep_file, first["config_id"]).compact()
    pd.testing.assert_frame_equal(pd.read_parquet(out_file), front)
    assert png.stat().st_size > 0
    code, out, err = run_cli("pareto", sweep_file, "--minimize", "params", "--maximize", "rf,erf_ratio")
    assert code == 0, err
    assert f"of {len(pd.read_parquet(sweep_file)):,} rows are on the front" in out and "stack" in out


@pytest.mark.parametrize("argv, word", [
    (["--minimize", "params,nope"], "'nope'"), (["--where", "rf=>3"], "cannot read"),
    (["--top", "-1"], "--top"), (["--minimize", "params", "--maximize", "params"], "twice"),
])
def test_cli_pareto_errors_exit_2(run_cli, sweep_file, argv, word):
    code, out, err = run_cli("pareto", sweep_file, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error:") and word in err


def test_cli_pareto_incomplete_directory(run_cli, tmp_path):
    from rfsweep.distributed import run_shard

    run_shard(rfsweep.GridSpec.build({**SMALL, "depth": "1-2"}), tmp_path / "out", 0, 2)
    code, _, err = run_cli("pareto", tmp_path / "out")
    assert code == 2 and "incomplete run" in err and "--allow-incomplete" in err
    code, out, err = run_cli("pareto", tmp_path / "out", "--allow-incomplete")
    assert code == 0, err
    assert "stack" in out and "x8" in out  # stack strings from the parts' own spec metadata


def test_pareto_refuses_repeated_config_ids_on_the_front(run_cli, tmp_path):
    """Two rows with one config_id, both on the front (hypothesis found it): exit 2, not a pandas error."""
    import pandas as pd

    path = tmp_path / "twice.parquet"
    pd.DataFrame({"config_id": [1, 1], "params": [1, 1], "macs": [1, 1], "rf": [1, 1]}).to_parquet(path)
    code, _, err = run_cli("pareto", path)
    assert code == 2
    assert "config_id is not unique" in err
