"""The delayed-streams model (DSM): a causal transformer over two time-aligned streams, all in one file.

At every 80 ms frame (12.5 Hz) the model reads the sum of an audio embedding (from a frontend: our
learned filterbank, or Kyutai's Mimi codes) and the embedding of the text token it wrote one step before,
and writes the next text token. The text stream is trained `delay_frames` behind the audio, so a word comes
out a few frames after it was spoken, once the model has heard a little of what follows. Extra heads give,
at each step, the probability that no one will speak within each horizon (Kyutai's semantic VAD).

Two ways to run the same weights:
- `forward()` over whole sequences, for training (a banded causal mask of width `context`);
- `step()` for B live streams, one frame each, with a ring KV cache of `context` entries per layer, so a
  stream runs forever in constant memory. Each stream has its own position, so one can be reset alone.
Both give the same logits (tests/test_model.py checks it, also after the ring wraps).

The layer layout follows Kyutai's moshi LM (RMSNorm in fp32, interleaved RoPE, gated SiLU, no biases), so
that Kyutai checkpoints map onto it tensor for tensor (lab/kyutai.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .config import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE, DSMConfig  # noqa: F401 (lab.model's names, as before)
from .frontend import CodebookFrontend, FilterbankFrontend
from .hooks import HookPoint
from .kvcache import KVCache, StepPlan
from .stream import Streamer, transcribe

# ---------------------------------------------------------------------------------------------- layers


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in fp32 whatever the weights' dtype (as Kyutai does)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.alpha = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        x32 = x.float()
        scale = self.alpha.float() * torch.rsqrt(self.eps + x32.pow(2).mean(-1, keepdim=True))
        return (x32 * scale).to(x.dtype)


def apply_rope(x: torch.Tensor, positions: torch.Tensor, max_period: float) -> torch.Tensor:
    """Rotary position embedding, interleaved pairs (x0, x1), (x2, x3)...

    x: (B, H, T, hd); positions: (B, T) absolute step index of each query/key.
    """
    hd = x.shape[-1]
    freqs = torch.exp(torch.arange(hd // 2, device=x.device, dtype=torch.float32)
                      * (-math.log(max_period) * 2 / hd))  # (hd/2,)
    angles = positions.float()[:, None, :, None] * freqs  # (B, 1, T, hd/2)
    cos, sin = angles.cos(), angles.sin()
    pairs = x.float().unflatten(-1, (hd // 2, 2))
    real, imag = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([real * cos - imag * sin, real * sin + imag * cos], dim=-1)
    return rotated.flatten(-2).to(x.dtype)


class Attention(nn.Module):
    """Causal self-attention over a band of `context` steps.

    The fast path uses fused attention; the attention weights are computed explicitly only while the
    `pattern` hook is recorded, so that looking inside costs nothing when nobody looks.
    """

    def __init__(self, cfg: DSMConfig, prefix: str):
        super().__init__()
        self.cfg = cfg
        self.in_proj = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)  # Kyutai's layout: q, k, v
        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.hook_q = HookPoint(f"{prefix}.q")
        self.hook_k = HookPoint(f"{prefix}.k")
        self.hook_v = HookPoint(f"{prefix}.v")
        self.hook_pattern = HookPoint(f"{prefix}.pattern")
        self.hook_heads = HookPoint(f"{prefix}.heads")  # (B, H, hd): each head's output before out_proj
        self.hook_out = HookPoint(f"{prefix}.out")

    def _qkv(self, x, positions):
        q, k, v = self.in_proj(x).unflatten(-1, (3, self.cfg.num_heads, self.cfg.head_dim)).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        return apply_rope(q, positions, self.cfg.max_period), apply_rope(k, positions, self.cfg.max_period), v

    def forward(self, x):
        """Whole sequences: x (B, T, d), positions 0..T-1."""
        B, T, _ = x.shape
        pos = torch.arange(T, device=x.device)
        q, k, v = self._qkv(x, pos.expand(B, T))
        delta = pos[:, None] - pos[None, :]
        mask = (delta >= 0) & (delta < self.cfg.context)  # (T, T)
        # Attention itself in fp32 even under bf16 autocast: on a CPU its bf16 backward is several times slower
        # than fp32's (the linear layers around it are where bf16 pays).
        with torch.autocast(x.device.type, enabled=False):
            y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask).to(q.dtype)
        return self.out_proj(y.transpose(1, 2).flatten(2))

    def step(self, x, cache: KVCache, layer: int, plan: StepPlan):
        """One step for B streams: x (B, d). Writes this step's key and value into the ring (only for the
        streams that step: an idle slot of a batch keeps its cache as it was). `plan` holds what all layers
        share in this step (ring slots, RoPE rotation, key mask), computed once by `DSM.step`."""
        B, H, hd = x.shape[0], self.cfg.num_heads, self.cfg.head_dim
        qkv = self.in_proj(x).view(B, 3, H, hd)
        # RoPE on q and k together, as one batched product with the step's rotation matrix (fp32).
        qk = (qkv[:, :2].float().reshape(B, 2 * H, hd) @ plan.rope).view(B, 2, H, hd).to(x.dtype)
        q, k, v = qk[:, 0], qk[:, 1], qkv[:, 2]  # (B, H, hd)
        q, k, v = self.hook_q.fire(q), self.hook_k.fire(k), self.hook_v.fire(v)  # before the ring: edits count
        keys, values = cache.keys[layer], cache.values[layer]  # (B, H, C, hd) views of the ring
        if plan.rows is None:  # every stream steps: plain per-row writes
            keys[plan.all_rows, :, plan.slot] = k
            values[plan.all_rows, :, plan.slot] = v
        else:
            keys[plan.rows, :, plan.slot[plan.rows]] = k[plan.rows]
            values[plan.rows, :, plan.slot[plan.rows]] = v[plan.rows]
        q = q[:, :, None]  # (B, H, 1, hd)
        if self.hook_pattern.active:
            scores = (q @ keys.transpose(-1, -2)) / math.sqrt(hd)  # (B, H, 1, C)
            scores = scores.masked_fill(~plan.valid, float("-inf"))
            weights = scores.float().softmax(-1).to(q.dtype)
            y = weights @ values
            # Report keys by lag (index a = the step a frames ago), a layout that does not depend on
            # where the ring happens to be: row b of the pattern sums to 1.
            pos = cache.next_pos
            lag_slots = (pos[:, None] - torch.arange(cache.context, device=x.device)) % cache.context
            lag_slots = lag_slots[:, None, :].expand(-1, H, -1)
            by_lag = torch.gather(weights[:, :, 0], 2, lag_slots)
            edited = self.hook_pattern.fire(by_lag)
            if edited is not by_lag:  # an intervention: put the weights back in ring order, attend again
                y = torch.zeros_like(by_lag).scatter(2, lag_slots, edited.to(by_lag))[:, :, None] @ values
        else:
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=plan.valid)
        y = self.hook_heads.fire(y.view(B, H, hd))
        return self.hook_out.fire(self.out_proj(y.reshape(B, H * hd)))


class GatedFFN(nn.Module):
    """Gated SiLU feed-forward: linear_in gives [gate | value], out = linear_out(silu(gate) * value)."""

    def __init__(self, cfg: DSMConfig):
        super().__init__()
        self.linear_in = nn.Linear(cfg.d_model, 2 * cfg.ffn_hidden, bias=False)
        self.linear_out = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)

    def forward(self, x):
        gate, value = self.linear_in(x).unflatten(-1, (2, -1)).unbind(-2)
        return self.linear_out(F.silu(gate) * value)


class Block(nn.Module):
    def __init__(self, cfg: DSMConfig, index: int):
        super().__init__()
        self.hook_in = HookPoint(f"blocks.{index}.in")  # the residual stream into the block
        self.norm1 = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg, f"blocks.{index}.attn")
        self.norm2 = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = GatedFFN(cfg)
        self.hook_mlp_out = HookPoint(f"blocks.{index}.mlp.out")
        self.hook_out = HookPoint(f"blocks.{index}.out")

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def step(self, x, cache, layer, plan: StepPlan):
        x = self.hook_in.fire(x)
        x = x + self.attn.step(self.norm1(x), cache, layer, plan)
        x = x + self.hook_mlp_out.fire(self.mlp(self.norm2(x)))
        return self.hook_out.fire(x)  # the residual stream out of the block


# ----------------------------------------------------------------------------------------------- model


class DSM(nn.Module):
    """Delayed-streams model: audio embedding + previous text token -> next text token, end-of-turn probs."""

    def __init__(self, cfg: DSMConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.audio_input == "filterbank":
            self.frontend = FilterbankFrontend(cfg.d_model, cfg.n_filters)
        else:
            self.frontend = CodebookFrontend(cfg.d_model, cfg.n_codebooks, cfg.codebook_card)
        self.text_emb = nn.Embedding(cfg.text_vocab_in, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.out_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.text_linear = nn.Linear(cfg.d_model, cfg.text_vocab_out, bias=False)
        self.extra_heads = nn.ModuleList(
            nn.Linear(cfg.d_model, cfg.eot_head_dim, bias=False) for _ in cfg.eot_horizons_s)
        if cfg.audio_input == "codebooks":
            self.hook_mimi_codes = HookPoint("mimi.codes")
        self.hook_frontend_out = HookPoint("frontend.out")  # the audio embedding the step sees
        self.hook_text_embed = HookPoint("text.embed")  # the embedding of the previous text token
        self.hook_input = HookPoint("input.embed")  # their sum
        self.hook_final = HookPoint("final.norm")
        self.hook_text_logits = HookPoint("text.logits")
        self.hook_eot_logits = HookPoint("eot.logits")  # (B, n_heads, eot_head_dim), before the softmax
        self.hook_eot_probs = HookPoint("eot.probs")
        self.step_positions = torch.zeros(1, dtype=torch.long)
        self.step_active = torch.ones(1, dtype=torch.bool)  # for recorders: the streams that really step
        # Set by lab.load(): what a streamer needs besides the weights.
        self.tokenizer = None
        self.mimi = None  # Mimi encoder (codebook models)
        self.alignment = "training"
        self.source = ""
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    @property
    def n_params(self) -> int:
        """Parameters of the model itself; a Kyutai model's Mimi encoder is counted apart (`info.extra`)."""
        skip = {id(p) for p in self.mimi.parameters()} if self.mimi is not None else set()
        return sum(p.numel() for p in self.parameters() if id(p) not in skip)

    def hook_points(self) -> dict[str, HookPoint]:
        """Every hook point by its stable name, in the order a step reaches them."""
        points = [m for m in self.modules() if isinstance(m, HookPoint)]
        order = {"mimi.codes": -1, "frontend.out": 0, "text.embed": 0.5, "input.embed": 1,
                 "final.norm": 3, "text.logits": 4, "eot.logits": 4.5, "eot.probs": 5}
        points.sort(key=lambda p: order.get(p.name, 2))  # blocks keep their module order in the middle
        return {p.name: p for p in points}

    def hook_names(self) -> list[str]:
        return list(self.hook_points())

    def _heads(self, x):
        """x: (B, d) the last block's output -> text logits (B, V), end-of-turn probabilities (B, n_heads)."""
        h = self.hook_final.fire(self.out_norm(x))
        logits = self.hook_text_logits.fire(self.text_linear(h))
        if len(self.extra_heads):  # all heads as one product (fewer operations per step than one each)
            weight = torch.cat([head.weight for head in self.extra_heads])  # (n_heads * eot_head_dim, d)
            eot_logits = F.linear(h, weight).float().unflatten(-1, (len(self.extra_heads), -1))
            p_eot = self.hook_eot_logits.fire(eot_logits).softmax(-1)[..., 0]
        else:
            p_eot = h.new_zeros(*h.shape[:-1], 0)
        return logits, self.hook_eot_probs.fire(p_eot)

    def align_audio(self, frame_emb: torch.Tensor, alignment: str = "training") -> torch.Tensor:
        """Frame embeddings (B, T, d) -> what each step sees, for whole-sequence training.

        "training": step t sees frame t-1 (as Kyutai trains and serves); "scripts": step t sees frame t.
        Either way step 0 sees the initial embedding. Streaming does the same in lab.stream.
        """
        initial = self.frontend.initial(frame_emb.shape[0]).to(frame_emb)[:, None]
        if alignment == "training":
            return torch.cat([initial, frame_emb[:, :-1]], dim=1)
        if alignment == "scripts":
            return torch.cat([initial, frame_emb[:, 1:]], dim=1)
        raise ValueError(f"alignment must be 'training' or 'scripts', not {alignment!r}")

    def forward(self, audio_emb: torch.Tensor, text_in: torch.Tensor):
        """Whole sequences, for training.

        audio_emb: (B, T, d) audio embeddings already aligned to the steps (`align_audio`);
        text_in: (B, T) the text token written at the step before (initial id at 0).
        Returns text logits (B, T, V) and extra-head logits (B, T, n_heads, eot_head_dim).
        """
        x = audio_emb + self.text_emb(text_in)
        for block in self.blocks:
            x = block(x)
        h = self.out_norm(x)
        eot_logits = torch.stack([head(h) for head in self.extra_heads], 2) if len(self.extra_heads) \
            else h.new_zeros(*h.shape[:2], 0, self.cfg.eot_head_dim)
        return self.text_linear(h), eot_logits

    def new_cache(self, batch_size: int) -> KVCache:
        p = next(self.parameters())
        return KVCache(self.cfg, batch_size, device=p.device, dtype=p.dtype)

    @torch.no_grad()
    def step(self, audio_emb: torch.Tensor, text_in: torch.Tensor, cache: KVCache,
             active: torch.Tensor | None = None):
        """Advance B streams by one frame.

        audio_emb: (B, d) the frontend's embedding of the frame this step sees (see `align_audio`);
        text_in: (B,) previous text token of each stream; active: (B,) bool, the streams that step (all
        if None; the others' caches stay as they were and their outputs are to be ignored).
        Returns text logits (B, V) and end-of-turn probabilities (B, n_heads); moves each stream on by one.
        """
        self.step_positions = cache.next_pos  # for recorders: the step each stream is at
        self.step_active = torch.ones_like(cache.next_pos, dtype=torch.bool) if active is None else active
        at_start = (cache.next_pos == 0)[:, None]  # step 0 sees the initial embedding, never audio
        audio_emb = torch.where(at_start, self.frontend.initial(audio_emb.shape[0]).to(audio_emb), audio_emb)
        audio_emb = self.hook_frontend_out.fire(audio_emb)
        x = self.hook_input.fire(audio_emb + self.hook_text_embed.fire(self.text_emb(text_in)))
        plan = StepPlan(self.cfg, cache, active)
        for i, block in enumerate(self.blocks):
            x = block.step(x, cache, i, plan)
        logits, p_eot = self._heads(x)
        cache.next_pos += 1 if active is None else active.to(cache.next_pos)
        return logits, p_eot

    # --------------------------------------------------------------------- audio frames, for lab.stream
    def init_frontend_state(self, batch_size: int):
        return self.mimi.init_state(batch_size) if self.mimi is not None else self.frontend.init_state(batch_size)

    def reset_frontend_state(self, state, index: int):
        if self.mimi is not None:
            self.mimi.reset_state(state, index)
        elif state is not None:
            state[index] = 0

    def embed_frame(self, frames: torch.Tensor, state, active: torch.Tensor | None = None) -> torch.Tensor:
        """24 kHz frames (B, 1920) -> frame embeddings (B, d), updating the frontend state."""
        if self.cfg.audio_input == "codebooks":
            if self.mimi is None:
                raise ValueError("this model reads Mimi codes but has no Mimi encoder loaded")
            # Mimi runs in fp32 whatever the LM's dtype (bf16 samples or weights change most codes); streams
            # that sit this step out keep their Mimi state (`active`).
            codes = self.hook_mimi_codes.fire(self.mimi.encode_step(frames.float(), state, active))  # (B, 32)
            return self.frontend.step(codes)
        frames = frames.to(next(self.parameters()).dtype)
        return self.frontend.step(frames, state, active)

    @property
    def info(self) -> ModelInfo:
        cfg, p = self.cfg, next(self.parameters())
        return ModelInfo(
            name=cfg.name, sample_rate=SAMPLE_RATE, frame_rate=FRAME_RATE, frame_size=FRAME_SIZE,
            delay_frames=cfg.delay_frames, delay_s=cfg.delay_s, context_steps=cfg.context,
            n_params=self.n_params, audio_input=cfg.audio_input, vad_horizons_s=cfg.eot_horizons_s,
            text_vocab=cfg.text_vocab_out, dtype=str(p.dtype).replace("torch.", ""),
            alignment=self.alignment, source=self.source,
            extra={} if self.mimi is None else {"mimi_encoder_params": sum(p.numel() for p in self.mimi.parameters())})

    # The user-facing streaming interface lives in lab.stream, which knows the model only by what it is
    # handed (it imports lab.config, never lab.model); these are thin doors to it.
    def stream(self, **kwargs) -> Streamer:
        return Streamer(self, **kwargs)

    def streams(self, n: int, **kwargs) -> Streamer:
        return Streamer(self, batch_size=n, **kwargs)

    def transcribe(self, source, sample_rate: int | None = None, **kwargs):
        return transcribe(self, source, sample_rate=sample_rate, **kwargs)


@dataclass
class ModelInfo:
    """What a user wants to know about a loaded model at a glance."""

    name: str
    sample_rate: int
    frame_rate: float
    frame_size: int
    delay_frames: int
    delay_s: float
    context_steps: int
    n_params: int
    audio_input: str
    vad_horizons_s: tuple[float, ...]
    text_vocab: int
    dtype: str
    alignment: str
    source: str = ""
    extra: dict = field(default_factory=dict)
