"""`rfsweep show FILE ID`: one row's network, rebuilt from the stored spec and checked against the row.

The spec in the metadata is trusted only as far as the row agrees with it:
every per-layer (per-stage) column of the row must equal what the spec
rebuilds for its config_id, else the file is refused naming the column.
An id that is not a row of the file is still explained, with the reason it
is not a row: invalid (which layer or stage), pruned (which limit), or
filtered out after the sweep (a pareto front, a measure selection).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .errors import RfsweepError

LIMITS = (("min_rf", "rf", "<"), ("max_rf", "rf", ">"), ("max_params", "params", ">"),
          ("max_macs", "macs", ">"), ("min_out_size", "out_size", "<"))


@dataclass
class ShownRow:
    """What `find_row` found: the network to explain and whether the file holds its row."""

    config_id: int
    spec: object
    network: object  # a layers.Stack (chains) or a graph dict (block spaces)
    in_file: bool
    why_not: str | None  # why it is not a row (None when it is one)


def find_row(path: Path | str, config_id: int) -> ShownRow:
    """Rebuild row `config_id` of sweep `path` (a file or a complete directory) and check it."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from .analysis import _open_sweep
    from .layers import Stack
    from .sweep_file import read_error, validated_metadata

    try:
        dataset, metadata = _open_sweep(path, allow_incomplete=False)
        _, spec = validated_metadata(path, metadata, dataset.schema)
        rows = dataset.to_table(filter=ds.field("config_id") == config_id).to_pylist() \
            if 0 <= config_id < 2**63 else []  # config_id is int64
    except (OSError, pa.ArrowException, UnicodeDecodeError) as exc:
        raise read_error(path, exc) from None
    try:
        network = spec.network(config_id)
    except RfsweepError as exc:  # an invalid position: the sweep counted it, wrote no row
        if rows:
            raise RfsweepError(f"{path}: row {config_id} exists but its spec says it is invalid ({exc}); "
                               "the metadata does not match the rows") from None
        raise RfsweepError(f"config_id {config_id} is not a row of {path}: it is invalid ({exc})") from None
    if rows:
        check = (_check_chain_row if isinstance(network, Stack) else _check_columns if hasattr(spec, "row_values")
                 else _check_block_row)
        check(path, spec, config_id, rows[0])
        return ShownRow(config_id, spec, network, True, None)
    return ShownRow(config_id, spec, network, False, _why_not(spec, network, metadata))


def _mismatch(path, config_id: int, column: str, stored, expected) -> RfsweepError:
    return RfsweepError(f"{path}: row {config_id} has {column} = {stored} but the stored spec gives "
                        f"{expected}: the rfsweep metadata does not match the rows (the file was altered)")


def _same(stored, expected) -> bool:
    if isinstance(stored, float):
        return not math.isnan(stored) and stored == expected
    return stored == expected


def _check_chain_row(path, spec, config_id: int, row: dict) -> None:
    """Every l{i}_* column (and depth) of the row equals the spec's layer i for this config_id."""
    layers = spec.layers_of(config_id)
    if "depth" in row and row["depth"] is not None and not _same(row["depth"], len(layers)):
        raise _mismatch(path, config_id, "depth", row["depth"], len(layers))
    c_in = spec.in_channels
    for i, raw in enumerate(layers, start=1):
        pool = raw["type"] != "conv"
        expected = {"type": raw["type"], "kernel": raw["kernel"], "stride": raw["stride"],
                    "padding": raw["padding"], "dilation": 1 if pool else raw["dilation"],
                    "channels": c_in if pool else raw["out_channels"]}
        c_in = expected["channels"]
        for field, value in expected.items():
            column = f"l{i}_{field}"
            if column in row and row[column] is not None and not _same(row[column], value):
                raise _mismatch(path, config_id, column, row[column], value)


def _check_block_row(path, spec, config_id: int, row: dict) -> None:
    """Every s{i}_* column of the row equals stage i's choice for this config_id."""
    from .blocks import BLOCKS

    for i, choice in enumerate(spec.choices(config_id), start=1):
        for field, value in choice.items():
            column = f"s{i}_{field}"
            if column not in row or row[column] is None:
                continue
            expected = BLOCKS[value] if field == "block" else value
            if not _same(row[column], expected):
                raise _mismatch(path, config_id, column, row[column], expected)


def _check_columns(path, spec, config_id: int, row: dict) -> None:
    """Every configuration column the space names (`row_values`: U-Net axes) equals the row's."""
    for column, expected in spec.row_values(config_id).items():
        if column in row and row[column] is not None and not _same(row[column], expected):
            raise _mismatch(path, config_id, column, row[column], expected)


def _why_not(spec, network, metadata: dict | None) -> str:
    """Which limit pruned a valid network, or that the file was filtered after the sweep."""
    from .explain import analyze

    total = analyze(network)["total"]
    for key, column, op in LIMITS:
        limit = getattr(spec, key, None)
        value = total.get(column)
        if limit is None or value is None:
            continue
        if isinstance(value, (list, tuple)):  # per axis: a limit holds on every axis
            value = min(value) if op == "<" else max(value)
        if (value < limit) if op == "<" else (value > limit):
            return f"pruned: its {column} {value:,} is {'below' if op == '<' else 'above'} the spec's {key} {limit:,}"
    if metadata and "timing" in metadata:
        return "valid and within the spec's limits, but not selected by `rfsweep measure` (--top/--sort-by)"
    return ("valid and within the spec's limits, but not in this file: it was filtered after the sweep "
            "(a pareto front or a --where selection)")
