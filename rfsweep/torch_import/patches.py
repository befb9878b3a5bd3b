"""Patch unfold and fold (MobileViT): a map's positions moved into the batch and back.

MobileViT cuts the map into p x p patches and attends across patches at one offset: a reshape
puts (image, offset in the patch) in the batch and the patches in the token dim, and the fold
undoes it. The views in between have no role per dim (one dim holds batch, channels and block
rows together), so they are followed *concretely*: a scrambled value carries an index tensor
giving, for every element, its flat position in the map the unfold started from. After each
view / reshape / permute the index is matched against two layouts:

- the map again (the index is 0, 1, 2, ... in the map's shape): the fold is complete;
- patches as tokens, (rows, tokens, channels): every row holds one image and one offset r, its
  tokens are exactly the positions = r modulo the patch size. Attention over the tokens then
  reads every unit at its own offset: a `global` node with `period` (graph.py).

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
_WHY = ("it moves the map into the batch (a patch unfold): only view, reshape, permute and transpose are "
        "followed until the layout is patches as tokens (rows = image x offset, tokens = patches, channels "
        "last) or the map again")


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


def is_plain_map(x: Val) -> bool:
    nd = x.meta.dim()
    return (x.hw is not None and x.tok is None and x.pending is None and not x.fine and x.merged is None
            and x.batch == 0 and x.chans == (1,) and x.hw == tuple(range(2, nd)))


def scramble(x: Val) -> Val:
    """The value as a scrambled one: from a plain map, or from patches as tokens (the fold)."""
    if x.patches is not None:
        period, where, source = x.patches
        channels = int(x.meta.shape[-1])
        b, s = where // _spatial(source), where % _spatial(source)
        index = (b[..., None] * channels + np.arange(channels)) * _spatial(source) + s[..., None]
        return Val(x.node, x.meta, None, (), False, scrambled=(index, source, channels))
    channels = int(x.meta.shape[1])
    index = np.arange(x.meta.numel()).reshape(tuple(x.meta.shape))
    return Val(x.node, x.meta, None, (), False, scrambled=(index, x, channels))


def apply(b, name, x: Val, move, out, note) -> Val:
    """A view (`move` on the index tensor) of a scrambled value, matched against the known layouts."""
    index, source, channels = x.scrambled
    index = move(index)
    if tuple(index.shape) != tuple(out.shape):
        raise _fail(note, name, "the view's shape does not follow (a patch unfold)")
    spatial_sizes = tuple(int(source.meta.shape[d]) for d in source.hw)
    map_shape = (int(source.meta.shape[0]), channels, *spatial_sizes)
    if tuple(index.shape) == map_shape and bool((index.ravel() == np.arange(index.size)).all()):
        return Val(x.node, out, source.hw, (1,))  # the fold is complete: the map again
    tokens = _as_tokens(index, source, channels)
    if tokens is not None:
        period, where, grid = tokens
        return Val(x.node, out, None, (2,), True, tok=(1, 0, *grid), patches=(period, where, source))
    return replace(x, meta=out, scrambled=(index, source, channels))


def _spatial(source: Val) -> int:
    return math.prod(int(source.meta.shape[d]) for d in source.hw)


def _as_tokens(index, source: Val, channels: int):
    """(period per axis, rows x tokens -> flat b*S + s, (tokens per row, 1)) when index is patches as
    tokens, else None."""
    if index.ndim != 3 or index.shape[2] != channels:
        return None
    size = _spatial(source)
    b, rest = index // (channels * size), index % (channels * size)
    c, s = rest // size, rest % size
    if not bool((c == np.arange(channels)).all()) or not bool((b == b[..., :1]).all()) \
            or not bool((s == s[..., :1]).all()):
        return None
    b, s = b[..., 0], s[..., 0]
    rows, n = b.shape
    sizes = [int(source.meta.shape[d]) for d in source.hw]
    coords = np.unravel_index(s, tuple(sizes))
    period = []
    for axis, n_axis in zip(coords, sizes):
        distinct = len(np.unique(axis[0]))
        if n_axis % distinct:
            return None
        period.append(n_axis // distinct)
    if math.prod(period) * n != size or rows != int(source.meta.shape[0]) * math.prod(period):
        return None
    offsets = np.stack([axis % p for axis, p in zip(coords, period)], axis=-1)  # rows x tokens x axes
    if not bool((offsets == offsets[:, :1]).all()) or not bool((b == b[:, :1]).all()):
        return None
    for row in range(rows):  # every position of the row's offset class once
        if len(np.unique(s[row])) != n:
            return None
    keys = b[:, 0] * math.prod(period) + sum(
        offsets[:, 0, a] * math.prod(period[a + 1:]) for a in range(len(period)))
    if len(np.unique(keys)) != rows:
        return None
    return tuple(period), b * size + s, (n, 1)


def global_fields(x: Val) -> dict:
    """The `period` of a global node reading x's tokens (nothing on an ordinary token layout)."""
    if x.patches is None or all(p == 1 for p in x.patches[0]):
        return {}
    return {"period": list(x.patches[0])}
