"""Importing + explaining ResNet-50 (and friends) with rfsweep, next to torchinfo, fvcore, ptflops.

rfsweep needs no forward pass (fx trace + meta shapes); the other tools run the model at the real
input size on CPU. Usage: python benchmarks/bench_torch_import.py [--repeat 3]
Prints one line per tool and model: median seconds (first call in the process shown separately).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    import_torch = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c",
                    "import sys; sys.path.insert(0, 'tests'); import torch_nets, rfsweep; "
                    "from rfsweep.torch_import import from_torch; "
                    "rfsweep.analyze(from_torch(torch_nets.resnet50(), 224))"], check=True, cwd=ROOT)
    whole = time.perf_counter() - t
    print(f"process: python -c 'import torch' {import_torch:.2f} s; import + build ResNet-50 + from_torch + "
          f"analyze {whole:.2f} s (building the model's real weights included)")

    import torch
    import torch_nets as N
    import rfsweep
    from rfsweep.torch_import import from_torch

    models = {"resnet18": N.resnet18, "resnet50": N.resnet50, "mobilenet_v2": N.MobileNetV2, "vgg11": N.vgg11}
    x = torch.randn(1, 3, 224, 224)
    for name, build in models.items():
        model = build().eval()
        first, median = timed(lambda: rfsweep.analyze(from_torch(model, 224)), args.repeat)
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
                first, median = timed(fn, args.repeat)
            print(f"{name:13s} {tool:9s} (forward at 224)   first {first:.3f} s  median {median:.3f} s")


if __name__ == "__main__":
    main()
