"""The design-space interface: what every kind of sweep space provides, and the registry that finds one.

A *space* numbers a family of networks by config_id and evaluates id ranges
of it in bulk. The chain grid (`grid.GridSpec`) and the block/stage spaces
(`blocks.BlockSpec`) implement `Space`; the machinery that runs a sweep --
`engines.write_range` (the writer loop), `writer` (Parquet, metadata),
`distributed` (shards, parts, Dask) and `sweep` (the API) -- knows only this
module, never a concrete space. A space module defines its class, decorates
it with `@register`, and is named in `SPACE_MODULES`; `load_spec` (TOML +
flags) and `spec_from_dict` (a stored spec) find the class by the spec's
`marker` key. See docs/architecture.md for the worked example.

This module stays light (no numpy, numba or pyarrow): the registry is
consulted by `rfsweep show` and by Dask workers rebuilding a spec.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from .errors import RfsweepError, read_user_file

if TYPE_CHECKING:  # annotations only
    import pyarrow as pa

# The built-in spaces, imported on first lookup (each registers itself where it is defined).
# A new space type: one module with a @register'ed class, and its name here.
SPACE_MODULES = ("rfsweep.grid", "rfsweep.blocks", "rfsweep.unet_space")
# Shared by every space: inclusive constraints that prune rows (contract section 4).
LIMIT_KEYS = ("min_rf", "max_rf", "max_params", "max_macs", "min_out_size")
# Field metadata a space puts on a dictionary column to have the writer store indices + dictionary as they are.
KEEP_DICTIONARY = (b"rfsweep.encoding", b"dictionary")
# Evaluators launch their parallel kernel only from this many ids on: below, a launch costs more than it saves.
PARALLEL_MIN_IDS = 1 << 16


@dataclass
class Counts:
    """enumerated = invalid + pruned + written, over the ids a run covered.

    `skipped` (a part of invalid + pruned) is what block skipping accounted
    for without evaluating: the work pruning saved.
    """

    enumerated: int = 0
    invalid: int = 0
    pruned: int = 0
    written: int = 0
    skipped: int = 0

    def add(self, other: "Counts") -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)

    def as_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class Evaluator(Protocol):
    """Turns id ranges of one space into Arrow tables (what `engines.write_range` drives).

    `evaluate` may return a table that views `buffers`: the writer loop hands
    the buffers back only once the table is encoded (or copied).
    """

    schema: "pa.Schema"

    def new_buffers(self, capacity: int) -> Any:
        """Reusable kernel outputs for chunks of up to `capacity` ids."""

    def evaluate(self, key: int, base: int, lo: int, hi: int, buffers: Any) -> tuple["pa.Table", Counts]:
        """The kept rows of ids [lo, hi) of the id range (key, base) in ascending config_id, and the counts."""

    def warm_up(self, parallel: bool = True) -> None:
        """Load (or compile) the kernels before the timed run; may do nothing."""


@runtime_checkable
class Space(Protocol):
    """One kind of design space (see the module docstring)."""

    kind: ClassVar[str]  # the registry key: "chain", "blocks", ...
    marker: ClassVar[str | None]  # the top-level spec key that identifies the kind (None: the default space)
    unit: ClassVar[str]  # what a row is, in messages: "stacks", "networks"
    input_size: int
    in_channels: int

    @classmethod
    def build(cls, values: dict) -> "Space":
        """Validate a stored spec (Parquet metadata, a manifest) or raw values."""

    @classmethod
    def from_toml(cls, values: dict, overrides: dict | None = None, path: Path | str | None = None) -> "Space":
        """A TOML document's values with explicit flag values (None: not given) overriding them."""

    def to_dict(self) -> dict:
        """Every key, normalised: what the metadata stores and `build` reads back."""

    @property
    def total(self) -> int:
        """Ids a run evaluates."""

    def depth_blocks(self) -> list[tuple[int, int, int]]:
        """(key, first id, count) ranges covering [0, total) in id order; chunks never cross one."""

    def schema(self) -> "pa.Schema":
        """The Arrow schema of the rows."""

    @property
    def conventions(self) -> dict:
        """What the metadata says about the columns."""

    def evaluator(self, threads: int | None = None) -> Evaluator:
        """An evaluator with `threads` kernel threads (None: all)."""

    def estimate(self) -> dict:
        """{"stacks", "seconds", "bytes"}: a rough run time and output size, for --dry-run."""

    def summary(self) -> str:
        """One line for --dry-run and the run's header."""

    def network(self, config_id: int):
        """The network of one id: a `layers.Stack` or a graph dict (contract section 6)."""

    def describe(self, config_id: int) -> str:
        """One short line naming a row's network (pareto tables)."""


_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make a space findable by its `kind` and `marker`."""
    _REGISTRY[cls.kind] = cls
    return cls


def spaces() -> dict[str, type]:
    """Every registered space class by kind (the built-in ones imported on first call)."""
    for name in SPACE_MODULES:
        import_module(name)
    return dict(_REGISTRY)


def space_class(values: Any) -> type:
    """The space class a spec dict describes: the one whose marker key it has, else the default."""
    classes = spaces().values()
    marked = [cls for cls in classes if isinstance(values, dict) and cls.marker is not None and cls.marker in values]
    if len(marked) > 1:
        keys = " and ".join(repr(cls.marker) for cls in marked)
        raise RfsweepError(f"spec: {keys} belong to different kinds of space ({', '.join(c.kind for c in marked)}); "
                           "give one")
    return marked[0] if marked else next(cls for cls in classes if cls.marker is None)


def spec_from_dict(values) -> Space:
    """A stored spec (metadata, manifest) back as its space."""
    return space_class(values).build(values)


def load_spec(path: Path | str | None = None, overrides: dict | None = None) -> Space:
    """A space from an optional TOML file, with explicit flag values overriding it.

    The file's marker key picks the kind: [[stage]] tables are a block space
    (blocks.BlockSpec), no marker the chain grid (grid.GridSpec).
    """
    values: dict = {}
    if path is not None:
        text = read_user_file(path, "spec")
        try:
            values = tomllib.loads(text)
        except (ValueError, RecursionError) as exc:  # TOMLDecodeError, over-long ints, deep nesting
            raise RfsweepError(f"{path}: invalid TOML: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    return space_class(values).from_toml(values, overrides, path)


def limit_or_none(value, key: str):
    """A constraint value: None (no limit) or an integer >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RfsweepError(f"{key}: expected an integer >= 0, got {value!r}")
    return value
