"""Named hook points and recording: look inside a streaming model, step by step.

Every interesting activation passes through a `HookPoint` with a stable dotted name
(`blocks.3.attn.pattern`, `eot.probs`, ...): the model writes `x = hook.fire(x)`. A hook point with nothing
attached costs one attribute test, so the model runs at full speed when nobody looks; `record()` attaches
recorders for the names that match its patterns and detaches them on exit (`lab.intervene`, in
lab/intervene.py, attaches functions that may replace the value):

    with lab.record(model, "blocks.*.attn.pattern", "eot") as rec:
        model.transcribe("clip.wav")
    rec.to_frame()                 # one row per (hook, step, stream)
    rec.attention(layer=0, head=0) # (steps x keys), rows sum to 1
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from torch import nn


class HookPoint(nn.Module):
    """An identity point in the model with a stable name: `x = point.fire(x)`.

    Each attached function is called as `fn(name, value)`; one that returns a tensor replaces the value for
    the functions after it and for the model (an intervention), one that returns None only looks."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.fns: list = []

    @property
    def active(self) -> bool:
        return bool(self.fns)

    def fire(self, value: torch.Tensor) -> torch.Tensor:
        if self.fns:  # the only cost when nothing is attached
            for fn in self.fns:
                out = fn(self.name, value)
                if out is not None:
                    value = out
        return value

    def extra_repr(self):
        return repr(self.name)


def match_names(names: list[str], patterns: tuple[str, ...]) -> list[str]:
    """Names matched by glob patterns; a bare prefix ("eot", "blocks.0") matches everything under it."""
    chosen = []
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern) or n.startswith(pattern + ".")]
        if not hits:
            raise ValueError(f"hook pattern {pattern!r} matches no hook; known hooks: {', '.join(names)}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


class Recording:
    """Values collected by `record()`: per hook name, one tensor (B, ...) per step."""

    def __init__(self, model, names: list[str]):
        self.model = model
        self.names = names
        self.values: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.positions: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.active: dict[str, list[torch.Tensor]] = defaultdict(list)  # per step: which streams stepped

    def _collect(self, name: str, value: torch.Tensor):
        self.values[name].append(value.detach().float().cpu())
        self.positions[name].append(self.model.step_positions.to("cpu", copy=True))
        self.active[name].append(self.model.step_active.to("cpu", copy=True))

    def __getitem__(self, name: str) -> np.ndarray:
        """All values of one hook as an array (steps, B, ...); in a batch, the rows of a stream that sat a
        step out hold values the model ignored (`to_frame` and `attention` leave them out)."""
        if name not in self.values:
            raise KeyError(f"{name!r} was not recorded; recorded: {sorted(self.values)}")
        return torch.stack(self.values[name]).numpy()

    def __len__(self):
        return max((len(v) for v in self.values.values()), default=0)

    def to_frame(self) -> pd.DataFrame:
        """One row per (hook, step, stream): the step's position, the value's shape and the value."""
        rows = []
        for name, values in self.values.items():
            for value, positions, active in zip(values, self.positions[name], self.active[name]):
                for b in range(value.shape[0]):
                    if not active[b]:
                        continue  # this stream sat the step out
                    v = value[b].numpy()
                    rows.append({"hook": name, "step": int(positions[b]), "stream": b, "shape": v.shape,
                                 "norm": float(np.linalg.norm(v)), "value": v})
        return pd.DataFrame(rows, columns=["hook", "step", "stream", "shape", "norm", "value"])

    def attention(self, layer: int, head: int, stream: int = 0) -> np.ndarray:
        """Attention weights of one head as a (steps x keys) array over absolute steps; rows sum to 1.

        The hook reports keys by lag (index a = the step a frames earlier); here row i holds the query
        at the i-th recorded step and column j the key at step j.
        """
        name = f"blocks.{layer}.attn.pattern"
        if name not in self.values:
            raise KeyError(f"{name!r} was not recorded; record it with lab.record(model, {name!r})")
        stepped = torch.stack(self.active[name])[:, stream]  # the steps this stream really ran
        patterns = torch.stack(self.values[name])[stepped, stream, head]  # (steps, context) by lag
        positions = torch.stack(self.positions[name])[stepped, stream]  # (steps,)
        n_keys = int(positions.max()) + 1 if len(positions) else 0
        out = np.zeros((len(positions), n_keys), dtype=np.float32)
        lags = np.arange(patterns.shape[1])
        for i, p in enumerate(positions.tolist()):
            keep = lags <= p
            out[i, p - lags[keep]] = patterns[i, keep].numpy()
        return out

    def __repr__(self):
        return f"Recording({len(self)} steps, hooks={sorted(self.values) or self.names})"


@contextmanager
def record(model, *patterns: str):
    """Record the hooks whose names match `patterns` (globs) while the block runs."""
    points = model.hook_points()
    names = match_names(list(points), patterns or ("*",))
    recording = Recording(model, names)
    for name in names:
        points[name].fns.append(recording._collect)
    try:
        yield recording
    finally:
        for name in names:
            points[name].fns.remove(recording._collect)
