"""`rfsweep sweep` and `rfsweep show`: a design space to Parquet, and one row back as a network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import Engine, Format, _fail, add_command, stderr, stdout
from .tables import _explain_table, _graph_table

GRID_HELP = ("Lists take '1,3,5', ranges '1-4' or both '1,3-5'. Every layer independently takes one value "
             "from each list; config_id is the stack's position in that full grid.")


SWEEP_SUMMARY = "Every stack of a grid or block space, streamed to Parquet."
SWEEP_HELP = (GRID_HELP
              + "\n\nWith no arguments: depth 1-4, kernel 1,3,5,7, stride 1,2, dilation 1,2, channels 16,32,64, "
                "padding same, 224x224x3 input (5.4M stacks) -> sweep.parquet. MACs count one multiply-"
                "accumulate as 1 (bias adds not counted); FLOPs = 2*MACs. A --spec with [[stage]] tables is a "
                "block space (docs/blocks.md), one with a [unet] table a U-Net space (docs/decoders.md).")


def sweep(
    spec_file: Annotated[Optional[Path], typer.Option("--spec", help="TOML spec; flags override its keys")] = None,
    depth: Annotated[Optional[str], typer.Option(help="depths, e.g. 1-4 [default: 1-4]")] = None,
    types: Annotated[Optional[str], typer.Option(help="layer types, e.g. conv,maxpool [default: conv]")] = None,
    kernel: Annotated[Optional[str], typer.Option(help="kernel sizes [default: 1,3,5,7]")] = None,
    stride: Annotated[Optional[str], typer.Option(help="strides [default: 1,2]")] = None,
    dilation: Annotated[Optional[str], typer.Option(help="dilations, convs only [default: 1,2]")] = None,
    padding: Annotated[Optional[str], typer.Option(help="same, valid or integers [default: same]")] = None,
    channels: Annotated[Optional[str], typer.Option(help="conv out channels [default: 16,32,64]")] = None,
    input_size: Annotated[Optional[str], typer.Option(help="input length on every axis, e.g. 224; a per-axis "
                          "form 64_64_64 sets the rank and must repeat one length [default: 224]")] = None,
    rank: Annotated[Optional[int], typer.Option(help="spatial axes: 1 (sequences), 2 (images) or 3 (volumes, "
                    "video) [default: 2]")] = None,
    in_channels: Annotated[Optional[int], typer.Option(help="input channels [default: 3]")] = None,
    no_bias: Annotated[bool, typer.Option("--no-bias", help="convs without bias")] = False,
    min_rf: Annotated[Optional[int], typer.Option(help="keep rf >= this")] = None,
    max_rf: Annotated[Optional[int], typer.Option(help="keep rf <= this")] = None,
    max_params: Annotated[Optional[int], typer.Option(help="keep params <= this")] = None,
    max_macs: Annotated[Optional[int], typer.Option(help="keep MACs <= this")] = None,
    min_out_size: Annotated[Optional[int], typer.Option(help="keep out_size >= this")] = None,
    sample: Annotated[Optional[int], typer.Option(min=1, help="block specs: evaluate N config_ids drawn uniformly "
                      "without replacement, written in ascending config_id")] = None,
    seed: Annotated[Optional[int], typer.Option(min=0, help="random seed of --sample [default: 0]")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Parquet file, or a directory with "
                      "--partitions/--engine dask/--shard [default: sweep.parquet or sweep/]")] = None,
    engine: Annotated[Engine, typer.Option(help="local (this machine) or dask (a cluster)")] = Engine.local,
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler address, e.g. tcp://host:8786 "
                         "[default: start a local cluster]")] = None,
    partitions: Annotated[Optional[int], typer.Option(help="split the ids into N parts written to a directory, "
                          "one encoder per core (local) or one task each (dask)")] = None,
    shard: Annotated[Optional[str], typer.Option(help="run only part I of N (0-based, e.g. 3/8) into the "
                     "directory: for SLURM job arrays; the last part to finish writes the manifest")] = None,
    threads: Annotated[Optional[int], typer.Option(min=1, help="numba threads [default: all cores]")] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="ids per kernel call (memory per buffer)")] = 1 << 20,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the grid's size, estimated time and output file size, then exit")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="run a grid larger than --max-stacks (refused without it)")] = False,
    max_stacks: Annotated[int, typer.Option(help="refuse grids larger than this unless --yes")] = 1_000_000_000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar, no summary")] = False,
):
    from ..distributed import parse_shard
    from ..layers import parse_size
    from ..space import load_spec
    from ..sweep import estimate, resolve_output, run_sweep

    overrides = dict(depth=depth, types=types, kernel=kernel, stride=stride, dilation=dilation,
                     padding=padding, channels=channels, input_size=parse_size(input_size), in_channels=in_channels,
                     bias=False if no_bias else None, min_rf=min_rf, max_rf=max_rf, max_params=max_params,
                     max_macs=max_macs, min_out_size=min_out_size, sample=sample, seed=seed, rank=rank)
    spec = load_spec(spec_file, overrides)  # the file's marker key picks the space ([[stage]]: blocks, [unet]: U-Nets)
    guess = estimate(spec)
    size_line = f"{spec.summary()}; {_estimate_text(guess['seconds'], guess['bytes'])}"
    if dry_run:
        stdout.print(size_line, markup=False)
        return
    if spec.total > max_stacks and not yes:
        _fail(f"{size_line}: more than --max-stacks {max_stacks:,}; pass --yes to run it anyway")
    shard_pair = parse_shard(shard) if shard is not None else None
    mode = "dask" if scheduler is not None else engine.value
    to_directory = shard_pair is not None or mode == "dask" or partitions is not None
    if output is not None and not to_directory and output.is_dir():
        _fail(f"-o {output} is a directory: give a file name (-o {output / 'sweep.parquet'}), or write "
              f"parts into it with --partitions N")
    output = resolve_output(output, engine=mode, partitions=partitions, shard=shard_pair)
    reused = to_directory and _already_complete(output, spec)
    if not quiet:
        stderr.print(size_line, markup=False)
    counts, seconds = run_sweep(spec, output, threads=threads, chunk_ids=chunk_size, engine=mode,
                                partitions=partitions, scheduler=scheduler, shard=shard_pair,
                                show_progress=not quiet, on_compile=None if quiet else lambda: stderr.print(
                                    "compiling the kernel (first run only)", markup=False))
    unit = spec.unit
    if not quiet and reused:
        stderr.print(f"every part of {output} was already complete (same spec): nothing computed; "
                     f"{counts.written:,} rows ({counts.invalid:,} invalid, {counts.pruned:,} pruned)", markup=False)
    elif not quiet:  # the time and rate are the sweep's own, without compiling
        stderr.print(f"wrote {counts.written:,} rows to {output} in {seconds:.2f} s "
                     f"({counts.enumerated / max(seconds, 1e-9) / 1e6:.1f}M {unit}/s; "
                     f"{counts.invalid:,} invalid, {counts.pruned:,} pruned)", markup=False)


def _estimate_text(seconds: float, size: float) -> str:
    """The --dry-run figures, labelled, without "0.0 s" and "0 MB" for small grids."""
    time_text = "under 0.1 s" if seconds < 0.1 else f"about {seconds:,.1f} s"
    mb = size / 1e6
    size_text = "under 1 MB" if mb < 1 else f"at most {mb:,.0f} MB"
    return f"estimated time {time_text}, output {size_text}"


def _already_complete(out: Path, spec) -> bool:
    """A directory run whose every part is already there for this spec: the run will compute nothing."""
    from ..distributed import is_complete, spec_of_output

    if not out.is_dir() or not is_complete(out, verify=True):
        return False
    try:
        return spec_of_output(out).to_dict() == spec.to_dict()
    except Exception:  # noqa: BLE001 - anything unreadable: the run itself will say what is wrong
        return False


def show(
    sweep_file: Annotated[Path, typer.Argument(
        metavar="SWEEP", help="a Parquet file (or directory) written by `rfsweep sweep`")],
    config_id: Annotated[int, typer.Argument(metavar="CONFIG_ID", help="the row's config_id")],
    format: Annotated[Format, typer.Option("--format", help="table or json")] = Format.table,
    strict: Annotated[bool, typer.Option("--strict", help="exit 2 if CONFIG_ID is not a row of the file "
                                         "(pruned, invalid or filtered out) instead of explaining it")] = False,
):
    from ..explain import analyze, story
    from ..show import find_row

    found = find_row(sweep_file, config_id)  # checks the row against the stored spec
    if not found.in_file:
        if strict:
            _fail(f"config_id {config_id} is not a row of {sweep_file}: {found.why_not}")
        stderr.print(f"note: config_id {config_id} is not a row of {sweep_file}: {found.why_not}; "
                     "explained from the stored spec", markup=False)
    row = {"config_id": config_id, "row": found.in_file, **({} if found.in_file else {"not_a_row": found.why_not})}
    if isinstance(found.network, dict):  # a block space: the row's network as a graph
        from ..graph import load_graph
        from ..graph_report import graph_story
        graph = load_graph(found.network)
        result = analyze(graph)
        if format is Format.json:
            print(json.dumps({**row, **result}))
            return
        stdout.print(_graph_table(graph, result))
        for line in graph_story(result):
            stdout.print(line, markup=False)
        return
    stack = found.network
    result = analyze(stack)
    if format is Format.json:
        print(json.dumps({**row, "stack": stack.compact(), **result}))
        return
    stdout.print(_explain_table(stack, result))
    for line in story(stack, result):
        stdout.print(line, markup=False)


def register(app: typer.Typer) -> None:
    """Add sweep and show to `app`."""
    add_command(app, sweep, SWEEP_SUMMARY, SWEEP_HELP, [
        "rfsweep sweep",
        "rfsweep sweep --depth 1-3 --kernel 3,5 --stride 1,2 --min-rf 9 -o small.parquet",
        "rfsweep sweep --spec data/vgg_style.toml --dry-run",
        "rfsweep sweep --spec data/resnet18_space.toml --partitions 4 -o resnet18_space/"])
    add_command(app, show, "One row of a sweep file, explained as `explain` does.",
                "The row's stack (or network of blocks) is rebuilt from CONFIG_ID and the spec stored in "
                "the file, so it works on a front written by `pareto -o` and on `measure` output too.",
                ["rfsweep show small.parquet 100", "rfsweep show front.parquet 3954 --format json"])
