"""Known networks as graph JSON files (shipped with the package), each with its source.

Each file is a section-6 graph (`nodes`, `output`) plus `name`, `title`,
`source`, `notes`, `input_size`, `in_channels` and `published` (figures from
the literature that a test holds our arithmetic to). The files are generated
by tools/make_catalog.py; docs/catalog.md lists them and how end-points are named.
_summary.json (not a network) holds the `rfsweep archs` rows (arch_summary.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import RfsweepError

_HERE = Path(__file__).parent

# Old names (the chain files they replaced) and spellings with underscores for the table's hyphens.
ALIASES = {
    "vgg16": "vgg_16",
    "alexnet": "alexnet_v2",
    "inception_v2_no_separable_conv": "inception_v2-no-separable-conv",
    "inception_resnet_v2_same": "inception_resnet_v2-same",
}


def list_archs() -> list[str]:
    """Names of the known networks, sorted (aliases not included)."""
    return sorted(path.stem for path in _HERE.glob("*.json") if not path.stem.startswith("_"))


def resolve_name(name: str) -> str:
    """The canonical name of a known network or alias (case-insensitive)."""
    key = name.lower()
    return ALIASES.get(key, key)


def arch_path(name: str) -> Path:
    """The JSON file of a known network; RfsweepError listing the names if unknown."""
    key = resolve_name(name)
    path = _HERE / f"{key}.json"
    if "/" in key or "\\" in key or key.startswith("_") or not path.is_file():
        raise RfsweepError(f"unknown architecture {name!r} (known: {', '.join(list_archs())})")
    return path


def arch_info(name: str) -> dict:
    """The raw JSON object of a known network (nodes, source, published figures)."""
    return json.loads(arch_path(name).read_text())
