"""The stored `rfsweep archs` rows: equal to a fresh analysis, and used only while their file is unchanged."""

from __future__ import annotations

import json

import pytest

from rfsweep import arch_summary
from rfsweep.architectures import arch_path, list_archs
from rfsweep.errors import RfsweepError


def test_stored_rows_equal_a_fresh_analysis():
    """Fails when a catalog file changed without `python tools/make_archs_summary.py`."""
    known = arch_summary.stored()
    assert sorted(known) == list_archs()
    for name in list_archs():
        assert known[name]["sha256"] == arch_summary.file_digest(name), f"{name}: summary is stale"
        assert json.loads(json.dumps(arch_summary.fresh_row(name))) == known[name]["row"], name


def test_a_changed_file_is_analysed_afresh(monkeypatch):
    known = arch_summary.stored()
    wrong = {"name": "vgg_16", "title": "not this", "rf": 1, "jump": 1, "eff_padding": 0, "params": 0, "macs": 0,
             "source": ""}
    # the digest matches: the stored row is used as it is (so the store is what archs reads)
    monkeypatch.setattr(arch_summary, "stored", lambda: {**known, "vgg_16": {"sha256": known["vgg_16"]["sha256"],
                                                                              "row": wrong}})
    assert next(r for r in arch_summary.summary_rows() if r["name"] == "vgg_16") == wrong
    # the file's digest differs (an edited catalog): its row is analysed again, the others are read
    monkeypatch.setattr(arch_summary, "stored", lambda: {**known, "vgg_16": {"sha256": "0" * 64, "row": wrong}})
    rows = {r["name"]: r for r in arch_summary.summary_rows()}
    assert rows["vgg_16"]["rf"] == 212 and rows["vgg_16"]["jump"] == 32  # Google's table
    assert rows["vgg_16"] == json.loads(json.dumps(arch_summary.fresh_row("vgg_16")))
    monkeypatch.setattr(arch_summary, "stored", lambda: {})  # no summary file at all: everything analysed
    assert [r["name"] for r in arch_summary.summary_rows()] == list_archs()


def test_the_summary_is_not_a_network():
    assert "_summary" not in list_archs()
    with pytest.raises(RfsweepError, match="unknown architecture"):
        arch_path("_summary")


def test_cli_archs_json_is_the_fresh_analysis(capsys):
    from cli_helpers import run_cli

    code, out, err = run_cli(capsys, "archs", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == list_archs()
    for row in rows[:3] + rows[-3:]:
        assert row == json.loads(json.dumps(arch_summary.fresh_row(row["name"])))
