"""Shared test set-up.

Hypothesis: random examples locally (to keep finding bugs), a fixed
derandomized set under CI=true, so a submission's CI run is repeatable.

Signals: rfsweep.cli.main installs SIGINT/SIGTERM handlers; tests calling it
in-process get pytest's own handlers back after every test.
"""

import os
import signal

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

_PYTEST_HANDLERS = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}


@pytest.fixture(autouse=True)
def _restore_signal_handlers():
    yield
    for signum, handler in _PYTEST_HANDLERS.items():
        signal.signal(signum, handler)
