"""numba only where a kernel runs.

The arithmetic is written once, in plain Python, and marked with
`@kernel_function(...)`. Until a sweep needs it, a marked function is an
ordinary Python function: `explain` answers without importing numba (a
third of a second saved per command) and computes with exact Python ints.
`compile_module` swaps every marked function of a module for numba's `njit`
of the very same function, so the sweep kernels inline the one
implementation; numba resolves a kernel's globals when it first compiles,
by which time they are all compiled functions.
"""

from __future__ import annotations

import sys
from types import ModuleType

_OPTIONS = "_rfsweep_njit_options"


def kernel_function(**options):
    """Mark a function for `compile_module` with the given `njit` options."""
    def mark(func):
        setattr(func, _OPTIONS, options)
        return func
    return mark


def compile_module(module: ModuleType | str) -> ModuleType:
    """Replace the module's marked functions by their njit versions (idempotent)."""
    from numba import njit

    if isinstance(module, str):
        module = sys.modules[module]
    for name, value in list(vars(module).items()):
        options = getattr(value, _OPTIONS, None)
        if options is not None and callable(value) and not hasattr(value, "py_func"):
            setattr(module, name, njit(**options)(value))
    return module


def plain_python(func):
    """The plain-Python version of a marked function even after `compile_module` compiled its module:
    single-network code computes with exact Python ints, whatever a sweep compiled before."""
    return getattr(func, "py_func", func)
