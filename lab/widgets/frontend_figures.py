"""What a model eats on the 12.5 Hz grid: one 80 ms frame of audio, and what the frontend makes of it.

- `frame_figure`: the frame's 1920 samples (with the 10 ms of the frame before, which its first window also
  sees), the log energies of the learned filterbank in its eight 10 ms sub-frames, and the single
  embedding the transformer receives for it. Kyutai's models get that embedding differently (Mimi's 32
  codes, one embedding each, summed: lab.frontend.CodebookFrontend); the grid and the one-embedding-a-step
  contract are the same.
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import FRAME_RATE
from .figures import _done, _plt


def frame_figure(model, audio, sample_rate: int, frame: int, title: str | None = None):
    """Frame `frame` of `audio` (24 kHz float) through `model.frontend` (a FilterbankFrontend)."""
    from ..frontend import FRAME_SIZE, HOP, WINDOW, FilterbankFrontend

    fe = model.frontend
    if not isinstance(fe, FilterbankFrontend):
        raise TypeError(f"{type(fe).__name__} reads Mimi codes, not audio: frame_figure draws the filterbank")
    if sample_rate != 24_000:
        raise ValueError(f"24 kHz audio expected, got {sample_rate} Hz")
    audio = np.asarray(audio, dtype=np.float32)
    start = frame * FRAME_SIZE
    tail_from = max(0, start - (WINDOW - HOP))
    x = np.zeros(FRAME_SIZE + WINDOW - HOP, dtype=np.float32)  # before the start: silence, as in streaming
    piece = audio[tail_from:start + FRAME_SIZE]
    x[len(x) - len(piece):] = piece
    frames, tails = torch.from_numpy(x[None, WINDOW - HOP:]), torch.from_numpy(x[None, :WINDOW - HOP])
    with torch.no_grad():
        energies = fe.log_energies(frames, tails)[0].numpy()  # (8, n_filters)
        embedding = fe._features(frames, tails)[0].float().numpy()  # (d_model,)
    plt = _plt()
    fig, (ax_w, ax_e, ax_d) = plt.subplots(1, 3, figsize=(13, 3.4), width_ratios=[1.3, 1, 1.2])
    t = (np.arange(len(x)) - (WINDOW - HOP)) / sample_rate * 1000
    ax_w.plot(t, x, color="#555", lw=0.6)
    ax_w.axvspan(t[0], 0, color="#ff7f0e", alpha=0.15, label="10 ms of the frame before")
    for k in range(1, FRAME_SIZE // HOP):
        ax_w.axvline(k * HOP / sample_rate * 1000, color="#ddd", lw=0.6)
    ax_w.set(xlabel=f"ms into frame {frame} ({frame / FRAME_RATE:.2f} s)", ylabel="amplitude",
             title="one frame: 1920 samples, 80 ms")
    ax_w.legend(fontsize=7, loc="lower left")
    im = ax_e.imshow(energies.T, origin="lower", aspect="auto", cmap="magma", extent=(0, 80, 0, energies.shape[1]))
    fig.colorbar(im, ax=ax_e, label="log energy")
    ax_e.set(xlabel="sub-frame (10 ms each), ms", ylabel="learned filter (low to high pitch)",
             title=f"{energies.shape[0]} x {energies.shape[1]} filterbank energies")
    ax_d.bar(np.arange(len(embedding)), embedding, width=1.0, color="#1f77b4")
    ax_d.set(xlabel=f"dimension (of {len(embedding)})", ylabel="value",
             title="one embedding: what the transformer reads")
    fig.suptitle(title or "What the model eats per step: one 80 ms frame becomes one vector", y=1.02)
    return _done(fig)
