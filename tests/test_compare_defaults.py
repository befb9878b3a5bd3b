"""`compare` with its default kernels shows runner-ups for larger R, and says depth is bounded (issue 14).

Oracle: at stride 1 a stack of kernels k_i has RF 1 + sum(k_i - 1) and, with C
channels in and out, params sum(k_i^2 C^2 + C): written here from the formulas,
not from rfsweep's arithmetic.
"""

from __future__ import annotations

import json

import cli_helpers
import pytest

from rfsweep.analysis import compare, default_kernels


@pytest.fixture
def run_cli(capsys):
    return lambda *argv: cli_helpers.run_cli(capsys, *argv)


def kernels_of(stack: str) -> list[int]:
    return [int(layer[1:].split("x")[0]) for layer in stack.split(",")]


def params_of(kernels: list[int], channels: int) -> int:
    return sum(k * k * channels * channels + channels for k in kernels)


def test_rf15_has_runner_ups_within_max_depth():
    rows = compare(15, channels=64)
    stacks = [row for row in rows if not row["single"]]
    assert len(stacks) >= 3
    for row in rows:
        ks = kernels_of(row["stack"])
        assert 1 + sum(k - 1 for k in ks) == 15
        assert row["params"] == params_of(ks, 64)
        assert len(ks) == row["depth"] <= 4
    assert [row["params"] for row in rows] == sorted(row["params"] for row in rows)
    # what the title warns about: seven 3x3 convs (deeper than --max-depth 4) cost less than the best row
    assert params_of([3] * 7, 64) < rows[0]["params"]


def test_default_kernels_keep_rf7_and_rf5_as_before():
    assert default_kernels(7) == [3, 5] and default_kernels(5) == [3] and default_kernels(15) == [3, 5, 7]
    assert [row["stack"] for row in compare(7, channels=64)] == ["c3x64,c3x64,c3x64", "c5x64,c3x64", "c7x64"]


def test_cli_title_names_the_depth_bound(run_cli):
    code, out, _err = run_cli("compare", "--rf", "15")
    assert code == 0
    assert "at most 4 smaller convs" in out and "--max-depth 4" in out
    assert out.count("c7x64") >= 2  # runner-ups with a 7x7 layer are listed
    code, out, _err = run_cli("compare", "--rf", "31")
    assert code == 0 and "raise --max-depth" in out
    code, out, _err = run_cli("compare", "--rf", "15", "--format", "json")
    doc = json.loads(out)
    assert doc["kernels"] == [3, 5, 7] and len(doc["rows"]) >= 4
