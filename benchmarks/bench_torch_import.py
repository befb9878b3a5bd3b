"""Importing + explaining ResNet-50 (and friends) with rfsweep, next to torchinfo, fvcore, ptflops.

rfsweep needs no forward pass (fx trace, shapes from the layers' own arithmetic); the other tools
run the model at the real input size on CPU.

Usage:
  python benchmarks/bench_torch_import.py [--repeat 3]          # warm: one process, tools compared
  python benchmarks/bench_torch_import.py --cold [--procs 3]    # cold: a fresh process per run
  python benchmarks/bench_torch_import.py --timm [--repeat 3]   # warm: timm's CNNs, ViTs, hybrids at 224

--cold spawns `python -c` per model and run, and times inside it, separately: `import torch`,
building the model (real weights), the FIRST `rfsweep.analyze(from_torch(model, 224))` of the
process (what a CLI user pays on top of torch), and the median of a few later calls. It prints the
median over --procs processes, then whole-process times of `import torch` and of
`rfsweep explain --torch tests/torch_nets.py:resnet50`. Issue 10's budget: under 1 s on top of torch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

MODELS = {"resnet18": "resnet18", "resnet50": "resnet50", "mobilenet_v2": "MobileNetV2", "vgg11": "vgg11"}

# One fresh process: every phase timed separately, printed as one JSON line.
COLD = """
import json, statistics, sys, time
t0 = time.perf_counter(); import torch; t1 = time.perf_counter()
sys.path.insert(0, 'tests'); import torch_nets
import rfsweep
from rfsweep.torch_import import from_torch
t2 = time.perf_counter(); model = torch_nets.{build}().eval(); t3 = time.perf_counter()
rfsweep.analyze(from_torch(model, 224)); t4 = time.perf_counter()
warm = []
for _ in range({repeat}):
    t = time.perf_counter(); rfsweep.analyze(from_torch(model, 224)); warm.append(time.perf_counter() - t)
print(json.dumps({{"import_torch": t1 - t0, "import_rfsweep": t2 - t1, "build": t3 - t2, "first": t4 - t3,
                  "warm": statistics.median(warm),
                  "dynamo_imported": "torch._dynamo" in sys.modules, "sympy_imported": "sympy" in sys.modules}}))
"""


def timed(fn, repeat):
    first = time.perf_counter()
    fn()
    first = time.perf_counter() - first
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return first, statistics.median(runs)


def cold(procs: int, repeat: int, models):
    print(f"cold: median of {procs} fresh processes per model; seconds; 'first' = first "
          "from_torch+analyze in the process (torch imported, model built)")
    print(f"{'model':13s} {'import torch':>12s} {'build':>7s} {'first':>7s} {'warm':>7s}  lazy torch imports")
    for name in models:
        rows = []
        for _ in range(procs):
            code = COLD.format(build=MODELS[name], repeat=repeat)
            done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"{name}: the child failed:\n{done.stderr}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))

        def med(key):
            return statistics.median(r[key] for r in rows)
        firsts = ", ".join(f"{r['first']:.2f}" for r in rows)
        lazy = [m for m, key in (("torch._dynamo", "dynamo_imported"), ("sympy", "sympy_imported"))
                if any(r[key] for r in rows)]
        print(f"{name:13s} {med('import_torch'):12.2f} {med('build'):7.2f} {med('first'):7.3f} {med('warm'):7.3f}  "
              f"{', '.join(lazy) or 'none'}  (first: {firsts})")


def cli(procs: int):
    """Whole processes: `python -c 'import torch'` against the CLI explaining ResNet-50 (which also
    imports typer/rich, builds the model with real weights and prints the table)."""
    explain = [sys.executable, "-c", "import sys; from rfsweep.cli import main; sys.exit(main())", "explain",
               "--torch", "tests/torch_nets.py:resnet50"]
    rows = {"import torch": [sys.executable, "-c", "import torch"], "rfsweep explain --torch resnet50": explain}
    for label, cmd in rows.items():
        runs = []
        for _ in range(procs):
            t = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
            runs.append(time.perf_counter() - t)
        rows[label] = statistics.median(runs)
        print(f"process: {label:34s} {rows[label]:.2f} s (median of {procs})")
    print(f"process: the CLI on top of import torch        {rows[list(rows)[1]] - rows['import torch']:.2f} s")


def warm(repeat: int, models):
    import torch
    import torch_nets as N

    import rfsweep
    from rfsweep.torch_import import from_torch

    x = torch.randn(1, 3, 224, 224)
    for name in models:
        model = getattr(N, MODELS[name])().eval()
        first, median = timed(lambda: rfsweep.analyze(from_torch(model, 224)), repeat)
        print(f"{name:13s} rfsweep  from_torch+analyze  first {first:.3f} s  median {median:.3f} s")
        tools = []
        try:
            import torchinfo
            tools.append(("torchinfo", lambda: torchinfo.summary(model, input_data=x, verbose=0)))
        except ImportError as exc:
            print(f"  torchinfo not installed ({exc})")
        try:
            from fvcore.nn import FlopCountAnalysis
            tools.append(("fvcore", lambda: FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
                          .uncalled_modules_warnings(False).total()))
        except ImportError as exc:
            print(f"  fvcore not installed ({exc})")
        try:
            from ptflops import get_model_complexity_info
            tools.append(("ptflops", lambda: get_model_complexity_info(model, (3, 224, 224), as_strings=False,
                                                                      print_per_layer_stat=False, verbose=False)))
        except ImportError as exc:
            print(f"  ptflops not installed ({exc})")
        for tool, fn in tools:
            with torch.no_grad():
                first, median = timed(fn, repeat)
            print(f"{name:13s} {tool:9s} (forward at 224)   first {first:.3f} s  median {median:.3f} s")


TIMM = ("resnet50d", "regnetx_002", "efficientnet_b0", "tf_efficientnet_b0", "mixnet_s", "rexnet_100",
        "nfnet_l0", "convnext_atto", "fastvit_t8", "tresnet_m", "resnest14d", "vit_tiny_patch16_224",
        "coatnet_nano_rw_224", "hrnet_w18_small", "levit_128s", "levit_conv_128s", "edgenext_xx_small",
        "mobilevit_xxs")
SIZE = {"mobilevit_xxs": 256}  # its own input size: at 224 its last stage (7x7) is resized to 8x8, refused


def timm_models(repeat: int):
    """Issue 17's budget: importing any of these takes under 0.5 s warm (the second call onwards in a
    process; models built on the meta device, so building costs nothing)."""
    import torch

    import rfsweep
    from rfsweep.torch_import import from_torch
    from rfsweep.torch_import.targets import torchvision_compatible

    torchvision_compatible()
    import timm

    print(f"warm from_torch + analyze at 224 unless noted (median of {repeat} after a first call); budget 0.5 s")
    worst = 0.0
    for name in TIMM:
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False)
        size = SIZE.get(name, 224)
        first, median = timed(lambda: rfsweep.analyze(from_torch(model, size)), repeat)
        nodes = len(from_torch(model, size)["nodes"])
        worst = max(worst, median)
        print(f"{name:22s} {nodes:5d} nodes  first {first:.3f} s  median {median:.3f} s"
              + (f"  (at {size})" if size != 224 else ""))
    print(f"slowest warm import: {worst:.3f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="warm calls per model (median)")
    parser.add_argument("--cold", action="store_true", help="time first calls in fresh processes")
    parser.add_argument("--procs", type=int, default=3, help="fresh processes per model with --cold")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--timm", action="store_true", help="time timm's models (issue 17's list) warm")
    args = parser.parse_args()
    if args.timm:
        timm_models(args.repeat)
    elif args.cold:
        cold(args.procs, args.repeat, args.models)
        cli(args.procs)
    else:
        warm(args.repeat, args.models)


if __name__ == "__main__":
    main()
