"""The sweep engine against the naive reference (tests/naive_sweep.py) and itself.

* every row and every count of random small grids equals a pure-Python
  enumeration (config_id, totals, per-layer columns, nulls past depth);
* every row equals `analyze` on the stack that `stack_of` rebuilds;
* config_id decode/encode round-trips;
* the file does not depend on threads or chunk size;
* pruning never drops a stack that satisfies the constraints;
* a partial id range is exactly the matching slice of the full run.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import rfsweep
from rfsweep import GridSpec, RfsweepError, write_range

from naive_sweep import columns, enumerate_grid, naive_sweep, observed_values

FLOAT_COLUMNS = ("erf_std", "erf_ratio")
MAX_NAIVE_STACKS = 2500


# ---------------------------------------------------------------- helpers

COUNT_KEYS = ("enumerated", "invalid", "pruned", "written")


def contract_counts(counts: dict) -> dict:
    """The contract's four counts (a run may store more, e.g. how many ids block skipping covered)."""
    assert set(COUNT_KEYS) <= set(counts), counts
    if "skipped" in counts:
        assert 0 <= counts["skipped"] <= counts["invalid"] + counts["pruned"], counts
    return {key: counts[key] for key in COUNT_KEYS}


def file_counts(path) -> dict:
    meta = json.loads(pq.read_metadata(path).metadata[b"rfsweep"])
    return contract_counts(meta["counts"])


def frame_rows(frame: pd.DataFrame) -> list[dict]:
    """DataFrame -> list of plain dicts: ints as int, nulls as None, categories as str."""
    out = []
    for record in frame.to_dict("records"):
        row = {}
        for key, value in record.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                row[key] = None
            elif key in FLOAT_COLUMNS:
                row[key] = float(value)
            elif isinstance(value, str):
                row[key] = value
            else:
                as_float = float(value)
                assert as_float == int(as_float), (key, value)
                row[key] = int(value)
        out.append(row)
    return out


def assert_rows_equal(got: list[dict], want: list[dict]) -> None:
    assert [r["config_id"] for r in got] == [r["config_id"] for r in want]
    for g, w in zip(got, want):
        assert g.keys() == w.keys(), (sorted(g), sorted(w))
        exact_g = {k: v for k, v in g.items() if k not in FLOAT_COLUMNS}
        exact_w = {k: v for k, v in w.items() if k not in FLOAT_COLUMNS}
        assert exact_g == exact_w, f"config_id {w['config_id']}"
        for key in FLOAT_COLUMNS:  # stored as float32
            assert math.isclose(g[key], w[key], rel_tol=2e-6, abs_tol=1e-6), (w["config_id"], key, g[key], w[key])


def grid_total(values: dict) -> int:
    radix = math.prod(len(values[key]) for key in ("types", "kernel", "stride", "dilation", "padding", "channels"))
    return sum(radix ** d for d in values["depth"])


def shrink_to(values: dict, limit: int) -> dict:
    """Drop trailing choices (then the deepest depth) until the grid has <= limit stacks."""
    values = {k: (list(v) if isinstance(v, list) else v) for k, v in values.items()}
    while grid_total(values) > limit:
        longest = max(("kernel", "stride", "dilation", "padding", "channels", "types"),
                      key=lambda key: len(values[key]))
        if len(values[longest]) > 1:
            values[longest].pop()
        else:
            values["depth"].pop()
    return values


@st.composite
def spec_values(draw, limit: int | None = MAX_NAIVE_STACKS) -> dict:
    """Raw GridSpec.build values of a random small grid (at most `limit` stacks)."""
    depth = draw(st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=3, unique=True).map(sorted))
    values = dict(
        depth=depth,
        types=draw(st.sampled_from([["conv"], ["conv", "maxpool"], ["conv", "avgpool", "maxpool"]])),
        kernel=draw(st.lists(st.integers(1, 7), min_size=1, max_size=3, unique=True)),
        stride=draw(st.lists(st.integers(1, 3), min_size=1, max_size=3, unique=True)),
        dilation=draw(st.lists(st.integers(1, 2), min_size=1, max_size=2, unique=True)),
        padding=draw(st.lists(st.sampled_from(["same", "valid", 0, 1, 2, 3]), min_size=1, max_size=3,
                              unique=True)),
        channels=draw(st.lists(st.integers(1, 64), min_size=1, max_size=3, unique=True)),
        input_size=draw(st.integers(1, 40)),
        in_channels=draw(st.integers(1, 4)),
        bias=draw(st.booleans()),
    )
    if limit is not None:
        values = shrink_to(values, limit)
    mode = draw(st.sampled_from(["none", "random", "boundary", "boundary"]))
    keys = (("min_rf", "rf", 1, 30), ("max_rf", "rf", 1, 60), ("max_params", "params", 0, 50_000),
            ("max_macs", "macs", 0, 5_000_000), ("min_out_size", "out_size", 1, 30))
    if mode == "boundary" and limit is None:
        mode = "random"  # too big to walk in Python
    seen = observed_values(GridSpec.build(values)) if mode == "boundary" else {}
    for key, column, low, high in keys:
        values[key] = None
        if mode == "none" or not draw(st.booleans()):
            continue
        if mode == "boundary" and seen[column]:
            # exactly on (or one off) a value some stack or prefix reaches: limits are inclusive
            value = draw(st.sampled_from(sorted(seen[column]))) + draw(st.sampled_from([-1, 0, 0, 1]))
            values[key] = max(low, value)
        else:
            values[key] = draw(st.integers(low, high))
    return values


def read_rows(path) -> list[dict]:
    return frame_rows(pd.read_parquet(path))


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory(prefix="rfsweep-test-") as name:
        yield Path(name)


# ---------------------------------------------------------------- against the naive reference

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=spec_values())
def test_rows_and_counts_match_naive_reference(values, scratch):
    spec = GridSpec.build(values)
    out = scratch / "naive.parquet"
    counts = write_range(spec, out)
    want_rows, want_counts = naive_sweep(spec)

    frame = pd.read_parquet(out)
    assert list(frame.columns) == columns(spec)
    for name in frame.columns:
        if name not in FLOAT_COLUMNS and not name.endswith("_type") and frame[name].notna().all():
            assert pd.api.types.is_integer_dtype(frame[name]), (name, frame[name].dtype)
    assert_rows_equal(frame_rows(frame), want_rows)

    stored = file_counts(out)
    event(f"stacks: {'<100' if spec.total < 100 else '<1000' if spec.total < 1000 else '>=1000'}")
    event(f"kept/invalid/pruned present: {[bool(want_counts[k]) for k in ('written', 'invalid', 'pruned')]}")
    event(f"max depth {max(spec.depth)}, types {len(spec.types)}")
    assert stored == want_counts
    assert contract_counts(counts.as_dict()) == want_counts
    assert stored["enumerated"] == stored["invalid"] + stored["pruned"] + stored["written"] == spec.total
    assert stored["written"] == len(frame)
    # the stored spec is the normalised one and rebuilds the same grid
    assert GridSpec.build(json.loads(pq.read_metadata(out).metadata[b"rfsweep"])["spec"]) == spec


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=spec_values(limit=1500), data=st.data())
def test_random_range_threads_and_chunks_match_naive_reference(values, data, scratch):
    spec = GridSpec.build(values)
    lo = data.draw(st.integers(0, spec.total), label="lo")
    hi = data.draw(st.integers(lo, spec.total), label="hi")
    threads = data.draw(st.sampled_from([1, 2]), label="threads")
    chunk_ids = data.draw(st.sampled_from([1, 5, 64, 1 << 20]), label="chunk_ids")
    out = scratch / "range.parquet"
    counts = write_range(spec, out, lo, hi, threads=threads, chunk_ids=chunk_ids)
    want_rows, want_counts = naive_sweep(spec, lo, hi)
    assert_rows_equal(read_rows(out), want_rows)
    assert file_counts(out) == want_counts == contract_counts(counts.as_dict())
    assert want_counts["enumerated"] == hi - lo


@pytest.mark.parametrize("limit", [dict(max_rf=4), dict(min_out_size=3)], ids=["max_rf", "min_out_size"])
def test_naive_reference_classification_example(limit):
    """Pin the reference itself on a hand-checked grid (so the two cannot drift together).

    Choices per layer: 0 c3x4, 1 c3d2x4, 2 mp3, 3 mp3 at the duplicate dilation position
    (invalid); 'valid' padding on a 6x6 input. Layer 1 = c3d2 gives rf 5 and a 2x2 map:
    pruned there by max_rf=4 (or by min_out_size=3, since no layer can grow the map),
    so its four depth-2 stacks count as pruned although their layer 2 is invalid.
    """
    spec = GridSpec.build(dict(depth=[1, 2], types=["conv", "maxpool"], kernel=[3], stride=[1],
                               dilation=[1, 2], padding=["valid"], channels=[4], input_size=6,
                               in_channels=1, **limit))
    rows, counts = naive_sweep(spec)
    # depth 1 (ids 0-3): kept, pruned, kept, invalid
    # depth 2 (id 4 + 4*a + b): a in (0, 2): b=0,2 pruned (rf 5, 2x2), b=1,3 invalid;
    #                           a=1: 4 pruned at layer 1; a=3: 4 invalid
    assert counts == dict(enumerated=20, invalid=9, pruned=9, written=2)
    assert rows == [
        dict(config_id=0, depth=1, rf=3, jump=1, out_size=4, out_channels=4, params=40, macs=576, flops=1152,
             erf_std=math.sqrt(8 / 12), erf_ratio=1.0, l1_type="conv", l1_kernel=3, l1_stride=1,
             l1_dilation=1, l1_padding=0, l1_channels=4, l2_type=None, l2_kernel=None, l2_stride=None,
             l2_dilation=None, l2_padding=None, l2_channels=None),
        dict(config_id=2, depth=1, rf=3, jump=1, out_size=4, out_channels=1, params=0, macs=0, flops=0,
             erf_std=math.sqrt(8 / 12), erf_ratio=1.0, l1_type="maxpool", l1_kernel=3, l1_stride=1,
             l1_dilation=1, l1_padding=0, l1_channels=1, l2_type=None, l2_kernel=None, l2_stride=None,
             l2_dilation=None, l2_padding=None, l2_channels=None),
    ]


# ---------------------------------------------------------------- against analyze

def test_every_row_equals_analyze_of_stack_of(scratch):
    spec = GridSpec.build(dict(depth=[1, 2], types=["conv", "avgpool", "maxpool"], kernel=[1, 3],
                               stride=[1, 2], dilation=[1, 2], padding=["same", 1], channels=[3, 8],
                               input_size=13, in_channels=2, bias=False))
    out = scratch / "analyze.parquet"
    write_range(spec, out)
    frame = pd.read_parquet(out)
    assert len(frame) > 300
    assert set(frame["l1_type"]) == {"conv", "avgpool", "maxpool"}
    for row in frame_rows(frame):
        stack = rfsweep.stack_of(out, row["config_id"])
        assert len(stack.layers) == row["depth"]
        total = rfsweep.analyze(stack)["total"]
        for key in ("rf", "jump", "out_size", "out_channels", "params", "macs", "flops"):
            assert total[key] == row[key], (row["config_id"], key, total[key], row[key])
        for key in FLOAT_COLUMNS:
            assert math.isclose(total[key], row[key], rel_tol=2e-6, abs_tol=1e-6), (row["config_id"], key)


# ---------------------------------------------------------------- config_id

@settings(max_examples=100, deadline=None)
@given(values=spec_values(limit=None), data=st.data())
def test_config_id_round_trip(values, data):
    spec = GridSpec.build(values)
    config_id = data.draw(st.integers(0, spec.total - 1), label="config_id")
    depth, digits = spec.decode(config_id)
    assert depth in spec.depth and len(digits) == depth
    assert all(0 <= digit < spec.radix for digit in digits)
    assert spec.encode(digits) == config_id
    with pytest.raises(RfsweepError):
        spec.decode(spec.total)


def test_config_id_order_matches_itertools_product():
    spec = GridSpec.build(dict(depth=[1, 3], types=["avgpool", "conv"], kernel=[3, 1], stride=[2, 1],
                               dilation=[2, 1], padding=[1, "valid"], channels=[5, 4]))
    for config_id, depth, digits, _ in enumerate_grid(spec):
        if config_id % 97 == 0 or config_id < 70:
            assert spec.decode(config_id) == (depth, digits)
            assert spec.encode(digits) == config_id
    assert config_id == spec.total - 1


# ---------------------------------------------------------------- stability

STABLE_SPEC = dict(depth=[1, 2, 3], types=["conv", "maxpool"], kernel=[1, 3], stride=[1, 2],
                   dilation=[1, 2], padding=["same"], channels=[4], input_size=32, max_rf=20)


def canonical(table: pa.Table) -> pa.Table:
    """One chunk per column, one dictionary per column: row groups (and so chunks and the
    dictionary each one rebuilds) follow chunk_ids, the data must not."""
    return table.unify_dictionaries().combine_chunks()


def test_output_does_not_depend_on_threads_or_chunk_size(scratch):
    spec = GridSpec.build(STABLE_SPEC)
    assert spec.depth_blocks()[-1][2] >= 4096  # several kernel parts per chunk with 2 threads
    frames, tables, counts = {}, {}, {}
    for threads in (1, 2):
        for chunk_ids in (7, 1000, 1 << 20):
            out = scratch / f"stable-{threads}-{chunk_ids}.parquet"
            counts[threads, chunk_ids] = contract_counts(
                write_range(spec, out, threads=threads, chunk_ids=chunk_ids).as_dict())
            frames[threads, chunk_ids] = pd.read_parquet(out)
            tables[threads, chunk_ids] = canonical(pq.read_table(out))
    reference_key = (1, 1 << 20)
    reference = frames[reference_key]
    assert 1000 < len(reference) < spec.total
    assert reference["config_id"].is_monotonic_increasing
    assert counts[reference_key]["pruned"] > 0 and counts[reference_key]["invalid"] > 0
    for key, frame in frames.items():
        pd.testing.assert_frame_equal(frame, reference, check_exact=True, obj=str(key))
        table = tables[key]
        assert table.schema == tables[reference_key].schema
        for name in table.column_names:
            assert table.column(name).equals(tables[reference_key].column(name)), (key, name)
        assert counts[key] == counts[reference_key]


# ---------------------------------------------------------------- pruning

PRUNE_BASE = dict(depth=[1, 2, 3], types=["conv", "avgpool"], kernel=[1, 3, 5], stride=[1, 2],
                  dilation=[1, 2], channels=[8, 32], input_size=24, in_channels=3)


@pytest.mark.parametrize("padding", [["same"], ["valid", 2]], ids=["size-never-grows", "padding-can-grow"])
@pytest.mark.parametrize("limits", [
    dict(min_rf=7, max_rf=13),
    dict(max_params=3_000),
    dict(max_macs=400_000, min_out_size=6),
    dict(min_out_size=9),
    dict(min_rf=5, max_rf=40, max_params=12_000, max_macs=3_000_000, min_out_size=4),
], ids=["rf", "params", "macs+size", "size", "all"])
def test_pruning_keeps_exactly_the_stacks_within_limits(padding, limits, scratch):
    full_out, pruned_out = scratch / "unconstrained.parquet", scratch / "constrained.parquet"
    full_spec = GridSpec.build({**PRUNE_BASE, "padding": padding})
    spec = GridSpec.build({**PRUNE_BASE, "padding": padding, **limits})
    full_counts = contract_counts(write_range(full_spec, full_out).as_dict())
    counts = contract_counts(write_range(spec, pruned_out).as_dict())
    full = pd.read_parquet(full_out)
    keep = pd.Series(True, index=full.index)
    if "min_rf" in limits:
        keep &= full["rf"] >= limits["min_rf"]
    if "max_rf" in limits:
        keep &= full["rf"] <= limits["max_rf"]
    if "max_params" in limits:
        keep &= full["params"] <= limits["max_params"]
    if "max_macs" in limits:
        keep &= full["macs"] <= limits["max_macs"]
    if "min_out_size" in limits:
        keep &= full["out_size"] >= limits["min_out_size"]
    want = full[keep].reset_index(drop=True)
    got = pd.read_parquet(pruned_out)
    assert 0 < len(got) < len(full)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert counts == file_counts(pruned_out)
    assert counts["written"] == len(want)
    assert counts["enumerated"] == full_counts["enumerated"] == spec.total
    # a pruned prefix may hide a later invalid layer, never the other way round
    assert counts["invalid"] <= full_counts["invalid"]
    assert counts["invalid"] + counts["pruned"] == full_counts["invalid"] + len(full) - len(want)


# ---------------------------------------------------------------- partial ranges

def test_partial_range_is_the_matching_slice_of_the_full_run(scratch):
    spec = GridSpec.build(dict(depth=[1, 2, 3], types=["conv", "maxpool"], kernel=[1, 3], stride=[1, 2],
                               dilation=[1, 2], padding=["same"], channels=[4, 8], input_size=20,
                               max_macs=200_000))
    full_out = scratch / "full.parquet"
    full_counts = contract_counts(write_range(spec, full_out).as_dict())
    full = pd.read_parquet(full_out)
    blocks = spec.depth_blocks()
    d2_start, d3_start = blocks[1][1], blocks[2][1]
    ranges = [(0, spec.total), (0, 1), (3, d2_start + 5), (d2_start, d3_start), (d2_start + 17, d3_start + 1234),
              (d3_start + 999, spec.total), (d3_start + 5, d3_start + 5), (spec.total - 1, spec.total)]
    sums = dict(enumerated=0, invalid=0, pruned=0, written=0)
    for lo, hi in ranges:
        out = scratch / f"part-{lo}-{hi}.parquet"
        counts = contract_counts(write_range(spec, out, lo, hi).as_dict())
        part = pd.read_parquet(out)
        want = full[(full["config_id"] >= lo) & (full["config_id"] < hi)].reset_index(drop=True)
        # pandas dtypes follow the rows (a column without nulls stays uint8): compare values, and
        # the Arrow schema separately
        assert frame_rows(part) == frame_rows(want), f"[{lo}, {hi})"
        assert pq.read_schema(out).remove_metadata() == pq.read_schema(full_out).remove_metadata()
        assert counts == file_counts(out)
        assert counts["enumerated"] == hi - lo
        assert counts["enumerated"] == counts["invalid"] + counts["pruned"] + counts["written"]
        assert counts["written"] == len(want)
    # disjoint shards covering the grid add up to the full run: counts, and the rows of the
    # directory (pandas.read_parquet(OUT) of a directory of shards, contract section 4)
    shard_dir = scratch / "shards"
    shard_dir.mkdir(exist_ok=True)
    cuts = [0, 1, 7, d2_start, d2_start + 333, d3_start + 1, d3_start + 4096, spec.total]
    for lo, hi in zip(cuts, cuts[1:]):
        counts = contract_counts(write_range(spec, shard_dir / f"part-{lo:06d}.parquet", lo, hi).as_dict())
        for key in sums:
            sums[key] += counts[key]
    assert sums == full_counts
    joined = pd.read_parquet(shard_dir).sort_values("config_id").reset_index(drop=True)
    assert frame_rows(joined) == frame_rows(full)
