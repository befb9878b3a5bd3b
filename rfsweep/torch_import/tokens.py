"""Token layouts and attention: which tensor axis holds which spatial axis after flatten, transpose,
reshape, permute and unbind, and the `global` node where tokens are mixed (contract section 8).

A value's layout is a role per dim: B (batch), C (a part of the channels), H and W (a map's axes),
T (tokens: `prefix` non-spatial rows such as class tokens, then the h*w positions row-major) and K
(key tokens of attention scores). A reshape is read as merges and splits of groups of neighbouring
dims: H,W -> T (`flatten(2)`), T -> H,W (the reshape back to a map, no prefix rows), channel parts
with channel parts, any dim unchanged; anything that mixes roles (space into channels, batch with
anything) is refused with the op and the module path. Per-token ops (Linear and LayerNorm over C,
GELU) stay 1x1; their class-token rows add MACs (`macs` on the node).

Attention: `q @ k^T` (contracting channels, tokens on both sides) gives scores that are pending,
not yet a node; elementwise ops and softmax over the keys keep them pending; `scores @ v`,
`scaled_dot_product_attention` and `nn.MultiheadAttention` emit a `global` node reading every
source, with the matmuls' MACs (flop_counter's count). `k^T @ v`-style products contracting the
tokens (cross-covariance attention) give a pending context matrix that becomes global the same way.
"""

from __future__ import annotations

import math
from dataclasses import replace


from . import patches
from .values import BATCH, Val, _bind, _fail, _val_of

KEEP = object()


def roles(x: Val, tokens: bool = False) -> list:
    """A role per dim of x; with `tokens`, a signal's (rank-1 map's) axis is its token sequence."""
    r = ["C"] * x.meta.dim()
    r[x.batch] = "B"
    if x.hw is not None:  # a signal's axis is W, an image's H and W, a volume's D, H and W
        for d, axis in zip(x.hw, "DHW"[-len(x.hw):]):
            r[d] = axis
    if x.tok is not None:
        r[x.tok[0]] = "T"
    if x.pending is not None and x.pending[2] is not None:
        r[x.pending[2]] = "K"
    for d, axis in x.fine:
        r[d] = axis
    if tokens and x.tok is None and x.hw is not None and len(x.hw) == 1:
        r[x.hw[0]] = "T"
    return r


def from_roles(x: Val, node: str, meta, r: list, where, tok=None, pending=KEEP, plain=False) -> Val:
    """A Val with a role per dim, carrying x's token geometry (or `tok`, (prefix, h, w))."""
    if x.merged is not None:
        raise _fail(where[0], where[1], "tokens flattened into the batch (only per-row ops and the reshape back "
                                        "are followed)")
    if r.count("B") != 1 or any(r.count(k) > 1 for k in "DHWTK"):
        raise _fail(where[0], where[1], f"the layout {''.join(r)} has no single batch/spatial dim")
    axes = [k for k in "DHW" if k in r]
    if axes and axes != list("DHW"[-len(axes):]):
        raise _fail(where[0], where[1], "a map axis without its partner")
    hw = tuple(r.index(k) for k in axes) or None
    t = None
    if "T" in r:
        if tok is None and x.tok is None and x.hw is not None and len(x.hw) == 1:
            tok = (0, 1, int(x.meta.shape[x.hw[0]]))  # a signal read as tokens (roles(x, tokens=True))
        prefix, h, w = tok if tok is not None else x.tok[1:]
        t = (r.index("T"), prefix, h, w)
        if h == 1 and not prefix and not axes and x.patches is None:  # a signal's tokens are its map again
            hw, t = (t[0],), None
    p = x.pending if pending is KEEP else pending
    if p is not None:
        p = (p[0], p[1], r.index("K") if "K" in r else None)
    chans = tuple(i for i, role in enumerate(r) if role == "C")
    fine = tuple((i, role) for i, role in enumerate(r) if role in ("h", "w"))
    return Val(node, meta, hw, chans, plain and len(chans) == 1, t, r.index("B"), p, fine, patches=x.patches)


def _tok_geometry(x: Val, r: list, s: list):
    """(prefix, h, w) of x's tokens, or of its map."""
    if x.tok is not None:
        return x.tok[1:]
    return 0, s[r.index("H")] if "H" in r else 1, s[r.index("W")]


# ------------------------------------------------------------------ reshape, permute, split, index

def _groups(s: list, t: list):
    """Pair groups of neighbouring non-1 dims of s and t with equal products, or None."""
    si = [i for i, n in enumerate(s) if n != 1]
    tj = [j for j, n in enumerate(t) if n != 1]
    out, i, j = [], 0, 0
    while i < len(si) and j < len(tj):
        gi, gj = [si[i]], [tj[j]]
        a, b = s[si[i]], t[tj[j]]
        i, j = i + 1, j + 1
        while a != b:
            if a < b:
                if i == len(si):
                    return None
                a *= s[si[i]]
                gi.append(si[i])
                i += 1
            else:
                if j == len(tj):
                    return None
                b *= t[tj[j]]
                gj.append(tj[j])
                j += 1
        out.append((gi, gj))
    return out if i == len(si) and j == len(tj) else None


def reshape(b, name, x: Val, out, note) -> Val:
    s, t = list(x.meta.shape), list(out.shape)
    if x.scrambled is not None or _unfolds(x, s, t):
        return patches.apply(b, name, x if x.scrambled is not None else patches.scramble(x),
                             lambda index: index.reshape(t), out, note)
    if x.merged is not None:  # tokens flattened into the batch: only the reshape back
        if t != list(x.merged.meta.shape):
            raise _fail(note, name, f"reshape {tuple(s)} -> {tuple(t)} of tokens flattened into the batch (only "
                                    "per-row ops and the reshape back are followed)")
        return replace(x.merged, node=x.node, meta=out)
    r = roles(x)
    where = (note, name)
    if any(n == 1 and r[i] in "BDHWTK" for i, n in enumerate(s)):
        raise _fail(note, name, f"reshape {tuple(s)} -> {tuple(t)} of a map with a 1-unit axis (its dims cannot "
                                "be told apart): use a larger input size, or pass --end-point a node before it")
    groups = _groups(s, t)
    if groups is None:
        raise _fail(note, name, f"reshape {tuple(s)} -> {tuple(t)}")
    new = ["C"] * len(t)
    tok = None
    node = x.node
    prefix, h, w = _tok_geometry(x, r, s) if x.spatial else (0, 1, 1)
    channel_groups_kept = True
    merge = _batch_merge(x, r, t, groups, out)
    if merge is not None:
        return merge
    for gi, gj in groups:
        kinds = [r[i] for i in gi]
        if all(k == "C" for k in kinds):
            channel_groups_kept &= len(gi) == len(gj) == 1
            continue
        if len(kinds) == 1 and len(gj) == 1:
            new[gj[0]] = kinds[0]
            continue
        if kinds == ["H", "W"] and len(gj) == 1:  # flatten(2): the map's positions become tokens
            new[gj[0]] = "T"
            tok = (0, s[gi[0]], s[gi[1]])
            continue
        if kinds == ["T"] and len(gj) == 2 and prefix == 0 and [t[j] for j in gj] == [h, w]:
            new[gj[0]], new[gj[1]] = "H", "W"  # tokens back to a map
            continue
        if kinds in (["H"], ["W"]) and len(gj) == 2:  # (n) -> (n/f, f): blocks of f, offsets inside them
            new[gj[0]], new[gj[1]] = kinds[0], kinds[0].lower()
            continue
        if set(kinds) <= {"C", "h", "w"} and len(gj) == 1:  # the offsets join the channels: space-to-depth
            size = {axis: math.prod(s[i] for i in gi if r[i] == axis) for axis in "hw"}
            node = space_to_depth(b, name, node, size["h"], size["w"], note)
            continue
        raise _fail(note, name, f"reshape {tuple(s)} -> {tuple(t)} ({''.join(r)} -> ?): "
                                f"{_why_mixed(kinds, prefix)}; pass --end-point a node before it")
    return from_roles(x, node, out, new, where, tok=tok, plain=x.plain and channel_groups_kept and node == x.node)


def _unfolds(x: Val, s: list, t: list) -> bool:
    """Whether this reshape starts a patch unfold or a window partition (a map's positions into the
    batch) or a fold (patches as tokens into anything but their channels): followed concretely by
    patches.py."""
    if not patches.can_scramble(x):
        return False
    groups = _groups(s, t)
    r = roles(x)
    if x.patches is not None:
        return groups is None or any(len(gi) != 1 or len(gj) != 1 for gi, gj in groups
                                     if any(r[i] != "C" for i in gi))
    if any(n == 1 and r[i] in "BDHWhw" for i, n in enumerate(s)):
        return False  # a 1-unit axis: dims cannot be told apart (refused below)
    return groups is None or any("B" in kinds and len(set(kinds)) > 1 for kinds in
                                 ([r[i] for i in gi] for gi, _ in groups))


def _batch_merge(x: Val, r: list, t: list, groups, out):
    """(B, N, C) -> (B*N, C), as LeViT's `bn(x.flatten(0, 1)).reshape_as(x)`: in eval mode a BatchNorm
    (and any per-row op) treats each token alone, so the value is followed as the same tokens until
    the reshape back (anything else on it is refused). None when the reshape is not that."""
    if r != ["B", "T", "C"] or len(t) != 2 or x.pending is not None or x.tok[1] or \
            [[r[i] for i in gi] for gi, _ in groups] != [["B", "T"], ["C"]]:
        return None
    return Val(x.node, out, None, (1,), merged=x)


def _why_mixed(kinds: list, prefix: int) -> str:
    """Why a reshape that merges these roles into one dim is refused (the refusal's second half)."""
    space = {"D", "H", "W", "T"} & set(kinds)
    if kinds == ["T"] and prefix:
        return "class tokens are still in the sequence"
    if "B" in kinds and "T" in kinds and "C" not in kinds:
        return ("it merges the batch with the tokens (a BatchNorm over x.flatten(0, 1), as LeViT's): "
                "the layout of one map per image is not followed through that")
    if "B" in kinds and space and "C" not in kinds:
        return ("it moves the map into the batch: a window partition (Swin-style windowed attention, whose "
                "units see their own tile of the map: not mapped, and not read as global either)")
    if "B" in kinds and space:
        return "it moves the map into the batch: a patch unfold (MobileViT's)"
    if space:
        return "it moves space into the channels (a patch unfold, space-to-depth)"
    return "it mixes the batch with other dims"


def space_to_depth(b, name, source: str, fh: int, fw: int, note) -> str:
    """Each output unit holds one fh x fw block of its input in fh*fw times the channels, no
    parameters (TResNet's SpaceToDepth, nn.PixelUnshuffle): an fh x fw window with stride fh x fw,
    its channels repeated fh*fw times (a concat of copies: facts are per node, not per channel)."""
    if fh == fw:  # the graph's pixel_unshuffle: the same field; the channel order does not matter here
        return b.emit(name, "pixel_unshuffle", [source], True, f"{note}: space-to-depth {fh}x{fw}", factor=fh)
    pool = b.emit(name, "avgpool", [source], True, f"{note}: space-to-depth {fh}x{fw}",
                  kernel=[fh, fw] if fh != fw else fh, stride=[fh, fw] if fh != fw else fh, padding=0)
    if fh * fw == 1:
        return pool
    return b.emit(f"{name}.channels", "concat", [pool] * (fh * fw), True, f"space-to-depth: channels x {fh * fw}")


def permute(b, name, x: Val, perm: list, out, note) -> Val:
    if x.scrambled is not None:
        return patches.apply(b, name, x, lambda index: index.transpose(perm), out, note)
    r = roles(x)
    return from_roles(x, x.node, out, [r[p] for p in perm], (note, name), plain=x.plain)


def split(b, name, x: Val, dim: int, out, note):
    """chunk / split / unbind along a channel part of an unusual layout: one slice node per piece."""
    r = roles(x)
    if r[dim] != "C":
        raise _fail(note, name, f"splitting along a {r[dim]} dim (only channel parts can be split)")
    total = math.prod(x.meta.shape[d] for d in x.chans)
    pieces, start = [], 0
    for i, piece in enumerate(out):
        keep = piece.dim() == x.meta.dim()
        pr = r if keep else r[:dim] + r[dim + 1:]
        count = math.prod(piece.shape[d] for d, role in enumerate(pr) if role == "C")
        stop = min(start + count, total)
        node = b.emit(f"{name}.{i}", "slice", [x.node], True, note, channels=[start, stop])
        pieces.append(from_roles(x, node, piece, pr, (note, name)))
        start = stop
    return tuple(pieces)


def _after_global(b, node: str) -> bool:
    """Whether a global node lies on some path to `node`."""
    todo, seen = [node], set()
    while todo:
        item = todo.pop()
        spec = b.by_name.get(item)
        if spec is None or item in seen:
            continue
        if spec["type"] == "global":
            return True
        seen.add(item)
        todo.extend(spec["inputs"])
    return False


def getitem(b, name, x: Val, index: tuple, out, note="indexing") -> Val:
    """x[:, prefix:] (drop the class tokens), x[:, 0] (read the class token: global after attention)."""
    r = roles(x)
    index = index + (slice(None),) * (x.meta.dim() - len(index))
    keep = list(r)
    tok = x.tok
    for dim, item in enumerate(index):
        if isinstance(item, slice) and item == slice(None):
            continue
        if r[dim] != "T":
            raise _fail(note, name, f"index {item!r} on a {r[dim]} dim of a token layout (only the token "
                                    "dim: x[:, prefix:] or a class token x[:, 0])")
        n, prefix = x.meta.shape[dim], x.tok[1]
        if isinstance(item, slice) and item.step in (None, 1) and item.indices(n)[:2] == (prefix, n):
            tok = (x.tok[0], 0, x.tok[2], x.tok[3])
            continue
        if isinstance(item, int) and 0 <= item % n < prefix:
            if not _after_global(b, x.node):
                raise _fail(note, name, "a class token read before any attention sees no pixel")
            node = b.emit(name, "global_pool", [x.node], False, "class token (after attention: every pixel)")
            rest = r[:dim] + r[dim + 1:]
            return Val(node, out, None, tuple(i for i, k in enumerate(rest) if k != "B"), batch=rest.index("B"))
        raise _fail(note, name, f"index {item!r} on the token dim (only x[:, prefix:] or a class token)")
    return from_roles(x, x.node, out, keep, (note, name), tok=tok[1:] if tok else None)


def cat(b, name, tensors, dim: int, out, note) -> Val:
    """Class/register tokens before the sequence (constants along T); maps along channels."""
    vals = [t for t in tensors if isinstance(t, Val)]
    x = vals[0]
    r = roles(x)
    if r[dim] == "T" and len(vals) == 1 and tensors[-1] is x:
        extra = sum(int(t.shape[dim]) for t in tensors[:-1])
        prefix, h, w = x.tok[1:]
        return from_roles(x, x.node, out, r, (note, name), tok=(prefix + extra, h, w))
    if r[dim] == "C" and len(vals) == len(tensors) and all(roles(v) == r for v in vals) and x.pending is None:
        node = b.emit(name, "concat", list(dict.fromkeys(v.node for v in vals)), True, note)
        return from_roles(x, node, out, r, (note, name))
    raise _fail(note, name, f"concatenation along a {r[dim]} dim (class tokens go before the sequence; "
                            "maps concatenate along channels)")


def reduce(b, name, x: Val, dims: set, out, note) -> Val:
    """Over the tokens: global pooling; over channel parts only (ResNeSt's radix sum): per position,
    a channel count change without parameters (a slice node: facts are per node, not per channel)."""
    r = roles(x)
    kinds = {r[d] for d in dims}
    if kinds == {"T"}:
        node = b.emit(name, "global_pool", [x.node], False, note)
        rest = [k for d, k in enumerate(r) if d not in dims or out.dim() == x.meta.dim()]
        return Val(node, out, None, tuple(i for i, k in enumerate(rest) if k != "B"), batch=rest.index("B"))
    if kinds == {"C"} and x.pending is None:
        keepdim = out.dim() == x.meta.dim()
        rest = r if keepdim else [k for d, k in enumerate(r) if d not in dims]
        channels = math.prod(out.shape[d] for d, k in enumerate(rest) if k == "C")
        node = b.emit(name, "slice", [x.node], True, f"{note} over channel parts", channels=[0, channels])
        return from_roles(x, node, out, rest, (note, name))
    raise _fail(note, name, f"reduction over {''.join(sorted(kinds))} dims of a {''.join(r)} layout")


def softmax(b, name, x: Val, dim: int, out, note) -> Val:
    r = roles(x)
    if r[dim] == "K" or (x.pending is not None and r[dim] == "C"):
        return replace(x, meta=out)  # normalising scores: still pending
    if r[dim] == "C":
        node = b.emit(name, "relu", [x.node], True, note)
        return replace(x, node=node, meta=out)
    raise _fail(note, name, f"softmax over a {r[dim]} dim")


def normalize(b, name, args, kwargs, out, note) -> Val:
    """F.normalize: over channels a per-position op; over the tokens (cross-covariance attention's
    q and k) every value depends on every token: pending, like attention scores."""
    a = _bind(args, kwargs, ("input", "p", "dim"), {"dim": 1})
    x = _val_of(a["input"], note, name)
    r = roles(x)
    dim = a["dim"] % x.meta.dim()
    if r[dim] == "C" and x.pending is None:
        node = b.emit(name, "relu", [x.node], x.spatial, note)
        return replace(x, node=node, meta=out)
    if r[dim] == "T":
        sources = (x.pending[0] if x.pending else ()) + (x.node,)
        return replace(x, meta=out, pending=(sources, x.pending[1] if x.pending else 0, None))
    raise _fail(note, name, f"normalising over a {r[dim]} dim")


def binary(b, name, vals: list, out, note) -> Val:
    """Scores scaled, masked or biased (a relative position bias): still pending."""
    pend = [v for v in vals if v.pending is not None]
    if len(pend) != len(vals):
        raise _fail(note, name, "arithmetic between attention scores and a feature map")
    sources = tuple(dict.fromkeys(s for v in pend for s in v.pending[0] + (v.node,)))
    x = max(pend, key=lambda v: v.meta.numel())
    return replace(x, meta=out, pending=(sources, sum(v.pending[1] for v in pend), x.pending[2]))


def adaptive(b, name, x: Val, out, note) -> Val:
    r = roles(x)
    if r[-1] == "T" and out.shape[-1] == 1 and x.pending is None:  # AdaptiveAvgPool1d(1) over tokens
        node = b.emit(name, "global_pool", [x.node], False, note)
        rest = r[:-1] + ["C"]
        return Val(node, out, None, tuple(i for i, k in enumerate(rest) if k != "B"), batch=rest.index("B"))
    raise _fail(note, name, f"adaptive pooling of a {''.join(r)} layout")


# ------------------------------------------------------------------ attention

def _per_image(out) -> int:
    return out.numel() // BATCH


def _emit_global(b, name, sources, out_val: Val, out, macs: int, note) -> Val:
    r = roles(out_val)
    channels = math.prod(out.shape[d] for d, k in enumerate(r) if k == "C")
    node = b.emit(name, "global", list(dict.fromkeys(sources)), True, note, out_channels=int(channels),
                  macs=int(macs), **patches.global_fields(out_val))
    return replace(out_val, node=node, meta=out, pending=None)


def matmul(b, name, args, kwargs, out, note) -> Val:
    a, c = (list(args) + [kwargs.get("other"), None])[:2] if len(args) >= 2 else \
        (args[0] if args else kwargs.get("input"), kwargs.get("other", kwargs.get("mat2")))
    if not isinstance(a, Val) or not isinstance(c, Val):
        x, weight = (a, c) if isinstance(a, Val) else (c, a)
        return _matmul_weight(b, name, x, weight, a is x, out, note)
    if a.meta.dim() < 3 or c.meta.dim() < 3:
        raise _fail(note, name, "a matrix product of a map with a vector")
    ra, rc = roles(a, tokens=True), roles(c, tokens=True)
    contract = (ra[-1], rc[-2])
    rows, cols = ra[-2], rc[-1]
    k = a.meta.shape[-1]
    macs = _per_image(out) * k + sum(v.pending[1] for v in (a, c) if v.pending is not None)
    sources = tuple(s for v in (a, c) for s in ((v.pending[0] if v.pending else ()) + (v.node,)))
    batch_roles = ra[:-2]
    if contract == ("C", "C") and rows == "T" and cols == "T" and not a.pending and not c.pending:
        # q @ k^T: scores over (query tokens, key tokens), not yet applied
        return from_roles(a, a.node, out, batch_roles + ["T", "K"], (note, name), pending=(sources, macs, None))
    if contract in (("K", "T"), ("T", "K"), ("C", "C")) and "T" in (rows, cols) and (a.pending or c.pending):
        # scores @ v (or v @ scores^T, LeViT's conv layout), or a context matrix @ v: every output token
        # reads every source token
        carrier = a if rows == "T" else c
        other = c if carrier is a else a  # the query's sources first: the global node takes its grid
        sources = tuple(s for v in (carrier, other) for s in ((v.pending[0] if v.pending else ()) + (v.node,)))
        r = batch_roles + [rows, cols]
        val = from_roles(carrier, carrier.node, out, r, (note, name), tok=carrier.tok[1:] if carrier.tok else None,
                         pending=None)
        return _emit_global(b, name, sources, val, out, macs, "attention: every unit reads every token")
    if contract == ("T", "T") and rows == "C" and cols == "C":
        # k^T v over all tokens (cross-covariance attention): a context matrix of the whole map
        return from_roles(a, a.node, out, batch_roles + ["C", "C"], (note, name), tok=None,
                          pending=(sources, macs, None))
    raise _fail(note, name, f"matrix product of {''.join(ra)} and {''.join(rc)} layouts")


def _matmul_weight(b, name, x: Val, weight, left: bool, out, note) -> Val:
    """x @ W with a parameter W: a per-token linear map (a 1x1 conv)."""
    r = roles(x)
    if not left or r[-1] != "C" or weight.dim() != 2 or x.pending is not None or not x.spatial:
        raise _fail(note, name, "a matrix product with a constant that is not a per-token linear map")
    cin, cout = int(weight.shape[0]), int(weight.shape[1])
    node = b.emit(name, "conv", [x.node], True, note, kernel=1, stride=1, padding=0, dilation=1, groups=1,
                  out_channels=cout, bias=False, **extra_token_macs(x, cin * cout))
    return replace(x, node=node, meta=out)


def extra_token_macs(x: Val, per_token: int) -> dict:
    """{'macs': ...} for the class-token rows a per-token op also computes (none on a plain map)."""
    if x.tok is None or not x.tok[1]:
        return {}
    others = math.prod(x.meta.shape[d] for d, k in enumerate(roles(x)) if k not in "BTC") if x.meta.dim() > 3 else 1
    return {"macs": int(x.tok[1] * others * per_token)}


def sdpa(b, name, args, kwargs, out, note) -> Val:
    a = _bind(args, kwargs, ("query", "key", "value"))
    q, k, v = (_val_of(a[key], note, name) for key in ("query", "key", "value"))
    if any(roles(t, tokens=True)[-2] != "T" for t in (q, k, v)):
        raise _fail(note, name, "attention over a dim that does not hold the tokens")
    n_keys = k.meta.shape[-2]
    macs = _per_image(q.meta) * n_keys + _per_image(out) * n_keys
    return _emit_global(b, name, (q.node, k.node, v.node), replace(q, pending=None), out, macs,
                        "scaled_dot_product_attention: every unit reads every token")


def multihead_attention(b, name, mod, args, kwargs, out, note) -> Val:
    """nn.MultiheadAttention (self-attention, torch's own forward): in-projection (a 1x1 conv),
    attention (global), out-projection (a 1x1 conv); returns (output, None)."""
    a = _bind(args, kwargs, ("query", "key", "value"))
    q, k, v = (a.get(key) for key in ("query", "key", "value"))
    if not all(isinstance(t, Val) for t in (q, k, v)) or len({t.node for t in (q, k, v)}) != 1:
        raise _fail(f"module {type(mod).__name__}", name, "only self-attention (query, key and value the "
                                                         "same tensor) is supported")
    if not mod._qkv_same_embed_dim or mod.in_proj_weight is None:
        raise _fail(f"module {type(mod).__name__}", name, "separate q/k/v projections (kdim/vdim)")
    if mod.bias_k is not None or mod.add_zero_attn:
        raise _fail(f"module {type(mod).__name__}", name, "add_bias_kv / add_zero_attn (extra key tokens)")
    x = q
    r = roles(x, tokens=True)
    if r[-1] != "C" or "T" not in r or x.pending is not None:
        raise _fail(f"module {type(mod).__name__}", name, f"its input layout {''.join(r)} has no token dim")
    e = mod.embed_dim
    n = x.meta.shape[r.index("T")]
    bias = mod.in_proj_bias is not None
    proj = b.emit(f"{name}.in_proj", "conv", [x.node], True, "MultiheadAttention in-projection", kernel=1,
                  stride=1, padding=0, dilation=1, groups=1, out_channels=3 * e, bias=bias,
                  **extra_token_macs(x, e * 3 * e))
    mixed = b.emit(name, "global", [proj], True, "MultiheadAttention: every unit reads every token",
                   out_channels=e, macs=int(2 * n * n * e), **patches.global_fields(x))
    out_bias = mod.out_proj.bias is not None
    node = b.emit(f"{name}.out_proj", "conv", [mixed], True, "MultiheadAttention out-projection", kernel=1,
                  stride=1, padding=0, dilation=1, groups=1, out_channels=e, bias=out_bias,
                  **extra_token_macs(x, e * e))
    for node_name, names in ((proj, ("in_proj_weight", "in_proj_bias")), (node, ("out_proj.weight", "out_proj.bias"))):
        b.params.charge(node_name, [f"{name}.{n}" for n in names if f"{name}.{n}" in b.params.canonical])
    return replace(x, node=node, meta=out[0] if isinstance(out, tuple) else out), None  # as torch: (out, weights)
