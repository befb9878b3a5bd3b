"""Hypothesis profiles: random examples locally (to keep finding bugs), a fixed
derandomized set under CI=true, so a submission's CI run is repeatable."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
