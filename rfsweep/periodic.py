"""Fields that repeat with a period: what each unit sees once a decoder goes back up in resolution.

On an ordinary network unit o of a map sees the input interval of unit 0
shifted by o*jump, jump an integer. After a stride-s transposed conv or an
upsampling by s, unit o reads inputs that depend on o mod s (a transposed
conv's unit o reads ceil((o + p - d(k-1))/s) .. floor((o + p)/s)), so units no
longer are shifted copies of one another. They still repeat: per axis a
`Field` holds a period P (output units), a step Q (input pixels per period,
so jump = Q/P exactly) and, per phase r < P, the interval [lo, hi] of input
pixels unit r sees (on the unbounded input plane: never clipped by the
border). Unit r + m*P sees [lo_r + m*Q, hi_r + m*Q]. An ordinary layer is
the case P = 1 and changes nothing.

Every layer kind is described the same way (`Reads`): output unit o reads
input units T(o), each with a weight (for the uniform-weight ERF), and
T(o + period) = T(o) + step. `apply` composes a field with such reads;
`union` merges the fields of aligned inputs phase by phase. The per-layer
index arithmetic comes from `arithmetic.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

from . import arithmetic
from .jit import plain_python

MAX_PERIOD = 1 << 16  # phases kept per axis; beyond this the report would be unreadable anyway
MAX_PATHS = 64  # incomparable narrowest-path fields kept per axis for rf_min


transpose_tap_input = plain_python(arithmetic.transpose_tap_input)
transpose_tap_hits = plain_python(arithmetic.transpose_tap_hits)
interp_source = plain_python(arithmetic.interp_source)
cubic_weight = plain_python(arithmetic.cubic_weight)


class PeriodError(ValueError):
    """The field cannot be kept exactly (too many phases or paths); the caller names the node."""


@dataclass(frozen=True)
class Field:
    """Per-phase intervals (None: the unit reads no input pixel) and ERF moments of one axis.

    `mean`/`var` are None for the path fields kept for rf_min (no ERF there).
    """

    period: int
    step: int
    lo: tuple
    hi: tuple
    mean: tuple | None = None
    var: tuple | None = None

    @property
    def jump(self) -> Fraction:
        return Fraction(self.step, self.period)

    def interval(self, o: int):
        r, m = o % self.period, o // self.period
        if self.lo[r] is None:
            return None
        return self.lo[r] + m * self.step, self.hi[r] + m * self.step

    def moments(self, o: int):
        r, m = o % self.period, o // self.period
        if self.mean is None or self.mean[r] is None:
            return None
        return self.mean[r] + m * self.step, self.var[r]

    @property
    def sizes(self) -> tuple:
        return tuple(0 if lo is None else hi - lo + 1 for lo, hi in zip(self.lo, self.hi))

    @property
    def rf(self) -> int:
        """The largest field of any unit."""
        return max(self.sizes)

    def start(self, r: int = 0):
        """Centre of phase r's field (None when it reads nothing)."""
        return None if self.lo[r] is None else (self.lo[r] + self.hi[r]) / 2.0


def ordinary(rf: int, start: float, jump: int, mean=None, var=None) -> Field:
    """The field of an ordinary map: one phase, unit o sees unit 0's interval shifted by o*jump."""
    lo = int(round(start - (rf - 1) / 2.0))
    moments = (None, None) if mean is None else ((mean,), (var,))
    return Field(1, int(jump), (lo,), (lo + rf - 1,), *moments)


@dataclass(frozen=True)
class Reads:
    """Output unit o reads `taps(o)` = [(input unit, weight), ...]; taps(o + period) = taps(o) + step."""

    period: int
    step: int
    taps: Callable[[int], list]


def window(k: int, s: int, p_before: int, d: int) -> Reads:
    """A conv or pool window (and pad: k=1, crop: k=1 with p_before = -removed)."""
    return Reads(1, s, lambda o: [(o * s - p_before + t * d, 1.0) for t in range(k)])


def transposed(k: int, s: int, p: int, d: int) -> Reads:
    """A transposed conv: unit o reads the input units whose tap lands on it (phase o mod s)."""
    return Reads(s, 1, lambda o: [(transpose_tap_input(o, t, s, p, d), 1.0) for t in range(k)
                                  if transpose_tap_hits(o, t, s, p, d)])


def nearest(scale: int) -> Reads:
    """Nearest upsampling and pixel shuffle: unit o reads unit floor(o / scale)."""
    return Reads(scale, 1, lambda o: [(o // scale, 1.0)])


def gather(r: int) -> Reads:
    """Pixel unshuffle: unit o gathers units o*r .. o*r + r - 1 (into channels)."""
    return Reads(1, r, lambda o: [(o * r + j, 1.0) for j in range(r)])


def interpolate(scale: int, cubic: bool, align_corners: bool = False, n_in: int = 0, n_out: int = 0) -> Reads:
    """Bilinear / bicubic upsampling with F.interpolate's source index; zero-weight taps read nothing.

    Without align_corners the source of unit o is (o + 0.5)/scale - 0.5 whatever the
    size; with it, o*(n_in - 1)/(n_out - 1): periodic with the period of that fraction.
    """
    if align_corners:
        g = math.gcd(n_in - 1, n_out - 1) or 1
        period, step = max((n_out - 1) // g, 1), (n_in - 1) // g
    else:
        period, step = scale, 1

    def taps(o):
        num, den = interp_source(o, n_in, n_out, scale, align_corners)
        first = num // den
        frac = Fraction(num - first * den, den)
        if cubic:
            pairs = [(first + j, cubic_weight(float(frac - j))) for j in (-1, 0, 1, 2)]
        else:
            pairs = [(first, float(1 - frac)), (first + 1, float(frac))]
        return [(u, w) for u, w in pairs if w != 0.0]
    return Reads(period, step, taps)


# ------------------------------------------------------------------ composing

def apply(field: Field, reads: Reads) -> Field:
    """The field after a layer that reads `reads` of a map whose field is `field`."""
    repeat = field.period // math.gcd(reads.step, field.period)
    period = reads.period * repeat
    if period > MAX_PERIOD:
        raise PeriodError(f"the field repeats only every {period} units (more than {MAX_PERIOD})")
    step = repeat * reads.step // field.period * field.step
    lo, hi, mean, var = [], [], [], []
    with_moments = field.mean is not None
    for o in range(period):
        taps = reads.taps(o)
        spans = [span for span in (field.interval(u) for u, _ in taps) if span is not None]
        lo.append(min(a for a, _ in spans) if spans else None)
        hi.append(max(b for _, b in spans) if spans else None)
        if with_moments:
            m, v = _mixture([(field.moments(u), w) for u, w in taps])
            mean.append(m)
            var.append(v)
    moments = (tuple(mean), tuple(var)) if with_moments else (None, None)
    return canonical(Field(period, step, tuple(lo), tuple(hi), *moments))


def _mixture(parts):
    """(mean, variance) of a weighted mixture of distributions given by their moments."""
    parts = [(mv, abs(w)) for mv, w in parts if mv is not None]
    total = sum(w for _, w in parts)
    if not parts or total == 0:
        return None, None
    mean = sum(w * m for (m, _), w in parts) / total
    return mean, sum(w * (v + (m - mean) ** 2) for (m, v), w in parts) / total


def union(fields: list[Field], weights: list[float]) -> Field:
    """Where aligned paths merge, each unit sees what any input's unit sees (per phase).

    The caller has checked that the jumps agree; periods may differ (their lcm).
    ERF moments mix with the given weights (channels for concat, as the rest of rfsweep).
    """
    period = math.lcm(*(f.period for f in fields))
    if period > MAX_PERIOD:
        raise PeriodError(f"the field repeats only every {period} units (more than {MAX_PERIOD})")
    step = fields[0].jump * period
    with_moments = all(f.mean is not None for f in fields)
    lo, hi, mean, var = [], [], [], []
    for o in range(period):
        spans = [s for s in (f.interval(o) for f in fields) if s is not None]
        lo.append(min(a for a, _ in spans) if spans else None)
        hi.append(max(b for _, b in spans) if spans else None)
        if with_moments:
            m, v = _mixture([(f.moments(o), w) for f, w in zip(fields, weights)])
            mean.append(m)
            var.append(v)
    moments = (tuple(mean), tuple(var)) if with_moments else (None, None)
    return canonical(Field(period, int(step), tuple(lo), tuple(hi), *moments))


def canonical(field: Field) -> Field:
    """The same field with its smallest period (an upsampling undone by a stride is P = 1 again)."""
    p, q = field.period, field.step
    for d in range(1, p):
        if p % d or (q * d) % p:
            continue
        shift = q * d // p
        if all(_same(field, r, r + d, shift) for r in range(p - d)):
            moments = (None, None) if field.mean is None else (field.mean[:d], field.var[:d])
            return Field(d, shift, field.lo[:d], field.hi[:d], *moments)
    return field


def _same(field: Field, r: int, t: int, shift: int) -> bool:
    if field.lo[r] is None or field.lo[t] is None:
        return field.lo[r] is None and field.lo[t] is None
    if field.lo[t] != field.lo[r] + shift or field.hi[t] != field.hi[r] + shift:
        return False
    if field.mean is None:
        return True
    a, b = field.mean[r], field.mean[t]
    if a is None or b is None:
        return a is None and b is None
    return (math.isclose(b, a + shift, rel_tol=1e-12, abs_tol=1e-9)
            and math.isclose(field.var[t], field.var[r], rel_tol=1e-12, abs_tol=1e-9))


# ------------------------------------------------------------------ narrowest paths

def _contained(a: Field, b: Field) -> bool:
    """Some translation of a lies inside b at every unit: no path continuing b is narrower than a's."""
    period = math.lcm(a.period, b.period)
    low, high = -math.inf, math.inf
    for o in range(period):
        x, y = a.interval(o), b.interval(o)
        if x is None:
            continue
        if y is None:
            return False
        low, high = max(low, y[0] - x[0]), min(high, y[1] - x[1])
    return low <= high


def prune(fields: list[Field]) -> list[Field]:
    """The path fields no other path field fits inside (those can still be the narrowest later).

    Layers are monotone and commute with translation, so a path whose field
    contains a translate of another's stays at least as wide through any later layer.
    """
    kept: list[Field] = []
    for f in sorted(fields, key=lambda f: (f.rf, sum(f.sizes))):
        if not any(_contained(k, f) for k in kept):
            kept.append(f)
    if len(kept) > MAX_PATHS:
        raise PeriodError(f"more than {MAX_PATHS} incomparable paths; rf_min cannot be kept exactly")
    return kept
