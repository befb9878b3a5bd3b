"""Block/stage design spaces: the spec, its choice tables, config_id and each row's graph.

A space is a fixed `stem` (a compact string) followed by stages; each stage
repeats one block (`conv`, `basic`, `bottleneck`, `dwsep`, `mbconv`, built
as torchvision builds them, or the causal `tcn` and `wavenet` blocks whose
dilation doubles block by block, see docs/blocks.md) and every block of a
stage shares the stage's choices. `rank` (1, 2 or 3) makes every conv
k^rank; a kernel, stride or dilation choice, a stem layer or the input may
differ between axes (`per_axis`: then the rows carry per-axis lists).
config_id is a mixed-radix number whose most
significant digit is stage 1; within a stage the digit enumerates `block`
slowest, then repeats, kernel, stride, dilation, width, expansion, and
groups (or group_width) fastest, each list in the order given.

Choices that do not apply (expansion of a conv/basic/dwsep block, groups of
a dwsep/mbconv block) are enumerated once, at their first position; the
other positions are invalid and counted, like a pool's dilation in the
chain sweep. `block_graph` builds a row's network as a graph (contract
section 6) for `rfsweep.analyze`: that is what `rfsweep show` explains and
what the tests check the kernel against.

BlockSpec implements `space.Space` and registers as kind "blocks", marked by
the `stage` key. Its rows are written by `block_sweep` (schema, evaluator
over `block_kernel.py`), imported lazily so that parsing a spec stays light;
the names all three share live in `block_fields.py`.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field

import numpy as np

from . import arithmetic
from .block_fields import (BASIC, BLOCKS, BOTTLENECK, CAUSAL, CONV, DIGIT_KEYS, DWSEP,  # noqa: F401
                           EXPANSION_APPLIES, F_KERNEL_AXES, GROUPS_APPLY, MBCONV, STAGE_COLUMNS, TABLE_FIELDS, TCN,
                           WAVENET)
from .errors import RfsweepError, read_user_file
from .jit import plain_python
from .layers import MAX_FIELD, RANKS, check_rank, load_stack
from .space import LIMIT_KEYS, limit_or_none, register

AXIS_KEYS = ("kernel", "stride", "dilation")  # choices that may be one number per axis
STAGE_KEYS = ("block", "repeats", "kernel", "stride", "dilation", "width", "expansion", "groups", "group_width",
              "dilation_cycle")
WAVENET_CYCLE = 10  # van den Oord et al. 2016, Sec. 2.1: dilations 1, 2, ..., 512, then repeated
STAGE_DEFAULTS = dict(repeats=[1], kernel=[3], stride=[1], dilation=[1], expansion=[1])
TOP_DEFAULTS = dict(stem="", stage=None, rank=None, input_size=224, in_channels=3, min_rf=None, max_rf=None,
                    max_params=None, max_macs=None, min_out_size=None, sample=None, seed=0)
MAX_STAGES = 16
INT64_SAFE = 1 << 62
# --dry-run's rough rate: data/resnet_like.toml (268,435,456 ids) ran end to end at 7.4M networks/s on
# 2 cores (2026-12-05), 36.3 s against the 33.6 s this estimates; tiny spaces are dominated by start-up
NETWORKS_PER_SECOND = 8e6
CONVENTIONS = {
    "coordinates": "0-indexed input pixel centres (Distill 2019, google receptive_field)",
    "macs": "one multiply-accumulate = 1; bias adds not counted (as fvcore, ptflops, thop); BatchNorm 0 MACs",
    "flops": "2 * macs (as torch.utils.flop_counter, calflops)",
    "params": "convs without bias, BatchNorm after every conv (2 * channels); no classifier head",
    "rf": "union of the paths' intervals (shortcuts are paths); blocks keep every path centred",
    "erf_std": "std (px) of the effective RF with uniform weights, no nonlinearity; an add mixes its "
               "inputs' ERFs with equal weights (rfsweep.analyze of the row's graph)",
    "erf_ratio": "erf_std / std of a uniform window as wide as the RF",
    "depth": "conv layers on the longest path, stem included",
    "unproductive": "conv layers whose rf_min (narrowest path) exceeds the input size (Richter et al. 2021)",
    "config_id": "mixed-radix position in the space; stage 1 most significant; per stage block, repeats, "
                 "kernel, stride, dilation, width, expansion, groups (fastest)",
    "ignored": "s{i}_expansion is 1 for conv/basic/dwsep blocks and s{i}_groups 1 for dwsep/mbconv; the "
               "other positions of an ignored list are invalid ids",
    "blocks": "torchvision: basic = BasicBlock, bottleneck = Bottleneck v1.5 (inner width = width / "
              "expansion), dwsep = MobileNet v1 depthwise + pointwise, mbconv = MobileNet v2 "
              "InvertedResidual; 1x1 stride-s projection + BN where stride or width change",
}

CAUSAL_CONVENTION = (
    "tcn (Bai et al. 2018) and wavenet (van den Oord et al. 2016) blocks: convs with a bias and no BatchNorm, "
    "causal (padding (k-1)*d on the left only, so a unit's field ends at the unit); block b = 0, 1, ... of a "
    "stage has dilation d * 2^(b mod dilation_cycle) (default: no repetition for tcn, 10 for wavenet); "
    "a wavenet stage's output is the sum of its blocks' 1x1 skip convs (width channels; residual and gate "
    "width / expansion); no head")


def is_block_spec(values) -> bool:
    """A spec dict (TOML or metadata) describes a block space when it has stages (its marker key)."""
    return isinstance(values, dict) and BlockSpec.marker in values


def _int_list(value, where: str, key: str, minimum: int = 1, allow_repeats: bool = False) -> list[int]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise RfsweepError(f"{where}: {key}: needs at least one value")
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise RfsweepError(f"{where}: {key}: expected integers, got {item!r}")
        if not minimum <= item <= MAX_FIELD:
            raise RfsweepError(f"{where}: {key}: {item} is out of range (allowed {minimum}..{MAX_FIELD})")
        out.append(item)
    if len(set(out)) != len(out) and not allow_repeats:
        raise RfsweepError(f"{where}: {key}: duplicate values in {out}")
    return out


def _axis_choices(value, where: str, key: str, rank: int) -> list:
    """A stage's kernel, stride or dilation choices: each one number (the same on every axis) or a
    list of `rank` numbers; a list whose numbers agree is that number, so an isotropic space stays
    isotropic."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise RfsweepError(f"{where}: {key}: needs at least one value")
    out = []
    for item in items:
        if isinstance(item, list):
            if len(item) != rank:
                raise RfsweepError(f"{where}: {key}: {item!r} has {len(item)} values but the space has rank {rank} "
                                   "(one number for every axis, or one per axis)")
            axes = _int_list(item, where, key, allow_repeats=True)
            out.append(axes[0] if len(set(axes)) == 1 else axes)
        else:
            out.append(_int_list(item, where, key)[0])
    if any(out.count(x) > 1 for x in out):
        raise RfsweepError(f"{where}: {key}: duplicate values in {out}")
    return out


def axes_of(value, rank: int) -> tuple[int, ...]:
    """A kernel, stride or dilation choice on each axis (one number: the same on every axis)."""
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * rank


def _stage(raw, index: int, rank: int = 2) -> dict:
    """Validate one [[stage]] table into normalised lists."""
    where = f"stage {index}"
    if not isinstance(raw, dict):
        raise RfsweepError(f"{where}: expected a table of choice lists, got {raw!r}")
    raw = {key: value for key, value in raw.items() if value is not None}  # stored specs write null
    unknown = sorted(set(raw) - set(STAGE_KEYS))
    if unknown:
        raise RfsweepError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(STAGE_KEYS)})")
    for key in ("block", "width"):
        if key not in raw:
            raise RfsweepError(f"{where}: {key} is required")
    blocks = raw["block"] if isinstance(raw["block"], list) else [raw["block"]]
    if not blocks:
        raise RfsweepError(f"{where}: block: needs at least one value")
    for name in blocks:
        if name not in BLOCKS:
            raise RfsweepError(f"{where}: block: unknown block {name!r} (allowed: {', '.join(BLOCKS)})")
    if len(set(blocks)) != len(blocks):
        raise RfsweepError(f"{where}: block: duplicate values in {blocks}")
    stage = {"block": list(blocks)}
    for key in ("repeats", "kernel", "stride", "dilation", "width", "expansion"):
        value = raw.get(key, STAGE_DEFAULTS.get(key))
        stage[key] = _axis_choices(value, where, key, rank) if key in AXIS_KEYS else _int_list(value, where, key)
    causal = [BLOCKS.index(name) in CAUSAL for name in blocks]
    for key in AXIS_KEYS:
        if any(causal) and any(isinstance(x, list) for x in stage[key]):
            raise RfsweepError(f"{where}: {key}: per-axis values apply to the centred blocks (conv, basic, "
                               "bottleneck, dwsep, mbconv), not to tcn or wavenet")
    even = [k for x in stage["kernel"] for k in axes_of(x, rank) if k % 2 == 0]
    if even and not all(causal):
        raise RfsweepError(f"{where}: kernel: {even[0]} is even (blocks use odd kernels with 'same' padding, "
                           "so that the shortcut and the main path stay aligned; only the causal tcn and "
                           "wavenet blocks take even kernels)")
    if "dilation_cycle" in raw:
        if not any(causal):
            raise RfsweepError(f"{where}: dilation_cycle applies to tcn and wavenet blocks only")
        cycle = raw["dilation_cycle"]
        if isinstance(cycle, bool) or not isinstance(cycle, int) or not 1 <= cycle <= 62:
            raise RfsweepError(f"{where}: dilation_cycle: expected one integer in 1..62 (dilations "
                               f"d, 2d, ..., 2^(cycle-1) d, then again), got {cycle!r}")
        stage["dilation_cycle"] = cycle
    if "groups" in raw and "group_width" in raw:
        raise RfsweepError(f"{where}: groups: give groups or group_width, not both")
    stage["groups"] = _int_list(raw["groups"], where, "groups") if "groups" in raw else None
    stage["group_width"] = _int_list(raw["group_width"], where, "group_width") if "group_width" in raw else None
    for key in ("groups", "group_width"):
        for g in stage[key] or ():
            for w in stage["width"]:
                if w % g:
                    raise RfsweepError(f"{where}: {key}: width {w} is not divisible by {key} {g}")
    return stage


def _rank_and_size(rank, size) -> tuple[int, object]:
    """(rank, input_size) of a block spec: `rank` (default 2) or the length of an input_size list.

    One number is that length on every axis; a list gives one length per axis
    (its length sets the rank when none is given) and is kept as a list only
    where its lengths differ (a per-axis space, see `BlockSpec.per_axis`).
    """
    if rank is not None:
        check_rank(rank)
    if isinstance(size, (list, tuple)):
        if len(size) not in RANKS or (rank is not None and len(size) != rank and len(set(size)) != 1):
            raise RfsweepError(f"input_size: {list(size)!r} does not fit rank {rank or 'of 1, 2 or 3 axes'}")
        rank = rank or len(size)
        size = size[0] if len(set(size)) == 1 else list(size)
    return rank or 2, size


@dataclass(frozen=True)
class StemState:
    """The fixed stem's totals: what every row starts from (size, rf, jump, erf_var: the largest axis's;
    the per-axis values in sizes, rfs, jumps, erf_vars)."""

    size: int
    channels: int
    rf: int
    jump: int
    params: int
    macs: int
    erf_var: float
    depth: int
    unproductive: int
    sizes: tuple = ()
    rfs: tuple = ()
    jumps: tuple = ()
    erf_vars: tuple = ()


@register
@dataclass(frozen=True)
class BlockSpec:
    """A validated block/stage design space (see the module docstring and docs/blocks.md); a `space.Space`."""

    kind = "blocks"
    marker = "stage"  # [[stage]] tables
    unit = "networks"

    stem: str
    stage: tuple
    input_size: int = 224
    in_channels: int = 3
    min_rf: int | None = None
    max_rf: int | None = None
    max_params: int | None = None
    max_macs: int | None = None
    min_out_size: int | None = None
    sample: int | None = None
    seed: int = 0
    rank: int = 2
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, values: dict) -> "BlockSpec":
        """Validate raw values (a TOML document, flags, or stored metadata) into a BlockSpec."""
        if not isinstance(values, dict):
            raise RfsweepError("block spec: expected a table")
        unknown = sorted(set(values) - set(TOP_DEFAULTS))
        if unknown:
            raise RfsweepError(f"unknown spec key {unknown[0]!r} in a block spec (allowed: "
                               f"{', '.join(TOP_DEFAULTS)}; per stage: {', '.join(STAGE_KEYS)})")
        merged = {**TOP_DEFAULTS, **{k: v for k, v in values.items() if v is not None}}
        stages = merged["stage"]
        if not isinstance(stages, list) or not stages:
            raise RfsweepError("stage: a block spec needs at least one [[stage]] table")
        if len(stages) > MAX_STAGES:
            raise RfsweepError(f"stage: at most {MAX_STAGES} stages, got {len(stages)}")
        stem = merged["stem"]
        if not isinstance(stem, str):
            raise RfsweepError(f"stem: expected a compact string such as 'c7s2p3x64nb,mp3s2p1', got {stem!r}")
        rank, merged["input_size"] = _rank_and_size(merged["rank"], merged["input_size"])
        spec = {"stem": stem.replace(" ", ""), "rank": rank,
                "stage": tuple(_stage(raw, i, rank) for i, raw in enumerate(stages, 1))}
        for key in ("input_size", "in_channels"):
            value = merged[key]
            for item in value if key == "input_size" and isinstance(value, list) else [value]:
                if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= MAX_FIELD:
                    raise RfsweepError(f"{key}: expected an integer in 1..{MAX_FIELD}, got {item!r}")
            spec[key] = value
        for key in LIMIT_KEYS:
            spec[key] = limit_or_none(merged[key], key)
        sample, seed = merged["sample"], merged["seed"]
        if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int) or sample < 1):
            raise RfsweepError(f"sample: expected an integer >= 1, got {sample!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise RfsweepError(f"seed: expected an integer >= 0, got {seed!r}")
        spec.update(sample=sample, seed=seed)
        built = cls(**spec)
        built.stem_state()  # a stem that empties the map is a bad spec, not N invalid rows
        if built.per_axis and built._has_causal():
            raise RfsweepError("stage: tcn and wavenet stages take one length on every axis; this space's input, "
                               "stem or strides differ between axes")
        built.check_int64()
        if sample is not None and sample > built.grid_total:
            raise RfsweepError(f"sample: {sample:,} is more than the {built.grid_total:,} networks of the space")
        return built

    @classmethod
    def from_toml(cls, values: dict, overrides: dict | None = None, path=None) -> "BlockSpec":
        """A BlockSpec from TOML values plus flag overrides (flags win)."""
        return load_block_spec(values, overrides, path)

    def to_dict(self) -> dict:
        """Every key, normalised: what the Parquet metadata stores (and `build` reads back)."""
        return {"stem": self.stem, "stage": [dict(s) for s in self.stage], "input_size": self.input_size,
                "in_channels": self.in_channels, **{k: getattr(self, k) for k in LIMIT_KEYS},
                "sample": self.sample, "seed": self.seed, **({"rank": self.rank} if self.rank != 2 else {})}

    # ------------------------------------------------------------ sizes

    @property
    def stages(self) -> int:
        return len(self.stage)

    def stage_radix(self, i: int) -> int:
        """Choices of stage i (0-based): its digit's base."""
        s = self.stage[i]
        groups = s["groups"] or s["group_width"] or [1]
        return math.prod(len(s[key]) for key in DIGIT_KEYS[:-1]) * len(groups)

    @property
    def radices(self) -> list[int]:
        return [self.stage_radix(i) for i in range(self.stages)]

    @property
    def grid_total(self) -> int:
        """Networks in the whole space (what config_id numbers)."""
        return math.prod(self.radices)

    @property
    def total(self) -> int:
        """Ids a run evaluates: the whole space, or the sample's size with --sample."""
        return self.sample if self.sample is not None else self.grid_total

    def depth_blocks(self) -> list[tuple[int, int, int]]:
        """One block of ids (so engines.chunks splits runs as for chain grids)."""
        return [(self.stages, 0, self.total)]

    @property
    def sizes(self) -> tuple[int, ...]:
        """The input's length on each axis."""
        size = self.input_size
        return tuple(size) if isinstance(size, (list, tuple)) else (size,) * self.rank

    @property
    def per_axis(self) -> bool:
        """Whether some axis can differ from another (a per-axis stride choice, stem layer or input
        length): then the rows carry rf, jump, out_size, erf_std, erf_ratio and s{i}_stride per axis."""
        if "per_axis" not in self._cache:
            stem = self.stem_stack()
            self._cache["per_axis"] = (len(set(self.sizes)) > 1 or (stem is not None and not stem.is_square)
                                       or any(isinstance(x, list) for s in self.stage for key in AXIS_KEYS
                                          for x in s[key]))
        return self._cache["per_axis"]

    def axes_of(self, value) -> tuple[int, ...]:
        """A kernel, stride or dilation choice on each axis."""
        return axes_of(value, self.rank)

    @property
    def has_groups(self) -> bool:
        return any(s["groups"] or s["group_width"] for s in self.stage)

    # ------------------------------------------------------------ the stem

    def stem_stack(self):
        """The stem as a resolved Stack (None when the stem is empty)."""
        if not self.stem:
            return None
        try:
            return load_stack(self.stem, list(self.sizes), self.in_channels, self.rank)
        except RfsweepError as exc:
            raise RfsweepError(f"stem: {exc}") from None

    def stem_state(self) -> StemState:
        """Totals after the stem (each stem conv followed by BatchNorm: 2*C params), axis by axis."""
        if "stem" in self._cache:
            return self._cache["stem"]
        sizes = self.sizes
        n, rf, jump, var = list(sizes), [1] * self.rank, [1] * self.rank, [0.0] * self.rank
        c, params, macs, depth, unprod = self.in_channels, 0, 0, 0, 0
        stack = self.stem_stack()
        step, cost = plain_python(arithmetic.axis_step), plain_python(arithmetic.conv_cost)
        for index, layer in enumerate(stack.layers if stack else (), start=1):
            for a in range(self.rank):
                k, s, p, d = layer.kernel[a], layer.stride[a], layer.padding[a], layer.dilation[a]
                out, rf[a], jump[a], var[a] = step(n[a], rf[a], jump[a], var[a], k, s, p, p, d, layer.ceil_mode)
                if out < 1:
                    raise RfsweepError(f"stem: layer {index} empties the map ({n[a]} px in, input_size "
                                       f"{self.input_size})")
                n[a] = out
            if layer.is_conv:
                # prod(kernel) weights, prod(n) positions as (all axes but the last, the last): (k, k), (n, n) at rank 2
                weights, layer_macs = cost(math.prod(layer.kernel[:-1]), layer.kernel[-1], c, layer.out_channels,
                                           layer.groups, layer.bias, math.prod(n[:-1]), n[-1])
                c = layer.out_channels
                params += weights + 2 * c
                macs += layer_macs
                depth += 1
                unprod += all(r > size for r, size in zip(rf, sizes))
        state = StemState(max(n), c, max(rf), max(jump), params, macs, var[0] if len(set(var)) == 1 else max(var),
                          depth, unprod, tuple(n), tuple(rf), tuple(jump), tuple(var))
        self._cache["stem"] = state
        return state

    # ------------------------------------------------------------ tables

    def stage_rows(self, i: int) -> list[dict]:
        """Stage i's choices in digit order: resolved values and static validity."""
        s = self.stage[i]
        mode = "groups" if s["groups"] else "group_width" if s["group_width"] else None
        gvalues = s[mode] if mode else [1]
        rows = []
        for block in s["block"]:
            code = BLOCKS.index(block)
            for r in s["repeats"]:
                for k in s["kernel"]:
                    for st in s["stride"]:
                        for d in s["dilation"]:
                            for w in s["width"]:
                                for ei, e in enumerate(s["expansion"]):
                                    for gi, gv in enumerate(gvalues):
                                        row = _resolve_row(code, r, k, st, d, w, ei, e, gi, gv, mode, self.rank,
                                                           s.get("dilation_cycle"))
                                        if self.per_axis:  # lists on every axis, as the file's columns
                                            row.update({key: list(self.axes_of(row[key])) for key in AXIS_KEYS})
                                        rows.append(row)
        return rows

    def choice_table(self) -> dict[str, np.ndarray]:
        """Per field a (stages, max radix) int64 array; row v of stage i is digit v."""
        if "table" in self._cache:
            return self._cache["table"]
        width = max(self.radices)
        table = {name: np.zeros((self.stages, width), np.int64) for name in TABLE_FIELDS}
        for i in range(self.stages):
            for v, row in enumerate(self.stage_rows(i)):
                for name in TABLE_FIELDS[:F_KERNEL_AXES]:  # per-axis spaces: kernel, stride, dilation per axis only
                    table[name][i, v] = 0 if isinstance(row[name], list) else row[name]
                for key in AXIS_KEYS:
                    for a, value in enumerate(self.axes_of(row[key])):
                        table[f"{key}_{a}"][i, v] = value
        table = {name: np.ascontiguousarray(values) for name, values in table.items()}
        self._cache["table"] = table
        return table

    # ------------------------------------------------------------ ids

    def decode(self, config_id: int) -> list[int]:
        """config_id -> per-stage digits, stage 1 first."""
        if isinstance(config_id, bool) or not isinstance(config_id, (int, np.integer)) or config_id < 0:
            raise RfsweepError(f"config_id must be an integer >= 0, got {config_id!r}")
        config_id = int(config_id)
        if config_id >= self.grid_total:
            raise RfsweepError(f"config_id {config_id} is outside this space (0..{self.grid_total - 1})")
        digits = []
        for radix in reversed(self.radices):
            config_id, digit = divmod(config_id, radix)
            digits.append(digit)
        return digits[::-1]

    def encode(self, digits: list[int]) -> int:
        """Per-stage digits -> config_id; the inverse of decode."""
        if len(digits) != self.stages:
            raise RfsweepError(f"expected {self.stages} stage digits, got {len(digits)}")
        value = 0
        for digit, radix in zip(digits, self.radices):
            if not 0 <= digit < radix:
                raise RfsweepError(f"digit {digit} outside 0..{radix - 1}")
            value = value * radix + digit
        return value

    def choices(self, config_id: int) -> list[dict]:
        """Per stage: block, repeats, kernel, stride, dilation, width, expansion, groups, valid."""
        return [self.stage_rows(i)[digit] for i, digit in enumerate(self.decode(config_id))]

    def config_id_of(self, stages: list[dict]) -> int:
        """The config_id of explicit per-stage choices (values, not positions); for tests and docs.

        Each dict gives the stage's block, repeats, kernel, stride, dilation,
        width, expansion (and groups or group_width where the stage has them);
        a missing key takes the stage's first value.
        """
        if len(stages) != self.stages:
            raise RfsweepError(f"expected {self.stages} stages, got {len(stages)}")
        digits = []
        for i, (want, s) in enumerate(zip(stages, self.stage), start=1):
            mode = "groups" if s["groups"] else "group_width" if s["group_width"] else None
            lists = [s[key] for key in DIGIT_KEYS[:-1]] + [s[mode] if mode else [1]]
            keys = list(DIGIT_KEYS[:-1]) + [mode or "groups"]
            digit = 0
            for key, values in zip(keys, lists):
                value = want.get(key, values[0])
                if value not in values:
                    raise RfsweepError(f"stage {i}: {key} {value!r} is not among {values}")
                digit = digit * len(values) + values.index(value)
            digits.append(digit)
        return self.encode(digits)

    def sample_ids(self) -> np.ndarray | None:
        """The sorted sample of config_ids (uniform, without replacement, from `seed`)."""
        if self.sample is None:
            return None
        if "sample" not in self._cache:
            rng = np.random.default_rng(self.seed)
            total = self.grid_total
            if total < 2**63:
                ids = rng.choice(total, size=self.sample, replace=False)
            else:  # Floyd's algorithm on Python ints
                chosen: set[int] = set()
                for j in range(total - self.sample, total):
                    t = int(rng.integers(0, j + 1)) if j < 2**63 else int(rng.random() * (j + 1))
                    chosen.add(j if t in chosen else t)
                ids = np.array(sorted(chosen), dtype=np.uint64)
            self._cache["sample"] = np.sort(np.asarray(ids)).astype(np.uint64)
        return self._cache["sample"]

    def describe(self, config_id: int) -> str:
        """A short human string of one row: 'basic x2 k3 s1 w64 | bottleneck x3 k3 s2 w512 e4 ...'."""
        parts = []
        for row in self.choices(config_id):
            k, st, d = (_one_or_each(self.axes_of(row[key])) for key in AXIS_KEYS)
            text = f"{BLOCKS[row['block']]} x{row['repeats']} k{_compact(k)} s{_compact(st)}"
            text += f" d{_compact(d)}" if d != 1 else ""
            text += f" w{row['width']}" + (f" e{row['expansion']}" if row["block"] in EXPANSION_APPLIES else "")
            text += f" g{row['groups']}" if row["groups"] != 1 else ""
            parts.append(text)
        return " | ".join(parts)

    # ------------------------------------------------------------ bounds

    def bounds(self) -> dict[str, int]:
        """Exact Python-int upper bounds of every total (overflow checks, column types)."""
        st = self.stem_state()
        n, rf, jump = st.size, st.rf, st.jump
        c = max([st.channels] + [w for s in self.stage for w in s["width"]])
        e = max([1] + [x for s in self.stage for x in s["expansion"]])
        params, macs = st.params, st.macs
        for s in self.stage:
            reps = max(s["repeats"])
            causal = any(BLOCKS.index(name) in CAUSAL for name in s["block"])
            doubling = 2 ** (min(reps, s.get("dilation_cycle") or reps) - 1) if causal else 1  # largest dilation
            k_max = max(max(self.axes_of(x)) for x in s["kernel"])
            k_eff = max(max(self.axes_of(x)) for x in s["dilation"]) * (k_max - 1) * doubling
            k2 = k_max ** self.rank
            per_block = 3 * k2 * (c * e) * (c * e) + 4 * c * e + c * c + 2 * c
            params += reps * per_block
            macs += reps * per_block * n ** self.rank
            stride = max(max(self.axes_of(x)) for x in s["stride"])
            rf += reps * 3 * k_eff * jump * stride
            jump *= stride
        return {"rf": rf, "jump": jump, "out_size": n, "channels": c, "params": params,
                "macs": macs, "flops": 2 * macs, "depth": st.depth + 3 * sum(max(s["repeats"]) for s in self.stage) + 1}

    def check_int64(self) -> None:
        bounds = self.bounds()
        if max(bounds.values()) > INT64_SAFE:
            over = "/".join(key for key in ("rf", "params", "macs", "flops") if bounds[key] > INT64_SAFE)
            why = ("a tcn or wavenet stage's dilation doubles block by block: fewer repeats or a dilation_cycle"
                   if bounds["rf"] > INT64_SAFE and self._has_causal()
                   else "widths, expansion, repeats or input_size too large")
            raise RfsweepError(f"spec: {over or 'totals'} could exceed 64-bit integers ({why})")

    def _has_causal(self) -> bool:
        return any(BLOCKS.index(name) in CAUSAL for s in self.stage for name in s["block"])

    # ------------------------------------------------------------ the Space interface

    def schema(self):
        """The Arrow schema of the rows (block_sweep.block_schema)."""
        from .block_sweep import block_schema
        return block_schema(self)

    def evaluator(self, threads: int | None = None):
        """The block kernel over id ranges (block_sweep.BlockEvaluator), for engines.write_range."""
        from .block_sweep import BlockEvaluator
        return BlockEvaluator(self, threads)

    @property
    def conventions(self) -> dict:
        """What the Parquet metadata says about the columns (writer.sweep_metadata reads it); the
        entries for rank and causal blocks only where they apply (rank-2 centred files unchanged)."""
        extra = {}
        if self.per_axis:
            extra["rank"] = (f"{self.rank} spatial axes, per axis: rf, jump, out_size, erf_std, erf_ratio and every "
                             f"s{{i}}_kernel, s{{i}}_stride, s{{i}}_dilation hold one value per axis (lists of "
                             f"{self.rank}); params count the product of the kernel's axes in weights per channel "
                             "pair, macs run over the product of out_size; "
                             "min_rf, max_rf and min_out_size hold on every axis")
        elif self.rank != 2:
            extra["rank"] = (f"{self.rank} spatial axes, isotropic: rf, jump, out_size per axis; params count "
                             "kernel^rank weights per channel pair, macs run over out_size^rank positions")
        if self._has_causal():
            extra["causal"] = CAUSAL_CONVENTION
        return {**CONVENTIONS, **extra} if extra else CONVENTIONS

    def estimate(self) -> dict:
        """Rough run time (s) and output size (bytes), for --dry-run and the size line."""
        return {"stacks": self.total, "seconds": self.total / NETWORKS_PER_SECOND,
                "bytes": self.total * (4.0 + 1.5 * self.stages)}

    def network(self, config_id: int) -> dict:
        """The graph of one row (block_graph), for show and measure."""
        return block_graph(self, config_id)

    def summary(self) -> str:
        """One line for --dry-run and the progress header."""
        shape = " x ".join(f"{r}" for r in self.radices)
        what = (f"a sample of {self.sample:,} from " if self.sample is not None else "")
        return f"block space: {what}{self.grid_total:,} networks ({self.stages} stages, choices {shape})"


def _resolve_row(code, r, k, st, d, w, ei, e, gi, gv, mode, rank=2, dilation_cycle=None) -> dict:
    """One stage choice with ignored fields normalised (expansion/groups 1) and static validity."""
    valid = True
    expansion = e if code in EXPANSION_APPLIES else 1
    if code not in EXPANSION_APPLIES and ei > 0:
        valid = False  # expansion ignored: enumerated once
    groups = 1
    if code in GROUPS_APPLY:
        grouped_width = w // e if code == BOTTLENECK else w
        if code == BOTTLENECK and w % e:
            valid = False  # the bottleneck's inner width would not be an integer
        if mode == "group_width":
            groups = grouped_width // gv if grouped_width % gv == 0 and grouped_width >= gv else 0
        else:
            groups = gv
        if groups < 1 or grouped_width % max(groups, 1):
            valid, groups = False, max(groups, 1)
    elif gi > 0:
        valid = False  # groups ignored by depthwise and causal blocks: enumerated once
    if code == WAVENET and (st != 1 or w % e):  # (never a per-axis stride: those are refused for causal stages)
        valid = False  # a wavenet stage keeps its length; its residual width is width / expansion
    cycle = dilation_cycle or (WAVENET_CYCLE if code == WAVENET else max(r, 1))
    return {"block": code, "repeats": r, "kernel": k, "stride": st, "dilation": d, "width": w,
            "expansion": expansion, "groups": groups, "valid": int(valid), "kpow": math.prod(axes_of(k, rank)),
            "cycle": cycle}


def load_block_spec(values: dict, overrides: dict | None = None, path=None) -> BlockSpec:
    """A BlockSpec from TOML values plus flag overrides (flags win)."""
    chain_only = sorted(k for k, v in (overrides or {}).items() if v is not None and k not in TOP_DEFAULTS)
    if chain_only:
        raise RfsweepError(f"--{chain_only[0].replace('_', '-')} is a chain-grid flag; a block spec "
                           f"{'(' + str(path) + ') ' if path else ''}sets choices per [[stage]] table")
    merged = dict(values)
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return BlockSpec.build(merged)


def read_block_spec(path) -> BlockSpec:
    """A BlockSpec from a TOML file with [[stage]] tables."""
    text = read_user_file(path, "spec")
    try:
        values = tomllib.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RfsweepError(f"{path}: invalid TOML: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    return load_block_spec(values, path=path)


# ================================================================ graphs

def _conv(nodes, name, src, k, s, d, c_out, groups=1, bias=False):
    """A conv + BatchNorm with 'same' padding d*(k-1)//2 (per axis where k or d is a list)."""
    if isinstance(k, list) or isinstance(d, list):
        rank = len(k) if isinstance(k, list) else len(d)
        padding = [dd * (kk - 1) // 2 for kk, dd in zip(axes_of(k, rank), axes_of(d, rank))]
    else:
        padding = d * (k - 1) // 2
    nodes.append({"name": name, "type": "conv", "inputs": [src], "kernel": k, "stride": s,
                  "padding": padding, "dilation": d, "groups": groups, "out_channels": c_out,
                  "bias": bias})
    nodes.append({"name": f"{name}.bn", "type": "bn", "inputs": [name]})
    return f"{name}.bn"


def _causal_conv(nodes, name, src, k, s, d, c_out, rank):
    """A conv with bias, padded (k-1)*d on the left of every axis only: unit i sees inputs up to i*s."""
    nodes.append({"name": name, "type": "conv", "inputs": [src], "kernel": k, "stride": s,
                  "padding": [[d * (k - 1), 0]] * rank, "dilation": d, "out_channels": c_out, "bias": True})
    return name


def _tcn_nodes(nodes, prefix, src, c_in, k, s, d, w, rank):
    """Bai et al. 2018's TemporalBlock (locuslab/TCN): two causal dilated convs (ReLU, dropout and
    weight norm not written), a 1x1 conv on the residual when the stride or the channels change."""
    x = _causal_conv(nodes, f"{prefix}.conv1", src, k, s, d, w, rank)
    x = _causal_conv(nodes, f"{prefix}.conv2", x, k, 1, d, w, rank)
    short = src
    if s != 1 or c_in != w:
        short = _causal_conv(nodes, f"{prefix}.downsample", src, 1, s, 1, w, rank)
    nodes.append({"name": f"{prefix}.add", "type": "add", "inputs": [x, short]})
    return f"{prefix}.add"


def _wavenet_nodes(nodes, prefix, src, c_in, k, d, inner, w, rank):
    """van den Oord et al. 2016, Fig. 4: tanh(filter) * sigmoid(gate), both causal dilated convs
    (the activations not written: the gate is a mul node), then a 1x1 residual conv added to the
    input (through a 1x1 conv when the channels differ) and a 1x1 skip conv. Returns (residual, skip)."""
    f = _causal_conv(nodes, f"{prefix}.filter", src, k, 1, d, inner, rank)
    g = _causal_conv(nodes, f"{prefix}.gate", src, k, 1, d, inner, rank)
    nodes.append({"name": f"{prefix}.gated", "type": "mul", "inputs": [f, g]})
    skip = _causal_conv(nodes, f"{prefix}.skip", f"{prefix}.gated", 1, 1, 1, w, rank)
    x = _causal_conv(nodes, f"{prefix}.residual", f"{prefix}.gated", 1, 1, 1, inner, rank)
    short = src if c_in == inner else _causal_conv(nodes, f"{prefix}.project", src, 1, 1, 1, inner, rank)
    nodes.append({"name": f"{prefix}.add", "type": "add", "inputs": [x, short]})
    return f"{prefix}.add", skip


def _causal_stage(nodes, i, src, c, row, rank):
    """A stage of tcn or wavenet blocks: block b (0-based) has dilation d * 2^(b mod cycle); a wavenet
    stage's output is the sum of its blocks' skip outputs. Returns (output node, channels)."""
    skips = []
    for b in range(row["repeats"]):
        d = row["dilation"] << (b % row["cycle"])
        prefix = f"s{i}.{b + 1}"
        if row["block"] == TCN:
            src = _tcn_nodes(nodes, prefix, src, c, row["kernel"], row["stride"] if b == 0 else 1, d,
                             row["width"], rank)
            c = row["width"]
        else:
            inner = row["width"] // row["expansion"]
            src, skip = _wavenet_nodes(nodes, prefix, src, c, row["kernel"], d, inner, row["width"], rank)
            skips.append(skip)
            c = inner
    if skips:
        nodes.append({"name": f"s{i}.skips", "type": "add", "inputs": skips})
        return f"s{i}.skips", row["width"]
    return src, c


def _block_nodes(nodes, prefix, src, code, c_in, k, s, d, w, e, g):
    """Append one block's nodes (convs + BN, shortcut, add); returns the output node's name."""
    if code == CONV:
        return _conv(nodes, f"{prefix}.conv", src, k, s, d, w, g)
    if code == DWSEP:
        x = _conv(nodes, f"{prefix}.dw", src, k, s, d, c_in, c_in)
        return _conv(nodes, f"{prefix}.pw", x, 1, 1, 1, w)
    if code == MBCONV:
        hidden = c_in * e
        x = src if e == 1 else _conv(nodes, f"{prefix}.expand", src, 1, 1, 1, hidden)
        x = _conv(nodes, f"{prefix}.dw", x, k, s, d, hidden, hidden)
        x = _conv(nodes, f"{prefix}.project", x, 1, 1, 1, w)
        if s == 1 and c_in == w:
            nodes.append({"name": f"{prefix}.add", "type": "add", "inputs": [x, src]})
            return f"{prefix}.add"
        return x
    if code == BASIC:
        x = _conv(nodes, f"{prefix}.conv1", src, k, s, d, w, g)
        x = _conv(nodes, f"{prefix}.conv2", x, k, 1, d, w, g)
    else:  # BOTTLENECK, v1.5: the stride on the kxk conv
        inner = w // e
        x = _conv(nodes, f"{prefix}.conv1", src, 1, 1, 1, inner)
        x = _conv(nodes, f"{prefix}.conv2", x, k, s, d, inner, g)
        x = _conv(nodes, f"{prefix}.conv3", x, 1, 1, 1, w)
    short = src
    if s != 1 or c_in != w:
        short = _conv(nodes, f"{prefix}.downsample", src, 1, s, 1, w)
    nodes.append({"name": f"{prefix}.add", "type": "add", "inputs": [x, short]})
    return f"{prefix}.add"


def _compact(value) -> str:
    """A per-axis figure as describe writes it: 3, or 1_3_3 (the compact layer syntax)."""
    return "_".join(map(str, value)) if isinstance(value, list) else str(value)


def _one_or_each(values):
    """A per-axis figure as a graph writes it: one number where the axes agree, a list otherwise."""
    return values[0] if len(set(values)) == 1 else list(values)


def block_graph(spec: BlockSpec, config_id: int, stages: int | None = None) -> dict:
    """The network of one row as a graph dict (contract section 6) for `rfsweep.analyze`.

    `stages` keeps only the stem and the first N stages (prefix networks).
    Node names: stem.{j} (and stem.{j}.bn), s{i}.{b}.conv1 / .conv1.bn /
    .downsample / .add ..., stage i and block b 1-based. Raises RfsweepError
    for an id at an ignored-choice position (an invalid row).
    """
    rows = spec.choices(config_id)
    nodes: list[dict] = []
    src = "input"
    c = spec.in_channels
    stem = spec.stem_stack()
    for j, layer in enumerate(stem.layers if stem else (), start=1):
        name = f"stem.{j}"
        node = {"name": name, "type": layer.type, "inputs": [src], "kernel": _one_or_each(layer.kernel),
                "stride": _one_or_each(layer.stride), "padding": _one_or_each(layer.padding)}
        if layer.is_conv:
            node.update(dilation=_one_or_each(layer.dilation), groups=layer.groups, out_channels=layer.out_channels,
                        bias=layer.bias)
            nodes.append(node)
            nodes.append({"name": f"{name}.bn", "type": "bn", "inputs": [name]})
            src, c = f"{name}.bn", layer.out_channels
        else:
            node["ceil_mode"] = layer.ceil_mode
            nodes.append(node)
            src = name
    for i, row in enumerate(rows[:stages] if stages is not None else rows, start=1):
        if not row["valid"]:
            raise RfsweepError(f"config_id {config_id}: stage {i} is at an ignored-choice position "
                               "(expansion or groups that its block does not use): an invalid row")
        if row["block"] in CAUSAL:
            src, c = _causal_stage(nodes, i, src, c, row, spec.rank)
            continue
        for b in range(1, row["repeats"] + 1):
            k, stride, d = (_one_or_each(spec.axes_of(row[key])) for key in AXIS_KEYS)  # lists where axes differ
            src = _block_nodes(nodes, f"s{i}.{b}", src, row["block"], c, k,
                               stride if b == 1 else 1, d, row["width"],
                               row["expansion"], row["groups"])
            c = row["width"]
    if not nodes:
        nodes.append({"name": "identity", "type": "identity", "inputs": ["input"]})
    graph = {"input_size": spec.input_size, "in_channels": spec.in_channels, "nodes": nodes,
             "output": nodes[-1]["name"]}
    if spec.rank != 2:  # one number per field = that value on every axis
        graph["rank"] = spec.rank
    return graph
