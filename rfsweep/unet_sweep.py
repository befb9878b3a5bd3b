"""U-Net space rows: their Arrow schema, and the evaluator running `unet_kernel.py` over id ranges.

`UNetEvaluator` is what `engines.write_range` asks a `unet_space.UNetSpec`
for: it builds the kernel's tables once (geometry per structure, cost
polynomials per structure and multiplier) and turns one id range into an
Arrow table viewing reusable buffers. Columns have fixed types, so the
kernel compiles once, whatever the spec. Everything else -- writer thread,
row groups, atomic rename, partitions, shards, Dask -- is the shared machinery.

This module knows the spec only through the attributes it reads (`unet`,
`input_size`, `tile`, channels, limits), so the spec module imports it
lazily without a circle.
"""

from __future__ import annotations

import itertools

import numba
import numpy as np
import pyarrow as pa

from .space import KEEP_DICTIONARY, PARALLEL_MIN_IDS, Counts
from .unet_fields import BYTES_PER_ELEMENT, PADDING, UPSAMPLING
from .unet_kernel import N_COEF, sweep_range, sweep_range_serial, unet_tables

INT64_MAX = np.iinfo(np.int64).max
COLUMNS = (
    ("config_id", np.uint64), ("levels", np.uint8), ("convs", np.uint8), ("kernel", np.uint16),
    ("padding", np.int8), ("upsampling", np.int8), ("width_multiplier", np.uint16), ("base_width", np.uint32),
    ("rf", np.uint32), ("halo_before", np.uint32), ("halo_after", np.uint32), ("multiple", np.uint16),
    ("out_size", np.uint32), ("params", np.uint64), ("macs", np.uint64), ("macs_per_pixel", np.float64),
    ("peak_bytes", np.uint64),
)
DICTIONARIES = {"padding": pa.array(PADDING, pa.string()), "upsampling": pa.array(UPSAMPLING, pa.string())}


def unet_schema(spec) -> pa.Schema:
    """The Arrow schema of a U-Net space's rows (padding and upsampling as dictionary strings)."""
    fields = []
    for name, dtype in COLUMNS:
        if name in DICTIONARIES:  # written as indices + dictionary (writer.write_options)
            fields.append(pa.field(name, pa.dictionary(pa.int8(), pa.string()), nullable=False,
                                   metadata=dict([KEEP_DICTIONARY])))
        else:
            fields.append(pa.field(name, pa.from_numpy_dtype(dtype), nullable=False))
    return pa.schema(fields)


def structures(spec) -> np.ndarray:
    """One row per structure in config_id order: levels, convs, kernel, padding code, upsampling code."""
    axes = spec.unet
    lists = [axes["levels"], axes["convs"], axes["kernel"], [PADDING.index(p) for p in axes["padding"]],
             [UPSAMPLING.index(u) for u in axes["upsampling"]]]
    return np.array(list(itertools.product(*lists)), np.int64).reshape(-1, 5)


class UNetBuffers:
    """Preallocated kernel outputs for one chunk (reused, never regrown)."""

    def __init__(self, capacity: int):
        self.columns = {name: np.empty(capacity, dtype) for name, dtype in COLUMNS}


def _or_max(limit):
    return INT64_MAX if limit is None else min(limit, INT64_MAX)


class UNetEvaluator:
    """Evaluate id ranges of a U-Net space into Arrow tables (the engines.write_range hook)."""

    def __init__(self, spec, threads: int | None = None):
        self.spec = spec
        self.schema = unet_schema(spec)
        self.threads = threads or numba.config.NUMBA_NUM_THREADS
        self.structs = structures(spec)
        self.widths = np.array(spec.unet["base_width"], np.int64)
        self.mults = np.array(spec.unet["width_multiplier"], np.int64)
        self.geo = np.zeros((len(self.structs), 6), np.int64)
        self.coef = np.zeros((len(self.structs), len(self.mults), N_COEF), np.int64)
        unet_tables(self.structs, self.mults, spec.input_size, spec.tile, spec.in_channels, spec.out_channels,
                    self.geo, self.coef)
        self.limits = np.array([min(spec.min_rf or 0, INT64_MAX), _or_max(spec.max_rf), _or_max(spec.max_params),
                                _or_max(spec.max_macs), min(spec.min_out_size or 0, INT64_MAX)], np.int64)

    def warm_up(self, parallel: bool = True) -> None:
        """Load (or compile) the kernels on no ids."""
        buffers = UNetBuffers(1)
        for kernel in (sweep_range, sweep_range_serial) if parallel else (sweep_range_serial,):
            self._call(kernel, 0, 0, 1, buffers, np.zeros((1, 4), np.int64))

    def new_buffers(self, capacity: int) -> UNetBuffers:
        return UNetBuffers(capacity)

    def _call(self, kernel, lo, hi, parts, buffers, counts):
        out = buffers.columns
        kernel(lo, hi, parts, self.widths, self.mults, self.structs, self.geo, self.coef, BYTES_PER_ELEMENT,
               self.limits, *(out[name] for name, _ in COLUMNS), counts)

    def evaluate(self, key: int, base: int, lo: int, hi: int, buffers: UNetBuffers) -> tuple[pa.Table, Counts]:
        """Run the kernel on ids [lo, hi); the table views `buffers`."""
        if self.threads > 1 and hi - lo >= PARALLEL_MIN_IDS:
            numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
            kernel, parts = sweep_range, 4 * self.threads
        else:
            kernel, parts = sweep_range_serial, 1
        counts = np.zeros((parts, 4), np.int64)
        self._call(kernel, lo, hi, parts, buffers, counts)
        span = hi - lo
        batches = [self._batch(buffers, span * p // parts, int(counts[p, 0])) for p in range(parts) if counts[p, 0]]
        table = pa.Table.from_batches(batches, self.schema) if batches else self.schema.empty_table()
        kept, invalid, pruned, skipped = (int(x) for x in counts.sum(axis=0))
        return table, Counts(hi - lo, invalid, pruned, kept, skipped)

    def _batch(self, buffers: UNetBuffers, start: int, kept: int) -> pa.RecordBatch:
        end = start + kept
        arrays = []
        for name, _ in COLUMNS:
            values = pa.array(buffers.columns[name][start:end])
            arrays.append(pa.DictionaryArray.from_arrays(values, DICTIONARIES[name]) if name in DICTIONARIES
                          else values)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)
