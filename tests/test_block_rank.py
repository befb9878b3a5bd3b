"""Block spaces at rank 1 and 3 (and causal tcn/wavenet blocks): every row against the graph path.

The oracle is `rfsweep.analyze` of the row's graph (`block_graph` with the
spec's rank), walked by naive_blocks prefix by prefix; the graph path is
itself checked against torch at every rank (tests/test_rank.py). Rank 2
keeps its files byte for byte (test_blocks.py's published networks; the
`rank` key is left out of the stored spec at 2).
"""

from __future__ import annotations

import numpy as np
import pytest

import rfsweep
from rfsweep.blocks import BlockSpec, block_graph
from rfsweep.errors import RfsweepError

from naive_blocks import naive_sweep
from test_blocks import assert_rows_equal, sweep_frame

CENTRED = [
    {"block": ["conv", "basic", "bottleneck"], "repeats": [1, 2], "kernel": [1, 3], "stride": [1, 2],
     "width": [4, 8], "expansion": [1, 2]},
    {"block": ["dwsep", "mbconv"], "repeats": [1, 2], "kernel": [3, 5], "dilation": [1, 2], "width": [8],
     "expansion": [1, 3]},
]


@pytest.mark.parametrize("rank, size, stem", [(1, 50, "c3s2x4nb"), (3, 12, "c3x4nb"), (1, [30], ""),
                                              (3, [9, 9, 9], "")])
def test_centred_blocks_at_rank_1_and_3_equal_the_graph_path(tmp_path, rank, size, stem):
    values = {"stem": stem, "input_size": size, "in_channels": 2, "stage": CENTRED}
    if not isinstance(size, list):
        values["rank"] = rank
    spec = BlockSpec.build(values)
    assert spec.rank == rank and spec.grid_total == (3 * 2 * 2 * 2 * 2 * 2) * (2 * 2 * 2 * 2 * 1 * 2)
    rows, counts = naive_sweep(spec)
    df, meta = sweep_frame(spec, tmp_path, chunk_ids=97)
    assert_rows_equal(df, rows, spec.stages)
    assert {k: meta["counts"][k] for k in counts} == counts
    assert counts["written"] > 0 and meta["spec"]["rank"] == rank


def test_rank_3_costs_by_hand():
    # one basic block, 3x3x3 convs, 4 -> 8 channels on a 6^3 map (no stem): conv1 3^3*4*8 + BN 16,
    # conv2 3^3*8*8 + 16, projection 1x1x1 4*8 + 16; MACs: every weight once per output voxel (6^3)
    spec = BlockSpec.build({"stem": "", "rank": 3, "input_size": 6, "in_channels": 4,
                            "stage": [{"block": "basic", "width": [8]}]})
    total = rfsweep.analyze(block_graph(spec, 0))["total"]
    weights = 27 * 4 * 8 + 27 * 8 * 8 + 4 * 8
    assert total["params"] == weights + 3 * 16
    assert total["macs"] == weights * 6 ** 3
    assert total["rf"] == 5 and total["out_size"] == 6


def test_rank_2_spec_keeps_its_stored_form():
    values = {"stem": "", "input_size": 8, "stage": [{"block": "basic", "width": [8]}]}
    assert "rank" not in BlockSpec.build(values).to_dict()
    assert "rank" not in BlockSpec.build({**values, "rank": 2}).to_dict()
    stored = BlockSpec.build({**values, "rank": 3}).to_dict()
    assert stored["rank"] == 3 and BlockSpec.build(stored).rank == 3


@pytest.mark.parametrize("values, message", [
    ({"rank": 4}, "rank must be 1, 2 or 3"),
    ({"input_size": [8, 16]}, "isotropic"),
    ({"rank": 1, "input_size": [8, 16]}, "does not fit rank 1"),
    ({"rank": 1, "stem": "c1_3x4"}, "stem"),
])
def test_bad_rank_input(values, message):
    base = {"stem": "", "input_size": 8, "stage": [{"block": "basic", "width": [8]}]}
    with pytest.raises(RfsweepError, match=message):
        BlockSpec.build({**base, **values})


def test_graph_has_the_spec_rank():
    spec = BlockSpec.build({"stem": "c3x4nb", "rank": 1, "input_size": 40, "stage": [{"block": "basic", "width": [4]}]})
    graph = block_graph(spec, 0)
    assert graph["rank"] == 1
    result = rfsweep.analyze(graph)
    assert result["total"]["out_size"] == 40 and result["total"]["rf"] == 7
    assert np.isscalar(result["total"]["rf"])
