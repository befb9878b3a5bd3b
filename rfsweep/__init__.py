"""rfsweep: exact receptive field, jump, params and FLOPs of CNN conv stacks, in bulk.

Public API:
    load_stack(source)            compact string, JSON path or list of layer dicts -> Stack
    analyze(stack)                per-layer and total figures (the contract's JSON object)
    GridSpec.build(values)        a validated sweep grid; load_spec(toml, overrides) from a file
    run_sweep(spec, out)          evaluate the whole grid into a Parquet file -> (Counts, seconds)
    write_range(spec, out, lo, hi)  the same for one config_id range (shards, Dask partitions)
    stack_of(file, config_id)     rebuild one row's stack from a sweep file
    RfsweepError                  the one exception for bad input (CLI exit code 2)

MACs count one multiply-accumulate as 1 (bias adds not counted, as fvcore);
FLOPs = 2 * MACs. Coordinates are 0-indexed input pixel centres.
"""

__version__ = "0.1.0"

from .jit_cache import drop_stale_cache  # noqa: E402

drop_stale_cache()  # before any @njit(cache=True) module loads its cache

from .errors import RfsweepError  # noqa: E402
from .explain import analyze  # noqa: E402
from .grid import GridSpec, load_spec  # noqa: E402
from .layers import Layer, Stack, load_stack  # noqa: E402
from .engines import Counts, write_range  # noqa: E402
from .sweep import run_sweep, stack_of  # noqa: E402

__all__ = ["RfsweepError", "Layer", "Stack", "GridSpec", "Counts", "analyze", "load_stack", "load_spec",
           "run_sweep", "write_range", "stack_of", "__version__"]
