"""A streamed run kept as the inputs each step saw, to be run again under a change: the ground that
activation patching (lab.patching) and attribution (lab.attribution) stand on.

`stream_inputs` streams a clip as `transcribe` does and keeps, per step, the audio embedding the step saw
and the text token it read (the one it wrote the step before). `replay` runs B copies of such inputs
through `model.step` with the text tokens held fixed (teacher forcing): whatever an intervention changes,
every copy reads the same tokens, so a difference in the end-of-turn probability is the intervention's
alone and not a different word written on the way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .hooks import record


@dataclass
class StepInputs:
    """One streamed clip: per step t, `audio_emb[t]` (d,) and `text_in[t]` (the token written at t-1)."""

    audio_emb: torch.Tensor  # (T, d)
    text_in: torch.Tensor  # (T,)
    steps: pd.DataFrame  # Transcript.steps: time_s, token, piece, p_eot_{h}s per step
    words: list  # lab.Word, as streamed
    horizons: tuple[float, ...]

    def __len__(self):
        return len(self.text_in)

    @property
    def times_s(self) -> np.ndarray:
        return self.steps["time_s"].to_numpy(float)

    def step_at(self, time_s: float) -> int:
        """The last step that ran at or before `time_s` (stream time)."""
        i = int(np.searchsorted(self.times_s, time_s + 1e-9, side="right")) - 1
        if i < 0:
            raise ValueError(f"no step ran by {time_s:g} s (the first ran at {self.times_s[0]:g} s)")
        return i

    def head_index(self, horizon_s: float) -> int:
        if horizon_s not in self.horizons:
            raise ValueError(f"no end-of-turn head with horizon {horizon_s:g} s; this model has "
                             f"{[f'{h:g} s' for h in self.horizons] or 'none'}")
        return self.horizons.index(horizon_s)


def stream_inputs(model, source) -> StepInputs:
    """Stream `source` (a path, or (array, sample_rate)) through `model` as transcribe does (flushed), keeping
    what each step saw."""
    with record(model, "frontend.out") as rec:
        t = model.transcribe(source)
    tokens = torch.tensor(t.steps["token"].to_numpy(), dtype=torch.long)
    initial = torch.tensor([model.cfg.initial_text_id])
    text_in = torch.cat([initial, tokens[:-1]])
    audio_emb = torch.from_numpy(rec["frontend.out"][:, 0])
    return StepInputs(audio_emb, text_in, t.steps, t.words, tuple(model.cfg.eot_horizons_s))


@torch.no_grad()
def replay(model, audio_emb: torch.Tensor, text_in: torch.Tensor, n_steps: int | None = None,
           cache=None) -> torch.Tensor:
    """Run B streams of given inputs, audio_emb (B, T, d) and text_in (B, T), through `model.step`, for
    steps up to `n_steps` (all if None): from a fresh cache, or from `cache` (a KVCache of B streams, which
    moves on) at the step it is at. Returns the end-of-turn probabilities of the steps run (B, steps,
    n_heads). Hook points fire as in any stream (interventions apply)."""
    if audio_emb.dim() != 3 or text_in.shape != audio_emb.shape[:2]:
        raise ValueError(f"replay: audio_emb (B, T, d) and text_in (B, T) expected, got {tuple(audio_emb.shape)} "
                         f"and {tuple(text_in.shape)}")
    p = next(model.parameters())
    n = audio_emb.shape[1] if n_steps is None else n_steps
    cache = model.new_cache(audio_emb.shape[0]) if cache is None else cache
    start = int(cache.next_pos[0])
    audio_emb, text_in = audio_emb.to(p), text_in.to(p.device)
    out = [model.step(audio_emb[:, t], text_in[:, t], cache)[1].float().cpu() for t in range(start, n)]
    return torch.stack(out, 1) if out else torch.zeros(audio_emb.shape[0], 0, len(model.cfg.eot_horizons_s))
