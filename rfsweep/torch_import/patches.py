"""Patch unfold and fold (MobileViT), window partition and reverse (Swin, TinyViT): a map's positions
moved into the batch and back.

MobileViT cuts the map into p x p patches and attends across patches at one offset: a reshape
puts (image, offset in the patch) in the batch and the patches in the token dim, and the fold
undoes it. The views in between have no role per dim (one dim holds batch, channels and block
rows together), so they are followed *concretely*: a scrambled value carries an index tensor
giving, for every element, its flat position in the map the unfold started from. After each
view / reshape / permute the index is matched against these layouts:

- the map again, channels first or last (the index is 0, 1, 2, ... in that order): the fold is done;
- patches as tokens, (rows, tokens, channels): every row holds one image and one offset r, its
  tokens are exactly the positions = r modulo the patch size. Attention over the tokens then
  reads every unit at its own offset: a `global` node with `period` (graph.py);
- windows as tokens: every row holds one image and one tile of w units per axis, from a multiple
  of w: attention reads the unit's tile, a `global` node with `window`.

Anything else done to a scrambled value is refused with the op and the module path.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .values import Val, _fail

_VIEWS = ("view", "reshape", "flatten", "unflatten", "view_as", "reshape_as", "permute", "transpose",
          "swapaxes", "swapdims", "contiguous", "clone", "detach", "to", "float", "double", "half", "type",
          "type_as")
_WHY = ("it moves the map into the batch (a patch unfold or a window partition): only view, reshape, permute "
        "and transpose are followed until the layout is (rows, tokens, channels) with one tile or one offset "
        "class of one image per row, or the map again")


def check(args, key: str, note, name: str) -> None:
    """Refuse any op but a view on a scrambled value."""
    if key not in _VIEWS and any(isinstance(a, Val) and a.scrambled is not None for a in _flat(args)):
        raise _fail(note, name, _WHY)


def _flat(obj):
    if isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _flat(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _flat(item)
    else:
        yield obj


def can_scramble(x: Val) -> bool:
    """A map in any layout of batch, channel, spatial and block-offset dims (NCHW, channels-last, the
    blocks of a window partition), or patches as tokens (the fold)."""
    if x.patches is not None:
        return True
    return x.hw is not None and x.tok is None and x.pending is None and x.merged is None


def scramble(x: Val) -> Val:
    """The value as a scrambled one: every element's flat position (b*C + c)*S + s in the map."""
    if x.patches is not None:
        _, _, where, geometry = x.patches
        channels = int(x.meta.shape[-1])
        size = math.prod(geometry[1])
        b, s = where // size, where % size
        index = (b[..., None] * channels + np.arange(channels)) * size + s[..., None]
        geometry = (*geometry[:2], x.plain)  # per-token ops since the unfold keep their channels in order
        return Val(x.node, x.meta, None, (), False, scrambled=(index, geometry, channels))
    shape = tuple(int(n) for n in x.meta.shape)
    fine = dict(x.fine)
    axes = "DHW"[-len(x.hw):]
    sizes = []
    for d, axis in zip(x.hw, axes):  # a block dim and, after a split, its offset dim (size f each)
        offset = next((e for e, role in fine.items() if role == axis.lower()), None)
        sizes.append(shape[d] * (shape[offset] if offset is not None else 1))
    channels = math.prod(shape[d] for d in x.chans)
    grids = np.ix_(*(np.arange(n) for n in shape))
    b = grids[x.batch]
    c = 0
    for d in x.chans:  # channel dims in order: the channel index, row-major
        c = c * shape[d] + grids[d]
    s = 0
    for a, (d, axis) in enumerate(zip(x.hw, axes)):
        offset = next((e for e, role in fine.items() if role == axis.lower()), None)
        coordinate = grids[d] * (shape[offset] if offset is not None else 1) + (grids[offset] if offset is not None
                                                                                 else 0)
        s = s * sizes[a] + coordinate
    index = np.broadcast_to((b * channels + c) * math.prod(sizes) + s, shape).copy()
    geometry = (shape[x.batch], tuple(sizes), x.plain and len(x.chans) == 1)  # plain: c is the node's channel
    return Val(x.node, x.meta, None, (), False, scrambled=(index, geometry, channels))


def apply(b, name, x: Val, move, out, note) -> Val:
    """A view (`move` on the index tensor) of a scrambled value, matched against the known layouts."""
    index, geometry, channels = x.scrambled
    index = move(index)
    if tuple(index.shape) != tuple(out.shape):
        raise _fail(note, name, "the view's shape does not follow (a patch unfold)")
    batch, sizes, plain = geometry
    canonical = np.arange(index.size).reshape(batch, channels, *sizes)
    rank = len(sizes)
    if index.shape == canonical.shape and bool((index == canonical).all()):  # the fold is complete: the map
        return Val(x.node, out, tuple(range(2, 2 + rank)), (1,), plain)
    last = canonical.transpose(0, *range(2, 2 + rank), 1)
    if index.shape == last.shape and bool((index == last).all()):  # the map again, channels-last
        return Val(x.node, out, tuple(range(1, 1 + rank)), (rank + 1,), plain)
    tokens = _as_tokens(index, geometry, channels)
    if tokens is not None:
        kind, dims, where = tokens
        return Val(x.node, out, None, (2,), geometry[2], tok=(1, 0, where.shape[1], 1),
                   patches=(kind, dims, where, geometry))
    return replace(x, meta=out, scrambled=(index, geometry, channels))


def _as_tokens(index, geometry, channels: int):
    """("period" or "window", per-axis sizes, rows x tokens -> flat b*S + s) when index is rows of
    tokens of one image each, channels last, every row all units of one offset class (period p: the
    units = r modulo p) or of one tile (window w: the w units from a multiple of w), else None."""
    if index.ndim != 3 or index.shape[2] != channels:
        return None
    batch, sizes, _ = geometry
    size = math.prod(sizes)
    b, rest = index // (channels * size), index % (channels * size)
    c, s = rest // size, rest % size
    if not bool((c == np.arange(channels)).all()) or not bool((b == b[..., :1]).all()) \
            or not bool((s == s[..., :1]).all()):
        return None
    b, s = b[..., 0], s[..., 0]
    rows, n = b.shape
    if not bool((b == b[:, :1]).all()) or any(len(np.unique(row)) != n for row in s):
        return None  # a row mixes images, or repeats a unit
    coords = np.unravel_index(s, tuple(sizes))
    shapes = []  # per axis {"window": w, "period": p} for the readings that fit every row
    for axis, n_axis in zip(coords, sizes):
        distinct = len(np.unique(axis[0]))
        if n_axis % distinct:
            return None
        lo, hi, period = axis.min(axis=1), axis.max(axis=1), n_axis // distinct
        fits = {}
        if bool((hi - lo + 1 == distinct).all()) and bool((lo % distinct == 0).all()):
            fits["window"] = distinct  # a tile: the `distinct` units from a multiple of it
        if bool((axis % period == axis[:, :1] % period).all()):
            fits["period"] = period  # every unit at one offset modulo the period
        shapes.append(fits)
    for kind in ("window", "period"):
        if all(kind in fits for fits in shapes):
            dims = tuple(fits[kind] for fits in shapes)
            keys = b[:, 0]
            for axis, n_axis, d in zip(coords, sizes, dims):
                keys = keys * n_axis + (axis[:, 0] // d * d if kind == "window" else axis[:, 0] % d)
            if math.prod(sizes) * batch != rows * n or len(np.unique(keys)) != rows:
                return None
            whole = dims == (tuple(sizes) if kind == "window" else (1,) * len(sizes))
            return ("whole" if whole else kind), dims, b * size + s
    return None


def global_fields(x: Val) -> dict:
    """The `period` or `window` of a global node reading x's tokens (nothing on an ordinary layout)."""
    if x.patches is None or x.patches[0] == "whole":
        return {}
    return {x.patches[0]: list(x.patches[1])}
