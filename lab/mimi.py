"""Mimi's streaming encoder: 24 kHz audio in, 32 codebook indices per 80 ms frame out.

Mimi is Kyutai's neural audio codec; its codes are what the delayed-streams STT model reads. This
module is the encoder half only, written to reproduce Kyutai's reference (`moshi`) streaming encoder
code for code, and to read their released checkpoint as it is:

    audio (B, 1920 per frame, 24 kHz)
      -> SEANet: causal convs, strides 4*5*6*8 = 960        -> (B, 512, 2)   25 Hz
      -> transformer: 8 causal layers, RoPE, 250-step window -> (B, 512, 2)
      -> strided conv (kernel 4, stride 2)                   -> (B, 512, 1)   12.5 Hz
      -> split RVQ: 1 semantic + 31 acoustic codebooks       -> (B, 32)       int64 in [0, 2048)

Streaming is explicit: `init_state(B)` returns a `MimiState` the caller owns (conv left contexts, the
transformer's key/value ring, positions) and `encode_step(frames, state)` advances every stream by one
frame; `state.reset(i)` restarts one stream. `encode(audio)` runs whole clips through the same code
(frame by frame by default, bit-identical to streaming; in multi-frame chunks on request, faster).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MIMI_SAMPLE_RATE = 24000
FRAME_SIZE = 1920  # samples per 80 ms frame (12.5 Hz)
N_CODEBOOKS = 32
CARD = 2048  # entries per codebook

# Architecture, as in moshi.models.loaders (_seanet_kwargs, _transformer_kwargs, _quantizer_kwargs).
STRIDES = (4, 5, 6, 8)  # moshi lists the decoder order [8, 6, 5, 4]; the encoder runs it reversed
HOP = math.prod(STRIDES)  # 960 samples -> 25 Hz
STEPS_PER_FRAME = FRAME_SIZE // HOP  # 2 transformer steps per frame
DIM = 512
N_HEADS = 8
N_LAYERS = 8
FFN_DIM = 2048
CONTEXT = 250  # attention window in 25 Hz steps (10 s)
ROPE_MAX_PERIOD = 10_000.0
CODEBOOK_DIM = 256
N_SEMANTIC = 1


class MimiCheckpointError(ValueError):
    """A Mimi checkpoint lacks an encoder tensor or has one of the wrong shape."""


@dataclass(repr=False)
class MimiState:
    """Everything the encoder remembers between frames, one row per stream."""

    conv: list[Tensor]  # per SEANet/downsampling conv: (B, C_in, kernel - stride), the tail of its input
    primed: Tensor  # (B,) bool: has the downsampling conv seen its first step (it pads by replication)
    keys: Tensor  # (layers, B, heads, CONTEXT, 64): ring buffer, step p lives in slot p % CONTEXT
    values: Tensor  # same layout as keys
    key_pos: Tensor  # (B, CONTEXT) int64: the step held in each ring slot, -1 when empty
    position: Tensor  # (B,) int64: 25 Hz steps consumed so far (= 2 * frames)

    @property
    def batch_size(self) -> int:
        return self.position.shape[0]

    def reset(self, i: int | None = None) -> None:
        """Forget stream `i` (every stream if None) so it starts afresh; other rows are untouched."""
        rows = slice(None) if i is None else i
        for buf in self.conv:
            buf[rows] = 0
        self.primed[rows] = False
        self.keys[:, rows] = 0
        self.values[:, rows] = 0
        self.key_pos[rows] = -1
        self.position[rows] = 0

    def __repr__(self) -> str:
        mb = sum(t.numel() * t.element_size() for t in [*self.conv, self.keys, self.values]) / 2**20
        filled = (self.key_pos >= 0).sum(1).tolist()
        return (
            f"MimiState(batch={self.batch_size}, frames={(self.position // STEPS_PER_FRAME).tolist()}, "
            f"conv buffers={[tuple(b.shape[1:]) for b in self.conv]}, kv ring={tuple(self.keys.shape)} "
            f"filled={filled}, {mb:.1f} MiB)"
        )


class CausalConv1d(nn.Conv1d):
    """Conv1d made causal and streamable by a left context carried in the state.

    Each call prepends the last `kernel - stride` input samples of the previous call (zeros at the
    start of a stream), so chunked input gives exactly the output of the unchunked signal.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, bias: bool = True):
        super().__init__(c_in, c_out, kernel, stride, bias=bias)
        self.context = kernel - stride

    def forward(self, x: Tensor, buf: Tensor | None) -> Tensor:  # (B, C_in, T) -> (B, C_out, T / stride)
        if self.context:
            x = torch.cat([buf, x], dim=-1)
            buf.copy_(x[..., -self.context :])
        return super().forward(x)


class SeanetEncoder(nn.Module):
    """SEANet encoder: a conv stem, four (residual unit, ELU, strided conv) stages, an ELU and a head."""

    def __init__(self):
        super().__init__()
        self.stem = CausalConv1d(1, 64, 7)
        self.stages = nn.ModuleList()
        ch = 64
        for stride in STRIDES:
            stage = nn.Module()
            stage.res1 = CausalConv1d(ch, ch // 2, 3)  # residual unit, hidden width halved
            stage.res2 = CausalConv1d(ch // 2, ch, 1)
            stage.down = CausalConv1d(ch, 2 * ch, 2 * stride, stride)
            self.stages.append(stage)
            ch *= 2
        self.head = CausalConv1d(ch, DIM, 3)

    def convs(self) -> list[CausalConv1d]:
        """The convs that carry a left context, in the order their buffers sit in `MimiState.conv`."""
        convs = [self.stem] + [c for s in self.stages for c in (s.res1, s.down)] + [self.head]
        return [c for c in convs if c.context]

    def forward(self, x: Tensor, bufs: Iterator[Tensor]) -> Tensor:  # (B, 1, T) -> (B, 512, T / 960)
        x = self.stem(x, next(bufs))
        for s in self.stages:
            x = x + s.res2(F.elu(s.res1(F.elu(x), next(bufs))), None)
            x = s.down(F.elu(x), next(bufs))
        return self.head(F.elu(x), next(bufs))


def rotations(pos: Tensor) -> tuple[Tensor, Tensor]:
    """RoPE cos and sin (B, 1, T, 32) for positions (B, T), in float32 whatever the model dtype."""
    head_dim = DIM // N_HEADS
    freqs = torch.exp(torch.arange(head_dim // 2, device=pos.device, dtype=torch.float32)
                      * (-math.log(ROPE_MAX_PERIOD) * 2 / head_dim))  # moshi's formula, to the bit
    angle = freqs * pos.float().view(pos.shape[0], 1, -1, 1)
    return torch.cos(angle), torch.sin(angle)


def rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (B, H, T, 64) queries or keys, taken as 32 interleaved (real, imag) pairs."""
    pairs = x.view(*x.shape[:-1], -1, 2)
    re, im = pairs[..., 0].float(), pairs[..., 1].float()
    out = torch.stack([(re * cos - im * sin).to(x.dtype), (re * sin + im * cos).to(x.dtype)], dim=-1)
    return out.flatten(-2)


def visible(key_pos: Tensor, q_pos: Tensor) -> Tensor:
    """(B, 1, T, K) attention mask from key positions (B, K; -1 = empty) and query positions (B, T).

    Causal within CONTEXT steps, plus one rule copied from moshi's streaming ring buffer: it has
    CONTEXT slots and a frame writes both its steps before attending, so by the time the frame's first
    query attends, its oldest key (249 steps back) has been overwritten by the frame's second step:
    the first query sees 249 keys, the second 250. Hence keys older than (last step of the query's
    frame) - CONTEXT are hidden, whatever the chunking.
    """
    k, q = key_pos[:, None, :], q_pos[:, :, None]
    frame_end = q - q % STEPS_PER_FRAME + STEPS_PER_FRAME - 1
    return ((k >= 0) & (k <= q) & (k > frame_end - CONTEXT))[:, None]


class TransformerLayer(nn.Module):
    """Pre-norm layer: x + s1 * attn(norm1(x)), then x + s2 * mlp(norm2(x)) with GELU; no biases."""

    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(DIM, eps=1e-5)
        self.in_proj = nn.Linear(DIM, 3 * DIM, bias=False)
        self.out_proj = nn.Linear(DIM, DIM, bias=False)
        self.norm2 = nn.LayerNorm(DIM, eps=1e-5)
        self.linear1 = nn.Linear(DIM, FFN_DIM, bias=False)
        self.linear2 = nn.Linear(FFN_DIM, DIM, bias=False)
        self.scale1 = nn.Parameter(torch.full((DIM,), 0.01))  # layer scale
        self.scale2 = nn.Parameter(torch.full((DIM,), 0.01))

    def forward(self, x: Tensor, keys: Tensor, values: Tensor, write: Tensor, mask: Tensor,
                rot: tuple[Tensor, Tensor], one_frame: bool) -> Tensor:
        # x (B, T, 512); keys, values (B, H, 250, 64): this layer's ring; write (B, <=250): slots to fill
        B, T, _ = x.shape
        qkv = self.in_proj(self.norm1(x)).view(B, T, 3, N_HEADS, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, H, T, 64)
        q, k = rope(q, *rot), rope(k, *rot)
        tail = write.shape[1]  # steps to store: all T, or the last CONTEXT of a long chunk
        index = write.view(B, 1, tail, 1).expand(-1, N_HEADS, -1, k.shape[-1])
        if one_frame:
            # Streaming: write into the ring, then attend over it, as moshi does (same operands in the
            # same order, hence bit-identical outputs).
            keys.scatter_(2, index, k)
            values.scatter_(2, index, v)
            y = F.scaled_dot_product_attention(q, keys, values, mask)
        else:  # several frames: attend over the ring as it was plus the new steps, then store
            y = F.scaled_dot_product_attention(q, torch.cat([keys, k], 2), torch.cat([values, v], 2), mask)
            keys.scatter_(2, index, k[:, :, -tail:])
            values.scatter_(2, index, v[:, :, -tail:])
        x = x + self.scale1 * self.out_proj(y.transpose(1, 2).reshape(B, T, DIM))
        return x + self.scale2 * self.linear2(F.gelu(self.linear1(self.norm2(x))))


class Transformer(nn.Module):
    """The encoder transformer, streaming over 25 Hz steps with a key/value ring per layer."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer() for _ in range(N_LAYERS))

    def forward(self, x: Tensor, state: MimiState) -> Tensor:  # (B, 512, T) -> (B, 512, T)
        B, _, T = x.shape
        pos = state.position[:, None] + torch.arange(T, device=x.device)  # (B, T)
        rot = rotations(pos)
        write = pos[:, -CONTEXT:] % CONTEXT  # ring slots of the steps that will be kept
        new_key_pos = state.key_pos.scatter(1, write, pos[:, -CONTEXT:])
        one_frame = T == STEPS_PER_FRAME  # else attend over the ring as it was plus the new steps
        mask = visible(new_key_pos if one_frame else torch.cat([state.key_pos, pos], 1), pos)
        x = x.transpose(1, 2)
        for layer, keys, values in zip(self.layers, state.keys, state.values):
            x = layer(x, keys, values, write, mask, rot, one_frame)
        state.key_pos.copy_(new_key_pos)
        state.position += T
        return x.transpose(1, 2)


class ResidualQuantizer(nn.Module):
    """A projection 512 -> 256 then residual vector quantization over `n_q` euclidean codebooks."""

    def __init__(self, n_q: int):
        super().__init__()
        self.input_proj = nn.Conv1d(DIM, CODEBOOK_DIM, 1, bias=False)
        # Entries e stored as [e, 1, |e|^2] so that [-2x, |x|^2, 1] @ table.T = |x - e|^2 in one matmul:
        # torch.cdist's own formula (what moshi calls), minus the per-call rebuild of this table.
        self.register_buffer("table", torch.zeros(n_q, CARD, CODEBOOK_DIM + 2))

    def set_codebook(self, i: int, entries: Tensor) -> None:
        ones = torch.ones_like(entries[:, :1])
        self.table[i] = torch.cat([entries, ones, entries.pow(2).sum(-1, keepdim=True)], -1)

    def forward(self, emb: Tensor) -> Tensor:  # (B, 512, T) -> (B, n_q, T) int64
        B, _, T = emb.shape
        residual = self.input_proj(emb).transpose(1, 2).reshape(B * T, CODEBOOK_DIM)
        ones = residual.new_ones(B * T, 1)
        codes = []
        for table in self.table:
            x = torch.cat([residual.mul(-2), residual.pow(2).sum(-1, keepdim=True), ones], -1)
            # Batched with a batch of 1 and sqrt-ed, exactly as inside cdist: same kernel, same ties.
            dist = torch.matmul(x[None], table[None].mT)[0].clamp_min_(0).sqrt_()  # (B*T, CARD)
            idx = dist.argmin(-1)
            residual = residual - table[idx, :CODEBOOK_DIM]
            codes.append(idx)
        return torch.stack(codes, 0).view(-1, B, T).transpose(0, 1)


class MimiEncoder(nn.Module):
    """Mimi's encoder: audio frames -> 32 codes per frame. Build with `from_safetensors`."""

    def __init__(self):
        super().__init__()
        self.seanet = SeanetEncoder()
        self.transformer = Transformer()
        self.downsample = CausalConv1d(DIM, DIM, 4, 2, bias=False)  # 25 Hz -> 12.5 Hz
        self.semantic = ResidualQuantizer(N_SEMANTIC)
        self.acoustic = ResidualQuantizer(N_CODEBOOKS - N_SEMANTIC)

    @classmethod
    def from_safetensors(cls, path: str | Path, device: str | torch.device = "cpu",
                         dtype: torch.dtype = torch.float32) -> MimiEncoder:
        """Load the encoder half of a Mimi checkpoint (moshi's tensor names; decoder tensors ignored)."""
        model = cls()
        _load_checkpoint(model, Path(path))
        return model.to(device=device, dtype=dtype).eval()

    def init_state(self, batch_size: int) -> MimiState:
        """A fresh state for `batch_size` independent streams."""
        p = self.downsample.weight
        zeros = dict(device=p.device, dtype=p.dtype)
        convs = [*self.seanet.convs(), self.downsample]
        ring = (N_LAYERS, batch_size, N_HEADS, CONTEXT, DIM // N_HEADS)
        return MimiState(
            conv=[torch.zeros(batch_size, c.in_channels, c.context, **zeros) for c in convs],
            primed=torch.zeros(batch_size, dtype=torch.bool, device=p.device),
            keys=torch.zeros(ring, **zeros),
            values=torch.zeros(ring, **zeros),
            key_pos=torch.full((batch_size, CONTEXT), -1, dtype=torch.long, device=p.device),
            position=torch.zeros(batch_size, dtype=torch.long, device=p.device),
        )

    def reset_state(self, state: MimiState, i: int | None = None) -> None:
        """Restart stream `i` (all if None) of `state`; the other rows are untouched."""
        state.reset(i)

    @torch.no_grad()
    def encode_step(self, frames: Tensor, state: MimiState, active: Tensor | None = None) -> Tensor:
        """One 80 ms frame per stream: (B, 1920) float audio -> (B, 32) int64 codes.

        `active` (B,) bool, optional: rows marked False keep their state as if this call never
        happened (their codes are meaningless), so streams in one batch need not advance together.
        """
        if frames.dim() != 2 or frames.shape[1] != FRAME_SIZE or frames.shape[0] != state.batch_size:
            raise ValueError(f"expected frames of shape ({state.batch_size}, {FRAME_SIZE}), got "
                             f"{tuple(frames.shape)}")
        if active is None or bool(active.all()):
            return self._encode(frames, state)[:, :, 0]
        # Idle rows get their small per-row state back. Their key/value ring needs no restoring: this
        # step wrote the slots of steps (position, position + 1), the very ones their next real step
        # overwrites before attending, so what was scribbled there is never read (moshi alike).
        idle = ~active.to(state.position.device)
        rows = [*state.conv, state.primed, state.key_pos, state.position]
        saved = [t[idle] for t in rows]
        codes = self._encode(frames, state)[:, :, 0]
        for t, old in zip(rows, saved):
            t[idle] = old
        return codes

    @torch.no_grad()
    def encode(self, audio: Tensor, chunk_frames: int = 1) -> Tensor:
        """Whole clips (B, T) -> codes (B, 32, T // 1920), as if streamed; a trailing partial frame is dropped.

        With the default `chunk_frames=1` this is the streaming computation itself, so the codes equal
        `encode_step`'s bit for bit. Larger chunks run the convs and the transformer over many frames at
        once (about 4x faster on CPU) with identical semantics, but float sums then associate differently
        (latents move by ~1e-5), which flips a code wherever two codebook entries are that close to tied:
        none of 4,480 codes on the test clip, as rare as batching B streams together (moshi alike).
        """
        usable = audio.shape[-1] // FRAME_SIZE * FRAME_SIZE
        state = self.init_state(audio.shape[0])
        codes = [torch.zeros(audio.shape[0], N_CODEBOOKS, 0, dtype=torch.long, device=audio.device)]
        for start in range(0, usable, chunk_frames * FRAME_SIZE):
            codes.append(self._encode(audio[:, start : min(start + chunk_frames * FRAME_SIZE, usable)], state))
        return torch.cat(codes, -1)

    def _encode(self, audio: Tensor, state: MimiState) -> Tensor:  # (B, n * 1920) -> (B, 32, n)
        x = audio.to(self.downsample.weight.dtype)[:, None]
        bufs = iter(state.conv)
        x = self.transformer(self.seanet(x, bufs), state)
        # The downsampling conv pads its very first step by replicating it, not with zeros.
        down_buf = next(bufs)
        fresh = ~state.primed
        down_buf[fresh] = x[fresh, :, :1].expand(-1, -1, down_buf.shape[-1])
        state.primed[:] = True
        emb = self.downsample(x, down_buf)
        return torch.cat([self.semantic(emb), self.acoustic(emb)], 1)


# ---------------------------------------------------------------------------------------------------
# Checkpoint loading
# ---------------------------------------------------------------------------------------------------

# moshi's state_dict names attention weights `in_projs.0.weight` / `out_projs.0.weight`; the released
# file still uses the older names below, which moshi renames in a load hook. We accept both.
_ALIASES = {".self_attn.in_proj_weight": ".self_attn.in_projs.0.weight",
            ".self_attn.out_proj.weight": ".self_attn.out_projs.0.weight"}


def _checkpoint_names(model: MimiEncoder) -> dict[str, Tensor]:
    """Our parameters under their names in a Mimi checkpoint."""
    names: dict[str, Tensor] = {}

    def conv(prefix: str, c: nn.Conv1d) -> None:
        names[prefix + ".weight"] = c.weight
        if c.bias is not None:
            names[prefix + ".bias"] = c.bias

    s = model.seanet
    conv("encoder.model.0.conv.conv", s.stem)
    for i, stage in enumerate(s.stages):  # moshi's Sequential: res unit at 3i+1, ELU, down conv at 3i+3
        conv(f"encoder.model.{3 * i + 1}.block.1.conv.conv", stage.res1)
        conv(f"encoder.model.{3 * i + 1}.block.3.conv.conv", stage.res2)
        conv(f"encoder.model.{3 * i + 3}.conv.conv", stage.down)
    conv(f"encoder.model.{3 * len(s.stages) + 2}.conv.conv", s.head)
    for i, layer in enumerate(model.transformer.layers):
        p = f"encoder_transformer.transformer.layers.{i}."
        names[p + "self_attn.in_proj_weight"] = layer.in_proj.weight
        names[p + "self_attn.out_proj.weight"] = layer.out_proj.weight
        for norm in ("norm1", "norm2"):
            names[p + norm + ".weight"] = getattr(layer, norm).weight
            names[p + norm + ".bias"] = getattr(layer, norm).bias
        names[p + "linear1.weight"] = layer.linear1.weight
        names[p + "linear2.weight"] = layer.linear2.weight
        names[p + "layer_scale_1.scale"] = layer.scale1
        names[p + "layer_scale_2.scale"] = layer.scale2
    names["downsample.conv.conv.conv.weight"] = model.downsample.weight
    names["quantizer.rvq_first.input_proj.weight"] = model.semantic.input_proj.weight
    names["quantizer.rvq_rest.input_proj.weight"] = model.acoustic.input_proj.weight
    return names


def _load_checkpoint(model: MimiEncoder, path: Path) -> None:
    from safetensors import safe_open

    try:
        handle = safe_open(str(path), framework="pt")
    except Exception as e:  # missing file, not safetensors, truncated header...
        raise MimiCheckpointError(f"{path}: cannot read as a safetensors file ({e})") from e
    with handle as f:
        available = set(f.keys())

        def read(name: str, shape: tuple[int, ...]) -> Tensor:
            stored = next((n for n in _spellings(name) if n in available), None)
            if stored is None:
                raise MimiCheckpointError(f"{path}: missing Mimi encoder tensor '{name}'")
            tensor = f.get_tensor(stored)
            if tuple(tensor.shape) != tuple(shape):
                raise MimiCheckpointError(f"{path}: tensor '{stored}' has shape {tuple(tensor.shape)}, "
                                          f"the Mimi encoder expects {tuple(shape)}")
            return tensor.float()

        with torch.no_grad():
            for name, param in _checkpoint_names(model).items():
                param.copy_(read(name, param.shape))
            for group, rvq in (("rvq_first", model.semantic), ("rvq_rest", model.acoustic)):
                for i in range(len(rvq.table)):
                    p = f"quantizer.{group}.vq.layers.{i}._codebook."
                    # moshi keeps EMA statistics; an entry is the running sum over the running count.
                    usage = read(p + "cluster_usage", (CARD,))
                    entries = read(p + "embedding_sum", (CARD, CODEBOOK_DIM)) / usage.clamp(min=1e-5)[:, None]
                    rvq.set_codebook(i, entries)


def _spellings(name: str) -> list[str]:
    for release, moshi in _ALIASES.items():
        if name.endswith(release):
            return [name, name[: -len(release)] + moshi]
    return [name]
