"""Write rfsweep/architectures/_summary.json: the `rfsweep archs` rows, analysed once (see rfsweep/arch_summary.py)."""

import json

from rfsweep.arch_summary import SUMMARY, build_summary
from rfsweep.output import atomic_output

if __name__ == "__main__":
    with atomic_output(SUMMARY, suffix=".json") as tmp:
        tmp.write_text(json.dumps(build_summary(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SUMMARY}")
