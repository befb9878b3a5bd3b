"""Known networks as JSON stacks (shipped with the package), each with its source.

Each file holds the contract's JSON object form plus `name`, `title`,
`source`, `notes` and `published` (RF, jump and effective padding from the
literature, or null) so a test can hold our arithmetic to them.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import RfsweepError

_HERE = Path(__file__).parent


def list_archs() -> list[str]:
    """Names of the known networks, sorted."""
    return sorted(path.stem for path in _HERE.glob("*.json"))


def arch_path(name: str) -> Path:
    """The JSON file of a known network; RfsweepError listing the names if unknown."""
    path = _HERE / f"{name.lower()}.json"
    if not path.is_file():
        raise RfsweepError(f"unknown architecture {name!r} (known: {', '.join(list_archs())})")
    return path


def arch_info(name: str) -> dict:
    """The raw JSON object of a known network (layers, source, published figures)."""
    return json.loads(arch_path(name).read_text())
