"""Frontends: one 80 ms audio frame -> one embedding of width d_model.

- `FilterbankFrontend`, for our own models: a short-time spectrum every 10 ms, a learned filterbank
  (initialised to mel filters), log compression, and a small MLP over the 8 sub-frames of the frame. It is
  causal: a frame sees its own 1920 samples and the last 240 samples of the frame before, which is the whole
  streaming state.
- `CodebookFrontend`, for Kyutai's models: the sum of one embedding per Mimi codebook (32 x 2048 codes,
  plus one initial id per codebook), exactly as Kyutai's LM embeds audio.

Each frontend has an `initial(B)` embedding: what a step sees before any audio frame exists.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

FRAME_SIZE = 1920  # 80 ms at 24 kHz
HOP = 240  # 10 ms sub-frames: 8 per frame
WINDOW = 480  # 20 ms analysis window: each sub-frame looks 10 ms back
SAMPLE_RATE = 24_000


def mel_filters(n_filters: int, n_fft: int = WINDOW, sample_rate: int = SAMPLE_RATE,
                f_min: float = 40.0, f_max: float = 8000.0) -> torch.Tensor:
    """Triangular mel filters, (n_filters, n_fft // 2 + 1): the filterbank's starting point."""
    def hz_to_mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)

    mels = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_filters + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, center, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    up = (bins - lower) / (center - lower)
    down = (upper - bins) / (upper - center)
    return torch.clamp(torch.minimum(up, down), min=0.0)


class FilterbankFrontend(nn.Module):
    """24 kHz frames of 1920 samples -> (d_model,) per frame, causal, with a 240-sample streaming state."""

    def __init__(self, d_model: int, n_filters: int = 64):
        super().__init__()
        self.n_filters = n_filters
        self.register_buffer("window", torch.hann_window(WINDOW), persistent=False)
        self.filters = nn.Parameter(mel_filters(n_filters))  # learned; kept non-negative by abs()
        n_sub = FRAME_SIZE // HOP
        self.norm = nn.LayerNorm(n_sub * n_filters)
        self.proj = nn.Sequential(nn.Linear(n_sub * n_filters, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
        self.initial_emb = nn.Parameter(torch.zeros(d_model))

    def initial(self, batch_size: int) -> torch.Tensor:
        return self.initial_emb.expand(batch_size, -1)

    def init_state(self, batch_size: int) -> torch.Tensor:
        """The last WINDOW - HOP samples of the previous frame, per stream (silence before the start)."""
        return self.filters.new_zeros(batch_size, WINDOW - HOP)

    def log_energies(self, frames: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        """frames (N, 1920), tails (N, 240) -> (N, 8, n_filters): the log energy of each learned filter in
        each 10 ms sub-frame, fp32 (what the MLP reads; notebook 01 draws it)."""
        x = torch.cat([tails, frames], dim=-1)  # (N, 2160)
        windows = x.unfold(-1, WINDOW, HOP) * self.window  # (N, 8, 480)
        # The spectrum and its log in fp32 whatever the weights' dtype (bf16 logs of tiny energies are coarse).
        power = torch.fft.rfft(windows.float(), dim=-1).abs().pow(2)  # (N, 8, 241)
        energies = power @ self.filters.float().abs().t()  # (N, 8, n_filters)
        return torch.log(energies + 1e-6)

    def _features(self, frames: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        """frames (N, 1920), tails (N, 240) -> (N, d_model)."""
        logmel = self.log_energies(frames, tails).flatten(-2)  # (N, 8 * n_filters)
        return self.proj(self.norm(logmel.to(self.filters.dtype)))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Whole sequences: frames (B, T, 1920) -> (B, T, d_model); the first frame sees silence before."""
        B, T, n = frames.shape
        if n != FRAME_SIZE:
            raise ValueError(f"frames must be (B, T, {FRAME_SIZE}), got {tuple(frames.shape)}")
        previous = F.pad(frames[:, :-1, -(WINDOW - HOP):], (0, 0, 1, 0))  # (B, T, 240)
        return self._features(frames.reshape(B * T, n), previous.reshape(B * T, -1)).view(B, T, -1)

    def step(self, frame: torch.Tensor, state: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """One frame per stream: frame (B, 1920); state (B, 240) is updated in place where `active`."""
        out = self._features(frame, state)
        tail = frame[:, -(WINDOW - HOP):]
        state.copy_(tail if active is None else torch.where(active[:, None], tail, state))
        return out


class CodebookFrontend(nn.Module):
    """Mimi codes (B, K) or (B, K, T) -> sum over codebooks of their embeddings; id `card` = initial."""

    def __init__(self, d_model: int, n_codebooks: int = 32, card: int = 2048):
        super().__init__()
        self.card = card
        self.emb = nn.ModuleList(nn.Embedding(card + 1, d_model) for _ in range(n_codebooks))

    def initial(self, batch_size: int) -> torch.Tensor:
        codes = torch.full((batch_size, len(self.emb)), self.card, device=self.emb[0].weight.device)
        return self.step(codes, None)

    def init_state(self, batch_size: int) -> None:
        return None  # the state lives in the Mimi encoder

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, K, T) -> (B, T, d_model)."""
        return sum(emb(codes[:, k]) for k, emb in enumerate(self.emb))

    def step(self, codes: torch.Tensor, state=None) -> torch.Tensor:
        """codes (B, K) -> (B, d_model)."""
        return sum(emb(codes[:, k]) for k, emb in enumerate(self.emb))
