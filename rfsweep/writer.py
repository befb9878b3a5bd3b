"""Parquet output of any space: write options, the `rfsweep` metadata, and an atomic writer.

The columns come from the space (`Space.schema()`: the chain grid's in
`chain_sweep`, the block spaces' in `block_sweep`), as narrow as each spec
allows, so files stay small and encoding stays fast. The writer streams row
groups into a temporary file beside OUT and renames it into place only after
the footer (with the `rfsweep` metadata: spec, version, counts, the space's
conventions) is written: a failed or interrupted run leaves the previous OUT
byte for byte, or none. Nothing here knows a concrete space.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .errors import RfsweepError
from .output import atomic_output, check_output_path, commit, remove_stale_temporaries, temporary_path, write_error
from .space import KEEP_DICTIONARY, Space
from .sweep_file import LAYER_COLUMN, raw_metadata

__all__ = ["atomic_output", "check_output_path", "temporary_path"]  # re-exported: they moved to output.py

ROW_GROUP_ROWS = 1 << 20
# Encoding is the end-to-end bottleneck (one core per file). CPU time on the default grid
# (5.4M rows, quiet machine): dictionary pages 4.4M rows/s (8.2 MB); plain pages + delta
# config_id + 64k batches 7.2M rows/s (11.6 MB); + v2 data pages 8.7M; + non-null l1_*
# columns 9.1M. Statistics only where filters use them (totals), not on per-layer columns.
# Issue 14 (benchmarks/README.md): zstd spends its time on the per-layer columns, which Parquet
# stores as 4-byte INT32 for a uint8 and which are 20 of 31 columns (default grid) but an eighth
# of the bytes: LZ4 there, and byte-stream-split totals (zeros of the high bytes compress for
# free), cut the encoder's CPU time by about a third for a somewhat larger file.
WRITE_OPTIONS = dict(
    compression="zstd", compression_level=1, use_dictionary=False, data_page_version="2.0",
    column_encoding={"config_id": "DELTA_BINARY_PACKED"},
    write_statistics=["config_id", "depth", "rf", "jump", "out_size", "out_channels", "params", "macs", "flops"],
    write_batch_size=1 << 16, data_page_size=1 << 20,
    write_page_checksum=True,  # CRC32 per page: readers verify it (sweep_file.parquet_format)
)
LAYER_COMPRESSION = "lz4_raw"
# BYTE_STREAM_SPLIT for integer columns needs pyarrow >= 16 to write and to read
_SPLIT_INTEGERS = int(pa.__version__.split(".")[0]) >= 16


def write_options(schema: pa.Schema) -> dict:
    """ParquetWriter options for a sweep schema: WRITE_OPTIONS, per column where it pays."""
    options = dict(WRITE_OPTIONS)
    names = schema.names
    layer = [name for name in names if LAYER_COLUMN.fullmatch(name)]
    options["compression"] = {name: LAYER_COMPRESSION if name in layer else "zstd" for name in names}
    options["compression_level"] = {name: 1 for name in names if name not in layer}
    encoding = dict(WRITE_OPTIONS["column_encoding"])
    for field in schema:
        if field.name in layer or field.name in encoding or field.name == "depth":
            continue
        if pa.types.is_floating(field.type) or (_SPLIT_INTEGERS and pa.types.is_integer(field.type)):
            encoding[field.name] = "BYTE_STREAM_SPLIT"
    options["column_encoding"] = {name: value for name, value in encoding.items() if name in names}
    options["write_statistics"] = [name for name in WRITE_OPTIONS["write_statistics"] if name in names]
    # dictionary columns whose field says KEEP_DICTIONARY (U-Net padding/upsampling) are written as they are,
    # indices and dictionary, instead of decoding every row to a string (U-Net space, 17 columns:
    # 13.6M -> 17.9M rows/s of encoder CPU). Chain and block files keep their old encoding, byte for byte.
    kept = [field.name for field in schema if (field.metadata or {}).get(KEEP_DICTIONARY[0]) == KEEP_DICTIONARY[1]]
    if kept:
        options["use_dictionary"] = kept
    return options


def sweep_schema(spec: Space) -> pa.Schema:
    """The Arrow schema of a space's rows (the space decides; see `Space.schema`)."""
    return spec.schema()


def sweep_metadata(spec: Space, counts: dict, extra: dict | None = None) -> dict:
    """The `rfsweep` key-value metadata object stored in every sweep file."""
    return {"version": __version__, "spec": spec.to_dict(), "counts": counts,
            "conventions": spec.conventions, **(extra or {})}


def read_metadata(path: Path | str) -> dict:
    """The `rfsweep` metadata object of a sweep file; RfsweepError if absent or unreadable
    (validate it against the rows with sweep_file.validated_metadata)."""
    data = raw_metadata(path)
    if data is None:
        raise RfsweepError(f"{path}: Parquet file has no rfsweep metadata (not written by rfsweep sweep)")
    return data


class AtomicParquetWriter:
    """Stream tables into OUT via a temporary file renamed into place on success.

    Use as a context manager; `finish(metadata)` stores the metadata and
    renames. Leaving the block without `finish` (an error, a signal) removes
    the temporary file and leaves OUT untouched.
    """

    def __init__(self, out: Path | str, schema: pa.Schema):
        self.out = Path(out)
        self.target = check_output_path(self.out)  # a symlink's target; devices and FIFOs refused
        self.tmp = temporary_path(self.target)
        self.schema = schema
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def __enter__(self):
        remove_stale_temporaries(self.target)
        try:
            self._writer = pq.ParquetWriter(self.tmp, self.schema, **write_options(self.schema))
        except OSError as exc:  # e.g. a disk full before the first byte: no temporary file left
            self.abort()
            raise write_error(self.out, exc) from None
        except BaseException:
            self.abort()
            raise
        return self

    def write(self, table: pa.Table) -> None:
        try:
            self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        except OSError as exc:
            raise self._failed(exc) from None
        self.rows += table.num_rows

    def finish(self, metadata: dict) -> None:
        try:
            self._writer.add_key_value_metadata({"rfsweep": json.dumps(metadata)})
            self._writer.close()
            self._writer = None
            commit(self.tmp, self.out, self.target)
        except OSError as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> Exception:
        return write_error(self.out, exc)

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - already failing; the tmp file goes anyway
                pass
            self._writer = None
        try:
            self.tmp.unlink(missing_ok=True)
        except OSError:
            pass

    def __exit__(self, exc_type, exc, tb):
        if self._writer is not None or self.tmp.exists():
            self.abort()
        return False
