"""The layer model, its validation, and the two loaders (compact string, JSON).

A `Stack` holds fully resolved layers: every default of the contract's
section 1 is filled in against the incoming channel count, so that the
arithmetic never has to guess. Spatial fields are tuples with one value
per axis: (height, width) at rank 2 (the default), (length,) at rank 1,
(depth, height, width) at rank 3. The compact string and JSON accept a single
int meaning the same value on every axis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RfsweepError, read_user_json

DEFAULT_INPUT_SIZE = 224
DEFAULT_IN_CHANNELS = 3
MAX_FIELD = 1 << 20  # any single size/channel/kernel beyond this is surely a typo

COMPACT_GRAMMAR = """\
Compact stack grammar: layers separated by commas, each one of
  c<K>[s<S>][p<P>][d<D>][x<C>][g<G>][nb]   conv: kernel K, stride S, padding P,
                                           dilation D, C out channels, G groups,
                                           nb = no bias
  dw<K>[s<S>][p<P>][d<D>][x<C>][nb]        depthwise conv (groups = in channels)
  mp<K>[s<S>][p<P>][ceil]                  max pool (stride defaults to K)
  ap<K>[s<S>][p<P>][ceil]                  avg pool
Decoders (the string is then read as a graph):
  t<K>[s<S>][p<P>][o<O>][d<D>][x<C>][g<G>][nb]
                                           transposed conv, output padding O
                                           (stride defaults to K, padding to 0)
  up<S>[bl|bc][ac]                         upsample xS: nearest, bilinear (bl),
                                           bicubic (bc); ac = align_corners
  ps<R> / pu<R>                            pixel shuffle / unshuffle by R
  cr<P>                                    crop P on every side
Numbers may be H_W pairs for rectangular layers: c1_7p0_3x192; at rank 3
one value per axis D_H_W (c1_3_3x32, mp1_2_2); one number = every axis.
Defaults follow PyTorch: conv padding d*(K-1)//2, channels unchanged.
Example: c7s2p3x64,mp3s2p1,c3x64,c3x64 or c3x16,mp2,c3x32,t2x16,c3x16"""

_NUM = r"[0-9]{1,30}(?:_[0-9]{1,30}){0,2}"  # ASCII only, short enough for int()
_TOKEN = re.compile(rf"^(c|dw|mp|ap)({_NUM})((?:[spdxg]{_NUM})*)((?:nb|ceil)*)$")
_OPTION = re.compile(rf"([spdxg])({_NUM})")
_PREFIX_TYPE = {"c": "conv", "dw": "conv", "mp": "maxpool", "ap": "avgpool"}
_OPTION_FIELD = {"s": "stride", "p": "padding", "d": "dilation", "x": "out_channels", "g": "groups"}
# decoder tokens (graph nodes, not chain layers): transposed conv, upsample, pixel (un)shuffle, crop
_DECODER_TOKEN = re.compile(rf"^(?:t({_NUM})((?:[spodxg]{_NUM})*)(nb)?|up({_NUM})(bl|bc)?(ac)?|(ps|pu)([0-9]{{1,30}})"
                            rf"|cr({_NUM}))$")
_DECODER_OPTION = re.compile(rf"([spodxg])({_NUM})")
_DECODER_FIELD = {**_OPTION_FIELD, "o": "output_padding"}
_LAYER_FIELDS = {"type", "kernel", "stride", "padding", "dilation", "out_channels",
                 "groups", "bias", "ceil_mode"}
_STACK_KEYS = {"input_size", "in_channels", "layers", "rank"}
RANKS = (1, 2, 3)
_METADATA_KEYS = {"name", "title", "source", "notes", "published"}


@dataclass(frozen=True)
class Layer:
    """One resolved layer; spatial fields hold one value per axis ((h, w) at rank 2)."""

    type: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    out_channels: int = 0
    groups: int = 1
    bias: bool = True
    ceil_mode: bool = False

    @property
    def is_conv(self) -> bool:
        return self.type == "conv"

    def compact(self) -> str:
        """This layer in the compact grammar (round-trips through parse_compact)."""
        def num(values):
            return str(values[0]) if len(set(values)) == 1 else "_".join(map(str, values))
        ones = (1,) * len(self.kernel)
        if self.is_conv:
            text = f"c{num(self.kernel)}"
            if self.stride != ones:
                text += f"s{num(self.stride)}"
            text += f"p{num(self.padding)}"
            if self.dilation != ones:
                text += f"d{num(self.dilation)}"
            text += f"x{self.out_channels}"
            if self.groups != 1:
                text += f"g{self.groups}"
            return text + ("" if self.bias else "nb")
        text = ("mp" if self.type == "maxpool" else "ap") + num(self.kernel)
        text += f"s{num(self.stride)}p{num(self.padding)}"
        return text + ("ceil" if self.ceil_mode else "")


@dataclass(frozen=True)
class Stack:
    """A resolved stack: input geometry plus layers, ready for `analyze`."""

    layers: tuple[Layer, ...]
    input_size: tuple[int, int] = (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE)
    in_channels: int = DEFAULT_IN_CHANNELS
    name: str | None = field(default=None, compare=False)

    def compact(self) -> str:
        return ",".join(layer.compact() for layer in self.layers)

    @property
    def rank(self) -> int:
        """The number of spatial axes (1, 2 or 3)."""
        return len(self.input_size)

    @property
    def is_square(self) -> bool:
        """Every per-axis figure equal on all axes (then reports give one number, not a list)."""
        groups = [self.input_size]
        for layer in self.layers:
            groups += [layer.kernel, layer.stride, layer.padding, layer.dilation]
        return all(len(set(values)) == 1 for values in groups)


def _where(index: int | None) -> str:
    return f"layer {index}: " if index is not None else ""


_AXES_WORDS = {1: "[n] list", 2: "[h, w] pair", 3: "[d, h, w] triple"}


def _as_axes(value, what: str, index: int | None, minimum: int, rank: int = 2) -> tuple:
    """One int (every axis) or one value per axis -> a tuple of `rank` checked ints."""
    if isinstance(value, (list, tuple)):
        if len(value) != rank:
            extra = "" if rank == 2 and len(value) not in RANKS else f" (the network has rank {rank})"
            raise RfsweepError(f"{_where(index)}{what} must be an int or an {_AXES_WORDS[rank]}, "
                               f"got {value!r}{extra}")
        values = tuple(value)
    else:
        values = (value,) * rank
    for item in values:
        _check_int(item, what, index, minimum)
    return values


def _as_pair(value, what: str, index: int | None, minimum: int) -> tuple[int, int]:
    return _as_axes(value, what, index, minimum, 2)  # type: ignore[return-value]


def check_rank(rank) -> int:
    """A valid spatial rank (1, 2 or 3), else the one-line error."""
    if isinstance(rank, bool) or rank not in RANKS:
        raise RfsweepError(f"rank must be 1, 2 or 3, got {rank!r}")
    return rank


def parse_size(value):
    """An input size as given on the command line: '224', or one length per axis '64_128_128'."""
    if isinstance(value, str):
        parts = value.split("_")
        if len(parts) > 3 or not all(part.isascii() and part.isdigit() and len(part) <= 30 for part in parts):
            raise RfsweepError(f"input_size (--input-size) must be an integer, or one per axis like 64_128_128, "
                               f"got {value!r}")
        numbers = [int(part) for part in parts]
        return numbers[0] if len(numbers) == 1 else numbers
    return value


def input_axes(input_size, rank=None, default=DEFAULT_INPUT_SIZE) -> tuple:
    """The input size per axis: a list sets the rank, one number means that length on every axis."""
    size = default if input_size is None else input_size
    if isinstance(size, tuple):
        size = list(size)
    if rank is not None:
        check_rank(rank)
    if isinstance(size, list):
        if rank is not None and len(size) != rank:
            raise RfsweepError(f"input_size {size!r} has {len(size)} axes but rank is {rank}")
        if len(size) not in RANKS:
            raise RfsweepError(f"input_size must be an int or a list of 1 to 3 lengths, got {size!r}")
        rank = len(size)
    return _as_axes(size, "input_size", None, 1, 2 if rank is None else rank)


def _check_int(value, what: str, index: int | None, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RfsweepError(f"{_where(index)}{what} must be an integer, got {value!r}")
    if value < minimum:
        raise RfsweepError(f"{_where(index)}{what} must be >= {minimum}, got {value}")
    if value > MAX_FIELD:
        raise RfsweepError(f"{_where(index)}{what} must be <= {MAX_FIELD}, got {value}")
    return value


def resolve_layer(raw: dict, index: int, c_in: int, rank: int = 2) -> Layer:
    """Validate one raw layer (JSON-like dict) and fill the contract's defaults.

    `index` is 1-based and names the layer in every message; `c_in` is the
    incoming channel count; `rank` the number of spatial axes.
    """
    if not isinstance(raw, dict):
        raise RfsweepError(f"layer {index}: expected an object with a 'type', got {raw!r}")
    unknown = sorted(set(raw) - _LAYER_FIELDS)
    if unknown:
        raise RfsweepError(f"layer {index}: unknown field {unknown[0]!r} "
                           f"(allowed: {', '.join(sorted(_LAYER_FIELDS))})")
    kind = raw.get("type")
    if kind not in ("conv", "maxpool", "avgpool"):
        raise RfsweepError(f"layer {index}: unknown layer type {kind!r} (allowed: conv, maxpool, avgpool)")
    if "kernel" not in raw:
        raise RfsweepError(f"layer {index}: missing 'kernel'")
    kernel = _as_axes(raw["kernel"], "kernel", index, 1, rank)
    is_conv = kind == "conv"
    stride = _as_axes(raw.get("stride", 1 if is_conv else kernel), "stride", index, 1, rank)
    dilation = _as_axes(raw.get("dilation", 1), "dilation", index, 1, rank)
    if "padding" in raw:
        padding = _as_axes(raw["padding"], "padding", index, 0, rank)
    else:
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation)) if is_conv else (0,) * rank
    for flag in ("bias", "ceil_mode"):
        if flag in raw and not isinstance(raw[flag], bool):
            raise RfsweepError(f"layer {index}: {flag} must be true or false, got {raw[flag]!r}")
    if is_conv:
        if "ceil_mode" in raw:
            raise RfsweepError(f"layer {index}: ceil_mode applies to pools only")
        out_channels = _check_int(raw.get("out_channels", c_in), "out_channels", index, 1)
        groups = _check_int(raw.get("groups", 1), "groups", index, 1)
        if c_in % groups or out_channels % groups:
            raise RfsweepError(f"layer {index}: groups={groups} must divide both in_channels={c_in} "
                               f"and out_channels={out_channels}")
        return Layer("conv", kernel, stride, padding, dilation, out_channels, groups,
                     raw.get("bias", True), False)
    for conv_only in ("out_channels", "groups", "bias"):
        if conv_only in raw:
            raise RfsweepError(f"layer {index}: {conv_only} applies to conv layers only, not {kind}")
    if dilation != (1,) * rank:
        raise RfsweepError(f"layer {index}: pools take no dilation (got {raw['dilation']!r})")
    for p, k in zip(padding, kernel):
        if p > k // 2:
            raise RfsweepError(f"layer {index}: {kind} padding {p} must be <= kernel//2 = {k // 2}")
    return Layer(kind, kernel, stride, padding, (1,) * rank, c_in, 1, False, raw.get("ceil_mode", False))


def build_stack(raw_layers, input_size=None, in_channels=None, name=None, rank=None) -> Stack:
    """Resolve a list of raw layer dicts into a validated `Stack`.

    The rank is `rank`, else the length of an `input_size` list, else 2.
    """
    size = input_axes(input_size, rank)
    c_in = first_c = _check_int(DEFAULT_IN_CHANNELS if in_channels is None else in_channels,
                                "in_channels", None, 1)
    if not isinstance(raw_layers, (list, tuple)) or not raw_layers:
        raise RfsweepError("a stack needs at least one layer")
    layers = []
    for index, raw in enumerate(raw_layers, start=1):
        layer = resolve_layer(raw, index, c_in, len(size))
        layers.append(layer)
        c_in = layer.out_channels
    return Stack(tuple(layers), size, first_c, name)


def _number(text: str):
    if "_" in text:
        return [int(part) for part in text.split("_")]
    return int(text)


def parse_compact_layers(text: str) -> list[dict]:
    """Compact string -> raw layer dicts (not yet validated against channels)."""
    if not isinstance(text, str) or not text.strip():
        raise RfsweepError("empty stack string; " + COMPACT_GRAMMAR.splitlines()[0].lower())
    raws = []
    for index, token in enumerate(text.split(","), start=1):
        token = token.strip()
        match = _TOKEN.match(token)
        if not match:
            raise RfsweepError(f"layer {index}: cannot parse {token!r} "
                               "(expected e.g. c3x64, c7s2p3x64, dw3, mp3s2p1, t2x64, up2bl; see --help)")
        prefix, kernel, options, flags = match.groups()
        raw: dict = {"type": _PREFIX_TYPE[prefix], "kernel": _number(kernel)}
        for letter, value in _OPTION.findall(options):
            name = _OPTION_FIELD[letter]
            if name in raw:
                raise RfsweepError(f"layer {index}: {token!r} gives {name} twice")
            raw[name] = _number(value)
        for flag in re.findall(r"nb|ceil", flags):
            name = "bias" if flag == "nb" else "ceil_mode"
            if name in raw:
                raise RfsweepError(f"layer {index}: {token!r} gives {flag!r} twice")
            raw[name] = flag == "ceil"
        if prefix == "dw":
            if "groups" in raw:
                raise RfsweepError(f"layer {index}: dw is depthwise already, drop g in {token!r}")
            raw["groups"] = "depthwise"
        raws.append(raw)
    return raws


def decoder_token(token: str) -> dict | None:
    """A decoder token as a graph node's fields (no name, no inputs); None when it is not one."""
    match = _DECODER_TOKEN.match(token.strip())
    if not match:
        return None
    t_kernel, t_options, t_nb, up_scale, up_mode, up_ac, shuffle, factor, crop = match.groups()
    if t_kernel is not None:
        node = {"type": "conv_transpose", "kernel": _number(t_kernel)}
        for letter, value in _DECODER_OPTION.findall(t_options):
            name = _DECODER_FIELD[letter]
            if name in node:
                raise RfsweepError(f"{token!r} gives {name} twice")
            node[name] = _number(value)
        node.setdefault("stride", node["kernel"])
        if t_nb:
            node["bias"] = False
        return node
    if up_scale is not None:
        node = {"type": "upsample", "scale": _number(up_scale),
                "mode": {None: "nearest", "bl": "bilinear", "bc": "bicubic"}[up_mode]}
        if up_ac:
            node["align_corners"] = True
        return node
    if shuffle is not None:
        return {"type": "pixel_shuffle" if shuffle == "ps" else "pixel_unshuffle", "factor": int(factor)}
    return {"type": "crop", "crop": _number(crop)}


def has_decoder_tokens(text) -> bool:
    """Whether a compact string names a decoder layer (then it is read as a graph, not a chain)."""
    return isinstance(text, str) and any(decoder_token(token) is not None for token in text.split(","))


def _resolve_depthwise(raws: list[dict], in_channels: int) -> list[dict]:
    """Replace the 'depthwise' marker by the incoming channel count, layer by layer."""
    c_in = in_channels
    out = []
    for raw in raws:
        if not isinstance(raw, dict):  # resolve_layer names the layer and the problem
            out.append(raw)
            continue
        raw = dict(raw)
        if raw.get("groups") == "depthwise":
            raw["groups"] = c_in
        if raw.get("type") == "conv":
            c_in = raw.get("out_channels", c_in)
        out.append(raw)
    return out


def parse_compact(text: str, input_size=None, in_channels=None, rank=None) -> Stack:
    """Parse the compact shell string into a validated Stack. See COMPACT_GRAMMAR."""
    c_in = DEFAULT_IN_CHANNELS if in_channels is None else in_channels
    return build_stack(_resolve_depthwise(parse_compact_layers(text), c_in), input_size, in_channels, rank=rank)


def parse_json(data, input_size=None, in_channels=None, name=None, rank=None) -> Stack:
    """A JSON list of layers, or an object with input_size, in_channels, layers (and rank).

    Explicit arguments override the object's input_size, in_channels and rank.
    """
    if isinstance(data, dict):
        unknown = sorted(set(data) - _STACK_KEYS - _METADATA_KEYS)
        if unknown:
            raise RfsweepError(f"unknown key {unknown[0]!r} in stack object "
                               f"(allowed: {', '.join(sorted(_STACK_KEYS | _METADATA_KEYS))})")
        if "layers" not in data:
            raise RfsweepError("stack object has no 'layers' list")
        rank, input_size = explicit_rank(data, input_size, rank)
        in_channels = data.get("in_channels") if in_channels is None else in_channels
        name = data.get("name", name)
        layers = data["layers"]
    elif isinstance(data, list):
        layers = data
    else:
        raise RfsweepError("a JSON stack must be a list of layers or an object with 'layers'")
    if not isinstance(layers, list) or not layers:
        raise RfsweepError("'layers' must be a non-empty list")
    c_in = _check_int(DEFAULT_IN_CHANNELS if in_channels is None else in_channels, "in_channels", None, 1)
    return build_stack(_resolve_depthwise(layers, c_in), input_size, c_in, name, rank)


def explicit_rank(data: dict, input_size, rank):
    """(rank, input_size) of a stack or graph object, explicit arguments first.

    With an explicit rank, the file's size list of another length counts as
    one number when all its axes agree (else input_axes names the mismatch).
    """
    if rank is None:
        rank = data.get("rank")
        if rank is not None:
            check_rank(rank)
        elif (isinstance(data.get("input_size"), list) and len(data["input_size"]) in RANKS
              and not isinstance(input_size, (list, tuple))):
            rank = len(data["input_size"])  # the file's size list sets the rank; a flag's number fills it
    if input_size is None:
        input_size = data.get("input_size")
        if isinstance(input_size, list) and rank is not None and len(input_size) != rank \
                and len(set(input_size)) == 1:
            input_size = input_size[0]
    return rank, input_size


def load_stack(source, input_size=None, in_channels=None, rank=None) -> Stack:
    """A compact string, a path to a JSON stack file, or an already-parsed list/dict."""
    if isinstance(source, Stack):
        if input_size is None and in_channels is None and rank is None:
            return source
        raws = [_layer_to_raw(layer) for layer in source.layers]
        if rank is None and not isinstance(input_size, (list, tuple)):
            rank = source.rank  # one number: that length on each of the stack's axes
        if input_size is None:
            input_size = list(source.input_size)
        return build_stack(raws, input_size, in_channels or source.in_channels, source.name, rank)
    if isinstance(source, (list, dict)):
        return parse_json(source, input_size, in_channels, rank=rank)
    if isinstance(source, Path) or (isinstance(source, str) and looks_like_path(source)):
        path = Path(source)
        return parse_json(read_user_json(path, "stack"), input_size, in_channels, name=path.stem, rank=rank)
    return parse_compact(source, input_size, in_channels, rank)


def looks_like_path(text: str) -> bool:
    """Whether a STACK argument names a file: '.json', a '/', or an existing file. Never raises:
    a string too long to be a file name (a 2,000-layer stack) is a stack string."""
    if text.endswith(".json") or "/" in text:
        return True
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # too long for a file name, NUL bytes: a stack string then
        return False


_looks_like_path = looks_like_path  # the old private name (graph.py)


def _layer_to_raw(layer: Layer) -> dict:
    raw = {"type": layer.type, "kernel": list(layer.kernel), "stride": list(layer.stride),
           "padding": list(layer.padding)}
    if layer.is_conv:
        raw.update(dilation=list(layer.dilation), out_channels=layer.out_channels,
                   groups=layer.groups, bias=layer.bias)
    else:
        raw["ceil_mode"] = layer.ceil_mode
    return raw
