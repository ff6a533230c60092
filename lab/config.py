"""The model's configuration and the stream's grid, in a module of their own: the model, its KV cache, the
streamer and the live end-of-turn policies all need them, and none of those should import another for them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

FRAME_RATE = 12.5  # Hz: one step of the model per 80 ms of audio
SAMPLE_RATE = 24_000
FRAME_SIZE = 1920  # samples per step at 24 kHz


@dataclass
class DSMConfig:
    d_model: int = 256
    num_layers: int = 6
    num_heads: int = 8
    ffn_hidden: int = 704  # hidden width of the gated feed-forward (Kyutai: 11 * d / 4)
    context: int = 250  # steps each query can see, itself included (250 = 20 s)
    max_period: float = 10_000.0  # RoPE
    norm_eps: float = 1e-8
    text_vocab_out: int = 1000  # text tokens the model can write
    text_vocab_in: int = 1001  # ... plus one: the initial token, id == text_vocab_out
    pad_id: int = 3  # "nothing new" (Kyutai's id)
    epad_id: int = 0  # "a word starts next" (Kyutai's id)
    delay_frames: int = 6  # text stream delay D; 6 frames = 0.48 s
    text_delay_s: float | None = None  # exact delay where it is not whole frames (Kyutai 1B: 0.5 s, D = 7)
    audio_input: str = "filterbank"  # "filterbank" (our models) or "codebooks" (Mimi codes, Kyutai)
    n_filters: int = 64  # filterbank frontend: learned filters per 10 ms sub-frame
    n_codebooks: int = 32  # codebook frontend
    codebook_card: int = 2048  # codebook frontend: codes per codebook (plus one initial id)
    eot_horizons_s: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)  # one extra head per horizon
    eot_head_dim: int = 6  # outputs per extra head; index 0 = "no voice activity over the horizon"
    silence_prefix_s: float = 0.0  # audio of silence fed before a stream's first sample
    name: str = "dsm"

    def __post_init__(self):
        self.eot_horizons_s = tuple(float(h) for h in self.eot_horizons_s)
        if self.d_model % self.num_heads or (self.d_model // self.num_heads) % 2:
            raise ValueError(f"d_model {self.d_model} must split into {self.num_heads} heads of even size")
        if self.audio_input not in ("filterbank", "codebooks"):
            raise ValueError(f"audio_input must be 'filterbank' or 'codebooks', not {self.audio_input!r}")
        if self.text_vocab_in <= self.text_vocab_out:
            raise ValueError("text_vocab_in must count the initial token: text_vocab_out + 1")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def initial_text_id(self) -> int:
        return self.text_vocab_out

    @property
    def delay_s(self) -> float:
        """The text delay in seconds: word timestamps are the step time minus this (and any silence prefix)."""
        return self.delay_frames / FRAME_RATE if self.text_delay_s is None else self.text_delay_s

    def to_dict(self) -> dict:
        d = asdict(self)
        d["eot_horizons_s"] = list(self.eot_horizons_s)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DSMConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**d)
