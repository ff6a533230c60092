"""Activation patching for end of turn: where in the model does "the sentence is not finished" live?

Two runs of the same length: a *clean* one (e.g. a turn paused mid-sentence: the model should wait) and a
*corrupted* one (the same words, ended: the model should answer). Run the corrupted inputs again, each time
with one activation (a layer's component at one step) taken from the clean run instead; how far does that
move the end-of-turn probability at the decision step towards the clean run's?

    result = lab.patching.patch_eot(model, clean=(paused, 24000), corrupted=(ended, 24000), time_s=2.4)
    result.frame      # layer, component, step, time_s, p_patched, effect, effect_norm
    result.figure()   # one heatmap per component: layers x steps, coloured by effect

`effect` is p_patched - p_corrupted (probability units); `effect_norm` divides it by p_clean - p_corrupted
(1: this activation alone carries the whole difference; NaN when the two runs hardly differ). Text tokens
are held fixed (lab.replay), and one batch row per patched step runs next to an unpatched row, so that a run
patched into itself gives exactly zero everywhere.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .hooks import record
from .intervene import intervene
from .replay import StepInputs, replay, stream_inputs

COMPONENTS = ("in", "attn.out", "mlp.out")  # the residual stream into a block, and what each half writes


@dataclass
class PatchingResult:
    frame: pd.DataFrame
    p_clean: float
    p_corrupted: float
    step: int
    time_s: float
    horizon_s: float

    def figure(self, ax=None):
        from .why_plots import plot_patching

        return plot_patching(self, ax=ax)


def _inputs(model, source) -> StepInputs:
    return source if isinstance(source, StepInputs) else stream_inputs(model, source)


def patch_eot(model, clean, corrupted, step: int | None = None, time_s: float | None = None,
              horizon_s: float = 2.0, components=COMPONENTS, heads: bool = False,
              first_step: int = 0) -> PatchingResult:
    """Patch every (layer, component, step) of `clean` into `corrupted`, one at a time, for the steps from
    `first_step` to the decision step (`step`, or the last step run by `time_s`); measure the `horizon_s`
    head's probability at the decision step. `components` are names under blocks.N (see COMPONENTS); with
    `heads`, each head's output (blocks.N.attn.heads) is patched alone too ("head 3"). Sources are paths,
    (array, sample_rate) pairs, or lab.replay.StepInputs."""
    clean, corrupted = _inputs(model, clean), _inputs(model, corrupted)
    h = corrupted.head_index(horizon_s)
    n = min(len(clean), len(corrupted))
    if (step is None) == (time_s is None):
        raise ValueError("patch_eot: give the decision as step= or time_s=, one of them")
    target = corrupted.step_at(time_s) if step is None else int(step)
    if not 0 <= target < n:
        raise ValueError(f"patch_eot: step {target} is outside both runs (they share steps 0..{n - 1})")
    if not 0 <= first_step <= target:
        raise ValueError(f"patch_eot: first_step {first_step} must be in 0..{target}")
    known = {n.split(".", 2)[2] for n in model.hook_names() if n.startswith("blocks.0.")}
    for c in components:
        if c not in known:
            raise ValueError(f"patch_eot: unknown component {c!r}; a block has {sorted(known)}")

    names = [f"blocks.{i}.{c}" for i in range(model.cfg.num_layers) for c in components]
    if heads:
        names += [f"blocks.{i}.attn.heads" for i in range(model.cfg.num_layers)]
    rows_steps = list(range(first_step, target + 1))
    B = len(rows_steps) + 1  # one row per patched step, the last row unpatched
    # The clean activations, every step, computed in a batch of the same size as the patched runs: a matrix
    # product may round differently for another number of rows, and a run patched into itself must give 0.
    with record(model, *names) as rec:
        p_clean_run = replay(model, clean.audio_emb[None, :n].expand(B, -1, -1), clean.text_in[None, :n].expand(B, -1),
                             target + 1)
    p_clean = float(p_clean_run[0, target, h])
    audio = corrupted.audio_emb[None, :n].expand(B, -1, -1)
    text = corrupted.text_in[None, :n].expand(B, -1)
    jobs = [(i, c, f"blocks.{i}.{c}", None) for i in range(model.cfg.num_layers) for c in components]
    if heads:
        jobs += [(i, f"head {k}", f"blocks.{i}.attn.heads", k) for i in range(model.cfg.num_layers)
                 for k in range(model.cfg.num_heads)]
    # Up to first_step every job runs the same unpatched corrupted steps: run them once, copy the cache.
    prefix = model.new_cache(B)
    replay(model, audio, text, first_step, cache=prefix)
    rows, p_corrupted = [], None
    times = corrupted.times_s
    for layer, component, name, head in jobs:
        clean_values = torch.from_numpy(rec[name][:, 0])

        def patch(value, ctx, clean_values=clean_values, head=head):
            t = int(ctx.positions[0])  # every row is at the same step
            if not first_step <= t <= target:
                return None
            value = value.clone()
            row = t - first_step
            if head is None:
                value[row] = clean_values[t].to(value)
            else:
                value[row, head] = clean_values[t, head].to(value)
            return value

        with intervene(model, {name: patch}):
            p = replay(model, audio, text, target + 1, cache=copy.deepcopy(prefix))[:, -1, h]
        p_corrupted = float(p[-1])
        for r, s in enumerate(rows_steps):
            rows.append({"layer": layer, "component": component, "step": s, "time_s": float(times[s]),
                         "p_patched": float(p[r]), "effect": float(p[r] - p[-1])})
    frame = pd.DataFrame(rows, columns=["layer", "component", "step", "time_s", "p_patched", "effect"])
    gap = p_clean - p_corrupted
    frame["effect_norm"] = frame["effect"] / gap if abs(gap) > 1e-3 else np.nan
    return PatchingResult(frame, p_clean, p_corrupted, target, float(times[target]), horizon_s)
