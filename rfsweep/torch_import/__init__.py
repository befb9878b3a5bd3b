"""Import a torch.nn.Module as an rfsweep graph (contract section 7). The only package that imports torch.

`from_torch(module)` records the module's computation and maps every op to a
node of the graph model (contract section 6), through one table of
`op -> node builder`. The rooms:

- targets.py: `load_target`, a user's `file.py:callable` / `pkg.mod:callable`;
- values.py: a recorded tensor (`Val`), the graph under construction (`Builder`), refusals;
- ops.py: the op table (conv, pools, norms, merges, reshapes ... -> nodes);
- shapes.py: each op's output shape by PyTorch's formulas, so no meta kernel runs;
- recorder.py: the dispatcher both tracers share (leaf modules in functional form);
- fx.py: tracer 1, torch.fx symbolic tracing (no forward pass at all);
- meta.py: tracer 2, when fx cannot trace the module (Python control flow, shape
  unpacking): a forward on the *meta* device (shapes only) under a TorchFunctionMode;
- convert.py: `from_torch`, which tries the tracers in that order.

Shapes are carried by empty meta tensors, so the real model is never run and
its weights are never copied. Batch size 2 on meta keeps BatchNorm's
training-mode checks quiet. Tensor layouts (NCHW, channels-last, a channel
shuffle's 5-D view) are tracked so that reshapes, permutes and the
channels-last Linear of ConvNeXt-style blocks map to the right nodes.
"""

from .convert import from_torch
from .targets import load_target
from .values import Unsupported

__all__ = ["from_torch", "load_target", "Unsupported"]
