"""Running a sweep: any space's evaluator over id ranges, streamed to Parquet.

`write_range` is the one writer loop every space shares: it asks the spec
for its evaluator (`space.Space.evaluator`), which turns one id range into
an Arrow table, and overlaps the kernel (numba threads, GIL released) with
Parquet encoding in a writer thread, recycling a small pool of buffers, so
memory stays bounded by a few chunks whatever the grid size. The Dask engine
and `--shard` runs call the same `write_range`. Nothing here knows a
concrete space: the chain grid's evaluator is `chain_sweep.Evaluator`, the
block spaces' `block_sweep.BlockEvaluator`.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa

from . import signals
from .space import PARALLEL_MIN_IDS, Counts, Space
from .writer import ROW_GROUP_ROWS, AtomicParquetWriter, sweep_metadata

CHUNK_IDS = 1 << 20
POOL_BUFFERS = 2  # one filling while the writer encodes the other (the kernel is ~5x faster than encoding;
# a third buffer only added page faults: ~5% more CPU end to end, issue 14)


def chunks(spec: Space, lo: int = 0, hi: int | None = None,
           chunk_ids: int = CHUNK_IDS) -> Iterator[tuple[int, int, int, int]]:
    """(key, first id of that range, lo, hi) pieces of [lo, hi), never crossing one of the spec's id ranges
    (a chain grid's depths)."""
    hi = spec.total if hi is None else hi
    for depth, base, count in spec.depth_blocks():
        start, stop = max(lo, base), min(hi, base + count)
        for a in range(start, stop, chunk_ids):
            yield depth, base, a, min(a + chunk_ids, stop)


Progress = Callable[[int], None]


def warm_up(spec: Space, on_compile: Callable[[], None] | None = None, parallel: bool = True) -> float:
    """Have the kernels ready before a sweep starts; returns the seconds spent compiling (0.0: cached).

    numba loads them from its on-disk cache in a fraction of a second; only a
    fresh install (or an edited package) compiles, once per kernel signature,
    for a few seconds: `on_compile()` is called when that begins, so a CLI can
    say so and time the sweep itself apart from it. A space whose evaluator
    compiles on its first chunk instead (block spaces) warms nothing here.
    """
    from numba.core import event

    started: list[float] = []

    class Compiling(event.Listener):
        def on_start(self, _event):
            if not started:
                started.append(time.perf_counter())
                if on_compile is not None:
                    on_compile()

        def on_end(self, _event):
            pass

    start = time.perf_counter()
    with event.install_listener("numba:compile", Compiling()):
        spec.evaluator(1).warm_up(parallel and max(count for _, _, count in spec.depth_blocks()) >= PARALLEL_MIN_IDS)
    return time.perf_counter() - start if started else 0.0


def write_range(spec: Space, out: Path | str, lo: int = 0, hi: int | None = None, *,
                threads: int | None = None, chunk_ids: int = CHUNK_IDS,
                progress: Progress | None = None, extra_metadata: dict | None = None) -> Counts:
    """Evaluate ids [lo, hi) of `spec` and write the kept rows to the Parquet file `out`.

    The kernel fills one buffer while a writer thread encodes the previous
    one (a pool of two), so computing overlaps encoding and memory stays
    bounded. The file appears at `out` only when complete.
    """
    hi = spec.total if hi is None else hi
    evaluator = spec.evaluator(threads)  # the space's kernel and columns; the loop below is shared
    capacity = min(chunk_ids, max(1, hi - lo))
    free: queue.Queue = queue.Queue()
    for _ in range(POOL_BUFFERS):
        free.put(evaluator.new_buffers(capacity))
    todo: queue.Queue = queue.Queue(maxsize=2)
    failure: list[BaseException] = []
    total = Counts()
    with AtomicParquetWriter(out, evaluator.schema) as writer:
        def drain():
            # small tables (heavily pruned chunks) are copied out of their buffers and
            # gathered, so row groups stay near ROW_GROUP_ROWS instead of one per chunk;
            # tables are written in the order they arrive, i.e. ascending config_id
            pending: list[pa.Table] = []
            pending_rows = 0
            while (item := todo.get()) is not None:
                table, buffers = item
                try:
                    if not failure and table.num_rows:
                        if table.num_rows >= ROW_GROUP_ROWS // 2:
                            # gathered rows come first: they have the smaller ids (never reorder)
                            writer.write(pa.concat_tables([*pending, table]) if pending else table)
                            pending.clear()
                            pending_rows = 0
                        else:
                            pending.append(pa.concat_tables([table, evaluator.schema.empty_table()])
                                           .combine_chunks())  # a copy: the buffers go back now
                            pending_rows += table.num_rows
                            if pending_rows >= ROW_GROUP_ROWS:
                                writer.write(pa.concat_tables(pending))
                                pending.clear()
                                pending_rows = 0
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    failure.append(exc)
                free.put(buffers)
            try:
                if pending and not failure:
                    writer.write(pa.concat_tables(pending))
            except BaseException as exc:  # noqa: BLE001
                failure.append(exc)

        thread = threading.Thread(target=drain, name="rfsweep-writer", daemon=True)
        thread.start()
        try:
            for depth, base, a, b in chunks(spec, lo, hi, chunk_ids):
                buffers = free.get()
                if failure:
                    break
                table, counts = evaluator.evaluate(depth, base, a, b, buffers)
                total.add(counts)
                todo.put((table, buffers))
                if progress is not None:
                    progress(b - a)
                signals.check()
        finally:
            todo.put(None)
            thread.join()
        if failure:
            raise failure[0]
        metadata = sweep_metadata(spec, total.as_dict(), extra_metadata)
        signals.check()  # never rename into place after a Ctrl-C, even a swallowed one
        writer.finish(metadata)
    return total
