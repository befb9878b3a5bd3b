"""Sharded and distributed sweeps: one space split into id ranges, one Parquet part each.

Any space (`space.Space`) runs here; a stored spec is rebuilt with
`space.spec_from_dict`, so workers never need to know which kind it is.

An OUT_DIR dataset (contract section 4: "a directory of Parquet files") holds

    part-00000-of-00008.parquet ... part-00007-of-00008.parquet
    _rfsweep.json                  the manifest, written last

Part i of N covers config_ids [lo, hi) = partition_bounds(spec, N)[i] and is
written by `engines.write_range` (the same Numba kernel as the local engine)
with the usual `rfsweep` footer metadata plus
`"partition": {"index": i, "count": N, "lo": lo, "hi": hi}`. The zero-padded
names sort lexically in id order, so `pandas.read_parquet(OUT_DIR)` and
`pyarrow.dataset.dataset(OUT_DIR)` return rows in config_id order. Both skip
names starting with "." or "_": the manifest and the hidden temporary files
(`.part-....parquet.<pid>.<host>.tmp`) of interrupted writers are never read as data.

The manifest `_rfsweep.json` = {"version", "spec", "partitions", "parts":
{name: counts}, "counts": totals} appears (atomically) only once every part is
present and valid; `is_complete(OUT_DIR)` tests for it.

Two ways to fill a directory, which can be mixed and resumed:

* `run_shard(spec, out_dir, index, count)`: one partition per process (`rfsweep
  sweep --shard i/N`, e.g. a SLURM array task); the shard that finds all N
  parts present writes the manifest.
* `run_dask(spec, out_dir, partitions, scheduler)`: one Dask task per partition
  on an embedded LocalCluster or a running cluster (`--scheduler tcp://...`).

Resume: a part whose footer is readable and records this spec, this rfsweep
version, the same partition bounds and counts.enumerated == hi - lo is kept;
missing, truncated or stale parts are recomputed. A directory written by a
different spec, with another partition count, or holding foreign files, is
refused with RfsweepError (exit code 2).
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .engines import CHUNK_IDS, write_range
from .errors import RfsweepError
from .space import Counts, Space, spec_from_dict

MANIFEST = "_rfsweep.json"
MAX_PARTITIONS = 99_999  # five digits in part names
DEFAULT_MAX_PARTITIONS = 4096
IDS_PER_PARTITION = 50_000_000  # ~ 10-20 s of kernel time per partition on one core
MIN_IDS_PER_PARTITION = 1_000_000  # below this, per-task overhead dominates
DEFAULT_MIN_PARTITIONS = 8  # enough tasks to balance a few workers on mid-size grids
REQUIRED_COUNTS = ("enumerated", "invalid", "pruned", "written")
PART_RE = re.compile(r"part-(\d{5})-of-(\d{5})\.parquet")

Progress = Callable[[int], None]


# ---------------------------------------------------------------- partitions

def partition_bounds(spec: Space, partitions: int) -> list[tuple[int, int]]:
    """N contiguous id ranges [lo, hi) covering [0, spec.total): lo_i = total * i // N.

    Deterministic (depends on the total and N only); sizes differ by at most
    one id. With N > total some ranges are empty (their parts hold no rows).
    """
    _check_count(partitions)
    total = spec.total
    return [(total * i // partitions, total * (i + 1) // partitions) for i in range(partitions)]


def default_partitions(spec: Space) -> int:
    """Partition count for a grid: ~50M ids per part, between 1 and 4096.

    Small grids get fewer (one per million ids, at most 8) so that per-task
    overhead does not dominate; mid-size grids get at least 8 so that a few
    workers stay balanced. Depends on the spec only, so a rerun with the
    same spec and no --partitions resumes the same layout.
    """
    total = spec.total
    by_size = math.ceil(total / IDS_PER_PARTITION)
    floor = min(DEFAULT_MIN_PARTITIONS, math.ceil(total / MIN_IDS_PER_PARTITION))
    return max(1, min(DEFAULT_MAX_PARTITIONS, max(by_size, floor)))


def part_name(index: int, count: int) -> str:
    """'part-00003-of-00008.parquet' (0-based index; lexical order = id order)."""
    return f"part-{index:05d}-of-{count:05d}.parquet"


def parse_shard(text: str) -> tuple[int, int]:
    """'3/8' -> (3, 8). The index is 0-based: 0..N-1, as SLURM's --array=0-(N-1)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise RfsweepError(f"--shard: expected INDEX/COUNT such as 0/8 (0-based), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    _check_shard(index, count)
    return index, count


def _check_count(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_PARTITIONS:
        raise RfsweepError(f"partitions: expected an integer in 1..{MAX_PARTITIONS}, got {count!r}")


def _check_shard(index: int, count: int) -> None:
    _check_count(count)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise RfsweepError(f"--shard {index}/{count}: the index is 0-based and must be in 0..{count - 1} "
                           f"(e.g. SLURM --array=0-{count - 1})")


# ---------------------------------------------------------------- directory checks

def _spec_json(spec: Space) -> dict:
    """The spec as it reads back from JSON metadata (for equality tests)."""
    return json.loads(json.dumps(spec.to_dict()))


def _prepare_dir(out_dir: Path) -> None:
    """Create OUT_DIR if its parent exists; RfsweepError otherwise (contract section 5)."""
    from .output import refuse_special

    refuse_special(out_dir)  # a device or FIFO: never a sweep directory
    if out_dir.exists() and not out_dir.is_dir():
        raise RfsweepError(f"output path is a file, not a directory: {out_dir} "
                           "(sharded and Dask runs write a directory of Parquet parts)")
    parent = out_dir.parent if str(out_dir.parent) else Path(".")
    if not parent.is_dir():
        raise RfsweepError(f"output directory does not exist: {parent}")
    try:
        out_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise RfsweepError(f"cannot create output directory {out_dir}: {exc}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise RfsweepError(f"output directory is not writable: {out_dir}")


def _scan(out_dir: Path) -> dict[tuple[int, int], str]:
    """{(index, count): name} of the part files; RfsweepError for anything else visible."""
    parts = {}
    for entry in sorted(os.listdir(out_dir)):
        if entry.startswith((".", "_")):  # manifest, temporaries: ignored by pandas/pyarrow too
            continue
        match = PART_RE.fullmatch(entry)
        if not match or not (out_dir / entry).is_file():  # a directory, a FIFO, a device
            raise RfsweepError(f"{out_dir} holds {entry!r}, which is not an rfsweep part; "
                               "write sharded/Dask runs to an empty or rfsweep-only directory")
        parts[(int(match.group(1)), int(match.group(2)))] = entry
    return parts


def _existing_count(out_dir: Path, parts: dict, manifest: dict | None) -> int | None:
    """The partition count the directory already uses (None if empty); refuses mixtures."""
    counts = {n for _, n in parts}
    if manifest is not None and isinstance(manifest.get("partitions"), int):
        counts.add(manifest["partitions"])
    if len(counts) > 1:
        raise RfsweepError(f"{out_dir} mixes parts of {sorted(map(str, counts))} partitions; "
                           "use another directory")
    return counts.pop() if counts else None


def _refuse_other_count(out_dir: Path, existing: int | None, count: int) -> None:
    if existing is not None and existing != count:
        raise RfsweepError(f"{out_dir} holds a sweep split into {existing} partitions, not {count}; "
                           f"rerun with --partitions {existing} (or --shard i/{existing}) "
                           "to resume it, or use another directory")


def _refuse_other_spec(path: Path | str, stored: Any, spec_json: dict) -> None:
    if stored != spec_json:
        raise RfsweepError(f"{path} was written by a different spec; use another directory "
                           "(or delete it to start over)")


def _read_footer(path: Path) -> tuple[dict, int] | None:
    """(rfsweep metadata, row count) from a part's footer; None if missing or unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        raw = (meta.metadata or {}).get(b"rfsweep")
        return (json.loads(raw) if raw else {}), meta.num_rows
    except (OSError, pa.ArrowException, ValueError):
        return None


def check_part(path: Path | str, spec: Space, index: int, count: int,
               _spec_json_cache: dict | None = None) -> Counts | None:
    """The counts of a complete, valid part i of N of `spec`; None if it must be (re)computed.

    Valid: the footer is readable, records this spec, this rfsweep version,
    partition {index, count, lo, hi} as partition_bounds says, a consistent
    counts object with enumerated == hi - lo, and as many rows as written.
    Raises RfsweepError if the part records a different spec.
    """
    path = Path(path)
    spec_json = _spec_json_cache if _spec_json_cache is not None else _spec_json(spec)
    footer = _read_footer(path)
    if footer is None:
        return None
    meta, rows = footer
    if "spec" in meta:
        _refuse_other_spec(path, meta["spec"], spec_json)
    lo, hi = partition_bounds_one(spec, index, count)
    if meta.get("version") != __version__ or meta.get("partition") != {
            "index": index, "count": count, "lo": lo, "hi": hi}:
        return None
    try:
        stored = meta["counts"]
        counts = Counts(**{f.name: int(stored[f.name]) for f in fields(Counts)
                           if f.name in REQUIRED_COUNTS or f.name in stored})
    except (KeyError, TypeError, ValueError):
        return None
    if (counts.enumerated != hi - lo or counts.written != rows
            or counts.invalid + counts.pruned + counts.written != counts.enumerated):
        return None
    return counts


def partition_bounds_one(spec: Space, index: int, count: int) -> tuple[int, int]:
    """partition_bounds(spec, count)[index] without building the whole list."""
    _check_shard(index, count)
    total = spec.total
    return total * index // count, total * (index + 1) // count


# ---------------------------------------------------------------- manifest

def read_manifest(out_dir: Path | str) -> dict:
    """The `_rfsweep.json` manifest of a complete OUT_DIR; RfsweepError if absent or invalid."""
    out_dir = Path(out_dir)
    path = out_dir / MANIFEST
    if not out_dir.is_dir():
        raise RfsweepError(f"not a sweep directory: {out_dir}")
    if not path.is_file():
        raise RfsweepError(f"{out_dir} is not a complete sweep (no {MANIFEST}): some parts are "
                           "missing or still running; rerun the same sweep command to finish it")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RfsweepError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or not {"spec", "partitions", "parts", "counts"} <= set(manifest):
        raise RfsweepError(f"{path}: not an rfsweep manifest")
    return manifest


def is_complete(out_dir: Path | str, verify: bool = False) -> bool:
    """True if OUT_DIR has a manifest and every part it lists exists.

    verify=True also re-checks each part's footer (spec, bounds, counts).
    """
    try:
        manifest = read_manifest(out_dir)
        spec = spec_from_dict(manifest["spec"])
        count = int(manifest["partitions"])
    except (RfsweepError, TypeError, ValueError):
        return False
    out_dir = Path(out_dir)
    names = [part_name(i, count) for i in range(count)]
    if set(names) != set(manifest["parts"]) or not all((out_dir / name).is_file() for name in names):
        return False
    if verify:
        spec_json = _spec_json(spec)
        try:
            return all(check_part(out_dir / part_name(i, count), spec, i, count, spec_json) is not None
                       for i in range(count))
        except RfsweepError:
            return False
    return True


def spec_of_output(path: Path | str) -> Space:
    """The space of a sweep output (a GridSpec, a BlockSpec, ...): a Parquet file, or a complete
    OUT_DIR (its manifest)."""
    path = Path(path)
    if path.is_dir():
        spec = read_manifest(path)["spec"]
    else:
        from .writer import read_metadata
        spec = read_metadata(path).get("spec")
    try:
        return spec_from_dict(spec)
    except (TypeError, AttributeError):
        raise RfsweepError(f"{path}: rfsweep metadata has no usable spec") from None


def _write_manifest(out_dir: Path, spec: Space, count: int, parts: dict[int, Counts]) -> Counts:
    """Write `_rfsweep.json` atomically (tmp + os.replace); same inputs, same bytes."""
    totals = Counts()
    for i in range(count):
        totals.add(parts[i])
    manifest = {"version": __version__, "spec": spec.to_dict(), "partitions": count,
                "parts": {part_name(i, count): parts[i].as_dict() for i in range(count)},
                "counts": totals.as_dict()}
    from .output import atomic_output

    with atomic_output(out_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    return totals


def _remove_manifest(out_dir: Path) -> None:
    (out_dir / MANIFEST).unlink(missing_ok=True)


def _load_manifest_if_any(out_dir: Path, spec_json: dict) -> dict | None:
    path = out_dir / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a broken manifest is rewritten at the end
    if not isinstance(manifest, dict):
        return None
    _refuse_other_spec(path, manifest.get("spec"), spec_json)
    return manifest


def _check_parts(out_dir: Path, spec: Space, count: int, spec_json: dict,
                 indices: list[int] | None = None) -> dict[int, Counts | None]:
    """check_part for many parts (footer reads in a few threads: shared filesystems are slow)."""
    indices = list(range(count)) if indices is None else indices

    def one(i):
        path = out_dir / part_name(i, count)
        return i, (check_part(path, spec, i, count, spec_json) if path.exists() else None)

    if len(indices) <= 4:
        return dict(map(one, indices))
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(one, indices))


def _remove_stale_tmps(out_dir: Path) -> None:
    """Remove hidden temporary parts and manifests of writers that no longer run (killed with
    SIGKILL); those of live writers, here or on other hosts, stay."""
    from .output import remove_stale_temporaries

    remove_stale_temporaries(out_dir / MANIFEST, name_regex=PART_RE.pattern + "|" + re.escape(MANIFEST))


# ---------------------------------------------------------------- shards

@dataclass
class ShardResult:
    """What one `run_shard` call did."""

    index: int
    count: int
    path: Path
    counts: Counts  # of this part (read back from its footer when skipped)
    skipped: bool  # the part was already complete and valid: nothing computed
    complete: bool  # all N parts are present and valid; the manifest is written


def run_shard(spec: Space, out_dir: Path | str, index: int, count: int, *, threads: int | None = None,
              chunk_ids: int = CHUNK_IDS, progress: Progress | None = None, force: bool = False) -> ShardResult:
    """Compute partition `index` (0-based) of `count` into OUT_DIR/part-IIIII-of-NNNNN.parquet.

    Creates OUT_DIR if its parent exists. A part that is already complete and
    valid is kept (skipped=True) unless force. Afterwards, if all `count`
    parts are present and valid, writes the manifest, so the last array task
    to finish completes the dataset (two tasks writing it at once write the
    same bytes). threads: Numba threads (None: the CPUs this process may
    use, i.e. the SLURM allocation). `progress(n_ids)` as write_range, also
    called once with the whole range when the part is kept. Raises RfsweepError for a
    bad index, a missing parent directory, or a directory holding another
    spec, another partition count, or foreign files.
    """
    _check_shard(index, count)
    out_dir = Path(out_dir)
    _prepare_dir(out_dir)
    _remove_stale_tmps(out_dir)
    spec_json = _spec_json(spec)
    parts = _scan(out_dir)
    manifest = _load_manifest_if_any(out_dir, spec_json)
    _refuse_other_count(out_dir, _existing_count(out_dir, parts, manifest), count)
    lo, hi = partition_bounds_one(spec, index, count)
    path = out_dir / part_name(index, count)
    others = [name for key, name in parts.items() if key[0] != index]
    if others:  # one footer is enough to refuse a directory of another spec
        footer = _read_footer(out_dir / others[0])
        if footer is not None and "spec" in footer[0]:
            _refuse_other_spec(out_dir / others[0], footer[0]["spec"], spec_json)
    counts = None if force or not path.exists() else check_part(path, spec, index, count, spec_json)
    skipped = counts is not None
    if not skipped:
        _remove_manifest(out_dir)
        counts = _run_partition(spec_json, str(out_dir), index, count, lo, hi, threads, chunk_ids,
                                _progress=progress)
    elif progress is not None:
        progress(hi - lo)
    complete = _finish_if_complete(out_dir, spec, count, spec_json)
    return ShardResult(index, count, path, counts, skipped, complete)


def _finish_if_complete(out_dir: Path, spec: Space, count: int, spec_json: dict) -> bool:
    """Write the manifest if all parts are present and valid (cheap listdir check first)."""
    names = set(os.listdir(out_dir))
    if not all(part_name(i, count) in names for i in range(count)):
        return False
    checked = _check_parts(out_dir, spec, count, spec_json)
    if any(c is None for c in checked.values()):
        return False
    _write_manifest(out_dir, spec, count, checked)
    return True


# ---------------------------------------------------------------- the worker task

_PROCESS_LOCK = threading.Lock()


def _run_partition(spec_dict: dict, out_dir: str, index: int, count: int, lo: int, hi: int,
                   threads: int | None = None, chunk_ids: int = CHUNK_IDS,
                   _progress: Progress | None = None) -> Counts:
    """Write part `index` of `count` (ids [lo, hi)) with the local kernel; returns its counts.

    Runs in Dask workers and in `run_shard`. threads=None inside a Dask
    worker: as many Numba threads as the worker has threads, one partition
    at a time per process (a lock: Numba's workqueue threading layer does
    not allow concurrent parallel launches); elsewhere: the CPUs in this
    process's affinity mask (a SLURM allocation), capped by NUMBA_NUM_THREADS.
    """
    spec = spec_from_dict(spec_dict)
    path = Path(out_dir) / part_name(index, count)
    extra = {"partition": {"index": index, "count": count, "lo": lo, "hi": hi}}
    lock = None
    if threads is None:
        try:
            from distributed import get_worker
            threads = get_worker().state.nthreads
            lock = _PROCESS_LOCK
        except (ImportError, ValueError, AttributeError):
            # not in a worker (run_shard): the cores this process may use, which under SLURM
            # is the allocation (cpuset), not the whole node as numba's default would be
            threads = local_workers()
    if lock is None:
        return write_range(spec, path, lo, hi, threads=threads, chunk_ids=chunk_ids,
                           progress=_progress, extra_metadata=extra)
    with lock:
        return write_range(spec, path, lo, hi, threads=threads, chunk_ids=chunk_ids,
                           progress=_progress, extra_metadata=extra)


# ---------------------------------------------------------------- Dask

def local_workers() -> int:
    """Worker processes of the embedded LocalCluster: the usable cores (>= 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def run_dask(spec: Space, out_dir: Path | str, partitions: int | None = None, scheduler=None, *,
             threads: int | None = None, progress: Progress | None = None, retries: int = 2,
             chunk_ids: int = CHUNK_IDS, n_workers: int | None = None,
             _task: Callable | None = None) -> Counts:
    """Evaluate the whole grid into OUT_DIR, one Dask task per partition; returns the totals.

    scheduler: None starts an embedded LocalCluster (n_workers processes, default
    one per core, 1 thread each) for this call; a string such as
    'tcp://host:8786' connects to a running scheduler; a `distributed.Client`
    is used as is (not closed). OUT_DIR must be at the same path on a
    filesystem shared by the client and all workers.

    partitions: None resumes the directory's existing count, else
    default_partitions(spec). Valid parts already in OUT_DIR are kept; the
    rest are submitted (pure=False, `retries` for exceptions; a task whose
    worker dies is rescheduled by the scheduler up to its allowed_failures).
    threads: Numba threads per task (None: the worker's thread count, one
    task at a time per process). progress(n_ids) is called for kept parts at
    once and for each finished part, in completion order. The manifest is
    written last, after every part's footer has been re-checked.
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise RfsweepError(f"threads: expected an integer >= 1, got {threads!r}")

    def execute(spec_json, out_dir, count, bounds, todo):
        return _submit_all(spec_json, out_dir, count, bounds, todo, scheduler, threads, retries,
                           chunk_ids, n_workers, progress, _task or _run_partition)

    return _run_partitions(spec, out_dir, partitions, progress, execute)


def run_local_parts(spec: Space, out_dir: Path | str, partitions: int | None = None, *,
                    workers: int | None = None, chunk_ids: int = CHUNK_IDS,
                    progress: Progress | None = None) -> Counts:
    """The local engine writing OUT_DIR: `workers` partitions at once, one core each.

    A single Parquet file is encoded by one thread, which caps a one-file
    sweep near the encoder's speed; here every partition has its own writer,
    so encoding runs on every core. Same layout, manifest and resume rules
    as `run_dask` (and interchangeable with it and `--shard`).
    """
    workers = workers or local_workers()
    if partitions is None:
        partitions = max(workers, default_partitions(spec)) if not (Path(out_dir) / MANIFEST).exists() else None

    def execute(spec_json, out_dir, count, bounds, todo):
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rfsweep-part") as pool:
            futures = {i: pool.submit(_run_partition, spec_json, str(out_dir), i, count, *bounds[i], 1,
                                      chunk_ids, _progress=progress) for i in todo}
            try:
                return {i: future.result() for i, future in futures.items()}
            except BaseException:
                for future in futures.values():
                    future.cancel()
                raise

    return _run_partitions(spec, out_dir, partitions, progress, execute)


def _run_partitions(spec: Space, out_dir: Path | str, partitions: int | None, progress: Progress | None,
                    execute: Callable) -> Counts:
    """Plan (count, bounds, parts to keep), run the missing ones with `execute`, write the manifest."""
    out_dir = Path(out_dir)
    if partitions is not None:
        _check_count(partitions)
    _prepare_dir(out_dir)
    _remove_stale_tmps(out_dir)
    spec_json = _spec_json(spec)
    parts = _scan(out_dir)
    manifest = _load_manifest_if_any(out_dir, spec_json)
    existing = _existing_count(out_dir, parts, manifest)
    count = partitions or existing or default_partitions(spec)
    _refuse_other_count(out_dir, existing, count)
    bounds = partition_bounds(spec, count)
    present = sorted(i for (i, _n) in parts)
    done: dict[int, Counts] = {i: c for i, c in _check_parts(out_dir, spec, count, spec_json, present).items()
                               if c is not None}
    todo = [i for i in range(count) if i not in done]
    if progress is not None:
        for i in done:
            progress(bounds[i][1] - bounds[i][0])
    if todo:
        _remove_manifest(out_dir)
        done.update(execute(spec_json, out_dir, count, bounds, todo))
        # trust the files, not the task results: catches a worker-local OUT_DIR
        rechecked = _check_parts(out_dir, spec, count, spec_json, todo)
        missing = [part_name(i, count) for i, c in rechecked.items() if c is None]
        if missing:
            raise RfsweepError(f"{missing[0]} was written by a worker but is missing or invalid here; "
                               "OUT_DIR must be on a filesystem shared by the client and all workers")
        done.update(rechecked)
    return _write_manifest(out_dir, spec, count, done)


def _submit_all(spec_json, out_dir, count, bounds, todo, scheduler, threads, retries, chunk_ids,
                n_workers, progress, task) -> dict[int, Counts]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise RfsweepError('the Dask engine needs dask[distributed]: pip install -e ".[dask]"') from None
    import logging

    cluster = client = None
    own_client = not isinstance(scheduler, Client)
    if scheduler is None:
        cluster = LocalCluster(n_workers=n_workers or local_workers(), threads_per_worker=1,
                               processes=True, dashboard_address=":0", silence_logs=logging.ERROR)
        client = Client(cluster)
    elif isinstance(scheduler, str):
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise RfsweepError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    elif isinstance(scheduler, Client):
        client = scheduler
    else:
        raise RfsweepError(f"scheduler: expected an address like tcp://host:8786, got {scheduler!r}")
    token = uuid.uuid4().hex[:8]
    futures = {}
    try:
        for i in todo:
            lo, hi = bounds[i]
            future = client.submit(task, spec_json, str(out_dir), i, count, lo, hi, threads, chunk_ids,
                                   pure=False, retries=retries,
                                   key=f"rfsweep-part-{i:05d}-of-{count:05d}-{token}")
            futures[future] = i
        results = {}
        for future in as_completed(list(futures)):
            i = futures[future]
            try:
                results[i] = future.result()
            except RfsweepError:
                raise
            except Exception as exc:  # KilledWorker, errors in the task after its retries
                raise RuntimeError(f"partition {i} of {count} ({part_name(i, count)}) failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
            if progress is not None:
                progress(bounds[i][1] - bounds[i][0])
        return results
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            try:
                client.cancel(pending)
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass
        if own_client and client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
