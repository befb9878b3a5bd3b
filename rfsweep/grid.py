"""The chain grid, the default design space: GridSpec (flags + TOML), choice tables and config_id.

GridSpec implements `space.Space` and registers as kind "chain" (no marker
key: any spec without another space's marker is a chain grid). Its rows are
written by `chain_sweep` (schema, evaluator over `kernel.py`), imported
lazily so that parsing a spec stays light.

config_id (contract section 4) is the stack's 0-based position in the full
grid: depth-major, then a mixed-radix number whose most significant digit is
layer 1. A layer's digit enumerates its choices with `types` slowest, then
kernel, stride, dilation, padding, and channels fastest. Nothing here ever
materialises the grid: only the per-layer choice table (R rows) exists.

The rank (1, 2 or 3 spatial axes) leaves config_id and the columns alone:
every layer and the input are the same on each axis, so one axis's geometry
stands for all; only params (k^rank) and MACs (n^rank) change. `to_dict`
leaves `rank` out at 2, so rank-2 metadata is what it was before ranks.

`load_spec` and `spec_from_dict` are the registry's (`space.py`), kept here
under their old names.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .arithmetic import LAYER_TYPES
from .errors import RfsweepError
from .layers import MAX_FIELD, Stack, build_stack, check_rank, input_axes, parse_size
from .space import LIMIT_KEYS, limit_or_none, load_spec, register, spec_from_dict

__all__ = ["DEFAULTS", "LIST_KEYS", "GridSpec", "load_spec", "parse_int_list", "spec_from_dict"]

DEFAULTS = dict(
    depth=[1, 2, 3, 4], types=["conv"], kernel=[1, 3, 5, 7], stride=[1, 2], dilation=[1, 2],
    padding=["same"], channels=[16, 32, 64], input_size=224, in_channels=3, bias=True,
    min_rf=None, max_rf=None, max_params=None, max_macs=None, min_out_size=None, rank=2,
)
LIST_KEYS = ("depth", "types", "kernel", "stride", "dilation", "padding", "channels")
INT_KEYS = ("input_size", "in_channels")
MAX_DEPTH = 32
INT64_SAFE = 1 << 62
# measured end to end on the 2-core reference machine (benchmarks/README.md)
STACKS_PER_SECOND = 8e6
# zstd Parquet measured 2.1 B/row at depth 4 and 2.6 at depth 5; 0.75 B per layer is an upper bound
BYTES_PER_LAYER_ROW = 0.75
CONVENTIONS = {
    "coordinates": "0-indexed input pixel centres (Distill 2019, google receptive_field)",
    "macs": "one multiply-accumulate = 1; bias adds not counted (as fvcore, ptflops, thop)",
    "flops": "2 * macs (as torch.utils.flop_counter, calflops)",
    "erf_std": "std (px) of the effective RF with uniform weights, no nonlinearity; "
               "maxpool treated as a uniform window",
    "erf_ratio": "erf_std / std of a uniform window as wide as the RF (1.0 for one undilated layer)",
    "config_id": "depth-major mixed-radix position in the full grid; layer 1 most significant; "
                 "types, kernel, stride, dilation, padding, channels (fastest)",
    "pools": "l{i}_dilation is 1 and l{i}_channels the incoming channels for pools",
}
AXES = {1: "length", 3: "depth, height and width"}


def rank_convention(rank: int) -> str:
    """What the columns mean at rank 1 or 3 (rank 2 stores no such key: its metadata is unchanged)."""
    return (f"{rank}-D ({AXES[rank]}): the input and every layer are the same on each axis, so rf, jump, "
            f"out_size, erf_std and l{{i}}_kernel/stride/dilation/padding are per axis (one number for "
            f"every axis); params use kernel**{rank}, MACs out_size**{rank}")


def parse_int_list(text, key: str) -> list[int]:
    """'1-4', '2,3', '1,3-5' (or a TOML list / int) -> sorted-as-given ints."""
    if isinstance(text, bool):
        raise RfsweepError(f"{key}: expected integers, got {text!r}")
    if isinstance(text, int):
        return [text]
    if isinstance(text, list):
        items = []
        for item in text:
            items += parse_int_list(item, key)
        return items
    if not isinstance(text, str) or not text.strip():
        raise RfsweepError(f"{key}: expected a list like '1,3,5' or '1-4', got {text!r}")
    values = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"([0-9]{1,30})(?:-([0-9]{1,30}))?", part)
        if not match:
            raise RfsweepError(f"{key}: cannot read {part!r} (expected e.g. 3, 1-4 or 1,3-5)")
        lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
        if hi < lo:
            raise RfsweepError(f"{key}: range {part!r} runs backwards")
        if hi - lo > 10_000:
            raise RfsweepError(f"{key}: range {part!r} is too long")
        values += range(lo, hi + 1)
    return values


def _ascii_int(text: str) -> bool:
    """Digits int() accepts and that fit a sane field (no '²', no 5000-digit strings)."""
    return re.fullmatch(r"[0-9]{1,30}", text) is not None


def _parse_padding(value) -> list:
    items = value if isinstance(value, list) else str(value).split(",")
    out = []
    for item in items:
        if isinstance(item, str):
            item = item.strip()
        if item in ("same", "valid"):
            out.append(item)
        elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= MAX_FIELD:
            out.append(item)
        elif isinstance(item, str) and _ascii_int(item):
            out.append(int(item))
        else:
            raise RfsweepError(f"padding: {item!r} is not 'same', 'valid' or an integer >= 0")
    return out


def _parse_types(value) -> list[str]:
    items = value if isinstance(value, list) else str(value).split(",")
    out = []
    for item in items:
        name = str(item).strip()
        if name not in LAYER_TYPES:
            raise RfsweepError(f"types: unknown layer type {name!r} (allowed: {', '.join(LAYER_TYPES)})")
        out.append(name)
    return out


def _rank_and_size(rank, size):
    """(rank, one input length) of a chain grid: a per-axis size sets the rank and must be isotropic.

    The grid's layers are the same on every axis, and so must its input be: the
    kernel follows one length, which stands for every axis.
    """
    if rank is not None:
        if isinstance(rank, str) and _ascii_int(rank):
            rank = int(rank)
        check_rank(rank)
    size = parse_size(size)
    if not isinstance(size, (list, tuple)):
        return (2 if rank is None else rank), size
    axes = input_axes(list(size), rank)
    if len(set(axes)) > 1:
        raise RfsweepError(f"input_size: a chain grid has the same length on every axis (its layers are "
                           f"isotropic), got {list(axes)}; give one number")
    return len(axes), axes[0]


def _ranges(values: list[int]) -> str:
    """[1, 2, 3, 4] -> '1-4'; anything else (or short) as a comma list."""
    return ",".join(map(str, values)) if len(values) < 4 or values != list(range(values[0], values[-1] + 1)) \
        else f"{values[0]}-{values[-1]}"


@register
@dataclass(frozen=True)
class GridSpec:
    """A validated, normalised sweep grid (see the contract, section 4); a `space.Space`."""

    kind = "chain"
    marker = None  # the default space: a spec with no other space's marker key
    unit = "stacks"

    depth: list[int] = field(default_factory=lambda: list(DEFAULTS["depth"]))
    types: list[str] = field(default_factory=lambda: list(DEFAULTS["types"]))
    kernel: list[int] = field(default_factory=lambda: list(DEFAULTS["kernel"]))
    stride: list[int] = field(default_factory=lambda: list(DEFAULTS["stride"]))
    dilation: list[int] = field(default_factory=lambda: list(DEFAULTS["dilation"]))
    padding: list = field(default_factory=lambda: list(DEFAULTS["padding"]))
    channels: list[int] = field(default_factory=lambda: list(DEFAULTS["channels"]))
    input_size: int = 224
    in_channels: int = 3
    bias: bool = True
    min_rf: int | None = None
    max_rf: int | None = None
    max_params: int | None = None
    max_macs: int | None = None
    min_out_size: int | None = None
    rank: int = 2

    @classmethod
    def build(cls, values: dict) -> "GridSpec":
        """Validate raw values (strings from flags, TOML values) into a GridSpec."""
        merged = {**DEFAULTS, **{k: v for k, v in values.items() if v is not None}}
        unknown = sorted(set(values) - set(DEFAULTS))
        if unknown:
            raise RfsweepError(f"unknown spec key {unknown[0]!r} (allowed: {', '.join(DEFAULTS)})")
        spec = {}
        for key in ("depth", "kernel", "stride", "dilation", "channels"):
            items = parse_int_list(merged[key], key)
            if not items:
                raise RfsweepError(f"{key}: needs at least one value")
            low = 1
            bad = [v for v in items if v < low or v > MAX_FIELD]
            if bad:
                raise RfsweepError(f"{key}: {bad[0]} is out of range (allowed {low}..{MAX_FIELD})")
            if len(set(items)) != len(items):
                raise RfsweepError(f"{key}: duplicate values in {items}")
            spec[key] = items
        if max(spec["depth"]) > MAX_DEPTH:
            raise RfsweepError(f"depth: at most {MAX_DEPTH} layers, got {max(spec['depth'])}")
        if spec["depth"] != sorted(spec["depth"]):
            raise RfsweepError(f"depth: list depths in increasing order, got {spec['depth']}")
        spec["types"] = _parse_types(merged["types"])
        spec["padding"] = _parse_padding(merged["padding"])
        for key, items in (("types", spec["types"]), ("padding", spec["padding"])):
            if not items or len(set(map(str, items))) != len(items):
                raise RfsweepError(f"{key}: needs distinct values, got {items}")
        spec["rank"], merged["input_size"] = _rank_and_size(values.get("rank"), merged["input_size"])
        for key in INT_KEYS:
            value = merged[key]
            if isinstance(value, str) and _ascii_int(value):
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_FIELD:
                raise RfsweepError(f"{key}: expected an integer in 1..{MAX_FIELD}, got {value!r}")
            spec[key] = value
        if not isinstance(merged["bias"], bool):
            raise RfsweepError(f"bias: expected true or false, got {merged['bias']!r}")
        spec["bias"] = merged["bias"]
        for key in LIMIT_KEYS:
            spec[key] = limit_or_none(merged[key], key)
        grid = cls(**spec)
        grid.check_int64()
        return grid

    @classmethod
    def from_toml(cls, values: dict, overrides: dict | None = None, path: Path | str | None = None) -> "GridSpec":
        """A GridSpec from TOML values, with explicit flag values (None: not given) overriding them."""
        values = dict(values)
        if path is not None:
            unknown = sorted(set(values) - set(DEFAULTS))
            if unknown:
                raise RfsweepError(f"{path}: unknown key {unknown[0]!r} (allowed: {', '.join(DEFAULTS)})")
        if any((overrides or {}).get(key) is not None for key in ("sample", "seed")):
            raise RfsweepError("--sample/--seed need a block spec (a TOML file with [[stage]] tables)")
        overrides = {k: v for k, v in (overrides or {}).items() if k not in ("sample", "seed")}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.build(values)

    def to_dict(self) -> dict:
        """Every key, normalised: what the Parquet metadata stores (`rank` only when not 2,
        so that rank-2 files stay byte-identical to those written before ranks existed)."""
        values = asdict(self)
        if values["rank"] == 2:
            del values["rank"]
        return values

    # ------------------------------------------------------------ the Space interface

    def schema(self):
        """The Arrow schema of the rows (chain_sweep.sweep_schema)."""
        from .chain_sweep import sweep_schema
        return sweep_schema(self)

    @property
    def conventions(self) -> dict:
        """What the Parquet metadata says about the columns."""
        return CONVENTIONS if self.rank == 2 else {**CONVENTIONS, "rank": rank_convention(self.rank)}

    def evaluator(self, threads: int | None = None):
        """The chain kernel over id ranges (chain_sweep.Evaluator), for engines.write_range."""
        from .chain_sweep import Evaluator
        return Evaluator(self, threads)

    def estimate(self) -> dict:
        """Rough run time (s) and output size (bytes) before starting, for --dry-run and prompts."""
        return {"stacks": self.total, "seconds": self.total / STACKS_PER_SECOND,
                "bytes": self.total * BYTES_PER_LAYER_ROW * max(self.depth)}

    def summary(self) -> str:
        """One line for --dry-run and the run's header."""
        rank = "" if self.rank == 2 else f", rank {self.rank}"
        return f"grid: {self.total:,} stacks (depths {_ranges(self.depth)}, {self.radix} choices per layer{rank})"

    def network(self, config_id: int) -> Stack:
        """The stack of one config_id (for show, measure, report)."""
        return build_stack(self.layers_of(config_id), self.input_size, self.in_channels, rank=self.rank)

    def describe(self, config_id: int) -> str:
        """The compact string of one row's stack."""
        return self.network(config_id).compact()

    # ------------------------------------------------------------ sizes

    @property
    def radix(self) -> int:
        """Choices per layer (R): the mixed-radix base of one layer's digit."""
        return (len(self.types) * len(self.kernel) * len(self.stride) * len(self.dilation)
                * len(self.padding) * len(self.channels))

    def depth_blocks(self) -> list[tuple[int, int, int]]:
        """(depth, first config_id, stack count) for each depth, in id order."""
        blocks, start = [], 0
        for depth in self.depth:
            count = self.radix ** depth
            blocks.append((depth, start, count))
            start += count
        return blocks

    @property
    def total(self) -> int:
        """Number of stacks in the full grid (enumerated, whatever is pruned)."""
        return sum(count for _, _, count in self.depth_blocks())

    def padding_value(self, padding, kernel: int, dilation: int) -> int:
        if padding == "same":
            return dilation * (kernel - 1) // 2
        if padding == "valid":
            return 0
        return padding

    def bounds(self) -> dict[str, int]:
        """Exact Python-int upper bounds of every total, for overflow checks and column types.

        Output sizes never exceed n + 2p, so k^r*c*c*(n+2p)^r bounds a layer's MACs at rank r.
        """
        conv = "conv" in self.types
        pad = max(self.padding_value(p, k, d) for p in self.padding for k in self.kernel for d in self.dilation)
        k_max = max(self.kernel)
        c_max = max(self.in_channels, max(self.channels))
        k_eff = max(self.dilation) * (k_max - 1)
        n, rf, jump, macs, params = self.input_size, 1, 1, 0, 0
        for _ in range(max(self.depth)):
            n += 2 * pad
            if conv:
                macs += k_max ** self.rank * c_max * c_max * n ** self.rank
                params += k_max ** self.rank * c_max * c_max + c_max
            rf += k_eff * jump
            jump *= max(self.stride)
        return {"rf": rf, "jump": jump, "out_size": n, "channels": c_max,
                "params": params, "macs": macs, "flops": 2 * macs}

    def check_int64(self) -> None:
        """Refuse grids whose totals could overflow the kernel's int64 arithmetic."""
        if max(self.bounds().values()) > INT64_SAFE:
            raise RfsweepError("spec: params/MACs/FLOPs could exceed 64-bit integers "
                               "(channels, input_size, kernel, stride or depth too large)")

    # ------------------------------------------------------------ tables

    def choice_table(self) -> dict[str, np.ndarray]:
        """One row per layer digit 0..R-1: type code, k, s, d, p, channels, valid.

        Pools use the first dilation and channels position only; the other
        positions are duplicates and marked invalid (contract section 4).
        Pools run with dilation 1 and keep their input's channels (c = 0 here).
        """
        rows = []
        for t in self.types:
            for k in self.kernel:
                for s in self.stride:
                    for di, d in enumerate(self.dilation):
                        for p in self.padding:
                            for ci, c in enumerate(self.channels):
                                if t == "conv":
                                    pad = self.padding_value(p, k, d)
                                    rows.append((0, k, s, d, pad, c, 1))
                                else:
                                    pad = self.padding_value(p, k, 1)
                                    ok = di == 0 and ci == 0 and pad <= k // 2
                                    rows.append((LAYER_TYPES.index(t), k, s, 1, pad, 0, int(ok)))
        table = np.array(rows, dtype=np.int64).reshape(-1, 7)
        names = ("type", "kernel", "stride", "dilation", "padding", "channels", "valid")
        return {name: np.ascontiguousarray(table[:, i]) for i, name in enumerate(names)}

    def decode(self, config_id: int) -> tuple[int, list[int]]:
        """config_id -> (depth, per-layer digits, layer 1 first)."""
        if isinstance(config_id, bool) or not isinstance(config_id, int) or config_id < 0:
            raise RfsweepError(f"config_id must be an integer >= 0, got {config_id!r}")
        for depth, start, count in self.depth_blocks():
            if config_id < start + count:
                rest = config_id - start
                digits = []
                for _ in range(depth):
                    rest, digit = divmod(rest, self.radix)
                    digits.append(digit)
                return depth, digits[::-1]
        raise RfsweepError(f"config_id {config_id} is outside this grid (0..{self.total - 1})")

    def encode(self, digits: list[int]) -> int:
        """(per-layer digits) -> config_id; the inverse of decode."""
        start = {depth: first for depth, first, _ in self.depth_blocks()}
        if len(digits) not in start:
            raise RfsweepError(f"depth {len(digits)} is not in this grid's depths {self.depth}")
        value = 0
        for digit in digits:
            if not 0 <= digit < self.radix:
                raise RfsweepError(f"digit {digit} outside 0..{self.radix - 1}")
            value = value * self.radix + digit
        return start[len(digits)] + value

    def layers_of(self, config_id: int) -> list[dict]:
        """The raw layer dicts of one stack (for explain/show); pools keep channels."""
        _, digits = self.decode(config_id)
        table = self.choice_table()
        layers = []
        for digit in digits:
            kind = LAYER_TYPES[table["type"][digit]]
            raw = {"type": kind, "kernel": int(table["kernel"][digit]),
                   "stride": int(table["stride"][digit]), "padding": int(table["padding"][digit])}
            if kind == "conv":
                raw.update(dilation=int(table["dilation"][digit]),
                           out_channels=int(table["channels"][digit]), bias=self.bias)
            elif not table["valid"][digit]:
                raise RfsweepError(f"config_id {config_id}: a pool at a duplicate position (invalid)")
            layers.append(raw)
        return layers
