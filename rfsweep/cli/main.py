"""The console-script entry point: run the app, turn every failure into an exit code and one line.

Exit codes (contract section 5): 0 success, 2 bad input, 1 anything else,
130 after SIGINT, 143 after SIGTERM. Errors are one line on stderr.
"""

from __future__ import annotations

import errno
import logging
import os
import re
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
    """Errors are one line (Arrow's messages span several) of readable length; integers of more
    than 24 digits read '1234...6789 (400 digits)'."""
    line = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    line = _LONG_INT.sub(_abbreviate, line)
    return line if len(line) <= limit else line[:limit - 3] + "..."


_LONG_INT = re.compile(r"\d{1,3}(?:,\d{3}){8,}|\d{25,}")  # plain or with thousands separators


def _abbreviate(match: re.Match) -> str:
    digits = match[0].replace(",", "")
    return f"{digits[:4]}...{digits[-4:]} ({len(digits)} digits)"


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is when the note is made (tests swap it)."""

    def emit(self, record):
        stderr.print(_one_line(record.getMessage()), markup=False)


def _log_to_stderr() -> None:
    """Library notes (a stale temporary removed, a report without metadata) as plain stderr lines."""
    logger = logging.getLogger("rfsweep")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())
        logger.setLevel(logging.INFO)
        logger.propagate = False


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the Typer app and turn every failure into an exit code."""
    signals.install()
    _log_to_stderr()
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
    except MemoryError as exc:  # the machine's limit, not bad input (pyarrow's malloc failures too)
        _exit(1, f"error: out of memory{': ' + str(exc) if str(exc) else ''}")
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:  # a path check on a stack string or a huge name: bad input
            _exit(2, f"error: a file name is too long for this system ({str(exc.filename)[:60]}...)")
        _unexpected(exc)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no tracebacks for users
        _unexpected(exc)


def _unexpected(exc: Exception):
    if os.environ.get("RFSWEEP_DEBUG"):
        raise exc
    _exit(1, f"error: unexpected {type(exc).__name__}: {exc} (set RFSWEEP_DEBUG=1 for a traceback)")
