"""The sweep kernels compile for a small fixed set of signatures, not once per spec (issue 14).

Kernel buffers take their dtypes from fixed groups (chain_sweep.KERNEL_GROUPS), so
specs whose bounds give other narrow file columns (other channels, input
sizes, kernels) reuse the compiled kernels, while every file keeps the
narrowest column types of chain_sweep.column_dtypes. Values are checked against
the pure-Python enumeration (tests/naive_sweep.py).
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from rfsweep import GridSpec, chain_sweep, engines
from rfsweep.kernel import sweep_range, sweep_range_serial
from rfsweep.chain_sweep import column_dtypes, sweep_schema

from naive_sweep import naive_sweep

# file dtypes differ between these (channels uint8 vs uint16, params uint16/32/64, out_size uint8/16...)
SPECS = [
    dict(depth="1-2", kernel="1,3", stride="1,2", channels="16,32,64"),
    dict(depth="1-2", kernel="1,3", stride="1,2", channels="128,256,1000"),
    dict(depth="1,3", kernel="3,5", channels="2", input_size=9, in_channels=1),
    dict(depth="1-2", kernel="1,7", dilation="1,3", channels="40000", input_size=30),
    dict(depth="2", kernel="3", stride="4", channels="8", input_size=1000, min_rf=20),
]


def signatures() -> tuple[int, int]:
    return len(sweep_range.signatures), len(sweep_range_serial.signatures)


def test_specs_with_other_column_types_reuse_the_compiled_kernels(tmp_path):
    file_types = set()
    engines.warm_up(GridSpec.build(SPECS[0]))
    before = signatures()
    for i, values in enumerate(SPECS):
        spec = GridSpec.build(values)
        assert engines.warm_up(spec) == 0.0  # nothing compiled
        out = tmp_path / f"s{i}.parquet"
        engines.write_range(spec, out, threads=2, chunk_ids=37)
        table = pq.read_table(out)
        assert table.schema.remove_metadata() == sweep_schema(spec).remove_metadata()
        rows, _counts = naive_sweep(spec)
        assert table.column("config_id").to_pylist() == [row["config_id"] for row in rows]
        for name in ("rf", "jump", "out_size", "out_channels", "params", "macs", "flops", "l1_channels",
                     "l1_kernel", "l1_padding"):
            assert table.column(name).to_pylist() == [row[name] for row in rows], name
        file_types.add(tuple(str(dtype) for dtype in column_dtypes(spec).values()))
    assert signatures() == before
    assert len(file_types) == len(SPECS)  # the specs really do differ in their file column types


def test_wide_values_take_the_wide_signature_and_stay_exact(tmp_path):
    """Kernel sizes past 255 use the group's wide buffers (one more signature, a fixed set)."""
    spec = GridSpec.build(dict(depth="1-2", kernel="1,300", channels="4", input_size=400, padding="valid"))
    dtypes = chain_sweep.kernel_dtypes(spec)
    assert dtypes["kernel"] == np.uint32 and column_dtypes(spec)["kernel"] == np.uint16
    out = tmp_path / "wide.parquet"
    engines.write_range(spec, out)
    table = pq.read_table(out)
    rows, _counts = naive_sweep(spec)
    assert table.column("l1_kernel").to_pylist() == [row["l1_kernel"] for row in rows]
    assert table.column("rf").to_pylist() == [row["rf"] for row in rows]


@pytest.mark.parametrize("values", SPECS)
def test_kernel_dtypes_come_from_the_fixed_groups(values):
    dtypes = chain_sweep.kernel_dtypes(GridSpec.build(values))
    file = column_dtypes(GridSpec.build(values))
    for names, choices in chain_sweep.KERNEL_GROUPS:
        assert len({dtypes[name] for name in names}) == 1
        assert dtypes[names[0]].type in choices
        for name in names:  # never narrower than the file: narrowing at write time is lossless
            assert np.iinfo(dtypes[name]).max >= np.iinfo(file[name]).max
