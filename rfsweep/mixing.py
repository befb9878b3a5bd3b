"""Attention and gates in the graph's arithmetic: the `global` node (every unit reads every unit; with
a `period`, the units at its own offset, as MobileViT's attention across patches; with a `window`,
its own tile, as Swin's first block and TinyViT), merges of global maps, a squeeze-excitation gate
that makes a merge global, and the window that settles a period.
"""

from __future__ import annotations

from dataclasses import replace

from . import arithmetic, periodic
from .errors import RfsweepError
from .facts import Facts, periodic_step
from .jit import plain_python
from .layers import _check_int

out_size = plain_python(arithmetic.out_size)


def settle_patch(f: Facts, where: str, kernel, stride, dilation, pads) -> dict:
    """A window after attention across patches at one offset: a 1x1 stride-1 window keeps each unit's
    offset; a window whose every unit reads real positions at every offset modulo the period gives
    each unit the whole interval; any other window mixes offsets unevenly and is refused."""
    patch, fixed = list(f.patch), list(f.fixed)
    for a, axis in enumerate(f.patch):
        if axis is None:
            continue
        period, lo, hi = axis
        if kernel[a] == 1 and stride[a] == 1 and pads[a] == (0, 0):
            continue
        n_out = out_size(f.n[a], kernel[a], stride[a], pads[a][0], pads[a][1], dilation[a], False)
        for i in range(max(n_out, 0)):
            read = {(i * stride[a] - pads[a][0] + j * dilation[a]) % period for j in range(kernel[a])
                    if 0 <= i * stride[a] - pads[a][0] + j * dilation[a] < f.n[a]}
            if len(read) < period:
                raise RfsweepError(f"{where}: after attention across patches at one offset (period {period}), "
                                   f"its unit {i} reads only some offsets of the patch, so its field is neither "
                                   "one offset's nor the whole map's; not supported")
        fixed[a] = (min(fixed[a][0], lo), max(fixed[a][1], hi))
        patch[a] = None
    return {"fixed": tuple(fixed), "patch": None if all(p is None for p in patch) else tuple(patch)}


def gate_sees_everything(ins: list[Facts], broadcast: list[bool], moving: list[Facts]) -> bool:
    """Whether a broadcast 1x1 input (a squeeze-excitation gate) sees, on every axis, everything any unit
    of the moving inputs sees: then every output unit's field is that same whole extent, the merge is
    global from here on (as attention is), and start + i*jump no longer places a unit's window."""
    gates = [f for f, fixed in zip(ins, broadcast) if fixed and f.moving]
    if not gates or any(f.fields is not None for f in moving):
        return False
    for gate in gates:
        covers = True
        for a in range(len(gate.n)):
            rf, start = gate.seen(a)
            lo, hi = start - (rf - 1) / 2.0, start + (rf - 1) / 2.0
            covers &= all(lo <= e[0] and e[1] <= hi for e in (whole_extent(f, a) for f in moving))
        if covers:
            return True
    return False


def first_global(ins: list[Facts]):
    return next((f.global_from for f in ins if f.global_from is not None), None)


def global_merge(ins: list[Facts], main: Facts, channels: int) -> Facts:
    """A merge of global maps: the union of their (fixed) fields, the narrowest of their widths."""
    fixed, fixed_min = [], []
    for a in range(len(main.n)):
        fixed.append((min(f.fixed[a][0] for f in ins), max(f.fixed[a][1] for f in ins)))
        fixed_min.append(min(f.fixed_min[a] for f in ins))
    return replace(main, channels=channels, params=0, macs=0, layer=None, pads=None, depends_on_input=False,
                   fixed=tuple(fixed), fixed_min=tuple(fixed_min), global_from=first_global(ins),
                   patch=merged_patch(ins))


def merged_patch(ins: list[Facts]):
    """The patch classes of a merge: per axis the union of the inputs' whole intervals."""
    if all(f.patch is None for f in ins):
        return None
    out = []
    for a in range(len(ins[0].n)):
        axes = [f.patch[a] for f in ins if f.patch is not None and f.patch[a] is not None]
        if len({axis[0] for axis in axes}) > 1:
            raise RfsweepError(f"a merge of attention across patches with different periods "
                               f"({sorted({axis[0] for axis in axes})}) is not supported")
        out.append((axes[0][0], min(x[1] for x in axes), max(x[2] for x in axes)) if axes else None)
    return tuple(out)


def whole_extent(f: Facts, a: int) -> tuple:
    """(lo, hi, narrowest width) of the union of every unit's field of map f along axis a."""
    n, jump = f.n[a], f.jump[a]
    if f.patch is not None and f.patch[a] is not None:  # unit 0 sees one offset; all units, every offset
        lo, hi, narrow = whole_extent(replace(f, patch=None), a)
        return min(lo, f.patch[a][1]), max(hi, f.patch[a][2]), narrow
    if not f.moving:
        return f.fixed[a][0], f.fixed[a][1], f.fixed_min[a]
    if f.fields is not None:  # past a decoder or window attention: phase by phase
        lo, hi = _field_extent(f.fields[a], n)
        narrow = min(h - l + 1 for l, h in (_field_extent(p, n) for p in f.path_fields(a)))
        if f.fixed[a] is not None:
            lo, hi = min(lo, f.fixed[a][0]), max(hi, f.fixed[a][1])
        if f.fixed_min[a] is not None:
            narrow = min(narrow, f.fixed_min[a])
        return lo, hi, narrow
    # unit i sees [start + i*jump - (rf-1)/2, start + i*jump + (rf-1)/2], i = 0 .. n-1
    lo, hi = f.start[a] - (f.rf[a] - 1) / 2.0, f.start[a] + (n - 1) * jump + (f.rf[a] - 1) / 2.0
    if f.fixed[a] is not None:
        lo, hi = min(lo, f.fixed[a][0]), max(hi, f.fixed[a][1])
    narrow = (n - 1) * jump + f.rf_min[a]  # the union of every unit's narrowest moving path
    if f.fixed_min[a] is not None:  # or a gate's path, the same for every unit
        narrow = min(narrow, f.fixed_min[a])
    return lo, hi, narrow


def _field_extent(field: periodic.Field, n: int) -> tuple:
    """(lo, hi) of the union of units 0 .. n-1's intervals of a periodic field."""
    ends = [field.interval(o) for o in range(min(field.period, n))]
    ends += [field.interval(o) for o in range(max(n - field.period, 0), n)]
    ends = [e for e in ends if e is not None]
    return min(e[0] for e in ends), max(e[1] for e in ends)


def _window_node(node: dict, ins: list[Facts], where: str) -> Facts:
    """Attention inside non-overlapping w-unit tiles (Swin-style windows, TinyViT): unit o reads the
    units of its tile, w*floor(o/w) .. w*floor(o/w) + w - 1, per axis: a pixel unshuffle's reads,
    then a pixel shuffle's (the periodic fields of decoders), exactly."""
    f = ins[0]
    rank = len(f.n)
    value = node["window"]
    sizes = value if isinstance(value, list) else [value] * rank
    if len(sizes) != rank or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sizes):
        raise RfsweepError(f"{where}: window must be a positive int or {rank} of them (one per axis), got {value!r}")
    if any(g.n != f.n or g.fields != f.fields or (g.rf, g.start, g.fixed) != (f.rf, f.start, f.fixed)
           for g in ins[1:]):
        raise RfsweepError(f"{where}: window attention whose inputs (queries, keys, values) see different "
                           "fields is not supported")
    if f.patch is not None or not f.moving:
        raise RfsweepError(f"{where}: window attention after a global node is not supported")
    for a in range(rank):
        if f.n[a] % sizes[a]:
            raise RfsweepError(f"{where}: window {sizes[a]} does not divide the map's {f.n[a]} units")
    tiles = tuple(f.n[a] // sizes[a] for a in range(rank))
    mid = Facts(**periodic_step(f, tiles, [periodic.gather(w) for w in sizes], where, node["name"]),
                channels=f.channels, spatial=f.spatial)
    geometry = periodic_step(mid, f.n, [periodic.nearest(w) for w in sizes], where, node["name"])
    channels = f.channels
    if "out_channels" in node:
        channels = _check_int(node["out_channels"], f"{where}: out_channels", None, 1)
    return Facts(**geometry, channels=channels, spatial=f.spatial)


def global_node(node: dict, ins: list[Facts], where: str) -> Facts:
    """Every output unit reads every unit of every input map (attention: queries, keys, values):
    its field is the union of all their units' fields (fixed: it does not move with the unit), here
    and on every narrowest path. The output has the first input's (the queries') size.

    With `period` p (per axis), a unit reads only the units at its own offset modulo p (MobileViT's
    attention across patches): unit 0's field is the union over offset 0, unit i's that shifted by
    (i mod p) jumps, and `patch` keeps the whole interval for the first window that mixes offsets."""
    f = ins[0]
    if "window" in node:
        if "period" in node:
            raise RfsweepError(f"{where}: a global node takes a period or a window, not both")
        return _window_node(node, ins, where)
    period = _period(node, len(f.n), where)
    if any(g.fields is not None for g in ins) and any(p > 1 for p in period):
        raise RfsweepError(f"{where}: attention across patches after a decoder node (per-phase fields) is "
                           "not supported")
    fixed, fixed_min, var, mean, patch = [], [], [], [], []
    for a in range(len(f.n)):
        extents = [whole_extent(g, a) for g in ins]
        lo, hi = min(e[0] for e in extents), max(e[1] for e in extents)
        narrow = min(e[2] for e in extents)
        if period[a] > 1:
            patch.append((period[a], lo, hi))
            first = [_offset_zero_extent(g, a, period[a], where) for g in ins]
            lo, hi, narrow = min(e[0] for e in first), max(e[1] for e in first), min(e[2] for e in first)
        else:
            patch.append(None)
        fixed.append((lo, hi))
        fixed_min.append(narrow)
        width = hi - lo + 1
        var.append((width * width - 1) / 12.0)  # uniform over the whole field
        mean.append((lo + hi) / 2.0)
    channels = f.channels
    if "out_channels" in node:
        channels = _check_int(node["out_channels"], f"{where}: out_channels", None, 1)
    patched = any(axis is not None for axis in patch)
    return replace(f, channels=channels, params=0, macs=0, layer=None, pads=None, depends_on_input=False,
                   var=tuple(var), mean=tuple(mean), fixed=tuple(fixed), fixed_min=tuple(fixed_min),
                   moving=False, patch=tuple(patch) if patched else None, fields=None, paths=None, origin=None,
                   global_from=first_global(ins) or (None if patched else node["name"]))


def _period(node: dict, rank: int, where: str) -> tuple:
    value = node.get("period", 1)
    values = value if isinstance(value, list) else [value] * rank
    if len(values) != rank or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise RfsweepError(f"{where}: period must be a positive int or {rank} of them (one per axis), got {value!r}")
    return tuple(values)


def _offset_zero_extent(g: Facts, a: int, period: int, where: str) -> tuple:
    """(lo, hi, narrowest width) of the union of the fields of g's units at offset 0 modulo period."""
    if g.patch is not None and g.patch[a] is not None and g.patch[a][0] != period:
        raise RfsweepError(f"{where}: attention across patches of period {period} after one of period "
                           f"{g.patch[a][0]} is not supported")
    if g.n[a] % period:
        raise RfsweepError(f"{where}: period {period} does not divide the map's {g.n[a]} units")
    if not g.moving:  # a global map: one interval, or unit 0's at offset 0 of the same period
        return g.fixed[a][0], g.fixed[a][1], g.fixed_min[a]
    last = g.n[a] - period  # units 0, p, 2p, ..., n - p
    lo, hi = g.start[a] - (g.rf[a] - 1) / 2.0, g.start[a] + last * g.jump[a] + (g.rf[a] - 1) / 2.0
    narrow = last * g.jump[a] + g.rf_min[a]
    if g.fixed[a] is not None:
        lo, hi = min(lo, g.fixed[a][0]), max(hi, g.fixed[a][1])
    if g.fixed_min[a] is not None:
        narrow = min(narrow, g.fixed_min[a])
    return lo, hi, narrow
