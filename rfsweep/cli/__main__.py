"""`python -m rfsweep.cli`: the same as the `rfsweep` command."""

from . import main

main()
