"""The sweep kernel: evaluate every config_id of a range, keep the rows that pass.

`_sweep_part` walks ids in mixed-radix order like an odometer. Consecutive
ids share all but the last layer, so a prefix's state (size, RF, jump,
channels, params, MACs, ERF variance) is computed once and reused for the R
ids that differ only in the last digit. When a prefix is invalid (the map
empties, a pool at a duplicate position) or over a monotone budget (RF,
params and MACs only grow with depth), the whole block of ids below it is
skipped and counted without being visited. A stack is classified by its
first failing layer: invalid if that layer is invalid, pruned if a
constraint rejects it there.

`sweep_range` splits a range into parts, one `prange` iteration each; every
part writes its kept rows contiguously from its own offset, so no two
threads ever touch the same row and the result does not depend on the
thread count. All layer arithmetic comes from `arithmetic.py`.

The rank (1, 2 or 3 spatial axes) is a runtime argument, not a compiled
constant: the grid's layers and input are the same on every axis, so the
geometry is one axis's and only the costs change (k^rank taps over n^rank
units); one compilation serves every rank.
"""

import numpy as np
from numba import njit, prange

from . import arithmetic
from .jit import compile_module
from .odometer import skip_prefix

compile_module(arithmetic)  # the one arithmetic, compiled: kernels below inline it
from .arithmetic import CONV, axes_volume, axis_step, conv_cost, erf_ratio  # noqa: E402

OK = 0
INVALID = 1
PRUNED = 2


@njit(cache=True, nogil=True, inline="always")
def _geometry(v, n_in, rf_in, jump_in, var_in, t_k, t_s, t_d, t_p):
    """Size, RF, jump and ERF variance after layer choice v (not its channels)."""
    return axis_step(n_in, rf_in, jump_in, var_in, t_k[v], t_s[v], t_p[v], t_p[v], t_d[v], False)


@njit(cache=True, nogil=True, inline="always")
def _cost(v, units, c_in, params_in, macs_in, t_type, t_k, t_c, bias, rank):
    """Channels, params and MACs after layer choice v on an output of `units` = n^rank units.

    The grid is isotropic: a k^rank kernel over n^rank units, i.e. conv_cost with one folded axis.
    """
    if t_type[v] != CONV:
        return c_in, params_in, macs_in
    c = t_c[v]
    params, macs = conv_cost(axes_volume(t_k[v], rank), 1, c_in, c, 1, bias, units, 1)
    return c, params_in + params, macs_in + macs


@njit(cache=True, nogil=True, inline="always")
def _step(v, n_in, rf_in, jump_in, c_in, params_in, macs_in, var_in,
          t_type, t_k, t_s, t_d, t_p, t_c, t_ok, bias, rank):
    """One layer (choice row v) on an incoming state; returns (status, new state...)."""
    if not t_ok[v]:
        return INVALID, 0, 0, 0, 0, 0, 0, 0.0
    n, rf, jump, var = _geometry(v, n_in, rf_in, jump_in, var_in, t_k, t_s, t_d, t_p)
    if n < 1:
        return INVALID, 0, 0, 0, 0, 0, 0, 0.0
    c, params, macs = _cost(v, axes_volume(n, rank), c_in, params_in, macs_in, t_type, t_k, t_c, bias, rank)
    return OK, n, rf, jump, c, params, macs, var


@njit(cache=True, nogil=True, inline="always")
def _over_budget(rf, params, macs, n, limits, size_never_grows):
    """Monotone constraints, safe to apply to a prefix."""
    return (rf > limits[1] or params > limits[2] or macs > limits[3]
            or (size_never_grows and n < limits[4]))


@njit(cache=True, nogil=True)
def _carry(digits, pos, radix):
    """Add one at digit `pos` with carry; returns the most significant digit changed."""
    digits[pos] += 1
    while digits[pos] == radix and pos > 0:
        digits[pos] = 0
        pos -= 1
        digits[pos] += 1
    return pos


@njit(cache=True, nogil=True)
def _sweep_part(depth, radix, n_channels, lo, hi, id_base, t_type, t_k, t_s, t_d, t_p, t_c, t_ok,
                in_size, in_c, bias, rank, limits, size_never_grows, row0,
                o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std, o_erf_ratio,
                l_type, l_k, l_s, l_d, l_p, l_c):
    """Evaluate ids lo..hi-1 (all of one depth); write kept rows from row0 on.

    limits = [min_rf, max_rf, max_params, max_macs, min_out_size]; rank = spatial axes (1-3), each
    the same: rf, jump and n are per axis, params and MACs count k^rank taps over n^rank units.
    Returns (kept, invalid, pruned, skipped); skipped counts the invalid or
    pruned ids that a block skip accounted for without visiting them.
    """
    digits = np.zeros(depth, np.int64)
    rel = lo - id_base
    for pos in range(depth - 1, -1, -1):
        digits[pos] = rel % radix
        rel //= radix
    st_n = np.zeros(depth, np.int64)
    st_rf = np.zeros(depth, np.int64)
    st_jump = np.zeros(depth, np.int64)
    st_c = np.zeros(depth, np.int64)
    st_params = np.zeros(depth, np.int64)
    st_macs = np.zeros(depth, np.int64)
    st_var = np.zeros(depth, np.float64)
    st_n[0] = in_size
    st_rf[0] = 1
    st_jump[0] = 1
    st_c[0] = in_c
    block = np.ones(depth, np.int64)  # ids below one digit of each layer
    for pos in range(depth - 2, -1, -1):
        block[pos] = block[pos + 1] * radix
    kept = 0
    invalid = 0
    pruned = 0
    skipped = 0
    row = row0
    last = depth - 1
    dirty = 0
    i = lo
    while i < hi:
        # 1. bring the prefix (layers dirty..depth-2) up to date; stop at the first failure
        failed = -1
        status = OK
        for pos in range(dirty, last):
            status, n, rf, jump, c, params, macs, var = _step(
                digits[pos], st_n[pos], st_rf[pos], st_jump[pos], st_c[pos], st_params[pos],
                st_macs[pos], st_var[pos], t_type, t_k, t_s, t_d, t_p, t_c, t_ok, bias, rank)
            if status == OK and _over_budget(rf, params, macs, n, limits, size_never_grows):
                status = PRUNED
            if status != OK:
                failed = pos
                break
            st_n[pos + 1] = n
            st_rf[pos + 1] = rf
            st_jump[pos + 1] = jump
            st_c[pos + 1] = c
            st_params[pos + 1] = params
            st_macs[pos + 1] = macs
            st_var[pos + 1] = var
        if failed >= 0:
            # 2. skip every id that shares this failing prefix, without visiting it
            skip = skip_prefix(digits, failed, block, hi - i)
            if status == INVALID:
                invalid += skip
            else:
                pruned += skip
            skipped += skip
            i += skip
            dirty = _carry(digits, failed, radix)
            continue
        # 3. the hot loop: only the last layer changes
        n_in = st_n[last]
        rf_in = st_rf[last]
        jump_in = st_jump[last]
        c_in = st_c[last]
        params_in = st_params[last]
        macs_in = st_macs[last]
        var_in = st_var[last]
        v = digits[last]
        block_row = row
        # channels are the fastest digit: geometry is shared by n_channels consecutive ids
        channel = v % n_channels
        n = rf = jump = units = 0
        std = ratio = 0.0
        fresh = True
        while v < radix and i < hi:
            if channel == 0 or fresh:
                n, rf, jump, var = _geometry(v, n_in, rf_in, jump_in, var_in, t_k, t_s, t_d, t_p)
                std = np.sqrt(var)
                ratio = erf_ratio(std, rf)
                units = axes_volume(n, rank)
                fresh = False
            if n < 1 or not t_ok[v]:
                invalid += 1
            else:
                c, params, macs = _cost(v, units, c_in, params_in, macs_in, t_type, t_k, t_c, bias, rank)
                if _over_budget(rf, params, macs, n, limits, False) or rf < limits[0] or n < limits[4]:
                    pruned += 1
                else:
                    o_id[row] = i
                    o_rf[row] = rf
                    o_jump[row] = jump
                    o_size[row] = n
                    o_ch[row] = c
                    o_params[row] = params
                    o_macs[row] = macs
                    o_flops[row] = 2 * macs
                    o_erf_std[row] = std
                    o_erf_ratio[row] = ratio
                    l_type[last, row] = t_type[v]
                    l_k[last, row] = t_k[v]
                    l_s[last, row] = t_s[v]
                    l_d[last, row] = t_d[v]
                    l_p[last, row] = t_p[v]
                    l_c[last, row] = c
                    row += 1
                    kept += 1
            v += 1
            i += 1
            channel += 1
            if channel == n_channels:
                channel = 0
        # the prefix layers are the same for every row of this block: fill, don't scatter
        for pos in range(last):
            u = digits[pos]
            l_type[pos, block_row:row] = t_type[u]
            l_k[pos, block_row:row] = t_k[u]
            l_s[pos, block_row:row] = t_s[u]
            l_d[pos, block_row:row] = t_d[u]
            l_p[pos, block_row:row] = t_p[u]
            l_c[pos, block_row:row] = st_c[pos + 1]
        digits[last] = v
        if v == radix and depth > 1:
            digits[last] = 0
            dirty = _carry(digits, last - 1, radix)
        else:
            dirty = last
    return kept, invalid, pruned, skipped


@njit(parallel=True, nogil=True, cache=True)
def sweep_range(depth, radix, n_channels, lo, hi, id_base, parts, t_type, t_k, t_s, t_d, t_p, t_c, t_ok,
                in_size, in_c, bias, rank, limits, size_never_grows,
                o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std, o_erf_ratio,
                l_type, l_k, l_s, l_d, l_p, l_c, counts):
    """Evaluate ids lo..hi-1 of one depth in `parts` independent slices.

    Part p covers ids [bounds[p], bounds[p+1]) and writes its kept rows at
    [bounds[p]-lo, bounds[p]-lo + counts[p, 0]). counts[p] = kept, invalid, pruned, skipped.
    """
    span = hi - lo
    for p in prange(parts):
        a = lo + span * p // parts
        b = lo + span * (p + 1) // parts
        kept, invalid, pruned, skipped = _sweep_part(
            depth, radix, n_channels, a, b, id_base, t_type, t_k, t_s, t_d, t_p, t_c, t_ok,
            in_size, in_c, bias, rank, limits, size_never_grows, a - lo,
            o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std, o_erf_ratio,
            l_type, l_k, l_s, l_d, l_p, l_c)
        counts[p, 0] = kept
        counts[p, 1] = invalid
        counts[p, 2] = pruned
        counts[p, 3] = skipped


@njit(nogil=True, cache=True)
def sweep_range_serial(depth, radix, n_channels, lo, hi, id_base, parts, t_type, t_k, t_s, t_d, t_p, t_c,
                       t_ok, in_size, in_c, bias, rank, limits, size_never_grows,
                       o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std, o_erf_ratio,
                       l_type, l_k, l_s, l_d, l_p, l_c, counts):
    """`sweep_range` on one thread as a single part (counts has one row; `parts` is ignored).

    Several Python threads may call this at once (one per partition), which
    numba's threading layers do not allow for the parallel driver. A separate
    function, not a second compilation of `sweep_range`: numba's cache keys
    entries by function and signature, not by the parallel flag.
    """
    kept, invalid, pruned, skipped = _sweep_part(
        depth, radix, n_channels, lo, hi, id_base, t_type, t_k, t_s, t_d, t_p, t_c, t_ok,
        in_size, in_c, bias, rank, limits, size_never_grows, 0,
        o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std, o_erf_ratio,
        l_type, l_k, l_s, l_d, l_p, l_c)
    counts[0, 0] = kept
    counts[0, 1] = invalid
    counts[0, 2] = pruned
    counts[0, 3] = skipped
