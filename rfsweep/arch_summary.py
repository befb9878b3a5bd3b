"""The `rfsweep archs` table, stored: one row per known network, so listing them needs no analysis.

Analysing all 31 catalog networks takes longer than a command should take to
start, and their figures only change when a file of the catalog does. So the
rows live in architectures/_summary.json beside a SHA-256 of each network's
file; a row whose file no longer matches (an edited catalog) is analysed
afresh. tests/test_arch_summary.py fails when the stored rows differ from a
fresh analysis; `python tools/make_archs_summary.py` writes them again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .architectures import arch_info, arch_path, list_archs

SUMMARY = Path(__file__).parent / "architectures" / "_summary.json"
COLUMNS = ("rf", "jump", "eff_padding", "params", "macs")


def file_digest(name: str) -> str:
    return hashlib.sha256(arch_path(name).read_bytes()).hexdigest()


def fresh_row(name: str) -> dict:
    """A network's row from its file: analysed now."""
    from .explain import analyze

    info = arch_info(name)
    total = analyze(arch_path(name))["total"]
    return {"name": name, "title": info.get("title", name), **{key: total[key] for key in COLUMNS},
            "source": info.get("source", "")}


def stored() -> dict:
    """{name: {"sha256", "row"}} as _summary.json holds it (empty when the file is missing)."""
    try:
        return json.loads(SUMMARY.read_text())
    except (OSError, ValueError):
        return {}


def summary_rows() -> list[dict]:
    """Every known network's row, sorted by name: stored where its file is unchanged, else analysed."""
    known = stored()
    rows = []
    for name in list_archs():
        entry = known.get(name)
        rows.append(entry["row"] if entry and entry.get("sha256") == file_digest(name) else fresh_row(name))
    return rows


def build_summary() -> dict:
    """What _summary.json should hold now."""
    return {name: {"sha256": file_digest(name), "row": fresh_row(name)} for name in list_archs()}
