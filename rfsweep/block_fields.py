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
# per-axis spaces (whose axes can differ): stride_0, stride_1, stride_2 hold a choice's stride on each axis
# (what the kernel and the s{i}_stride lists read), `stride` only its position in the stage's list
TABLE_FIELDS = ("block", "repeats", "kernel", "stride", "dilation", "width", "expansion", "groups", "valid", "kpow",
                "cycle", "stride_0", "stride_1", "stride_2")
(F_BLOCK, F_REPEATS, F_KERNEL, F_STRIDE, F_DILATION, F_WIDTH, F_EXPANSION, F_GROUPS, F_VALID, F_KPOW,
 F_CYCLE, F_STRIDE_AXES) = range(12)  # stride on axis a: F_STRIDE_AXES + a
