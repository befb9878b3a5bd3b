"""Stack against large kernel (`rfsweep compare`): every stack of small kernels that reaches an RF,
beside the one kernel that does, with their params and MACs.

Nothing here re-derives receptive fields or costs: `compare` builds compact stack strings and
evaluates every one of them with `rfsweep.analyze` (the one arithmetic).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from .errors import RfsweepError
from .explain import analyze
from .layers import _check_int, check_rank, load_stack

MAX_COMPARE_DEPTH = 32
MAX_COMPARE_CANDIDATES = 20_000
DEFAULT_COMPARE_KERNELS = (3, 5, 7)


def _stack_text(layers: Sequence[tuple[int, int]], channels: int) -> str:
    """Compact string of stride-1, 'same'-padded convs: c3x64, c3d2x64, ..."""
    return ",".join(f"c{k}" + (f"d{d}" if d > 1 else "") + f"x{channels}" for k, d in layers)


def _multisets(options: list[tuple[int, int]], growth: int, max_depth: int):
    """Non-increasing sequences of (kernel, dilation) options whose RF growth sums to `growth`.

    `options` is sorted by growth d*(k-1), largest first; every multiset of
    layers is produced exactly once, in that order.
    """
    prefix: list[tuple[int, int]] = []

    def rec(first: int, left: int, depth_left: int):
        if left == 0:
            yield tuple(prefix)
            return
        for i in range(first, len(options)):
            k, d = options[i]
            g = d * (k - 1)
            if g * depth_left < left:  # no later option grows more than this one
                break
            if g <= left:
                prefix.append(options[i])
                yield from rec(i, left - g, depth_left - 1)
                prefix.pop()

    yield from rec(0, growth, max_depth)


def default_kernels(rf: int) -> list[int]:
    """Kernels `compare` stacks unless told: the usual odd sizes 3, 5, 7 that are smaller than R.

    3 and 5 for R = 7 (the classic three-3x3-vs-one-7x7 table); 3, 5, 7 from R = 9 on, so a
    larger R still has runner-ups within --max-depth layers.
    """
    return [k for k in DEFAULT_COMPARE_KERNELS if k < rf] or [3]


def compare(rf: int, channels: int = 64, max_depth: int = 4, kernels: Iterable[int] | None = None,
            dilations: Iterable[int] = (1,), input_size: int = 56, in_channels: int | None = None,
            rank: int = 2) -> list[dict]:
    """One conv with kernel `rf` next to every stack of smaller convs with the same RF.

    All convs have stride 1, 'same' padding (d*(k-1)//2) and `channels` out
    channels; the first takes `in_channels` (default: `channels`). Candidates
    take kernels from `kernels` and dilations from `dilations`, at most
    `max_depth` layers, and their RF is exactly `rf` (kernel-1 layers, which
    add no RF, are left out). At stride 1 the order of layers changes neither
    RF, params nor ERF, so each multiset of layers appears once, largest
    kernel first; when `in_channels` differs from `channels` the first layer
    (the one that sees `in_channels`) is varied too. (MACs of even kernels,
    which shrink the map, can depend on the order; the order shown is used.)

    `rank` (1, 2 or 3) is the number of spatial axes, every conv the same on
    each: the single conv has rf^rank taps per channel pair (R at rank 1,
    RxRxR at rank 3) and the input is input_size on every axis.

    kernels=None: default_kernels(rf). Depth is bounded by `max_depth`: a
    deeper stack of small kernels can be cheaper than the best row shown.

    Every row is evaluated with `rfsweep.analyze`: stack (compact string),
    depth (layers = nonlinearities), rf, params, macs, flops, erf_std,
    erf_ratio, params_ratio and macs_ratio against the single conv, single
    (True for that conv) and best (True for the cheapest row). Rows are sorted
    by params, then depth. MACs count one multiply-accumulate as 1 (bias adds
    not counted); FLOPs = 2*MACs.
    """
    rf = _check_int(rf, "rf", None, 1)
    channels = _check_int(channels, "channels", None, 1)
    input_size = _check_int(input_size, "input_size", None, 1)
    rank = check_rank(rank)
    c_in = channels if in_channels is None else _check_int(in_channels, "in_channels", None, 1)
    max_depth = _check_int(max_depth, "max_depth", None, 1)
    if max_depth > MAX_COMPARE_DEPTH:
        raise RfsweepError(f"max_depth must be <= {MAX_COMPARE_DEPTH}, got {max_depth}")
    kernels = [_check_int(k, "kernels", None, 1) for k in (default_kernels(rf) if kernels is None else kernels)]
    dilations = [_check_int(d, "dilations", None, 1) for d in dilations]
    if not kernels or not dilations:
        raise RfsweepError("compare needs at least one kernel and one dilation")

    single_text = _stack_text([(rf, 1)], channels)
    single = _compare_row(single_text, 1, input_size, c_in, rank, single=True)
    options = sorted({(k, d) for k in kernels for d in dilations if k > 1},
                     key=lambda kd: (kd[1] * (kd[0] - 1), kd[0]), reverse=True)
    texts = set()
    for layers in _multisets(options, rf - 1, max_depth):
        orders = [layers]
        if c_in != channels:  # only which layer comes first can change params
            orders = [(first, *_without(layers, first)) for first in dict.fromkeys(layers)]
        for order in orders:
            texts.add((_stack_text(order, channels), len(order)))
            if len(texts) > MAX_COMPARE_CANDIDATES:
                raise RfsweepError(f"compare: more than {MAX_COMPARE_CANDIDATES:,} candidate stacks; "
                                   "lower max_depth or give fewer kernels/dilations")
    texts.discard((single_text, 1))
    rows = [single]
    for text, depth in sorted(texts):
        try:
            rows.append(_compare_row(text, depth, input_size, c_in, rank))
        except RfsweepError:  # even kernels can shrink a small input to nothing
            continue
    for row in rows:
        row["params_ratio"] = row["params"] / single["params"]
        row["macs_ratio"] = row["macs"] / single["macs"]
    rows.sort(key=lambda row: (row["params"], row["depth"], not row["single"], row["stack"]))
    for i, row in enumerate(rows):
        row["best"] = i == 0
    return rows


def _without(layers: tuple, item) -> list:
    rest = list(layers)
    rest.remove(item)
    return rest


def _compare_row(text: str, depth: int, input_size: int, in_channels: int, rank: int,
                 single: bool = False) -> dict:
    total = analyze(load_stack(text, input_size, in_channels, rank))["total"]
    return {"stack": text, "depth": depth, "rf": total["rf"], "params": total["params"],
            "macs": total["macs"], "flops": total["flops"], "erf_std": total["erf_std"],
            "erf_ratio": total["erf_ratio"], "single": single}
