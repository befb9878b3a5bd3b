"""Block-space rows: their Arrow schema, and the evaluator running `block_kernel.py` over id ranges.

`BlockEvaluator` is what `engines.write_range` asks a spec for
(`BlockSpec.evaluator(threads)`): it owns the choice table and turns one id range
(or, with --sample, one range of positions in the sorted sample) into an
Arrow table that views reusable buffers. Everything else -- the writer
thread, row-group gathering, atomic rename, shards, partitions, Dask -- is
the chain sweep's machinery, unchanged.

Column types come from a small fixed set (uint32 or uint64 totals, uint16
or uint32 stage fields), so the kernel compiles for a handful of signatures,
not one per spec.

This module knows the spec only through the attributes it reads
(`blocks.BlockSpec`'s stages, bounds, choice table, stem and sample), so the
spec module imports it lazily without a circle.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from .block_fields import BLOCKS, CAUSAL, STAGE_COLUMNS, STAGE_FIELDS, TABLE_FIELDS
from .block_kernel import CENTRED_ONLY, ISOTROPIC, PER_AXIS, WITH_CAUSAL, sweep_blocks, sweep_blocks_serial
from .errors import RfsweepError
from .space import PARALLEL_MIN_IDS, Counts

INT64_MAX = np.iinfo(np.int64).max
TOTALS = ("config_id", "rf", "jump", "out_size", "out_channels", "params", "macs", "flops",
          "erf_std", "erf_ratio", "depth", "unproductive")
CENTRED_BLOCKS = 5  # conv .. mbconv: the dictionary files of centred-block spaces have always had
# per-axis spaces: these totals hold one value per axis (fixed-size lists of rank), as s{i}_stride does
AXIS_TOTALS = ("rf", "jump", "out_size", "erf_std", "erf_ratio")
AXIS_CHOICES = ("kernel", "stride", "dilation")  # and these per-stage columns (buffers.choices[0, 1, 2])


def block_dictionary(spec) -> pa.Array:
    """The s{i}_block dictionary: block names up to the last code the spec lists (codes index it),
    at least the centred five, so that files of the spaces before tcn/wavenet stay byte-identical."""
    last = max(BLOCKS.index(name) for stage in spec.stage for name in stage["block"])
    return pa.array(BLOCKS[:max(CENTRED_BLOCKS, last + 1)], pa.string())


def column_dtypes(spec) -> dict[str, np.dtype]:
    """numpy dtype of every column (a few fixed choices, so few kernel compilations)."""
    bounds = spec.bounds()
    small = np.dtype(np.uint32)
    geometry = small if max(bounds[k] for k in ("rf", "jump", "out_size", "channels")) < 2**32 else np.dtype(np.uint64)
    values = [v for s in spec.stage for key in ("repeats", "width", "expansion")
              for v in s[key]] + [g for s in spec.stage for g in (s["groups"] or [])]
    values += [max(spec.axes_of(x)) for s in spec.stage for key in AXIS_CHOICES for x in s[key]]
    stage = np.dtype(np.uint16) if max(values) < 2**16 else np.dtype(np.uint32)
    if bounds["depth"] >= 2**16:
        raise RfsweepError("spec: more than 65535 conv layers per network")
    dtypes = {"config_id": np.dtype(np.uint64), "rf": geometry, "jump": geometry, "out_size": geometry,
              "out_channels": geometry, "params": np.dtype(np.uint64), "macs": np.dtype(np.uint64),
              "flops": np.dtype(np.uint64), "erf_std": np.dtype(np.float32), "erf_ratio": np.dtype(np.float32),
              "depth": np.dtype(np.uint16), "unproductive": np.dtype(np.uint16)}
    dtypes.update({name: stage for name in STAGE_FIELDS})
    dtypes["block"] = np.dtype(np.int8)
    return dtypes


def stage_fields(spec) -> tuple[str, ...]:
    """Per-stage columns written: groups only when some stage lists groups or group_width."""
    return STAGE_FIELDS if spec.has_groups else STAGE_COLUMNS


def _column_type(spec, name: str, dtype) -> pa.DataType:
    """A column's Arrow type: per-axis spaces hold rf, jump, out_size, erf_std, erf_ratio and s{i}_kernel,
    s{i}_stride, s{i}_dilation as one value per axis (a fixed-size list of rank values), whatever the row."""
    kind = pa.from_numpy_dtype(dtype)
    return pa.list_(kind, spec.rank) if spec.per_axis and name in AXIS_TOTALS + AXIS_CHOICES else kind


def block_schema(spec) -> pa.Schema:
    dtypes = column_dtypes(spec)
    columns = [pa.field(name, _column_type(spec, name, dtypes[name]), nullable=False) for name in TOTALS]
    for i in range(1, spec.stages + 1):
        for name in stage_fields(spec):
            kind = pa.dictionary(pa.int8(), pa.string()) if name == "block" else _column_type(spec, name, dtypes[name])
            columns.append(pa.field(f"s{i}_{name}", kind, nullable=False))
    return pa.schema(columns)


class BlockBuffers:
    """Preallocated kernel outputs for one chunk (reused, never regrown)."""

    def __init__(self, spec, capacity: int):
        dtypes = column_dtypes(spec)
        self.totals = {name: np.empty(capacity, dtypes[name]) for name in TOTALS}
        self.stages = {name: np.empty((spec.stages, capacity), dtypes[name]) for name in STAGE_FIELDS}
        # per-axis spaces: rf, jump, out_size / erf_std, erf_ratio as [which, row, axis]; s{i}_kernel,
        # s{i}_stride, s{i}_dilation as [which, stage, row, axis]
        rows, axes = (capacity, spec.rank) if spec.per_axis else (1, 1)
        self.axes = np.empty((3, rows, axes), dtypes["rf"])
        self.axes_f = np.empty((2, rows, axes), dtypes["erf_std"])
        self.choices = np.empty((3, spec.stages, rows, axes), dtypes["stride"])


def _or_max(limit):
    return INT64_MAX if limit is None else min(limit, INT64_MAX)


class BlockEvaluator:
    """Evaluate id ranges of a block space into Arrow tables (the engines.write_range hook)."""

    def __init__(self, spec, threads: int | None = None):
        if spec.grid_total >= 2**63:
            raise RfsweepError(f"the space has {spec.grid_total:,} networks, more than config_id's 64 bits "
                               "hold; use fewer choices or stages")
        self.spec = spec
        self.schema = block_schema(spec)
        self.threads = threads or numba.config.NUMBA_NUM_THREADS
        table = spec.choice_table()
        self.table = np.ascontiguousarray(np.stack([table[name] for name in TABLE_FIELDS]))
        self.radix = np.array(spec.radices, np.int64)
        stem = spec.stem_state()
        self.per_axis = PER_AXIS if spec.per_axis else ISOTROPIC  # its length is part of its type, as causal's
        # the state after the stem (block_kernel's S_* rows); per-axis spaces add each axis's size, rf, rf_min, jump
        size = min(stem.sizes) if spec.per_axis else stem.size
        per_axis = [x for a in range(spec.rank) for x in (stem.sizes[a], stem.rfs[a], stem.rfs[a], stem.jumps[a])] \
            if spec.per_axis else []
        self.stem = np.array([size, stem.channels, stem.rf, stem.rf, stem.jump, stem.params, stem.macs,
                              stem.depth, stem.unproductive] + per_axis, np.int64)
        self.stem_var = float(stem.erf_var)
        self.stem_vars = np.array(stem.erf_vars if spec.per_axis else [], np.float64)
        self.sizes = np.array(spec.sizes, np.int64)
        self.limits = np.array([min(spec.min_rf or 0, INT64_MAX), _or_max(spec.max_rf), _or_max(spec.max_params),
                                _or_max(spec.max_macs), min(spec.min_out_size or 0, INT64_MAX)], np.int64)
        # the stem alone over a monotone budget: every network is pruned there
        self.stem_pruned = bool(stem.rf > self.limits[1] or stem.params > self.limits[2]
                                or stem.macs > self.limits[3] or size < self.limits[4])
        sample = spec.sample_ids()
        self.ids = (np.zeros(1, np.int64) if sample is None else sample.astype(np.int64))
        self.use_ids = sample is not None
        self.fields = stage_fields(spec)
        self.dictionary = block_dictionary(spec)
        # the kernel compiles without the causal stage for spaces that have no tcn or wavenet stage
        self.causal = WITH_CAUSAL if any(BLOCKS.index(name) in CAUSAL for s in spec.stage for name in s["block"]) \
            else CENTRED_ONLY
        self.axes = (1,) * spec.rank  # its length, the rank, is part of its type: one kernel per rank

    def warm_up(self, parallel: bool = True) -> None:
        """Nothing: the block kernel loads (or compiles) on the first chunk."""

    def new_buffers(self, capacity: int) -> BlockBuffers:
        return BlockBuffers(self.spec, capacity)

    def evaluate(self, depth: int, base: int, lo: int, hi: int, buffers: BlockBuffers) -> tuple[pa.Table, Counts]:
        """Run the kernel on ids [lo, hi) (sample positions with --sample); the table views `buffers`."""
        if self.stem_pruned:
            return self.schema.empty_table(), Counts(hi - lo, 0, hi - lo, 0, hi - lo)
        if self.threads > 1 and hi - lo >= PARALLEL_MIN_IDS:
            numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
            kernel, parts = sweep_blocks, 4 * self.threads
        else:
            kernel, parts = sweep_blocks_serial, 1
        counts = np.zeros((parts, 4), np.int64)
        out, st = buffers.totals, buffers.stages
        in_size = min(self.spec.sizes)  # (isotropic spaces: their one length)
        kernel(self.table, self.radix, self.stem, self.stem_var, self.stem_vars, in_size, self.sizes, self.axes,
               self.causal, self.per_axis, self.limits, self.ids, self.use_ids, lo, hi, parts,
               *(out[name] for name in TOTALS), buffers.axes, buffers.axes_f, buffers.choices,
               *(st[name] for name in STAGE_FIELDS), counts)
        span = hi - lo
        batches = [self._batch(buffers, span * p // parts, int(counts[p, 0])) for p in range(parts) if counts[p, 0]]
        table = pa.Table.from_batches(batches, self.schema) if batches else self.schema.empty_table()
        kept, invalid, pruned, skipped = (int(x) for x in counts.sum(axis=0))
        return table, Counts(hi - lo, invalid, pruned, kept, skipped)

    def _batch(self, buffers: BlockBuffers, start: int, kept: int) -> pa.RecordBatch:
        end = start + kept
        per_axis = self.per_axis is PER_AXIS
        arrays = [_per_axis(_axis_buffer(buffers, name)[start:end]) if per_axis and name in AXIS_TOTALS
                  else pa.array(buffers.totals[name][start:end]) for name in TOTALS]
        for i in range(self.spec.stages):
            for name in self.fields:
                if name in AXIS_CHOICES and per_axis:
                    arrays.append(_per_axis(buffers.choices[AXIS_CHOICES.index(name), i, start:end]))
                    continue
                values = pa.array(buffers.stages[name][i, start:end])
                arrays.append(pa.DictionaryArray.from_arrays(values, self.dictionary) if name == "block" else values)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def _axis_buffer(buffers: BlockBuffers, name: str) -> np.ndarray:
    """The (rows, rank) buffer the kernel writes a per-axis total into."""
    which = AXIS_TOTALS.index(name)
    return buffers.axes[which] if which < 3 else buffers.axes_f[which - 3]


def _per_axis(rows: np.ndarray) -> pa.Array:
    """(rows, rank) values, each row's axes side by side, as a fixed-size-list array (no copy)."""
    return pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), rows.shape[1])
