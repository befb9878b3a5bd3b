"""The sweep API: `run_sweep` (what `rfsweep sweep` does), `estimate`, `stack_of`.

A thin layer over `engines.write_range` that adds a progress bar and timing,
and the inverse direction: rebuilding one row's stack from a file's spec.
"""

from __future__ import annotations

import time
from pathlib import Path

from .engines import Counts, write_range
from .errors import RfsweepError
from .grid import GridSpec
from .layers import Stack, build_stack
from .writer import read_metadata

# measured end to end on the 2-core reference machine (benchmarks/README.md)
STACKS_PER_SECOND = 4e6
BYTES_PER_ROW = 4.0  # zstd Parquet, worst case seen on the example specs


def estimate(spec: GridSpec) -> dict:
    """Rough run time (s) and output size (bytes) before starting, for --dry-run and prompts."""
    return {"stacks": spec.total, "seconds": spec.total / STACKS_PER_SECOND,
            "bytes": spec.total * BYTES_PER_ROW * max(spec.depth) / 4}


def run_sweep(spec: GridSpec, out: Path | str, *, threads: int | None = None, chunk_ids: int = 1 << 20,
              show_progress: bool = False) -> tuple[Counts, float]:
    """Evaluate the whole grid into the Parquet file `out`; returns (counts, seconds).

    Counts: enumerated = invalid + pruned + written over the full grid.
    """
    start = time.perf_counter()
    if not show_progress:
        return write_range(spec, out, threads=threads, chunk_ids=chunk_ids), time.perf_counter() - start
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn,
                               TextColumn, TimeRemainingColumn)

    columns = (TextColumn("sweep"), BarColumn(), TaskProgressColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("sweep", total=spec.total, rate="")

        def advance(done: int) -> None:
            elapsed = time.perf_counter() - start
            completed = bar.tasks[0].completed + done
            bar.update(task, advance=done, rate=f"{completed / max(elapsed, 1e-9) / 1e6:.1f}M stacks/s")

        counts = write_range(spec, out, threads=threads, chunk_ids=chunk_ids, progress=advance)
    return counts, time.perf_counter() - start


def spec_of(path: Path | str) -> GridSpec:
    """The GridSpec stored in a sweep file's metadata."""
    meta = read_metadata(path)
    try:
        return GridSpec.build(meta["spec"])
    except (KeyError, TypeError):
        raise RfsweepError(f"{path}: rfsweep metadata has no usable spec") from None


def stack_of(path: Path | str, config_id: int) -> Stack:
    """Rebuild the stack of one config_id from the spec stored in a sweep file."""
    spec = spec_of(path)
    return build_stack(spec.layers_of(config_id), spec.input_size, spec.in_channels)
