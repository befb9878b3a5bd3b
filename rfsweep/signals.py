"""SIGINT/SIGTERM that cannot be lost.

A handler records the signal and raises `Interrupted`. An exception raised
inside a callback from C (numba's JIT cache hooks, for one) can be swallowed,
so long-running loops also call `check()` at safe points, and the sweep
calls it once more just before renaming its file into place: an interrupted
run never replaces OUT. Without `install()` (library use) nothing changes.

The rename itself runs inside `deferred()`: a signal arriving then is held
until the rename is done and recorded (`committed`), so the exit message can
say exactly what is at OUT: untouched (the signal came first) or the new,
complete file (it came after).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
_received: int | None = None
_deferring = 0  # threads inside deferred(); the handler only records while > 0
_lock = threading.Lock()
_committed: list[str] = []  # outputs renamed into place, complete, in this process


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
        done = list(dict.fromkeys(_committed))
        if not done:
            return f"{what}; nothing was left half-written"
        names = ", ".join(done[-2:]) + (f" and {len(done) - 2} more" if len(done) > 2 else "")
        complete = "is complete and in place" if len(done) == 1 else "are complete and in place"
        return (f"{what} after the output was written: {names} {complete}; "
                "nothing was left half-written")


def _handler(signum, frame):
    global _received
    _received = signum
    if _deferring:
        return  # raised when the deferred block ends
    raise Interrupted(signum)


@contextmanager
def deferred():
    """Hold SIGINT/SIGTERM for a short step that must not be cut (the final rename); raise after."""
    global _deferring
    with _lock:
        _deferring += 1
    try:
        yield
    finally:
        with _lock:
            _deferring -= 1
    check()


def committed(path) -> None:
    """Record that `path` now holds a complete new output (a later signal's message names it)."""
    _committed.append(str(path))


def install() -> None:
    """Route SIGINT and SIGTERM to `Interrupted` (the CLI does this first)."""
    for signum in EXIT_CODES:
        signal.signal(signum, _handler)


def installed() -> bool:
    """True once `install()` routed SIGINT here: a KeyboardInterrupt is then not a real Ctrl-C."""
    return signal.getsignal(signal.SIGINT) is _handler


def received() -> Interrupted | None:
    """The interruption recorded so far, if any."""
    return Interrupted(_received) if _received is not None else None


def check() -> None:
    """Raise Interrupted if a signal arrived, even if its first exception was swallowed."""
    if _received is not None:
        raise Interrupted(_received)
