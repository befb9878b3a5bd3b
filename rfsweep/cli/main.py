"""The console-script entry point: run the app, turn every failure into an exit code and one line.

Exit codes (contract section 5): 0 success, 2 bad input, 1 anything else,
130 after SIGINT, 143 after SIGTERM. Errors are one line on stderr.
"""

from __future__ import annotations

import os
import signal
import sys

import typer

from .. import signals
from ..errors import OutputError, RfsweepError
from .app import app, stderr


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
        # typer validates with pydantic, whose messages start "Value error, ": noise to a user
        message = exc.format_message().replace("Value error, ", "")
        _exit(2, f"error: {message}{hint}")
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
