"""Sharded (--shard i/N) and Dask runs write exactly the rows of the local engine.

One LocalCluster (2 worker processes x 1 thread) serves the whole module, as
stumpy's tests/test_stumped.py does. The grid mixes conv and maxpool layers
and prunes by RF and params, so parts hold invalid, pruned and kept stacks.
"""

from __future__ import annotations

import functools
import json
import os
import signal
from pathlib import Path

import pandas as pd
import pyarrow.dataset as pads
import pytest

from rfsweep import GridSpec, RfsweepError, write_range
from rfsweep import distributed as D
from rfsweep.writer import read_metadata

distributed = pytest.importorskip("distributed")

SPEC = GridSpec.build(dict(depth="1-3", types="conv,maxpool", kernel="1,3,5", stride="1,2",
                           channels="8,16", min_rf=3, max_params=20_000))
OTHER = GridSpec.build(dict(depth="1-2", kernel="1,3", stride="1,2", channels="8,16"))


@pytest.fixture(scope="module")
def dask_cluster():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def client(dask_cluster):
    with distributed.Client(dask_cluster) as c:
        yield c


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The local engine's output for SPEC: (sorted frame, counts)."""
    out = tmp_path_factory.mktemp("local") / "sweep.parquet"
    counts = write_range(SPEC, out, threads=2)
    return _sorted(pd.read_parquet(out)), counts


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("config_id").reset_index(drop=True)


def _assert_same_rows(out_dir: Path, local) -> None:
    expected, counts = local
    got = pd.read_parquet(out_dir)
    assert got["config_id"].is_monotonic_increasing  # part names sort in id order
    pd.testing.assert_frame_equal(_sorted(got), expected)
    table = pads.dataset(out_dir, format="parquet").to_table()
    assert table.num_rows == len(expected)
    manifest = D.read_manifest(out_dir)
    assert manifest["counts"] == counts.as_dict()
    assert manifest["spec"] == SPEC.to_dict()
    assert D.is_complete(out_dir, verify=True)


def _stats(out_dir: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out_dir.glob("part-*.parquet")}


# ---------------------------------------------------------------- partitions

def test_partition_bounds_cover_the_grid_in_order():
    for n in (1, 2, 3, 7, 64):
        bounds = D.partition_bounds(SPEC, n)
        assert len(bounds) == n and bounds[0][0] == 0 and bounds[-1][1] == SPEC.total
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        sizes = [hi - lo for lo, hi in bounds]
        assert max(sizes) - min(sizes) <= 1
        assert bounds == D.partition_bounds(SPEC, n)
        assert all(D.partition_bounds_one(SPEC, i, n) == bounds[i] for i in range(n))
    with pytest.raises(RfsweepError):
        D.partition_bounds(SPEC, 0)


def test_default_partitions_and_names():
    assert D.default_partitions(SPEC) == 1  # ~100k ids
    big = GridSpec.build(dict(depth="1-4", kernel="1,3,5,7", dilation="1,2", channels="16,32,64,128"))
    assert big.total > 16_000_000 and D.default_partitions(big) == 8
    huge = GridSpec.build(dict(depth="1-6", kernel="1,3,5,7", channels="16,32,64,128"))
    assert 1 <= D.default_partitions(huge) <= 4096
    assert D.part_name(3, 8) == "part-00003-of-00008.parquet"
    names = [D.part_name(i, 12) for i in range(12)]
    assert names == sorted(names)


@pytest.mark.parametrize("text, expected", [("0/1", (0, 1)), ("3/8", (3, 8)), (" 7 / 8 ", (7, 8))])
def test_parse_shard(text, expected):
    assert D.parse_shard(text) == expected


@pytest.mark.parametrize("text", ["8/8", "1/0", "-1/4", "3", "a/b", "3/8/1", "", "1/100000"])
def test_parse_shard_rejects(text):
    with pytest.raises(RfsweepError, match="shard|partitions"):
        D.parse_shard(text)


# ---------------------------------------------------------------- equality with the local engine

@pytest.mark.parametrize("partitions", [3, 7])
def test_dask_matches_local(client, local, tmp_path, partitions):
    out = tmp_path / "out"
    seen = []
    counts = D.run_dask(SPEC, out, partitions=partitions, scheduler=client, progress=seen.append)
    assert counts == local[1]
    assert counts.invalid and counts.pruned and counts.written
    assert sum(seen) == SPEC.total
    assert sorted(os.listdir(out)) == ["_rfsweep.json"] + [D.part_name(i, partitions)
                                                             for i in range(partitions)]
    for i, (lo, hi) in enumerate(D.partition_bounds(SPEC, partitions)):
        meta = read_metadata(out / D.part_name(i, partitions))
        assert meta["partition"] == {"index": i, "count": partitions, "lo": lo, "hi": hi}
        assert meta["counts"]["enumerated"] == hi - lo
    _assert_same_rows(out, local)


def test_dask_by_scheduler_address(dask_cluster, local, tmp_path):
    out = tmp_path / "out"
    D.run_dask(SPEC, out, partitions=2, scheduler=dask_cluster.scheduler_address)
    _assert_same_rows(out, local)


def test_dask_embedded_local_cluster(local, tmp_path):
    out = tmp_path / "out"
    assert D.run_dask(SPEC, out, partitions=4, n_workers=2) == local[1]
    _assert_same_rows(out, local)


def test_shards_match_local(local, tmp_path):
    out = tmp_path / "out"
    n = 5
    results = [D.run_shard(SPEC, out, i, n, threads=1) for i in (4, 0, 2, 1, 3)]
    assert [r.complete for r in results] == [False] * 4 + [True]
    assert not any(r.skipped for r in results)
    total = results[0].counts
    for r in results[1:]:
        total.add(r.counts)
    assert total == local[1]
    _assert_same_rows(out, local)
    again = D.run_shard(SPEC, out, 2, n)
    assert again.skipped and again.complete and again.counts == results[2].counts


def test_concurrent_shard_processes_complete_the_dataset(local, tmp_path):
    """Array tasks racing in separate processes: every part once, one valid manifest."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    out = tmp_path / "out"
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(functools.partial(D.run_shard, SPEC, out, count=4, threads=1), range(4)))
    assert sorted(r.index for r in results) == [0, 1, 2, 3]
    assert any(r.complete for r in results)
    _assert_same_rows(out, local)


def test_shards_and_dask_write_the_same_parts(client, tmp_path):
    D.run_dask(SPEC, tmp_path / "a", partitions=3, scheduler=client)
    for i in range(3):
        D.run_shard(SPEC, tmp_path / "b", i, 3, threads=1)
    for i in range(3):
        name = D.part_name(i, 3)
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / name),
                                      pd.read_parquet(tmp_path / "b" / name))
    assert (tmp_path / "a" / "_rfsweep.json").read_bytes() == (tmp_path / "b" / "_rfsweep.json").read_bytes()


def test_readers_ignore_hidden_temporaries_and_manifest(client, local, tmp_path):
    out = tmp_path / "out"
    D.run_dask(SPEC, out, partitions=3, scheduler=client)
    (out / ".part-00001-of-00003.parquet.12345.tmp").write_bytes(b"PAR1 half-written")
    _assert_same_rows(out, local)
    assert pads.dataset(out, format="parquet").files == [str(out / D.part_name(i, 3)) for i in range(3)]


# ---------------------------------------------------------------- resume

def test_resume_rewrites_only_the_missing_part(client, local, tmp_path):
    out = tmp_path / "out"
    D.run_dask(SPEC, out, partitions=4, scheduler=client)
    victim = D.part_name(2, 4)
    (out / victim).unlink()
    before = _stats(out)
    assert not D.is_complete(out)
    seen = []
    counts = D.run_dask(SPEC, out, scheduler=client, progress=seen.append)  # partitions from the directory
    assert counts == local[1] and sum(seen) == SPEC.total
    after = _stats(out)
    assert victim in after
    assert {k: v for k, v in after.items() if k != victim} == before
    _assert_same_rows(out, local)


def test_complete_directory_needs_no_cluster(local, tmp_path):
    out = tmp_path / "out"
    for i in range(2):
        D.run_shard(SPEC, out, i, 2, threads=1)
    before = _stats(out)
    # nothing to do: the scheduler is never contacted, so even a bogus one is fine
    assert D.run_dask(SPEC, out, scheduler=object()) == local[1]
    assert _stats(out) == before


def test_truncated_part_is_recomputed(client, local, tmp_path):
    out = tmp_path / "out"
    D.run_dask(SPEC, out, partitions=3, scheduler=client)
    victim = out / D.part_name(1, 3)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    assert D.check_part(victim, SPEC, 1, 3) is None
    assert not D.is_complete(out, verify=True)
    before = _stats(out)
    D.run_dask(SPEC, out, scheduler=client)
    after = _stats(out)
    assert after[victim.name] != before[victim.name]
    assert {k: v for k, v in after.items() if k != victim.name} == \
        {k: v for k, v in before.items() if k != victim.name}
    _assert_same_rows(out, local)


def test_shard_recomputes_a_corrupt_part_and_keeps_a_valid_one(local, tmp_path):
    out = tmp_path / "out"
    for i in range(3):
        D.run_shard(SPEC, out, i, 3, threads=1)
    (out / D.part_name(0, 3)).write_bytes(b"garbage")
    first = D.run_shard(SPEC, out, 0, 3, threads=1)
    assert not first.skipped and first.complete
    kept = D.run_shard(SPEC, out, 1, 3)
    assert kept.skipped
    before = _stats(out)[D.part_name(1, 3)]
    forced = D.run_shard(SPEC, out, 1, 3, threads=1, force=True)
    assert not forced.skipped and _stats(out)[D.part_name(1, 3)] != before
    _assert_same_rows(out, local)


def test_manifest_waits_for_every_part(tmp_path):
    out = tmp_path / "out"
    D.run_shard(SPEC, out, 0, 2, threads=1)
    assert not D.is_complete(out)
    with pytest.raises(RfsweepError, match="not a complete sweep"):
        D.read_manifest(out)
    with pytest.raises(RfsweepError, match="not a complete sweep"):
        D.spec_of_output(out)
    D.run_shard(SPEC, out, 1, 2, threads=1)
    assert D.is_complete(out) and D.spec_of_output(out) == SPEC
    assert set(json.loads((out / "_rfsweep.json").read_text())) == {
        "version", "spec", "partitions", "parts", "counts"}


# ---------------------------------------------------------------- refusals

def test_other_spec_is_refused(client, tmp_path):
    out = tmp_path / "out"
    D.run_shard(OTHER, out, 0, 2, threads=1)
    with pytest.raises(RfsweepError, match="different spec"):
        D.run_dask(SPEC, out, partitions=2, scheduler=client)
    with pytest.raises(RfsweepError, match="different spec"):
        D.run_shard(SPEC, out, 1, 2)
    with pytest.raises(RfsweepError, match="different spec"):
        D.run_shard(SPEC, out, 0, 2)
    D.run_shard(OTHER, out, 1, 2, threads=1)
    (out / D.part_name(0, 2)).unlink()
    (out / D.part_name(1, 2)).unlink()
    with pytest.raises(RfsweepError, match="different spec"):  # the manifest alone is enough
        D.run_dask(SPEC, out, partitions=2, scheduler=client)


def test_other_partition_count_is_refused(tmp_path):
    out = tmp_path / "out"
    D.run_shard(SPEC, out, 0, 2, threads=1)
    with pytest.raises(RfsweepError, match="2 partitions"):
        D.run_shard(SPEC, out, 0, 3)
    with pytest.raises(RfsweepError, match="2 partitions"):
        D.run_dask(SPEC, out, partitions=3, scheduler=object())


def test_bad_directories_are_refused(tmp_path):
    with pytest.raises(RfsweepError, match="does not exist"):
        D.run_shard(SPEC, tmp_path / "missing" / "out", 0, 2)
    with pytest.raises(RfsweepError, match="does not exist"):
        D.run_dask(SPEC, tmp_path / "missing" / "out", scheduler=object())
    (tmp_path / "file.parquet").write_bytes(b"x")
    with pytest.raises(RfsweepError, match="is a file"):
        D.run_shard(SPEC, tmp_path / "file.parquet", 0, 2)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("hi")
    with pytest.raises(RfsweepError, match="not an rfsweep part"):
        D.run_shard(SPEC, foreign, 0, 2)
    with pytest.raises(RfsweepError, match="0-based"):
        D.run_shard(SPEC, tmp_path / "out", 2, 2)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- faults

def _die_once_mid_write(marker: str, spec_dict, out_dir, index, count, lo, hi, threads, chunk_ids):
    """Partition 1's first attempt SIGKILLs its own worker after writing its first chunk."""
    def progress(_ids):
        if index == 1 and not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)

    return D._run_partition(spec_dict, out_dir, index, count, lo, hi, threads, chunk_ids, _progress=progress)


def test_killed_worker_loses_no_rows(client, local, tmp_path):
    out = tmp_path / "out"
    marker = tmp_path / "died"
    task = functools.partial(_die_once_mid_write, str(marker))
    counts = D.run_dask(SPEC, out, partitions=4, scheduler=client, chunk_ids=4096, _task=task)
    dead_pid = int(marker.read_text())  # the first attempt really ran and died mid-part
    assert dead_pid not in client.run(os.getpid).values()
    # its half-written temporary file is gone: the retry removed it (its writer no longer runs; issue 22)
    assert not any(name.startswith(".part-00001-of-00004.parquet.") for name in os.listdir(out))
    assert counts == local[1]
    _assert_same_rows(out, local)
    client.wait_for_workers(2, timeout=60)
