"""Attribution of one end-of-turn decision: which past audio frames and which text tokens made the model
say (or not say) "the speaker has finished" at a given step?

    a = lab.attribution.attribute_eot(model, ("clip.wav"), time_s=2.4)
    a.frames   # per frame: occlusion (p - p with that frame silenced), grad_x_input
    a.tokens   # per text token read: occlusion (p - p with that token replaced by PAD), grad_x_input
    a.figure() # both, lined up with the words the model wrote

Two methods, on the inputs each step saw (lab.replay), run again as one whole sequence through
`model.forward` (the same logits as streaming, tests/test_model.py):
- occlusion: the frame's embedding replaced by that of a silent frame (digital zeros through the frontend),
  or the token read at a step replaced by PAD, everything else kept; all occlusions run as one batch;
- gradient x input: d p / d embedding, times the embedding, summed over the model dimension.
A frame or token outside the decision's reach (after it, or older than layers x (context - 1) steps) gets
exactly zero from both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .config import FRAME_RATE, FRAME_SIZE
from .replay import StepInputs, stream_inputs


@dataclass
class Attribution:
    frames: pd.DataFrame  # frame, step (that saw it), start_s, end_s, occlusion, grad_x_input
    tokens: pd.DataFrame  # step (that read it), written_at, time_s, token, piece, occlusion, grad_x_input
    p: float  # the decision's probability, as streamed
    step: int
    time_s: float
    horizon_s: float
    words: list

    def figure(self, axes=None):
        from .why_plots import plot_attribution

        return plot_attribution(self, axes=axes)


def silence_embedding(model) -> torch.Tensor:
    """The frontend's embedding (d,) of one silent frame heard from a fresh state."""
    frame = torch.zeros(1, FRAME_SIZE, dtype=next(model.parameters()).dtype)
    with torch.no_grad():
        return model.embed_frame(frame, model.init_frontend_state(1))[0].float()


def _p(model, audio_emb, text_in, h):
    _, eot_logits = model(audio_emb, text_in)
    return eot_logits[:, -1, h].float().softmax(-1)[:, 0]  # (B,) at the last step given


def attribute_eot(model, source, step: int | None = None, time_s: float | None = None,
                  horizon_s: float = 2.0) -> Attribution:
    """Occlusion and gradient x input for the `horizon_s` head's probability at one step (`step`, or the last
    step run by stream time `time_s`) of `source` (a path, (array, sample_rate), or lab.replay.StepInputs)."""
    inputs = source if isinstance(source, StepInputs) else stream_inputs(model, source)
    h = inputs.head_index(horizon_s)
    if (step is None) == (time_s is None):
        raise ValueError("attribute_eot: give the decision as step= or time_s=, one of them")
    target = inputs.step_at(time_s) if step is None else int(step)
    if not 0 <= target < len(inputs):
        raise ValueError(f"attribute_eot: step {target} is outside the run (steps 0..{len(inputs) - 1})")
    p0 = next(model.parameters())
    audio = inputs.audio_emb[: target + 1].to(p0)
    text = inputs.text_in[: target + 1].to(p0.device)
    steps = np.arange(1, target + 1)  # step 0 sees the initial embedding and token, never audio or text

    with torch.no_grad():
        p = float(_p(model, audio[None], text[None], h)[0])
        occluded = audio[None].repeat(len(steps), 1, 1)
        occluded[np.arange(len(steps)), steps] = silence_embedding(model).to(p0)
        frame_occ = p - _p(model, occluded, text[None].expand(len(steps), -1), h).cpu().numpy()
        padded = text[None].repeat(len(steps), 1)
        padded[np.arange(len(steps)), steps] = model.cfg.pad_id
        token_occ = p - _p(model, audio[None].expand(len(steps), -1, -1), padded, h).cpu().numpy()

    captured = []
    handle = model.text_emb.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        with torch.enable_grad():
            leaf = audio[None].clone().requires_grad_(True)
            out = _p(model, leaf, text[None], h)[0]
            g_audio, g_text = torch.autograd.grad(out, [leaf, captured[0]])
    finally:
        handle.remove()
    frame_gxi = (g_audio[0] * leaf[0].detach()).sum(-1).float().cpu().numpy()
    token_gxi = (g_text[0] * captured[0][0].detach()).sum(-1).float().cpu().numpy()

    shift = 1 if getattr(model, "alignment", "training") == "training" else 0  # step s sees frame s - shift
    prefix = model.cfg.silence_prefix_s
    frames = pd.DataFrame({"frame": steps - shift, "step": steps,
                           "start_s": np.round((steps - shift) / FRAME_RATE - prefix, 4),
                           "end_s": np.round((steps - shift + 1) / FRAME_RATE - prefix, 4),
                           "occlusion": frame_occ, "grad_x_input": frame_gxi[steps]})
    tok = model.tokenizer
    ids = text[steps].cpu().numpy()
    tokens = pd.DataFrame({"step": steps, "written_at": steps - 1, "time_s": inputs.times_s[steps - 1],
                           "token": ids, "piece": [tok.piece(int(i)) if tok is not None else str(i) for i in ids],
                           "occlusion": token_occ, "grad_x_input": token_gxi[steps]})
    return Attribution(frames, tokens, p, target, float(inputs.times_s[target]), horizon_s, inputs.words)
