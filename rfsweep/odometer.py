"""The odometer both sweep kernels walk: ids as mixed-radix digits, most significant first.

When a prefix fails (the map empties, a budget is exceeded), every id that
shares it fails the same way; `skip_prefix` counts them without visiting
them, so pruning saves whole blocks of the grid.
"""

from numba import njit


@njit(cache=True, nogil=True, inline="always")
def skip_prefix(digits, failed, block, left):
    """Ids from the current one on that share digits[0..failed] (at most `left`); zeroes the later digits.

    block[pos] is the number of ids below one step of digit pos.
    """
    offset = 0
    for pos in range(failed + 1, digits.shape[0]):
        offset += digits[pos] * block[pos]
        digits[pos] = 0
    return min(block[failed] - offset, left)
