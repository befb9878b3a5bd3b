"""The block spaces' vocabulary: block kinds and their codes, per-stage fields, the choice table's layout.

Shared by the spec (`blocks.py`), the evaluator (`block_sweep.py`) and the
kernel (`block_kernel.py`), which otherwise never import each other upward.
Plain constants, no imports: cheap to load anywhere.
"""

BLOCKS = ("conv", "basic", "bottleneck", "dwsep", "mbconv", "tcn", "wavenet")
CONV, BASIC, BOTTLENECK, DWSEP, MBCONV, TCN, WAVENET = range(7)  # codes: positions in BLOCKS
CAUSAL = (TCN, WAVENET)  # left padding only, dilation doubling block by block; the others are centred
EXPANSION_APPLIES = (BOTTLENECK, MBCONV, WAVENET)
GROUPS_APPLY = (CONV, BASIC, BOTTLENECK)
# one stage's digit: block slowest ... groups (or group_width) fastest
DIGIT_KEYS = ("block", "repeats", "kernel", "stride", "dilation", "width", "expansion", "groups")
# the per-stage columns s{i}_* of a sweep file (groups only when some stage lists groups or group_width)
STAGE_COLUMNS = ("block", "repeats", "kernel", "stride", "dilation", "width", "expansion")
STAGE_FIELDS = STAGE_COLUMNS + ("groups",)
# the choice table T[field, stage, digit] the kernel reads, and each field's index
# (kpow = kernel^rank: a kxk.. conv's weights per in/out channel pair, precomputed per choice;
# cycle: causal blocks' dilation is dilation * 2^(b mod cycle) for block b = 0, 1, ... of a stage)
# per-axis spaces (whose axes can differ): kernel_a, stride_a, dilation_a hold a choice's kernel, stride and
# dilation on axis a (what the kernel and the s{i}_* lists read); kernel, stride, dilation are then 0
TABLE_FIELDS = ("block", "repeats", "kernel", "stride", "dilation", "width", "expansion", "groups", "valid", "kpow",
                "cycle", "kernel_0", "kernel_1", "kernel_2", "stride_0", "stride_1", "stride_2",
                "dilation_0", "dilation_1", "dilation_2")
(F_BLOCK, F_REPEATS, F_KERNEL, F_STRIDE, F_DILATION, F_WIDTH, F_EXPANSION, F_GROUPS, F_VALID, F_KPOW,
 F_CYCLE, F_KERNEL_AXES) = range(12)  # on axis a: F_KERNEL_AXES + a, F_STRIDE_AXES + a, F_DILATION_AXES + a
F_STRIDE_AXES = F_KERNEL_AXES + 3
F_DILATION_AXES = F_KERNEL_AXES + 6
