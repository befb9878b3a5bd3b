"""The receptive-field and cost arithmetic: the ONE implementation.

Small `@njit` functions on plain numbers, so that `explain` (via
`evaluate_stack`), the sweep kernel and the Dask path all call the very same
code. Formulas are the contract's section 2, per spatial axis:

    k_eff = d*(k-1) + 1
    n_l   = floor((n + 2p - k_eff) / s) + 1      (ceil for ceil_mode, PyTorch rule)
    jump  = jump * s
    rf    = rf + (k_eff - 1) * jump_prev
    start = start + ((k_eff - 1)/2 - p) * jump_prev

Costs: params = kh*kw*(c_in/groups)*c_out (+ c_out for bias), MACs =
kh*kw*(c_in/groups)*c_out * n_h*n_w (one multiply-accumulate = 1, bias adds
not counted, as fvcore), FLOPs = 2*MACs. Pools cost nothing.

The effective receptive field (Luo et al. 2016) with uniform weights and no
nonlinearity is the convolution of the layers' footprints; a footprint of k
taps spaced d*jump input pixels apart has variance (k^2-1)/12 * (d*jump)^2,
and variances of convolved footprints add up.
"""

import numpy as np
from numba import njit

CONV = 0
MAXPOOL = 1
AVGPOOL = 2
LAYER_TYPES = ("conv", "maxpool", "avgpool")


@njit(cache=True, nogil=True, inline="always")
def out_size(n, k, s, p, d, ceil_mode):
    """Output length of one axis; 0 when the layer empties the map (invalid)."""
    span = n + 2 * p - (d * (k - 1) + 1)
    if ceil_mode:
        # PyTorch (pooling_output_shape): floor((span + s - 1) / s) + 1, then drop a last
        # window that would start beyond the input plus left padding
        out = (span + s - 1) // s + 1
        if (out - 1) * s >= n + p:
            out -= 1
        return max(out, 0)
    if span < 0:
        return 0
    return span // s + 1


@njit(cache=True, nogil=True, inline="always")
def grow_rf(rf, jump, k, d):
    """Receptive field after a layer of kernel k, dilation d on a map of step `jump`."""
    return rf + d * (k - 1) * jump


@njit(cache=True, nogil=True, inline="always")
def shift_start(start, jump, k, p, d):
    """Centre of the first output's RF, in input-pixel coordinates."""
    return start + ((d * (k - 1)) / 2.0 - p) * jump


@njit(cache=True, nogil=True, inline="always")
def grow_erf_var(var, jump, k, d):
    """Variance (px^2) of the uniform-weight ERF after adding this layer's footprint."""
    step = d * jump
    return var + (k * k - 1) / 12.0 * step * step


@njit(cache=True, nogil=True, inline="always")
def conv_weights(kh, kw, c_in, c_out, groups):
    """Multiplicative weights of a conv (no bias): kh*kw*(c_in/groups)*c_out."""
    return kh * kw * (c_in // groups) * c_out


@njit(cache=True, nogil=True, inline="always")
def axis_step(n, rf, jump, var, k, s, p, d, ceil_mode):
    """One layer along one axis: (out size, RF, jump, ERF variance) from the incoming ones."""
    return (out_size(n, k, s, p, d, ceil_mode), grow_rf(rf, jump, k, d), jump * s,
            grow_erf_var(var, jump, k, d))


@njit(cache=True, nogil=True, inline="always")
def conv_cost(kh, kw, c_in, c_out, groups, bias, n_h, n_w):
    """(params, MACs) of one conv: the bias adds params, never MACs (as fvcore)."""
    weights = conv_weights(kh, kw, c_in, c_out, groups)
    return weights + (c_out if bias else 0), weights * n_h * n_w


@njit(cache=True, nogil=True)
def evaluate_stack(kind, kh, kw, sh, sw, ph, pw, dh, dw, c_out, groups, bias,
                   ceil_mode, in_h, in_w, in_c,
                   n_h, n_w, rf_h, rf_w, jump_h, jump_w, start_h, start_w,
                   var_h, var_w, params, macs):
    """Walk one stack layer by layer, filling the per-layer output arrays.

    Inputs are int64 arrays of equal length (one entry per layer, pools
    carrying c_out = incoming channels and groups = 1). Returns the 0-based
    index of the first layer whose output is empty, or -1 when all are valid.
    """
    m_h = in_h
    m_w = in_w
    r_h = 1
    r_w = 1
    j_h = 1
    j_w = 1
    s_h = 0.0
    s_w = 0.0
    v_h = 0.0
    v_w = 0.0
    c_cur = in_c
    for i in range(kind.shape[0]):
        s_h = shift_start(s_h, j_h, kh[i], ph[i], dh[i])
        s_w = shift_start(s_w, j_w, kw[i], pw[i], dw[i])
        m_h, r_h, j_h, v_h = axis_step(m_h, r_h, j_h, v_h, kh[i], sh[i], ph[i], dh[i], ceil_mode[i])
        m_w, r_w, j_w, v_w = axis_step(m_w, r_w, j_w, v_w, kw[i], sw[i], pw[i], dw[i], ceil_mode[i])
        if m_h < 1 or m_w < 1:
            return i
        if kind[i] == CONV:
            params[i], macs[i] = conv_cost(kh[i], kw[i], c_cur, c_out[i], groups[i], bias[i], m_h, m_w)
            c_cur = c_out[i]
        else:
            params[i] = 0
            macs[i] = 0
        n_h[i] = m_h
        n_w[i] = m_w
        rf_h[i] = r_h
        rf_w[i] = r_w
        jump_h[i] = j_h
        jump_w[i] = j_w
        start_h[i] = s_h
        start_w[i] = s_w
        var_h[i] = v_h
        var_w[i] = v_w
    return -1


@njit(cache=True, nogil=True, inline="always")
def erf_ratio(erf_std, rf):
    """ERF std over the std of a uniform footprint as wide as the RF.

    1.0 for a single undilated layer (its ERF *is* uniform over the RF);
    stacks concentrate their ERF in the centre (three 3x3 convs: 0.71);
    sparse footprints (dilation, strides) can exceed 1 (one 3x3 d2: 1.15).
    """
    if rf <= 1:
        return 1.0
    width = float(rf)  # rf*rf in integers would wrap for huge RFs
    return erf_std / np.sqrt((width * width - 1.0) / 12.0)
