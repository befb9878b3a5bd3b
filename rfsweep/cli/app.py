"""The Typer app every command module registers on, and what they share: consoles, formats, numbers.

Command modules (explain, sweep, analysis, visual, timing) import from here and
never from the package above them; rfsweep/cli/__init__.py registers them in the
order `rfsweep --help` lists them.
"""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Optional

import typer
from rich.console import Console
from typer.core import TyperCommand

from .. import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    rich_markup_mode=None,
    help="Exact receptive field, jump, params and FLOPs of CNN conv stacks, one or millions at a time.\n\n"
         "MACs count one multiply-accumulate as 1 (bias adds not counted, as fvcore); FLOPs = 2*MACs.",
)
# piped output is for files and pagers: tables as wide as they need (cli/tables.py fits them to a
# terminal, or to COLUMNS when it is set)
stdout = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 100_000)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class Command(TyperCommand):
    """Usage lines in one style: required arguments bare (SWEEP CONFIG_ID), optional ones in brackets ([STACK]...)."""

    def collect_usage_pieces(self, ctx):
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.metavar or param.name.upper()
                pieces.append((name if param.required else f"[{name}]") + ("..." if param.nargs != 1 else ""))
        return pieces


def add_command(app: typer.Typer, function, summary: str, details: str, examples: list[str]) -> None:
    """Register `function` with a one-line summary (what `rfsweep --help` lists), details and examples.

    Examples are shown as written (click's \\b marker keeps their lines), after the options.
    """
    app.command(cls=Command, short_help=summary, help=summary + ("\n\n" + details if details else ""),
                epilog="Examples:\n\n\b\n" + "\n".join(examples))(function)


class Engine(str, Enum):
    local = "local"
    dask = "dask"


# options that explain, tile and draw share: one network's input size and rank
InputSizeOption = Annotated[Optional[str], typer.Option(
    "--input-size", help="input size in pixels: one number for every axis, or one per axis (64_128_128, which sets "
                         "the rank) [default: the file's, else 224]", show_default=False)]
RankOption = Annotated[Optional[int], typer.Option(
    "--rank", help="spatial axes: 1 (audio, time series), 2 (images), 3 (volumes, video) [default: the file's, "
                   "else 2]", show_default=False)]


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


def _fmt(value) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(_fmt(v) for v in value)
    if isinstance(value, float):
        return f"{int(value):,}" if value.is_integer() else f"{value:,g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"  # thousands separators on every count: 9,408 next to 16,384
    return str(value)


def _fmt_field(value) -> str:
    """A layer field for the node table; per-side padding [[t, b], [l, r]] reads t:b x l:r."""
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(v, list) for v in value):
        sides = [f"{before}:{after}" for before, after in value]
        return sides[0] if all(side == sides[0] for side in sides) else "x".join(sides)
    return _fmt(value)


def round_pair(value, digits: int = 3):
    if isinstance(value, list):
        return [round(v, digits) for v in value]
    return round(value, digits)


def network_source(stack, arch, torch_target, input_size, in_channels, rank=None, end_point=None):
    """What STACK, --arch NAME or --torch TARGET names (exactly one of them), and its name.

    Returns (source, name): a compact string or file path for STACK and --arch, the imported
    graph for --torch (traced at the input size: its shapes depend on it).
    """
    if sum(item is not None for item in (stack, arch, torch_target)) != 1:
        _fail("give exactly one of STACK, --arch NAME or --torch TARGET")
    if arch is not None:
        from ..architectures import arch_path
        return str(arch_path(arch)), arch
    if torch_target is not None:
        try:
            import torch  # noqa: F401 - only to say how to get it
        except ImportError:
            _fail('--torch needs PyTorch: pip install -e ".[torch]"')
        from ..torch_import import from_torch, load_target
        graph = from_torch(load_target(torch_target), input_size=input_size or 224, in_channels=in_channels or 3,
                           end_point=end_point)
        if rank is not None and rank != graph.get("rank", 2):  # the model's first layer sets it
            _fail(f"--rank {rank}, but {torch_target} is a {graph.get('rank', 2)}-D model (its first convolution "
                  "or pool); leave --rank out")
        return graph, torch_target
    return stack, None
