"""rfsweep: exact receptive field, jump, params and FLOPs of CNN conv stacks, in bulk.

Public API:
    load_stack(source)       compact string, JSON path or list of layer dicts -> Stack
    analyze(stack)           per-layer and total figures (the contract's JSON object)
    RfsweepError             the one exception for bad input (CLI exit code 2)
"""

from .errors import RfsweepError
from .explain import analyze
from .layers import Layer, Stack, load_stack

__version__ = "0.1.0"
__all__ = ["RfsweepError", "Layer", "Stack", "analyze", "load_stack", "__version__"]
