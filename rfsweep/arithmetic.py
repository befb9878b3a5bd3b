"""The receptive-field and cost arithmetic: the ONE implementation.

Small functions on plain numbers. `explain` and the graph walker
(`graph.py`) call them as ordinary Python (exact ints, no numba import);
the sweep kernels call numba-compiled versions of the very same functions
(`jit.compile_module`, done by `kernel.py`). Per spatial axis, with
`p_before`/`p_after` the padding on the two sides (equal in PyTorch,
unequal for TensorFlow's 'SAME'):

    k_eff = d*(k-1) + 1
    n_l   = floor((n + p_before + p_after - k_eff) / s) + 1   (ceil for ceil_mode, PyTorch rule)
    jump  = jump * s
    rf    = rf + (k_eff - 1) * jump_prev
    start = start + ((k_eff - 1)/2 - p_before) * jump_prev

Costs: params = kh*kw*(c_in/groups)*c_out (+ c_out for bias), MACs =
kh*kw*(c_in/groups)*c_out * n_h*n_w (one multiply-accumulate = 1, bias adds
not counted, as fvcore), FLOPs = 2*MACs. Pools cost nothing.

The effective receptive field (Luo et al. 2016) with uniform weights and no
nonlinearity is the convolution of the layers' footprints; a footprint of k
taps spaced d*jump input pixels apart has variance (k^2-1)/12 * (d*jump)^2,
and variances of convolved footprints add up.

Decoders (transposed convs, upsampling, pixel shuffle, crops) go back up in
resolution; the functions at the end give, per axis, the output size and
which input units (with which interpolation weight) one output unit reads.
`periodic.py` turns those reads into each unit's field.
"""

import math

from .jit import kernel_function

CONV = 0
MAXPOOL = 1
AVGPOOL = 2
LAYER_TYPES = ("conv", "maxpool", "avgpool")


@kernel_function(cache=True, nogil=True, inline="always")
def out_size(n, k, s, p_before, p_after, d, ceil_mode):
    """Output length of one axis; 0 when the layer empties the map (invalid)."""
    span = n + p_before + p_after - (d * (k - 1) + 1)
    if ceil_mode:
        # PyTorch (pooling_output_shape): floor((span + s - 1) / s) + 1, then drop a last
        # window that would start beyond the input plus left padding
        out = (span + s - 1) // s + 1
        if (out - 1) * s >= n + p_before:
            out -= 1
        return max(out, 0)
    if span < 0:
        return 0
    return span // s + 1


@kernel_function(cache=True, nogil=True, inline="always")
def grow_rf(rf, jump, k, d):
    """Receptive field after a layer of kernel k, dilation d on a map of step `jump`."""
    return rf + d * (k - 1) * jump


@kernel_function(cache=True, nogil=True, inline="always")
def shift_start(start, jump, k, p_before, d):
    """Centre of the first output's RF, in input-pixel coordinates."""
    return start + ((d * (k - 1)) / 2.0 - p_before) * jump


@kernel_function(cache=True, nogil=True, inline="always")
def grow_erf_var(var, jump, k, d):
    """Variance (px^2) of the uniform-weight ERF after adding this layer's footprint."""
    step = d * jump
    return var + (k * k - 1) / 12.0 * step * step


@kernel_function(cache=True, nogil=True, inline="always")
def conv_weights(kh, kw, c_in, c_out, groups):
    """Multiplicative weights of a conv (no bias): kh*kw*(c_in/groups)*c_out."""
    return kh * kw * (c_in // groups) * c_out


@kernel_function(cache=True, nogil=True, inline="always")
def axis_step(n, rf, jump, var, k, s, p_before, p_after, d, ceil_mode):
    """One layer along one axis: (out size, RF, jump, ERF variance) from the incoming ones."""
    return (out_size(n, k, s, p_before, p_after, d, ceil_mode), grow_rf(rf, jump, k, d), jump * s,
            grow_erf_var(var, jump, k, d))


@kernel_function(cache=True, nogil=True, inline="always")
def conv_cost(kh, kw, c_in, c_out, groups, bias, n_h, n_w):
    """(params, MACs) of one conv: the bias adds params, never MACs (as fvcore)."""
    weights = conv_weights(kh, kw, c_in, c_out, groups)
    return weights + (c_out if bias else 0), weights * n_h * n_w


@kernel_function(cache=True, nogil=True, inline="always")
def axes_volume(n, rank):
    """n ** rank in integer multiplies: an isotropic kernel's taps, or an output's units, over 1-3 axes."""
    if rank == 2:
        return n * n
    if rank == 1:
        return n
    return n * n * n


@kernel_function(cache=True, nogil=True, inline="always")
def same_tf_padding(n, k, s, d):
    """TensorFlow 'SAME': (before, after) padding of one axis of length n.

    total = max((ceil(n/s) - 1)*s + d*(k-1) + 1 - n, 0); before = total // 2,
    the odd pixel goes after. Depends on n when s > 1.
    """
    total = ((n + s - 1) // s - 1) * s + d * (k - 1) + 1 - n
    if total < 0:
        total = 0
    return total // 2, total - total // 2


@kernel_function(cache=True, nogil=True, inline="always")
def union_interval(start_a, rf_a, start_b, rf_b):
    """(rf, start) of the union of two RF intervals [start - (rf-1)/2, start + (rf-1)/2].

    Where paths merge (Distill 2019, arbitrary graphs) a unit sees every
    pixel either input sees; intervals of aligned paths overlap or touch.
    """
    left = min(start_a - (rf_a - 1) / 2.0, start_b - (rf_b - 1) / 2.0)
    right = max(start_a + (rf_a - 1) / 2.0, start_b + (rf_b - 1) / 2.0)
    return int(round(right - left)) + 1, (left + right) / 2.0


@kernel_function(cache=True, nogil=True, inline="always")
def erf_ratio(erf_std, rf):
    """ERF std over the std of a uniform footprint as wide as the RF.

    1.0 for a single undilated layer (its ERF *is* uniform over the RF);
    stacks concentrate their ERF in the centre (three 3x3 convs: 0.71);
    sparse footprints (dilation, strides) can exceed 1 (one 3x3 d2: 1.15).
    """
    if rf <= 1:
        return 1.0
    width = float(rf)  # rf*rf in integers would wrap for huge RFs
    return erf_std / math.sqrt((width * width - 1.0) / 12.0)


# ------------------------------------------------------------------ decoders


@kernel_function(cache=True, nogil=True, inline="always")
def transpose_out_size(n, k, s, p, d, output_padding):
    """Output length of a transposed conv (PyTorch): (n-1)*s - 2p + d*(k-1) + output_padding + 1."""
    return (n - 1) * s - 2 * p + d * (k - 1) + output_padding + 1


@kernel_function(cache=True, nogil=True, inline="always")
def transpose_tap_input(o, t, s, p, d):
    """Input unit whose tap t lands on output unit o of a transposed conv.

    Input unit i writes output units i*s - p + t*d, so o reads i = (o + p - t*d)/s,
    meaningful only where the division is exact (`transpose_tap_hits`).
    """
    num = o + p - t * d
    return num // s


@kernel_function(cache=True, nogil=True, inline="always")
def transpose_tap_hits(o, t, s, p, d):
    """Whether tap t of a transposed conv reaches output unit o (o + p - t*d divisible by s)."""
    return (o + p - t * d) % s == 0


@kernel_function(cache=True, nogil=True, inline="always")
def interp_source(o, n_in, n_out, scale, align_corners):
    """(numerator, denominator) of output unit o's source coordinate, as F.interpolate.

    align_corners False: src = (o + 0.5)/scale - 0.5 = (2o + 1 - scale)/(2*scale),
    the same for every input size (PyTorch clamps src < 0 to 0 for linear modes,
    a border effect); True: src = o*(n_in - 1)/(n_out - 1), which depends on the size.
    """
    if align_corners:
        if n_out <= 1:
            return 0, 1
        return o * (n_in - 1), n_out - 1
    return 2 * o + 1 - scale, 2 * scale


@kernel_function(cache=True, nogil=True, inline="always")
def cubic_weight(x):
    """PyTorch's bicubic convolution weight (A = -0.75) at distance |x| from the source."""
    a = -0.75
    x = abs(x)
    if x <= 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return 0.0


@kernel_function(cache=True, nogil=True, inline="always")
def upsample_out_size(n, scale):
    return n * scale
