"""The U-Net space's kernel: every column of a U-Net in closed form, without building its graph.

A U-Net's geometry (sizes, receptive field, halo, tile reads) depends only
on its *structure* (levels, convs, kernel, padding, upsampling), and its
widths are `base_width * width_multiplier**level`, so for a fixed structure
and multiplier every cost is a polynomial in base_width w:

    params = P2*w^2 + P1*w + P0,   macs = M2*w^2 + M1*w + M0,
    peak elements = max(A0*w, A1*w + B1, A2*w + B2)

(every step's live activations are linear in w; the only constant terms are
the input, live while the first conv runs, and the final conv's output).
`unet_tables` computes the geometry once per structure and the coefficients
once per (structure, multiplier); `sweep_part` then evaluates ids with a
few multiply-adds each.

The geometry follows docs/decoders.md: per axis, a field is a period P, a
step Q and one input interval per phase; a pool halves the period (or
doubles the step), an x2 up-sampling doubles the period (transposed k2 s2
and nearest: unit o reads o // 2; bilinear without align_corners: units 2j
and 2j+1 read j-1..j and j..j+1), a concat takes the union per phase. The
halo, core and reads follow `tile.tile_plan`'s rules (see `_halo`, `_reads`).
The tests check every column against `rfsweep.analyze`, `tile_plan` and
`tile.peak_bytes` of the graph `unet_space.unet_graph` builds.
"""

import numpy as np
from numba import njit, prange

# structure table columns
S_LEVELS, S_CONVS, S_KERNEL, S_PADDING, S_UPSAMPLING = range(5)
# geometry table columns
G_VALID, G_RF, G_HALO_BEFORE, G_HALO_AFTER, G_MULTIPLE, G_OUT_SIZE = range(6)
# coefficient table columns (P2, P1, P0, M2, M1, M0, A0, A1, B1, A2, B2)
N_COEF = 11
VALID, SAME = 0, 1  # padding codes (unet_space.PADDING)
TRANSPOSED, NEAREST, BILINEAR = 0, 1, 2  # upsampling codes (unet_space.UPSAMPLING)
BIG = 1 << 62


@njit(cache=True, nogil=True)
def unet_sizes(n, levels, convs, kernel, padding, upsampling, xin, enc, ups, cat):
    """Map sizes on an n x n input; False when a map empties or a pool or a skip does not line up.

    xin[l]: encoder level l's input, enc[l]: its output (l = 0..levels);
    ups[l]: the up-sampled map (before the up conv), cat[l]: the map concatenated at level l.
    """
    shrink = 0 if padding == SAME else kernel - 1
    x = n
    for level in range(levels + 1):
        xin[level] = x
        x -= convs * shrink
        if x < 1:
            return False
        enc[level] = x
        if level < levels:
            if x % 2:
                return False
            x //= 2
    for level in range(levels - 1, -1, -1):
        ups[level] = 2 * x
        z = 2 * x - (0 if upsampling == TRANSPOSED else shrink)
        if z < 1 or enc[level] < z or (enc[level] - z) % 2:
            return False
        cat[level] = z
        x = z - convs * shrink
        if x < 1:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _interval(lo, hi, period, step, u):
    """Input interval of unit u of a field (unit r + m*P reads [lo_r + m*Q, hi_r + m*Q])."""
    r = u % period
    m = u // period
    return lo[r] + m * step, hi[r] + m * step


@njit(cache=True, nogil=True)
def _window(lo, hi, period, step, k, shift):
    """A stride-1 window: unit o reads units o + shift .. o + shift + k - 1 (conv: shift = -padding)."""
    new_lo = np.empty(period, np.int64)
    new_hi = np.empty(period, np.int64)
    for o in range(period):
        a, b = BIG, -BIG
        for t in range(k):
            x, y = _interval(lo, hi, period, step, o + shift + t)
            a, b = min(a, x), max(b, y)
        new_lo[o], new_hi[o] = a, b
    return new_lo, new_hi


@njit(cache=True, nogil=True)
def _upsample(lo, hi, period, step, bilinear):
    """x2 up-sampling: the period doubles, the step stays."""
    new_lo = np.empty(2 * period, np.int64)
    new_hi = np.empty(2 * period, np.int64)
    for o in range(2 * period):
        j = o // 2
        if not bilinear:
            first, last = j, j
        elif o % 2 == 0:
            first, last = j - 1, j
        else:
            first, last = j, j + 1
        a, b = BIG, -BIG
        for u in range(first, last + 1):
            x, y = _interval(lo, hi, period, step, u)
            a, b = min(a, x), max(b, y)
        new_lo[o], new_hi[o] = a, b
    return new_lo, new_hi


@njit(cache=True, nogil=True)
def unet_field(levels, convs, kernel, padding, upsampling, enc, cat):
    """(lo, hi, period, step) of the output's per-phase field; sizes from `unet_sizes` give the crops."""
    pad = (kernel - 1) // 2 if padding == SAME else 0
    # the encoder keeps period 1: unit o reads [lo + o*q, hi + o*q]
    lo, hi, q = 0, 0, 1
    skip_lo = np.zeros(levels + 1, np.int64)
    skip_hi = np.zeros(levels + 1, np.int64)
    skip_q = np.zeros(levels + 1, np.int64)
    for level in range(levels + 1):
        lo -= convs * pad * q
        hi += convs * (kernel - 1 - pad) * q
        skip_lo[level], skip_hi[level], skip_q[level] = lo, hi, q
        if level < levels:
            hi += q  # 2x2 max pool, stride 2
            q *= 2
    f_lo = np.full(1, lo, np.int64)
    f_hi = np.full(1, hi, np.int64)
    period, step = 1, q
    for level in range(levels - 1, -1, -1):
        f_lo, f_hi = _upsample(f_lo, f_hi, period, step, upsampling == BILINEAR)
        period *= 2
        if upsampling != TRANSPOSED:
            f_lo, f_hi = _window(f_lo, f_hi, period, step, kernel, -pad)
        crop = (enc[level] - cat[level]) // 2 if padding == VALID else 0
        # the skip (period 1, step skip_q = step / period), cropped: unit o reads skip unit o + crop
        s_lo = skip_lo[level] + crop * skip_q[level]
        s_hi = skip_hi[level] + crop * skip_q[level]
        for o in range(period):
            f_lo[o] = min(f_lo[o], s_lo + o * skip_q[level])
            f_hi[o] = max(f_hi[o], s_hi + o * skip_q[level])
        for _ in range(convs):
            f_lo, f_hi = _window(f_lo, f_hi, period, step, kernel, -pad)
    return f_lo, f_hi, period, step


@njit(cache=True, nogil=True)
def _round_half_even(num, den):
    """round(num / den) as Python rounds (halves to even), for num, den > 0."""
    q, r = num // den, num % den
    if 2 * r > den or (2 * r == den and q % 2 == 1):
        q += 1
    return q


@njit(cache=True, nogil=True)
def _halo(f_lo, f_hi, period, step, n, out_size, multiple):
    """tile_plan's halo (before, after): the fields' reach rounded to the multiple; reads stay = n mod it."""
    lo_min, hi_max = BIG, -BIG
    for r in range(period):
        lo_min, hi_max = min(lo_min, f_lo[r]), max(hi_max, f_hi[r])
    need_before = max(0, -lo_min)
    need_after = max(0, hi_max + 1 - step)
    num = n * period - out_size * step  # the tile's map must reach its last kept unit
    deficit = max(0, -(-num // period))
    before = -(-need_before // multiple) * multiple
    after = max(need_after, deficit)
    after += (n - after) % multiple
    return before, after


@njit(cache=True, nogil=True)
def _reads(n, out_size, period, step, multiple, tile, before, after):
    """(smallest, largest) read of tile_plan's tiles along one axis for tiles of about `tile`.

    As `tile._balanced_cores`: ceil(n / core) cores, aligned to the multiple, as equal as alignment allows.
    """
    core = multiple * max(1, _round_half_even(tile, multiple))
    blocks = -(-n // multiple)
    count = min(max(1, -(-n // core)), blocks)
    smallest, largest = BIG, 0
    for i in range(count):
        c0 = min(n, multiple * (blocks * i // count))
        c1 = min(n, multiple * (blocks * (i + 1) // count))
        o0 = c0 * period // step
        o1 = out_size if c1 == n else min(c1 * period // step, out_size)
        if o0 < o1:
            read = min(n, c1 + after) - max(0, c0 - before)
            smallest, largest = min(smallest, read), max(largest, read)
        if o1 >= out_size:
            break
    return smallest, largest


@njit(cache=True, nogil=True)
def _costs(levels, convs, kernel, padding, upsampling, mult, in_ch, out_ch, xin, enc, cat, coef):
    """params and MACs as polynomials in base_width at these sizes: coef[0:6] = P2, P1, P0, M2, M1, M0."""
    shrink = 0 if padding == SAME else kernel - 1
    k2 = kernel * kernel
    p2 = p1 = p0 = m2 = m1 = m0 = 0
    c = np.empty(levels + 1, np.int64)
    c[0] = 1
    for level in range(1, levels + 1):
        c[level] = c[level - 1] * mult
    for level in range(levels + 1):
        for j in range(1, convs + 1):
            s = xin[level] - j * shrink
            if j == 1 and level == 0:
                p1 += k2 * in_ch * c[0] + c[0]
                m1 += k2 * in_ch * c[0] * s * s
            else:
                c_in = c[level - 1] if j == 1 else c[level]
                p2 += k2 * c_in * c[level]
                p1 += c[level]
                m2 += k2 * c_in * c[level] * s * s
    d = enc[levels]  # the map going up
    for level in range(levels - 1, -1, -1):
        if upsampling == TRANSPOSED:  # one MAC per weight per input unit
            p2 += 4 * c[level + 1] * c[level]
            m2 += 4 * c[level + 1] * c[level] * d * d
        else:
            p2 += k2 * c[level + 1] * c[level]
            m2 += k2 * c[level + 1] * c[level] * cat[level] * cat[level]
        p1 += c[level]
        for j in range(1, convs + 1):
            s = cat[level] - j * shrink
            c_in = 2 * c[level] if j == 1 else c[level]
            p2 += k2 * c_in * c[level]
            p1 += c[level]
            m2 += k2 * c_in * c[level] * s * s
        d = cat[level] - convs * shrink
    p1 += c[0] * out_ch
    p0 += out_ch
    m1 += c[0] * out_ch * d * d
    coef[0], coef[1], coef[2], coef[3], coef[4], coef[5] = p2, p1, p0, m2, m1, m0


@njit(cache=True, nogil=True)
def _peak(levels, convs, kernel, padding, upsampling, mult, in_ch, out_ch, n, xin, enc, ups, cat, coef):
    """Live activation elements per step, in the graph's node order, as lines in base_width.

    coef[6:11] = A0 (the largest step without a constant), A1, B1 (the first conv: the input is
    live), A2, B2 (the final conv: its output). A tensor lives from its step to its last reader's.
    """
    shrink = 0 if padding == SAME else kernel - 1
    c = np.empty(levels + 1, np.int64)
    c[0] = 1
    for level in range(1, levels + 1):
        c[level] = c[level - 1] * mult
    skips = np.zeros(levels + 2, np.int64)  # skips[l]: encoder outputs of levels < l (live until the decoder)
    for level in range(levels + 1):
        skips[level + 1] = skips[level] + c[level] * enc[level] * enc[level]
    best = 0
    a1 = b1 = 0
    for level in range(levels + 1):
        live = skips[level]
        prev = c[level - 1] * xin[level] * xin[level] if level > 0 else 0
        for j in range(1, convs + 1):
            s = xin[level] - j * shrink
            out = c[level] * s * s
            if level == 0 and j == 1:
                a1, b1 = live + out, in_ch * n * n
            else:
                best = max(best, live + prev + out)
            prev = out
        if level < levels:
            half = enc[level] // 2
            best = max(best, live + c[level] * enc[level] * enc[level] + c[level] * half * half)
    d = c[levels] * enc[levels] * enc[levels]
    for level in range(levels - 1, -1, -1):
        live = skips[level]
        e = c[level] * enc[level] * enc[level]
        z = cat[level]
        if upsampling == TRANSPOSED:
            up = c[level] * z * z
            best = max(best, live + e + d + up)
        else:
            upsampled = c[level + 1] * ups[level] * ups[level]
            best = max(best, live + e + d + upsampled)
            up = c[level] * z * z
            best = max(best, live + e + upsampled + up)
        concat = 2 * c[level] * z * z
        if padding == VALID:
            crop = c[level] * z * z
            best = max(best, live + e + up + crop)
            best = max(best, live + crop + up + concat)
        else:
            best = max(best, live + e + up + concat)
        prev = concat
        for j in range(1, convs + 1):
            s = z - j * shrink
            out = c[level] * s * s
            best = max(best, live + prev + out)
            prev = out
        d = prev
    last = cat[0] - convs * shrink
    coef[6], coef[7], coef[8], coef[9], coef[10] = best, a1, b1, c[0] * last * last, out_ch * last * last


@njit(cache=True, nogil=True)
def unet_tables(structs, mults, n, tile, in_ch, out_ch, geo, coef):
    """Fill geo[s] (valid, rf, halo before/after, multiple, out size) and coef[s, m] for every structure."""
    depth = 0
    for s in range(structs.shape[0]):
        depth = max(depth, structs[s, S_LEVELS])
    xin = np.zeros(depth + 1, np.int64)
    enc = np.zeros(depth + 1, np.int64)
    ups = np.zeros(depth + 1, np.int64)
    cat = np.zeros(depth + 1, np.int64)
    for s in range(structs.shape[0]):
        levels, convs, kernel = structs[s, S_LEVELS], structs[s, S_CONVS], structs[s, S_KERNEL]
        padding, upsampling = structs[s, S_PADDING], structs[s, S_UPSAMPLING]
        geo[s, :] = 0
        coef[s, :, :] = 0
        if not unet_sizes(n, levels, convs, kernel, padding, upsampling, xin, enc, ups, cat):
            continue
        shrink = 0 if padding == SAME else kernel - 1
        out_size = cat[0] - convs * shrink
        f_lo, f_hi, period, step = unet_field(levels, convs, kernel, padding, upsampling, enc, cat)
        rf = 0
        for r in range(period):
            rf = max(rf, f_hi[r] - f_lo[r] + 1)
        multiple = 1 << levels
        before, after = _halo(f_lo, f_hi, period, step, n, out_size, multiple)
        smallest, largest = _reads(n, out_size, period, step, multiple, tile, before, after)
        # tile_plan runs every read size; the sizes shrink with the read, so the smallest decides
        if not unet_sizes(smallest, levels, convs, kernel, padding, upsampling, xin, enc, ups, cat):
            continue
        geo[s, G_VALID] = 1
        geo[s, G_RF] = rf
        geo[s, G_HALO_BEFORE] = before
        geo[s, G_HALO_AFTER] = after
        geo[s, G_MULTIPLE] = multiple
        geo[s, G_OUT_SIZE] = out_size
        for m in range(mults.shape[0]):
            unet_sizes(n, levels, convs, kernel, padding, upsampling, xin, enc, ups, cat)
            _costs(levels, convs, kernel, padding, upsampling, mults[m], in_ch, out_ch, xin, enc, cat, coef[s, m])
            if not unet_sizes(largest, levels, convs, kernel, padding, upsampling, xin, enc, ups, cat):
                geo[s, G_VALID] = 0
                break
            _peak(levels, convs, kernel, padding, upsampling, mults[m], in_ch, out_ch, largest, xin, enc, ups,
                  cat, coef[s, m])


@njit(cache=True, nogil=True)
def sweep_part(lo, hi, widths, mults, structs, geo, coef, bytes_per_element, limits, row0,
               o_id, o_levels, o_convs, o_kernel, o_padding, o_up, o_mult, o_width, o_rf, o_before, o_after,
               o_multiple, o_out, o_params, o_macs, o_mpp, o_peak):
    """Evaluate ids lo..hi-1, writing kept rows from row0 on; returns (kept, invalid, pruned, skipped).

    limits = [min_rf, max_rf, max_params, max_macs, min_out_size]. An invalid structure, or one whose
    rf or out size is out of bounds, is skipped whole (every multiplier and width) without a visit.
    """
    n_w = widths.shape[0]
    n_m = mults.shape[0]
    per_struct = n_w * n_m
    kept = invalid = pruned = skipped = 0
    row = row0
    i = lo
    while i < hi:
        s = i // per_struct
        rest = i - s * per_struct
        g = geo[s]
        if g[G_VALID] == 0 or g[G_RF] < limits[0] or g[G_RF] > limits[1] or g[G_OUT_SIZE] < limits[4]:
            end = min(hi, (s + 1) * per_struct)
            if g[G_VALID] == 0:
                invalid += end - i
            else:
                pruned += end - i
            skipped += end - i
            i = end
            continue
        m = rest // n_w
        w = rest - m * n_w
        end = min(hi, i + n_w - w)
        k = coef[s, m]
        pixels = float(g[G_OUT_SIZE] * g[G_OUT_SIZE])
        first = row
        while i < end:
            width = widths[w]
            params = (k[0] * width + k[1]) * width + k[2]
            macs = (k[3] * width + k[4]) * width + k[5]
            if params > limits[2] or macs > limits[3]:
                pruned += 1
            else:
                peak = max(k[6] * width, k[7] * width + k[8], k[9] * width + k[10])
                o_id[row] = i
                o_width[row] = width
                o_params[row] = params
                o_macs[row] = macs
                o_mpp[row] = macs / pixels
                o_peak[row] = peak * bytes_per_element
                row += 1
                kept += 1
            i += 1
            w += 1
        # the structure's columns are the same for every row of this run of widths: fill, don't scatter
        o_levels[first:row] = structs[s, S_LEVELS]
        o_convs[first:row] = structs[s, S_CONVS]
        o_kernel[first:row] = structs[s, S_KERNEL]
        o_padding[first:row] = structs[s, S_PADDING]
        o_up[first:row] = structs[s, S_UPSAMPLING]
        o_mult[first:row] = mults[m]
        o_rf[first:row] = g[G_RF]
        o_before[first:row] = g[G_HALO_BEFORE]
        o_after[first:row] = g[G_HALO_AFTER]
        o_multiple[first:row] = g[G_MULTIPLE]
        o_out[first:row] = g[G_OUT_SIZE]
    return kept, invalid, pruned, skipped


@njit(parallel=True, nogil=True, cache=True)
def sweep_range(lo, hi, parts, widths, mults, structs, geo, coef, bytes_per_element, limits,
                o_id, o_levels, o_convs, o_kernel, o_padding, o_up, o_mult, o_width, o_rf, o_before, o_after,
                o_multiple, o_out, o_params, o_macs, o_mpp, o_peak, counts):
    """`sweep_part` over `parts` slices of [lo, hi) in parallel; part p writes its rows from its own offset."""
    span = hi - lo
    for p in prange(parts):
        a = lo + span * p // parts
        b = lo + span * (p + 1) // parts
        kept, invalid, pruned, skipped = sweep_part(
            a, b, widths, mults, structs, geo, coef, bytes_per_element, limits, a - lo,
            o_id, o_levels, o_convs, o_kernel, o_padding, o_up, o_mult, o_width, o_rf, o_before, o_after,
            o_multiple, o_out, o_params, o_macs, o_mpp, o_peak)
        counts[p, 0] = kept
        counts[p, 1] = invalid
        counts[p, 2] = pruned
        counts[p, 3] = skipped


@njit(nogil=True, cache=True)
def sweep_range_serial(lo, hi, parts, widths, mults, structs, geo, coef, bytes_per_element, limits,
                       o_id, o_levels, o_convs, o_kernel, o_padding, o_up, o_mult, o_width, o_rf, o_before,
                       o_after, o_multiple, o_out, o_params, o_macs, o_mpp, o_peak, counts):
    """`sweep_range` as one part on the calling thread (several partitions' threads may run it at once)."""
    kept, invalid, pruned, skipped = sweep_part(
        lo, hi, widths, mults, structs, geo, coef, bytes_per_element, limits, 0,
        o_id, o_levels, o_convs, o_kernel, o_padding, o_up, o_mult, o_width, o_rf, o_before, o_after,
        o_multiple, o_out, o_params, o_macs, o_mpp, o_peak)
    counts[0, 0] = kept
    counts[0, 1] = invalid
    counts[0, 2] = pruned
    counts[0, 3] = skipped
