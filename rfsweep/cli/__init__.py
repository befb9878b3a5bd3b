"""The `rfsweep` shell command: parse flags, call the API, print. Nothing else.

One Typer app (app.py) that every command module registers on (explain, sweep,
analysis, visual, timing, tile); main.py is the console-script entry that turns
failures into exit codes. Command modules import app.py and the API, never
this package, so the imports run one way.
"""

from . import analysis, explain, sweep, tile, timing, visual
from .app import app
from .main import main

for _commands in (explain, sweep, analysis, visual, timing, tile):  # the order `rfsweep --help` lists them
    _commands.register(app)

__all__ = ["app", "main"]
