"""What a node's output units see (`Facts`), and the steps shared by the graph's node kinds and the
attention nodes (`mixing.py`): per-axis sizes, and a step through periodic reads (decoders, windows).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import arithmetic, periodic
from .errors import RfsweepError
from .jit import plain_python
from .layers import Layer

union_interval = plain_python(arithmetic.union_interval)


@dataclass
class Facts:
    """What one node's output map is: per-axis (h, w) tuples, then channels and costs.

    `rf`/`start` describe the part of the field that moves with the unit
    (unit i sees it shifted by i*jump). A broadcast input (a squeeze-excitation
    gate: one vector for every unit) adds a part that does not move: `fixed`,
    per axis an interval (lo, hi) of input pixels or None, passed on unchanged
    by later layers. What a unit sees is the union of both (`seen`). Likewise
    `rf_min` is the narrowest moving path and `fixed_min` the narrowest path
    through a gate (a width that no later layer grows); `narrowest` is the smaller.
    """

    n: tuple
    rf: tuple
    rf_min: tuple
    jump: tuple
    start: tuple
    start_min: tuple
    var: tuple  # ERF variance (uniform weights)
    mean: tuple  # ERF centre: equals start on a chain, differs after unequal merges
    channels: int
    params: int = 0
    macs: int = 0
    spatial: bool = True
    layer: Layer | None = None
    pads: tuple | None = None  # ((top, bottom), (left, right)) as resolved for this input size
    depends_on_input: bool = False  # TF 'SAME' padding that changes with the input size
    fixed: tuple = (None, None)
    fixed_min: tuple = (None, None)
    moving: bool = True  # False after a global node on every path: no part of the field moves
    global_from: str | None = None  # the first global node on some path to here
    fields: tuple | None = None  # per axis a periodic.Field once a decoder node is upstream, else None
    paths: tuple | None = None  # per axis the narrowest paths' Fields (rf_min), with `fields`
    origin: str | None = None  # the decoder node that first made a unit's field depend on its phase
    # after a global node with a period (MobileViT's attention across patches at one offset): per axis
    # None or (period, lo, hi), the interval every unit reaches once a window mixes all offsets; until
    # then `fixed` is unit 0's field (offset 0), and unit i's is shifted by its offset times the jump
    patch: tuple | None = None

    def seen(self, a: int) -> tuple:
        """(rf, start) of everything unit 0 sees along axis a: the moving and the fixed part."""
        if self.fixed[a] is None:
            return self.rf[a], self.start[a]
        lo, hi = self.fixed[a]
        if not self.moving:
            return int(round(hi - lo + 1)), (lo + hi) / 2.0
        return union_interval(self.start[a], self.rf[a], (lo + hi) / 2.0, hi - lo + 1)

    def narrowest(self, a: int) -> int:
        """rf_min along axis a over every path, gated ones included."""
        gate = self.fixed_min[a]
        if not self.moving:
            return gate
        return self.rf_min[a] if gate is None else min(self.rf_min[a], gate)

    def seen_pair(self) -> tuple:
        return tuple(zip(*(self.seen(a) for a in range(len(self.n)))))  # ((rf_h, rf_w), (start_h, start_w))

    def carried(self) -> dict:
        """The fields a layer or pass-through node hands on unchanged (the fixed parts)."""
        return {"fixed": self.fixed, "fixed_min": self.fixed_min, "origin": self.origin,
                "fields": self.fields, "paths": self.paths, "moving": self.moving,
                "global_from": self.global_from, "patch": self.patch}

    def field(self, a: int) -> periodic.Field:
        """The moving field along axis a, as a periodic Field (one phase on ordinary maps)."""
        if self.fields is not None:
            return self.fields[a]
        return periodic.ordinary(self.rf[a], self.start[a], self.jump[a], self.mean[a], self.var[a])

    def path_fields(self, a: int) -> list:
        if self.paths is not None:
            return list(self.paths[a])
        return [periodic.ordinary(self.rf_min[a], self.start_min[a], self.jump[a])]


WINDOW_KEYS = ("n", "rf", "jump", "var", "rf_min", "start", "start_min", "mean")


def check_size(n, f: Facts, where: str) -> None:
    if min(n) < 1:
        size = f.n[0] if len(set(f.n)) == 1 else size_text(f.n)
        raise RfsweepError(f"{where}: output size < 1 pixel (input to this layer is {size})")


def size_text(n) -> str:
    """A map's size per axis as people write it: 56x28 (one number at rank 1)."""
    return "x".join(map(str, n))


def axes_product(values) -> int:
    out = 1
    for value in values:
        out *= value
    return out


def jump_value(jump):
    """An exact jump as a plain number: int where it is one, else float (the fraction is reported beside)."""
    return int(jump) if jump.denominator == 1 else float(jump)


def periodic_facts(n, fields, paths, origin) -> dict:
    """Facts' per-axis figures from periodic fields: rf the largest field, start/ERF of unit 0.

    Where every axis is back to one phase the fields are dropped (the ordinary
    arithmetic then takes over, exactly: with one phase the narrowest path
    field fits, translated, inside every other).
    """
    out = {key: [] for key in ("rf", "jump", "var", "rf_min", "start", "start_min", "mean")}
    for field, candidates in zip(fields, paths):
        first = next(r for r, lo in enumerate(field.lo) if lo is not None)
        narrow = min(candidates, key=lambda c: c.rf)
        narrow_first = next(r for r, lo in enumerate(narrow.lo) if lo is not None)
        for key, value in (("rf", field.rf), ("jump", jump_value(field.jump)), ("var", field.var[first]),
                           ("rf_min", narrow.rf), ("start", field.start(first)),
                           ("start_min", narrow.start(narrow_first)), ("mean", field.mean[first])):
            out[key].append(value)
    ordinary = all(f.period == 1 and f.lo[0] is not None for f in fields) and all(
        len(c) == 1 for c in paths)
    return {"n": tuple(n), **{key: tuple(values) for key, values in out.items()},
            "fields": None if ordinary else tuple(fields),
            "paths": None if ordinary else tuple(tuple(c) for c in paths),
            "origin": None if ordinary else origin}


def periodic_step(f: Facts, n, reads, where: str, name) -> dict:
    """Apply per-axis `periodic.Reads` to the field of every path (rf) and of each narrowest path."""
    try:
        fields = tuple(periodic.apply(f.field(a), reads[a]) for a in range(len(f.n)))
        paths = tuple(periodic.prune([periodic.apply(p, reads[a]) for p in f.path_fields(a)])
                      for a in range(len(f.n)))
    except periodic.PeriodError as exc:
        raise RfsweepError(f"{where}: {exc}") from None
    origin = f.origin if f.origin is not None else name
    return {**periodic_facts(n, fields, paths, origin), "fixed": f.fixed, "fixed_min": f.fixed_min,
            "global_from": f.global_from}
