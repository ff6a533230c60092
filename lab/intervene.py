"""Change a streaming model while it runs: interventions at named hook points, and head ablation.

    def silence_head(value, ctx):          # value: the hook's tensor this step; ctx: where we are
        value = value.clone()
        value[:, 3] = 0                    # blocks.2.attn.heads is (B, H, head_dim)
        return value                       # or None: keep the value as it is
    with lab.intervene(model, {"blocks.2.attn.heads": silence_head}):
        model.transcribe("clip.wav")

    with lab.ablate(model, heads=[(2, 3), (3, 0)]):          # the same, by name
        ...
    with lab.ablate(model, heads=[(2, 3)], mode="mean", means=lab.head_means(model, clips)):
        ...

Both are context managers over the model's hook points (lab.hooks): the weights are never touched, and on
exit (also after an exception) every function they attached is detached, so the model is exactly as before.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .hooks import match_names, record


@dataclass(frozen=True)
class HookContext:
    """What an intervention knows besides the value: the hook's name, the step each stream is at (B,) and
    which streams really step (B,) (in a batch, the others' rows are ignored by the model)."""

    name: str
    positions: torch.Tensor
    active: torch.Tensor


def _checked(name: str, value: torch.Tensor, out) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"intervention at {name!r} returned {type(out).__name__}; return a tensor or None")
    if out.shape != value.shape:
        raise ValueError(f"intervention at {name!r} returned shape {tuple(out.shape)}; the hook's value has "
                         f"shape {tuple(value.shape)}")
    return out.to(device=value.device, dtype=value.dtype)


@contextmanager
def intervene(model, edits: dict):
    """At every hook whose name matches a pattern of `edits` (globs, as in lab.record), call `fn(value, ctx)`
    each step; a returned tensor (same shape) replaces the value, None keeps it. Patterns are checked, and
    nothing is attached, before the block runs."""
    if not isinstance(edits, dict) or not edits:
        raise ValueError("intervene(model, edits): edits must be a non-empty dict {hook pattern: fn(value, ctx)}")
    points = model.hook_points()
    attached = []
    for pattern, fn in edits.items():
        if not callable(fn):
            raise TypeError(f"intervene: the function for {pattern!r} is not callable: {fn!r}")
        for name in match_names(list(points), (pattern,)):
            attached.append((points[name], _wrap(model, fn)))
    try:
        for point, wrapped in attached:
            point.fns.append(wrapped)
        yield model
    finally:
        for point, wrapped in attached:
            if wrapped in point.fns:
                point.fns.remove(wrapped)


def _wrap(model, fn):
    def wrapped(name, value):
        out = fn(value, HookContext(name, model.step_positions, model.step_active))
        return None if out is None else _checked(name, value, out)

    return wrapped


def _check_heads(model, heads) -> list[tuple[int, int]]:
    cfg = model.cfg
    checked = []
    for item in heads:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(f"ablate: heads are (layer, head) pairs, got {item!r}")
        layer, head = int(item[0]), int(item[1])
        if not 0 <= layer < cfg.num_layers or not 0 <= head < cfg.num_heads:
            raise ValueError(f"ablate: head {(layer, head)} does not exist; this model has {cfg.num_layers} layers "
                             f"of {cfg.num_heads} heads")
        checked.append((layer, head))
    if not checked:
        raise ValueError("ablate: no heads given")
    return checked


def ablate(model, heads, mode: str = "zero", means: torch.Tensor | None = None):
    """Replace the output of each (layer, head) before the output projection: by zeros ("zero", the same as
    zeroing that head's columns of out_proj), or by its mean ("mean", `means` (layers, heads, head_dim) from
    `head_means`). A context manager, like `intervene`."""
    chosen = _check_heads(model, heads)
    if mode not in ("zero", "mean"):
        raise ValueError(f"ablate: mode must be 'zero' or 'mean', not {mode!r}")
    if mode == "mean":
        expected = (model.cfg.num_layers, model.cfg.num_heads, model.cfg.head_dim)
        if means is None:
            raise ValueError("ablate(mode='mean') needs means=: lab.head_means(model, clips) computes them")
        if tuple(means.shape) != expected:
            raise ValueError(f"ablate: means has shape {tuple(means.shape)}, expected {expected}")
    by_layer: dict[int, list[int]] = {}
    for layer, head in chosen:
        by_layer.setdefault(layer, []).append(head)

    def make(layer, hs):
        def fn(value, ctx):
            value = value.clone()
            value[:, hs] = 0 if mode == "zero" else means[layer, hs].to(value)
            return value

        return fn

    return intervene(model, {f"blocks.{layer}.attn.heads": make(layer, hs) for layer, hs in by_layer.items()})


def head_means(model, sources) -> torch.Tensor:
    """The mean output of every head (layers, heads, head_dim) over all steps of `sources` (paths, or
    (array, sample_rate) pairs), streamed as `transcribe` streams them: the reference for mean ablation."""
    sources = list(sources)
    if not sources:
        raise ValueError("head_means: no sources given")
    sums, count = None, 0
    with record(model, "blocks.*.attn.heads") as rec:
        for source in sources:
            model.transcribe(source)
    for layer in range(model.cfg.num_layers):
        values = torch.from_numpy(rec[f"blocks.{layer}.attn.heads"][:, 0])  # (steps, H, hd)
        sums = values.sum(0)[None] if sums is None else torch.cat([sums, values.sum(0)[None]])
        count = values.shape[0]
    return sums / count
