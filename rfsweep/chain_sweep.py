"""The chain grid's rows: their Arrow schema, and the evaluator running `kernel.py` over id ranges.

`sweep_schema` gives the columns (as narrow as the spec allows: uint8
per-layer fields, the smallest unsigned type that holds each total's exact
upper bound), so files stay small and encoding stays fast. `Evaluator` owns
the choice table and reusable output buffers and turns one id range into an
Arrow table (zero-copy views of the kernel's columns): it is what
`GridSpec.evaluator()` returns to the shared writer loop (`engines.write_range`).

This module knows the chain spec only through the attributes it reads
(`grid.GridSpec`'s lists, bounds and choice table), so the spec module can
import it lazily without a circle. numba and the kernel load on the first
Evaluator: the schema alone (pareto, report) never imports them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .arithmetic import LAYER_TYPES
from .errors import RfsweepError
from .space import PARALLEL_MIN_IDS, Counts

LAYER_FIELDS = ("type", "kernel", "stride", "dilation", "padding", "channels")
TYPE_DICTIONARY = pa.array(LAYER_TYPES, pa.string())
TOTAL_COLUMNS = ("config_id", "rf", "jump", "out_size", "out_channels", "params", "macs", "flops",
                 "erf_std", "erf_ratio")
INT64_MAX = np.iinfo(np.int64).max


def smallest_uint(bound: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bound <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise RfsweepError(f"value bound {bound} does not fit 64 bits")


def column_dtypes(spec) -> dict[str, np.dtype]:
    """numpy dtype of every totals column and of each per-layer field."""
    bounds = spec.bounds()
    pad = max(spec.padding_value(p, k, d) for p in spec.padding for k in spec.kernel for d in spec.dilation)
    return {
        "config_id": np.dtype(np.uint64), "depth": np.dtype(np.uint8),
        "rf": smallest_uint(bounds["rf"]), "jump": smallest_uint(bounds["jump"]),
        "out_size": smallest_uint(bounds["out_size"]), "out_channels": smallest_uint(bounds["channels"]),
        "params": smallest_uint(bounds["params"]), "macs": smallest_uint(bounds["macs"]),
        "flops": smallest_uint(bounds["flops"]),
        "erf_std": np.dtype(np.float32), "erf_ratio": np.dtype(np.float32),
        "type": np.dtype(np.int8), "kernel": smallest_uint(max(spec.kernel)),
        "stride": smallest_uint(max(spec.stride)), "dilation": smallest_uint(max(spec.dilation)),
        "padding": smallest_uint(pad), "channels": smallest_uint(bounds["channels"]),
    }


def layer_fields(spec) -> tuple[str, ...]:
    """Per-layer fields written: `type` only when the grid mixes layer types."""
    return LAYER_FIELDS if len(spec.types) > 1 else LAYER_FIELDS[1:]


def sweep_schema(spec) -> pa.Schema:
    """The Arrow schema of a chain grid's rows (what `GridSpec.schema()` returns)."""
    dtypes = column_dtypes(spec)
    columns = [pa.field(name, pa.from_numpy_dtype(dtypes[name]), nullable=False) for name in (
        "config_id", "depth", "rf", "jump", "out_size", "out_channels", "params", "macs", "flops",
        "erf_std", "erf_ratio")]
    for i in range(1, max(spec.depth) + 1):
        for name in layer_fields(spec):
            arrow_type = (pa.dictionary(pa.int8(), pa.string()) if name == "type"
                          else pa.from_numpy_dtype(dtypes[name]))
            # every stack has at least min(depth) layers: no nulls, and no definition levels to encode
            columns.append(pa.field(f"l{i}_{name}", arrow_type, nullable=i > min(spec.depth)))
    return pa.schema(columns)


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


def kernel_dtypes(spec) -> dict[str, np.dtype]:
    """The dtype of every kernel buffer: column_dtypes widened to the group's fixed choice."""
    dtypes = column_dtypes(spec)
    for names, choices in KERNEL_GROUPS:
        need = max(np.iinfo(dtypes[name]).max for name in names)
        chosen = np.dtype(next(c for c in choices if np.iinfo(c).max >= need))
        dtypes.update({name: chosen for name in names})
    return dtypes


class Buffers:
    """Preallocated kernel output columns for one chunk (reused, never regrown)."""

    def __init__(self, spec, capacity: int):
        dtypes = kernel_dtypes(spec)
        depth = max(spec.depth)
        self.totals = {name: np.empty(capacity, dtypes[name]) for name in TOTAL_COLUMNS}
        self.layers = {name: np.empty((depth, capacity), dtypes[name]) for name in
                       ("type", "kernel", "stride", "dilation", "padding", "channels")}


class Evaluator:
    """Evaluate id ranges of one chain grid into Arrow tables, with the shared kernel."""

    def __init__(self, spec, threads: int | None = None):
        import numba

        from .kernel import sweep_range, sweep_range_serial

        self._numba = numba
        self._parallel, self._serial = sweep_range, sweep_range_serial
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
            numba = self._numba
            numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
            kernel, parts = self._parallel, 4 * self.threads
        else:
            kernel, parts = self._serial, 1
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
               self.spec.in_channels, self.spec.bias, self.spec.rank, self.limits, self.size_never_grows,
               *(out[name] for name in TOTAL_COLUMNS),
               *(lay[name] for name in ("type", "kernel", "stride", "dilation", "padding", "channels")),
               counts)

    def warm_up(self, parallel: bool = True) -> None:
        """Load the kernels for this spec's signature (compiling them the first time), on no ids.

        The parallel one only if `parallel`: runs on one thread per part never launch it.
        """
        buffers = Buffers(self.spec, 1)
        depth, base, _count = self.spec.depth_blocks()[0]
        for kernel in (self._parallel, self._serial) if parallel else (self._serial,):
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
