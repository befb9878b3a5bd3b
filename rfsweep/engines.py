"""Running a sweep: evaluate id ranges with the kernel, stream them to Parquet.

`Evaluator` owns the choice table and reusable output buffers and turns one
id range into an Arrow table (zero-copy views of the kernel's columns).
`run_local` overlaps the kernel (numba threads, GIL released) with Parquet
encoding in a writer thread, recycling a small pool of buffers, so memory
stays bounded by a few chunks whatever the grid size. The Dask engine and
`--shard` runs call the same `write_range`.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numba
import numpy as np
import pyarrow as pa

from . import signals
from .grid import GridSpec
from .kernel import sweep_range, sweep_range_serial
from .writer import ROW_GROUP_ROWS, TYPE_DICTIONARY, AtomicParquetWriter, column_dtypes, layer_fields, sweep_metadata, sweep_schema

CHUNK_IDS = 1 << 20
POOL_BUFFERS = 2  # one filling while the writer encodes the other (the kernel is ~5x faster than encoding;
# a third buffer only added page faults: ~5% more CPU end to end, issue 14)
PARALLEL_MIN_IDS = 1 << 16  # below this a parallel launch costs more than it saves
INT64_MAX = np.iinfo(np.int64).max
TOTAL_COLUMNS = ("config_id", "rf", "jump", "out_size", "out_channels", "params", "macs", "flops",
                 "erf_std", "erf_ratio")


@dataclass
class Counts:
    """enumerated = invalid + pruned + written, over the ids a run covered.

    `skipped` (a part of invalid + pruned) is what block skipping accounted
    for without evaluating: the work pruning saved.
    """

    enumerated: int = 0
    invalid: int = 0
    pruned: int = 0
    written: int = 0
    skipped: int = 0

    def add(self, other: "Counts") -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)

    def as_dict(self) -> dict:
        return asdict(self)


def chunks(spec: GridSpec, lo: int = 0, hi: int | None = None,
           chunk_ids: int = CHUNK_IDS) -> Iterator[tuple[int, int, int, int]]:
    """(depth, first id of that depth, lo, hi) pieces of [lo, hi), never crossing a depth."""
    hi = spec.total if hi is None else hi
    for depth, base, count in spec.depth_blocks():
        start, stop = max(lo, base), min(hi, base + count)
        for a in range(start, stop, chunk_ids):
            yield depth, base, a, min(a + chunk_ids, stop)


def _or_max(limit: int | None) -> int:
    return INT64_MAX if limit is None else limit


# The kernel compiles once per combination of its buffers' dtypes. Buffers therefore come from a
# small fixed set (the first type of each group that holds the group's bounds), not from the file's
# columns; the few columns whose file type is narrower are narrowed when the Arrow batch is built.
# Channels and params/macs/flops never pick the signature: changing --channels never recompiles.
KERNEL_GROUPS = (
    (("rf", "jump", "out_size"), (np.uint16, np.uint64)),
    (("out_channels", "channels"), (np.uint32,)),
    (("params", "macs", "flops"), (np.uint64,)),
    (("kernel", "stride", "dilation", "padding"), (np.uint8, np.uint32)),
)


def kernel_dtypes(spec: GridSpec) -> dict[str, np.dtype]:
    """The dtype of every kernel buffer: column_dtypes widened to the group's fixed choice."""
    dtypes = column_dtypes(spec)
    for names, choices in KERNEL_GROUPS:
        need = max(np.iinfo(dtypes[name]).max for name in names)
        chosen = np.dtype(next(c for c in choices if np.iinfo(c).max >= need))
        dtypes.update({name: chosen for name in names})
    return dtypes


class Buffers:
    """Preallocated kernel output columns for one chunk (reused, never regrown)."""

    def __init__(self, spec: GridSpec, capacity: int):
        dtypes = kernel_dtypes(spec)
        depth = max(spec.depth)
        self.totals = {name: np.empty(capacity, dtypes[name]) for name in TOTAL_COLUMNS}
        self.layers = {name: np.empty((depth, capacity), dtypes[name]) for name in
                       ("type", "kernel", "stride", "dilation", "padding", "channels")}


class Evaluator:
    """Evaluate id ranges of one spec into Arrow tables, with the shared kernel."""

    def __init__(self, spec: GridSpec, threads: int | None = None):
        self.spec = spec
        self.schema = sweep_schema(spec)
        self.threads = threads or numba.config.NUMBA_NUM_THREADS
        self.table = {name: np.ascontiguousarray(values) for name, values in spec.choice_table().items()}
        # limits beyond int64 mean "no limit" (max) or "nothing passes" (min): clamp, never wrap
        self.limits = np.array([min(value, INT64_MAX) for value in (
            spec.min_rf or 0, _or_max(spec.max_rf), _or_max(spec.max_params), _or_max(spec.max_macs),
            spec.min_out_size or 0)], dtype=np.int64)
        # with 'same'/'valid'-like padding no layer can enlarge the map, so min_out_size prunes prefixes
        self.size_never_grows = bool(np.all(2 * self.table["padding"]
                                            <= self.table["dilation"] * (self.table["kernel"] - 1)))
        self.fields = layer_fields(spec)
        self.file_dtypes = column_dtypes(spec)

    def evaluate(self, depth: int, base: int, lo: int, hi: int, buffers: Buffers) -> tuple[pa.Table, Counts]:
        """Run the kernel on ids [lo, hi) of one depth; the table views `buffers`."""
        if self.threads > 1 and hi - lo >= PARALLEL_MIN_IDS:
            numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
            kernel, parts = sweep_range, 4 * self.threads
        else:
            kernel, parts = sweep_range_serial, 1
        counts = np.zeros((parts, 4), np.int64)
        self._call(kernel, depth, base, lo, hi, parts, buffers, counts)
        span = hi - lo
        slices = [(span * p // parts, int(counts[p, 0])) for p in range(parts)]
        batches = [self._batch(depth, buffers, start, kept) for start, kept in slices if kept]
        table = (pa.Table.from_batches(batches, self.schema) if batches
                 else self.schema.empty_table())
        kept, invalid, pruned, skipped = (int(x) for x in counts.sum(axis=0))
        return table, Counts(hi - lo, invalid, pruned, kept, skipped)

    def new_buffers(self, capacity: int) -> Buffers:
        """A fresh set of kernel output columns for chunks of up to `capacity` ids."""
        return Buffers(self.spec, capacity)

    def _call(self, kernel, depth: int, base: int, lo: int, hi: int, parts: int, buffers: Buffers,
              counts: np.ndarray) -> None:
        t, out, lay = self.table, buffers.totals, buffers.layers
        kernel(depth, self.spec.radix, len(self.spec.channels), lo, hi, base, parts, t["type"], t["kernel"],
               t["stride"], t["dilation"], t["padding"], t["channels"], t["valid"], self.spec.input_size,
               self.spec.in_channels, self.spec.bias, self.limits, self.size_never_grows,
               *(out[name] for name in TOTAL_COLUMNS),
               *(lay[name] for name in ("type", "kernel", "stride", "dilation", "padding", "channels")),
               counts)

    def warm_up(self, parallel: bool = True) -> None:
        """Load the kernels for this spec's signature (compiling them the first time), on no ids.

        The parallel one only if `parallel`: runs on one thread per part never launch it.
        """
        buffers = Buffers(self.spec, 1)
        depth, base, _count = self.spec.depth_blocks()[0]
        for kernel in (sweep_range, sweep_range_serial) if parallel else (sweep_range_serial,):
            self._call(kernel, depth, base, base, base, 1, buffers, np.zeros((1, 4), np.int64))

    def _batch(self, depth: int, buffers: Buffers, start: int, kept: int) -> pa.RecordBatch:
        end = start + kept
        out, file = buffers.totals, self.file_dtypes
        arrays = [pa.array(out["config_id"][start:end])]
        arrays.append(pa.array(np.full(kept, depth, np.uint8)))
        arrays += [pa.array(_narrow(out[name][start:end], file[name])) for name in TOTAL_COLUMNS[1:]]
        for i in range(max(self.spec.depth)):
            for name in self.fields:
                field = self.schema.field(f"l{i + 1}_{name}")
                if i >= depth:
                    arrays.append(pa.nulls(kept, field.type))
                elif name == "type":
                    arrays.append(pa.DictionaryArray.from_arrays(
                        pa.array(buffers.layers[name][i, start:end]), TYPE_DICTIONARY))
                else:
                    arrays.append(pa.array(_narrow(buffers.layers[name][i, start:end], file[name])))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def _narrow(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The kernel's column as the file's type: a view when they agree, else a (lossless) copy."""
    return values if values.dtype == dtype else values.astype(dtype)


Progress = Callable[[int], None]


def warm_up(spec: GridSpec, on_compile: Callable[[], None] | None = None, parallel: bool = True) -> float:
    """Have the kernels ready before a sweep starts; returns the seconds spent compiling (0.0: cached).

    numba loads them from its on-disk cache in a fraction of a second; only a
    fresh install (or an edited package) compiles, once per kernel signature,
    for a few seconds: `on_compile()` is called when that begins, so a CLI can
    say so and time the sweep itself apart from it.
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
        Evaluator(spec, 1).warm_up(parallel and max(count for _, _, count in spec.depth_blocks()) >= PARALLEL_MIN_IDS)
    return time.perf_counter() - start if started else 0.0


def write_range(spec: GridSpec, out: Path | str, lo: int = 0, hi: int | None = None, *,
                threads: int | None = None, chunk_ids: int = CHUNK_IDS,
                progress: Progress | None = None, extra_metadata: dict | None = None) -> Counts:
    """Evaluate ids [lo, hi) of `spec` and write the kept rows to the Parquet file `out`.

    The kernel fills one buffer while a writer thread encodes the previous
    one (a pool of two), so computing overlaps encoding and memory stays
    bounded. The file appears at `out` only when complete.
    """
    hi = spec.total if hi is None else hi
    # block spaces (blocks.BlockSpec) bring their own kernel and columns: the hook keeps one writer loop
    evaluator = spec.evaluator(threads) if hasattr(spec, "evaluator") else Evaluator(spec, threads)
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
