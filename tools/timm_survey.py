"""Import timm's models and compare them with PyTorch: params against numel, MACs against
torch.utils.flop_counter / 2, on the meta device (no weights, no compute). Prints one line per model:
OK, WRONG (a number differs: a bug), REFUSED (one-line refusal) or CRASH (a traceback: a bug).

Usage:
  python tools/timm_survey.py                  # the two shortest names of each family below
  python tools/timm_survey.py resnet18 vit_tiny_patch16_224 ...
"""

from __future__ import annotations

import sys
import warnings

FAMILIES = ("resnet", "resnetv2", "regnet", "efficientnet", "tf_efficientnet", "mobilenetv2", "mobilenetv3",
            "tf_mobilenetv3", "mnasnet", "ghostnet", "densenet", "dla", "dpn", "vgg", "inception", "xception",
            "res2net", "resnext", "seresnext", "senet", "sknet", "selecsls", "hrnet", "cspresnet", "cspdarknet",
            "darknet", "repvgg", "rexnet", "mixnet", "convnext", "convnextv2", "nfnet", "nf_", "eca_", "gernet",
            "hardcorenas", "lcnet", "tinynet", "fbnet", "ese_vovnet", "vovnet", "efficientvit", "mobilevit",
            "mobilevitv2", "edgenext", "levit", "vit_", "deit", "cait", "xcit", "pit", "tnt", "coat", "coatnet",
            "maxvit", "maxxvit", "crossvit", "twins", "pvt", "poolformer", "convmixer", "mlp_mixer", "resmlp",
            "gmlp", "swin", "focalnet", "inception_next", "fastvit", "repghost", "repvit", "tresnet", "resnest",
            "halonet", "botnet", "lambda", "volo", "beit", "eva", "davit", "gcvit", "nest", "sequencer", "hgnet",
            "rdnet", "starnet", "mambaout", "efficientformer", "tiny_vit", "hiera", "vitamin", "ghostnetv2",
            "dm_nfnet", "nasnet", "pnasnet", "legacy")


def survey(names):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import rfsweep
    from rfsweep.errors import RfsweepError
    from rfsweep.torch_import import from_torch
    from rfsweep.torch_import.targets import torchvision_compatible

    torchvision_compatible()
    import timm

    if not names:
        names = list(dict.fromkeys(n for f in FAMILIES for n in sorted(timm.list_models(f + "*"), key=len)[:2]))
    counts = {}
    for name in names:
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False, num_classes=10)
        size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224))[-1]
        try:
            total = rfsweep.analyze(from_torch(model, size))["total"]
        except RfsweepError as exc:
            verdict, line = "REFUSED", str(exc)
        except Exception as exc:  # noqa: BLE001 - a crash is what the survey looks for
            verdict, line = "CRASH", f"{type(exc).__name__}: {exc}"
        else:
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                model.eval()(torch.empty(1, 3, size, size, device="meta"))
            params = sum(p.numel() for p in model.parameters())
            ok = total["params"] == params and 2 * total["macs"] == counter.get_total_flops()
            verdict = "OK" if ok else "WRONG"
            line = (f"params {total['params']:,} (numel {params:,}), MACs {total['macs']:,} "
                    f"(flop_counter/2 {counter.get_total_flops() // 2:,}); global from {total.get('global_from')}")
        counts[verdict] = counts.get(verdict, 0) + 1
        print(f"{name} at {size}: {verdict} {line}", flush=True)
    print(", ".join(f"{verdict} {count}" for verdict, count in sorted(counts.items())))


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    survey(sys.argv[1:])
