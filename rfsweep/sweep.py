"""The sweep API: `run_sweep` (what `rfsweep sweep` does), `estimate`, `network_of`, `stack_of`.

A thin layer over `engines.write_range` (and `distributed` for directories)
that adds a progress bar and timing, and the inverse direction: rebuilding
one row's network from a file's spec. It works on any space through the
`space.Space` interface and never imports a concrete one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from .engines import warm_up, write_range
from .errors import RfsweepError
from .layers import Stack
from .space import Counts, Space
from .writer import check_output_path


def estimate(spec: Space) -> dict:
    """Rough run time (s) and output size (bytes) before starting, for --dry-run and prompts.

    Refuses first what a run would refuse at its start (so --dry-run never approves it): ids
    past config_id's 64 bits (the kernels count in int64), columns that cannot hold the space
    (the schema: e.g. more than 65,535 conv layers per network).
    """
    if spec.total >= 2**63:
        raise RfsweepError(f"the space has {spec.total:,} {spec.unit}, more than config_id's 64 bits hold "
                           "(at most 2**63 - 1); use fewer choices, depths or stages")
    spec.schema()
    return spec.estimate()


def resolve_output(output: Path | str | None, *, engine: str = "local", partitions: int | None = None,
                   shard: tuple[int, int] | None = None) -> Path:
    """OUT for this kind of run, checked before any work starts.

    One-file runs default to sweep.parquet and need a writable existing
    directory; directory runs (partitions, dask, a shard) default to sweep/
    and need its parent to exist.
    """
    if shard is not None and (engine == "dask" or partitions is not None):
        raise RfsweepError("--shard runs one part on its own: drop --engine dask / --partitions "
                           "(N comes from I/N)")
    to_directory = shard is not None or engine == "dask" or partitions is not None
    out = Path(output) if output is not None else Path("sweep" if to_directory else "sweep.parquet")
    if not to_directory:
        check_output_path(out)
    elif not out.absolute().parent.is_dir():
        raise RfsweepError(f"output directory does not exist: {out.parent}")
    return out


def run_sweep(spec: Space, out: Path | str, *, threads: int | None = None, chunk_ids: int = 1 << 20,
              engine: str = "local", partitions: int | None = None, scheduler: str | None = None,
              shard: tuple[int, int] | None = None, show_progress: bool = False,
              on_compile: Callable[[], None] | None = None) -> tuple[Counts, float]:
    """Evaluate the grid into `out`; returns (counts, seconds).

    The kernels are loaded first (compiled on a fresh install, when
    `on_compile()` is called), so `seconds` and the progress rate are the
    sweep's alone, without compile time.

    engine "local" with no partitions writes one Parquet file; with
    `partitions` (or engine "dask", or a `shard` (i, N)) `out` is a directory
    of parts plus a manifest (see `distributed`). Counts: enumerated =
    invalid + pruned + written over the ids this call covered.
    """
    from . import distributed

    if engine not in ("local", "dask"):
        raise RfsweepError(f"engine: expected local or dask, got {engine!r}")
    ids = spec.total
    if shard is not None:
        lo, hi = distributed.partition_bounds_one(spec, *shard)
        ids = hi - lo

    def run(progress):
        if shard is not None:
            return distributed.run_shard(spec, out, *shard, threads=threads, chunk_ids=chunk_ids,
                                         progress=progress).counts
        if engine == "dask":
            return distributed.run_dask(spec, out, partitions, scheduler, threads=threads,
                                        chunk_ids=chunk_ids, progress=progress)
        if partitions is not None:
            return distributed.run_local_parts(spec, out, partitions, workers=threads, chunk_ids=chunk_ids,
                                               progress=progress)
        return write_range(spec, out, threads=threads, chunk_ids=chunk_ids, progress=progress)

    # --partitions runs one thread per part: the parallel kernel is never launched
    warm_up(spec, on_compile, parallel=partitions is None and engine == "local" and threads != 1)
    start = time.perf_counter()
    if not show_progress:
        return run(None), time.perf_counter() - start
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn,
                               TextColumn, TimeRemainingColumn)

    columns = (TextColumn("sweep"), BarColumn(), TaskProgressColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("sweep", total=ids, rate="")

        def advance(done: int) -> None:
            elapsed = time.perf_counter() - start
            completed = bar.tasks[0].completed + done
            bar.update(task, advance=done, rate=f"{completed / max(elapsed, 1e-9) / 1e6:.1f}M {spec.unit}/s")

        counts = run(advance)
    return counts, time.perf_counter() - start


def network_of(path: Path | str, config_id: int):
    """The network of one config_id (a Stack, or a graph dict for graph spaces), rebuilt from the
    spec stored in a sweep file or directory."""
    from .distributed import spec_of_output

    return spec_of_output(path).network(config_id)


def stack_of(path: Path | str, config_id: int) -> Stack:
    """Rebuild the stack of one config_id from the spec stored in a chain sweep file or directory."""
    network = network_of(path, config_id)
    if not isinstance(network, Stack):
        raise RfsweepError(f"{path}: row {config_id} is a network of blocks, not a stack "
                           "(rfsweep.sweep.network_of gives its graph)")
    return network
