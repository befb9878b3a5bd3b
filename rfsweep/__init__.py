"""rfsweep: exact receptive field, jump, params and FLOPs of CNN layer stacks and graphs, in bulk.

Public API (each name is imported on first use, so `import rfsweep` stays light):
    load_stack(source)            compact string, JSON path or list of layer dicts -> Stack
    load_graph(source)            a graph ({"nodes": [...]}) or any stack -> Graph
    analyze(source, end_point=)   per-layer / per-node and total figures (the explain JSON object)
    from_torch(module, input_size, in_channels)   a torch.nn.Module -> graph dict (needs torch)
    to_torch(source)              any stack or graph -> a runnable torch.nn.Module (needs torch)
    GridSpec.build(values)        a validated sweep grid; load_spec(toml, overrides) from a file
    run_sweep(spec, out)          evaluate the whole grid into a Parquet file -> (Counts, seconds)
    write_range(spec, out, lo, hi)  the same for one config_id range (shards, Dask partitions)
    stack_of(file, config_id)     rebuild one row's stack from a sweep file
    tile_plan(source, tile)       tiles, halo and alignment so that tiled inference equals whole-image
    tiled_predict(module, x, plan)  run a torch module tile by tile as the plan says and stitch
    RfsweepError                  the one exception for bad input (CLI exit code 2)

MACs count one multiply-accumulate as 1 (bias adds not counted, as fvcore);
FLOPs = 2 * MACs. Coordinates are 0-indexed input pixel centres.
"""

from importlib import import_module

__version__ = "0.1.0"

from .jit_cache import drop_stale_cache  # noqa: E402

drop_stale_cache()  # before any @njit(cache=True) module loads its cache

_HOMES = {"RfsweepError": "errors", "Layer": "layers", "Stack": "layers", "load_stack": "layers",
          "Graph": "graph", "load_graph": "graph", "analyze": "explain", "GridSpec": "grid",
          "load_spec": "grid", "Counts": "engines", "write_range": "engines", "run_sweep": "sweep",
          "stack_of": "sweep", "from_torch": "torch_import",
          "to_torch": "torch_builder", "tile_plan": "tile", "tiled_predict": "tile"}

__all__ = [*_HOMES, "__version__"]


def __getattr__(name: str):
    """Import a public name's module only when it is first used (numba, pyarrow, pandas are slow)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'rfsweep' has no attribute {name!r}")
    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
