"""SIGINT/SIGTERM that cannot be lost.

A handler records the signal and raises `Interrupted`. An exception raised
inside a callback from C (numba's JIT cache hooks, for one) can be swallowed,
so long-running loops also call `check()` at safe points, and the sweep
calls it once more just before renaming its file into place: an interrupted
run never replaces OUT. Without `install()` (library use) nothing changes.
"""

from __future__ import annotations

import signal

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
_received: int | None = None


class Interrupted(BaseException):
    """A signal arrived; BaseException so that `except Exception` cannot swallow it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 128 + self.signum)

    def message(self) -> str:
        what = "interrupted (SIGINT)" if self.signum == signal.SIGINT else "terminated (SIGTERM)"
        return f"{what}; nothing was left half-written"


def _handler(signum, frame):
    global _received
    _received = signum
    raise Interrupted(signum)


def install() -> None:
    """Route SIGINT and SIGTERM to `Interrupted` (the CLI does this first)."""
    for signum in EXIT_CODES:
        signal.signal(signum, _handler)


def received() -> Interrupted | None:
    """The interruption recorded so far, if any."""
    return Interrupted(_received) if _received is not None else None


def check() -> None:
    """Raise Interrupted if a signal arrived, even if its first exception was swallowed."""
    if _received is not None:
        raise Interrupted(_received)
