"""The Typer app every command module registers on, and what they share: consoles, formats, numbers.

Command modules (explain, sweep, analysis, visual, timing) import from here and
never from the package above them; rfsweep/cli/__init__.py registers them in the
order `rfsweep --help` lists them.
"""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer
from rich.console import Console

from .. import __version__

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


def _fmt(value) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(_fmt(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def _fmt_field(value) -> str:
    """A layer field for the node table; per-side padding [[t, b], [l, r]] reads t:b x l:r."""
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(v, list) for v in value):
        sides = [f"{before}:{after}" for before, after in value]
        return sides[0] if sides[0] == sides[1] else "x".join(sides)
    return _fmt(value)


def round_pair(value, digits: int = 3):
    if isinstance(value, list):
        return [round(v, digits) for v in value]
    return round(value, digits)
