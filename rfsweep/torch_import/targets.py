"""Loading a user's model: `package.module:callable` or `path/to/file.py:callable` -> an nn.Module.

Every failure is one RfsweepError line (the CLI's exit 2), never the user's traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import torch.nn as nn

from ..errors import RfsweepError


def load_target(text: str) -> nn.Module:
    """`package.module:callable` or `path/to/file.py:callable` -> the Module it returns (no arguments).

    Every failure is an RfsweepError with one line: missing file or module,
    no such attribute, an exception inside the user's code, not a Module.
    """
    if not isinstance(text, str) or text.count(":") < 1:
        raise RfsweepError(f"--torch target must be 'package.module:callable' or 'path/to/file.py:callable', "
                           f"got {text!r}")
    where, _, attr = text.rpartition(":")
    if not where or not attr:
        raise RfsweepError(f"--torch target must be 'package.module:callable' or 'path/to/file.py:callable', "
                           f"got {text!r}")
    module = _import_target(where)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise RfsweepError(f"{where} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise RfsweepError(f"{where}:{attr} is neither callable nor a torch.nn.Module")
    try:
        model = obj()
    except Exception as exc:  # the user's code: report it in one line
        raise RfsweepError(f"calling {where}:{attr}() failed: {type(exc).__name__}: {_one_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise RfsweepError(f"{where}:{attr}() returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _one_line(exc) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")


_TORCHVISION_SCHEMAS = ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
                        "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_torchvision_library = []


def torchvision_compatible() -> bool:
    """Make `import torchvision` work when its compiled ops cannot load (a CUDA-built torchvision
    wheel beside a CPU torch): torchvision then still registers a fake kernel for nms/qnms, which
    fails with "operator torchvision::nms does not exist". Declaring those two schemas lets the
    Python package import; its models (and timm's) use no compiled op. Returns whether it applied."""
    try:
        importlib.import_module("torchvision")
        return False
    except ImportError:
        return False
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
    import torch
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith(("torchvision.", "timm"))]:
        del sys.modules[name]  # the half-imported package, and anything that imported it
    if not _torchvision_library:
        library = torch.library.Library("torchvision", "DEF")
        for schema in _TORCHVISION_SCHEMAS:
            library.define(schema)
        _torchvision_library.append(library)  # kept alive: the schemas live as long as it does
    importlib.import_module("torchvision")
    return True


def _import_target(where: str):
    try:
        return _import_target_once(where)
    except RfsweepError as exc:
        if "torchvision::" in str(exc) and torchvision_compatible():
            return _import_target_once(where)
        raise


def _import_target_once(where: str):
    is_file = where.endswith(".py") or "/" in where or "\\" in where
    try:
        if is_file:
            path = Path(where)
            if not path.is_file():
                raise RfsweepError(f"model file not found: {where}")
            name = f"_rfsweep_model_{abs(hash(str(path.resolve())))}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses and pickling look modules up here
            parent = str(path.resolve().parent)
            sys.path.insert(0, parent)  # so the file can import its neighbours
            try:
                spec.loader.exec_module(module)
            finally:
                if sys.path and sys.path[0] == parent:
                    sys.path.pop(0)
            return module
        return importlib.import_module(where)
    except RfsweepError:
        raise
    except ModuleNotFoundError as exc:
        if not is_file and exc.name and where.startswith(exc.name):
            raise RfsweepError(f"no module named {where!r} (is it installed, or on PYTHONPATH?)") from None
        raise RfsweepError(f"importing {where} failed: {type(exc).__name__}: {_one_line(exc)}") from None
    except BaseException as exc:  # SyntaxError, SystemExit in a script, anything at import time
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise RfsweepError(f"importing {where} failed: {type(exc).__name__}: {_one_line(exc)}") from None
