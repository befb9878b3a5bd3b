"""The U-Net design space: its spec ([unet] table), config_id, and each row's network as a graph.

A U-Net here is Ronneberger et al. 2015's shape with every choice an axis:
`levels` max pools (2x2, stride 2) on the way down, `convs` k x k convs per
level on each side, widths `base_width * width_multiplier**level`, an
up-sampling per level on the way up (`transposed`: ConvTranspose k=2 s=2, the
paper's "up-conv 2x2"; `nearest` / `bilinear` (align_corners False): x2
upsampling followed by one k x k conv with the level's padding, so that both
halve the channels as the transposed conv does), a skip concat per level
(`valid` U-Nets crop the skip to the up-sampled map, centred, as the paper;
`same` U-Nets need no crop), and a final 1x1 conv to `out_channels`. Every
conv has a bias; no normalisation layers.

config_id is a mixed-radix number over the axes, `levels` slowest, then
`convs`, `kernel`, `padding`, `upsampling`, `width_multiplier`, and
`base_width` fastest, each list in the order given. A network is invalid
when a map empties or a pool meets an odd size (the skip would no longer
line up with the up-sampled map; valid U-Nets need sizes = 572 mod 16 as the
paper's), and then keeps its id (no row).

UNetSpec implements `space.Space` and registers as kind "unet", marked by the
`unet` table. Its rows come from `unet_sweep` (schema, evaluator) over
`unet_kernel` (closed forms, no graph), imported lazily; `network` builds the
graph that `rfsweep.analyze`, `tile_plan` and `show` use, and that the tests
check every column against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import RfsweepError
from .layers import MAX_FIELD
from .space import LIMIT_KEYS, limit_or_none, register
from .unet_fields import AXES, BYTES_PER_ELEMENT, PADDING, UPSAMPLING

AXIS_DEFAULTS = dict(levels=[4], convs=[2], kernel=[3], padding=["same"], upsampling=["transposed"],
                     width_multiplier=[2], base_width=[64])
TOP_DEFAULTS = dict(unet=None, input_size=512, in_channels=1, out_channels=2, tile=256, min_rf=None,
                    max_rf=None, max_params=None, max_macs=None, min_out_size=None)
MAX_LEVELS = 8
MAX_CONVS = 16
INT64_SAFE = 1 << 62
# --dry-run's rough rate (benchmarks/bench_unet.py measures it)
NETWORKS_PER_SECOND = 5e6
CONVENTIONS = {
    "coordinates": "0-indexed input pixel centres (Distill 2019, google receptive_field)",
    "macs": "one multiply-accumulate = 1; bias adds not counted; a transposed conv costs one MAC per "
            "weight per input unit (torch.utils.flop_counter); upsampling, crop, concat 0",
    "macs_per_pixel": "macs / out_size**2",
    "params": "every conv with a bias; no normalisation",
    "rf": "largest field of any output unit, unclipped by the border (per-phase fields, docs/decoders.md)",
    "halo": "halo_before / halo_after: tile_plan's halo (top = left, bottom = right) for tiles of `tile`",
    "multiple": "tile alignment, 2**levels",
    "peak_bytes": "tile.peak_bytes (float32, batch 1, live tensors in node order) on the largest tile "
                  "that tile_plan reads for tiles of `tile`",
    "config_id": "mixed-radix position; levels slowest, then convs, kernel, padding, upsampling, "
                 "width_multiplier, base_width (fastest)",
    "network": "per level convs k x k; 2x2 max pools; up: transposed (ConvTranspose k2 s2) or "
               "nearest/bilinear x2 + k x k conv; skip concat [skip, up] (valid: skip centre-cropped); "
               "final 1x1 conv; widths base_width * width_multiplier**level",
}


def _int_list(value, key: str, low: int, high: int) -> list[int]:
    from .grid import parse_int_list  # '8-64' ranges, as the chain grid reads them

    items = parse_int_list(value, f"unet.{key}")
    if not items:
        raise RfsweepError(f"unet.{key}: needs at least one value")
    bad = [v for v in items if not low <= v <= high]
    if bad:
        raise RfsweepError(f"unet.{key}: {bad[0]} is out of range (allowed {low}..{high})")
    if len(set(items)) != len(items):
        raise RfsweepError(f"unet.{key}: duplicate values in {items}")
    return items


def _name_list(value, key: str, allowed: tuple) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise RfsweepError(f"unet.{key}: needs at least one value")
    for item in items:
        if item not in allowed:
            raise RfsweepError(f"unet.{key}: unknown value {item!r} (allowed: {', '.join(allowed)})")
    if len(set(items)) != len(items):
        raise RfsweepError(f"unet.{key}: duplicate values in {items}")
    return list(items)


def _axes(raw) -> dict:
    if not isinstance(raw, dict):
        raise RfsweepError(f"unet: expected a table of choice lists ([unet]), got {raw!r}")
    raw = {key: value for key, value in raw.items() if value is not None}
    unknown = sorted(set(raw) - set(AXES))
    if unknown:
        raise RfsweepError(f"unet: unknown key {unknown[0]!r} (allowed: {', '.join(AXES)})")
    merged = {**AXIS_DEFAULTS, **raw}
    axes = {"levels": _int_list(merged["levels"], "levels", 1, MAX_LEVELS),
            "convs": _int_list(merged["convs"], "convs", 1, MAX_CONVS),
            "kernel": _int_list(merged["kernel"], "kernel", 1, 255),
            "padding": _name_list(merged["padding"], "padding", PADDING),
            "upsampling": _name_list(merged["upsampling"], "upsampling", UPSAMPLING),
            "width_multiplier": _int_list(merged["width_multiplier"], "width_multiplier", 1, 255),
            "base_width": _int_list(merged["base_width"], "base_width", 1, MAX_FIELD)}
    even = [k for k in axes["kernel"] if k % 2 == 0]
    if even:
        raise RfsweepError(f"unet.kernel: {even[0]} is even (U-Nets here use odd kernels, so that 'same' "
                           "padding keeps the map centred)")
    return axes


@register
@dataclass(frozen=True)
class UNetSpec:
    """A validated U-Net design space (see the module docstring and docs/decoders.md); a `space.Space`."""

    kind = "unet"
    marker = "unet"  # the [unet] table
    unit = "networks"

    unet: dict
    input_size: int = 512
    in_channels: int = 1
    out_channels: int = 2
    tile: int = 256
    min_rf: int | None = None
    max_rf: int | None = None
    max_params: int | None = None
    max_macs: int | None = None
    min_out_size: int | None = None
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, values: dict) -> "UNetSpec":
        """Validate raw values (a TOML document, flags, or stored metadata) into a UNetSpec."""
        if not isinstance(values, dict):
            raise RfsweepError("unet spec: expected a table")
        unknown = sorted(set(values) - set(TOP_DEFAULTS))
        if unknown:
            raise RfsweepError(f"unknown spec key {unknown[0]!r} in a U-Net spec (allowed: "
                               f"{', '.join(TOP_DEFAULTS)}; in [unet]: {', '.join(AXES)})")
        merged = {**TOP_DEFAULTS, **{k: v for k, v in values.items() if v is not None}}
        spec = {"unet": _axes(merged["unet"] if merged["unet"] is not None else {})}
        for key in ("input_size", "in_channels", "out_channels", "tile"):
            value = merged[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_FIELD:
                raise RfsweepError(f"{key}: expected an integer in 1..{MAX_FIELD}, got {value!r}")
            spec[key] = value
        for key in LIMIT_KEYS:
            spec[key] = limit_or_none(merged[key], key)
        deepest = max(spec["unet"]["levels"])
        if spec["tile"] < 2 ** deepest:
            raise RfsweepError(f"tile: {spec['tile']} is smaller than 2**levels = {2 ** deepest} (levels "
                               f"{deepest}): a tile must hold at least one multiple")
        built = cls(**spec)
        built.check_int64()
        return built

    @classmethod
    def from_toml(cls, values: dict, overrides: dict | None = None, path=None) -> "UNetSpec":
        """A UNetSpec from TOML values plus flag overrides (flags win); other spaces' flags are refused."""
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        chain_only = sorted(k for k in given if k not in TOP_DEFAULTS)
        if chain_only:
            raise RfsweepError(f"--{chain_only[0].replace('_', '-')} does not apply to a U-Net spec "
                               f"{'(' + str(path) + ') ' if path else ''}: its choices are in the [unet] table")
        return cls.build({**values, **given})

    def to_dict(self) -> dict:
        """Every key, normalised: what the Parquet metadata stores (and `build` reads back)."""
        return {"unet": {key: list(self.unet[key]) for key in AXES}, "input_size": self.input_size,
                "in_channels": self.in_channels, "out_channels": self.out_channels, "tile": self.tile,
                **{k: getattr(self, k) for k in LIMIT_KEYS}}

    # ------------------------------------------------------------ ids

    @property
    def radices(self) -> list[int]:
        return [len(self.unet[key]) for key in AXES]

    @property
    def total(self) -> int:
        return math.prod(self.radices)

    def depth_blocks(self) -> list[tuple[int, int, int]]:
        """One block of ids: chunks may cross any digit."""
        return [(0, 0, self.total)]

    def decode(self, config_id: int) -> list[int]:
        """config_id -> per-axis positions, `levels` first."""
        if isinstance(config_id, bool) or not isinstance(config_id, int) or config_id < 0:
            raise RfsweepError(f"config_id must be an integer >= 0, got {config_id!r}")
        if config_id >= self.total:
            raise RfsweepError(f"config_id {config_id} is outside this space (0..{self.total - 1})")
        digits = []
        for radix in reversed(self.radices):
            config_id, digit = divmod(config_id, radix)
            digits.append(digit)
        return digits[::-1]

    def choices(self, config_id: int) -> dict:
        """The axis values of one id: {"levels": 4, ..., "base_width": 64}."""
        return {key: self.unet[key][d] for key, d in zip(AXES, self.decode(int(config_id)))}

    def config_id_of(self, **values) -> int:
        """The config_id of explicit axis values (a missing axis takes its first value); for tests and docs."""
        value = 0
        for key, radix in zip(AXES, self.radices):
            choice = values.get(key, self.unet[key][0])
            if choice not in self.unet[key]:
                raise RfsweepError(f"unet.{key}: {choice!r} is not among {self.unet[key]}")
            value = value * radix + self.unet[key].index(choice)
        return value

    # ------------------------------------------------------------ bounds

    def bounds(self) -> dict[str, int]:
        """Python-int upper bounds of the totals (overflow checks), level by level.

        Level l's maps are at most ceil(n / 2**l) pixels and its convs (2*convs + 2 of them, the up
        conv included) have at most 2 * base_width * multiplier**(l+1) channels in and out.
        """
        a = self.unet
        w0, mult, depth = max(a["base_width"]), max(a["width_multiplier"]), max(a["levels"])
        k2 = max(max(a["kernel"]), 2) ** 2
        per_level = 2 * max(a["convs"]) + 2
        n = self.input_size
        params = macs = peak = 0
        for level in range(depth + 1):
            width = max(self.in_channels, self.out_channels, 2 * w0 * mult ** min(level + 1, depth))
            size = -(-n // 2 ** level)
            params += per_level * (k2 * width * width + width)
            macs += per_level * k2 * width * width * size * size
            peak += (per_level + 4) * width * size * size * BYTES_PER_ELEMENT
        return {"params": params, "macs": macs, "peak": peak}

    def check_int64(self) -> None:
        if max(self.bounds().values()) > INT64_SAFE:
            raise RfsweepError("spec: params/MACs could exceed 64-bit integers (base_width, width_multiplier, "
                               "levels or input_size too large)")

    # ------------------------------------------------------------ the Space interface

    def schema(self):
        """The Arrow schema of the rows (unet_sweep.unet_schema)."""
        from .unet_sweep import unet_schema
        return unet_schema(self)

    def evaluator(self, threads: int | None = None):
        """The U-Net kernel over id ranges (unet_sweep.UNetEvaluator), for engines.write_range."""
        from .unet_sweep import UNetEvaluator
        return UNetEvaluator(self, threads)

    @property
    def conventions(self) -> dict:
        return CONVENTIONS

    def estimate(self) -> dict:
        # 7.6 B per written row measured (benchmarks/README.md); an upper bound when every id is written
        return {"stacks": self.total, "seconds": self.total / NETWORKS_PER_SECOND, "bytes": self.total * 8.0}

    def summary(self) -> str:
        shape = " x ".join(f"{len(self.unet[key])} {key}" for key in AXES)
        return f"U-Net space: {self.total:,} networks ({shape})"

    def network(self, config_id: int) -> dict:
        """The graph of one row (unet_graph), for show, measure and the tests."""
        return unet_graph(self, config_id)

    def describe(self, config_id: int) -> str:
        c = self.choices(config_id)
        return (f"L{c['levels']} w{c['base_width']}x{c['width_multiplier']} {c['convs']}x k{c['kernel']} "
                f"{c['padding']} {c['upsampling']}")

    def row_values(self, config_id: int) -> dict:
        """The configuration columns of one row, as the file stores them (`show` checks rows against it)."""
        return self.choices(config_id)


# ================================================================ the network of one id

def unet_sizes(n: int, levels: int, convs: int, kernel: int, padding: str, upsampling: str):
    """Per level the encoder output sizes and, on the way up, (up-sampled size, crop); or why it is invalid.

    Returns (encoder sizes e[0..levels], decoder [(up, crop, out)] for levels-1..0) or raises RfsweepError.
    """
    shrink = 0 if padding == "same" else kernel - 1
    enc = []
    x = n
    for level in range(levels + 1):
        x -= convs * shrink
        if x < 1:
            raise RfsweepError(f"level {level}: the encoder's convs empty the map ({n} px in)")
        enc.append(x)
        if level < levels:
            if x % 2:
                raise RfsweepError(f"level {level}: a {x}-pixel map cannot be pooled 2x2 evenly "
                                   f"(input_size {n} does not divide)")
            x //= 2
    dec = []
    for level in range(levels - 1, -1, -1):
        up = 2 * x - (0 if upsampling == "transposed" else shrink)
        if up < 1:
            raise RfsweepError(f"level {level}: the up-sampling conv empties the map")
        diff = enc[level] - up
        if diff < 0 or diff % 2:
            raise RfsweepError(f"level {level}: the skip ({enc[level]} px) cannot be centre-cropped to the "
                               f"up-sampled map ({up} px)")
        x = up - convs * shrink
        if x < 1:
            raise RfsweepError(f"level {level}: the decoder's convs empty the map")
        dec.append((up, diff // 2, x))
    return enc, dec


def unet_graph(spec: UNetSpec, config_id: int, input_size: int | None = None) -> dict:
    """The network of one row as a graph dict (contract section 6) for `rfsweep.analyze`.

    Node names: enc{l}.conv{j}, down{l}, up{l} (+ up{l}.conv), crop{l}, cat{l}, dec{l}.conv{j}, final
    (levels 0-based). Raises RfsweepError for an invalid id, naming the level.
    """
    c = spec.choices(config_id)
    n = spec.input_size if input_size is None else input_size
    levels, convs, k, padding, up_kind = c["levels"], c["convs"], c["kernel"], c["padding"], c["upsampling"]
    _enc, dec = unet_sizes(n, levels, convs, k, padding, up_kind)
    pad = (k - 1) // 2 if padding == "same" else 0
    widths = [c["base_width"] * c["width_multiplier"] ** level for level in range(levels + 1)]
    nodes: list[dict] = []

    def conv(name, src, width, kernel=k, padding=pad):
        nodes.append({"name": name, "type": "conv", "inputs": [src], "kernel": kernel, "stride": 1,
                      "padding": padding, "out_channels": width, "bias": True})
        return name

    src = "input"
    skips = []
    for level in range(levels + 1):
        for j in range(1, convs + 1):
            src = conv(f"enc{level}.conv{j}", src, widths[level])
        skips.append(src)
        if level < levels:
            nodes.append({"name": f"down{level}", "type": "maxpool", "inputs": [src], "kernel": 2, "stride": 2,
                          "padding": 0})
            src = f"down{level}"
    for (_up, crop, _out), level in zip(dec, range(levels - 1, -1, -1)):
        if up_kind == "transposed":
            nodes.append({"name": f"up{level}", "type": "conv_transpose", "inputs": [src], "kernel": 2,
                          "stride": 2, "padding": 0, "out_channels": widths[level], "bias": True})
            src = f"up{level}"
        else:
            nodes.append({"name": f"up{level}", "type": "upsample", "inputs": [src], "scale": 2,
                          "mode": up_kind, "align_corners": False})
            src = conv(f"up{level}.conv", f"up{level}", widths[level])
        skip = skips[level]
        if padding == "valid":
            nodes.append({"name": f"crop{level}", "type": "crop", "inputs": [skip], "crop": crop})
            skip = f"crop{level}"
        nodes.append({"name": f"cat{level}", "type": "concat", "inputs": [skip, src]})
        src = f"cat{level}"
        for j in range(1, convs + 1):
            src = conv(f"dec{level}.conv{j}", src, widths[level])
    conv("final", src, spec.out_channels, kernel=1, padding=0)
    return {"input_size": n, "in_channels": spec.in_channels, "nodes": nodes, "output": "final"}
