"""Rows come out in ascending config_id, in a file and across a directory's parts (contract §4).

The writer gathers the rows of small (pruned, or shallow) chunks into row groups
of about ROW_GROUP_ROWS and writes large chunks directly; gathering must never
reorder. The row-group size is patched down here so that small grids exercise
both paths, on grids whose depths differ by orders of magnitude and on heavily
pruned specs, for any chunk size and thread count. The expected ids come from
the pure-Python enumeration in tests/naive_sweep.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfsweep import GridSpec, engines, writer
from rfsweep.distributed import run_local_parts, run_shard

from naive_sweep import naive_sweep

# depth sizes R, R^2, R^3: 6 / 36 / 216, 4 / 16 / 64 / 256, 12 / 144 / 1728
GRIDS = [
    dict(depth="1-3", kernel="1,3,5", stride="1,2", channels="4", input_size=12),
    dict(depth="1-4", kernel="1,3", stride="1,2", channels="4", input_size=16),
    dict(depth="1,3", kernel="1,3", stride="1,2", dilation="1,3", channels="4,8", input_size=9),
]
# constraints that reject most stacks, often at a prefix (whole blocks skipped)
PRUNING = [{}, dict(max_rf=7), dict(min_rf=9, max_params=2000), dict(min_out_size=5), dict(max_macs=20000)]


@pytest.fixture
def small_row_groups(monkeypatch):
    """Shrink row groups so a few hundred rows span several (and gathering kicks in)."""
    def set_rows(rows: int) -> None:
        monkeypatch.setattr(engines, "ROW_GROUP_ROWS", rows)
        monkeypatch.setattr(writer, "ROW_GROUP_ROWS", rows)
    return set_rows


def expected_ids(spec: GridSpec) -> list[int]:
    rows, _counts = naive_sweep(spec)
    return [row["config_id"] for row in rows]


def file_ids(path) -> list[int]:
    return pq.read_table(path, columns=["config_id"]).column("config_id").to_pylist()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grid=st.sampled_from(GRIDS), pruning=st.sampled_from(PRUNING), chunk_ids=st.integers(1, 400),
       threads=st.sampled_from([1, 2]), row_group=st.sampled_from([8, 50, 200, 1 << 20]))
def test_one_file_is_in_config_id_order(small_row_groups, grid, pruning, chunk_ids, threads, row_group):
    small_row_groups(row_group)
    spec = GridSpec.build({**grid, **pruning})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sweep.parquet"
        engines.write_range(spec, out, threads=threads, chunk_ids=chunk_ids)
        assert file_ids(out) == expected_ids(spec)


def test_default_like_grid_small_chunks_before_large(small_row_groups, tmp_path):
    """The reported case: shallow chunks (gathered) precede deep ones (written directly)."""
    small_row_groups(64)
    spec = GridSpec.build(GRIDS[1])  # depths of 4, 16, 64 and 256 stacks
    out = tmp_path / "sweep.parquet"
    engines.write_range(spec, out, threads=2, chunk_ids=128)
    ids = file_ids(out)
    assert ids == expected_ids(spec)
    # both paths were taken: several row groups, and the first holds the depth-1 stacks
    meta = pq.read_metadata(out)
    assert meta.num_row_groups > 2
    assert ids[0] == 0


def test_default_grid_first_rows_are_depth_1(tmp_path):
    """The default 5.4M-stack grid at the real row-group size (the issue's first row was id 112944)."""
    spec = GridSpec.build({})
    out = tmp_path / "sweep.parquet"
    engines.write_range(spec, out)
    ids = pq.read_table(out, columns=["config_id"]).column("config_id").to_numpy()
    assert ids.size == spec.total  # the default grid keeps every stack
    assert ids[0] == 0 and bool(np.all(np.diff(ids.astype(np.int64)) == 1))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grid=st.sampled_from(GRIDS), pruning=st.sampled_from(PRUNING), partitions=st.integers(1, 7),
       chunk_ids=st.integers(1, 300))
def test_directory_parts_are_in_config_id_order(small_row_groups, grid, pruning, partitions, chunk_ids):
    small_row_groups(32)
    spec = GridSpec.build({**grid, **pruning})
    want = expected_ids(spec)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "local"
        run_local_parts(spec, local, partitions, workers=2, chunk_ids=chunk_ids)
        assert pd.read_parquet(local, columns=["config_id"])["config_id"].tolist() == want
        assert file_ids(local) == want
        sharded = Path(tmp) / "sharded"
        for index in reversed(range(partitions)):  # finishing order must not matter
            run_shard(spec, sharded, index, partitions, threads=2, chunk_ids=chunk_ids)
        assert pd.read_parquet(sharded, columns=["config_id"])["config_id"].tolist() == want


def test_dask_directory_is_in_config_id_order(small_row_groups, tmp_path):
    """Dask tasks on threads of this process, so the patched row-group size applies to them too."""
    distributed = pytest.importorskip("distributed")
    small_row_groups(16)
    spec = GridSpec.build({**GRIDS[0], **PRUNING[1]})
    with distributed.Client(processes=False, n_workers=2, threads_per_worker=1,
                            dashboard_address=":0") as client:
        from rfsweep.distributed import run_dask
        run_dask(spec, tmp_path / "dask", 5, client, threads=1, chunk_ids=7)
    assert pd.read_parquet(tmp_path / "dask", columns=["config_id"])["config_id"].tolist() == expected_ids(spec)
