"""The block-space kernel: evaluate a range (or a sorted list) of config_ids, keep the rows that pass.

Like `kernel.py` for chains: `_part_range` walks ids as an odometer whose
digits are stages. Consecutive ids share every stage but the last, so the
state after each stage (size, channels, RF, narrowest RF, jump, params,
MACs, ERF variance, depth, unproductive convs) is computed once and reused
for all ids below it. A stage that empties the map, hits an ignored-choice
position or a grouped conv whose channels do not divide, is invalid; one
over a monotone budget (RF, params, MACs only grow with more stages; blocks
never enlarge the map, so min_out_size too) is pruned; either way the whole
block of ids below that prefix is counted without being visited.

Each block is the graph of `blocks.block_graph` evaluated in closed form
with `arithmetic.py`'s functions (the graph walker's arithmetic): every
block conv is odd-sized with 'same' padding (k_eff - 1)/2, so all paths of a
block stay centred on the same start; the union of the paths' intervals is
then the widest path (rf = max), rf_min the narrowest, and an `add` mixes
the paths' ERFs with equal weights (variance = mean of the variances, as
`graph.py` does for aligned inputs). The tests check every column against
`rfsweep.analyze` of the row's graph.

Causal stages (tcn, wavenet) are evaluated a stage at a time
(`_causal_stage`): their paths end at the same unit instead of sharing a
centre, so the state also carries the ERF's mean. The rank enters as
kernel^rank per choice (the table's kpow) and n^rank per map (`_area`), the
rank as `axes`, a tuple of `rank` ones: its length is part of its numba type, so
each rank compiles (and caches) its own kernel and rank 2 pays for no branch.

Per-axis spaces (a [1, 2, 2] stride, a 1x3x3 kernel, a 3x7x7 stem, a 16x112x112 input) take
`_stage_axes` instead of `_stage`, chosen in the part loops by the length of
the `per_axis` tuple (so isotropic kernels compile exactly as before): each
block is evaluated axis by axis (`_axis_block`), its costs over the product of
the axes' sizes (`_block_cost`), a conv unproductive where its narrowest field
exceeds the input on every axis; each axis's state lives in extra rows of the
state array and is written to per-axis output buffers.

`sweep_blocks` splits a range into parts, one `prange` iteration each;
part p writes its rows from its own offset, so threads never share a row.
"""

import numpy as np
from numba import njit, prange

from . import arithmetic
# block codes and the fields of the choice table T[field, stage, digit]
from .block_fields import (BASIC, BOTTLENECK, CONV, DWSEP, F_BLOCK, F_CYCLE, F_DILATION, F_DILATION_AXES,
                           F_EXPANSION, F_GROUPS, F_KERNEL, F_KERNEL_AXES, F_KPOW, F_REPEATS, F_STRIDE, F_STRIDE_AXES,
                           F_VALID, F_WIDTH, MBCONV, TCN)
from .jit import compile_module
from .odometer import skip_prefix

compile_module(arithmetic)  # the one arithmetic, compiled: the kernel below inlines it
from .arithmetic import axes_volume, conv_weights, erf_ratio, grow_erf_var, out_size  # noqa: E402

# the `causal` argument: a tuple whose length (part of its numba type) says at compile time whether
# the space has tcn/wavenet stages, so that centred-only spaces compile without the causal stage
CENTRED_ONLY = (0,)
WITH_CAUSAL = (0, 0)
OK = 0
INVALID = 1
PRUNED = 2
# the `per_axis` argument, the same way: ISOTROPIC spaces compile without the per-axis stage
ISOTROPIC = (0,)
PER_AXIS = (0, 0)
# the state after a stage, S[field, stage]: ints; the ERF variance and mean live in float arrays
S_N, S_C, S_RF, S_RFMIN, S_JUMP, S_PARAMS, S_MACS, S_DEPTH, S_UNPROD = range(9)
# per-axis spaces: axis a's size, RF, narrowest RF and jump in rows S_AXES + 4*a + A_*, its ERF variance
# in va[a, stage]; rows S_N .. S_JUMP then hold the smallest size and the largest RF, RF_min and jump
S_AXES = 9
A_N, A_RF, A_RFMIN, A_JUMP = range(4)


@njit(cache=True, nogil=True, inline="always")
def _area(n, axes):
    """Positions of an isotropic map of n per axis: n^rank, rank = len(axes), a tuple of ones whose
    length is part of its type: each rank compiles its own kernel, with this branch folded away."""
    return axes_volume(n, len(axes))


@njit(cache=True, nogil=True, inline="always")
def _conv_bn(k, kk, c_in, c_out, groups, n_out, axes):
    """(params, MACs) of a bias-free conv followed by BatchNorm (2*c_out params, no MACs).

    kk = k^rank (the table's kpow); rank 2 multiplies k*k and n*n as it always has.
    """
    if len(axes) == 2:
        weights = conv_weights(k, k, c_in, c_out, groups)
        return weights + 2 * c_out, weights * n_out * n_out
    weights = conv_weights(kk, 1, c_in, c_out, groups)
    return weights + 2 * c_out, weights * _area(n_out, axes)


@njit(cache=True, nogil=True, inline="always")
def _block(code, n, c, rf, rfmin, jump, var, k, kk, s, d, w, e, g, in_size, axes):
    """One block on an incoming state.

    Returns (status, n, c, rf, rf_min, jump, params, macs, var, depth, unproductive),
    params/MACs/depth/unproductive being this block's own.
    """
    n2 = out_size(n, k, s, d * (k - 1) // 2, d * (k - 1) // 2, d, False)
    if n2 < 1:
        return INVALID, 0, 0, 0, 0, 0, 0, 0, 0.0, 0, 0
    grow = d * (k - 1) * jump  # the kxk conv's RF growth on this map
    var_k = grow_erf_var(var, jump, k, d)
    if code == CONV:
        if c % g:
            return INVALID, 0, 0, 0, 0, 0, 0, 0, 0.0, 0, 0
        params, macs = _conv_bn(k, kk, c, w, g, n2, axes)
        return OK, n2, w, rf + grow, rfmin + grow, jump * s, params, macs, var_k, 1, int(rfmin + grow > in_size)
    if code == DWSEP:
        p1, m1 = _conv_bn(k, kk, c, c, c, n2, axes)
        p2, m2 = _conv_bn(1, 1, c, w, 1, n2, axes)
        return (OK, n2, w, rf + grow, rfmin + grow, jump * s, p1 + p2, m1 + m2, var_k, 2,
                2 * int(rfmin + grow > in_size))
    if code == MBCONV:
        hidden = c * e
        params = 0
        macs = 0
        depth = 2
        unprod = 2 * int(rfmin + grow > in_size)
        if e != 1:
            params, macs = _conv_bn(1, 1, c, hidden, 1, n, axes)
            depth = 3
            unprod += int(rfmin > in_size)
        p2, m2 = _conv_bn(k, kk, hidden, hidden, hidden, n2, axes)
        p3, m3 = _conv_bn(1, 1, hidden, w, 1, n2, axes)
        params += p2 + p3
        macs += m2 + m3
        if s == 1 and c == w:  # residual: rf_min follows the identity path, ERFs mix
            return OK, n2, w, rf + grow, rfmin, jump, params, macs, (var_k + var) / 2.0, depth, unprod
        return OK, n2, w, rf + grow, rfmin + grow, jump * s, params, macs, var_k, depth, unprod
    if code == BASIC:
        if c % g:
            return INVALID, 0, 0, 0, 0, 0, 0, 0, 0.0, 0, 0
        p1, m1 = _conv_bn(k, kk, c, w, g, n2, axes)
        p2, m2 = _conv_bn(k, kk, w, w, g, n2, axes)
        params = p1 + p2
        macs = m1 + m2
        grow2 = d * (k - 1) * jump * s  # the second kxk conv runs on the strided map
        var_main = grow_erf_var(var_k, jump * s, k, d)
        rf_main = rf + grow + grow2
        unprod = int(rfmin + grow > in_size) + int(rfmin + grow + grow2 > in_size)
        depth = 2
    else:  # BOTTLENECK (v1.5: the stride on the kxk conv)
        inner = w // e
        p1, m1 = _conv_bn(1, 1, c, inner, 1, n, axes)
        p2, m2 = _conv_bn(k, kk, inner, inner, g, n2, axes)
        p3, m3 = _conv_bn(1, 1, inner, w, 1, n2, axes)
        params = p1 + p2 + p3
        macs = m1 + m2 + m3
        var_main = var_k
        rf_main = rf + grow
        unprod = int(rfmin > in_size) + 2 * int(rfmin + grow > in_size)
        depth = 3
    if s != 1 or c != w:  # projection shortcut: 1x1 conv stride s + BN
        p4, m4 = _conv_bn(1, 1, c, w, 1, n2, axes)
        params += p4
        macs += m4
        unprod += int(rfmin > in_size)
    return OK, n2, w, rf_main, rfmin, jump * s, params, macs, (var_main + var) / 2.0, depth, unprod


@njit(cache=True, nogil=True)
def _causal_stage(code, reps, k, kk, s, d, cycle, w, e, n, c, rf, rfmin, jump, var, mean, in_size, axes):
    """A stage of tcn or wavenet blocks (block b has dilation d * 2^(b mod cycle)): the increments
    (status, n, c, rf, rf_min, jump, params, macs, var, mean, depth, unproductive), RF/ERF as totals.

    Causal convs (left padding (k-1)*d) keep every path's field ending at the unit itself, so the
    fields of a block's paths are nested: rf is the widest path's, rf_min the narrowest's. Their
    ERFs are not centred on one point: an add mixes (variance, mean) pairs with equal weights, the
    variance gaining the spread of the means, as graph.py does. Convs have a bias and no BatchNorm.
    """
    params = 0
    macs = 0
    unprod = 0
    if code == TCN:
        for b in range(reps):
            db = d << (b % cycle)
            n2 = out_size(n, k, s, (k - 1) * db, 0, db, False)
            if n2 < 1:
                return INVALID, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0, 0
            a2 = _area(n2, axes)
            grow1 = (k - 1) * db * jump
            grow2 = grow1 * s  # the second conv runs on the strided map
            w1 = conv_weights(kk, 1, c, w, 1)
            w2 = conv_weights(kk, 1, w, w, 1)
            params += w1 + w2 + 2 * w
            macs += (w1 + w2) * a2
            unprod += int(rfmin + grow1 > in_size) + int(rfmin + grow1 + grow2 > in_size)
            if s != 1 or c != w:  # 1x1 conv (stride s) on the residual
                params += c * w + w
                macs += c * w * a2
                unprod += int(rfmin > in_size)
            var_main = grow_erf_var(grow_erf_var(var, jump, k, db), jump * s, k, db)
            shift = (grow1 + grow2) / 2.0  # the main path's ERF mean moves left by this much
            var = (var_main + var) / 2.0 + shift * shift / 4.0
            mean -= shift / 2.0
            rf += grow1 + grow2
            n = n2
            c = w
            jump *= s
            s = 1
        return OK, n, c, rf, rfmin, jump, params, macs, var, mean, 2 * reps, unprod
    # WAVENET (stride 1: the table marks other strides invalid); the stage's output is the skip sum
    inner = w // e
    a = _area(n, axes)
    first = 0.0  # sums over the skips of their ERF mean (relative to the stage input's) and 2nd moment
    second = 0.0
    rel = 0.0  # the residual stream's ERF mean relative to the stage input's
    for b in range(reps):
        db = d << (b % cycle)
        grow = (k - 1) * db * jump
        var_g = grow_erf_var(var, jump, k, db)  # filter, gate, their product, the 1x1 convs after it
        mean_g = rel - grow / 2.0
        wf = conv_weights(kk, 1, c, inner, 1)
        params += 2 * (wf + inner) + inner * inner + inner + inner * w + w
        macs += (2 * wf + inner * inner + inner * w) * a
        unprod += 4 * int(rfmin + grow > in_size)
        if c != inner:  # 1x1 conv to the residual width
            params += c * inner + inner
            macs += c * inner * a
            unprod += int(rfmin > in_size)
        first += mean_g
        second += var_g + mean_g * mean_g
        var = (var_g + var) / 2.0 + grow * grow / 16.0  # residual + input: means grow/2 apart
        rel -= grow / 4.0
        rf += grow
        c = inner
    m = first / reps
    return (OK, n, w, rf, rfmin + (k - 1) * d * jump, jump, params, macs, second / reps - m * m, mean + m,
            2 * reps, unprod)


@njit(cache=True, nogil=True, inline="always")
def _axis_block(code, n, rf, rfmin, jump, var, k, s, d, residual):
    """A centred block along one axis whose stride is s: (n, rf, rf_min, jump, var) after it, as `_block`
    computes them, and grow, grow2: the RF growth of its first and second kxk conv (0: none), for the
    unproductive count. residual: an mbconv with its identity shortcut (stride 1 on every axis)."""
    n2 = out_size(n, k, s, d * (k - 1) // 2, d * (k - 1) // 2, d, False)
    grow = d * (k - 1) * jump
    var_k = grow_erf_var(var, jump, k, d)
    if code == BASIC:
        grow2 = grow * s  # the second kxk conv runs on the strided map
        return n2, rf + grow + grow2, rfmin, jump * s, (grow_erf_var(var_k, jump * s, k, d) + var) / 2.0, grow, grow2
    if code == BOTTLENECK:
        return n2, rf + grow, rfmin, jump * s, (var_k + var) / 2.0, grow, 0
    if residual:
        return n2, rf + grow, rfmin, jump, (var_k + var) / 2.0, grow, 0
    return n2, rf + grow, rfmin + grow, jump * s, var_k, grow, 0


@njit(cache=True, nogil=True, inline="always")
def _conv_cost(kk, c_in, c_out, groups, area):
    """(params, MACs) of a bias-free conv of kk taps followed by BatchNorm, over `area` output positions."""
    weights = conv_weights(kk, 1, c_in, c_out, groups)
    return weights + 2 * c_out, weights * area


@njit(cache=True, nogil=True, inline="always")
def _block_cost(code, c, kk, w, e, g, proj, a_in, a_out):
    """(status, params, MACs, depth) of a centred block whose input and output maps have a_in and a_out
    positions; proj: its shortcut is a 1x1 projection (a stride on some axis, or new channels)."""
    if code == CONV:
        if c % g:
            return INVALID, 0, 0, 0
        params, macs = _conv_cost(kk, c, w, g, a_out)
        return OK, params, macs, 1
    if code == DWSEP:
        p1, m1 = _conv_cost(kk, c, c, c, a_out)
        p2, m2 = _conv_cost(1, c, w, 1, a_out)
        return OK, p1 + p2, m1 + m2, 2
    if code == MBCONV:
        hidden = c * e
        params = 0
        macs = 0
        depth = 2
        if e != 1:
            params, macs = _conv_cost(1, c, hidden, 1, a_in)
            depth = 3
        p2, m2 = _conv_cost(kk, hidden, hidden, hidden, a_out)
        p3, m3 = _conv_cost(1, hidden, w, 1, a_out)
        return OK, params + p2 + p3, macs + m2 + m3, depth
    if code == BASIC:
        if c % g:
            return INVALID, 0, 0, 0
        p1, m1 = _conv_cost(kk, c, w, g, a_out)
        p2, m2 = _conv_cost(kk, w, w, g, a_out)
        params = p1 + p2
        macs = m1 + m2
        depth = 2
    else:  # BOTTLENECK
        inner = w // e
        p1, m1 = _conv_cost(1, c, inner, 1, a_in)
        p2, m2 = _conv_cost(kk, inner, inner, g, a_out)
        p3, m3 = _conv_cost(1, inner, w, 1, a_out)
        params = p1 + p2 + p3
        macs = m1 + m2 + m3
        depth = 3
    if proj:
        p4, m4 = _conv_cost(1, c, w, 1, a_out)
        params += p4
        macs += m4
    return OK, params, macs, depth


@njit(cache=True, nogil=True, inline="always")
def _unproductive(code, e, proj, u0, u1, u2):
    """A centred block's unproductive convs: u0, u1, u2 say whether rf_min, rf_min + grow and
    rf_min + grow + grow2 exceed the input (on every axis), the narrowest field each conv ends with."""
    if code == CONV:
        return int(u1)
    if code == DWSEP:
        return 2 * int(u1)
    if code == MBCONV:
        return 2 * int(u1) + int(e != 1 and u0)
    if code == BASIC:
        return int(u1) + int(u2) + int(proj and u0)
    return int(u0) + 2 * int(u1) + int(proj and u0)  # BOTTLENECK


@njit(cache=True, nogil=True)
def _stage_axes(T, pos, v, st, va, sizes, axes):
    """Stage `pos` at choice v in a per-axis space: every block axis by axis (`_axis_block`, the kernel,
    stride and dilation T[F_*_AXES + a] on axis a), its costs over the product of the axes' sizes. Writes the per-axis
    state into st[S_AXES:, pos + 1] and va[:, pos + 1]; returns `_stage`'s tuple, with the smallest
    size and the largest RF, RF_min and jump (what the monotone limits compare)."""
    if not T[F_VALID, pos, v]:
        return INVALID, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0, 0
    code = T[F_BLOCK, pos, v]
    kk = T[F_KPOW, pos, v]  # the product of the kernel's axes
    w = T[F_WIDTH, pos, v]
    e = T[F_EXPANSION, pos, v]
    g = T[F_GROUPS, pos, v]
    c = st[S_C, pos]
    params = st[S_PARAMS, pos]
    macs = st[S_MACS, pos]
    depth = st[S_DEPTH, pos]
    unprod = st[S_UNPROD, pos]
    src = pos
    dst = pos + 1
    for b in range(T[F_REPEATS, pos, v]):
        strided = False
        for a in range(len(axes)):
            strided = strided or (b == 0 and T[F_STRIDE_AXES + a, pos, v] != 1)
        proj = strided or c != w
        a_in = 1
        a_out = 1
        u0 = True
        u1 = True
        u2 = True
        for a in range(len(axes)):
            r = S_AXES + 4 * a
            s = T[F_STRIDE_AXES + a, pos, v] if b == 0 else 1
            n = st[r + A_N, src]
            rfmin = st[r + A_RFMIN, src]
            n2, rf2, rfmin2, jump2, var2, grow, grow2 = _axis_block(
                code, n, st[r + A_RF, src], rfmin, st[r + A_JUMP, src], va[a, src], T[F_KERNEL_AXES + a, pos, v], s,
                T[F_DILATION_AXES + a, pos, v], code == MBCONV and not proj)
            if n2 < 1:
                return INVALID, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0, 0
            a_in *= n
            a_out *= n2
            u0 = u0 and rfmin > sizes[a]
            u1 = u1 and rfmin + grow > sizes[a]
            u2 = u2 and rfmin + grow + grow2 > sizes[a]
            st[r + A_N, dst] = n2
            st[r + A_RF, dst] = rf2
            st[r + A_RFMIN, dst] = rfmin2
            st[r + A_JUMP, dst] = jump2
            va[a, dst] = var2
        status, p, m, dd = _block_cost(code, c, kk, w, e, g, proj, a_in, a_out)
        if status != OK:
            return INVALID, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0, 0
        params += p
        macs += m
        depth += dd
        unprod += _unproductive(code, e, proj, u0, u1, u2)
        c = w
        src = dst
    n = st[S_AXES + A_N, dst]
    rf = st[S_AXES + A_RF, dst]
    rfmin = st[S_AXES + A_RFMIN, dst]
    jump = st[S_AXES + A_JUMP, dst]
    for a in range(1, len(axes)):
        r = S_AXES + 4 * a
        n = min(n, st[r + A_N, dst])
        rf = max(rf, st[r + A_RF, dst])
        rfmin = max(rfmin, st[r + A_RFMIN, dst])
        jump = max(jump, st[r + A_JUMP, dst])
    return OK, n, c, rf, rfmin, jump, params, macs, va[0, dst], 0.0, depth, unprod


@njit(cache=True, nogil=True, inline="always")
def _rf_low(st, f, rf, axes, per_axis):
    """The RF that min_rf compares: the row's (isotropic) or its smallest axis's (per-axis spaces)."""
    if len(per_axis) != len(PER_AXIS):
        return rf
    low = st[S_AXES + A_RF, f]
    for a in range(1, len(axes)):
        low = min(low, st[S_AXES + 4 * a + A_RF, f])
    return low


@njit(cache=True, nogil=True, inline="always")
def _write_axes(row, st, va, f, o_axes, o_axes_f, axes, per_axis):
    """Per-axis spaces: the row's rf, jump, out_size (o_axes[0, 1, 2][row, a]) and erf_std, erf_ratio
    (o_axes_f[0, 1][row, a]) on each axis a, from the state column f (row-major: each row's axes
    side by side, as Arrow's fixed-size lists hold them). Isotropic spaces: nothing."""
    if len(per_axis) != len(PER_AXIS):
        return
    for a in range(len(axes)):
        r = S_AXES + 4 * a
        rf = st[r + A_RF, f]
        std = np.sqrt(va[a, f])
        o_axes[0, row, a] = rf
        o_axes[1, row, a] = st[r + A_JUMP, f]
        o_axes[2, row, a] = st[r + A_N, f]
        o_axes_f[0, row, a] = std
        o_axes_f[1, row, a] = erf_ratio(std, rf)


@njit(cache=True, nogil=True, inline="always")
def _write_axis_choices(T, pos, v, a, b, c_sa, axes, per_axis):
    """Per-axis spaces: stage pos's kernel, stride, dilation on each axis for rows a..b-1
    (c_sa[0, 1, 2][pos, row, axis]). Isotropic spaces: nothing (_write_stage's c_k, c_s, c_d)."""
    if len(per_axis) != len(PER_AXIS):
        return
    for ax in range(len(axes)):
        c_sa[0, pos, a:b, ax] = T[F_KERNEL_AXES + ax, pos, v]
        c_sa[1, pos, a:b, ax] = T[F_STRIDE_AXES + ax, pos, v]
        c_sa[2, pos, a:b, ax] = T[F_DILATION_AXES + ax, pos, v]


@njit(cache=True, nogil=True)
def _stage(T, pos, v, st, var_st, mean_st, in_size, axes, causal):
    """Stage `pos` at choice v on the state st[:, pos], var_st[pos], mean_st[pos]: (status, n, c, rf, rf_min, jump,
    params, macs, var, mean, depth, unproductive) after all of its blocks (totals, not increments)."""
    if not T[F_VALID, pos, v]:
        return INVALID, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0, 0
    code = T[F_BLOCK, pos, v]
    k = T[F_KERNEL, pos, v]
    kk = k if len(axes) == 2 else T[F_KPOW, pos, v]
    d = T[F_DILATION, pos, v]
    w = T[F_WIDTH, pos, v]
    e = T[F_EXPANSION, pos, v]
    g = T[F_GROUPS, pos, v]
    n = st[S_N, pos]
    c = st[S_C, pos]
    rf = st[S_RF, pos]
    rfmin = st[S_RFMIN, pos]
    jump = st[S_JUMP, pos]
    params = st[S_PARAMS, pos]
    macs = st[S_MACS, pos]
    depth = st[S_DEPTH, pos]
    unprod = st[S_UNPROD, pos]
    var = var_st[pos]
    mean = mean_st[pos] if len(causal) == len(WITH_CAUSAL) else 0.0  # centred blocks keep the ERF's mean
    s = T[F_STRIDE, pos, v]
    if len(causal) == len(WITH_CAUSAL) and code >= TCN:  # known at compile time
        status, n, c, rf, rfmin, jump, p, m, var, mean, dd, du = _causal_stage(
            code, T[F_REPEATS, pos, v], k, kk, s, d, T[F_CYCLE, pos, v], w, e, n, c, rf, rfmin, jump, var, mean,
            in_size, axes)
        return status, n, c, rf, rfmin, jump, params + p, macs + m, var, mean, depth + dd, unprod + du
    for _ in range(T[F_REPEATS, pos, v]):
        status, n, c, rf, rfmin, jump, p, m, var, dd, du = _block(
            code, n, c, rf, rfmin, jump, var, k, kk, s, d, w, e, g, in_size, axes)
        if status != OK:
            return INVALID, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0, 0
        params += p
        macs += m
        depth += dd
        unprod += du
        s = 1
    return OK, n, c, rf, rfmin, jump, params, macs, var, mean, depth, unprod


@njit(cache=True, nogil=True, inline="always")
def _over_budget(rf, params, macs, n, limits):
    """Monotone constraints, safe on a prefix (limits: min_rf, max_rf, max_params, max_macs, min_out_size)."""
    return rf > limits[1] or params > limits[2] or macs > limits[3] or n < limits[4]


@njit(cache=True, nogil=True, inline="always")
def _store(st, var_st, mean_st, pos, n, c, rf, rfmin, jump, params, macs, var, mean, depth, unprod):
    st[S_N, pos] = n
    st[S_C, pos] = c
    st[S_RF, pos] = rf
    st[S_RFMIN, pos] = rfmin
    st[S_JUMP, pos] = jump
    st[S_PARAMS, pos] = params
    st[S_MACS, pos] = macs
    st[S_DEPTH, pos] = depth
    st[S_UNPROD, pos] = unprod
    var_st[pos] = var
    mean_st[pos] = mean


@njit(cache=True, nogil=True, inline="always")
def _write_row(row, config_id, n, c, rf, jump, params, macs, var, depth, unprod,
               o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std, o_erf_ratio,
               o_depth, o_unprod):
    std = np.sqrt(var)
    o_id[row] = config_id
    o_rf[row] = rf
    o_jump[row] = jump
    o_size[row] = n
    o_ch[row] = c
    o_params[row] = params
    o_macs[row] = macs
    o_flops[row] = 2 * macs
    o_erf_std[row] = std
    o_erf_ratio[row] = erf_ratio(std, rf)
    o_depth[row] = depth
    o_unprod[row] = unprod


@njit(cache=True, nogil=True, inline="always")
def _write_stage(T, pos, v, a, b, c_block, c_rep, c_k, c_s, c_d, c_w, c_e, c_g):
    """Stage pos's choice columns for rows a..b-1 (one choice: a fill, not a scatter)."""
    c_block[pos, a:b] = T[F_BLOCK, pos, v]
    c_rep[pos, a:b] = T[F_REPEATS, pos, v]
    c_k[pos, a:b] = T[F_KERNEL, pos, v]
    c_s[pos, a:b] = T[F_STRIDE, pos, v]
    c_d[pos, a:b] = T[F_DILATION, pos, v]
    c_w[pos, a:b] = T[F_WIDTH, pos, v]
    c_e[pos, a:b] = T[F_EXPANSION, pos, v]
    c_g[pos, a:b] = T[F_GROUPS, pos, v]


@njit(cache=True, nogil=True)
def _carry(digits, pos, radix):
    """Add one at digit `pos` with carry; returns the most significant digit changed."""
    digits[pos] += 1
    while digits[pos] == radix[pos] and pos > 0:
        digits[pos] = 0
        pos -= 1
        digits[pos] += 1
    return pos


@njit(cache=True, nogil=True)
def _part_range(T, radix, stem, stem_var, stem_vars, in_size, sizes, axes, causal, per_axis, limits, lo, hi, row0,
                o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std, o_erf_ratio,
                o_depth, o_unprod, o_axes, o_axes_f, c_sa, c_block, c_rep, c_k, c_s, c_d, c_w, c_e, c_g):
    """Evaluate ids lo..hi-1; write kept rows from row0 on. Returns (kept, invalid, pruned, skipped)."""
    stages = radix.shape[0]
    last = stages - 1
    digits = np.zeros(stages, np.int64)
    rel = lo
    for pos in range(last, -1, -1):
        digits[pos] = rel % radix[pos]
        rel //= radix[pos]
    block = np.ones(stages, np.int64)  # ids below one digit of each stage
    for pos in range(last - 1, -1, -1):
        block[pos] = block[pos + 1] * radix[pos + 1]
    st = np.zeros((S_AXES + 4 * stem_vars.shape[0], stages + 1), np.int64)  # per-axis rows in per-axis spaces
    var_st = np.zeros(stages + 1, np.float64)
    mean_st = np.zeros(stages + 1, np.float64)  # relative to the stem's
    va = np.zeros((stem_vars.shape[0], stages + 1), np.float64)
    st[:, 0] = stem
    var_st[0] = stem_var
    va[:, 0] = stem_vars
    kept = 0
    invalid = 0
    pruned = 0
    skipped = 0
    row = row0
    dirty = 0
    i = lo
    while i < hi:
        failed = -1
        status = OK
        for pos in range(dirty, last):
            if len(per_axis) == len(PER_AXIS):  # known at compile time: isotropic kernels never branch here
                status, n, c, rf, rfmin, jump, params, macs, var, mean, depth, unprod = _stage_axes(
                    T, pos, digits[pos], st, va, sizes, axes)
            else:
                status, n, c, rf, rfmin, jump, params, macs, var, mean, depth, unprod = _stage(
                    T, pos, digits[pos], st, var_st, mean_st, in_size, axes, causal)
            if status == OK and _over_budget(rf, params, macs, n, limits):
                status = PRUNED
            if status != OK:
                failed = pos
                break
            _store(st, var_st, mean_st, pos + 1, n, c, rf, rfmin, jump, params, macs, var, mean, depth, unprod)
        if failed >= 0:
            skip = skip_prefix(digits, failed, block, hi - i)
            if status == INVALID:
                invalid += skip
            else:
                pruned += skip
            skipped += skip
            i += skip
            dirty = _carry(digits, failed, radix)
            continue
        v = digits[last]
        block_row = row
        while v < radix[last] and i < hi:
            if len(per_axis) == len(PER_AXIS):
                status, n, c, rf, rfmin, jump, params, macs, var, mean, depth, unprod = _stage_axes(
                    T, last, v, st, va, sizes, axes)
            else:
                status, n, c, rf, rfmin, jump, params, macs, var, mean, depth, unprod = _stage(
                    T, last, v, st, var_st, mean_st, in_size, axes, causal)
            if status != OK:
                invalid += 1
            elif _over_budget(rf, params, macs, n, limits) or _rf_low(st, stages, rf, axes, per_axis) < limits[0]:
                pruned += 1
            else:
                _write_row(row, i, n, c, rf, jump, params, macs, var, depth, unprod,
                           o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std,
                           o_erf_ratio, o_depth, o_unprod)
                _write_axes(row, st, va, stages, o_axes, o_axes_f, axes, per_axis)
                _write_stage(T, last, v, row, row + 1, c_block, c_rep, c_k, c_s, c_d, c_w, c_e, c_g)
                _write_axis_choices(T, last, v, row, row + 1, c_sa, axes, per_axis)
                row += 1
                kept += 1
            v += 1
            i += 1
        for pos in range(last):  # the prefix is the same for every row of this block
            _write_stage(T, pos, digits[pos], block_row, row, c_block, c_rep, c_k, c_s, c_d, c_w, c_e, c_g)
            _write_axis_choices(T, pos, digits[pos], block_row, row, c_sa, axes, per_axis)
        digits[last] = v
        if v == radix[last] and stages > 1:
            digits[last] = 0
            dirty = _carry(digits, last - 1, radix)
        else:
            dirty = last
    return kept, invalid, pruned, skipped


@njit(cache=True, nogil=True)
def _part_ids(T, radix, stem, stem_var, stem_vars, in_size, sizes, axes, causal, per_axis, limits, ids, lo, hi, row0,
              o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std, o_erf_ratio,
              o_depth, o_unprod, o_axes, o_axes_f, c_sa, c_block, c_rep, c_k, c_s, c_d, c_w, c_e, c_g):
    """Evaluate the sorted ids[lo:hi] (a sample); prefixes shared with the previous id are reused."""
    stages = radix.shape[0]
    digits = np.zeros(stages, np.int64)
    prev = np.full(stages, -1, np.int64)
    st = np.zeros((S_AXES + 4 * stem_vars.shape[0], stages + 1), np.int64)  # per-axis rows in per-axis spaces
    var_st = np.zeros(stages + 1, np.float64)
    mean_st = np.zeros(stages + 1, np.float64)  # relative to the stem's
    va = np.zeros((stem_vars.shape[0], stages + 1), np.float64)
    st[:, 0] = stem
    var_st[0] = stem_var
    va[:, 0] = stem_vars
    ready = 0  # states st[:, 1..ready] hold for the digits in prev
    kept = 0
    invalid = 0
    pruned = 0
    row = row0
    for j in range(lo, hi):
        rel = ids[j]
        for pos in range(stages - 1, -1, -1):
            digits[pos] = rel % radix[pos]
            rel //= radix[pos]
        dirty = 0
        while dirty < ready and digits[dirty] == prev[dirty]:
            dirty += 1
        prev[:] = digits
        status = OK
        ready = dirty
        for pos in range(dirty, stages):
            if len(per_axis) == len(PER_AXIS):  # known at compile time: isotropic kernels never branch here
                status, n, c, rf, rfmin, jump, params, macs, var, mean, depth, unprod = _stage_axes(
                    T, pos, digits[pos], st, va, sizes, axes)
            else:
                status, n, c, rf, rfmin, jump, params, macs, var, mean, depth, unprod = _stage(
                    T, pos, digits[pos], st, var_st, mean_st, in_size, axes, causal)
            if status == OK and (_over_budget(rf, params, macs, n, limits)
                                 or (pos == stages - 1 and _rf_low(st, stages, rf, axes, per_axis) < limits[0])):
                status = PRUNED
            if status != OK:
                break
            _store(st, var_st, mean_st, pos + 1, n, c, rf, rfmin, jump, params, macs, var, mean, depth, unprod)
            ready = pos + 1
        if status == INVALID:
            invalid += 1
        elif status == PRUNED:
            pruned += 1
        else:
            f = stages
            _write_row(row, ids[j], st[S_N, f], st[S_C, f], st[S_RF, f], st[S_JUMP, f], st[S_PARAMS, f],
                       st[S_MACS, f], var_st[f], st[S_DEPTH, f], st[S_UNPROD, f],
                       o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std, o_erf_ratio,
                       o_depth, o_unprod)
            _write_axes(row, st, va, f, o_axes, o_axes_f, axes, per_axis)
            for pos in range(stages):
                _write_stage(T, pos, digits[pos], row, row + 1, c_block, c_rep, c_k, c_s, c_d, c_w, c_e, c_g)
                _write_axis_choices(T, pos, digits[pos], row, row + 1, c_sa, axes, per_axis)
            row += 1
            kept += 1
    return kept, invalid, pruned, 0


@njit(parallel=True, nogil=True, cache=True)
def sweep_blocks(T, radix, stem, stem_var, stem_vars, in_size, sizes, axes, causal, per_axis, limits, ids, use_ids,
                 lo, hi, parts, o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std, o_erf_ratio,
                 o_depth, o_unprod, o_axes, o_axes_f, c_sa, c_block, c_rep, c_k, c_s, c_d, c_w, c_e, c_g, counts):
    """Evaluate ids lo..hi-1 (or ids[lo:hi] when use_ids) in `parts` independent slices.

    Part p covers [a, b) = [lo + span*p//parts, lo + span*(p+1)//parts) and writes its rows at
    [a - lo, a - lo + counts[p, 0]). counts[p] = kept, invalid, pruned, skipped.
    """
    span = hi - lo
    for p in prange(parts):
        a = lo + span * p // parts
        b = lo + span * (p + 1) // parts
        if use_ids:
            kept, invalid, pruned, skipped = _part_ids(
                T, radix, stem, stem_var, stem_vars, in_size, sizes, axes, causal, per_axis, limits, ids, a, b, a - lo,
                o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std, o_erf_ratio,
                o_depth, o_unprod, o_axes, o_axes_f, c_sa, c_block, c_rep, c_k, c_s, c_d, c_w, c_e, c_g)
        else:
            kept, invalid, pruned, skipped = _part_range(
                T, radix, stem, stem_var, stem_vars, in_size, sizes, axes, causal, per_axis, limits, a, b, a - lo,
                o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std, o_erf_ratio,
                o_depth, o_unprod, o_axes, o_axes_f, c_sa, c_block, c_rep, c_k, c_s, c_d, c_w, c_e, c_g)
        counts[p, 0] = kept
        counts[p, 1] = invalid
        counts[p, 2] = pruned
        counts[p, 3] = skipped


@njit(nogil=True, cache=True)
def sweep_blocks_serial(T, radix, stem, stem_var, stem_vars, in_size, sizes, axes, causal, per_axis, limits, ids,
                        use_ids, lo, hi, parts, o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std,
                        o_erf_ratio, o_depth, o_unprod, o_axes, o_axes_f, c_sa, c_block, c_rep, c_k, c_s, c_d, c_w,
                        c_e, c_g, counts):
    """`sweep_blocks` on the calling thread as one part (several Python threads may call it at once)."""
    if use_ids:
        kept, invalid, pruned, skipped = _part_ids(
            T, radix, stem, stem_var, stem_vars, in_size, sizes, axes, causal, per_axis, limits, ids, lo, hi, 0,
            o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std, o_erf_ratio,
            o_depth, o_unprod, o_axes, o_axes_f, c_sa, c_block, c_rep, c_k, c_s, c_d, c_w, c_e, c_g)
    else:
        kept, invalid, pruned, skipped = _part_range(
            T, radix, stem, stem_var, stem_vars, in_size, sizes, axes, causal, per_axis, limits, lo, hi, 0,
            o_id, o_rf, o_jump, o_size, o_ch, o_params, o_macs, o_flops, o_erf_std, o_erf_ratio,
            o_depth, o_unprod, o_axes, o_axes_f, c_sa, c_block, c_rep, c_k, c_s, c_d, c_w, c_e, c_g)
    counts[0, 0] = kept
    counts[0, 1] = invalid
    counts[0, 2] = pruned
    counts[0, 3] = skipped
