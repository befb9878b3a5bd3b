"""The `rfsweep` shell command: parse flags, call the API, print. Nothing else.

Exit codes (contract section 5): 0 success, 2 bad input, 1 anything else,
130 after SIGINT, 143 after SIGTERM. Errors are one line on stderr.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__, signals
from .errors import OutputError, RfsweepError
from .layers import COMPACT_GRAMMAR

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    rich_markup_mode=None,
    help="Exact receptive field, jump, params and FLOPs of CNN conv stacks, one or millions at a time.\n\n"
         "MACs count one multiply-accumulate as 1 (bias adds not counted, as fvcore); FLOPs = 2*MACs.",
)
# piped output is for files and pagers: give tables room instead of 80 columns
stdout = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class Engine(str, Enum):
    local = "local"
    dask = "dask"


class Format(str, Enum):
    table = "table"
    json = "json"


def _print_version(value: bool):
    if value:
        print(f"rfsweep {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="print the version and exit")] = False,
):
    pass


def _fail(message: str, code: int = 2):
    stderr.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


# ---------------------------------------------------------------- explain

@app.command(help="Explain one stack or network node by node: RF, jump, start, out size, params, MACs.\n\n"
                  "STACK is a compact string, or a JSON file: a list of layers, or a graph with \"nodes\" "
                  "(residual, inception, dense: see the README). Graphs also report rf_min (the narrowest path) "
                  "and the layers that are unproductive for the input size.\n\n"
                  + COMPACT_GRAMMAR.replace("\n", "\n\n"))
def explain(
    stack: Annotated[Optional[str], typer.Argument(
        help="compact string (e.g. c3x64,c3x64,c3x64) or a JSON stack/graph file", show_default=False)] = None,
    input_size: Annotated[Optional[int], typer.Option(help="input height = width in pixels [default: 224]")] = None,
    in_channels: Annotated[Optional[int], typer.Option(help="input channels [default: 3]")] = None,
    arch: Annotated[Optional[str], typer.Option(help="a known network instead of STACK (see `rfsweep archs`)")] = None,
    torch_target: Annotated[Optional[str], typer.Option(
        "--torch", help="your PyTorch model instead of STACK: package.module:callable or path/to/file.py:callable "
                        "(the callable returns an nn.Module; needs rfsweep[torch])")] = None,
    end_point: Annotated[Optional[str], typer.Option(
        help="explain up to this node (a graph node name, or a stack's layer number) [default: the output]")] = None,
    format: Annotated[Format, typer.Option("--format", help="table for people, json for scripts")] = Format.table,
    plot: Annotated[Optional[Path], typer.Option(help="also draw the RF growth to this PNG (needs rfsweep[plot])")] = None,
):
    from .explain import analyze, story
    from .graph import graph_story, load_graph

    if sum(item is not None for item in (stack, arch, torch_target)) != 1:
        _fail("give exactly one of STACK, --arch NAME or --torch TARGET")
    if arch is not None:
        from .architectures import arch_path
        stack = str(arch_path(arch))
    if torch_target is not None:
        try:
            import torch  # noqa: F401 - only to say how to get it
        except ImportError:
            _fail('--torch needs PyTorch: pip install "rfsweep[torch]" (from a checkout: pip install -e ".[torch]")')
        from .torch_import import from_torch, load_target
        source = from_torch(load_target(torch_target), input_size=input_size or 224, in_channels=in_channels or 3)
        graph = load_graph(source)
    else:
        graph = load_graph(stack, input_size, in_channels)
    result = analyze(graph, end_point=end_point)
    if plot is not None:
        from .plots import plot_rf_growth
        plot_rf_growth(graph.chain, result, plot)
    if format is Format.json:
        print(json.dumps(result))
        return
    if graph.chain is not None:
        from .layers import Stack

        chain = graph.chain  # cut to the end-point's layers
        shown = Stack(chain.layers[:len(result["layers"])], chain.input_size, chain.in_channels, chain.name)
        stdout.print(_explain_table(shown, result))
        for line in story(shown, result):
            stdout.print(line, markup=False)
        return
    stdout.print(_graph_table(graph, result))
    for line in graph_story(result):
        stdout.print(line, markup=False)


def _fmt(value) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(_fmt(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def _explain_table(stack, result) -> Table:
    title = f"{escape(stack.name or stack.compact())} on {_fmt(result['input']['size'])} x {result['input']['channels']}ch"
    table = Table(title=title, title_justify="left")
    for name in ("#", "layer", "k", "s", "p", "d", "out", "ch", "jump", "RF", "start", "params", "MACs"):
        table.add_column(name, justify="left" if name == "layer" else "right")
    for layer, row in zip(stack.layers, result["layers"]):
        table.add_row(str(row["index"]), layer.compact(), *(_fmt(row[key]) for key in (
            "kernel", "stride", "padding", "dilation", "out_size", "out_channels", "jump", "rf",
            "start", "params", "macs")))
    total = result["total"]
    table.add_section()
    table.add_row("", "total", "", "", "", "", *(_fmt(total[key]) for key in (
        "out_size", "out_channels", "jump", "rf", "start", "params", "macs")))
    table.caption = (f"effective padding {_fmt(total['eff_padding'])}, FLOPs {_fmt(total['flops'])}, "
                     f"ERF std {_fmt(round_pair(total['erf_std']))} px (ratio {_fmt(round_pair(total['erf_ratio']))})")
    table.caption_justify = "left"
    return table


def _fmt_field(value) -> str:
    """A layer field for the node table; per-side padding [[t, b], [l, r]] reads t:b x l:r."""
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(v, list) for v in value):
        sides = [f"{before}:{after}" for before, after in value]
        return sides[0] if sides[0] == sides[1] else "x".join(sides)
    return _fmt(value)


def _graph_table(graph, result) -> Table:
    """One row per node; rf_min beside rf; the border layer and where the spatial part ends marked."""
    title = f"{escape(graph.name or 'network')} on {_fmt(result['input']['size'])} x {result['input']['channels']}ch"
    table = Table(title=title + f", up to {escape(result['output'])}", title_justify="left")
    for name in ("#", "node", "type", "inputs", "k", "s", "p", "d", "out", "ch", "jump", "RF", "RF min",
                 "start", "params", "MACs", ""):
        table.add_column(name, justify="left" if name in ("node", "type", "inputs", "") else "right")
    unproductive = set(result["unproductive"])
    critical = set(result["critical"])
    spatial_seen = False
    for row in result["nodes"]:
        if spatial_seen and not row["spatial"]:
            table.add_section()  # the head: no longer a feature map
            spatial_seen = False
        spatial_seen = spatial_seen or row["spatial"]
        mark = ("border, unproductive" if row["name"] == result["border"] else "unproductive"
                if row["name"] in unproductive else "critical" if row["name"] in critical else "")
        if row["name"] == result["output"]:
            mark = (mark + ", " if mark else "") + "end-point"
        if row.get("padding_depends_on_input"):
            mark = (mark + ", " if mark else "") + "SAME pad depends on size"
        inputs = ",".join(row["inputs"])
        table.add_row(str(row["index"]), escape(row["name"]), row["type"],
                      escape(inputs if len(inputs) <= 24 else inputs[:21] + "..."),
                      *(_fmt_field(row.get(key)) for key in ("kernel", "stride", "padding", "dilation")),
                      *(_fmt(row[key]) for key in ("out_size", "out_channels", "jump", "rf", "rf_min", "start",
                                                   "params", "macs")), mark)
    total = result["total"]
    table.add_section()
    table.add_row("", "total", "", "", "", "", "", "", *(_fmt(total[key]) for key in (
        "out_size", "out_channels", "jump", "rf", "rf_min", "start", "params", "macs")), "")
    table.caption = (f"effective padding {_fmt(total['eff_padding'])}, FLOPs {_fmt(total['flops'])}, "
                     f"ERF std {_fmt(round_pair(total['erf_std']))} px (ratio {_fmt(round_pair(total['erf_ratio']))}); "
                     "params and MACs summed over every node shown")
    table.caption_justify = "left"
    return table


def round_pair(value, digits: int = 3):
    if isinstance(value, list):
        return [round(v, digits) for v in value]
    return round(value, digits)


@app.command(help="List the known networks with RF, jump, params and MACs.")
def archs(
    format: Annotated[Format, typer.Option("--format", help="table or json")] = Format.table,
):
    from .architectures import arch_info, arch_path, list_archs
    from .explain import analyze

    rows = []
    for name in list_archs():
        info = arch_info(name)
        total = analyze(arch_path(name))["total"]
        rows.append({"name": name, "title": info.get("title", name), **{
            key: total[key] for key in ("rf", "jump", "eff_padding", "params", "macs")},
            "source": info.get("source", "")})
    if format is Format.json:
        print(json.dumps(rows))
        return
    table = Table(title="known networks (at their JSON's input size)", title_justify="left")
    for name in ("name", "title", "RF", "jump", "eff. padding", "params", "MACs"):
        table.add_column(name, justify="left" if name in ("name", "title") else "right")
    for row in rows:
        table.add_row(row["name"], row["title"], *(_fmt(row[key]) for key in (
            "rf", "jump", "eff_padding", "params", "macs")))
    stdout.print(table)


# ---------------------------------------------------------------- sweep

GRID_HELP = ("Lists take '1,3,5', ranges '1-4' or both '1,3-5'. Every layer independently takes one value "
             "from each list; config_id is the stack's position in that full grid.")


@app.command(help="Evaluate every stack of a grid and stream the results to Parquet.\n\n" + GRID_HELP
             + "\n\nWith no arguments: depth 1-4, kernel 1,3,5,7, stride 1,2, dilation 1,2, channels 16,32,64, "
               "padding same, 224x224x3 input (5.4M stacks) -> sweep.parquet. MACs count one multiply-"
               "accumulate as 1 (bias adds not counted); FLOPs = 2*MACs.")
def sweep(
    spec_file: Annotated[Optional[Path], typer.Option("--spec", help="TOML spec; flags override its keys")] = None,
    depth: Annotated[Optional[str], typer.Option(help="depths, e.g. 1-4 [default: 1-4]")] = None,
    types: Annotated[Optional[str], typer.Option(help="layer types, e.g. conv,maxpool [default: conv]")] = None,
    kernel: Annotated[Optional[str], typer.Option(help="kernel sizes [default: 1,3,5,7]")] = None,
    stride: Annotated[Optional[str], typer.Option(help="strides [default: 1,2]")] = None,
    dilation: Annotated[Optional[str], typer.Option(help="dilations, convs only [default: 1,2]")] = None,
    padding: Annotated[Optional[str], typer.Option(help="same, valid or integers [default: same]")] = None,
    channels: Annotated[Optional[str], typer.Option(help="conv out channels [default: 16,32,64]")] = None,
    input_size: Annotated[Optional[int], typer.Option(help="input height = width [default: 224]")] = None,
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
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print grid size, estimated time and output size, then exit")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="run grids larger than --max-stacks without asking")] = False,
    max_stacks: Annotated[int, typer.Option(help="refuse grids larger than this unless --yes")] = 1_000_000_000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar, no summary")] = False,
):
    from .grid import load_spec
    from .distributed import parse_shard
    from .sweep import estimate, resolve_output, run_sweep

    overrides = dict(depth=depth, types=types, kernel=kernel, stride=stride, dilation=dilation,
                     padding=padding, channels=channels, input_size=input_size, in_channels=in_channels,
                     bias=False if no_bias else None, min_rf=min_rf, max_rf=max_rf, max_params=max_params,
                     max_macs=max_macs, min_out_size=min_out_size, sample=sample, seed=seed)
    spec = load_spec(spec_file, overrides)
    from .blocks import BlockSpec

    block_space = isinstance(spec, BlockSpec)  # [[stage]] tables: networks of blocks, not chains
    if block_space:
        from .block_sweep import estimate as block_estimate
        guess, grid_line = block_estimate(spec), spec.summary()
    else:
        guess = estimate(spec)
        grid_line = f"grid: {spec.total:,} stacks (depths {_ranges(spec.depth)}, {spec.radix} choices per layer)"
    size_line = f"{grid_line}; about {guess['seconds']:.1f} s, at most {guess['bytes'] / 1e6:,.0f} MB"
    if dry_run:
        stdout.print(size_line, markup=False)
        return
    if spec.total > max_stacks and not yes:
        _fail(f"{size_line}: more than --max-stacks {max_stacks:,}; pass --yes to run it anyway")
    shard_pair = parse_shard(shard) if shard is not None else None
    mode = "dask" if scheduler is not None else engine.value
    output = resolve_output(output, engine=mode, partitions=partitions, shard=shard_pair)
    if not quiet:
        stderr.print(size_line, markup=False)
    counts, seconds = run_sweep(spec, output, threads=threads, chunk_ids=chunk_size, engine=mode,
                                partitions=partitions, scheduler=scheduler, shard=shard_pair,
                                show_progress=not quiet, on_compile=None if quiet else lambda: stderr.print(
                                    "compiling the kernel (first run only)", markup=False))
    unit = "networks" if block_space else "stacks"
    if not quiet:  # the time and rate are the sweep's own, without compiling
        stderr.print(f"wrote {counts.written:,} rows to {output} in {seconds:.2f} s "
                     f"({counts.enumerated / max(seconds, 1e-9) / 1e6:.1f}M {unit}/s; "
                     f"{counts.invalid:,} invalid, {counts.pruned:,} pruned)", markup=False)


def _ranges(values: list[int]) -> str:
    return ",".join(map(str, values)) if len(values) < 4 or values != list(range(values[0], values[-1] + 1)) \
        else f"{values[0]}-{values[-1]}"


@app.command(help="Explain one row of a sweep file: rebuild stack CONFIG_ID from the stored spec.")
def show(
    sweep_file: Annotated[Path, typer.Argument(help="a Parquet file (or directory) written by `rfsweep sweep`")],
    config_id: Annotated[int, typer.Argument(help="the row's config_id")],
    format: Annotated[Format, typer.Option("--format", help="table or json")] = Format.table,
):
    from .explain import analyze, story
    from .sweep import stack_of

    from .blocks import BlockSpec
    from .distributed import spec_of_output

    if isinstance(spec_of_output(sweep_file), BlockSpec):  # a block space: the row's network as a graph
        from .block_sweep import graph_of
        from .graph import graph_story, load_graph
        graph = load_graph(graph_of(sweep_file, config_id))
        result = analyze(graph)
        if format is Format.json:
            print(json.dumps({"config_id": config_id, **result}))
            return
        stdout.print(_graph_table(graph, result))
        for line in graph_story(result):
            stdout.print(line, markup=False)
        return
    stack = stack_of(sweep_file, config_id)
    result = analyze(stack)
    if format is Format.json:
        print(json.dumps({"config_id": config_id, "stack": stack.compact(), **result}))
        return
    stdout.print(_explain_table(stack, result))
    for line in story(stack, result):
        stdout.print(line, markup=False)


from .cli_analysis import register as _register_analysis  # noqa: E402 - needs `app` above
from .cli_timing import register as _register_timing  # noqa: E402
from .cli_visual import register as _register_visual  # noqa: E402

_register_analysis(app)
_register_visual(app)
_register_timing(app)


# ---------------------------------------------------------------- entry point

# click's usage-error base class, whether typer vendors click or depends on it
_CLICK_ERROR = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException")


def _exit(code: int, message: str | None = None):
    """Leave with `code`; a recorded SIGINT/SIGTERM wins over whatever failed after it."""
    interrupted = signals.received()
    if interrupted is not None:
        code, message = interrupted.exit_code, interrupted.message()
    if message:
        stderr.print(_one_line(message), markup=False)
    sys.exit(code)


def _one_line(message: str, limit: int = 500) -> str:
    """Errors are one line (Arrow's messages span several) of readable length."""
    line = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the Typer app and turn every failure into an exit code."""
    signals.install()
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="rfsweep", standalone_mode=False)
        _exit(code if isinstance(code, int) else 0)
    except signals.Interrupted as exc:
        _exit(exc.exit_code, exc.message())
    except RfsweepError as exc:
        _exit(2, f"error: {exc}")
    except typer.Exit as exc:
        _exit(exc.exit_code)
    except _CLICK_ERROR as exc:  # usage errors: bad flag, missing argument
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _exit(2, f"error: {exc.format_message()}{hint}")
    except (KeyboardInterrupt, typer.Abort):
        _exit(130, signals.Interrupted(signal.SIGINT).message())
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except OutputError as exc:  # disk full, file-size limit: not bad input, still one clear line
        _exit(1, f"error: {exc}")
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no tracebacks for users
        if os.environ.get("RFSWEEP_DEBUG"):
            raise
        _exit(1, f"error: unexpected {type(exc).__name__}: {exc} (set RFSWEEP_DEBUG=1 for a traceback)")


if __name__ == "__main__":
    main()
