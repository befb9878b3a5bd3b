"""Reading a sweep file safely: page checksums verified, the `rfsweep` metadata validated once.

Every reader (show, pareto, report, measure) opens files through
`parquet_format()` and checks metadata with `validated_metadata`, so a
flipped byte is an error naming the file (never silently different numbers),
and a file whose metadata is not JSON, names an unknown spec key, or
describes other columns than its rows have is refused (or, in a report,
named as such) by all of them alike.
"""

from __future__ import annotations

import errno
import json
import re
from pathlib import Path

from .errors import RfsweepError

LAYER_COLUMN = re.compile(r"[ls]\d+_\w+")  # per-layer (chains) and per-stage (block spaces) fields
READ_CHECKSUMS = True  # writers store a CRC32 per page (writer.WRITE_OPTIONS); readers verify it


def parquet_format():
    """A pyarrow.dataset Parquet format that verifies page checksums while reading."""
    import pyarrow.dataset as ds

    options = ds.ParquetFragmentScanOptions(page_checksum_verification=READ_CHECKSUMS)
    return ds.ParquetFileFormat(default_fragment_scan_options=options)


def open_dataset(files):
    """pyarrow.dataset over Parquet files (paths), page checksums verified on every read."""
    import pyarrow.dataset as ds

    return ds.dataset([str(f) for f in files], format=parquet_format())


def read_error(path, exc: BaseException) -> Exception:
    """The error for a failure while reading a sweep's pages: MemoryError stays (exit 1: the
    machine's limit, not bad input), a corrupt page or footer is RfsweepError (exit 2) naming
    the file."""
    import pyarrow as pa

    if isinstance(exc, (MemoryError, pa.ArrowMemoryError)) or ("malloc" in str(exc) and "failed" in str(exc)):
        return MemoryError(f"out of memory reading {path}: {_first_line(exc)}")
    text = _first_line(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO):
        from .errors import OutputError  # a full disk while reading (spill files): the machine's, exit 1
        return OutputError(f"cannot write while reading {path}: {text}")
    if "checksum" in text.lower() or "crc" in text.lower():
        return RfsweepError(f"{path}: corrupt data (a page checksum does not match: the file was changed "
                            f"or damaged after it was written); {text}")
    return RfsweepError(f"{path}: cannot read the sweep ({text})")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def raw_metadata(path: Path | str) -> dict | None:
    """The `rfsweep` metadata object of a Parquet file, None if it has none (not written by rfsweep).

    RfsweepError if the file is unreadable or the metadata is not a JSON object.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path).metadata or {}
    except (OSError, pa.ArrowException, ValueError) as exc:  # ValueError: undecodable footer bytes
        raise RfsweepError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None
    if b"rfsweep" not in meta:
        return None
    try:
        data = json.loads(meta[b"rfsweep"])
    except (ValueError, RecursionError):
        raise RfsweepError(f"{path}: rfsweep metadata is not valid JSON") from None
    if not isinstance(data, dict):
        raise RfsweepError(f"{path}: rfsweep metadata is not a JSON object")
    return data


def validated_metadata(path: Path | str, metadata: dict | None, schema=None):
    """(metadata, spec) once the stored spec is known to be valid and to describe `schema`.

    `metadata` as read (raw_metadata, or a directory's manifest); `schema` the
    rows' Arrow schema (None: not checked). RfsweepError naming the file and
    the key or column otherwise.
    """
    from .space import spec_from_dict

    if not isinstance(metadata, dict):
        raise RfsweepError(f"{path}: Parquet file has no rfsweep metadata (not written by rfsweep sweep)")
    stored = metadata.get("spec")
    if not isinstance(stored, dict):
        raise RfsweepError(f"{path}: rfsweep metadata has no spec object")
    try:
        spec = spec_from_dict(stored)
    except RfsweepError as exc:
        raise RfsweepError(f"{path}: rfsweep metadata: {exc}") from None
    except (TypeError, AttributeError, ValueError, OverflowError, RecursionError) as exc:
        raise RfsweepError(f"{path}: rfsweep metadata has no usable spec ({type(exc).__name__})") from None
    if schema is not None:
        check_columns(path, spec, schema)
    return metadata, spec


def check_columns(path, spec, schema) -> None:
    """RfsweepError unless the rows have every column the spec writes and no per-layer column beyond it.

    Extra columns that are not per-layer (latency_ms of `measure`, a front's
    `stack`) are allowed; types are not compared (a front read through pandas
    may widen them).
    """
    expected = spec.schema().names
    names = set(schema.names)
    missing = [name for name in expected if name not in names]
    if missing:
        raise RfsweepError(f"{path}: the rfsweep metadata does not match the rows: its spec writes column "
                           f"{missing[0]!r}, which the file lacks")
    known = set(expected)
    extra = [name for name in schema.names if LAYER_COLUMN.fullmatch(name) and name not in known]
    if extra:
        raise RfsweepError(f"{path}: the rfsweep metadata does not match the rows: column {extra[0]!r} "
                           "is not one its spec writes")


def metadata_problem(path: Path | str, schema=None) -> str | None:
    """None if `path` (a file, or a directory with a manifest) has valid rfsweep metadata, else why not."""
    path = Path(path)
    try:
        if path.is_dir():  # the manifest (distributed.MANIFEST; read here without importing it)
            try:
                metadata = json.loads((path / "_rfsweep.json").read_text())
            except (OSError, ValueError):
                raise RfsweepError(f"{path}: no readable _rfsweep.json manifest") from None
        else:
            metadata = raw_metadata(path)
            if schema is None and metadata is not None:
                import pyarrow.parquet as pq
                schema = pq.read_schema(path)
        validated_metadata(path, metadata, schema)
    except RfsweepError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - an unreadable schema is a problem to name, not a crash
        return f"{path}: cannot read the schema ({_first_line(exc)})"
    return None
